//! Cross-node delivery: members on every node, concurrent publishers on every node; every
//! member receives every event in the room's one order, and the durable history holds
//! every acked event exactly once, with no gap.

use crate::cluster::{check_history, final_state, state_key, wait_for, TestBus, TestCluster};
use crate::member::{assert_events_match, Member, MemberTask, Publish};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_every_node_see_one_order() {
    let bus = TestBus::redis().await;
    let cluster = TestCluster::start_on(3, &bus).await;
    publish_everywhere_and_check(&cluster, 1, 2, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_every_node_see_one_order_on_nats() {
    let bus = TestBus::nats().await;
    let cluster = TestCluster::start_on(3, &bus).await;
    publish_everywhere_and_check(&cluster, 1, 2, 25).await;
}

/// `rooms` rooms, `per_node` members of each on every node, each sending `count` messages
/// (chats, and every fifth a seek) at once with the others; then the checks of the contract's order rule and of the history.
pub async fn publish_everywhere_and_check(
    cluster: &TestCluster,
    rooms: usize,
    per_node: usize,
    count: usize,
) {
    let owner = cluster.guest(0, "owner").await;
    let mut room_ids = Vec::new();
    for r in 0..rooms {
        room_ids.push(
            cluster
                .room(r % cluster.len(), &owner, &format!("room {r}"))
                .await,
        );
    }
    let mut members = Vec::new();
    for (r, room) in room_ids.iter().enumerate() {
        for node in 0..cluster.len() {
            for k in 0..per_node {
                let guest = cluster.guest(node, &format!("r{r}n{node}m{k}")).await;
                let label = format!("room{r}/node-{node}/m{k}");
                members.push(
                    Member::join(&label, vec![cluster.ws_url(node)], &guest.token, room).await,
                );
            }
        }
    }
    let publish = Publish {
        every: Duration::from_millis(5),
        seek_every: 5,
        count: Some(count),
    };
    let tasks: Vec<MemberTask> = members
        .into_iter()
        .map(|m| m.spawn(Some(publish)))
        .collect();
    wait_for(Duration::from_secs(40), "every publisher acked", || async {
        assert!(
            !tasks.iter().any(|t| t.is_finished()),
            "a member task failed"
        );
        tasks.iter().all(|t| t.acks() == count).then_some(())
    })
    .await;

    for room in &room_ids {
        let history = cluster.history(room).await;
        let last = history.len() as i64;
        let in_room: Vec<&MemberTask> = tasks
            .iter()
            .filter(|t| t.label.starts_with(&room_label(&room_ids, room)))
            .collect();
        wait_for(
            Duration::from_secs(10),
            "every member reached the room's last seq",
            || async { in_room.iter().all(|t| t.last_seq() >= last).then_some(()) },
        )
        .await;
    }
    let mut members = Vec::new();
    for task in tasks {
        members.push(task.finish().await);
    }
    for room in &room_ids {
        let history = cluster.history(room).await;
        let in_room: Vec<&Member> = members.iter().filter(|m| &m.room == room).collect();
        let acked: Vec<(i64, String)> = in_room
            .iter()
            .flat_map(|m| m.acked_chats.iter().cloned())
            .collect();
        for member in &in_room {
            let answered = member.acked_chats.len() + member.acked_seeks;
            assert_eq!(answered, count, "{}: every message acked", member.label);
        }
        check_history(&history, &acked);
        let chats = history.iter().filter(|e| e["kind"] == "chat").count();
        assert_eq!(
            chats,
            acked.len(),
            "the history holds exactly the acked chats"
        );
        let truth = state_key(&final_state(&history).expect("seeks were acked"));
        for member in in_room {
            assert_received_the_history(member, &history);
            assert_eq!(state_key(&member.state), truth, "{}", member.label);
        }
        for node in 0..cluster.len() {
            let seen = cluster.get_room(node, room).await;
            assert_eq!(state_key(&seen["state"]), truth, "node-{node}: {seen}");
        }
    }
}

fn room_label(room_ids: &[String], room: &str) -> String {
    let r = room_ids.iter().position(|id| id == room).unwrap();
    format!("room{r}/")
}

/// A member that stayed connected without resync got every event after its join, each
/// the same as the history's at that seq.
pub fn assert_received_the_history(member: &Member, history: &[serde_json::Value]) {
    assert_eq!(
        member.errors,
        Vec::<serde_json::Value>::new(),
        "{}",
        member.label
    );
    assert_eq!(
        member.resyncs, 0,
        "{}: resync without a fault",
        member.label
    );
    let seqs = member.seqs();
    let expected: Vec<i64> = (member.first_seq + 1..=history.len() as i64).collect();
    assert_eq!(seqs, expected, "{}: missing events", member.label);
    assert_events_match(member, history);
}
