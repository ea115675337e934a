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
        let user_ref = &user;
        self.on_primary(|pool| async move {
            sqlx::query("INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(user_ref.id.as_str())
                .bind(&user_ref.name)
                .bind(user_ref.created_at)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await?;
        Ok(user)
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<User>, StorageError> {
        let row = self
            .on_primary(|pool| async move {
                Ok(
                    sqlx::query("SELECT id, name, created_at FROM users WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&pool)
                        .await?,
                )
            })
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
