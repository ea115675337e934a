//! Throwaway `nats-server`s on free loopback ports in temporary directories, never the
//! machine's own: `NatsServer` (one server, which a test may stop, restart, `kill -9`,
//! pause and resume) and `TwoRegions` (two servers, one per region, joined by gateways
//! through delaying proxies: 40 ms each way, an 80 ms round trip between regions).
//! Everything is killed on drop.

use crate::process::free_port;
use crate::proxy::TcpProxy;
use crate::server_process::ServerProcess;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;

/// How long a fresh or restarted server may take to greet a client.
const START_PATIENCE: Duration = Duration::from_secs(20);
/// One way, between the regions' gateways.
pub const REGION_LINK_DELAY: Duration = Duration::from_millis(40);

pub struct NatsServer {
    pub port: u16,
    /// The monitoring port (`/gatewayz`).
    pub http_port: u16,
    pub region: String,
    dir: TempDir,
    config: String,
    process: ServerProcess,
}

/// Where a region's gateway listens and how the other region reaches it.
struct Gateway {
    listen: u16,
    /// The proxy port the other region dials to reach this one.
    advertise: u16,
    /// The other region: its name and the proxy port that leads to it.
    peer: (String, u16),
}

impl NatsServer {
    /// A single server in region `default`, no gateway.
    pub async fn start() -> NatsServer {
        Self::start_in("default", None).await
    }

    async fn start_in(region: &str, gateway: Option<Gateway>) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("synctv-nats-")
            .tempdir()
            .unwrap();
        let (port, http_port) = (free_port(), free_port());
        let mut config = format!(
            "server_name: \"{region}-{port}\"\nlisten: \"127.0.0.1:{port}\"\n\
             http: \"127.0.0.1:{http_port}\"\n"
        );
        if let Some(g) = gateway {
            config.push_str(&format!(
                "gateway {{\n  name: \"{region}\"\n  listen: \"127.0.0.1:{}\"\n  \
                 advertise: \"127.0.0.1:{}\"\n  connect_retries: 1000\n  \
                 gateways: [{{name: \"{}\", url: \"nats://127.0.0.1:{}\"}}]\n}}\n",
                g.listen, g.advertise, g.peer.0, g.peer.1
            ));
        }
        let server = NatsServer {
            port,
            http_port,
            region: region.to_owned(),
            dir,
            config,
            process: ServerProcess::default(),
        };
        server.spawn().await;
        server
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `kill -9` of the server (an outage, or a region's death). Core NATS keeps nothing.
    pub fn stop(&self) {
        self.process.kill();
    }

    /// Starts it again after `stop`, on the same ports, and waits until it greets.
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
        let config = self.dir.path().join("nats.conf");
        std::fs::write(&config, &self.config).unwrap();
        let log = std::fs::File::create(self.dir.path().join("nats.log")).unwrap();
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server; run ./scripts/test to install it");
        self.process.set(child);
        let deadline = Instant::now() + START_PATIENCE;
        while !greets(self.port).await {
            if let Some(status) = self.process.exited() {
                panic!(
                    "nats-server on port {} exited: {status}\n{}",
                    self.port,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not greet on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// `true` once this server has a gateway link both ways with `region`.
    pub async fn gateway_up(&self, region: &str) -> bool {
        let url = format!("http://127.0.0.1:{}/gatewayz", self.http_port);
        let Ok(resp) = reqwest::get(url).await else {
            return false;
        };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            return false;
        };
        !body["outbound_gateways"][region].is_null() && !body["inbound_gateways"][region].is_null()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two regions, `east` and `west`, each one NATS server, joined by gateways over an
/// 80 ms round trip.
pub struct TwoRegions {
    pub east: NatsServer,
    pub west: NatsServer,
    /// The links between them, each way (east's gateway dials west through the first),
    /// held so that they run as long as the regions do.
    _links: (TcpProxy, TcpProxy),
}

impl TwoRegions {
    pub async fn start() -> TwoRegions {
        let (east_gw, west_gw) = (free_port(), free_port());
        let to_west =
            TcpProxy::start_delayed(([127, 0, 0, 1], west_gw).into(), REGION_LINK_DELAY).await;
        let to_east =
            TcpProxy::start_delayed(([127, 0, 0, 1], east_gw).into(), REGION_LINK_DELAY).await;
        let east = NatsServer::start_in(
            "east",
            Some(Gateway {
                listen: east_gw,
                advertise: to_east.port,
                peer: ("west".into(), to_west.port),
            }),
        )
        .await;
        let west = NatsServer::start_in(
            "west",
            Some(Gateway {
                listen: west_gw,
                advertise: to_west.port,
                peer: ("east".into(), to_east.port),
            }),
        )
        .await;
        let regions = TwoRegions {
            east,
            west,
            _links: (to_west, to_east),
        };
        regions.wait_for_gateways().await;
        regions
    }

    /// Waits until both gateways are linked both ways.
    pub async fn wait_for_gateways(&self) {
        let deadline = Instant::now() + START_PATIENCE;
        while !(self.east.gateway_up("west").await && self.west.gateway_up("east").await) {
            assert!(
                Instant::now() < deadline,
                "the gateways never linked:\n{}\n{}",
                self.east.log(),
                self.west.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The server sends its INFO line on connect.
async fn greets(port: u16) -> bool {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"INFO"))
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// `nats-server` from PATH, or where the Debian package puts it.
fn nats_server_bin() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nats-server"))
                .find(|p| p.is_file())
        })
        .or_else(|| {
            let usual = PathBuf::from("/usr/sbin/nats-server");
            usual.is_file().then_some(usual)
        })
        .unwrap_or_else(|| panic!("nats-server not found; run ./scripts/test to install it"))
}
