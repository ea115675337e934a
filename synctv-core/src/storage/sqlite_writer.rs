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

use super::commit::{apply_batch, group_by_room};
use super::room_row::{duration_to_ms, needs_queue, row_columns, row_from_sqlite, WrittenExtras};
use super::{ChangeOutcome, RoomChange, StorageError};
use crate::ids::RoomId;
use crate::sequencer::{RoomRow, Sequencer};
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

type Answer = Result<Vec<ChangeOutcome>, StorageError>;

struct Job {
    changes: Vec<RoomChange>,
    sequencer: Sequencer,
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
    pub(super) async fn commit(&self, changes: Vec<RoomChange>, sequencer: Sequencer) -> Answer {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            changes,
            sequencer,
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
        let answer = commit_batch(&mut conn, &job.changes, job.sequencer);
        // A submitter that stopped waiting (its deadline passed) needs no answer.
        let _ = job.reply.send(answer);
    }
}

/// The room's row, read under the write lock the `IMMEDIATE` transaction holds.
fn lock_room_sql(with_queue: bool) -> String {
    format!(
        "SELECT {} FROM room_state s JOIN rooms r ON r.id = s.room_id WHERE s.room_id = ?1",
        row_columns(with_queue)
    )
}
const INSERT_EVENT: &str = "INSERT INTO room_events (room_id, seq, epoch, kind, by_user_id, \
    by_name, data, server_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const UPDATE_STATE: &str = "UPDATE room_state SET last_seq = ?2, media_url = ?3, \
    media_title = ?4, playing = ?5, position = ?6, rate = ?7, updated_at = ?8, version = ?9, \
    media_duration_ms = ?10, waiting_for = ?11, wait_until = ?12, rules = COALESCE(?13, rules), \
    queue = COALESCE(?14, queue), queue_length = COALESCE(?15, queue_length) \
    WHERE room_id = ?1";
const ARCHIVE_ROOM: &str = "UPDATE rooms SET archived_at = ?2 WHERE id = ?1";

/// The whole batch in one `IMMEDIATE` transaction; rooms are read in id order.
fn commit_batch(conn: &mut Connection, changes: &[RoomChange], sequencer: Sequencer) -> Answer {
    let by_room = group_by_room(changes);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut positions = HashMap::with_capacity(by_room.len());
    for (room, indices) in &by_room {
        let with_queue = indices.iter().any(|&i| needs_queue(&changes[i]));
        let mut lock = tx.prepare_cached(&lock_room_sql(with_queue))?;
        let mut rows = lock.query([room.as_str()])?;
        if let Some(row) = rows.next()? {
            positions.insert((*room).clone(), row_from_sqlite(row)?);
        }
    }
    let applied = apply_batch(changes, &by_room, &mut positions, sequencer)?;
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
            archive.execute(params![room.as_str(), sequencer.now_ms])?;
        }
    }
    tx.commit()?;
    Ok(applied.outcomes)
}

fn write_state(
    update: &mut rusqlite::CachedStatement<'_>,
    room: &RoomId,
    p: &RoomRow,
) -> Result<(), StorageError> {
    let media = p.state.media.as_ref();
    let extras = WrittenExtras::of(p);
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
        duration_to_ms(media.and_then(|m| m.duration)),
        extras.waiting_for,
        p.state.wait_until,
        extras.rules,
        extras.queue,
        extras.queue_length,
    ])?;
    Ok(())
}
