//! A room member that checks the contract's order rule as it goes: every event of its room
//! has the seq after the last one it saw, except right after a `resync` (whose `data.seq`
//! says where it resumes). Run as a task, it keeps reading (so its queue never fills),
//! may publish chats (and now and then a seek) at a steady pace, and reconnects and
//! recovers, on the first node of its list that accepts it, when its connection drops.

use crate::ws_client::WsClient;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a member waits for the answer the server owes it.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a member looks for a node that takes its connection.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(30);
/// A wait that never ends on its own (the caller bounds it).
const FOREVER: Duration = Duration::from_secs(3600);

pub struct Member {
    /// A label for messages: `node-N/name`.
    pub label: String,
    pub room: String,
    token: String,
    /// Where it connects: the first that accepts, in order.
    urls: Vec<String>,
    client: Option<WsClient>,
    pub epoch: String,
    /// The seq of the room's last event this member knows of.
    pub last_seq: i64,
    /// The seq `joined` reported on the first join.
    pub first_seq: i64,
    /// Every event received (live or recovered), in order; `resync` notices included.
    pub events: Vec<Value>,
    /// The state as this member last learned it.
    pub state: Value,
    /// `(seq, text)` of each acked chat; `(seq, seek position)` for acked seeks.
    pub acked_chats: Vec<(i64, String)>,
    pub acked_seeks: usize,
    /// Error answers to its own messages.
    pub errors: Vec<Value>,
    pub resyncs: usize,
    /// Rejoins after a dropped connection, and how many answered `recovered: true`.
    pub rejoins: usize,
    pub recovered: usize,
    /// Whether a dropped connection must be recovered (`recovered: true`) to pass.
    pub must_recover: bool,
    next_id: i64,
}

/// How a member publishes while it runs as a task.
#[derive(Clone, Copy, Debug)]
pub struct Publish {
    /// Time between two messages (one outstanding message at a time).
    pub every: Duration,
    /// Every `seek_every`-th message is a seek instead of a chat (0: chats only).
    pub seek_every: usize,
    /// Stop publishing after this many messages.
    pub count: Option<usize>,
}

/// What a running member shows the test while it runs.
#[derive(Default)]
pub struct Progress {
    pub acks: AtomicUsize,
    pub last_seq: AtomicI64,
    pub last_ack_seq: AtomicI64,
    /// Set by the test: publish no more (the task keeps reading).
    pub quiet: AtomicBool,
    /// A message of this member awaits its answer.
    pub busy: AtomicBool,
    /// Set by the test: drop the connection and recover on the next node of the list.
    pub hop: tokio::sync::Notify,
    /// Hops done.
    pub hops: AtomicUsize,
}

pub struct MemberTask {
    pub label: String,
    pub progress: Arc<Progress>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<Member>,
}

impl Member {
    /// The seqs of the events this member kept, in the order it received them.
    pub fn seqs(&self) -> Vec<i64> {
        self.events
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    }

    /// Connects to the first of `urls` that accepts and joins `room`.
    pub async fn join(label: &str, urls: Vec<String>, token: &str, room: &str) -> Member {
        let mut member = Member {
            label: label.to_owned(),
            room: room.to_owned(),
            token: token.to_owned(),
            urls,
            client: None,
            epoch: String::new(),
            last_seq: 0,
            first_seq: 0,
            events: Vec::new(),
            state: Value::Null,
            acked_chats: Vec::new(),
            acked_seeks: 0,
            errors: Vec::new(),
            resyncs: 0,
            rejoins: 0,
            recovered: 0,
            must_recover: false,
            next_id: 0,
        };
        member.connect().await;
        let joined = member.send_join(None).await;
        member.epoch = joined["epoch"].as_str().unwrap().to_owned();
        member.last_seq = joined["seq"].as_i64().unwrap();
        member.first_seq = member.last_seq;
        member.state = joined["state"].clone();
        member
    }

