//! One Redis link, to a single server or to a Redis Cluster, over RESP3 with automatic
//! reconnection and resubscription. Room channels use sharded pub/sub on a cluster, so a
//! room's traffic stays on its shard.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, RedisResult, Script};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

const TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Clone)]
pub enum RedisLink {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisLink {
    /// Connects; pushed messages (and disconnect notices) go to `pushes`.
    pub async fn connect(
        url: &str,
        cluster: bool,
        pushes: UnboundedSender<PushInfo>,
    ) -> RedisResult<Self> {
        if cluster {
            let client = ClusterClientBuilder::new(vec![url.to_owned()])
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(pushes)
                .connection_timeout(TIMEOUT)
                .response_timeout(TIMEOUT)
                .build()?;
            Ok(RedisLink::Cluster(client.get_async_connection().await?))
        } else {
            let url = if url.contains("protocol=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&protocol=resp3")
            } else {
                format!("{url}?protocol=resp3")
            };
            let client = redis::Client::open(url)?;
            let config = ConnectionManagerConfig::new()
                .set_push_sender(pushes)
                .set_automatic_resubscription()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_max_delay(Duration::from_millis(500))
                .set_number_of_retries(2);
            Ok(RedisLink::Single(
                client.get_connection_manager_with_config(config).await?,
            ))
        }
    }

    pub async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            RedisLink::Single(c) => c.subscribe(channel).await,
            RedisLink::Cluster(c) => c.ssubscribe(channel).await,
        }
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            RedisLink::Single(c) => c.unsubscribe(channel).await,
            RedisLink::Cluster(c) => c.sunsubscribe(channel).await,
        }
    }

    /// Publishes one message (PUBLISH, or SPUBLISH on a cluster).
    pub async fn publish(&mut self, channel: &str, payload: &[u8]) -> RedisResult<()> {
        let command = match self {
            RedisLink::Single(_) => "PUBLISH",
            RedisLink::Cluster(_) => "SPUBLISH",
        };
        let mut cmd = redis::cmd(command);
        cmd.arg(channel).arg(payload);
        self.query::<i64>(&cmd).await.map(|_| ())
    }

    pub async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            RedisLink::Single(c) => cmd.query_async(c).await,
            RedisLink::Cluster(c) => cmd.query_async(c).await,
        }
    }

    pub async fn run_script<T: redis::FromRedisValue>(
        &mut self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> RedisResult<T> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        match self {
            RedisLink::Single(c) => invocation.invoke_async(c).await,
            RedisLink::Cluster(c) => invocation.invoke_async(c).await,
        }
    }

    pub async fn ping(&mut self) -> RedisResult<()> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }
}
