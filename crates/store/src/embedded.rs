//! The embedded backend: a durable MVCC key-value store on `redb`.
//!
//! # Layout
//!
//! One redb file with four tables (see `codec`):
//!
//! * `mvcc`: `key ++ 0x00 ++ revision (u64 BE)` → `{tombstone, create_revision, value}`.
//!   Every version of a key is contiguous and in revision order, so a read at
//!   revision R takes, per key, the last version <= R and skips tombstones.
//!   Keys therefore must not contain NUL (rejected with `Backend`).
//! * `latest`: live key → `(mod_revision, create_revision)`; serves reads at
//!   the current revision (and `count`) without walking old versions, and the
//!   writer's compare-and-swap checks.
//! * `revlog`: revision → key; watch replay and compaction walk it in order.
//! * `meta`: current revision and compacted revision.
//!
//! # Revisions
//!
//! Like etcd, a fresh store is at revision 1 and the first write gets revision
//! 2, so no `resourceVersion` is ever "0" (which Kubernetes reads as "any").
//! Every successful create, update or delete takes the next revision.
//!
//! # Writes and durability
//!
//! All writes go through one writer thread that commits them in groups, each
//! group in one redb transaction with `Durability::Immediate` (fsync before any
//! request of the group is answered). After `kill -9`, reopening the file
//! yields every acknowledged write. See `writer`.
//!
//! # Compaction
//!
//! `compact(rev)` records the new compacted revision at once (reads below it
//! then fail with `Compacted`) and removes superseded versions in chunks on
//! the writer thread; the call returns when all of them are gone. An
//! interrupted compaction resumes when the store is reopened. Reads at
//! revision `rev` itself and watches from `rev` keep working, as in etcd.

pub(crate) mod codec;
mod read;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, DatabaseError, ReadableTable};
use tokio::sync::{broadcast, mpsc, oneshot};

use self::codec::{
    backend, rev_i64, validate_key, INITIAL_REVISION, LATEST, META, META_COMPACTED, META_REVISION,
    MVCC, REVLOG,
};
use self::writer::{Committed, Request, WriteOp, Writer};
use crate::{KeyValue, RangeRequest, RangeResult, Result, Store, StoreError, WatchStream};

/// File name used when [`EmbeddedStore::open`] is given a directory.
pub const DEFAULT_FILE_NAME: &str = "rkube.redb";

/// Requests queued for the writer before callers wait.
const REQUEST_QUEUE: usize = 8192;
/// Committed batches buffered per watcher before it is declared lagging.
const WATCH_BUFFER: usize = 1024;
/// How long `open` waits for a previous instance in this process to let go of
/// the file.
const OPEN_RETRY: Duration = Duration::from_secs(5);

