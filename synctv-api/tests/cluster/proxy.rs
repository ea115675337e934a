//! A small TCP proxy on a free loopback port, to put between one node and its bus (or
//! between two regions' NATS gateways) and play a network partition: `cut()` drops every
//! connection through it and refuses new ones until `restore()`; `freeze()` is the silent
//! kind, where nothing passes and nothing is closed (a link that drops packets), until
//! `restore()` closes what it held. A delayed proxy also
//! holds every byte for a fixed time each way, like a long link (40 ms each way makes an
//! 80 ms round trip between regions); bytes stay pipelined, so the delay adds latency,
//! not a limit on throughput.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub struct TcpProxy {
    pub port: u16,
    cut: watch::Sender<bool>,
    frozen: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        Self::start_delayed(target, Duration::ZERO).await
    }

    /// Like `start`, holding every byte `delay` in each direction.
    pub async fn start_delayed(target: SocketAddr, delay: Duration) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = watch::channel(false);
        let (frozen, _) = watch::channel(false);
        let link = Link {
            cut: cut.clone(),
            frozen: frozen.clone(),
            delay,
        };
        let accept = tokio::spawn(accept_loop(listener, target, link));
        TcpProxy {
            port,
            cut,
            frozen,
            accept,
        }
    }

    /// `nats://127.0.0.1:PORT`, for a node that reaches NATS through this proxy.
    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`, for a node that reaches Redis through this proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The partition: every open connection is dropped, new ones are closed at once.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// The silent partition: open connections stay open but carry nothing (a delayed
    /// proxy's are closed), new ones are accepted and hang.
    #[allow(dead_code)] // used by tests/failover, which shares this file; not by tests/cluster
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Heals the partition: connections held by a freeze are closed, new connections are
    /// forwarded again.
    pub fn restore(&self) {
        self.frozen.send_replace(false);
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut.send_replace(true);
    }
}

/// What every connection through the proxy watches.
struct Link {
    cut: watch::Sender<bool>,
    frozen: watch::Sender<bool>,
    delay: Duration,
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, link: Link) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if *link.cut.borrow() {
            drop(inbound);
            continue;
        }
        let (cut, frozen) = (link.cut.subscribe(), link.frozen.subscribe());
        if *frozen.borrow() {
            tokio::spawn(async move {
                hold_while_frozen(frozen, cut).await;
                drop(inbound);
            });
            continue;
        }
        tokio::spawn(forward(inbound, target, cut, frozen, link.delay));
    }
}

/// Copies both ways until either side closes or the link is cut; frozen, it stops
/// copying and holds both ends until the freeze ends.
async fn forward(
    mut inbound: TcpStream,
    target: SocketAddr,
    mut cut: watch::Receiver<bool>,
    mut frozen: watch::Receiver<bool>,
    delay: Duration,
) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    if delay.is_zero() {
        let froze = tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
            _ = cut.wait_for(|cut| *cut) => false,
            _ = frozen.wait_for(|frozen| *frozen) => true,
        };
        if froze {
            // Both ends stay open (in scope) and carry nothing.
            hold_while_frozen(frozen, cut).await;
        }
        return;
    }
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::select! {
        _ = delayed_copy(in_read, out_write, delay) => {}
        _ = delayed_copy(out_read, in_write, delay) => {}
        _ = cut.wait_for(|cut| *cut) => {}
        _ = frozen.wait_for(|frozen| *frozen) => {}
    }
}

async fn hold_while_frozen(mut frozen: watch::Receiver<bool>, mut cut: watch::Receiver<bool>) {
    tokio::select! {
        _ = frozen.wait_for(|frozen| !*frozen) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if chunks
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
