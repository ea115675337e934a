//! synctv-cluster: how room events reach every member, on one node or many.
//!
//! A short tour:
//! - [`ClusterManager`]: the facade the API calls: submit a room change, join and leave.
//! - [`background`]: every task the node starts, on one tracker and one stop token;
//!   `ClusterManager::shutdown` stops and awaits them all (dropping the manager cancels).
//! - [`history_writer`]: the group commit; the database assigns each event its seq.
//! - [`RoomMessageHub`]: the local fan-out, in seq order, encoded once per event.
//! - [`Outbox`]: a connection's bounded outbound queue; overflow means `reconnect`.
//! - [`ConnectionManager`]: admission limits and the refusal counters.
//! - [`presence`], [`rate_limit`]: per-user presence and the per-connection token bucket.
//! - [`bus`]: cluster mode: what nodes need from each other (events between nodes,
//!   presence across nodes, the node registry, outages), one interface over [`redis`]
//!   (the default) or [`nats`] (core NATS, for regions joined by gateways);
//!   [`node_registry`]: heartbeats and dead-node cleanup; [`catch_up`]: filling gaps from
//!   the durable history; [`deduplicator`]: the LRU of recently seen events.
//!
//! This crate knows nothing of HTTP or WebSockets.

pub mod background;
pub mod bus;
pub mod catch_up;
pub mod cluster_manager;
pub mod connection_manager;
pub mod deduplicator;
pub mod delivery;
pub mod error;
pub mod fan_out;
pub mod history_writer;
pub mod hub;
mod join;
mod membership;
pub mod nats;
pub mod node_registry;
pub mod outbox;
pub mod presence;
pub mod presence_book;
pub mod rate_limit;
pub mod redis;

pub use background::BackgroundTasks;
pub use bus::{Bus, BusStatus};
pub use cluster_manager::{ClusterManager, Member};
pub use connection_manager::{ConnectionManager, ConnectionPermit, Refusal};
pub use error::ClusterError;
pub use history_writer::PendingCommit;
pub use hub::{ConnectionId, JoinView, RoomMessageHub};
pub use join::{JoinError, JoinRequest, JoinedRoom};
pub use node_registry::NodeInfo;
pub use outbox::{Outbound, Outbox, OutboxReceiver};
pub use rate_limit::TokenBucket;
