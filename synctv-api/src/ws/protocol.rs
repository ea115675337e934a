//! The WebSocket messages of the contract: decoding what clients send (every malformed
//! input becomes a typed [`BadMessage`], never a panic) and encoding what the server says.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use synctv_cluster::MemberRole;
use synctv_core::moderation::{Role, MAX_MODERATION_SECS};
use synctv_core::playback::{valid_media_url, PlaybackCommandError};
use synctv_core::queue::{NewItem, QueueItem};
use synctv_core::waiting::PlayerStatus;
use synctv_core::{Media, PlaybackAction, PlaybackCommand, PlaybackState, RoomId, UserId};

/// Longest chat line, and media title, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;
pub const MAX_TITLE_CHARS: usize = 300;

/// A message's `id`: a number or a string, echoed on every answer.
pub type MessageId = Value;

#[derive(Debug, Deserialize)]
pub struct Recover {
    pub epoch: String,
    pub seq: i64,
}

#[derive(Debug)]
pub enum ClientMessage {
    Join {
        room: RoomId,
        password: Option<String>,
        recover: Option<Recover>,
    },
    Leave {
        room: RoomId,
    },
    Playback {
        room: RoomId,
        command: PlaybackCommand,
    },
    Media {
        room: RoomId,
        media: Media,
    },
    Chat {
        room: RoomId,
        text: String,
    },
    Ping {
        t: Option<Number>,
    },
    /// 1.1: give `user` the role `admin` or `member`.
    Role {
        room: RoomId,
        user: UserId,
        role: Role,
    },
    Kick {
        room: RoomId,
        user: UserId,
        ban_secs: i64,
    },
    Mute {
        room: RoomId,
        user: UserId,
        secs: i64,
    },
    QueueAdd {
        room: RoomId,
        item: NewItem,
    },
    QueueRemove {
        room: RoomId,
        item_id: String,
    },
    QueueMove {
        room: RoomId,
        item_id: String,
        index: usize,
    },
    Next {
        room: RoomId,
        if_version: Option<i64>,
    },
    Status {
        room: RoomId,
        status: PlayerStatus,
    },
    Report {
        room: RoomId,
        position: f64,
        rtt_ms: Option<f64>,
    },
}

/// Why a client message cannot be taken; each is a `bad_request`.
#[derive(Debug)]
pub struct BadMessage {
    pub id: Option<MessageId>,
    pub room: Option<RoomId>,
    pub message: String,
}

#[derive(Deserialize)]
struct JoinFields {
    room: String,
    password: Option<String>,
    recover: Option<Recover>,
}
#[derive(Deserialize)]
struct RoomField {
    room: String,
}
#[derive(Deserialize)]
struct PlaybackFields {
    room: String,
    action: PlaybackAction,
    position: Option<f64>,
    rate: Option<f64>,
    if_version: Option<i64>,
    force: Option<bool>,
}
#[derive(Deserialize)]
struct MediaFields {
    room: String,
    url: String,
    title: Option<String>,
    duration: Option<f64>,
}
#[derive(Deserialize)]
struct RoleFields {
    room: String,
    user_id: String,
    role: Role,
}
#[derive(Deserialize)]
struct KickFields {
    room: String,
    user_id: String,
    ban_secs: Option<i64>,
}
#[derive(Deserialize)]
struct MuteFields {
    room: String,
    user_id: String,
    secs: i64,
}
#[derive(Deserialize)]
struct QueueAddFields {
    room: String,
    url: String,
    title: Option<String>,
    duration: Option<f64>,
    index: Option<usize>,
}
#[derive(Deserialize)]
struct QueueItemFields {
    room: String,
    item_id: String,
    index: Option<usize>,
}
#[derive(Deserialize)]
struct NextFields {
    room: String,
    if_version: Option<i64>,
}
#[derive(Deserialize)]
struct StatusFields {
    room: String,
    state: PlayerStatus,
}
#[derive(Deserialize)]
struct ReportFields {
    room: String,
    position: f64,
    rtt_ms: Option<f64>,
}
#[derive(Deserialize)]
struct ChatFields {
    room: String,
    text: String,
}
#[derive(Deserialize)]
struct PingFields {
    t: Option<Number>,
}

