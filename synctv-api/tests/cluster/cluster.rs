//! `TestCluster`: n real `synctv` processes in cluster mode on one fresh Postgres
//! database, sharing a JWT secret, heartbeat 1 s, node ids `node-0..`; and helpers in the
//! contract's terms (guests, rooms, the durable history, the node list, `/ready`).
//! `TestBus`: the bus between the nodes, Redis or NATS, so one test runs on either.

use crate::nats::NatsServer;
use crate::postgres::PostgresServer;
use crate::process::SynctvProcess;
use crate::redis::RedisServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

pub use crate::wait::wait_for;

/// Seconds between heartbeats in every test cluster.
pub const HEARTBEAT_SECS: u64 = 1;

/// How soon a dead node leaves the node list: three missed heartbeats, plus a margin for
/// the slow machines tests run on.
pub fn death_bound() -> Duration {
    Duration::from_secs(3 * HEARTBEAT_SECS + 7)
}

/// The shared secret of every test cluster (at least 16 bytes).
const JWT_SECRET: &str = "cluster-tests-shared-secret-0123456789";

pub struct TestCluster {
    /// `None` once the node was killed.
    nodes: Vec<Option<SynctvProcess>>,
    env: Vec<Vec<(&'static str, String)>>,
    client: reqwest::Client,
}

/// A guest as `POST /api/v1/auth/guest` made it.
#[derive(Clone, Debug)]
pub struct Guest {
    pub user_id: String,
    pub token: String,
}

/// The bus between a test cluster's nodes, a throwaway server of either kind.
pub enum TestBus {
    Redis(RedisServer),
    Nats(NatsServer),
}

impl TestBus {
    pub async fn redis() -> TestBus {
        TestBus::Redis(RedisServer::start().await)
    }

    pub async fn nats() -> TestBus {
        TestBus::Nats(NatsServer::start().await)
    }

    /// The setting that points a node at this bus.
    pub fn setting(&self) -> (&'static str, String) {
        match self {
            TestBus::Redis(redis) => ("SYNCTV__REDIS__URL", redis.url()),
            TestBus::Nats(nats) => ("SYNCTV__NATS__URL", nats.url()),
        }
    }

    /// The same, through `proxy` (which must lead to this bus).
    pub fn setting_through(&self, proxy: &crate::proxy::TcpProxy) -> (&'static str, String) {
        match self {
            TestBus::Redis(_) => ("SYNCTV__REDIS__URL", proxy.redis_url()),
            TestBus::Nats(_) => ("SYNCTV__NATS__URL", proxy.nats_url()),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            TestBus::Redis(redis) => redis.port,
            TestBus::Nats(nats) => nats.port,
        }
    }

    /// Its name in `/ready`'s checks.
    pub fn check(&self) -> &'static str {
        match self {
            TestBus::Redis(_) => "redis",
            TestBus::Nats(_) => "nats",
        }
    }

    /// Killed at once; it comes back empty.
    pub fn stop(&self) {
        match self {
            TestBus::Redis(redis) => redis.stop(),
            TestBus::Nats(nats) => nats.stop(),
        }
    }

    pub async fn restart(&self) {
        match self {
            TestBus::Redis(redis) => redis.restart().await,
            TestBus::Nats(nats) => nats.restart().await,
        }
    }

    /// SIGSTOP: connections stay open, nothing answers.
    pub fn pause(&self) {
        match self {
            TestBus::Redis(redis) => redis.pause(),
            TestBus::Nats(nats) => nats.pause(),
        }
    }

    pub fn resume(&self) {
        match self {
            TestBus::Redis(redis) => redis.resume(),
            TestBus::Nats(nats) => nats.resume(),
        }
    }
}

impl TestCluster {
    /// `n` nodes on `bus`.
    pub async fn start_on(n: usize, bus: &TestBus) -> TestCluster {
        Self::start_env(n, |_| vec![bus.setting()], &[]).await
    }

