//! Recovery after a dropped connection, and durability of acks across a restart and
//! across `kill -9`.

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::postgres::PostgresServer;
use crate::process::SynctvProcess;
use crate::realtime::room_with_members;
use crate::ws_client::WsClient;
use serde_json::{json, Value};

both_backends!(
    recover_returns_exactly_the_missed_events,
    recover_reads_the_durable_history_past_the_ring,
    recover_fails_for_another_epoch_or_an_unreached_seq,
    recover_fails_past_the_recovery_limit,
    acked_events_survive_a_restart_and_recovery_spans_it,
    acked_events_survive_kill_9,
);

/// Drops `member` (index 1) after noting where it was, sends `missed` chats from member 0,
/// and rejoins with `recover`. Returns the joined frame, the epoch and the seq recovered from.
async fn miss_and_rejoin(
    app: &TestApp,
    missed: usize,
) -> (Value, String, i64, Vec<WsClient>, String) {
    let owner = app.guest("owner").await;
    let late = app.guest("late").await;
    let room = app.room_id(&owner, "r").await;
    let mut a = WsClient::connect(&app.ws_url(), &owner.token).await;
    a.join(&room).await;
    let mut b = WsClient::connect(&app.ws_url(), &late.token).await;
    let joined = b.join(&room).await;
    let (epoch, seq) = (
        joined["epoch"].as_str().unwrap().to_owned(),
        joined["seq"].as_i64().unwrap(),
    );
    b.close().await;
    for i in 0..missed {
        assert_eq!(
            a.chat(&room, &format!("missed {i}"), i as i64).await["type"],
            "ack"
        );
    }
    let mut b = WsClient::connect(&app.ws_url(), &late.token).await;
    b.send(
        json!({"type": "join", "room": room, "id": "r", "recover": {"epoch": epoch, "seq": seq}}),
    )
    .await;
    let joined = b.recv_answer("r").await;
    (joined, epoch, seq, vec![a, b], room)
}

async fn recover_returns_exactly_the_missed_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let (joined, epoch, seq, mut clients, room) = miss_and_rejoin(&app, 5).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["epoch"], epoch.as_str());
    let events = joined["events"].as_array().unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let last = joined["seq"].as_i64().unwrap();
    assert_eq!(
        seqs,
        ((seq + 1)..=last).collect::<Vec<_>>(),
        "none missing, none twice"
    );
    // Its own member_left, five chats, then its own member_joined.
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "member_left",
            "chat",
            "chat",
            "chat",
            "chat",
            "chat",
            "member_joined"
        ]
    );
    // Live from the next seq, with no gap.
    let ack = clients[0].chat(&room, "live", 100).await;
    assert_eq!(ack["seq"], last + 1);
    let event = clients[1].recv().await;
    assert_eq!(
        (event["seq"].as_i64(), event["data"]["text"].as_str()),
        (Some(last + 1), Some("live"))
    );
}

async fn recover_reads_the_durable_history_past_the_ring(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.history.recent_events = 4;
        c.limits.messages_per_second = 1000;
    })
    .await;
    let (joined, _, seq, _, _) = miss_and_rejoin(&app, 30).await;
    assert_eq!(joined["recovered"], true);
    let seqs: Vec<i64> = joined["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        ((seq + 1)..=joined["seq"].as_i64().unwrap()).collect::<Vec<_>>()
    );
    assert_eq!(seqs.len(), 32);
}

async fn recover_fails_for_another_epoch_or_an_unreached_seq(backend: Backend) {
    let app = spawn_app(backend).await;
    let (room, mut c) = room_with_members(&app, 1).await;
    let epoch = c[0].join(&room).await["epoch"].as_str().unwrap().to_owned();
    for (i, recover) in [
        json!({"epoch": "another", "seq": 1}),
        json!({"epoch": epoch, "seq": 99}),
        json!({"epoch": epoch, "seq": -1}),
    ]
    .into_iter()
    .enumerate()
    {
        c[0].send(json!({"type": "join", "room": room, "id": i, "recover": recover}))
            .await;
        let joined = c[0].recv_answer(i as i64).await;
        assert_eq!(
            (joined["type"].as_str(), joined["recovered"].as_bool()),
            (Some("joined"), Some(false)),
            "{recover}"
        );
        assert_eq!(joined["events"], json!([]));
        assert_eq!(joined["state"]["version"], 0);
    }
}

