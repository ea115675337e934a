//! The few wire messages of PROTOCOL.md the bench speaks, and the latency payload it embeds
//! in chat text. Own types on purpose: the bench must not depend on the server crates, so a
//! server that drifts from the contract shows up here as errors, not as a silent match.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A client message. `id` is always a number chosen by the bench.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg<'a> {
    Join {
        id: u64,
        room: &'a str,
    },
    Leave {
        id: u64,
        room: &'a str,
    },
    Chat {
        id: u64,
        room: &'a str,
        text: &'a str,
    },
}

impl ClientMsg<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail; an empty string would be answered
        // by the server with bad_request and counted, never a panic.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Any server frame, flattened: only the fields the bench reads, borrowed from the frame.
/// Everything else (`state`, `members`, ...) is skipped by serde.
#[derive(Debug, Deserialize)]
pub struct ServerFrame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default)]
    pub id: Option<serde_json::Number>,
    /// The event kind for `event` frames (`chat`, `member_joined`, ...).
    #[serde(default, rename = "kind", borrow)]
    pub event_kind: Option<Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default, borrow)]
    pub data: Option<EventData<'a>>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct EventData<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
}

impl ServerFrame<'_> {
    pub fn parse(text: &str) -> Result<ServerFrame<'_>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The numeric `id` this frame answers, if any.
    pub fn id_u64(&self) -> Option<u64> {
        self.id.as_ref().and_then(|n| n.as_u64())
    }

    /// The chat text of a `chat` event.
    pub fn chat_text(&self) -> Option<&str> {
        if self.kind != "event" || self.event_kind.as_deref() != Some("chat") {
            return None;
        }
        self.data.as_ref()?.text.as_deref()
    }
}

/// Latency payload: `b:<sender>:<send-nanos>:` then `x` padding up to the wanted size.
/// Nanoseconds are on the bench clock (`clock::now_nanos`).
pub fn encode_payload(sender: u32, sent_nanos: u64, size: usize) -> String {
    let mut text = format!("b:{sender}:{sent_nanos}:");
    if text.len() < size {
        let pad = size - text.len();
        text.extend(std::iter::repeat_n('x', pad));
    }
    text
}

/// The sender and send time of a bench payload; `None` for any other text.
pub fn decode_payload(text: &str) -> Option<(u32, u64)> {
    let rest = text.strip_prefix("b:")?;
    let mut parts = rest.splitn(3, ':');
    let sender = parts.next()?.parse().ok()?;
    let nanos = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((sender, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_roundtrip_and_padding() {
        let text = encode_payload(42, 1_700_000_000_123_456_789, 100);
        assert_eq!(text.len(), 100);
        assert_eq!(decode_payload(&text), Some((42, 1_700_000_000_123_456_789)));
    }

    #[test]
    fn payload_longer_than_size_is_kept_whole() {
        let text = encode_payload(7, 12345, 4);
        assert_eq!(text, "b:7:12345:");
        assert_eq!(decode_payload(&text), Some((7, 12345)));
    }

    #[test]
    fn foreign_text_is_not_a_payload() {
        assert_eq!(decode_payload("hello"), None);
        assert_eq!(decode_payload("b:x:1:"), None);
        assert_eq!(decode_payload("b:1:2"), None);
    }

    #[test]
    fn client_messages_match_the_contract() {
        let chat = ClientMsg::Chat {
            id: 3,
            room: "r1",
            text: "hi",
        }
        .to_json();
        let v: serde_json::Value = serde_json::from_str(&chat).unwrap();
        assert_eq!(v["type"], "chat");
        assert_eq!(v["room"], "r1");
        assert_eq!(v["text"], "hi");
        assert_eq!(v["id"], 3);
        let join = ClientMsg::Join { id: 1, room: "r1" }.to_json();
        assert!(join.contains(r#""type":"join""#));
    }

    #[test]
    fn parses_chat_event_and_errors() {
        let ev = r#"{"type":"event","room":"r","epoch":"e","seq":5,"kind":"chat",
            "by":{"user_id":"u","name":"n"},"data":{"text":"b:1:2:x"},"server_time":1}"#;
        let f = ServerFrame::parse(ev).unwrap();
        assert_eq!(f.chat_text(), Some("b:1:2:x"));
        assert_eq!(f.seq, Some(5));
        let err = r#"{"type":"error","id":9,"code":"rate_limited","message":"slow"}"#;
        let f = ServerFrame::parse(err).unwrap();
        assert_eq!(f.kind, "error");
        assert_eq!(f.id_u64(), Some(9));
        assert_eq!(f.code.as_deref(), Some("rate_limited"));
        let joined = r#"{"type":"joined","id":1,"room":"r","epoch":"e","seq":1,
            "state":{"media":null},"members":[],"recovered":false,"events":[]}"#;
        let f = ServerFrame::parse(joined).unwrap();
        assert_eq!(f.chat_text(), None);
        assert_eq!(f.id_u64(), Some(1));
    }
}
