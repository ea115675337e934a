//! What keeps a public server safe by default (contract 1.1, "Connecting safely"): the
//! Origin rule, per-address limits, the client address behind trusted proxies, and
//! secrets kept out of logged URLs.
//!
//! - [`origin`]: which browser origins may open a WebSocket or POST and DELETE.
//! - [`client_address`]: the client's address, believing `X-Forwarded-For` only from
//!   `server.trusted_proxies`.
//! - [`address_limit`]: per-address token buckets for guest and room creation.
//! - [`redact`]: `?token=` and `?ticket=` removed from URLs before they are logged.
//! - [`headers`]: the security headers of every response, and the page's
//!   Content-Security-Policy.

pub mod address_limit;
pub mod client_address;
pub mod headers;
pub mod origin;
pub mod redact;

pub use address_limit::AddressLimiter;
pub use client_address::{ClientAddress, TrustedProxies};
pub use origin::OriginPolicy;

use synctv_core::Config;

/// The guards of one server, built once from the configuration.
pub struct Guards {
    pub origins: OriginPolicy,
    pub proxies: TrustedProxies,
    /// `POST /api/v1/auth/guest` per client address.
    pub guests: AddressLimiter,
    /// `POST /api/v1/rooms` per client address.
    pub rooms: AddressLimiter,
}

impl Guards {
    pub fn from_config(config: &Config) -> Self {
        Self {
            origins: OriginPolicy::from_config(&config.server),
            proxies: TrustedProxies::new(config.trusted_proxy_networks()),
            guests: AddressLimiter::per_minute(config.limits.guests_per_minute),
            rooms: AddressLimiter::per_minute(config.limits.rooms_per_minute),
        }
    }
}
