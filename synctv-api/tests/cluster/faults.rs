//! Real faults while events flow: `kill -9` of a node, Redis stopped and restarted, one
//! node's link to Redis cut and restored. Every test ends with the history check: every
//! acked event exactly once, no gap.

use crate::cluster::{
    check_history, death_bound, final_state, node_ids, state_key, wait_for, TestBus, TestCluster,
};
use crate::member::{assert_events_match, Member, MemberTask, Publish};
use crate::proxy::TcpProxy;
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The contract's bound: once Redis is back, cross-node delivery resumes within this.
const RECONVERGENCE: Duration = Duration::from_secs(10);

/// The reconciler checks the rooms once at start and then not again within a test (an
/// hour between checks), so an event that reaches another node while its room is quiet
/// came through the bus. Gaps revealed by a node's own commits are still filled from the
/// history at once, which is what carries events across an outage.
pub fn reconciler_idle() -> [(&'static str, String); 1] {
    [("SYNCTV__CLUSTER__RECONCILE_SECS", "3600".to_owned())]
}

/// Every publisher of `tasks` acks `more` messages beyond what it had.
pub async fn more_acks(tasks: &[MemberTask], publishers: &[usize], more: usize, what: &str) {
    let start: Vec<usize> = publishers.iter().map(|&i| tasks[i].acks()).collect();
    wait_for(Duration::from_secs(20), what, || async {
        if let Some(t) = tasks.iter().find(|t| t.is_finished()) {
            panic!("member task {} ended early (see its panic above)", t.label);
        }
        publishers
            .iter()
            .zip(&start)
            .all(|(&i, &s)| tasks[i].acks() >= s + more)
            .then_some(())
    })
    .await;
}

/// Stops publishing, then waits for every answer and for every member to reach the
/// history's end: the room is quiet, and the members still read.
pub async fn quiesce(cluster: &TestCluster, room: &str, tasks: &[MemberTask]) {
    for task in tasks {
        task.quiet();
    }
    wait_for(Duration::from_secs(15), "every answer arrived", || async {
        tasks.iter().all(|t| t.is_idle()).then_some(())
    })
    .await;
    let last = cluster.history(room).await.len() as i64;
    wait_for(
        Duration::from_secs(15),
        "every member reached the end of the history",
        || async {
            if let Some(t) = tasks.iter().find(|t| t.is_finished()) {
                panic!("member task {} ended early (see its panic above)", t.label);
            }
            tasks.iter().all(|t| t.last_seq() >= last).then_some(())
        },
    )
    .await;
}

/// Quiesces the room and hands the members back.
pub async fn settle(cluster: &TestCluster, room: &str, tasks: Vec<MemberTask>) -> Vec<Member> {
    quiesce(cluster, room, &tasks).await;
    let mut members = Vec::new();
    for task in tasks {
        members.push(task.finish().await);
    }
    members
}

pub fn all_acked(members: &[Member]) -> Vec<(i64, String)> {
    members
        .iter()
        .flat_map(|m| m.acked_chats.iter().cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_while_events_flow() {
    kill_9_while_events_flow(TestBus::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_while_events_flow_on_nats() {
    kill_9_while_events_flow(TestBus::nats().await).await;
}

async fn kill_9_while_events_flow(bus: TestBus) {
    let mut cluster = TestCluster::start_on(3, &bus).await;
    kill_9_of_nodes_while_events_flow(&mut cluster, &[2], || {}).await;
}

/// Two members on every node publish; `victims` are killed with -9 (and `kill_more`
/// kills what else goes with them, a region's NATS); their members reconnect to the
/// next node that answers and recover every acked event, and the history holds each
/// acked event exactly once.
pub async fn kill_9_of_nodes_while_events_flow(
    cluster: &mut TestCluster,
    victims: &[usize],
    kill_more: impl FnOnce(),
) -> Duration {
    let n = cluster.len();
    let owner = cluster.guest(0, "owner").await;
    let room = cluster.room(0, &owner, "r").await;
    let mut tasks = Vec::new();
    for node in 0..n {
        for k in 0..2 {
            let guest = cluster.guest(node, &format!("n{node}m{k}")).await;
            // Home node first, then the others.
            let urls = (0..n).map(|i| cluster.ws_url((node + i) % n)).collect();
            let label = format!("node-{node}/m{k}");
            let mut member = Member::join(&label, urls, &guest.token, &room).await;
            member.must_recover = true;
            let publish = Publish {
                every: Duration::from_millis(20),
                seek_every: 0,
                count: None,
            };
            tasks.push(member.spawn(Some(publish)));
        }
    }
    let everyone: Vec<usize> = (0..tasks.len()).collect();
    more_acks(&tasks, &everyone, 5, "acks before the kill").await;

    for &victim in victims {
        cluster.kill9(victim);
    }
    kill_more();
    let killed = Instant::now();
    // The victims' members reconnect elsewhere and recover; everyone goes on publishing.
    more_acks(
        &tasks,
        &everyone,
        10,
        "acks after the kill, on every member",
    )
    .await;
    let recovered_within = killed.elapsed();
    let members = settle(cluster, &room, tasks).await;

    let history = cluster.history(&room).await;
    check_history(&history, &all_acked(&members));
    for member in &members {
        assert_eq!(member.errors, Vec::<Value>::new(), "{}", member.label);
        let home_killed = victims
            .iter()
            .any(|v| member.label.starts_with(&format!("node-{v}/")));
        if home_killed {
            assert!(member.rejoins >= 1, "{}: never reconnected", member.label);
        } else {
            assert_eq!(member.rejoins, 0, "{}: dropped", member.label);
        }
        assert_eq!(member.recovered, member.rejoins, "{}", member.label);
        assert_eq!(
            member.resyncs, 0,
            "{}: a resync, not a recovery",
            member.label
        );
        // Every event after its first join, none missing, none twice.
        let seqs = member.seqs();
        let expected: Vec<i64> = (member.first_seq + 1..=member.last_seq).collect();
        assert_eq!(seqs, expected, "{}", member.label);
        assert_events_match(member, &history);
    }
    recovered_within
}

/// How a test breaks and heals the link between nodes and their bus.
pub enum Fault<'a> {
    /// The bus itself is killed, then started again (empty).
    BusDown(&'a TestBus),
    /// One region's NATS server is killed, then started again.
    RegionNatsDown(&'a crate::nats::NatsServer),
    /// One node's link to the bus goes through this proxy, which is cut then restored.
    Partition(&'a TcpProxy),
    /// The bus hangs (SIGSTOP: connections stay open, nothing answers), then goes on
    /// (SIGCONT).
    BusHung(&'a TestBus),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_while_events_flow() {
    let bus = TestBus::redis().await;
    let cluster = TestCluster::start_env(3, |_| vec![bus.setting()], &reconciler_idle()).await;
    events_flow_through(&cluster, bus.check(), Fault::BusDown(&bus), &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_stopped_and_restarted_while_events_flow() {
    let bus = TestBus::nats().await;
    let cluster = TestCluster::start_env(3, |_| vec![bus.setting()], &reconciler_idle()).await;
    events_flow_through(&cluster, bus.check(), Fault::BusDown(&bus), &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung_then_resumed_while_events_flow() {
    let bus = TestBus::redis().await;
    let cluster = TestCluster::start_env(3, |_| vec![bus.setting()], &reconciler_idle()).await;
    events_flow_through(&cluster, bus.check(), Fault::BusHung(&bus), &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_hung_then_resumed_while_events_flow() {
    let bus = TestBus::nats().await;
    let cluster = TestCluster::start_env(3, |_| vec![bus.setting()], &reconciler_idle()).await;
    events_flow_through(&cluster, bus.check(), Fault::BusHung(&bus), &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_serves_its_clients_then_converges() {
    cut_off_then_converges(TestBus::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_serves_its_clients_then_converges() {
    cut_off_then_converges(TestBus::nats().await).await;
}

async fn cut_off_then_converges(bus: TestBus) {
    let target: SocketAddr = ([127, 0, 0, 1], bus.port()).into();
    let proxy = TcpProxy::start(target).await;
    let cluster = TestCluster::start_env(
        3,
        |i| {
            if i == 2 {
                vec![bus.setting_through(&proxy)]
            } else {
                vec![bus.setting()]
            }
        },
        &reconciler_idle(),
    )
    .await;
    events_flow_through(&cluster, bus.check(), Fault::Partition(&proxy), &[2]).await;
}

/// A publisher and an observer on every node; `fault` breaks the link to Redis of the
/// `affected` nodes while events flow, then heals it. Checks: the affected nodes say 200
/// `degraded`, keep acking and serve their own members; within 10 s of the heal, delivery
/// across nodes resumes, every node agrees on the state and the members, and the history
/// has every acked event exactly once. Members connected throughout get every event in
/// order, or a `resync`.
pub async fn events_flow_through(
    cluster: &TestCluster,
    check: &str,
    fault: Fault<'_>,
    affected: &[usize],
) {
    let owner = cluster.guest(0, "owner").await;
    let room = cluster.room(0, &owner, "r").await;
    let mut tasks = Vec::new();
    let (mut publishers, mut observers) = (Vec::new(), Vec::new());
    for node in 0..cluster.len() {
        for role in ["publisher", "observer"] {
            let guest = cluster.guest(node, &format!("{role}{node}")).await;
            let label = format!("node-{node}/{role}");
            let member =
                Member::join(&label, vec![cluster.ws_url(node)], &guest.token, &room).await;
            let publish = (role == "publisher").then_some(Publish {
                every: Duration::from_millis(30),
                seek_every: 5,
                count: None,
            });
            if role == "publisher" {
                publishers.push(tasks.len());
            } else {
                observers.push(tasks.len());
            }
            tasks.push(member.spawn(publish));
        }
    }
    // A member that will leave an affected node during the outage and recover on another.
    let (home, away) = (
        *affected.last().unwrap(),
        (affected.last().unwrap() + 1) % cluster.len(),
    );
    let guest = cluster.guest(home, "hopper").await;
    let urls = vec![cluster.ws_url(home), cluster.ws_url(away)];
    let hopper = tasks.len();
    tasks.push(
        Member::join("hopper", urls, &guest.token, &room)
            .await
            .spawn(None),
    );
    let connected = tasks.len();
    more_acks(&tasks, &publishers, 5, "acks before the fault").await;

    match fault {
        Fault::BusDown(bus) => bus.stop(),
        Fault::RegionNatsDown(nats) => nats.stop(),
        Fault::Partition(proxy) => proxy.cut(),
        Fault::BusHung(bus) => bus.pause(),
    }
    for &node in affected {
        wait_for(
            Duration::from_secs(15),
            &format!("node-{node} says degraded"),
            || async {
                let (status, body) = cluster.ready(node).await;
                assert_eq!(status, StatusCode::OK, "node-{node} /ready: {body}");
                (body["status"] == "degraded" && body["checks"][check] == "down").then_some(())
            },
        )
        .await;
    }
    // Every node still acks, and the affected ones serve their own members.
    // Long enough (100 messages each, about 3 s) for heartbeat and presence TTLs to lapse.
    more_acks(&tasks, &publishers, 100, "acks during the outage").await;
    tasks[hopper].hop().await;
    if affected.len() < cluster.len() {
        // Long enough that the others take the cut-off nodes for dead.
        let linked: Vec<usize> = (0..cluster.len())
            .filter(|n| !affected.contains(n))
            .collect();
        wait_for(
            death_bound(),
            "the others forget the cut-off node",
            || async {
                (cluster.node_ids(linked[0]).await == node_ids(linked.iter().copied()))
                    .then_some(())
            },
        )
        .await;
        more_acks(&tasks, &publishers, 10, "acks while cut off").await;
    }
    for &node in affected {
        let (status, body) = cluster.ready(node).await;
        assert_eq!(
            (status, &body["status"], &body["checks"]["database"]),
            (StatusCode::OK, &Value::from("degraded"), &Value::from("ok")),
            "node-{node} during the outage: {body}"
        );
        let acked = tasks[publishers[node]].last_ack_seq();
        let observer = &tasks[observers[node]];
        wait_for(
            Duration::from_secs(10),
            &format!("node-{node}'s observer gets its own node's events during the outage"),
            || async { (observer.last_seq() >= acked).then_some(()) },
        )
        .await;
        // A new member can join there and chat.
        let guest = cluster.guest(node, &format!("visitor{node}")).await;
        let mut visitor = WsClient::connect(&cluster.ws_url(node), &guest.token).await;
        let joined = visitor.join(&room).await;
        assert_eq!(
            joined["members"].as_array().map(|m| m.is_empty()),
            Some(false)
        );
        let ack = visitor
            .chat(&room, &format!("visitor on node-{node}"), 1)
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        visitor.close().await;
    }
    for node in 0..cluster.len() {
        if !affected.contains(&node) {
            let (status, body) = cluster.ready(node).await;
            assert_eq!(
                (status, &body["status"]),
                (StatusCode::OK, &Value::from("ready")),
                "node-{node} keeps its link: {body}"
            );
        }
    }

    let fault_name = match fault {
        Fault::BusDown(_) => format!("{check} restarted"),
        Fault::RegionNatsDown(nats) => format!("{}'s nats restarted", nats.region),
        Fault::Partition(_) => "partition healed".to_owned(),
        Fault::BusHung(_) => format!("{check} resumed"),
    };
    match fault {
        Fault::BusDown(bus) => bus.restart().await,
        Fault::RegionNatsDown(nats) => nats.restart().await,
        Fault::Partition(proxy) => proxy.restore(),
        Fault::BusHung(bus) => bus.resume(),
    }
    let healed = Instant::now();
    let remaining = || RECONVERGENCE.saturating_sub(healed.elapsed());
    // A chat on one node reaches an observer on another (an affected one if it can).
    let (from, to) = match affected {
        [only] => ((only + 1) % cluster.len(), *only),
        _ => (0, 1),
    };
    let prober = cluster.guest(from, "prober").await;
    let mut probe = WsClient::connect(&cluster.ws_url(from), &prober.token).await;
    probe.join(&room).await;
    let ack = probe.chat(&room, "probe after the heal", 1).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_i64().unwrap();
    let observer = &tasks[observers[to]];
    wait_for(
        remaining(),
        "a chat from another node reaches the observer after the heal",
        || async { (observer.last_seq() >= seq).then_some(()) },
    )
    .await;
    eprintln!(
        "{fault_name}: a chat from node-{from} reached node-{to} {} ms after the heal",
        healed.elapsed().as_millis()
    );
    for node in 0..cluster.len() {
        wait_for(
            remaining(),
            &format!("node-{node} says ready with {check} ok"),
            || async {
                let (status, body) = cluster.ready(node).await;
                (status == StatusCode::OK
                    && body["status"] == "ready"
                    && body["checks"][check] == "ok")
                    .then_some(())
            },
        )
        .await;
    }
    wait_for(death_bound(), "every node listed again", || async {
        (cluster.node_ids(0).await == node_ids(0..cluster.len())).then_some(())
    })
    .await;
    more_acks(&tasks, &publishers, 3, "acks after the heal").await;
    // Live again, through the bus. An event reaches another node through the bus or from the
    // history; in a quiet room no commit on node `to` reveals a gap, and the reconciler is
    // idle (`reconciler_idle`), so the history carries a probe there only by a catch-up,
    // which node `to` counts. A catch-up the heal itself asked for may still run and take
    // a probe first; so probes go one at a time until one arrives with the count unmoved,
    // which only the bus can have carried, and that must happen within RECONVERGENCE.
    quiesce(cluster, &room, &tasks).await;
    let node = cluster.node(to);
    let observer = &tasks[observers[to]];
    let probing = Instant::now();
    let mut live_probes = Vec::new();
    loop {
        let caught_up = node.metric("synctv_catch_up_events_total").await;
        let text = format!("live probe {}", live_probes.len() + 1);
        let sent = Instant::now();
        let ack = probe.chat(&room, &text, 2 + live_probes.len() as i64).await;
        let live_seq = ack["seq"].as_i64().unwrap();
        live_probes.push((live_seq, text.clone()));
        wait_for(
            RECONVERGENCE,
            &format!("{text} reached node-{to}"),
            || async { (observer.last_seq() >= live_seq).then_some(()) },
        )
        .await;
        let from_history = node.metric("synctv_catch_up_events_total").await - caught_up;
        eprintln!(
            "{fault_name}: {text} reached node-{to} {} ms after it was sent \
             ({from_history} events caught up from the history meanwhile)",
            sent.elapsed().as_millis()
        );
        if from_history == 0.0 {
            break;
        }
        assert!(
            probing.elapsed() < RECONVERGENCE,
            "within {RECONVERGENCE:?}, every probe reached node-{to} from the history: \
             the bus did not deliver them"
        );
    }
    let live_seq = live_probes.last().map(|(seq, _)| *seq).unwrap_or_default();
    let members = settle(cluster, &room, tasks).await;
    probe.close().await;
    let history = cluster.history(&room).await;

    let mut acked = all_acked(&members);
    acked.push((seq, "probe after the heal".to_owned()));
    acked.extend(live_probes);
    check_history(&history, &acked);
    let truth = state_key(&final_state(&history).expect("seeks were acked"));
    for member in &members {
        assert_eq!(
            member.errors,
            Vec::<Value>::new(),
            "{}: every message acked",
            member.label
        );
        assert_events_match(member, &history);
        assert_eq!(
            state_key(&member.state),
            truth,
            "{}: the member's view of the state",
            member.label
        );
        eprintln!(
            "{}: {} events, {} resyncs, {} rejoins ({} recovered)",
            member.label,
            member.events.len(),
            member.resyncs,
            member.rejoins,
            member.recovered
        );
    }
    let hopper = members.iter().find(|m| m.label == "hopper").unwrap();
    assert_eq!(hopper.rejoins, 1, "the hopper moved once");
    let live = members
        .iter()
        .find(|m| m.label == format!("node-{to}/observer"))
        .unwrap();
    assert!(
        live.events
            .iter()
            .any(|e| e["seq"] == live_seq && e["kind"] == "chat"),
        "{}: the live probe came as an event",
        live.label
    );
    // Every node agrees on the room: its state, and its members (all still connected).
    for node in 0..cluster.len() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = cluster.get_room(node, &room).await;
            if state_key(&seen["state"]) == truth && seen["members"] == connected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node-{node} does not agree on the room: {seen}, the history ends with {truth} \
                 and {connected} members are connected"
            );
            // Pacing, not synchronisation: the loop ends when the node agrees.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let guest = cluster.guest(node, &format!("late{node}")).await;
        let mut late = WsClient::connect(&cluster.ws_url(node), &guest.token).await;
        let joined = late.join(&room).await;
        assert_eq!(state_key(&joined["state"]), truth, "joined on node-{node}");
        late.close().await;
    }
}
