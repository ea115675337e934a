//! A connection's write side. Frames go straight into the socket from whichever thread
//! hands them over (the fan-out, the session's own answers), without waking the
//! connection's task: one system call, no copy, no task switch. Only what the socket does
//! not take at once is queued, in order; the session task drains that queue when the
//! socket is writable again, many frames per system call.
//!
//! Server frames are framed here (RFC 6455: unmasked, FIN, a 2 to 10-byte header), so
//! nothing keeps a buffer the size of the largest frame ever sent: a frame's bytes are
//! the shared event bytes plus a header on the stack, and a drained queue gives its
//! memory back.

use bytes::Bytes;
use metrics::{Counter, Histogram};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use synctv_cluster::MemberSink;
use synctv_cluster::NodeCounters;
use synctv_core::RoomId;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Past this many slots, a drained queue gives its memory back.
const KEEP_CAPACITY: usize = 4;
/// Frames offered to one vectored write (two slices each; Linux takes up to 1024).
const FRAMES_PER_WRITE: usize = 64;

/// Resolved once: the macros look the metric up by name on every call.
static DELIVERY_LATENCY: LazyLock<Histogram> =
    LazyLock::new(|| metrics::histogram!("synctv_delivery_latency_seconds"));
static SLOW_CONSUMERS: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("synctv_slow_consumer_disconnects_total"));

/// What the session task has to see to, taken with [`FrameWriter::take_attention`].
#[derive(Debug, Default)]
pub struct Attention {
    /// Frames wait for the socket to become writable.
    pub backlog: bool,
    /// The queue overflowed: the member is too slow; say `reconnect` and close.
    pub overloaded: bool,
    /// The socket failed while writing: the connection is over.
    pub broken: bool,
    /// Rooms archived while this connection was a member.
    pub closed_rooms: Vec<RoomId>,
}

pub struct FrameWriter {
    stream: Arc<TcpStream>,
    state: Mutex<WriteState>,
    /// Wakes the session task when [`Attention`] has something for it.
    attention: Notify,
    /// Frames from rooms the queue may hold before the member counts as too slow.
    capacity: usize,
    /// Where deliveries are counted (the metric and the node's own count).
    counters: Arc<NodeCounters>,
}

#[derive(Default)]
struct WriteState {
    queue: VecDeque<Wire>,
    /// Bytes of the front frame (header included) already written.
    sent: usize,
    attention: Attention,
    /// The connection is over: nothing more is written.
    closed: bool,
}

/// One frame as it goes on the wire: a header (empty for frames framed elsewhere) and
/// the payload.
struct Wire {
    head: Head,
    body: Bytes,
    /// When the server accepted the event, for the delivery metrics; `None` for the
    /// session's own frames.
    accepted: Option<Instant>,
}

impl Wire {
    fn len(&self) -> usize {
        self.head.len as usize + self.body.len()
    }
}

/// A server frame's header: FIN, opcode, and the payload length in 7, 16 or 64 bits
/// (server frames are not masked).
#[derive(Clone, Copy)]
struct Head {
    bytes: [u8; 10],
    len: u8,
}

impl Head {
    const NONE: Head = Head {
        bytes: [0; 10],
        len: 0,
    };

    /// FIN and the text opcode.
    const TEXT: u8 = 0x81;
    /// FIN and the close opcode.
    const CLOSE: u8 = 0x88;

    fn text(payload: usize) -> Head {
        Head::new(Head::TEXT, payload)
    }