/// Durable MVCC store on a local redb file. Cheap to share behind an `Arc`;
/// dropping it stops the writer thread (after it finishes its current batch)
/// and closes the file once in-flight reads and watches have ended.
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
    tx: mpsc::Sender<Request>,
    events: broadcast::Sender<Arc<Committed>>,
    current: Arc<AtomicI64>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .field("revision", &self.current.load(Ordering::Acquire))
            .finish()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`: the database file itself, or,
    /// when `path` is an existing directory, [`DEFAULT_FILE_NAME`] inside it.
    /// Missing parent directories are created.
    ///
    /// Does blocking I/O (including redb's recovery after a crash); call it at
    /// startup or from a blocking context.
    pub fn open(path: &Path) -> Result<EmbeddedStore> {
        let file = if path.is_dir() {
            path.join(DEFAULT_FILE_NAME)
        } else {
            path.to_path_buf()
        };
        if let Some(parent) = file.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Backend(format!("creating {}: {e}", parent.display()))
                })?;
            }
        }
        let db = Arc::new(open_db(&file)?);
        let (current, compacted, pending_compaction) = init(&db)?;
        tracing::info!(
            path = %file.display(),
            revision = current,
            compacted,
            "embedded store opened"
        );

        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let current_published = Arc::new(AtomicI64::new(rev_i64(current)));
        let writer = Writer {
            db: db.clone(),
            rx,
            events: events.clone(),
            current_published: current_published.clone(),
            current,
            compacted,
            compact_target: pending_compaction,
            compact_waiters: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("rkube-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Backend(format!("spawning the store writer thread: {e}")))?;
        Ok(EmbeddedStore {
            db,
            path: file,
            tx,
            events,
            current: current_published,
            writer: Some(handle),
        })
    }

    /// The database file in use.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, op: WriteOp) -> Result<KeyValue> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Write { op, reply })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Close the request channel so the writer thread exits, then wait for
        // it (at most one in-flight batch) so the file can be reopened at once.
        let (dummy, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, dummy));
        if let Some(handle) = self.writer.take() {
            if handle.join().is_err() {
                tracing::error!("embedded store writer thread panicked");
            }
        }
    }
}

fn closed() -> StoreError {
    StoreError::Backend("embedded store closed".into())
}

/// Opens the redb file, waiting a little if another instance in this process
/// is still closing it.
fn open_db(file: &Path) -> Result<Database> {
    let deadline = Instant::now() + OPEN_RETRY;
    loop {
        match Database::create(file) {
            Ok(db) => return Ok(db),
            Err(DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "opening embedded store {}: {e}",
                    file.display()
                )))
            }
        }
    }
}

/// Creates the tables and counters of a fresh store; returns the current and
/// compacted revisions and whether a compaction was interrupted.
fn init(db: &Database) -> Result<(u64, u64, Option<u64>)> {
    let txn = db.begin_write().map_err(backend)?;
    let (current, compacted, pending);
    {
        txn.open_table(MVCC).map_err(backend)?;
        txn.open_table(LATEST).map_err(backend)?;
        let revlog = txn.open_table(REVLOG).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        if meta.get(META_REVISION).map_err(backend)?.is_none() {
            meta.insert(META_REVISION, INITIAL_REVISION)
                .map_err(backend)?;
            meta.insert(META_COMPACTED, 0).map_err(backend)?;
        }
        let m = read::read_meta(&meta)?;
        current = m.current;
        compacted = m.compacted;
        let oldest = revlog.first().map_err(backend)?.map(|(rev, _)| rev.value());
        pending = oldest.filter(|&r| r < compacted).map(|_| compacted);
    }
    txn.commit().map_err(backend)?;
    if let Some(target) = pending {
        tracing::info!(revision = target, "resuming interrupted compaction");
    }
    Ok((current, compacted, pending))
}

/// Runs blocking redb work off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("embedded store task failed: {e}")))?
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn current_revision(&self) -> Result<i64> {
        Ok(self.current.load(Ordering::Acquire))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let (db, key) = (self.db.clone(), key.to_string());
        blocking(move || read::get(&db, &key)).await
    }

    async fn range(&self, mut req: RangeRequest) -> Result<RangeResult> {
        validate_key(&req.prefix)?;
        if let Some(start) = req.start_key.take() {
            // etcd's idiom for "the key after K" is `K\0`. Stored keys hold
            // no NUL and version keys are `K\0<rev>`, so `K\x01` starts
            // right after every version of K.
            let start = match start.strip_suffix('\0') {
                Some(k) => format!("{k}\u{1}"),
                None => start,
            };
            validate_key(&start)?;
            req.start_key = Some(start);
        }
        let db = self.db.clone();
        blocking(move || read::range(&db, &req)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        validate_key(key)?;
        self.write(WriteOp::Create {
            key: key.to_string(),
            value,
        })
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<KeyValue> {
        validate_key(key)?;
        self.write(WriteOp::Update {
            key: key.to_string(),
            value,
            expected: expected_mod_revision,
        })
        .await
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<i64>) -> Result<KeyValue> {
        validate_key(key)?;
        self.write(WriteOp::Delete {
            key: key.to_string(),
            expected: expected_mod_revision,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        validate_key(prefix)?;
        let Ok(after) = u64::try_from(after_revision) else {
            return Err(StoreError::Backend(format!(
                "invalid watch revision {after_revision}"
            )));
        };
        // Subscribe before taking the snapshot: see `watch`.
        let sub = self.events.subscribe();
        let db = self.db.clone();
        let meta = blocking(move || read::snapshot_meta(&db)).await?;
        if after != 0 && after + 1 < meta.compacted {
            return Err(StoreError::Compacted(rev_i64(meta.compacted)));
        }
        let after = if after == 0 { meta.current } else { after };
        Ok(watch::start(
            self.db.clone(),
            sub,
            prefix.to_string(),
            after,
            meta.current,
        ))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Compact { revision, reply })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn ping(&self) -> Result<()> {
        if self.tx.is_closed() {
            return Err(closed());
        }
        let db = self.db.clone();
        blocking(move || read::snapshot_meta(&db).map(|_| ())).await
    }
}
