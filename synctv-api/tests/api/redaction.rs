//! Tokens and tickets never appear in logs (contract 1.1): the real binary, logging
//! every request at debug level, is handed both in URLs.

use crate::process::free_port;
use crate::ws_client::WsClient;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test]
async fn tokens_and_tickets_are_redacted_from_logged_urls() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_synctv"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .env("SYNCTV__SERVER__PORT", port.to_string())
        .env("SYNCTV__LOG__LEVEL", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().unwrap();
    let collected = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            collected.lock().unwrap().push(line);
        }
    });
    let logged = |needle: &str| lines.lock().unwrap().iter().any(|l| l.contains(needle));
    let wait_for = |needle: &'static str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        async move {
            while !logged(needle) {
                assert!(Instant::now() < deadline, "never logged: {needle}");
                // Pacing, not synchronisation: the loop ends on the condition above.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for("synctv ready").await;

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let guest: Value = client
        .post(format!("{base}/api/v1/auth/guest"))
        .json(&json!({"name": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = guest["token"].as_str().unwrap().to_owned();
    let ticket: Value = client
        .post(format!("{base}/api/v1/auth/ticket"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    let ws_url = format!("ws://127.0.0.1:{port}/ws");
    let by_ticket = WsClient::try_connect(&format!("{ws_url}?ticket={ticket}"), None).await;
    assert!(by_ticket.is_ok());
    let by_token = WsClient::connect(&ws_url, &token).await;
    // Refused ones too, and credentials in any URL.
    let reused = WsClient::try_connect(&format!("{ws_url}?x=1&ticket={ticket}"), None).await;
    assert!(reused.is_err());
    let resp = client
        .get(format!("{base}/api/v1/rooms?token={token}&limit=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_for("ticket=REDACTED").await;
    wait_for("token=REDACTED").await;
    wait_for("x=1&ticket=REDACTED").await;
    wait_for("token=REDACTED&limit=5").await;
    by_token.close().await;

    // SAFETY: signalling the child this test started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let lines = lines.lock().unwrap();
    for secret in [&token, &ticket] {
        let leaks: Vec<_> = lines
            .iter()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(leaks.is_empty(), "logged: {leaks:?}");
    }
}
