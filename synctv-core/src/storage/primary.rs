//! The link to the writable database: one pool per host the URL names, and which of them
//! is the primary now.
//!
//! Nothing here runs in the background. The primary is found when it is first needed
//! (every host asked at once: `pg_is_in_recovery()` false and `transaction_read_only`
//! off; the first to say so wins, so a host that does not answer delays nothing), used
//! until an error says it is gone or read-only (connection lost, 25006,
//! an administrator or crash shutdown), and then found again by the next writer, which
//! waits up to [`FAILOVER_WAIT`] for a host to become writable (a standby being promoted)
//! before answering `unavailable`. A host that failed gets a fresh pool, so connections
//! stuck on a dead socket are never handed out again.

use super::hosts::redact;
use super::StorageError;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long one host may take to say whether it is writable.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a write waits for some host to become writable before it fails.
pub const FAILOVER_WAIT: Duration = Duration::from_secs(5);
/// Between two rounds of asking every host, while none is writable.
const PROBE_EVERY: Duration = Duration::from_millis(200);

pub(crate) struct PrimaryLink {
    hosts: Vec<Host>,
    /// The index of the writable host, while it is believed writable.
    current: Mutex<Option<usize>>,
    /// One search at a time; the others wait for its answer.
    searching: tokio::sync::Mutex<()>,
    /// SQLite (one file, always writable) is never searched for.
    fixed: bool,
}

struct Host {
    url: String,
    label: String,
    options: AnyPoolOptions,
    pool: Mutex<AnyPool>,
}

impl Host {
    fn pool(&self) -> AnyPool {
        lock(&self.pool).clone()
    }
}

/// What the link says about itself, for `/ready`.
pub struct PrimaryStatus {
    /// The writable host without its password, or every host when none is writable.
    pub url: String,
    pub up: bool,
}

impl PrimaryLink {
    /// A link over one pool that is always the primary (SQLite, or a pool already open).
    pub fn fixed(url: &str, pool: AnyPool, options: AnyPoolOptions) -> Self {
        Self {
            hosts: vec![Host {
                url: url.to_owned(),
                label: redact(url),
                options,
                pool: Mutex::new(pool),
            }],
            current: Mutex::new(Some(0)),
            searching: tokio::sync::Mutex::new(()),
            fixed: true,
        }
    }

    /// A link over Postgres hosts; pools connect lazily, so a host that is down at start
    /// does not keep the node from starting.
    pub fn postgres(urls: &[String], options: AnyPoolOptions) -> Result<Self, StorageError> {
        let hosts = urls
            .iter()
            .map(|url| {
                Ok(Host {
                    url: url.clone(),
                    label: redact(url),
                    pool: Mutex::new(options.clone().connect_lazy(url)?),
                    options: options.clone(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Self {
            hosts,
            current: Mutex::new(None),
            searching: tokio::sync::Mutex::new(()),
            fixed: false,
        })
    }

    /// The writable pool, waiting up to `wait` for one.
    pub async fn writer(&self, wait: Duration) -> Result<AnyPool, StorageError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(i) = *lock(&self.current) {
                return Ok(self.hosts[i].pool());
            }
            {
                let _one_search = self.searching.lock().await;
                if let Some(i) = *lock(&self.current) {
                    return Ok(self.hosts[i].pool());
                }
                if let Some(i) = self.search(deadline).await {
                    *lock(&self.current) = Some(i);
                    return Ok(self.hosts[i].pool());
                }
            }
            if Instant::now() + PROBE_EVERY > deadline {
                return Err(StorageError::NoWritableHost(self.all_labels()));
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    /// Forgets the primary when `error` says it is gone or no longer writable; the next
    /// writer searches again.
    pub fn observe(&self, error: &StorageError) {
        if self.fixed || !error.means_host_lost() {
            return;
        }
        let mut current = lock(&self.current);
        let Some(i) = current.take() else { return };
        drop(current);
        let host = &self.hosts[i];
        tracing::warn!(host = %host.label, %error, "the primary is gone or read-only; searching for the writable host");
        metrics::counter!("synctv_database_primary_lost_total").increment(1);
        match host.options.clone().connect_lazy(&host.url) {
            Ok(fresh) => *lock(&host.pool) = fresh,
            Err(e) => tracing::warn!(host = %host.label, error = %e, "cannot renew the pool"),
        }
    }

    pub fn status(&self, up: bool) -> PrimaryStatus {
        let url = match *lock(&self.current) {
            Some(i) => self.hosts[i].label.clone(),
            None => self.all_labels(),
        };
        PrimaryStatus { url, up }
    }

    pub async fn close(&self) {
        for host in &self.hosts {
            host.pool().close().await;
        }
    }

    fn all_labels(&self) -> String {
        let labels: Vec<&str> = self.hosts.iter().map(|h| h.label.as_str()).collect();
        labels.join(", ")
    }

    /// Asks every host at once, each on a connection of its own (a pool would retry a
    /// refused connection until its acquire timeout); the first to say it is writable.
    /// Gives up at `deadline` (or after [`PROBE_TIMEOUT`]), so a writer never waits for a
    /// silent host past its own bound.
    async fn search(&self, deadline: Instant) -> Option<usize> {
        let give_up = deadline
            .max(Instant::now())
            .min(Instant::now() + PROBE_TIMEOUT);
        use futures_util::StreamExt;
        let mut answers: futures_util::stream::FuturesUnordered<_> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, host)| async move {
                match tokio::time::timeout_at(give_up, is_writable(&host.url)).await {
                    Ok(Ok(writable)) => writable.then_some(i),
                    Ok(Err(e)) => {
                        tracing::debug!(host = %host.label, error = %e, "host not reachable");
                        None
                    }
                    Err(_) => None,
                }
            })
            .collect();
        let mut found = None;
        while let Some(answer) = answers.next().await {
            if answer.is_some() {
                found = answer;
                break;
            }
        }
        if let Some(i) = found {
            tracing::info!(host = %self.hosts[i].label, "committing to this host");
            metrics::counter!("synctv_database_primary_found_total").increment(1);
        }
        found
    }
}

async fn is_writable(url: &str) -> Result<bool, sqlx::Error> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let row = sqlx::query(
        "SELECT CAST(pg_is_in_recovery() AS INTEGER) AS recovery, \
         current_setting('transaction_read_only') AS read_only",
    )
    .fetch_one(&mut conn)
    .await?;
    let recovery: i32 = row.try_get("recovery")?;
    let read_only: String = row.try_get("read_only")?;
    let _ = conn.close().await;
    Ok(recovery == 0 && read_only == "off")
}

/// A poisoned lock only means a panic elsewhere; the value (an index or a pool) is intact.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