/// Decodes one text frame. The `id` is recovered even from a message that is otherwise
/// wrong, so the error can carry it.
pub fn decode(text: &str) -> Result<(Option<MessageId>, ClientMessage), BadMessage> {
    let bad = |id: Option<MessageId>, room: Option<RoomId>, message: String| BadMessage {
        id,
        room,
        message,
    };
    let mut object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(bad(None, None, "a message must be a JSON object".into())),
        Err(e) => return Err(bad(None, None, format!("malformed JSON: {e}"))),
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(id @ (Value::Number(_) | Value::String(_))) => Some(id),
        Some(_) => return Err(bad(None, None, "id must be a number or a string".into())),
    };
    let room = object.get("room").and_then(Value::as_str).map(RoomId::from);
    let kind = match object.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(bad(id, room, "type must be a string".into())),
        None => return Err(bad(id, room, "missing field `type`".into())),
    };
    let value = Value::Object(object);
    let fields = |e: serde_json::Error| format!("{kind}: {e}");
    let message = match kind.as_str() {
        "join" => serde_json::from_value::<JoinFields>(value)
            .map_err(fields)
            .map(|f| ClientMessage::Join {
                room: RoomId::from(f.room),
                password: f.password,
                recover: f.recover,
            }),
        "leave" => serde_json::from_value::<RoomField>(value)
            .map_err(fields)
            .map(|f| ClientMessage::Leave {
                room: RoomId::from(f.room),
            }),
        "playback" => serde_json::from_value::<PlaybackFields>(value)
            .map_err(fields)
            .and_then(|f| {
                PlaybackCommand::new(f.action, f.position, f.rate, f.if_version)
                    .map(|mut command| {
                        command.force = f.force.unwrap_or(false);
                        ClientMessage::Playback {
                            room: RoomId::from(f.room),
                            command,
                        }
                    })
                    .map_err(|e: PlaybackCommandError| format!("playback: {e}"))
            }),
        "media" => serde_json::from_value::<MediaFields>(value)
            .map_err(fields)
            .and_then(|f| {
                check_media("media", &f.url, f.title.as_deref(), f.duration)?;
                Ok(ClientMessage::Media {
                    room: RoomId::from(f.room),
                    media: Media {
                        url: f.url,
                        title: f.title,
                        duration: f.duration,
                    },
                })
            }),
        "chat" => serde_json::from_value::<ChatFields>(value)
            .map_err(fields)
            .and_then(|f| {
                let chars = f.text.chars().count();
                if (1..=MAX_CHAT_CHARS).contains(&chars) {
                    Ok(ClientMessage::Chat {
                        room: RoomId::from(f.room),
                        text: f.text,
                    })
                } else {
                    Err(format!(
                        "chat: text must be 1 to {MAX_CHAT_CHARS} characters"
                    ))
                }
            }),
        "ping" => serde_json::from_value::<PingFields>(value)
            .map_err(fields)
            .map(|f| ClientMessage::Ping { t: f.t }),
        "role" => serde_json::from_value::<RoleFields>(value)
            .map_err(fields)
            .and_then(|f| match f.role {
                Role::Owner => Err("role: role must be admin or member".into()),
                role => Ok(ClientMessage::Role {
                    room: RoomId::from(f.room),
                    user: UserId::from(f.user_id),
                    role,
                }),
            }),
        "kick" => serde_json::from_value::<KickFields>(value)
            .map_err(fields)
            .and_then(|f| {
                let ban_secs = f.ban_secs.unwrap_or(0);
                check_secs("kick: ban_secs", ban_secs)?;
                Ok(ClientMessage::Kick {
                    room: RoomId::from(f.room),
                    user: UserId::from(f.user_id),
                    ban_secs,
                })
            }),
        "mute" => serde_json::from_value::<MuteFields>(value)
            .map_err(fields)
            .and_then(|f| {
                check_secs("mute: secs", f.secs)?;
                Ok(ClientMessage::Mute {
                    room: RoomId::from(f.room),
                    user: UserId::from(f.user_id),
                    secs: f.secs,
                })
            }),
        "queue_add" => serde_json::from_value::<QueueAddFields>(value)
            .map_err(fields)
            .and_then(|f| {
                check_media("queue_add", &f.url, f.title.as_deref(), f.duration)?;
                Ok(ClientMessage::QueueAdd {
                    room: RoomId::from(f.room),
                    item: NewItem {
                        url: f.url,
                        title: f.title,
                        duration: f.duration,
                        index: f.index,
                    },
                })
            }),
        "queue_remove" => serde_json::from_value::<QueueItemFields>(value)
            .map_err(fields)
            .map(|f| ClientMessage::QueueRemove {
                room: RoomId::from(f.room),
                item_id: f.item_id,
            }),
        "queue_move" => serde_json::from_value::<QueueItemFields>(value)
            .map_err(fields)
            .and_then(|f| match f.index {
                Some(index) => Ok(ClientMessage::QueueMove {
                    room: RoomId::from(f.room),
                    item_id: f.item_id,
                    index,
                }),
                None => Err("queue_move: missing field `index`".into()),
            }),
        "next" => serde_json::from_value::<NextFields>(value)
            .map_err(fields)
            .map(|f| ClientMessage::Next {
                room: RoomId::from(f.room),
                if_version: f.if_version,
            }),
        "status" => serde_json::from_value::<StatusFields>(value)
            .map_err(fields)
            .map(|f| ClientMessage::Status {
                room: RoomId::from(f.room),
                status: f.state,
            }),
        "report" => serde_json::from_value::<ReportFields>(value)
            .map_err(fields)
            .and_then(|f| {
                let non_negative = |v: f64| v.is_finite() && v >= 0.0;
                if !non_negative(f.position) || !f.rtt_ms.is_none_or(non_negative) {
                    return Err("report: position and rtt_ms must be numbers, 0 or more".into());
                }
                Ok(ClientMessage::Report {
                    room: RoomId::from(f.room),
                    position: f.position,
                    rtt_ms: f.rtt_ms,
                })
            }),
        other => Err(format!("unknown message type `{other}`")),
    };
    match message {
        Ok(message) => Ok((id, message)),
        Err(message) => Err(bad(id, room, message)),
    }
}