    /// Runs as a task until `MemberTask::finish`.
    pub fn spawn(self, publish: Option<Publish>) -> MemberTask {
        let label = self.label.clone();
        let progress = Arc::new(Progress::default());
        progress.last_seq.store(self.last_seq, Ordering::SeqCst);
        let (stop, stopped) = watch::channel(false);
        let handle = tokio::spawn(self.run(publish, progress.clone(), stopped));
        MemberTask {
            label,
            progress,
            stop,
            handle,
        }
    }

    async fn run(
        mut self,
        publish: Option<Publish>,
        progress: Arc<Progress>,
        mut stopped: watch::Receiver<bool>,
    ) -> Member {
        let every = publish.map_or(FOREVER, |p| p.every.max(Duration::from_millis(1)));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent = 0usize;
        // The message awaiting its answer: id, chat text (None for a seek), deadline.
        let mut outstanding: Option<(i64, Option<String>, tokio::time::Instant)> = None;
        let mut stopping = false;
        loop {
            if stopping && outstanding.is_none() {
                return self;
            }
            progress.busy.store(outstanding.is_some(), Ordering::SeqCst);
            let may_send = !stopping
                && outstanding.is_none()
                && !progress.quiet.load(Ordering::SeqCst)
                && publish.is_some_and(|p| p.count.is_none_or(|c| sent < c));
            let deadline = outstanding
                .as_ref()
                .map_or(tokio::time::Instant::now() + FOREVER, |o| o.2);
            let client = self.client.as_mut();
            enum Step {
                Stop,
                Send,
                Frame(Option<Value>),
                Late,
                Hop,
            }
            let step = tokio::select! {
                _ = stopped.wait_for(|s| *s), if !stopping => Step::Stop,
                _ = tick.tick(), if may_send => Step::Send,
                frame = next_of(client) => Step::Frame(frame),
                // A deadline for the answer owed, not a wait: it ends the test as a failure.
                _ = tokio::time::sleep_until(deadline) => Step::Late,
                _ = progress.hop.notified() => Step::Hop,
            };
            match step {
                Step::Stop => stopping = true,
                Step::Late => panic!(
                    "{}: no answer to message {:?} within {PATIENCE:?}",
                    self.label, outstanding
                ),
                Step::Send => {
                    // Busy first, then the quiet check: a test that set quiet and then
                    // saw not busy never sees a message sent after that.
                    progress.busy.store(true, Ordering::SeqCst);
                    if progress.quiet.load(Ordering::SeqCst) {
                        progress.busy.store(false, Ordering::SeqCst);
                        continue;
                    }
                    let p = publish.unwrap();
                    let id = self.next_id();
                    let seek = p.seek_every > 0 && sent % p.seek_every == p.seek_every - 1;
                    let (message, text) = if seek {
                        let message = json!({"type": "playback", "room": self.room,
                            "action": "seek", "position": sent as f64, "id": id});
                        (message, None)
                    } else {
                        let text = format!("{}#{sent}", self.label);
                        let message =
                            json!({"type": "chat", "room": self.room, "text": text, "id": id});
                        (message, Some(text))
                    };
                    sent += 1;
                    self.send(message).await;
                    outstanding = Some((id, text, tokio::time::Instant::now() + PATIENCE));
                }
                Step::Hop => {
                    // Leaves its node abruptly and recovers on the next one of its list.
                    outstanding = None;
                    self.urls.rotate_left(1);
                    self.rejoin().await;
                    progress.hops.fetch_add(1, Ordering::SeqCst);
                }
                Step::Frame(None) => {
                    // Dropped (a dead node, a reconnect request): whatever was outstanding
                    // is unknown, neither acked nor refused.
                    outstanding = None;
                    self.rejoin().await;
                }
                Step::Frame(Some(frame)) => {
                    if frame["type"] == "reconnect" {
                        self.client.take().unwrap().close().await;
                        outstanding = None;
                        self.rejoin().await;
                    } else if frame["type"] != "event"
                        && outstanding.as_ref().is_some_and(|o| frame["id"] == o.0)
                    {
                        let (_, text, _) = outstanding.take().unwrap();
                        self.note_answer(&frame, text.as_deref());
                        if frame["type"] == "ack" {
                            progress.acks.fetch_add(1, Ordering::SeqCst);
                            progress
                                .last_ack_seq
                                .store(frame["seq"].as_i64().unwrap(), Ordering::SeqCst);
                        }
                    } else {
                        self.absorb(&frame);
                    }
                }
            }
            progress.last_seq.store(self.last_seq, Ordering::SeqCst);
        }
    }

