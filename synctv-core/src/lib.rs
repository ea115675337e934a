//! synctv-core: the domain of synctv, free of any transport.
//!
//! A short tour:
//! - [`ids`]: the string identifiers of users, rooms and epochs; [`clock`]: the time
//!   in ms since the Unix epoch.
//! - [`playback`]: [`PlaybackState`] and the pure rules that change it.
//! - [`room`] and [`user`]: the records the HTTP API hands out; [`password`]: hashing a
//!   room's password at creation and verifying it at a join.
//! - [`event`]: a room's history entry, exactly as the wire contract shapes it.
//! - [`config`]: the one typed configuration, file plus `SYNCTV__SECTION__KEY` overlay.
//! - [`storage`]: sqlx over SQLite or Postgres, including the group-commit that assigns
//!   each room event its `seq` (the database is the sequencer).
//!
//! - [`webhook`]: what the operator's backend hears about rooms, derived from the history.
//!
//! This crate knows nothing of axum, WebSockets or Redis, and spawns no tokio tasks.

pub mod clock;
pub mod config;
pub mod event;
pub mod ids;
pub mod password;
pub mod playback;
pub mod room;
pub mod storage;
pub mod user;
pub mod webhook;

pub use config::Config;
pub use event::{Actor, Event, EventKind};
pub use ids::{Epoch, RoomId, UserId};
pub use playback::{Media, PlaybackAction, PlaybackCommand, PlaybackState};
pub use room::{Control, Room, RoomRecord};
pub use user::User;
