//! The one typed configuration: defaults, overlaid by an optional TOML file (`synctv.toml`
//! or the path in `SYNCTV_CONFIG`), overlaid by `SYNCTV__SECTION__KEY` environment
//! variables. Loaded once at start and passed down; nothing else reads the environment.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

mod operator;
pub use operator::{ApiConfig, WebhooksConfig, MIN_API_KEY_BYTES};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub nats: NatsConfig,
    pub cluster: ClusterConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub history: HistoryConfig,
    pub rooms: RoomsConfig,
    pub log: LogConfig,
    pub api: ApiConfig,
    pub webhooks: WebhooksConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// How long a shutdown waits for clients to leave after `reconnect`.
    pub drain_secs: u64,
    /// Other synctv addresses offered to browsers in `/config.json` (the page picks the
    /// fastest). Empty means "this server only". Their origins may also open WebSockets
    /// and send POST and DELETE requests from a browser.
    pub public_urls: Vec<String>,
    /// Browser origins allowed besides the server's own and its public URLs (exact
    /// matches; `["*"]` allows every origin).
    pub allowed_origins: Vec<String>,
    /// Proxy addresses or CIDRs whose `X-Forwarded-For` names the client; the header is
    /// ignored from anyone else.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            drain_secs: 10,
            public_urls: Vec::new(),
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://…`; empty means the embedded file `./data/synctv.db`.
    /// A Postgres URL may name several hosts (`postgres://u@h1:5432,h2:5432/synctv`): the
    /// node commits to whichever is writable.
    pub url: Option<String>,
    /// Streaming replicas (Postgres URLs, one host each) that may serve reads.
    pub replica_urls: Vec<String>,
    pub max_connections: u32,
    /// Seconds a query may wait for a pooled connection before the database counts as down.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            replica_urls: Vec::new(),
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://…`; empty means single-node mode.
    pub url: Option<String>,
    pub cluster_mode: bool,
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            cluster_mode: false,
            key_prefix: "synctv:".into(),
        }
    }
}

/// The NATS bus between nodes (core NATS only: subjects, request/reply, gateways between
/// regions), the alternative to Redis for clusters that span regions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://…`, one server or a list of them; empty means no NATS.
    pub url: Option<NatsUrls>,
    /// The first token of every subject the nodes use.
    pub subject_prefix: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: None,
            subject_prefix: "synctv".into(),
        }
    }
}

/// `SYNCTV__NATS__URL`: one URL, or a JSON list of them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum NatsUrls {
    One(String),
    Many(Vec<String>),
}