    /// Checks and keeps one frame that answers nothing of ours.
    fn absorb(&mut self, frame: &Value) {
        match frame["type"].as_str() {
            Some("event") if frame["room"] == self.room.as_str() => self.event(frame),
            Some("event") | Some("pong") => {}
            Some("error") => self.errors.push(frame.clone()),
            _ => {}
        }
    }

    fn event(&mut self, event: &Value) {
        if event["kind"] == "resync" {
            self.resyncs += 1;
            self.last_seq = event["data"]["seq"]
                .as_i64()
                .unwrap_or_else(|| panic!("{}: resync without data.seq: {event}", self.label));
            self.state = event["data"]["state"].clone();
            self.events.push(event.clone());
            return;
        }
        let seq = event["seq"].as_i64().unwrap();
        assert_eq!(
            seq,
            self.last_seq + 1,
            "{}: event out of order (last seen {}): {event}",
            self.label,
            self.last_seq
        );
        self.last_seq = seq;
        if let Some(epoch) = event["epoch"].as_str() {
            self.epoch = epoch.to_owned();
        }
        if event["kind"] == "playback" || event["kind"] == "media" {
            self.state = event["data"]["state"].clone();
        }
        self.events.push(event.clone());
    }

    fn note_answer(&mut self, answer: &Value, chat_text: Option<&str>) {
        match answer["type"].as_str() {
            Some("ack") => {
                let seq = answer["seq"].as_i64().unwrap();
                match chat_text {
                    Some(text) => self.acked_chats.push((seq, text.to_owned())),
                    None => self.acked_seeks += 1,
                }
            }
            _ => self.errors.push(answer.clone()),
        }
    }

    /// Reconnects (first node of the list that accepts) and joins with `recover`.
    async fn rejoin(&mut self) {
        if let Some(client) = self.client.take() {
            client.close().await;
        }
        self.rejoins += 1;
        self.connect().await;
        let recover = json!({"epoch": self.epoch, "seq": self.last_seq});
        let joined = self.send_join(Some(recover)).await;
        self.epoch = joined["epoch"].as_str().unwrap().to_owned();
        let last = joined["seq"].as_i64().unwrap();
        if joined["recovered"] == true {
            self.recovered += 1;
            for event in joined["events"].as_array().unwrap().clone() {
                self.event(&event);
            }
            assert_eq!(
                self.last_seq, last,
                "{}: the recovered events do not reach joined.seq: {joined}",
                self.label
            );
        } else {
            assert!(
                !self.must_recover,
                "{}: not recovered after a dropped connection: {joined}",
                self.label
            );
            self.resyncs += 1;
            self.events
                .push(json!({"kind": "resync", "data": {"seq": last}}));
            self.last_seq = last;
        }
        self.state = joined["state"].clone();
        // The state in `joined` is the one after joined.seq; recovered playback events
        // before it are older.
    }