/// The media fields of `media` and `queue_add`: an http(s) URL, a title of bounded
/// length, a positive duration.
fn check_media(
    kind: &str,
    url: &str,
    title: Option<&str>,
    duration: Option<f64>,
) -> Result<(), String> {
    if !valid_media_url(url) {
        Err(format!(
            "{kind}: url must be http or https and at most 2048 characters"
        ))
    } else if title.is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS) {
        Err(format!(
            "{kind}: title must be at most {MAX_TITLE_CHARS} characters"
        ))
    } else if duration.is_some_and(|d| !d.is_finite() || d <= 0.0) {
        Err(format!(
            "{kind}: duration must be a number of seconds above 0"
        ))
    } else {
        Ok(())
    }
}

/// A ban or mute length: 0 to a year.
fn check_secs(field: &str, secs: i64) -> Result<(), String> {
    if (0..=MAX_MODERATION_SECS).contains(&secs) {
        Ok(())
    } else {
        Err(format!("{field} must be 0 to {MAX_MODERATION_SECS}"))
    }
}

/// The error codes of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    RateLimited,
    RoomFull,
    TooManyRooms,
    Unavailable,
    /// 1.1: a join of a banned user (with `until`).
    Banned,
    /// 1.1: a 501st queue item.
    QueueFull,
}

/// What the server sends, besides events (which are encoded once, in the cluster layer).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    Joined {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a MessageId>,
        room: &'a RoomId,
        epoch: &'a str,
        seq: i64,
        state: &'a PlaybackState,
        /// 1.1: the joiner's own role.
        role: Role,
        members: &'a [MemberRole],
        /// 1.1: the room's queue.
        queue: &'a [QueueItem],
        recovered: bool,
        events: Vec<&'a RawValue>,
    },
    Left {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a MessageId>,
        room: &'a RoomId,
    },
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a MessageId>,
        room: &'a RoomId,
        /// `null` when the message changed nothing (1.1).
        seq: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<i64>,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a MessageId>,
        t: Option<&'a Number>,
        server_time: i64,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a MessageId>,
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a RoomId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<&'a PlaybackState>,
    },
    Reconnect {
        reason: &'a str,
        after_ms: u64,
    },
    /// An `error` that names when a ban ends (`banned`, 1.1).
    #[serde(rename = "error")]
    ErrorUntil {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a MessageId>,
        code: ErrorCode,
        message: &'a str,
        room: &'a RoomId,
        until: i64,
    },
}

