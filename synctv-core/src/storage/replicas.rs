//! Streaming replicas that serve reads, and how a read knows a replica is fresh enough.
//!
//! A replica may serve a read only if it has replayed every commit acknowledged before
//! the read began, on any node (acks of one node are reads of another). The **WAL
//! fence**: the primary's `pg_current_wal_lsn()`, asked at the start of the read (a round
//! trip that touches no table), is past the commit record of every transaction that
//! committed before; a replica whose `pg_last_wal_replay_lsn()` is at or past it has made
//! all of them visible. A per-node "last commit LSN" would be cheaper but would miss
//! what other nodes acked.
//!
//! The replica must also stream the primary's timeline: after a failover, a replica
//! still attached to the old primary may hold WAL the new primary never got (commits
//! that were never acked) at positions the new primary reuses.
//!
//! A replica that errs or does not answer in [`CHECK_TIMEOUT`] is skipped for
//! [`SKIP_FOR`]; one behind the fence is simply not chosen (the primary serves).

use super::hosts::redact;
use super::StorageError;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long a replica may take to report its WAL position.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a replica that failed is left alone.
const SKIP_FOR: Duration = Duration::from_secs(5);

pub(crate) struct ReplicaSet {
    replicas: Vec<Replica>,
    /// Round robin over the replicas.
    next: AtomicUsize,
}

struct Replica {
    label: String,
    pool: AnyPool,
    /// The highest replay LSN seen, and on which timeline (0: not streaming).
    replayed: AtomicU64,
    timeline: AtomicU64,
    skip_until: Mutex<Option<Instant>>,
}

/// One replica as `/ready` and the metrics report it.
pub struct ReplicaStatus {
    pub url: String,
    pub up: bool,
    pub lag_ms: Option<i64>,
}

/// A WAL position (`pg_lsn`), as the number Postgres prints as `X/Y`.
pub(crate) fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The timeline of a WAL file name (its first 8 hex digits).
fn timeline_of(walfile: &str) -> Option<u64> {
    u64::from_str_radix(walfile.get(..8)?, 16).ok()
}

/// Where the primary's WAL is now: what a fresh read must have replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fence {
    pub lsn: u64,
    pub timeline: u64,
}

/// The primary's WAL position now.
pub(crate) async fn current_fence(primary: &AnyPool) -> Result<Fence, StorageError> {
    let row = sqlx::query(
        "SELECT CAST(pg_current_wal_lsn() AS TEXT) AS lsn, \
         pg_walfile_name(pg_current_wal_lsn()) AS walfile",
    )
    .fetch_one(primary)
    .await?;
    let lsn: String = row.try_get("lsn")?;
    let walfile: String = row.try_get("walfile")?;
    match (parse_lsn(&lsn), timeline_of(&walfile)) {
        (Some(lsn), Some(timeline)) => Ok(Fence { lsn, timeline }),
        _ => Err(StorageError::Corrupt(format!(
            "WAL position {lsn} {walfile}"
        ))),
    }
}

