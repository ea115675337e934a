//! The primary's network cut (through a TCP proxy), both kinds: connections refused and
//! reset, and the silent kind where packets vanish and nothing closes. While no host is
//! writable, a message that needs an ack is answered `unavailable` within the contract's
//! 10 s, the connection stays open, and once the link heals commits resume by themselves.

use crate::cluster::check_history;
use crate::durable;
use crate::nodes::Nodes;
use crate::pg_node::PgNode;
use crate::proxy::TcpProxy;
use crate::ws_client::WsClient;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The contract's bound on an answer while the database is unreachable.
const ANSWER_BOUND: Duration = Duration::from_secs(10);
/// How soon commits resume once the link heals: the writer asks the hosts every 200 ms;
/// generous for a loaded machine.
const RESUME_BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_cut_off_the_network_answers_unavailable_and_commits_resume() {
    let primary = PgNode::primary("cut", &[]);
    let target: SocketAddr = primary.host().parse().unwrap();
    let proxy = TcpProxy::start(target).await;
    let url = format!("postgres://postgres@127.0.0.1:{}/synctv", proxy.port);
    let nodes = Nodes::start(1, &url, &[]).await;
    let node = &nodes.nodes[0];
    let token = node.guest_token("g").await;
    let room = node.create_room(&token, "cut").await;
    let mut c = WsClient::connect(&node.ws_url(), &token).await;
    c.join(&room).await;
    let mut acked = Vec::new();
    let mut id = 0;

    for (kind, cut) in [("reset", false), ("silent", true)] {
        id += 1;
        let text = format!("before {kind}");
        let answer = chat(&mut c, &room, &text, id).await.0;
        assert_eq!(answer["type"], "ack", "{answer}");
        acked.push((answer["seq"].as_i64().unwrap(), text));

        if cut {
            proxy.freeze();
        } else {
            proxy.cut();
        }
        // Two messages while the link is down: the one that meets the broken connection
        // and one that finds no writable host at all.
        for _ in 0..2 {
            id += 1;
            let (answer, took) = chat(&mut c, &room, &format!("during {kind} {id}"), id).await;
            println!(
                "DRILL partition ({kind}): answered {} in {} ms",
                answer["type"],
                took.as_millis()
            );
            assert_eq!(
                (answer["type"].as_str(), answer["code"].as_str()),
                (Some("error"), Some("unavailable")),
                "{answer}"
            );
            assert!(took <= ANSWER_BOUND, "answered after {took:?}");
        }
        let ready = nodes.ready(0).await;
        assert_eq!(ready["checks"]["database"], "down", "{ready}");
        assert_eq!(ready["checks"]["databases"][0]["status"], "down", "{ready}");

        proxy.restore();
        let healed = Instant::now();
        let resumed = loop {
            id += 1;
            let text = format!("after {kind} {id}");
            let (answer, _) = chat(&mut c, &room, &text, id).await;
            if answer["type"] == "ack" {
                acked.push((answer["seq"].as_i64().unwrap(), text));
                break healed.elapsed();
            }
            assert_eq!(answer["code"], "unavailable", "{answer}");
            assert!(healed.elapsed() < RESUME_BOUND, "commits did not resume");
        };
        println!(
            "DRILL partition ({kind}): commits resumed {} ms after the heal",
            resumed.as_millis()
        );
    }
    check_history(&durable::history(&primary.url(), &room).await, &acked);
}

/// Sends a chat and waits (events skipped) for its answer; how long it took.
async fn chat(c: &mut WsClient, room: &str, text: &str, id: i64) -> (Value, Duration) {
    let sent = Instant::now();
    c.send(json!({"type": "chat", "room": room, "text": text, "id": id}))
        .await;
    loop {
        let frame = c
            .next_frame(ANSWER_BOUND + Duration::from_secs(5))
            .await
            .expect("the connection stayed open");
        if frame["type"] != "event" && frame["id"] == id {
            return (frame, sent.elapsed());
        }
    }
}
