//! `synctv` nodes on a database a drill built: cluster mode on a throwaway Redis, a
//! shared JWT secret, node ids `node-0..`; and the few HTTP calls the drills make.

use crate::process::SynctvProcess;
use crate::redis::RedisServer;
use serde_json::Value;

const JWT_SECRET: &str = "failover-drills-shared-secret-0123456789";

pub struct Nodes {
    pub nodes: Vec<SynctvProcess>,
    /// Kept alive for as long as the nodes run.
    _redis: RedisServer,
}

impl Nodes {
    /// `n` nodes committing to `database_url` (which may name several hosts), reading
    /// from `replicas`.
    pub async fn start(n: usize, database_url: &str, replicas: &[String]) -> Nodes {
        let redis = RedisServer::start().await;
        let replicas = serde_json::to_string(replicas).unwrap();
        let env = |i: usize| {
            vec![
                ("SYNCTV__DATABASE__URL", database_url.to_owned()),
                ("SYNCTV__DATABASE__REPLICA_URLS", replicas.clone()),
                ("SYNCTV__REDIS__URL", redis.url()),
                ("SYNCTV__AUTH__JWT_SECRET", JWT_SECRET.to_owned()),
                ("SYNCTV__CLUSTER__NODE_ID", format!("node-{i}")),
                ("SYNCTV__CLUSTER__HEARTBEAT_SECS", "1".to_owned()),
                ("SYNCTV__LIMITS__MESSAGES_PER_SECOND", "1000".to_owned()),
                ("SYNCTV__SERVER__DRAIN_SECS", "2".to_owned()),
            ]
        };
        // The first node runs the migrations alone; the others start together.
        let mut nodes = vec![SynctvProcess::start(&env(0)).await];
        let envs: Vec<_> = (1..n).map(env).collect();
        nodes.extend(
            futures_util::future::join_all(envs.iter().map(|e| SynctvProcess::start(e))).await,
        );
        Nodes {
            nodes,
            _redis: redis,
        }
    }

    pub fn ws_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.ws_url()).collect()
    }

    /// Node `i`'s `/ready` body.
    pub async fn ready(&self, i: usize) -> Value {
        reqwest::get(self.nodes[i].url("/ready"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The value of the Prometheus sample `name{labels}` on node `i` (0 when absent).
    pub async fn metric(&self, i: usize, sample: &str) -> f64 {
        let text = reqwest::get(self.nodes[i].url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    /// `GET /api/v1/rooms/{room}/events?after=..&limit=1000` on node `i`, every page.
    pub async fn history(&self, i: usize, room: &str) -> Vec<Value> {
        let client = reqwest::Client::new();
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page: Value = client
                .get(self.nodes[i].url(&format!(
                    "/api/v1/rooms/{room}/events?after={after}&limit=1000"
                )))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => return events,
            }
        }
    }
}
