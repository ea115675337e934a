//! A fleet: R rooms of M members, one guest user and one WebSocket per member, every
//! connection joined and driven by its own task. Connection `i` is member `i % M` of room
//! `i / M` and goes to node `(offset + i) % nodes`, so with several nodes every room spans
//! them. Shared by `fanout`, `max` and `idle`.

use crate::connection::{self, ConnError, Out, Target};
use crate::http::{Api, HttpError};
use crate::protocol::ClientMsg;
use crate::stats::Stats;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Connections per source address once spreading (one address has about 28k ephemeral
/// ports, some of which other programs or TIME_WAIT may hold).
const PER_SOURCE: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("setup over HTTP failed: {0}")]
    Http(#[from] HttpError),
}

#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub rooms: usize,
    pub room_size: usize,
    /// Names of users and rooms start with this, so runs never collide.
    pub prefix: String,
    pub concurrency: usize,
    /// Global index of this fleet's first connection and the run's total connections
    /// (they differ from 0 and `rooms * room_size` in idle worker processes).
    pub offset: usize,
    pub total: usize,
    /// Past this many connections in the run, spread source addresses (see `source_ip`).
    pub spread_above: usize,
}

pub struct Fleet {
    pub room_ids: Vec<String>,
    pub room_size: usize,
    /// The queue of each connection's task; `None` where connect or join failed.
    pub conns: Vec<Option<mpsc::Sender<Out>>>,
    tasks: Vec<JoinHandle<()>>,
    pub connected: usize,
    pub failed: usize,
    /// Wall time of the connect + join phase alone (tokens and rooms excluded).
    pub connect_secs: f64,
}

/// The source address for global connection `index` of `total` to a loopback `target`:
/// none (the kernel's choice) up to `spread_above` connections, else 127.0.0.2, .3, ...
/// in turn, one per started `PER_SOURCE` connections.
pub fn source_ip(
    index: usize,
    total: usize,
    spread_above: usize,
    target: &Target,
) -> Option<IpAddr> {
    if total <= spread_above || !target.addr.ip().is_loopback() || !target.addr.is_ipv4() {
        return None;
    }
    let sources = total.div_ceil(PER_SOURCE);
    let last = 2 + (index % sources) as u8;
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
}

/// Users and rooms made over HTTP, before any WebSocket is opened.
pub struct Prepared {
    spec: FleetSpec,
    tokens: Vec<String>,
    room_ids: Vec<String>,
}

/// Tokens for every member and the rooms (each owned by its first member).
pub async fn prepare(
    api: &Api,
    targets: &[Target],
    spec: &FleetSpec,
) -> Result<Prepared, FleetError> {
    let n = spec.rooms * spec.room_size;
    let base_of = |i: usize| targets[(spec.offset + i) % targets.len()].base.as_str();
    let http_concurrency = spec.concurrency.clamp(1, 64);

    let tokens: Vec<String> = stream::iter(0..n)
        .map(|i| {
            let name = format!("{}u{}", spec.prefix, spec.offset + i);
            async move { api.guest_token(base_of(i), &name).await }
        })
        .buffered(http_concurrency)
        .try_collect()
        .await?;

    let room_ids: Vec<String> = stream::iter(0..spec.rooms)
        .map(|r| {
            let owner = r * spec.room_size;
            let name = format!(
                "{}room{}",
                spec.prefix,
                spec.offset / spec.room_size.max(1) + r
            );
            let token = &tokens[owner];
            async move { api.create_room(base_of(owner), token, &name).await }
        })
        .buffered(http_concurrency)
        .try_collect()
        .await?;

    Ok(Prepared {
        spec: spec.clone(),
        tokens,
        room_ids,
    })
}

/// Connect and join every member, each connection driven by its own task from then on.
/// Failures are counted in `stats` as `connect_<code>`, not fatal.
pub async fn connect(prepared: Prepared, targets: &[Target], stats: &Arc<Stats>) -> Fleet {
    let Prepared {
        spec,
        tokens,
        room_ids,
    } = prepared;
    let n = tokens.len();
    let started = Instant::now();
    let mut conns: Vec<Option<mpsc::Sender<Out>>> = (0..n).map(|_| None).collect();
    let mut joined = stream::iter(0..n)
        .map(|i| {
            let target = &targets[(spec.offset + i) % targets.len()];
            let source = source_ip(spec.offset + i, spec.total, spec.spread_above, target);
            let room = &room_ids[i / spec.room_size];
            let token = &tokens[i];
            async move { (i, connect_and_join(target, token, source, room).await) }
        })
        .buffer_unordered(spec.concurrency.max(1));
    let (mut connected, mut failed) = (0, 0);
    let mut tasks = Vec::with_capacity(n);
    while let Some((i, result)) = joined.next().await {
        match result {
            Ok(ws) => {
                let (tx, rx) = mpsc::channel(16);
                let node = (spec.offset + i) % targets.len();
                tasks.push(tokio::spawn(connection::drive(ws, rx, stats.clone(), node)));
                conns[i] = Some(tx);
                connected += 1;
            }
            Err(e) => {
                if failed == 0 {
                    let node = &targets[(spec.offset + i) % targets.len()].base;
                    eprintln!("first connect/join failure (connection {i}, {node}): {e}");
                }
                stats.on_error(&format!("connect_{}", e.code()));
                failed += 1;
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    drop(joined);
    Fleet {
        room_ids,
        room_size: spec.room_size,
        conns,
        tasks,
        connected,
        failed,
        connect_secs,
    }
}

async fn connect_and_join(
    target: &Target,
    token: &str,
    source: Option<IpAddr>,
    room: &str,
) -> Result<connection::Ws, ConnError> {
    let mut ws = connection::connect(target, token, source).await?;
    connection::request(&mut ws, &ClientMsg::Join { id: 1, room }, 1, "joined").await?;
    Ok(ws)
}

impl Fleet {
    /// Close every connection gracefully (see `connection::close_gracefully`), waiting at
    /// most 10 s plus 1 s per thousand connections (a server answers thousands of leaves
    /// slower than one).
    pub async fn close(self) {
        for tx in self.conns.into_iter().flatten() {
            let _ = tx.try_send(Out::Close);
        }
        let limit = std::time::Duration::from_secs(10 + self.tasks.len() as u64 / 1000);
        let all = futures_util::future::join_all(self.tasks);
        let _ = tokio::time::timeout(limit, all).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ip: &str) -> Target {
        Target::for_test(ip.parse().unwrap())
    }

    #[test]
    fn no_spreading_below_the_threshold() {
        assert_eq!(source_ip(5, 1000, 28_000, &target("127.0.0.1:8080")), None);
    }

    #[test]
    fn spreading_round_robins_over_loopback_sources() {
        let t = target("127.0.0.1:8080");
        let total = 30_000; // three sources
        assert_eq!(
            source_ip(0, total, 28_000, &t),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(
            source_ip(1, total, 28_000, &t),
            Some("127.0.0.3".parse().unwrap())
        );
        assert_eq!(
            source_ip(3, total, 28_000, &t),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(source_ip(0, total, 28_000, &target("10.0.0.1:8080")), None);
        assert_eq!(
            source_ip(0, 100, 50, &t),
            Some("127.0.0.2".parse().unwrap())
        );
    }
}
