use axum::http::HeaderMap;
use proptest::prelude::*;
use std::net::IpAddr;
use synctv_api::guard::{OriginPolicy, TrustedProxies};
use synctv_core::config::ServerConfig;

const CASES: u32 = 1000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Whatever `X-Forwarded-For` says, an untrusted peer is its own client address.
    #[test]
    fn forwarded_for_from_strangers_is_ignored(value in "[ -~]{0,120}", peer in any::<[u8; 4]>()) {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer = IpAddr::from(peer);
        let mut headers = HeaderMap::new();
        if let Ok(value) = value.parse() {
            headers.insert("x-forwarded-for", value);
        }
        let client = proxies.client_of(peer, &headers);
        if !proxies.trusts(peer) {
            prop_assert_eq!(client, peer);
        }
    }

    /// The client behind a trusted proxy is one of the addresses it was told, or the peer.
    #[test]
    fn forwarded_for_from_a_proxy_names_a_listed_address(hops in prop::collection::vec(any::<[u8; 4]>(), 0..5)) {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let hops: Vec<IpAddr> = hops.into_iter().map(IpAddr::from).collect();
        let mut headers = HeaderMap::new();
        let listed = hops.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ");
        headers.insert("x-forwarded-for", listed.parse().unwrap());
        let client = proxies.client_of(peer, &headers);
        prop_assert!(client == peer || hops.contains(&client));
        if let Some(last_untrusted) = hops.iter().rev().find(|h| !proxies.trusts(**h)) {
            prop_assert_eq!(client, *last_untrusted);
        }
    }

    /// Any `Origin` and `Host` pair is decided without panicking, and a foreign origin is
    /// refused unless configured.
    #[test]
    fn origins_are_decided(origin in "[ -~]{0,60}", host in "[a-z0-9.:]{1,30}") {
        let policy = OriginPolicy::from_config(&ServerConfig::default());
        let proxies = TrustedProxies::new(Vec::new());
        let mut headers = HeaderMap::new();
        let (Ok(origin_value), Ok(host_value)) = (origin.parse(), host.parse()) else {
            return Ok(());
        };
        headers.insert("origin", origin_value);
        headers.insert("host", host_value);
        let allowed = policy.check(&headers, None, &proxies).is_ok();
        let name = host.split(':').next().unwrap_or_default();
        if allowed {
            prop_assert!(origin.to_ascii_lowercase().contains(name), "{} allowed on {}", origin, host);
        }
    }
}
