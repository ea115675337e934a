//! Throwaway Redis servers on free loopback ports in temporary directories, never the
//! machine's own: `RedisServer` (one server, which a test may stop, restart, pause and
//! resume to play an outage) and `RedisCluster` (three masters, for
//! `SYNCTV__REDIS__CLUSTER_MODE=true`). Everything is killed on drop.

use crate::process::free_port;
use crate::server_process::ServerProcess;
use crate::wait::wait_for;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a fresh or restarted server may take to answer PING.
const START_PATIENCE: Duration = Duration::from_secs(20);

pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    extra: Vec<String>,
    process: ServerProcess,
}

impl RedisServer {
    /// A plain server (no persistence), answering PING.
    pub async fn start() -> RedisServer {
        Self::start_with(free_port(), Vec::new()).await
    }

    async fn start_with(port: u16, extra: Vec<String>) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("synctv-redis-")
            .tempdir()
            .unwrap();
        let server = RedisServer {
            port,
            dir,
            extra,
            process: ServerProcess::default(),
        };
        server.spawn().await;
        server
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (an outage). Its data is gone: nothing is persisted.
    pub fn stop(&self) {
        self.process.kill();
    }

    /// Starts it again after `stop`, on the same port, and waits until it answers PING.
    pub async fn restart(&self) {
        self.stop();
        self.spawn().await;
    }

    /// SIGSTOP: the server holds its connections but answers nothing.
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.process.resume();
    }

    async fn spawn(&self) {
        let child = Command::new(redis_bin("redis-server"))
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(&self.extra)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn redis-server; run ./scripts/test to install it");
        self.process.set(child);
        let port = self.port;
        wait_for(
            START_PATIENCE,
            &format!("redis-server answers PING on port {port}"),
            || {
                if let Some(status) = self.process.exited() {
                    panic!("redis-server on port {port} exited: {status}");
                }
                async move { ping(port).await.then_some(()) }
            },
        )
        .await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three masters in one Redis Cluster, slots spread over all three, no replicas.
pub struct RedisCluster {
    pub masters: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let mut masters = Vec::new();
        for _ in 0..3 {
            let extra = vec![
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                "nodes.conf".to_owned(),
                "--cluster-node-timeout".to_owned(),
                "5000".to_owned(),
            ];
            masters.push(RedisServer::start_with(cluster_port(), extra).await);
        }
        let addresses: Vec<String> = masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        let out = tokio::process::Command::new(redis_bin("redis-cli"))
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { masters };
        for master in &cluster.masters {
            wait_for(
                START_PATIENCE,
                &format!("the Redis Cluster at cluster_state:ok on {}", master.port),
                || async { cluster_ok(master.port).await.then_some(()) },
            )
            .await;
        }
        cluster
    }

    /// The URL of master `i` (any of them names the whole cluster).
    pub fn url(&self, i: usize) -> String {
        self.masters[i % self.masters.len()].url()
    }

    /// The sharded pub/sub channels whose name contains `fragment`, on every master:
    /// `(master's port, channel, subscribers)`.
    pub async fn shard_channels(&self, fragment: &str) -> Vec<(u16, String, u64)> {
        let mut found = Vec::new();
        for master in &self.masters {
            let channels = redis_cli(master.port, &["PUBSUB", "SHARDCHANNELS"]).await;
            for channel in channels.lines().filter(|c| c.contains(fragment)) {
                let counts = redis_cli(master.port, &["PUBSUB", "SHARDNUMSUB", channel]).await;
                let n = counts
                    .lines()
                    .nth(1)
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                found.push((master.port, channel.to_owned(), n));
            }
        }
        found
    }
}

/// `redis-cli -p PORT args…`: its output.
async fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = tokio::process::Command::new(redis_bin("redis-cli"))
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// `redis-server` / `redis-cli` from PATH (the usual system place as a fallback).
fn redis_bin(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .or_else(|| {
            let usual = Path::new("/usr/bin").join(name);
            usual.is_file().then_some(usual)
        })
        .unwrap_or_else(|| panic!("{name} not found in PATH; run ./scripts/test to install it"))
}

/// One inline command over a fresh connection; the reply's first bytes, or `None`.
async fn command(port: u16, line: &str) -> Option<String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = vec![0u8; 8192];
        let n = stream.read(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}

/// The server answers PING with PONG.
pub async fn ping(port: u16) -> bool {
    command(port, "PING")
        .await
        .is_some_and(|reply| reply.starts_with("+PONG"))
}

async fn cluster_ok(port: u16) -> bool {
    command(port, "CLUSTER INFO")
        .await
        .is_some_and(|reply| reply.contains("cluster_state:ok"))
}
