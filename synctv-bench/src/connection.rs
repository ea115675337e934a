//! One bench WebSocket: connect (optionally from a chosen loopback source address), join a
//! room, then `drive` it: a single task per connection that hands every text frame to the
//! shared `Stats` and writes what the scenario queues for it. Buffers are kept small so
//! tens of thousands of connections fit in the bench's memory.

use crate::protocol::{ClientMsg, ServerFrame};
use crate::stats::{Receiver, Stats};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("bad node url {0}")]
    BadUrl(String),
    #[error("tcp connect to {addr} failed: {source}")]
    Tcp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("upgrade refused with HTTP {status} ({code})")]
    Refused { status: u16, code: String },
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    #[error("server answered {code}: {message}")]
    Server { code: String, message: String },
    #[error("connection closed before the answer")]
    Closed,
}

impl ConnError {
    /// A short label to count failures by.
    pub fn code(&self) -> String {
        match self {
            ConnError::BadUrl(_) => "bad_url".into(),
            ConnError::Tcp { .. } => "tcp_connect".into(),
            ConnError::Refused { code, .. } => format!("upgrade_{code}"),
            ConnError::Ws(_) => "websocket".into(),
            ConnError::Server { code, .. } => code.clone(),
            ConnError::Closed => "closed".into(),
        }
    }
}

/// A node to connect to: its HTTP base (`http://127.0.0.1:8080`) and resolved address.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: String,
    pub addr: SocketAddr,
    host_port: String,
}

impl Target {
    pub async fn resolve(url: &str) -> Result<Self, ConnError> {
        let bad = || ConnError::BadUrl(url.to_string());
        let parsed = reqwest::Url::parse(url).map_err(|_| bad())?;
        let host = parsed.host_str().ok_or_else(bad)?.to_string();
        let port = parsed.port_or_known_default().ok_or_else(bad)?;
        // `host_str` keeps the brackets of an IPv6 literal, so this is a valid authority.
        let host_port = format!("{host}:{port}");
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        let base = format!("{}://{host_port}", parsed.scheme());
        Ok(Self {
            base,
            addr,
            host_port,
        })
    }
}

#[cfg(test)]
impl Target {
    pub fn for_test(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            addr,
            host_port: addr.to_string(),
        }
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Let `bind` fix only the address and leave the port to `connect`, which picks one free
/// for the whole 4-tuple: without it, binding tens of thousands of sockets to port 0
/// scans the used ports every time and connecting slows to a few hundred per second.
fn bind_address_no_port(socket: &TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a pointer to a c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// TCP connect (from `source` when given) and WebSocket upgrade with `token`.
pub async fn connect(
    target: &Target,
    token: &str,
    source: Option<IpAddr>,
) -> Result<Ws, ConnError> {
    let tcp_err = |source| ConnError::Tcp {
        addr: target.addr,
        source,
    };
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(tcp_err)?;
    if let Some(ip) = source {
        bind_address_no_port(&socket).map_err(tcp_err)?;
        socket.bind(SocketAddr::new(ip, 0)).map_err(tcp_err)?;
    }
    let stream = socket.connect(target.addr).await.map_err(tcp_err)?;
    stream.set_nodelay(true).map_err(tcp_err)?;
    let url = format!("ws://{}/ws?token={token}", target.host_port);
    match tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config())).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let code = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                .unwrap_or_else(|| "unknown".into());
            Err(ConnError::Refused {
                status: resp.status().as_u16(),
                code,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Send `msg` (carrying `id`) and wait for the frame of type `expect` answering it.
/// Other frames (events of the room) are skipped; an `error` for `id` fails.
pub async fn request(
    ws: &mut Ws,
    msg: &ClientMsg<'_>,
    id: u64,
    expect: &str,
) -> Result<(), ConnError> {
    ws.send(Message::text(msg.to_json())).await?;
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        let Ok(frame) = ServerFrame::parse(text.as_str()) else {
            continue;
        };
        if frame.id_u64() != Some(id) {
            continue;
        }
        if frame.kind == expect {
            return Ok(());
        }
        if frame.kind == "error" {
            return Err(ConnError::Server {
                code: frame.code.as_deref().unwrap_or("unknown").to_string(),
                message: frame.message.as_deref().unwrap_or("").to_string(),
            });
        }
    }
    Err(ConnError::Closed)
}

/// What a scenario asks a driven connection to do.
#[derive(Debug)]
pub enum Out {
    Text(String),
    Close,
}

/// The connection's one task: feed every text frame to `stats` and write what arrives on
/// `rx`, until either side closes. Ends with a WebSocket close when asked to.
pub async fn drive(mut ws: Ws, mut rx: mpsc::Receiver<Out>, stats: Arc<Stats>, node: usize) {
    let mut receiver = Receiver { last_seq: 0, node };
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => stats.on_frame(text.as_str(), &mut receiver),
                Some(Ok(Message::Close(_))) | None => {
                    stats.on_closed("closed_by_server");
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    stats.on_closed("read_error");
                    return;
                }
            },
            out = rx.recv() => match out {
                Some(Out::Text(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        stats.on_closed("write_error");
                        return;
                    }
                }
                Some(Out::Close) | None => {
                    close_gracefully(&mut ws).await;
                    return;
                }
            },
        }
    }
}

/// Send a close and wait (briefly) for the server's, so the server ends the TCP connection
/// first and the bench's ephemeral ports are not left in TIME_WAIT for the next run.
pub async fn close_gracefully(ws: &mut Ws) {
    if ws.close(None).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
