//! Database failover drills: real Postgres servers that replicate (a primary, a
//! synchronous standby, an asynchronous replica, a WAL archive), real `synctv` nodes in
//! cluster mode, members chatting and seeking, and real faults: `kill -9` of the primary
//! and promotion of the standby, a replica killed and restarted, the primary's network
//! cut, and a restore from a base backup plus the WAL archive. Each test checks the
//! history (every acked event present once, no gap) and prints what it measured
//! (`scripts/dr-drill` runs them with the output shown).
//!
//! - `pg_node`: the Postgres servers and their faults; `nodes`: `synctv` nodes on a
//!   given database and the contract's HTTP calls; `durable`: the history as a server
//!   holds it, read with SQL.
//! - The drills: `failover`, `replicas`, `partition`, `restore`.

// Shared with the other test binaries; not every helper is used here.
#[allow(dead_code)]
#[path = "../cluster/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../cluster/member.rs"]
mod member;
#[allow(dead_code)]
#[path = "../cluster/nats.rs"]
mod nats;
#[allow(dead_code)]
#[path = "../api/postgres.rs"]
mod postgres;
#[allow(dead_code)]
#[path = "../api/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../cluster/proxy.rs"]
mod proxy;
#[allow(dead_code)]
#[path = "../cluster/redis.rs"]
mod redis;
#[allow(dead_code)]
#[path = "../cluster/server_process.rs"]
mod server_process;
#[path = "../api/wait.rs"]
mod wait;
#[allow(dead_code)]
#[path = "../api/ws_client.rs"]
mod ws_client;

#[allow(dead_code)]
mod durable;
#[allow(dead_code)]
mod nodes;
#[allow(dead_code)]
mod pg_node;

mod failover;
mod partition;
mod replicas;
mod restore;