impl ReplicaSet {
    pub fn new(urls: &[String], options: &AnyPoolOptions) -> Result<Self, StorageError> {
        let replicas = urls
            .iter()
            .map(|url| {
                Ok(Replica {
                    label: redact(url),
                    pool: options.clone().connect_lazy(url)?,
                    replayed: AtomicU64::new(0),
                    timeline: AtomicU64::new(0),
                    skip_until: Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Self {
            replicas,
            next: AtomicUsize::new(0),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// A replica that has replayed up to `fence` on its timeline, with its index for
    /// [`ReplicaSet::failed`]; `None` when there is none.
    pub async fn pick(&self, fence: Fence) -> Option<(usize, AnyPool)> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let i = (start + k) % n;
            let replica = &self.replicas[i];
            if replica.skipped() {
                continue;
            }
            if replica.has_replayed(fence) {
                return Some((i, replica.pool.clone()));
            }
            match replica.check().await {
                Ok(_) if replica.has_replayed(fence) => return Some((i, replica.pool.clone())),
                Ok(_) => {}
                Err(e) => self.failed(i, &e),
            }
        }
        None
    }

    /// Replica `i` failed a read: leave it alone for a while.
    pub fn failed(&self, i: usize, error: &StorageError) {
        let replica = &self.replicas[i];
        tracing::warn!(replica = %replica.label, %error, "replica skipped for {SKIP_FOR:?}");
        *lock(&replica.skip_until) = Some(Instant::now() + SKIP_FOR);
        metrics::gauge!("synctv_database_replica_up", "replica" => replica.label.clone()).set(0.0);
    }

    /// Asks every replica where it is (for `/ready`); also refreshes the lag metrics.
    pub async fn statuses(&self) -> Vec<ReplicaStatus> {
        let checks = self.replicas.iter().enumerate().map(|(i, r)| async move {
            match r.check().await {
                Ok(lag_ms) => ReplicaStatus {
                    url: r.label.clone(),
                    up: true,
                    lag_ms: Some(lag_ms),
                },
                Err(e) => {
                    self.failed(i, &e);
                    ReplicaStatus {
                        url: r.label.clone(),
                        up: false,
                        lag_ms: None,
                    }
                }
            }
        });
        futures_util::future::join_all(checks).await
    }

    pub async fn close(&self) {
        for replica in &self.replicas {
            replica.pool.close().await;
        }
    }
}

impl Replica {
    fn has_replayed(&self, fence: Fence) -> bool {
        self.timeline.load(Ordering::Acquire) == fence.timeline
            && self.replayed.load(Ordering::Acquire) >= fence.lsn
    }

    fn skipped(&self) -> bool {
        let mut until = lock(&self.skip_until);
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    /// Refreshes the replica's replay position and timeline (0 while its WAL receiver is
    /// not streaming); returns its lag behind the primary in milliseconds (0 when it has
    /// replayed all it received; a promoted replica reports its own position).
    async fn check(&self) -> Result<i64, StorageError> {
        let query = sqlx::query(
            "SELECT CAST(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
             ELSE pg_current_wal_lsn() END AS TEXT) AS lsn, \
             CAST((SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming') \
             AS BIGINT) AS streamed_timeline, \
             CASE WHEN pg_is_in_recovery() THEN NULL \
             ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile, \
             CAST(CASE WHEN NOT pg_is_in_recovery() \
             OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
             ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000, 0) \
             END AS BIGINT) AS lag_ms",
        )
        .fetch_one(&self.pool);
        let row = tokio::time::timeout(CHECK_TIMEOUT, query)
            .await
            .map_err(|_| StorageError::Timeout)??;
        let text: Option<String> = row.try_get("lsn")?;
        let streamed: Option<i64> = row.try_get("streamed_timeline")?;
        let walfile: Option<String> = row.try_get("walfile")?;
        let lag_ms: i64 = row.try_get("lag_ms")?;
        let replayed = text.as_deref().and_then(parse_lsn).unwrap_or(0);
        let timeline = match (streamed, walfile) {
            (Some(t), _) => u64::try_from(t).unwrap_or(0),
            (None, Some(file)) => timeline_of(&file).unwrap_or(0),
            (None, None) => 0,
        };
        // The timeline first: a reader that sees the new position also sees its timeline.
        self.timeline.store(timeline, Ordering::Release);
        self.replayed.store(replayed, Ordering::Release);
        let label = self.label.clone();
        metrics::gauge!("synctv_database_replica_up", "replica" => label.clone()).set(1.0);
        metrics::gauge!("synctv_database_replica_lag_seconds", "replica" => label)
            .set(lag_ms as f64 / 1000.0);
        Ok(lag_ms)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::{parse_lsn, timeline_of};

    #[test]
    fn timelines_come_from_wal_file_names() {
        assert_eq!(timeline_of("000000020000000000000003"), Some(2));
        assert_eq!(timeline_of("0000000A"), Some(10));
        assert_eq!(timeline_of("short"), None);
    }

    #[test]
    fn lsns_compare_as_postgres_orders_them() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert!(parse_lsn("1/0").unwrap() > parse_lsn("0/FFFFFFFF").unwrap());
        assert_eq!(parse_lsn("garbage"), None);
        assert_eq!(parse_lsn("1/xyz"), None);
    }
}
