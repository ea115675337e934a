//! A session's WebSocket: messages are read through tungstenite, over what hyper handed
//! back; every frame the server sends goes through the connection's [`FrameWriter`],
//! tungstenite's own (pongs) included, so all of them reach the socket in one order.

use super::writer::FrameWriter;
use bytes::Bytes;
use futures_util::StreamExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

pub struct WsSocket {
    reader: WebSocketStream<SessionIo>,
    pub writer: Arc<FrameWriter>,
}

impl WsSocket {
    pub async fn new(
        upgraded: Upgraded,
        writer: Arc<FrameWriter>,
        config: WebSocketConfig,
    ) -> Self {
        let io = SessionIo {
            read: TokioIo::new(upgraded),
            writer: writer.clone(),
        };
        let reader = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        Self { reader, writer }
    }

    /// The next message; `None` once the connection ended.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.reader.next().await
    }
}

/// What tungstenite reads from and writes to: reads come from hyper's upgraded
/// connection; writes (tungstenite's pongs and close replies) are handed whole to the
/// connection's writer, in order with everything else.
struct SessionIo {
    read: TokioIo<Upgraded>,
    writer: Arc<FrameWriter>,
}

impl AsyncRead for SessionIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for SessionIo {
    /// Takes everything at once, so a frame is never split around another.
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writer.send_framed(&Bytes::copy_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
