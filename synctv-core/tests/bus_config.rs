//! Choosing the bus between nodes: `SYNCTV__NATS__URL` (one URL or a JSON list) or
//! `SYNCTV__REDIS__URL`, never both; and `SYNCTV__CLUSTER__REGION`.

use synctv_core::config::NatsUrls;
use synctv_core::Config;

const SECRET: (&str, &str) = ("SYNCTV__AUTH__JWT_SECRET", "a-secret-of-sixteen-bytes");

#[test]
fn one_nats_url_or_a_list_selects_nats() {
    let one = Config::from_pairs([SECRET, ("SYNCTV__NATS__URL", "nats://127.0.0.1:4222")]).unwrap();
    assert_eq!(
        one.nats.url.as_ref().map(NatsUrls::list),
        Some(vec!["nats://127.0.0.1:4222".to_owned()])
    );
    assert!(one.cluster_mode());
    let list = Config::from_pairs([
        SECRET,
        (
            "SYNCTV__NATS__URL",
            r#"["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]"#,
        ),
    ])
    .unwrap();
    assert_eq!(
        list.nats.url.as_ref().map(NatsUrls::list),
        Some(vec![
            "nats://10.0.0.1:4222".to_owned(),
            "nats://10.0.0.2:4222".to_owned()
        ])
    );
}

#[test]
fn redis_and_nats_together_is_an_error_naming_both() {
    let err = Config::from_pairs([
        SECRET,
        ("SYNCTV__REDIS__URL", "redis://127.0.0.1:6379"),
        ("SYNCTV__NATS__URL", "nats://127.0.0.1:4222"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("SYNCTV__REDIS__URL") && err.contains("SYNCTV__NATS__URL"),
        "{err}"
    );
}

#[test]
fn a_nats_url_needs_the_shared_secret_and_its_scheme() {
    let err = Config::from_pairs([("SYNCTV__NATS__URL", "nats://127.0.0.1:4222")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth.jwt_secret"), "{err}");
    let err = Config::from_pairs([SECRET, ("SYNCTV__NATS__URL", "http://127.0.0.1:4222")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nats.url"), "{err}");
}

#[test]
fn the_region_defaults_to_default() {
    assert_eq!(Config::default().cluster.region, "default");
    let config = Config::from_pairs([("SYNCTV__CLUSTER__REGION", "eu-west")]).unwrap();
    assert_eq!(config.cluster.region, "eu-west");
    assert!(Config::from_pairs([("SYNCTV__CLUSTER__REGION", " ")]).is_err());
}
