//! The proptest strategy for "any JSON value, nested a little", shared by the decoder's
//! properties (`protocol_props`) and the HTTP body properties (`tests/fuzz/bodies.rs`,
//! which includes this file by path).

use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, nested up to three levels, strings up to `max_chars` characters.
pub fn any_json(max_chars: usize) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::string::string_regex(&format!(".{{0,{max_chars}}}"))
            .expect("a valid pattern")
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
