//! The realtime half of the contract: `GET /ws`.
//!
//! - [`upgrade`]: token, admission and the upgrade itself.
//! - [`protocol`]: the messages, decoded into typed values or typed errors.
//! - [`session`]: the task that serves one connection; [`handlers`]: what it does with
//!   each client message.

#[cfg(test)]
mod any_json;
mod handlers;
mod protocol;
#[cfg(test)]
mod protocol_props;
mod session;
mod upgrade;

pub use protocol::MAX_CHAT_CHARS;
pub use upgrade::router;
