//! `NodeRegistry`: who is alive. Each node refreshes a heartbeat key (TTL three
//! heartbeats) holding its `NodeInfo`; a node whose key expired is dead, and one survivor
//! (holding a short lock) removes its presence so its users get `member_left`.

use crate::connection_manager::ConnectionManager;
use crate::hub::RoomMessageHub;
use crate::redis::connection::RedisLink;
use crate::redis::keys::Keys;
use redis::RedisResult;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use synctv_core::clock::now_ms;

/// A row of `/api/v1/cluster/nodes`, and what a heartbeat key holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub address: String,
    /// The node's region (contract 1.1); a node of an older version says nothing.
    #[serde(default = "default_region")]
    pub region: String,
    pub connections: usize,
    pub rooms: usize,
    pub last_seen: i64,
    /// Frames this node wrote to sockets since it started (the server API's stats).
    #[serde(default)]
    pub deliveries_total: u64,
    /// What this node refused since it started (`synctv_refusals_total`, all reasons).
    #[serde(default)]
    pub refusals_total: u64,
}

fn default_region() -> String {
    "default".to_owned()
}

/// This node, as it describes itself in the registry.
pub(crate) struct ThisNode {
    pub(crate) node_id: String,
    pub(crate) address: String,
    pub(crate) region: String,
    pub(crate) connections: Arc<ConnectionManager>,
    pub(crate) hub: Arc<RoomMessageHub>,
}

impl ThisNode {
    pub(crate) fn info(&self) -> NodeInfo {
        NodeInfo {
            node_id: self.node_id.clone(),
            address: self.address.clone(),
            region: self.region.clone(),
            connections: self.connections.count(),
            rooms: self.hub.active_rooms(),
            last_seen: now_ms(),
            deliveries_total: self.connections.counters().deliveries(),
            refusals_total: self.connections.counters().refusals(),
        }
    }
}

pub struct NodeRegistry {
    keys: Keys,
    node_id: String,
    ttl: Duration,
}

impl NodeRegistry {
    pub fn new(keys: Keys, node_id: &str, heartbeat: Duration) -> Self {
        Self {
            keys,
            node_id: node_id.to_owned(),
            ttl: heartbeat * 3,
        }
    }

    pub async fn beat(&self, link: &mut RedisLink, info: &NodeInfo) -> RedisResult<()> {
        let json = serde_json::to_string(info).unwrap_or_default();
        let mut set = redis::cmd("SET");
        set.arg(self.keys.node_heartbeat(&self.node_id))
            .arg(json)
            .arg("PX")
            .arg(self.ttl.as_millis() as u64);
        link.query::<()>(&set).await?;
        let mut add = redis::cmd("SADD");
        add.arg(self.keys.nodes()).arg(&self.node_id);
        link.query::<i64>(&add).await?;
        Ok(())
    }

    /// Live nodes, and the registered ids whose heartbeat expired.
    pub async fn scan(&self, link: &mut RedisLink) -> RedisResult<(Vec<NodeInfo>, Vec<String>)> {
        let mut members = redis::cmd("SMEMBERS");
        members.arg(self.keys.nodes());
        let ids: Vec<String> = link.query(&members).await?;
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for id in ids {
            let mut get = redis::cmd("GET");
            get.arg(self.keys.node_heartbeat(&id));
            let info: Option<String> = link.query(&get).await?;
            match info.and_then(|json| serde_json::from_str::<NodeInfo>(&json).ok()) {
                Some(info) => live.push(info),
                None => dead.push(id),
            }
        }
        live.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok((live, dead))
    }

    /// Takes the right to clean up after `node` (one survivor wins).
    pub async fn claim_reaping(&self, link: &mut RedisLink, node: &str) -> RedisResult<bool> {
        let mut set = redis::cmd("SET");
        set.arg(self.keys.node_reaper(node))
            .arg(&self.node_id)
            .arg("NX")
            .arg("EX")
            .arg(30);
        let taken: Option<String> = link.query(&set).await?;
        Ok(taken.is_some())
    }

    pub async fn forget(&self, link: &mut RedisLink, node: &str) -> RedisResult<()> {
        let mut rem = redis::cmd("SREM");
        rem.arg(self.keys.nodes()).arg(node);
        link.query::<i64>(&rem).await.map(|_| ())
    }
}
