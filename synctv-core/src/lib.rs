//! synctv-core: the domain of synctv, free of any transport.
//!
//! A short tour:
//! - [`ids`]: the string identifiers of users, rooms and epochs; [`clock`]: the time
//!   in ms since the Unix epoch.
//! - [`playback`]: [`PlaybackState`] and the pure rules that change it.
//! - [`room`] and [`user`]: the records the HTTP API hands out; [`password`]: hashing a
//!   room's password at creation and verifying it at a join.
//! - [`event`]: a room's history entry, exactly as the wire contract shapes it.
//! - 1.1's rooms people run: [`moderation`] (roles, bans, mutes: who may do what to
//!   whom), [`queue`] (what plays next), [`waiting`] (waiters and the start decision),
//!   [`drift`] (a member's drift from a report), and [`sequencer`], which applies one
//!   change to a room's stored row inside its commit and yields the events it made.
//! - [`config`]: the one typed configuration, file plus `SYNCTV__SECTION__KEY` overlay.
//! - [`storage`]: sqlx over SQLite or Postgres, including the group-commit that assigns
//!   each room event its `seq` (the database is the sequencer).
//!
//! - [`webhook`]: what the operator's backend hears about rooms, derived from the history.
//!
//! This crate knows nothing of axum, WebSockets or Redis, and spawns no tokio tasks.

pub mod clock;
pub mod config;
pub mod drift;
pub mod event;
pub mod ids;
pub mod moderation;
pub mod password;
pub mod playback;
pub mod queue;
pub mod room;
pub mod sequencer;
pub mod storage;
pub mod user;
pub mod waiting;
pub mod webhook;

pub use config::Config;
pub use event::{Actor, Event, EventKind};
pub use ids::{Epoch, RoomId, UserId};
pub use playback::{Media, PlaybackAction, PlaybackCommand, PlaybackState};
pub use room::{Control, Room, RoomRecord};
pub use user::User;