    fn new(first: u8, payload: usize) -> Head {
        let mut bytes = [0u8; 10];
        bytes[0] = first;
        let len = if payload < 126 {
            bytes[1] = payload as u8;
            2
        } else if let Ok(short) = u16::try_from(payload) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload as u64).to_be_bytes());
            10
        };
        Head { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl FrameWriter {
    pub fn new(stream: Arc<TcpStream>, capacity: usize, counters: Arc<NodeCounters>) -> Self {
        Self {
            stream,
            state: Mutex::new(WriteState::default()),
            attention: Notify::new(),
            capacity,
            counters,
        }
    }

    fn state(&self) -> MutexGuard<'_, WriteState> {
        // Plain data behind the lock; a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends the session's own text frame (an answer, `reconnect`, an error), in order
    /// with everything else; never refused for being slow.
    pub fn send_text(&self, frame: &Bytes) {
        self.enqueue(Head::text(frame.len()), frame, None, false);
    }

    /// Sends bytes already framed (the WebSocket library's control frames: pongs).
    pub fn send_framed(&self, bytes: &Bytes) {
        self.enqueue(Head::NONE, bytes, None, false);
    }

    /// Sends a close frame: `code`, then `reason` (at most 123 bytes, the rest cut off).
    pub fn send_close(&self, code: u16, reason: &str) {
        let reason = &reason.as_bytes()[..reason.len().min(123)];
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason);
        self.enqueue(
            Head::new(Head::CLOSE, payload.len()),
            &payload.into(),
            None,
            false,
        );
    }

    /// Writes a frame at once if nothing is queued before it, and queues what the socket
    /// did not take. `false` when refused.
    fn enqueue(
        &self,
        head: Head,
        body: &Bytes,
        accepted: Option<Instant>,
        from_room: bool,
    ) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        if from_room {
            if state.attention.overloaded {
                return false;
            }
            if state.queue.len() >= self.capacity {
                state.attention.overloaded = true;
                drop(state);
                SLOW_CONSUMERS.increment(1);
                self.attention.notify_one();
                return false;
            }
        }
        if !state.queue.is_empty() {
            // Already the session's to drain, after what is before it.
            state.queue.push_back(Wire {
                head,
                body: body.clone(),
                accepted,
            });
            return true;
        }
        // The common case: straight into the socket, nothing queued, nobody woken.
        let total = head.len as usize + body.len();
        let written = loop {
            let slices = [IoSlice::new(head.as_slice()), IoSlice::new(body)];
            match self.stream.try_write_vectored(&slices) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match written {
            Ok(n) if n == total => {
                if let Some(accepted) = accepted {
                    record_delivered(&self.counters, accepted.elapsed());
                }
                return true;
            }
            Ok(n) if n > 0 => {
                state.sent = n;
                state.attention.backlog = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => state.attention.backlog = true,
            Ok(_) | Err(_) => state.attention.broken = true,
        }
        state.queue.push_back(Wire {
            head,
            body: body.clone(),
            accepted,
        });
        drop(state);
        self.attention.notify_one();
        true
    }

    /// Writes what the socket takes now, many frames per call. `true` when the queue is
    /// empty; `false` when frames wait (flagged for the session to drain) or the socket
    /// broke (flagged too).
    fn write_queued(&self, state: &mut WriteState) -> bool {
        loop {
            if state.queue.is_empty() {
                if state.queue.capacity() > KEEP_CAPACITY {
                    state.queue = VecDeque::new();
                }
                return true;
            }
            let written = {
                let mut slices = [IoSlice::new(&[]); 2 * FRAMES_PER_WRITE];
                let mut count = 0;
                let mut skip = state.sent;
                for wire in state.queue.iter().take(FRAMES_PER_WRITE) {
                    for part in [wire.head.as_slice(), &wire.body[..]] {
                        if skip >= part.len() {
                            skip -= part.len();
                        } else {
                            slices[count] = IoSlice::new(&part[skip..]);
                            skip = 0;
                            count += 1;
                        }
                    }
                }
                self.stream.try_write_vectored(&slices[..count])
            };
            match written {
                Ok(0) => {
                    state.attention.broken = true;
                    return false;
                }
                Ok(n) => state.advance(n, &self.counters),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    state.attention.backlog = true;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    state.attention.broken = true;
                    return false;
                }
            }
        }
    }

    /// Waits until the session has something to see to.
    pub async fn attention(&self) {
        self.attention.notified().await
    }

    /// What the session has to see to (cleared by taking it).
    pub fn take_attention(&self) -> Attention {
        std::mem::take(&mut self.state().attention)
    }

    /// Writes every queued frame, waiting for the socket as needed.
    pub async fn drain(&self) -> io::Result<()> {
        loop {
            {
                let mut state = self.state();
                if state.closed {
                    return Ok(());
                }
                if self.write_queued(&mut state) {
                    state.attention.backlog = false;
                    return Ok(());
                }
                if state.attention.broken {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
            }
            self.stream.writable().await?;
        }
    }

    /// Drops the queued frames no byte of which was written yet (a slow member's, about
    /// to be told to reconnect: it recovers them). A frame begun is kept, so the stream
    /// stays well-formed.
    pub fn discard_queued(&self) {
        let mut state = self.state();
        let keep = usize::from(state.sent > 0);
        state.queue.truncate(keep);
    }

    /// The connection is over: nothing more is accepted or written.
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.queue = VecDeque::new();
    }
}

