//! synctv-cluster: how room events reach every member, on one node or many.
//!
//! A short tour:
//! - [`cluster_manager`]: [`ClusterManager`], the front door the API calls: submit or
//!   enqueue a room change, join ([`join`](ClusterManager::join), in `join.rs`) and
//!   leave, presence counts, the node list, shutdown.
//! - [`background`]: every task the node starts, on one tracker and one stop token;
//!   `ClusterManager::shutdown` stops and awaits them all (dropping the manager cancels).
//! - [`history_writer`]: the group commit; the database assigns each event its seq.
//!   [`fan_out`]: what happens to each committed event (encoded once, to the bus and
//!   the hub).
//! - [`delivery`]: `encode_event` and `Delivery::of`, the one way an event becomes a
//!   frame and a hub delivery, on every path.
//! - [`hub`]: [`RoomMessageHub`], the local fan-out, in seq order.
//! - [`outbox`]: [`Outbox`], a handle on a member's connection ([`MemberSink`]): frames
//!   are handed over and never waited for.
//! - [`connection_manager`]: [`ConnectionManager`], admission limits, and the cluster
//!   layer's [`Refusal`] labels; [`node_counters`]: this node's deliveries and refusals,
//!   which its heartbeat carries.
//! - [`presence`], [`presence_book`]: per-user presence, this node's and cluster-wide;
//!   [`rate_limit`]: the per-connection token bucket.
//! - [`bus`]: cluster mode: what nodes need from each other (events between nodes,
//!   presence across nodes, the node registry, outages), one interface over [`redis`]
//!   (the default) or [`nats`] (core NATS, for regions joined by gateways);
//!   [`node_registry`]: heartbeats and this node's [`NodeInfo`]; `membership`: the round
//!   run each heartbeat, with dead-node cleanup.
//! - [`catch_up`]: filling gaps from the durable history, and the reconciler;
//!   [`deduplicator`]: the LRU of `(room, seq)` pairs seen, which drops copies before
//!   they reach the hub.
//! - [`wait_timer`]: every node serving a room arms a timer for the end of each wait it
//!   starts; the sequencer lets the first one start the room.
//! - `moderation.rs`: `ClusterManager::kick` and the other moderation calls, and
//!   `ClusterManager::room_members` for `GET /members`; `drift_book.rs`: the latest drift
//!   report of each member here, shared through the database.
//! - [`error`]: the crate's error type, [`ClusterError`].
//!
//! This crate knows nothing of HTTP or WebSockets.

pub mod background;
pub mod bus;
pub mod catch_up;
pub mod cluster_manager;
pub mod connection_manager;
pub mod deduplicator;
pub mod delivery;
pub mod drift_book;
pub mod error;
pub mod fan_out;
pub mod history_writer;
pub mod hub;
mod join;
mod membership;
mod moderation;
pub mod nats;
pub mod node_counters;
pub mod node_registry;
pub mod outbox;
pub mod presence;
pub mod presence_book;
pub mod rate_limit;
pub mod redis;
pub mod wait_timer;

pub use background::BackgroundTasks;
pub use bus::{Bus, BusStatus};
pub use cluster_manager::{ClusterManager, Member};
pub use connection_manager::{ConnectionManager, ConnectionPermit, Refusal};
pub use error::ClusterError;
pub use history_writer::PendingCommit;
pub use hub::{ConnectionId, JoinView, RoomMessageHub};
pub use join::{JoinDetails, JoinError, JoinRequest, JoinedRoom, MemberRole};
pub use moderation::{MemberView, ModerationError};
pub use node_counters::NodeCounters;
pub use node_registry::NodeInfo;
pub use outbox::{MemberSink, Outbox};
pub use rate_limit::TokenBucket;
