//! Storage through sqlx, over SQLite (the embedded default) or Postgres, chosen by URL.
//!
//! Both backends run the same portable SQL through `sqlx::AnyPool` (`$N` placeholders,
//! integers for booleans), so every endpoint behaves the same on each. Each concern has
//! its file: [`users`], [`rooms`], [`history`] (reading the log), [`commit`] (the group
//! commit that appends to it and assigns `seq`), [`settings`], [`credentials`] (WebSocket
//! tickets and token revocations). [`sqlite_file`] reads a configured `sqlite:` URL the
//! way the embedded default is read.

mod commit;
mod credentials;
mod history;
mod rooms;
mod settings;
mod sqlite_file;
mod users;

pub use commit::{ChangeOutcome, CommittedChange, Rejection, RoomChange, RoomChangeKind};
pub use credentials::{Revocation, TicketGrant};
pub use history::EventPage;
pub use rooms::{NewRoom, RoomCursor, RoomPage};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;

/// Where the embedded SQLite file lives when no URL is configured.
pub const DEFAULT_SQLITE_PATH: &str = "data/synctv.db";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the SQLite database {file}: its directory {dir} does not exist")]
    NoSqliteDir { file: String, dir: String },
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// Whether the database could not be reached (as opposed to refusing a statement).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StorageError::Database(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
            )
        )
    }
}

/// The database handle: a pool and which backend it speaks to. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

impl Database {
    /// Connects to `url`, or to the embedded SQLite file when `url` is `None` (creating
    /// `./data/` and the file on first start, WAL mode).
    pub async fn connect(
        url: Option<&str>,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StorageError> {
        sqlx::any::install_default_drivers();
        let url = match url {
            Some(url) if url.starts_with("sqlite:") => sqlite_file::prepare_url(url)?,
            Some(url) => url.to_owned(),
            None => {
                let dir = Path::new(DEFAULT_SQLITE_PATH)
                    .parent()
                    .unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir).map_err(|source| StorageError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
                format!("sqlite://{DEFAULT_SQLITE_PATH}?mode=rwc")
            }
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout);
        let pool = match backend {
            Backend::Sqlite => {
                // WAL lets readers proceed beside the one writer; FULL syncs the WAL on each
                // commit, which group commit amortizes over many events.
                options
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => options.connect(&url).await?,
        };
        Ok(Self { pool, backend })
    }

    /// Runs the pending migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that read first could not upgrade after another
    /// connection committed (`SQLITE_BUSY_SNAPSHOT`, which the busy timeout does not
    /// retry), while an immediate one just waits its turn.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StorageError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite serializes writers anyway.
    pub(crate) fn lock_clause(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// Reads a column, turning a type mismatch into [`StorageError::Corrupt`].
pub(crate) fn column<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StorageError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name)
        .map_err(|e| StorageError::Corrupt(format!("column {name}: {e}")))
}
