//! The Origin rule. A browser names the page that makes a request in `Origin`; a
//! WebSocket upgrade, and any POST, PUT, PATCH or DELETE, that carries one is refused
//! (403 `forbidden`) unless it is the server's own origin, one of `server.public_urls`,
//! or one of `server.allowed_origins` (`["*"]` allows every origin). Requests without
//! `Origin` come from programs, not browsers, and pass: the rule protects users'
//! browsers from other sites, not the server from its clients.
//!
//! The same origins may also read the HTTP API across origins (CORS): the page served by
//! one node of a cluster asks another node for a WebSocket ticket when it connects there,
//! which matters most when its own node is the one that died.

use super::client_address::TrustedProxies;
use super::Guards;
use crate::http::ApiError;
use crate::ws::listener::Peer;
use axum::extract::ConnectInfo;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN, UPGRADE};
use axum::http::{HeaderMap, Method};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use synctv_core::config::ServerConfig;
use tower_http::cors::{AllowOrigin, CorsLayer};

const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

pub struct OriginPolicy {
    any: bool,
    /// Normalized origins (`scheme://host[:port]`, lower case, default port dropped).
    allowed: HashSet<String>,
}

impl OriginPolicy {
    pub fn from_config(server: &ServerConfig) -> Self {
        let any = server.allowed_origins.iter().any(|o| o.trim() == "*");
        let allowed = server
            .public_urls
            .iter()
            .chain(&server.allowed_origins)
            .filter_map(|url| normalize(url))
            .collect();
        Self { any, allowed }
    }

    /// Whether the rule applies to this request at all.
    pub fn applies_to(method: &Method, path: &str, headers: &HeaderMap) -> bool {
        let upgrade = headers
            .get(UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        upgrade
            || path == "/ws"
            || matches!(
                *method,
                Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            )
    }

    /// Refuses a request whose `Origin` is not allowed. `peer` is the direct peer: only a
    /// trusted proxy may say, with `X-Forwarded-Proto`, which scheme the client used.
    pub fn check(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        proxies: &TrustedProxies,
    ) -> Result<(), ApiError> {
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(());
        };
        if self.any {
            return Ok(());
        }
        let origin = origin.to_str().ok().and_then(normalize);
        let allowed = origin.as_deref().is_some_and(|origin| {
            self.allowed.contains(origin) || is_own(origin, headers, peer, proxies)
        });
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this origin may not use this server: see server.allowed_origins".into(),
            ))
        }
    }
}

/// The CORS layer: allowed origins (as [`OriginPolicy::check`] decides) may call the API
/// with a bearer token from a page of another origin.
pub fn cors(guards: Arc<Guards>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            let mut headers = parts.headers.clone();
            headers.insert(ORIGIN, origin.clone());
            let peer = parts
                .extensions
                .get::<ConnectInfo<Peer>>()
                .map(|ConnectInfo(peer)| peer.addr.ip());
            guards
                .origins
                .check(&headers, peer, &guards.proxies)
                .is_ok()
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .max_age(Duration::from_secs(600))
}

/// Whether `origin` is the scheme, host and port this request was made to. The scheme is
/// the one a trusted proxy names in `X-Forwarded-Proto`; without one, either `http` (the
/// server listens in plain text) or `https` (a proxy in front terminates TLS): a browser
/// sends `Origin: https://host` only from a page that host served.
fn is_own(
    origin: &str,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    proxies: &TrustedProxies,
) -> bool {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let forwarded_proto = peer
        .filter(|peer| proxies.trusts(*peer))
        .and_then(|_| headers.get(X_FORWARDED_PROTO))
        .and_then(|p| p.to_str().ok())
        .and_then(|p| p.split(',').next())
        .map(|p| p.trim().to_ascii_lowercase());
    let schemes: &[&str] = match forwarded_proto.as_deref() {
        Some("https") => &["https"],
        Some("http") => &["http"],
        _ => &["http", "https"],
    };
    schemes
        .iter()
        .any(|scheme| normalize(&format!("{scheme}://{host}")).is_some_and(|own| own == origin))
}

/// `scheme://host[:port]` of a URL or origin, lower case, without a default port, path,
/// or trailing slash; `None` for anything that is not an http(s) origin (`null` included).
fn normalize(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(public: &[&str], allowed: &[&str]) -> OriginPolicy {
        OriginPolicy::from_config(&ServerConfig {
            public_urls: public.iter().map(|s| s.to_string()).collect(),
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        })
    }

    fn request(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    fn allows(policy: &OriginPolicy, origin: Option<&str>, host: &str) -> bool {
        let none = TrustedProxies::new(Vec::new());
        policy.check(&request(origin, host), None, &none).is_ok()
    }

    #[test]
    fn own_origin_public_urls_and_allowed_origins_pass() {
        let p = policy(&["https://b.example/"], &["https://app.example"]);
        assert!(allows(&p, None, "a.example"));
        assert!(allows(&p, Some("http://a.example:8080"), "a.example:8080"));
        assert!(allows(&p, Some("https://a.example"), "a.example:443"));
        assert!(allows(&p, Some("HTTPS://B.example"), "a.example"));
        assert!(allows(&p, Some("https://app.example"), "a.example"));
        for evil in [
            "https://evil.example",
            "http://a.example:8081",
            "null",
            "https://app.example.evil.example",
            "file://",
        ] {
            assert!(!allows(&p, Some(evil), "a.example:8080"), "{evil}");
        }
    }

    #[test]
    fn a_star_allows_every_origin() {
        let p = policy(&[], &["*"]);
        assert!(allows(&p, Some("https://anyone.example"), "a.example"));
        assert!(allows(&p, Some("null"), "a.example"));
    }

    #[test]
    fn only_a_trusted_proxy_names_the_scheme() {
        let p = policy(&[], &[]);
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let mut headers = request(Some("http://a.example"), "a.example");
        headers.insert(X_FORWARDED_PROTO, "https".parse().unwrap());
        let proxy = Some("10.0.0.1".parse().unwrap());
        let stranger = Some("192.0.2.1".parse().unwrap());
        assert!(p.check(&headers, proxy, &proxies).is_err());
        assert!(p.check(&headers, stranger, &proxies).is_ok());
    }

    #[test]
    fn the_rule_covers_upgrades_and_writes_only() {
        let none = HeaderMap::new();
        assert!(OriginPolicy::applies_to(&Method::GET, "/ws", &none));
        assert!(OriginPolicy::applies_to(&Method::POST, "/x", &none));
        assert!(OriginPolicy::applies_to(&Method::DELETE, "/x", &none));
        assert!(!OriginPolicy::applies_to(
            &Method::GET,
            "/api/v1/rooms",
            &none
        ));
        let mut upgrade = HeaderMap::new();
        upgrade.insert(UPGRADE, "websocket".parse().unwrap());
        assert!(OriginPolicy::applies_to(
            &Method::GET,
            "/elsewhere",
            &upgrade
        ));
    }
}
