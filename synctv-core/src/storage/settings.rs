//! Server-wide settings kept in the database (the generated JWT secret of single-node mode).

use super::{column, Database, StorageError};

impl Database {
    /// The value of `key`, storing `generate()` first if there is none. Two servers racing
    /// on a fresh database both end with the value that was stored first.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        generate: impl FnOnce() -> String,
    ) -> Result<String, StorageError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(generate())
        .execute(self.pool())
        .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(self.pool())
            .await?;
        column(&row, "value")
    }
}
