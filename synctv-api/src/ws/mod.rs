//! The realtime half of the contract: `GET /ws`.
//!
//! - [`upgrade`]: token, admission and the upgrade itself; [`handshake`]: the RFC 6455
//!   opening handshake; [`listener`]: the server's listener, whose sockets stay reachable
//!   after an upgrade.
//! - [`protocol`]: the messages, decoded into typed values or typed errors.
//! - [`session`]: the task that serves one connection; [`handlers`]: what it does with
//!   each client message.
//! - [`writer`]: a connection's write side: frames straight into the socket from any
//!   thread, queued only when the socket is full; [`socket`]: a session's WebSocket
//!   (reads through tungstenite, writes through the writer).

#[cfg(test)]
mod any_json;
mod handlers;
mod handshake;
pub mod listener;
mod protocol;
#[cfg(test)]
mod protocol_props;
mod session;
mod socket;
mod upgrade;
mod writer;

pub use protocol::MAX_CHAT_CHARS;
pub use upgrade::router;
