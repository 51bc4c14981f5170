//! The embedded store's single writer thread (group commit).
//!
//! Requests arrive on a bounded channel. The thread takes everything queued
//! (up to [`MAX_BATCH`]), applies it in one redb write transaction with
//! `Durability::Immediate`, commits (one fsync for the whole batch), publishes
//! the batch's events to watchers and only then answers each request. Each
//! successful write takes the next revision; compare-and-swap checks read the
//! transaction's own state, so they see earlier writes of the same batch, and a
//! failed check consumes no revision and affects nothing else.
//!
//! Compaction runs on this thread too, in chunks of [`COMPACT_CHUNK`] revisions
//! folded into successive write transactions, so writers are never stalled for
//! more than one chunk.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, Durability, ReadableTable, Table};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::codec::{
    backend, decode_record, encode_record, rev_i64, version_key, LATEST, META, META_COMPACTED,
    META_REVISION, MVCC, REVLOG,
};
use super::read::load_version;
use crate::{Event, EventType, KeyValue, Result, StoreError};

/// Most requests applied in one transaction.
pub(crate) const MAX_BATCH: usize = 2048;
/// Revisions compacted per transaction.
pub(crate) const COMPACT_CHUNK: usize = 1000;

/// A write the writer thread applies.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
}

#[derive(Debug)]
pub(crate) enum Request {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<KeyValue>>,
    },
    Compact {
        revision: i64,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// The events of one committed transaction, as published to watchers.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The store's revision after this commit.
    pub revision: u64,
    /// Every change of the commit, in revision order (one per revision).
    pub events: Vec<Event>,
}

type MvccTable<'t> = Table<'t, &'static [u8], &'static [u8]>;
type LatestTable<'t> = Table<'t, &'static [u8], (u64, u64)>;
type RevlogTable<'t> = Table<'t, u64, &'static [u8]>;

pub(crate) struct Writer {
    pub db: Arc<Database>,
    pub rx: mpsc::Receiver<Request>,
    pub events: broadcast::Sender<Arc<Committed>>,
    /// Published current revision, read by `current_revision()`.
    pub current_published: Arc<AtomicI64>,
    pub current: u64,
    pub compacted: u64,
    /// Compaction in progress: revlog entries below this are still to be processed.
    pub compact_target: Option<u64>,
    pub compact_waiters: Vec<oneshot::Sender<Result<()>>>,
}

/// What one transaction produced, delivered once it has committed.
struct Outcome {
    results: Vec<Result<KeyValue>>,
    compact_results: Vec<Result<()>>,
    events: Vec<Event>,
    compaction_done: bool,
}

impl Writer {
    /// The thread's main loop; returns when every sender is gone.
    pub(crate) fn run(mut self) {
        tracing::debug!(revision = self.current, "embedded store writer started");
        loop {
            let mut batch = Vec::new();
            if self.compact_target.is_none() {
                match self.rx.blocking_recv() {
                    Some(req) => batch.push(req),
                    None => break,
                }
            }
            let mut disconnected = false;
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            if disconnected && batch.is_empty() {
                // Shutting down; an unfinished compaction resumes on reopen.
                break;
            }
            self.run_batch(batch);
        }
        for waiter in self.compact_waiters.drain(..) {
            let _ = waiter.send(Err(StoreError::Backend("embedded store closed".into())));
        }
        tracing::debug!(revision = self.current, "embedded store writer stopped");
    }

