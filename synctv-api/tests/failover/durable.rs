//! A room's history as one server holds it, read with SQL (not through a node, which
//! might answer from elsewhere), in the shape the events endpoint gives.

use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::HashSet;

/// The room's events on the server at `url`, oldest first.
pub async fn history(url: &str, room: &str) -> Vec<Value> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT seq, kind, data FROM room_events WHERE room_id = $1 ORDER BY seq")
            .bind(room)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let _ = conn.close().await;
    rows.into_iter()
        .map(|(seq, kind, data)| {
            let data: Value = serde_json::from_str(&data).unwrap();
            json!({"seq": seq, "kind": kind, "data": data})
        })
        .collect()
}

/// How many of the seqs `1..=up_to` the history lacks.
pub fn missing_up_to(history: &[Value], up_to: i64) -> usize {
    let held: HashSet<i64> = history.iter().filter_map(|e| e["seq"].as_i64()).collect();
    (1..=up_to).filter(|seq| !held.contains(seq)).count()
}
