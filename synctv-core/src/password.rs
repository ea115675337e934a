//! Room passwords: hashed with Argon2 when a room is created, verified when someone joins.
//!
//! Both are deliberately slow (that is what makes a stolen hash hard to use), and both are
//! plain functions: callers on an async runtime run them on a blocking thread.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// The PHC string (algorithm, parameters, salt and hash) to store for `password`.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches `stored` (a PHC string from [`hash_password`]). A stored
/// value that is not a valid PHC string matches nothing.
pub fn verify_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash_password("open sesame").unwrap();
        assert!(stored.starts_with("$argon2"));
        assert!(verify_password(&stored, "open sesame"));
        assert!(!verify_password(&stored, "open sesame "));
        assert!(!verify_password("not a hash", "open sesame"));
    }
}