    /// Connects to the first node that is up, in `urls` order. Nodes die and restart
    /// while members reconnect, so a pass that finds none is tried again, up to a deadline.
    async fn connect(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = tokio::time::Instant::now() + RECONNECT_PATIENCE;
        let mut pace = tokio::time::interval(Duration::from_millis(200));
        while tokio::time::Instant::now() < deadline {
            pace.tick().await;
            for url in &self.urls {
                // A node that answers /health is alive (a dying one may still take a TCP
                // connection, and reset it).
                let health = url
                    .replacen("ws://", "http://", 1)
                    .replace("/ws", "/health");
                if !http
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    continue;
                }
                if let Ok(client) =
                    WsClient::try_connect(&format!("{url}?token={}", self.token), None).await
                {
                    self.client = Some(client);
                    return;
                }
            }
        }
        panic!(
            "{}: no node accepted the connection within {RECONNECT_PATIENCE:?}",
            self.label
        );
    }

    async fn send_join(&mut self, recover: Option<Value>) -> Value {
        let id = format!("join-{}", self.next_id());
        let mut message = json!({"type": "join", "room": self.room, "id": id});
        if let Some(recover) = recover {
            message["recover"] = recover;
        }
        self.send(message).await;
        let joined = self.answer(id.as_str()).await.expect("connection closed");
        assert_eq!(
            joined["type"], "joined",
            "{}: join refused: {joined}",
            self.label
        );
        joined
    }

    async fn send(&mut self, message: Value) {
        self.client.as_mut().unwrap().send(message).await;
    }

    /// The next frame, `None` once the connection closed.
    async fn next(&mut self) -> Option<Value> {
        next_of(self.client.as_mut()).await
    }

    /// Frames until the answer carrying `id` (events on the way are checked and kept).
    async fn answer(&mut self, id: impl Into<Value>) -> Option<Value> {
        let id = id.into();
        let label = self.label.clone();
        tokio::time::timeout(PATIENCE, async {
            loop {
                let frame = self.next().await?;
                if frame["type"] != "event" && frame["id"] == id {
                    return Some(frame);
                }
                self.absorb(&frame);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: no answer to {id} in time"))
    }

    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}

async fn next_of(client: Option<&mut WsClient>) -> Option<Value> {
    match client {
        Some(client) => client.next_frame(FOREVER).await,
        None => None,
    }
}

impl MemberTask {
    /// Stops publishing, waits for the outstanding answer, and hands the member back.
    pub async fn finish(self) -> Member {
        self.stop.send_replace(true);
        self.handle.await.expect("member task panicked")
    }

    /// Stops publishing; the member keeps reading.
    pub fn quiet(&self) {
        self.progress.quiet.store(true, Ordering::SeqCst);
    }

    /// Quiet, with no message awaiting its answer.
    pub fn is_idle(&self) -> bool {
        self.progress.quiet.load(Ordering::SeqCst) && !self.progress.busy.load(Ordering::SeqCst)
    }

    /// Drops the connection and recovers on the next node of its list; returns once done.
    pub async fn hop(&self) {
        let before = self.progress.hops.load(Ordering::SeqCst);
        self.progress.hop.notify_one();
        crate::cluster::wait_for(PATIENCE, &format!("{} hopped", self.label), || async {
            (self.progress.hops.load(Ordering::SeqCst) > before).then_some(())
        })
        .await;
    }

    pub fn acks(&self) -> usize {
        self.progress.acks.load(Ordering::SeqCst)
    }

    pub fn last_seq(&self) -> i64 {
        self.progress.last_seq.load(Ordering::SeqCst)
    }

    pub fn last_ack_seq(&self) -> i64 {
        self.progress.last_ack_seq.load(Ordering::SeqCst)
    }

    /// Whether the task ended early (a panic: a broken rule).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Each event a member kept is the history's event at that seq.
pub fn assert_events_match(member: &Member, history: &[Value]) {
    for event in member.events.iter().filter(|e| e["kind"] != "resync") {
        let seq = event["seq"].as_i64().unwrap();
        let truth = &history[(seq - 1) as usize];
        assert_eq!(
            (&event["kind"], &event["data"], &event["by"]),
            (&truth["kind"], &truth["data"], &truth["by"]),
            "{}: another event at seq {seq}",
            member.label
        );
    }
}
