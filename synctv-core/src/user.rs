//! Users. Every user is a guest identified by a token; the name is chosen at login.

use crate::ids::UserId;
use serde::Serialize;

/// Longest accepted user name, in Unicode scalar values after trimming.
pub const MAX_USER_NAME_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub created_at: i64,
}

/// Trims `raw` and checks its length against `max` characters: `None` when it does not fit.
pub fn normalize_name(raw: &str, max: usize) -> Option<String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    (1..=max).contains(&chars).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_counted_in_characters() {
        assert_eq!(normalize_name("  alice ", 64).as_deref(), Some("alice"));
        assert_eq!(normalize_name("   ", 64), None);
        assert_eq!(
            normalize_name(&"é".repeat(64), 64).map(|s| s.chars().count()),
            Some(64)
        );
        assert_eq!(normalize_name(&"é".repeat(65), 64), None);
    }
}
