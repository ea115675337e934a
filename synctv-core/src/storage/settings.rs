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
        let value = generate();
        let value = &value;
        let row = self
            .on_primary(|pool| async move {
                sqlx::query(
                    "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(value)
                .execute(&pool)
                .await?;
                Ok(sqlx::query("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_one(&pool)
                    .await?)
            })
            .await?;
        column(&row, "value")
    }
}