    /// `n` nodes; node `i` reaches Redis at `redis_url_for_node(i)`, with extra `SYNCTV__…`
    /// settings on every node.
    pub async fn start_with(
        n: usize,
        redis_url_for_node: impl Fn(usize) -> String,
        extra: &[(&'static str, String)],
    ) -> TestCluster {
        Self::start_env(
            n,
            |i| vec![("SYNCTV__REDIS__URL", redis_url_for_node(i))],
            extra,
        )
        .await
    }

    /// `n` nodes; node `i` gets the settings `for_node(i)` (its bus, its region), and every
    /// node `extra`.
    pub async fn start_env(
        n: usize,
        for_node: impl Fn(usize) -> Vec<(&'static str, String)>,
        extra: &[(&'static str, String)],
    ) -> TestCluster {
        let database_url = PostgresServer::get().create_database().await;
        let env: Vec<Vec<(&'static str, String)>> = (0..n)
            .map(|i| {
                let mut env = vec![
                    ("SYNCTV__DATABASE__URL", database_url.clone()),
                    ("SYNCTV__AUTH__JWT_SECRET", JWT_SECRET.to_owned()),
                    ("SYNCTV__CLUSTER__NODE_ID", format!("node-{i}")),
                    (
                        "SYNCTV__CLUSTER__HEARTBEAT_SECS",
                        HEARTBEAT_SECS.to_string(),
                    ),
                    ("SYNCTV__LIMITS__MESSAGES_PER_SECOND", "1000".to_owned()),
                    ("SYNCTV__SERVER__DRAIN_SECS", "2".to_owned()),
                ];
                env.extend(for_node(i));
                env.extend(extra.iter().cloned());
                env
            })
            .collect();
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            env,
            client: reqwest::Client::new(),
        };
        // The first node runs the migrations alone; the others start together.
        let first = SynctvProcess::start(&cluster.env[0]).await;
        let rest = futures_util::future::join_all(
            cluster.env[1..].iter().map(|env| SynctvProcess::start(env)),
        )
        .await;
        cluster.nodes.push(Some(first));
        cluster.nodes.extend(rest.into_iter().map(Some));
        cluster
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`; panics if it was killed.
    pub fn node(&self, i: usize) -> &SynctvProcess {
        self.nodes[i].as_ref().expect("that node was killed")
    }

    pub fn ws_url(&self, i: usize) -> String {
        self.node(i).ws_url()
    }

    /// The indexes of the nodes still running.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// `kill -9` of node `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            node.kill9();
        }
    }

    pub async fn get(&self, node: usize, path: &str) -> reqwest::Response {
        self.client
            .get(self.node(node).url(path))
            .send()
            .await
            .unwrap()
    }

    /// A new guest made on `node`.
    pub async fn guest(&self, node: usize, name: &str) -> Guest {
        let resp = self
            .client
            .post(self.node(node).url("/api/v1/auth/guest"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        Guest {
            user_id: body["user_id"].as_str().unwrap().into(),
            token: body["token"].as_str().unwrap().into(),
        }
    }

    /// `POST /api/v1/rooms` on `node`; the Room (panics unless 201).
    pub async fn create_room(&self, node: usize, token: &str, body: Value) -> Value {
        let resp = self
            .client
            .post(self.node(node).url("/api/v1/rooms"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    /// A new room named `name` made by `owner` on `node`; its id.
    pub async fn room(&self, node: usize, owner: &Guest, name: &str) -> String {
        self.create_room(node, &owner.token, json!({ "name": name }))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /api/v1/rooms/{id}` on `node` (panics unless 200).
    pub async fn get_room(&self, node: usize, room: &str) -> Value {
        let resp = self.get(node, &format!("/api/v1/rooms/{room}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// The room's whole durable history, oldest first, read from the first live node.
    pub async fn history(&self, room: &str) -> Vec<Value> {
        let node = self.live()[0];
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let resp = self
                .get(
                    node,
                    &format!("/api/v1/rooms/{room}/events?after={after}&limit=1000"),
                )
                .await;
            assert_eq!(resp.status(), StatusCode::OK);
            let page: Value = resp.json().await.unwrap();
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => return events,
            }
        }
    }

    /// `GET /api/v1/cluster/nodes` on `node`: the live nodes it lists.
    pub async fn nodes(&self, node: usize) -> Vec<Value> {
        let resp = self.get(node, "/api/v1/cluster/nodes").await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        body["nodes"].as_array().expect("a nodes array").clone()
    }

    /// The node ids `node` lists, sorted.
    pub async fn node_ids(&self, node: usize) -> Vec<String> {
        let mut ids: Vec<String> = self
            .nodes(node)
            .await
            .iter()
            .map(|n| n["node_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// `GET /ready` on `node`: the status code and the body.
    pub async fn ready(&self, node: usize) -> (StatusCode, Value) {
        let resp = self.get(node, "/ready").await;
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// `node-0`, `node-1`, … for the first `n` nodes.
pub fn node_ids(range: impl IntoIterator<Item = usize>) -> Vec<String> {
    range.into_iter().map(|i| format!("node-{i}")).collect()
}

/// The history's invariants: seqs 1, 2, 3, … with no gap and no repeat, and every acked
/// `(seq, text)` present at that seq; each chat text appears at most once (a chat that was
/// sent but never acked may be absent, never doubled).
pub fn check_history(history: &[Value], acked: &[(i64, String)]) {
    let seqs: Vec<i64> = history.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "the history has a gap or a repeated seq");
    let mut texts: HashMap<&str, i64> = HashMap::new();
    for event in history.iter().filter(|e| e["kind"] == "chat") {
        let text = event["data"]["text"].as_str().unwrap();
        let seq = event["seq"].as_i64().unwrap();
        if let Some(first) = texts.insert(text, seq) {
            panic!("chat {text:?} is in the history twice, at seqs {first} and {seq}");
        }
    }
    for (seq, text) in acked {
        let event = history
            .get((*seq - 1) as usize)
            .unwrap_or_else(|| panic!("acked seq {seq} ({text:?}) is not in the history"));
        assert_eq!(
            event["data"]["text"].as_str(),
            Some(text.as_str()),
            "acked seq {seq} holds another event: {event}"
        );
    }
}

/// The room's state as the history ends it: the state of its last playback or media event.
pub fn final_state(history: &[Value]) -> Option<Value> {
    history
        .iter()
        .rev()
        .find(|e| e["kind"] == "playback" || e["kind"] == "media")
        .map(|e| e["data"]["state"].clone())
}

/// The parts of a PlaybackState that every node must agree on.
pub fn state_key(state: &Value) -> Value {
    json!({
        "media": state["media"],
        "playing": state["playing"],
        "position": state["position"],
        "rate": state["rate"],
        "version": state["version"],
    })
}
