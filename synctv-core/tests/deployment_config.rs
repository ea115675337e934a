//! The deployment files (Dockerfile, compose files, k8s/) hand the server `SYNCTV__*`
//! settings. A misspelled or invalid one would stop a node at start, in production, so
//! each file's settings are loaded here exactly as a container would see them: the
//! Dockerfile's ENV lines under the compose or Kubernetes environment, through
//! `Config::from_pairs`, which parses them as the environment overlay does.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;
use synctv_core::Config;

/// One container's environment: `SYNCTV__*` name to value.
type Env = BTreeMap<String, String>;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn read(relative: &str) -> String {
    fs::read_to_string(repo_file(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn load(env: &Env) -> Config {
    Config::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .unwrap_or_else(|e| panic!("the server refuses {env:#?}: {e}"))
}

/// Stands in for what compose (`${VAR:-default}`) or Kubernetes (`$(VAR)`) would
/// substitute, so the value is checked the way the server will receive it.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let (close, inner_start) = match after.chars().next() {
            Some('{') => ('}', 1),
            Some('(') => (')', 1),
            _ => panic!("unexpected `$` in {value:?}"),
        };
        let end = after
            .find(close)
            .unwrap_or_else(|| panic!("unclosed in {value:?}"));
        let inner = &after[inner_start..end];
        out.push_str(&match inner.split_once(":-") {
            Some((_, default)) => default.to_owned(),
            None => plausible(inner),
        });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Values for variables the files reference without a default.
fn plausible(variable: &str) -> String {
    match variable {
        "POD_IP" => "10.1.2.3".into(),
        other => panic!("no plausible value for ${other}: add one to plausible()"),
    }
}

fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn yaml_docs(relative: &str) -> Vec<Value> {
    let text = read(relative);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{relative}: {e}"));
            // Compose files share settings through `<<: *anchor`.
            value.apply_merge().unwrap();
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The `ENV` lines of the Dockerfile's last stage: what every container starts with.
fn dockerfile_env() -> Env {
    let text = read("Dockerfile").replace("\\\n", " ");
    let runtime = text.rsplit_once("\nFROM ").expect("a runtime stage").1;
    runtime
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ENV "))
        .flat_map(|args| args.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| k.starts_with("SYNCTV__"))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// Each compose service running the synctv image, with its environment over the image's.
fn compose_services(relative: &str) -> Vec<(String, Env)> {
    let doc = &yaml_docs(relative)[0];
    let services = doc["services"].as_mapping().expect("services");
    services
        .iter()
        .filter(|(_, svc)| {
            svc["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("synctv:"))
        })
        .map(|(name, svc)| {
            let mut env = dockerfile_env();
            match &svc["environment"] {
                Value::Mapping(map) => {
                    for (k, v) in map {
                        env.insert(yaml_scalar(k), interpolate(&yaml_scalar(v)));
                    }
                }
                Value::Sequence(list) => {
                    for item in list {
                        let (k, v) = item.as_str().unwrap().split_once('=').unwrap();
                        env.insert(k.to_owned(), interpolate(v));
                    }
                }
                _ => {}
            }
            env.retain(|k, _| k.starts_with("SYNCTV__"));
            (yaml_scalar(name), env)
        })
        .collect()
}

/// Every Kubernetes object under k8s/, the Secret example included.
fn k8s_objects() -> Vec<Value> {
    let mut names: Vec<_> = fs::read_dir(repo_file("k8s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| yaml_docs(&format!("k8s/{n}")))
        .collect()
}

fn synctv_keys(map: &Value) -> Env {
    map.as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| (yaml_scalar(k), interpolate(&yaml_scalar(v))))
        .filter(|(k, _)| k.starts_with("SYNCTV__"))
        .collect()
}

/// The synctv pod's environment: image ENV, then the ConfigMap and Secret (envFrom),
/// then the container's own `env` (downward API values replaced by plausible ones).
fn k8s_pod_env() -> (Env, Env) {
    let objects = k8s_objects();
    let of_kind = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind);
    let config_map: Env = of_kind("ConfigMap")
        .flat_map(|o| synctv_keys(&o["data"]))
        .collect();
    let secret: Env = of_kind("Secret")
        .flat_map(|o| synctv_keys(&o["stringData"]))
        .collect();
    let mut env = dockerfile_env();
    env.extend(config_map.clone());
    env.extend(secret);
    for deployment in of_kind("Deployment") {
        let containers = deployment["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap();
        for entry in containers
            .iter()
            .flat_map(|c| c["env"].as_sequence().cloned().unwrap_or_default())
        {
            let name = yaml_scalar(&entry["name"]);
            if !name.starts_with("SYNCTV__") {
                continue;
            }
            let value = match &entry["value"] {
                Value::Null => match entry["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.name") => "synctv-7d9f8b6c4-x2k9q".to_owned(),
                    other => panic!("{name}: no plausible value for {other:?}"),
                },
                v => interpolate(&yaml_scalar(v)),
            };
            env.insert(name, value);
        }
    }
    (env, config_map)
}

#[test]
fn dockerfile_env_is_accepted() {
    let env = dockerfile_env();
    assert_eq!(
        env.get("SYNCTV__SERVER__HOST").map(String::as_str),
        Some("0.0.0.0")
    );
    assert_eq!(load(&env).server.host, "0.0.0.0");
}

#[test]
fn compose_cluster_nodes_are_accepted() {
    let services = compose_services("docker-compose.yml");
    let nodes: Vec<_> = services
        .iter()
        .filter(|(name, _)| name.starts_with("synctv-"))
        .collect();
    assert_eq!(nodes.len(), 3, "three synctv nodes in docker-compose.yml");
    for (name, env) in &services {
        let config = load(env);
        assert!(config.cluster_mode(), "{name} must run in cluster mode");
        assert_eq!(config.server.host, "0.0.0.0", "{name}");
    }
    for (name, env) in nodes {
        assert!(
            load(env).cluster.node_id.is_some(),
            "{name} needs a node id"
        );
    }
}

#[test]
fn compose_regions_nodes_are_accepted() {
    let services = compose_services("docker-compose.regions.yml");
    let nodes: Vec<_> = services
        .iter()
        .filter(|(name, _)| name.starts_with("synctv-"))
        .collect();
    assert_eq!(nodes.len(), 4, "two synctv nodes per region");
    for (name, env) in nodes {
        let config = load(env);
        let region = config.cluster.region.clone();
        assert!(
            name.starts_with(&format!("synctv-{region}-")),
            "{name} is in region {region}"
        );
        assert_eq!(config.redis.url, None, "{name}: NATS is the bus, not Redis");
        let urls = config
            .nats
            .url
            .as_ref()
            .map(|u| u.list())
            .unwrap_or_default();
        assert_eq!(
            urls,
            vec![format!("nats://nats-{region}:4222")],
            "{name} uses its own region's NATS"
        );
        assert!(config.cluster.node_id.is_some(), "{name} needs a node id");
        assert_eq!(
            config.server.public_urls.len(),
            2,
            "{name}: both regions offered"
        );
    }
}

#[test]
fn compose_single_node_is_accepted() {
    let services = compose_services("docker-compose.single.yml");
    assert_eq!(services.len(), 1);
    let config = load(&services[0].1);
    assert!(!config.cluster_mode());
    assert_eq!(config.database.url, None, "embedded SQLite in /app/data");
}

#[test]
fn k8s_pod_env_is_accepted() {
    let (env, _) = k8s_pod_env();
    let config = load(&env);
    assert!(config.cluster_mode());
    assert_eq!(config.server.host, "0.0.0.0");
    assert_eq!(
        config.cluster.advertise_url.as_deref(),
        Some("http://10.1.2.3:8080")
    );
}

/// The ConfigMap, Secret example and Deployment together name every setting the server
/// has, so operators find each one in k8s/. A new config key fails this test until it
/// is added to k8s/configmap.yaml.
#[test]
fn k8s_names_every_setting() {
    let (env, _) = k8s_pod_env();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let mut missing = Vec::new();
    for (section, fields) in defaults.as_object().unwrap() {
        for field in fields.as_object().unwrap().keys() {
            let key = format!("SYNCTV__{section}__{field}").to_ascii_uppercase();
            if !env.contains_key(&key) {
                missing.push(key);
            }
        }
    }
    assert!(missing.is_empty(), "not set in k8s/: {missing:?}");
}

#[test]
fn a_misspelled_key_is_refused() {
    let (env, config_map) = k8s_pod_env();
    // Sanity: the whole set loads, so any error below is the misspelling's.
    load(&env);
    for key in config_map.keys() {
        let misspelled = format!("{key}S");
        let mut bad = env.clone();
        bad.insert(misspelled.clone(), bad[key].clone());
        let err = Config::from_pairs(bad.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .expect_err(&format!("{misspelled} must be refused"));
        let field = misspelled.rsplit("__").next().unwrap().to_ascii_lowercase();
        assert!(
            err.to_string().contains(&field),
            "the error names the key: {err}"
        );
    }
    let mut bogus = env.clone();
    bogus.insert("SYNCTV__BOGUS__KEY".into(), "1".into());
    assert!(Config::from_pairs(bogus.iter().map(|(k, v)| (k.as_str(), v.as_str()))).is_err());
}

#[test]
fn a_short_jwt_secret_is_refused() {
    let (mut env, _) = k8s_pod_env();
    env.insert("SYNCTV__AUTH__JWT_SECRET".into(), "too-short".into());
    let err = Config::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .expect_err("a 9-byte secret must be refused");
    assert!(err.to_string().contains("jwt_secret"), "{err}");
}
