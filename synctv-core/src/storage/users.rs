//! Guest users.

use super::{column, Database, StorageError};
use crate::ids::UserId;
use crate::user::User;

impl Database {
    pub async fn create_user(&self, name: &str, now_ms: i64) -> Result<User, StorageError> {
        let user = User {
            id: UserId::generate(),
            name: name.to_owned(),
            created_at: now_ms,
        };
        sqlx::query("INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(user.id.as_str())
            .bind(&user.name)
            .bind(user.created_at)
            .execute(self.pool())
            .await?;
        Ok(user)
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<User>, StorageError> {
        let row = sqlx::query("SELECT id, name, created_at FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(User {
                id: UserId::from(column::<String>(&row, "id")?),
                name: column(&row, "name")?,
                created_at: column(&row, "created_at")?,
            })
        })
        .transpose()
    }
}