impl NatsUrls {
    pub fn list(&self) -> Vec<String> {
        match self {
            NatsUrls::One(url) => vec![url.clone()],
            NatsUrls::Many(urls) => urls.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name; empty means host name plus a random suffix.
    pub node_id: Option<String>,
    /// The address other nodes and `/api/v1/cluster/nodes` show for this node; empty
    /// means `http://{server.host}:{server.port}`.
    pub advertise_url: Option<String>,
    /// Seconds between heartbeats; a node is dead after three missed ones.
    pub heartbeat_secs: u64,
    /// The region this node runs in (contract 1.1, "Regions").
    pub region: String,
    /// Seconds between the reconciler's checks of the rooms with members here against the
    /// history: how late, at worst, an event Redis lost arrives when nothing else reveals
    /// the gap.
    pub reconcile_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            advertise_url: None,
            heartbeat_secs: 5,
            region: "default".into(),
            reconcile_secs: 2,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Signs tokens. Single-node: generated once and kept in the database when empty.
    /// Cluster mode: required.
    pub jwt_secret: Option<String>,
    /// Lifetime of a guest token.
    pub token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            token_ttl_secs: 7 * 24 * 3600,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub per_user: usize,
    pub per_room: usize,
    pub global: usize,
    pub idle_timeout_secs: u64,
    pub max_duration_secs: u64,
    pub messages_per_second: u32,
    pub rooms_per_connection: usize,
    pub max_message_bytes: usize,
    /// Frames a connection may have waiting to be written before it counts as a slow
    /// consumer and is told to reconnect. Keep it well above `history.max_batch`: one
    /// group commit can hand a room that many events at once. The queue allocates as it
    /// fills, so an idle connection pays nothing for a large bound.
    pub outbound_queue: usize,
    /// Guest tokens one client address may obtain per minute (`POST /api/v1/auth/guest`).
    pub guests_per_minute: u32,
    /// Rooms one client address may create per minute (`POST /api/v1/rooms`).
    pub rooms_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_user: 10,
            per_room: 1000,
            global: 100_000,
            idle_timeout_secs: 1800,
            max_duration_secs: 86_400,
            messages_per_second: 20,
            rooms_per_connection: 16,
            max_message_bytes: 65_536,
            outbound_queue: 4096,
            guests_per_minute: 10,
            rooms_per_minute: 30,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Recent events each active room keeps in memory for fast recovery (the durable
    /// history serves older ones).
    pub recent_events: usize,
    /// The most events one `joined` hands back; a client further behind gets
    /// `recovered: false` and reads the history endpoint.
    pub max_recovery_events: usize,
    /// Most room changes committed in one transaction.
    pub max_batch: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            recent_events: 1024,
            max_recovery_events: 5000,
            max_batch: 512,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Longest a start waits for buffering members (contract 1.1, "Waiting for everyone").
    pub ready_timeout_secs: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            ready_timeout_secs: 10,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, for instance `info` or `synctv_api=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// A configuration that cannot be used; the message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid configuration: {key}: {reason}")]
    Rule { key: &'static str, reason: String },
}

impl Config {
    /// Defaults, then the file (`SYNCTV_CONFIG` or `./synctv.toml` if present), then the
    /// environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("SYNCTV_CONFIG").map(PathBuf::from);
        Self::from_figment(Self::figment(file, Env::prefixed("SYNCTV__").split("__")))
    }

    /// Loads from an explicit list of `SYNCTV__…` pairs and no file, parsing values the way
    /// the environment overlay does: what tests and the deployment checks use to prove
    /// that a key is one the server accepts.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        for (key, raw) in pairs {
            let Some(path) = key.strip_prefix("SYNCTV__") else {
                return Err(ConfigError::Rule {
                    key: "environment",
                    reason: format!("{key} does not start with SYNCTV__"),
                });
            };
            let dotted = path.to_ascii_lowercase().replace("__", ".");
            let value: figment::value::Value = raw.parse().unwrap_or_else(|never| match never {});
            figment = figment.merge(Serialized::default(&dotted, value));
        }
        Self::from_figment(figment)
    }

    fn figment(file: Option<PathBuf>, env: Env) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("synctv.toml")),
        }
        figment.merge(env)
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let mut config: Config = figment.extract().map_err(Box::new)?;
        config.normalize();
        config.validate()?;
        Ok(config)
    }

    /// Empty strings from the environment mean "unset".
    fn normalize(&mut self) {
        self.api.normalize();
        self.webhooks.normalize();
        if let Some(NatsUrls::One(url)) = &self.nats.url {
            if url.trim().is_empty() {
                self.nats.url = None;
            }
        }
        if matches!(&self.nats.url, Some(NatsUrls::Many(urls)) if urls.is_empty()) {
            self.nats.url = None;
        }
        for opt in [
            &mut self.database.url,
            &mut self.redis.url,
            &mut self.cluster.node_id,
            &mut self.cluster.advertise_url,
            &mut self.auth.jwt_secret,
        ] {
            if opt.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *opt = None;
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let rule = |key, reason: &str| {
            Err(ConfigError::Rule {
                key,
                reason: reason.into(),
            })
        };
        self.api.validate()?;
        self.webhooks.validate()?;
        if self.redis.url.is_some() && self.nats.url.is_some() {
            return rule(
                "redis.url",
                "SYNCTV__REDIS__URL and SYNCTV__NATS__URL are both set: choose one bus between nodes",
            );
        }
        if self.cluster_mode() && self.auth.jwt_secret.is_none() {
            return rule(
                "auth.jwt_secret",
                "required in cluster mode (SYNCTV__REDIS__URL or SYNCTV__NATS__URL is set): all nodes must share it",
            );
        }
        if self
            .auth
            .jwt_secret
            .as_deref()
            .is_some_and(|s| s.len() < 16)
        {
            return rule("auth.jwt_secret", "must be at least 16 bytes");
        }
        if let Some(url) = &self.database.url {
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                return rule(
                    "database.url",
                    "must start with postgres://, postgresql:// or sqlite:",
                );
            }
            if !url.starts_with("sqlite:") {
                if let Err(e) = crate::storage::split_hosts(url) {
                    return rule("database.url", &e.to_string());
                }
            }
        }
        if !self.database.replica_urls.is_empty()
            && self
                .database
                .url
                .as_deref()
                .is_none_or(|url| url.starts_with("sqlite:"))
        {
            return rule(
                "database.replica_urls",
                "replicas need a Postgres database.url",
            );
        }
        for url in &self.database.replica_urls {
            match crate::storage::split_hosts(url) {
                Ok(hosts) if hosts.len() == 1 => {}
                Ok(_) => return rule("database.replica_urls", "each replica URL names one host"),
                Err(e) => return rule("database.replica_urls", &e.to_string()),
            }
        }
        if let Some(url) = &self.redis.url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return rule("redis.url", "must start with redis:// or rediss://");
            }
        }
        for url in self.nats.url.iter().flat_map(NatsUrls::list) {
            if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                return rule("nats.url", "every URL must start with nats:// or tls://");
            }
        }
        if self.cluster.region.trim().is_empty() {
            return rule("cluster.region", "must not be empty");
        }
        let l = &self.limits;
        for (key, value) in [
            ("limits.per_user", l.per_user),
            ("limits.per_room", l.per_room),
            ("limits.global", l.global),
            ("limits.rooms_per_connection", l.rooms_per_connection),
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.outbound_queue", l.outbound_queue),
            ("limits.messages_per_second", l.messages_per_second as usize),
            ("limits.guests_per_minute", l.guests_per_minute as usize),
            ("limits.rooms_per_minute", l.rooms_per_minute as usize),
            ("history.max_batch", self.history.max_batch),
            (
                "database.max_connections",
                self.database.max_connections as usize,
            ),
        ] {
            if value == 0 {
                return rule(key, "must be at least 1");
            }
        }
        for proxy in &self.server.trusted_proxies {
            if parse_network(proxy).is_none() {
                return Err(ConfigError::Rule {
                    key: "server.trusted_proxies",
                    reason: format!("{proxy:?} is not an IP address or CIDR"),
                });
            }
        }
        if l.idle_timeout_secs == 0
            || l.max_duration_secs == 0
            || self.cluster.heartbeat_secs == 0
            || self.cluster.reconcile_secs == 0
        {
            return rule(
                "limits",
                "timeouts, heartbeat and reconcile intervals must be at least 1 second",
            );
        }
        Ok(())
    }

    /// Several nodes share rooms: through Redis or through NATS.
    pub fn cluster_mode(&self) -> bool {
        self.redis.url.is_some() || self.nats.url.is_some()
    }

    /// `server.trusted_proxies` as networks (validated at load, so none is dropped).
    pub fn trusted_proxy_networks(&self) -> Vec<IpNet> {
        self.server
            .trusted_proxies
            .iter()
            .filter_map(|p| parse_network(p))
            .collect()
    }
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (a network of one).
fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}
