//! The SQLite group commit, on a thread that owns the write connection.
//!
//! sqlx-sqlite runs every statement on its connection's worker thread and hands the
//! result back: a batch of begin, lock, insert, upsert and commit was five hand-offs
//! between threads, each a futex wait and a wakeup, and at an ordinary load those cost
//! more CPU than the statements. Here one thread owns a connection to the same file and
//! runs the whole batch transaction synchronously: a batch costs one hand-off to the
//! thread and one answer back. In-process statements cost no round trip, so each row is
//! one small prepared statement, parsed once and cached.
//!
//! The transaction is `IMMEDIATE` (the one write lock is taken before the rows are read),
//! like every write transaction of the pool, which keeps its own connections for reads
//! and the rare other writes; the busy timeout orders the two.

use super::commit::{apply_batch, group_by_room, RoomPosition};
use super::{ChangeOutcome, RoomChange, StorageError};
use crate::ids::{Epoch, RoomId};
use crate::playback::{Media, PlaybackState};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

type Answer = Result<Vec<ChangeOutcome>, StorageError>;

struct Job {
    changes: Vec<RoomChange>,
    now_ms: i64,
    reply: oneshot::Sender<Answer>,
}

/// The handle to the writer thread. The thread ends once the handle is closed (or
/// dropped) and the jobs already sent are done.
#[derive(Debug)]
pub(super) struct SqliteWriter {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl SqliteWriter {
    /// Opens the write connection to `path` (here, so that a bad file is a startup
    /// error) and starts its thread.
    pub(super) fn open(path: &Path) -> Result<Self, StorageError> {
        let conn = open_connection(path)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue))
            .map_err(StorageError::WriterThread)?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
        })
    }

    /// Commits `changes` on the writer thread: one hand-off there, one answer back.
    pub(super) async fn commit(&self, changes: Vec<RoomChange>, now_ms: i64) -> Answer {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            changes,
            now_ms,
            reply,
        };
        let sent = match &*self.jobs.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        };
        if !sent {
            return Err(StorageError::WriterStopped);
        }
        answer.await.unwrap_or(Err(StorageError::WriterStopped))
    }

    /// Takes no more batches; the thread finishes the ones it has, then closes the file.
    pub(super) fn close(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn open_connection(path: &Path) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // The same settings as the pool's connections (see `Database::connect`).
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn run(mut conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        let answer = commit_batch(&mut conn, &job.changes, job.now_ms);
        // A submitter that stopped waiting (its deadline passed) needs no answer.
        let _ = job.reply.send(answer);
    }
}

const LOCK_ROOM: &str = "SELECT s.epoch, s.last_seq, s.media_url, s.media_title, s.playing, \
    s.position, s.rate, s.updated_at, s.version, r.archived_at \
    FROM room_state s JOIN rooms r ON r.id = s.room_id WHERE s.room_id = ?1";
const INSERT_EVENT: &str = "INSERT INTO room_events (room_id, seq, epoch, kind, by_user_id, \
    by_name, data, server_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const UPDATE_STATE: &str = "UPDATE room_state SET last_seq = ?2, media_url = ?3, \
    media_title = ?4, playing = ?5, position = ?6, rate = ?7, updated_at = ?8, version = ?9 \
    WHERE room_id = ?1";
const ARCHIVE_ROOM: &str = "UPDATE rooms SET archived_at = ?2 WHERE id = ?1";

/// The whole batch in one `IMMEDIATE` transaction; rooms are read in id order.
fn commit_batch(conn: &mut Connection, changes: &[RoomChange], now_ms: i64) -> Answer {
    let by_room = group_by_room(changes);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut positions = HashMap::with_capacity(by_room.len());
    {
        let mut lock = tx.prepare_cached(LOCK_ROOM)?;
        for room in by_room.keys() {
            if let Some(position) = lock
                .query_row([room.as_str()], position_from_row)
                .optional()?
            {
                positions.insert((*room).clone(), position);
            }
        }
    }
    let applied = apply_batch(changes, &by_room, &mut positions, now_ms)?;
    {
        let mut insert = tx.prepare_cached(INSERT_EVENT)?;
        for e in applied.events() {
            insert.execute(params![
                e.room.as_str(),
                e.seq,
                e.epoch.as_str(),
                e.kind.as_str(),
                e.by.as_ref().map(|b| b.user_id.as_str()),
                e.by.as_ref().map(|b| b.name.as_str()),
                e.data.to_string(),
                e.server_time,
            ])?;
        }
    }
    {
        let mut update = tx.prepare_cached(UPDATE_STATE)?;
        for room in &applied.changed {
            let Some(p) = positions.get(*room) else {
                continue;
            };
            write_state(&mut update, room, p)?;
        }
    }
    if !applied.archived.is_empty() {
        let mut archive = tx.prepare_cached(ARCHIVE_ROOM)?;
        for room in &applied.archived {
            archive.execute(params![room.as_str(), now_ms])?;
        }
    }
    tx.commit()?;
    Ok(applied.outcomes)
}

fn write_state(
    update: &mut rusqlite::CachedStatement<'_>,
    room: &RoomId,
    p: &RoomPosition,
) -> Result<(), StorageError> {
    let media = p.state.media.as_ref();
    update.execute(params![
        room.as_str(),
        p.last_seq,
        media.map(|m| m.url.as_str()),
        media.and_then(|m| m.title.as_deref()),
        i64::from(p.state.playing),
        p.state.position,
        p.state.rate,
        p.state.updated_at,
        p.state.version,
    ])?;
    Ok(())
}

fn position_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RoomPosition> {
    let url: Option<String> = row.get("media_url")?;
    let media = match url {
        Some(url) => Some(Media {
            url,
            title: row.get("media_title")?,
        }),
        None => None,
    };
    Ok(RoomPosition {
        epoch: Epoch::from(row.get::<_, String>("epoch")?),
        last_seq: row.get("last_seq")?,
        state: PlaybackState {
            media,
            playing: row.get::<_, i64>("playing")? != 0,
            position: row.get("position")?,
            rate: row.get("rate")?,
            updated_at: row.get("updated_at")?,
            version: row.get("version")?,
        },
        archived: row.get::<_, Option<i64>>("archived_at")?.is_some(),
    })
}
