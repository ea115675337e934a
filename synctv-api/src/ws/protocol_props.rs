//! Property tests of the message decoder, the first code untrusted bytes reach: any
//! text, any JSON shape and any field of any type must come back as a message or a
//! `BadMessage` (never a panic), and what the contract allows must be accepted.

use super::any_json::any_json;
use super::protocol::{decode, ClientMessage, MAX_CHAT_CHARS};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Cases per property: enough to find what a few seconds can, few enough for the suite.
const CASES: u32 = 1000;

/// An object shaped like a client message: a real type, real field names, any values.
fn message_like() -> impl Strategy<Value = Value> {
    let kinds = prop_oneof![
        Just("join"),
        Just("leave"),
        Just("playback"),
        Just("media"),
        Just("chat"),
        Just("ping"),
        Just("nope"),
    ];
    let fields = [
        "id",
        "room",
        "password",
        "recover",
        "action",
        "position",
        "rate",
        "if_version",
        "url",
        "title",
        "text",
        "t",
    ];
    let field_values =
        prop::collection::vec((prop::sample::select(fields.to_vec()), any_json(40)), 0..8);
    (kinds, field_values).prop_map(|(kind, pairs)| {
        let mut object = Map::new();
        object.insert("type".into(), Value::from(kind));
        for (name, value) in pairs {
            object.insert(name.into(), value);
        }
        Value::Object(object)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_text_decodes_or_is_refused(text in ".{0,200}") {
        let _ = decode(&text);
    }

    #[test]
    fn any_bytes_as_lossy_text_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn any_json_decodes_or_is_refused(value in any_json(40)) {
        let _ = decode(&value.to_string());
    }

    /// A refused message keeps its `id` when the `id` itself was valid, so the error can
    /// answer it.
    #[test]
    fn message_shaped_objects_decode_or_are_refused_with_their_id(value in message_like()) {
        let id = value.get("id").cloned().filter(|id| id.is_number() || id.is_string());
        match decode(&value.to_string()) {
            Ok((decoded_id, _)) => prop_assert_eq!(decoded_id, id),
            Err(bad) => {
                if bad.id.is_some() {
                    prop_assert_eq!(bad.id, id);
                }
                prop_assert!(!bad.message.is_empty());
            }
        }
    }

    /// Truncating a valid message anywhere never panics, and never yields another message.
    #[test]
    fn truncated_messages_are_refused(text in "[^\u{0}]{1,100}", cut in any::<prop::sample::Index>()) {
        let message = json!({"type": "chat", "id": 7, "room": "r", "text": text}).to_string();
        let boundaries: Vec<usize> = (0..message.len()).filter(|i| message.is_char_boundary(*i)).collect();
        let end = boundaries[cut.index(boundaries.len())];
        prop_assert!(decode(&message[..end]).is_err());
    }

    #[test]
    fn chats_within_the_limits_are_accepted(text in prop::collection::vec(any::<char>(), 1..=MAX_CHAT_CHARS)) {
        let text: String = text.into_iter().collect();
        let message = json!({"type": "chat", "id": "c", "room": "r", "text": text}).to_string();
        match decode(&message) {
            Ok((_, ClientMessage::Chat { text: decoded, .. })) => prop_assert_eq!(decoded, text),
            other => prop_assert!(false, "refused: {:?}", other.err()),
        }
    }
}

/// Found by `message_shaped_objects_decode_or_are_refused_with_their_id`: without
/// serde_json's `float_roundtrip`, a float `id` was parsed to a neighbouring double, so
/// the answer echoed an `id` the client never sent.
#[test]
fn float_ids_are_echoed_exactly() {
    let id = -5.380003175339499e-137_f64;
    let message = json!({"type": "ping", "id": id}).to_string();
    let (decoded, _) = decode(&message).unwrap();
    assert_eq!(decoded, Some(json!(id)));
    assert_eq!(decoded.unwrap().to_string(), json!(id).to_string());
}
