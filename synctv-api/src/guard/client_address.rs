//! The client's address: the peer's, or, when the peer is a trusted proxy, the one its
//! `X-Forwarded-For` names. From anyone else the header is ignored, or any client could
//! pick the address its limits are counted against.

use crate::http::{ApiContext, ApiError};
use crate::ws::listener::Peer;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// `server.trusted_proxies`.
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self { networks }
    }

    pub fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.networks.iter().any(|net| net.contains(&addr))
    }

    /// The client behind `peer`. `X-Forwarded-For` lists the client first and each proxy's
    /// peer after it; read from the right, every address a trusted proxy added is
    /// believed, and the first one that is not a trusted proxy is the client. A value
    /// that does not parse ends the walk at the last address that could be believed.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            match parse_hop(hop) {
                Some(addr) => {
                    client = addr;
                    if !self.trusts(addr) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port, IPv6 maybe bracketed.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
        .map(canonical)
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:1.2.3.4`) is that IPv4 address.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The client address of a request, as [`TrustedProxies::client_of`] decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<ApiContext> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .map(|ConnectInfo(peer)| peer.addr.ip())
            .ok_or_else(|| ApiError::Internal("the peer address is unknown".into()))?;
        Ok(ClientAddress(
            ctx.guards.proxies.client_of(peer, &parts.headers),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, value.parse().unwrap());
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_is_ignored_from_untrusted_peers() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let headers = forwarded("203.0.113.9");
        assert_eq!(
            trusted.client_of(ip("192.0.2.1"), &headers),
            ip("192.0.2.1")
        );
        assert_eq!(
            proxies(&[]).client_of(ip("10.0.0.1"), &headers),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8::/32"]);
        let peer = ip("10.1.2.3");
        // A client-supplied first entry cannot override what the proxies appended.
        let headers = forwarded("1.1.1.1, 203.0.113.9, 10.0.0.7");
        assert_eq!(trusted.client_of(peer, &headers), ip("203.0.113.9"));
        assert_eq!(
            trusted.client_of(peer, &forwarded("[2001:db9::1]:443")),
            ip("2001:db9::1")
        );
        assert_eq!(
            trusted.client_of(peer, &forwarded("198.51.100.1:5000")),
            ip("198.51.100.1")
        );
        // Only proxies: the leftmost is the best we know.
        assert_eq!(
            trusted.client_of(peer, &forwarded("10.0.0.8, 10.0.0.9")),
            ip("10.0.0.8")
        );
        // Garbage stops the walk at the last believable hop.
        assert_eq!(
            trusted.client_of(peer, &forwarded("1.1.1.1, garbage, 10.0.0.9")),
            ip("10.0.0.9")
        );
        assert_eq!(trusted.client_of(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn mapped_ipv4_addresses_match_ipv4_networks() {
        let trusted = proxies(&["127.0.0.1/32"]);
        assert!(trusted.trusts(ip("::ffff:127.0.0.1")));
        assert!(!trusted.trusts(ip("::1")));
    }
}