async fn recover_fails_past_the_recovery_limit(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.history.max_recovery_events = 5;
        c.limits.messages_per_second = 1000;
    })
    .await;
    let (joined, _, _, _, _) = miss_and_rejoin(&app, 10).await;
    assert_eq!(joined["recovered"], false);
    assert_eq!(joined["events"], json!([]));
}

async fn acked_events_survive_a_restart_and_recovery_spans_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (room, mut c) = room_with_members(&app, 1).await;
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(
            c[0].chat(&room, &format!("m{i}"), i).await["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    let joined = c[0].join(&room).await;
    let (epoch, seq) = (joined["epoch"].clone(), joined["seq"].as_i64().unwrap());
    drop(c);
    let app = app.restart().await;
    let history: Value = app.room_events(&room, "").await.json().await.unwrap();
    let stored: Vec<i64> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    for seq in &acked {
        assert_eq!(stored.iter().filter(|s| *s == seq).count(), 1);
    }
    assert_eq!(
        stored,
        (1..=stored.len() as i64).collect::<Vec<_>>(),
        "no gaps"
    );
    // The history is durable, so the server still vouches for it: recovery works.
    let owner_token = app.guest("again").await.token;
    let mut c = WsClient::connect(&app.ws_url(), &owner_token).await;
    c.send(json!({"type": "join", "room": room, "id": 1, "recover": {"epoch": epoch, "seq": seq}}))
        .await;
    let joined = c.recv_answer(1).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let first = joined["events"][0]["seq"].as_i64().unwrap();
    assert_eq!(first, seq + 1);
}

async fn acked_events_survive_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}/kill.db?mode=rwc", dir.path().display()),
        Backend::Postgres => PostgresServer::get().create_database().await,
    };
    let env = [
        ("SYNCTV__DATABASE__URL", url.clone()),
        ("SYNCTV__LIMITS__MESSAGES_PER_SECOND", "10000".to_owned()),
    ];
    let mut server = SynctvProcess::start(&env).await;
    let token = server.guest_token("k").await;
    let room = server.create_room(&token, "k").await;
    let mut ws = WsClient::connect(&server.ws_url(), &token).await;
    ws.join(&room).await;
    // Fire many chats without waiting, collect what was acked, and kill mid-stream.
    for i in 0..400 {
        ws.send(json!({"type": "chat", "room": room, "text": format!("k{i}"), "id": i}))
            .await;
    }
    let mut acked = Vec::new();
    while acked.len() < 100 {
        let frame = ws.recv().await;
        if frame["type"] == "ack" {
            acked.push((
                frame["seq"].as_i64().unwrap(),
                frame["id"].as_i64().unwrap(),
            ));
        }
    }
    server.kill9();
    // Acks that were already on the wire count too.
    while let Some(frame) = ws.next_frame(std::time::Duration::from_secs(2)).await {
        if frame["type"] == "ack" {
            acked.push((
                frame["seq"].as_i64().unwrap(),
                frame["id"].as_i64().unwrap(),
            ));
        }
    }
    let server = SynctvProcess::start(&env).await;
    let history: Value = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/rooms/{room}/events?limit=1000")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: Vec<(i64, String)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["data"]["text"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for (seq, id) in &acked {
        let matching: Vec<_> = stored.iter().filter(|(s, _)| s == seq).collect();
        assert_eq!(matching.len(), 1, "acked seq {seq} is stored exactly once");
        assert_eq!(matching[0].1, format!("k{id}"));
    }
    let seqs: Vec<i64> = stored.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gaps");
}
