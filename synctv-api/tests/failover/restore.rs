//! Disaster recovery from backups alone: a base backup taken before any event, the WAL
//! archive the primary filled, the primary and its disk lost (`kill -9`, never used
//! again), and a new primary restored from the two. Every acked event is there, and a
//! node commits to the new primary where the history left off.

use crate::cluster::check_history;
use crate::durable;
use crate::nodes::Nodes;
use crate::pg_node::{PgNode, WalArchive};
use crate::ws_client::WsClient;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_from_a_base_backup_and_the_wal_archive_keeps_every_acked_event() {
    let archive = WalArchive::new();
    let settings = archive.settings();
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let primary = PgNode::primary("archived", &settings);
    let backup = primary.base_backup();
    let nodes = Nodes::start(1, &primary.url(), &[]).await;
    let node = &nodes.nodes[0];
    let token = node.guest_token("g").await;
    let room = node.create_room(&token, "restore").await;
    let mut c = WsClient::connect(&node.ws_url(), &token).await;
    c.join(&room).await;
    let mut acked = Vec::new();
    for id in 1..=50 {
        let text = format!("chat {id}");
        let ack = c.chat(&room, &text, id).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push((ack["seq"].as_i64().unwrap(), text));
    }
    c.close().await;
    drop(nodes);
    // What an archive holds lags the primary by at most `archive_timeout`; the drill
    // closes the current segment so that the restore itself is what it measures.
    let segment = primary.psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    let archived = Instant::now() + Duration::from_secs(30);
    while primary.psql(
        "postgres",
        "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
    ) < segment
    {
        assert!(
            Instant::now() < archived,
            "segment {segment} was not archived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    primary.kill9();

    let started = Instant::now();
    let restored = PgNode::restored("restored", &backup, &archive);
    let deadline = Instant::now() + Duration::from_secs(60);
    while restored.psql("postgres", "SELECT pg_is_in_recovery()") != "f" {
        assert!(
            Instant::now() < deadline,
            "the restore did not finish:\n{}",
            restored.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let history = durable::history(&restored.url(), &room).await;
    check_history(&history, &acked);
    let missing = acked.len() - history.iter().filter(|e| e["kind"] == "chat").count();
    println!(
        "DRILL restore: base backup + WAL archive into a new primary in {} ms; {missing} of {} acked chats missing",
        took.as_millis(),
        acked.len()
    );

    // A node on the new primary carries on where the history ends.
    let nodes = Nodes::start(1, &restored.url(), &[]).await;
    let mut c = WsClient::connect(&nodes.nodes[0].ws_url(), &token).await;
    let joined = c.join(&room).await;
    let ack = c.chat(&room, "after the restore", 1000).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["seq"].as_i64(), joined["seq"].as_i64().map(|s| s + 1));
    c.close().await;
}
