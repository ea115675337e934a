//! Cluster mode end to end: real `synctv` processes on one Postgres database and a real
//! Redis (or a 3-master Redis Cluster), driven only through the public contract, with real
//! faults: `kill -9` of a node, Redis stopped and restarted, a node cut off from Redis.
//!
//! - `redis`: throwaway `redis-server`s and a Redis Cluster; `proxy`: a TCP proxy that
//!   can cut one node's link to Redis; `cluster`: `TestCluster`, n nodes and helpers in
//!   the contract's terms; `member`: a room member that checks seq order as it reads.
//! - The tests: `delivery`, `recovery`, `presence`, `faults`, `redis_cluster`.

// Shared with the single-node tests; not every helper is used here.
#[allow(dead_code)]
#[path = "../api/postgres.rs"]
mod postgres;
#[allow(dead_code)]
#[path = "../api/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../api/ws_client.rs"]
mod ws_client;

#[allow(dead_code)]
mod cluster;
#[allow(dead_code)]
mod member;
#[allow(dead_code)]
mod proxy;
#[allow(dead_code)]
mod redis;

mod delivery;
mod faults;
mod presence;
mod recovery;
mod redis_cluster;
mod task_lifecycle;