impl WriteState {
    /// `n` more bytes went out: drops the frames they completed.
    fn advance(&mut self, mut n: usize, counters: &NodeCounters) {
        let now = Instant::now();
        while let Some(front) = self.queue.front() {
            let left = front.len() - self.sent;
            if n < left {
                self.sent += n;
                break;
            }
            n -= left;
            self.sent = 0;
            if let Some(accepted) = front.accepted {
                record_delivered(counters, now.duration_since(accepted));
            }
            self.queue.pop_front();
        }
    }
}

fn record_delivered(counters: &NodeCounters, latency: Duration) {
    counters.delivered(1);
    DELIVERY_LATENCY.record(latency.as_secs_f64());
}

impl MemberSink for FrameWriter {
    fn frame(&self, frame: &Bytes, accepted: Instant) -> bool {
        self.enqueue(Head::text(frame.len()), frame, Some(accepted), true)
    }

    fn room_closed(&self, room: &RoomId) {
        self.state().attention.closed_rooms.push(room.clone());
        self.attention.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A writer on one end of a loopback connection, and the other end (the client).
    async fn pair(capacity: usize, small_buffers: bool) -> (FrameWriter, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        if small_buffers {
            client.set_recv_buffer_size(4096).unwrap();
        }
        let client = client
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        if small_buffers {
            socket2::SockRef::from(&server)
                .set_send_buffer_size(4096)
                .unwrap();
        }
        let counters = Arc::new(NodeCounters::default());
        (
            FrameWriter::new(Arc::new(server), capacity, counters),
            client,
        )
    }

    /// Reads `count` server frames off the client end: (first byte, payload).
    async fn read_frames(client: &mut TcpStream, count: usize) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        for _ in 0..count {
            let mut head = [0u8; 2];
            client.read_exact(&mut head).await.unwrap();
            assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
            let len = match head[1] {
                126 => {
                    let mut l = [0u8; 2];
                    client.read_exact(&mut l).await.unwrap();
                    u16::from_be_bytes(l) as usize
                }
                127 => {
                    let mut l = [0u8; 8];
                    client.read_exact(&mut l).await.unwrap();
                    u64::from_be_bytes(l) as usize
                }
                short => short as usize,
            };
            let mut payload = vec![0u8; len];
            client.read_exact(&mut payload).await.unwrap();
            frames.push((head[0], payload));
        }
        frames
    }