impl ServerMessage<'_> {
    pub fn encode(&self) -> Bytes {
        // Serializing these plain structs cannot fail; an empty object is the harmless
        // answer should serde ever disagree.
        Bytes::from(serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec()))
    }
}

/// The events of a `joined` frame, as raw JSON (they were encoded once already).
pub fn raw_events<'a>(frames: &[&'a Bytes]) -> Vec<&'a RawValue> {
    frames
        .iter()
        .filter_map(|f| std::str::from_utf8(f).ok())
        .filter_map(|s| serde_json::from_str::<&RawValue>(s).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_err(text: &str) -> BadMessage {
        match decode(text) {
            Err(e) => e,
            Ok((_, m)) => panic!("{text} decoded as {m:?}"),
        }
    }

    #[test]
    fn every_message_type_decodes() {
        let ok = |v: Value| decode(&v.to_string()).unwrap().1;
        assert!(matches!(
            ok(json!({"type": "join", "room": "r", "recover": {"epoch": "e", "seq": 3}})),
            ClientMessage::Join {
                recover: Some(Recover { seq: 3, .. }),
                ..
            }
        ));
        assert!(matches!(
            ok(json!({"type": "leave", "room": "r"})),
            ClientMessage::Leave { .. }
        ));
        assert!(matches!(
            ok(json!({"type": "playback", "room": "r", "action": "seek", "position": 3.5})),
            ClientMessage::Playback { .. }
        ));
        assert!(matches!(
            ok(json!({"type": "media", "room": "r", "url": "https://x/y.mp4"})),
            ClientMessage::Media {
                media: Media { title: None, .. },
                ..
            }
        ));
        assert!(matches!(
            ok(json!({"type": "chat", "room": "r", "text": "hi", "extra": 1})),
            ClientMessage::Chat { .. }
        ));
        assert!(matches!(
            ok(json!({"type": "ping", "t": 1.5})),
            ClientMessage::Ping { t: Some(_) }
        ));
    }

    #[test]
    fn bad_input_keeps_the_id_and_says_why() {
        assert!(decode_err("{not json").message.contains("malformed"));
        assert!(decode_err("[1,2]").message.contains("object"));
        let e = decode_err(r#"{"type":"chat","id":7,"room":"r","text":5}"#);
        assert_eq!(e.id, Some(json!(7)));
        assert_eq!(e.room, Some(RoomId::from("r")));
        assert!(e.message.contains("chat"));
        assert_eq!(
            decode_err(r#"{"type":"chat","id":"a","room":"r"}"#).id,
            Some(json!("a"))
        );
        assert!(decode_err(r#"{"type":"nope"}"#).message.contains("unknown"));
        assert!(decode_err(r#"{"id":{}, "type":"ping"}"#)
            .message
            .contains("id"));
        assert!(decode_err(r#"{"type":"ping","t":"x"}"#)
            .message
            .contains("ping"));
        assert!(
            decode_err(r#"{"type":"playback","room":"r","action":"seek","position":-1}"#)
                .message
                .contains("position")
        );
        assert!(
            decode_err(r#"{"type":"playback","room":"r","action":"rate","rate":9}"#)
                .message
                .contains("rate")
        );
        assert!(decode_err(r#"{"type":"media","room":"r","url":"ftp://x"}"#)
            .message
            .contains("url"));
        assert!(decode_err(r#"{"type":"chat","room":"r","text":""}"#)
            .message
            .contains("1 to"));
        let long = "é".repeat(2001);
        assert!(
            decode_err(&json!({"type":"chat","room":"r","text": long}).to_string())
                .message
                .contains("1 to")
        );
        assert!(
            decode(&json!({"type":"chat","room":"r","text": "é".repeat(2000)}).to_string()).is_ok()
        );
    }

    #[test]
    fn answers_echo_the_id() {
        let id = json!("x1");
        let frame = ServerMessage::Ack {
            id: Some(&id),
            room: &RoomId::from("r"),
            seq: Some(4),
            version: None,
        }
        .encode();
        assert_eq!(
            serde_json::from_slice::<Value>(&frame).unwrap(),
            json!({"type": "ack", "id": "x1", "room": "r", "seq": 4})
        );
    }
}
