//! Cluster mode end to end: real `synctv` processes on one Postgres database and a real
//! bus between them, Redis (or a 3-master Redis Cluster) or NATS (or two regions' NATS
//! joined by gateways), driven only through the public contract, with real faults:
//! `kill -9` of a node or a region, the bus stopped and restarted, a node cut off from it.
//!
//! - `redis`: throwaway `redis-server`s and a Redis Cluster; `nats`: throwaway
//!   `nats-server`s, and two regions joined by gateways over an 80 ms round trip;
//!   `server_process`: the child process of either, killed, paused and resumed;
//!   `proxy`: a TCP proxy that can cut a link or delay it; `cluster`: `TestCluster`, n
//!   nodes on a `TestBus`, and helpers in the contract's terms; `member`: a room member
//!   that checks seq order as it reads.
//! - The tests, each on Redis and on NATS: `delivery`, `recovery`, `presence`, `faults`;
//!   and `redis_cluster`, `regions` (two regions over NATS).

// Shared with the single-node tests (`tests/api`).
#[path = "../api/postgres.rs"]
mod postgres;
#[path = "../api/process.rs"]
mod process;
#[path = "../api/wait.rs"]
mod wait;
#[path = "../api/webhook_receiver.rs"]
mod webhook_receiver;
#[path = "../api/ws_client.rs"]
mod ws_client;

mod cluster;
mod member;
mod nats;
mod proxy;
mod redis;
mod server_process;

mod delivery;
mod faults;
mod presence;
mod recovery;
mod redis_cluster;
mod regions;
mod rooms;
mod server_api;
mod task_lifecycle;
mod webhooks;
