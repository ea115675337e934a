//! What the operator's backend hears about a room (contract 1.1, webhooks), derived from
//! the room's durable history alone, so every node that derives them gets the same ones:
//! `member_joined`, `member_left` and `member_kicked` as recorded, and `room_occupied` /
//! `room_vacated` when the set of present users, as the history tells it, stops or
//! starts being empty.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The kinds of history entries that matter to webhooks.
const MEMBER_JOINED: &str = "member_joined";
const MEMBER_LEFT: &str = "member_left";
const MEMBER_KICKED: &str = "member_kicked";
const ROOM_ARCHIVED: &str = "room_archived";

/// One entry of a room's history, as far as webhooks read it.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    pub seq: i64,
    pub kind: String,
    pub data: Value,
    pub server_time: i64,
}

/// Who a webhook is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookUser {
    pub user_id: String,
    pub name: String,
}

/// One delivery to make, in the room's order (`seq`, then `place`).
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub kind: &'static str,
    pub seq: i64,
    /// Its place among the notifications of one event (`room_occupied` comes before the
    /// `member_joined` that caused it, `room_vacated` after the `member_left`).
    pub place: i64,
    pub user: Option<WebhookUser>,
    pub time: i64,
}

impl Notification {
    /// The delivery's id: the same whichever node derives it, and however often.
    pub fn delivery_id(&self, room: &str) -> String {
        format!("{room}.{}.{}", self.seq, self.place)
    }

    /// The delivery's order within its room.
    pub fn position(&self) -> i64 {
        self.seq.saturating_mul(4).saturating_add(self.place)
    }

    /// The JSON body the receiver gets (and the signature covers).
    pub fn body(&self, room: &str) -> String {
        json!({
            "delivery_id": self.delivery_id(room),
            "type": self.kind,
            "room": room,
            "seq": self.seq,
            "user": self.user,
            "time": self.time,
        })
        .to_string()
    }
}

/// The user an entry names (`data.user_id`); `name` from the entry, or from `names` when
/// the entry has none (a kick records only the id).
fn entry_user(entry: &HistoryEntry, names: &dyn Fn(&str) -> Option<String>) -> Option<WebhookUser> {
    let user_id = entry.data.get("user_id")?.as_str()?.to_owned();
    let name = entry
        .data
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| names(&user_id))
        .unwrap_or_default();
    Some(WebhookUser { user_id, name })
}

/// The notifications of `entries` (in seq order), given and updating `present`, the
/// users present in the room before them. `names` finds a user's name when an entry
/// lacks it.
pub fn notifications(
    entries: &[HistoryEntry],
    present: &mut BTreeSet<String>,
    names: &dyn Fn(&str) -> Option<String>,
) -> Vec<Notification> {
    let mut out = Vec::new();
    for entry in entries {
        let note = |kind, place, user| Notification {
            kind,
            seq: entry.seq,
            place,
            user,
            time: entry.server_time,
        };
        match entry.kind.as_str() {
            MEMBER_JOINED => {
                let user = entry_user(entry, names);
                if let Some(user) = &user {
                    if present.is_empty() {
                        out.push(note("room_occupied", 0, Some(user.clone())));
                    }
                    present.insert(user.user_id.clone());
                }
                out.push(note(MEMBER_JOINED, 1, user));
            }
            MEMBER_LEFT | MEMBER_KICKED => {
                let user = entry_user(entry, names);
                let kind = if entry.kind == MEMBER_LEFT {
                    MEMBER_LEFT
                } else {
                    MEMBER_KICKED
                };
                out.push(note(kind, 1, user.clone()));
                if let Some(user) = user {
                    if present.remove(&user.user_id) && present.is_empty() {
                        out.push(note("room_vacated", 2, Some(user)));
                    }
                }
            }
            // Archiving removes every member without a `member_left` each.
            ROOM_ARCHIVED if !present.is_empty() => {
                present.clear();
                out.push(note("room_vacated", 2, None));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, kind: &str, user: &str) -> HistoryEntry {
        HistoryEntry {
            seq,
            kind: kind.into(),
            data: json!({"user_id": user, "name": user.to_uppercase()}),
            server_time: 1000 + seq,
        }
    }

    fn kinds(notes: &[Notification]) -> Vec<(i64, &'static str)> {
        notes.iter().map(|n| (n.seq, n.kind)).collect()
    }

    #[test]
    fn occupancy_follows_the_first_arrival_and_the_last_departure() {
        let mut present = BTreeSet::new();
        let entries = [
            entry(1, "member_joined", "a"),
            entry(2, "chat", "a"),
            entry(3, "member_joined", "b"),
            entry(4, "member_left", "a"),
            entry(5, "member_kicked", "b"),
            entry(6, "member_joined", "a"),
        ];
        let notes = notifications(&entries, &mut present, &|_| None);
        assert_eq!(
            kinds(&notes),
            [
                (1, "room_occupied"),
                (1, "member_joined"),
                (3, "member_joined"),
                (4, "member_left"),
                (5, "member_kicked"),
                (5, "room_vacated"),
                (6, "room_occupied"),
                (6, "member_joined"),
            ]
        );
        let positions: Vec<i64> = notes.iter().map(Notification::position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_eq!(present.into_iter().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn the_state_carries_over_between_batches_and_archiving_vacates() {
        let mut present = BTreeSet::new();
        notifications(&[entry(1, "member_joined", "a")], &mut present, &|_| None);
        let notes = notifications(
            &[
                HistoryEntry {
                    seq: 2,
                    kind: "room_archived".into(),
                    data: json!({}),
                    server_time: 5,
                },
                entry(3, "member_left", "a"),
            ],
            &mut present,
            &|_| None,
        );
        assert_eq!(kinds(&notes), [(2, "room_vacated"), (3, "member_left")]);
    }

    #[test]
    fn bodies_have_the_contracts_fields_and_a_stable_id() {
        let kicked = HistoryEntry {
            seq: 7,
            kind: "member_kicked".into(),
            data: json!({"user_id": "u1", "banned_until": null}),
            server_time: 99,
        };
        let notes = notifications(&[kicked], &mut BTreeSet::new(), &|id| {
            (id == "u1").then(|| "alice".to_owned())
        });
        let body: Value = serde_json::from_str(&notes[0].body("r1")).unwrap();
        assert_eq!(
            body,
            json!({"delivery_id": "r1.7.1", "type": "member_kicked", "room": "r1", "seq": 7,
                   "user": {"user_id": "u1", "name": "alice"}, "time": 99})
        );
    }
}
