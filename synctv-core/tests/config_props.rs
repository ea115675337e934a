//! Property test of the configuration overlay: any `SYNCTV__…` variables, with any
//! values, give a configuration or a `ConfigError` naming the problem, never a panic.

use proptest::prelude::*;
use synctv_core::Config;

const KEYS: [&str; 14] = [
    "SYNCTV__SERVER__PORT",
    "SYNCTV__SERVER__HOST",
    "SYNCTV__SERVER__PUBLIC_URLS",
    "SYNCTV__SERVER__ALLOWED_ORIGINS",
    "SYNCTV__SERVER__TRUSTED_PROXIES",
    "SYNCTV__DATABASE__URL",
    "SYNCTV__REDIS__URL",
    "SYNCTV__AUTH__JWT_SECRET",
    "SYNCTV__LIMITS__PER_USER",
    "SYNCTV__LIMITS__GUESTS_PER_MINUTE",
    "SYNCTV__LIMITS__ROOMS_PER_MINUTE",
    "SYNCTV__HISTORY__MAX_BATCH",
    "SYNCTV__LOG__FORMAT",
    "SYNCTV__NO__SUCH_KEY",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        any::<i64>().prop_map(|n| n.to_string()),
        Just("[\"10.0.0.0/8\", \"::1\"]".to_owned()),
        Just("[\"300.1.1.1/8\"]".to_owned()),
        Just("[\"*\"]".to_owned()),
        "\\[\"[ -~]{0,20}\"\\]",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_overlay_loads_or_is_refused(pairs in prop::collection::vec((prop::sample::select(KEYS.to_vec()), value()), 0..6)) {
        let result = Config::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        if let Err(e) = result {
            prop_assert!(e.to_string().starts_with("invalid configuration"));
        }
    }

    /// A trusted proxy that is not an address or CIDR is refused at load, naming the key.
    #[test]
    fn bad_trusted_proxies_are_refused(proxy in "[a-z .:/]{1,20}") {
        let value = serde_json::json!([proxy]).to_string();
        let result = Config::from_pairs([("SYNCTV__SERVER__TRUSTED_PROXIES", value.as_str())]);
        let parses = proxy.trim().parse::<std::net::IpAddr>().is_ok()
            || proxy.trim().parse::<ipnet::IpNet>().is_ok();
        prop_assert_eq!(result.is_ok(), parses);
        if let Err(e) = result {
            prop_assert!(e.to_string().contains("server.trusted_proxies"), "{}", e);
        }
    }
}