    fn run_batch(&mut self, batch: Vec<Request>) {
        let mut ops = Vec::with_capacity(batch.len());
        let mut op_replies = Vec::with_capacity(batch.len());
        let mut compact_revs = Vec::new();
        let mut compact_replies = Vec::new();
        for req in batch {
            match req {
                Request::Write { op, reply } => {
                    ops.push(op);
                    op_replies.push(reply);
                }
                Request::Compact { revision, reply } => {
                    compact_revs.push(revision);
                    compact_replies.push(reply);
                }
            }
        }
        let saved = (self.current, self.compacted, self.compact_target);
        match self.execute(ops, &compact_revs) {
            Ok(out) => {
                self.current_published
                    .store(rev_i64(self.current), Ordering::Release);
                if !out.events.is_empty() && self.events.receiver_count() > 0 {
                    let _ = self.events.send(Arc::new(Committed {
                        revision: self.current,
                        events: out.events,
                    }));
                }
                for (reply, res) in op_replies.into_iter().zip(out.results) {
                    let _ = reply.send(res);
                }
                for (reply, res) in compact_replies.into_iter().zip(out.compact_results) {
                    match res {
                        Ok(()) => self.compact_waiters.push(reply),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                if out.compaction_done {
                    if let Some(target) = self.compact_target.take() {
                        tracing::info!(revision = target, "embedded store compaction finished");
                    }
                    for waiter in self.compact_waiters.drain(..) {
                        let _ = waiter.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded store write transaction failed");
                (self.current, self.compacted, self.compact_target) = saved;
                let msg = e.to_string();
                for reply in op_replies {
                    let _ = reply.send(Err(StoreError::Backend(msg.clone())));
                }
                for reply in compact_replies {
                    let _ = reply.send(Err(StoreError::Backend(msg.clone())));
                }
                // Don't spin on a persistent failure (disk full, I/O error).
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Applies one batch in one transaction and commits it. On error nothing
    /// was committed; the caller restores the counters.
    fn execute(&mut self, ops: Vec<WriteOp>, compact_revs: &[i64]) -> Result<Outcome> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate).map_err(backend)?;
        let mut out = Outcome {
            results: Vec::with_capacity(ops.len()),
            compact_results: Vec::with_capacity(compact_revs.len()),
            events: Vec::new(),
            compaction_done: false,
        };
        let start_rev = self.current;
        let start_compacted = self.compacted;
        {
            let mut mvcc = txn.open_table(MVCC).map_err(backend)?;
            let mut latest = txn.open_table(LATEST).map_err(backend)?;
            let mut revlog = txn.open_table(REVLOG).map_err(backend)?;
            for op in ops {
                let res = self.apply(op, &mut mvcc, &mut latest, &mut revlog, &mut out.events)?;
                out.results.push(res);
            }
            for &rev in compact_revs {
                out.compact_results.push(self.accept_compaction(rev));
            }
            if let Some(target) = self.compact_target {
                out.compaction_done = compact_chunk(&mut mvcc, &mut revlog, target, COMPACT_CHUNK)?;
            }
        }
        if self.current == start_rev
            && self.compacted == start_compacted
            && self.compact_target.is_none()
            && !out.compaction_done
        {
            // Only failed preconditions: nothing to write, no fsync.
            txn.abort().map_err(backend)?;
            return Ok(out);
        }
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert(META_REVISION, self.current).map_err(backend)?;
            meta.insert(META_COMPACTED, self.compacted)
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(out)
    }

    fn accept_compaction(&mut self, rev: i64) -> Result<()> {
        let Ok(rev_u) = u64::try_from(rev) else {
            return Err(StoreError::Compacted(rev_i64(self.compacted)));
        };
        if rev_u <= self.compacted {
            return Err(StoreError::Compacted(rev_i64(self.compacted)));
        }
        if rev_u > self.current {
            return Err(StoreError::FutureRevision(rev));
        }
        tracing::info!(revision = rev, "embedded store compaction started");
        self.compacted = rev_u;
        self.compact_target = Some(rev_u);
        Ok(())
    }

    /// Applies one write. The outer error aborts the batch (backend failure);
    /// the inner one is this request's answer (precondition failed).
    fn apply(
        &mut self,
        op: WriteOp,
        mvcc: &mut MvccTable<'_>,
        latest: &mut LatestTable<'_>,
        revlog: &mut RevlogTable<'_>,
        events: &mut Vec<Event>,
    ) -> Result<Result<KeyValue>> {
        match op {
            WriteOp::Create { key, value } => {
                let kb = key.as_bytes();
                if latest.get(kb).map_err(backend)?.is_some() {
                    return Ok(Err(StoreError::AlreadyExists(key)));
                }
                let rev = self.current + 1;
                mvcc.insert(
                    version_key(kb, rev).as_slice(),
                    encode_record(false, rev, &value).as_slice(),
                )
                .map_err(backend)?;
                latest.insert(kb, (rev, rev)).map_err(backend)?;
                revlog.insert(rev, kb).map_err(backend)?;
                self.current = rev;
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: rev_i64(rev),
                    mod_revision: rev_i64(rev),
                };
                events.push(Event {
                    kind: EventType::Put,
                    kv: kv.clone(),
                    prev_kv: None,
                });
                Ok(Ok(kv))
            }
            WriteOp::Update {
                key,
                value,
                expected,
            } => {
                let kb = key.as_bytes();
                let Some((mod_rev, create_rev)) =
                    latest.get(kb).map_err(backend)?.map(|g| g.value())
                else {
                    return Ok(Err(StoreError::NotFound(key)));
                };
                let prev = load_version(mvcc, kb, mod_rev)?;
                let prev_kv = KeyValue {
                    key: key.clone(),
                    value: prev.value,
                    create_revision: rev_i64(create_rev),
                    mod_revision: rev_i64(mod_rev),
                };
                if rev_i64(mod_rev) != expected {
                    return Ok(Err(StoreError::Conflict(Box::new(prev_kv))));
                }
                let rev = self.current + 1;
                mvcc.insert(
                    version_key(kb, rev).as_slice(),
                    encode_record(false, create_rev, &value).as_slice(),
                )
                .map_err(backend)?;
                latest.insert(kb, (rev, create_rev)).map_err(backend)?;
                revlog.insert(rev, kb).map_err(backend)?;
                self.current = rev;
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: rev_i64(create_rev),
                    mod_revision: rev_i64(rev),
                };
                events.push(Event {
                    kind: EventType::Put,
                    kv: kv.clone(),
                    prev_kv: Some(prev_kv),
                });
                Ok(Ok(kv))
            }
            WriteOp::Delete { key, expected } => {
                let kb = key.as_bytes();
                let Some((mod_rev, create_rev)) =
                    latest.get(kb).map_err(backend)?.map(|g| g.value())
                else {
                    return Ok(Err(StoreError::NotFound(key)));
                };
                let prev = load_version(mvcc, kb, mod_rev)?;
                let prev_kv = KeyValue {
                    key: key.clone(),
                    value: prev.value,
                    create_revision: rev_i64(create_rev),
                    mod_revision: rev_i64(mod_rev),
                };
                if expected.is_some_and(|e| e != rev_i64(mod_rev)) {
                    return Ok(Err(StoreError::Conflict(Box::new(prev_kv))));
                }
                let rev = self.current + 1;
                mvcc.insert(
                    version_key(kb, rev).as_slice(),
                    encode_record(true, 0, &[]).as_slice(),
                )
                .map_err(backend)?;
                latest.remove(kb).map_err(backend)?;
                revlog.insert(rev, kb).map_err(backend)?;
                self.current = rev;
                let deleted = KeyValue {
                    mod_revision: rev_i64(rev),
                    ..prev_kv.clone()
                };
                events.push(Event {
                    kind: EventType::Delete,
                    kv: KeyValue {
                        key,
                        value: Vec::new(),
                        create_revision: 0,
                        mod_revision: rev_i64(rev),
                    },
                    prev_kv: Some(prev_kv),
                });
                Ok(Ok(deleted))
            }
        }
    }
}

/// Processes up to `chunk` revlog entries below `target`; returns true when
/// none are left (compaction complete).
///
/// For an entry (key, r) with r < target: every version of key older than r
/// goes (a newer version <= target exists, r itself), and the version at r
/// goes too if it is a tombstone. Entries are taken in revision order, so once
/// all entries below `target` are processed each key keeps only its newest
/// version below `target` (if live) plus everything from `target` on — enough
/// for reads at any revision >= `target` and for watches from `target`,
/// including exact `prev_kv`s.
pub(crate) fn compact_chunk(
    mvcc: &mut MvccTable<'_>,
    revlog: &mut RevlogTable<'_>,
    target: u64,
    chunk: usize,
) -> Result<bool> {
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::with_capacity(chunk.min(1024));
    for entry in revlog.range(..target).map_err(backend)?.take(chunk) {
        let (rev, key) = entry.map_err(backend)?;
        entries.push((rev.value(), key.value().to_vec()));
    }
    let mut doomed: Vec<Vec<u8>> = Vec::new();
    for (rev, key) in &entries {
        doomed.clear();
        let lo = version_key(key, 0);
        let vk = version_key(key, *rev);
        for entry in mvcc.range(lo.as_slice()..vk.as_slice()).map_err(backend)? {
            let (old, _) = entry.map_err(backend)?;
            doomed.push(old.value().to_vec());
        }
        let tombstone = match mvcc.get(vk.as_slice()).map_err(backend)? {
            Some(raw) => decode_record(raw.value())?.tombstone,
            None => false,
        };
        if tombstone {
            doomed.push(vk);
        }
        for old in &doomed {
            mvcc.remove(old.as_slice()).map_err(backend)?;
        }
        revlog.remove(*rev).map_err(backend)?;
    }
    Ok(entries.len() < chunk)
}