    fn text(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[test]
    fn headers_carry_7_16_and_64_bit_lengths() {
        assert_eq!(Head::text(125).as_slice(), [0x81, 125]);
        assert_eq!(Head::text(126).as_slice(), [0x81, 126, 0, 126]);
        assert_eq!(Head::text(65_535).as_slice(), [0x81, 126, 0xff, 0xff]);
        assert_eq!(
            Head::text(65_536).as_slice(),
            [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[tokio::test]
    async fn a_frame_goes_straight_into_the_socket_without_the_session() {
        let (writer, mut client) = pair(8, false).await;
        assert!(writer.frame(&text(b'a', 100), Instant::now()));
        assert!(writer.frame(&text(b'b', 300), Instant::now()));
        writer.send_close(1000, "bye");
        let attention = writer.take_attention();
        assert!(!attention.backlog && !attention.overloaded && !attention.broken);
        let frames = read_frames(&mut client, 3).await;
        assert_eq!(frames[0], (0x81, vec![b'a'; 100]));
        assert_eq!(frames[1], (0x81, vec![b'b'; 300]));
        assert_eq!(frames[2], (0x88, b"\x03\xe8bye".to_vec()));
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_is_queued_in_order_and_drained() {
        let (writer, mut client) = pair(64, true).await;
        // Far more than both socket buffers: written in part, the rest queued.
        let sizes = [200_000, 10, 70_000, 5];
        for (i, size) in sizes.iter().enumerate() {
            assert!(writer.frame(&text(b'a' + i as u8, *size), Instant::now()));
        }
        assert!(
            writer.take_attention().backlog,
            "the session is asked to drain"
        );
        let reader = tokio::spawn(async move { read_frames(&mut client, 4).await });
        writer.drain().await.unwrap();
        let frames = reader.await.unwrap();
        for (i, size) in sizes.iter().enumerate() {
            assert_eq!(frames[i], (0x81, vec![b'a' + i as u8; *size]), "frame {i}");
        }
        assert!(writer.state().queue.capacity() <= KEEP_CAPACITY);
    }

    #[tokio::test]
    async fn a_member_that_does_not_read_is_flagged_and_its_stream_stays_whole() {
        let (writer, mut client) = pair(3, true).await;
        // Fill the socket until frames queue, then the queue until it overflows.
        let mut accepted = 0;
        while writer.frame(&text(b'x', 50_000), Instant::now()) {
            accepted += 1;
            assert!(accepted < 1000, "never flagged");
        }
        let attention = writer.take_attention();
        assert!(attention.overloaded && attention.backlog);
        // Refused from now on, while the session's own frames still go.
        assert!(!writer.frame(&text(b'y', 10), Instant::now()));
        writer.discard_queued();
        writer.send_close(1012, "reconnect");
        let reader = tokio::spawn(async move {
            let mut bytes = Vec::new();
            client.read_to_end(&mut bytes).await.unwrap();
            bytes
        });
        writer.drain().await.unwrap();
        drop(writer);
        let bytes = reader.await.unwrap();
        // Whole frames of x, then the close: a frame begun was finished, the rest dropped.
        // The close: a 2-byte header, the code, "reconnect".
        let whole = bytes.len() - 2 - 2 - 9;
        assert_eq!(
            whole % (4 + 50_000),
            0,
            "only whole frames before the close"
        );
        assert!(whole / (4 + 50_000) < accepted);
        assert_eq!(&bytes[whole..whole + 4], [0x88, 11, 0x03, 0xf4]);
    }

    #[tokio::test]
    async fn a_closed_writer_refuses_and_writes_nothing() {
        let (writer, mut client) = pair(8, false).await;
        writer.close();
        assert!(!writer.frame(&text(b'a', 10), Instant::now()));
        writer.send_text(&text(b'b', 10));
        drop(writer);
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        assert!(bytes.is_empty());
    }

    #[tokio::test]
    async fn a_socket_the_peer_reset_is_flagged_broken() {
        let (writer, client) = pair(8, false).await;
        // Linger 0 makes the close a reset.
        socket2::SockRef::from(&client)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(client);
        let mut tries = 0;
        while !writer.take_attention().broken {
            writer.frame(&text(b'a', 1000), Instant::now());
            tries += 1;
            assert!(tries < 10_000, "a reset socket is never flagged");
            tokio::task::yield_now().await;
        }
    }
}
