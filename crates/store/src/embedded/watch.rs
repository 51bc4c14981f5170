//! Watches on the embedded store.
//!
//! A watch subscribes to the writer's broadcast of committed batches *first*,
//! then takes a snapshot of the current revision, replays history
//! `(after, snapshot]` from the revision log, and then follows the broadcast,
//! skipping revisions already replayed. Nothing is lost between replay and
//! live events: every batch committed after the snapshot is published after
//! the subscription. A watcher that falls too far behind the broadcast gets an
//! error and its stream ends (the caller re-lists); events are never dropped
//! silently. When idle, the stream yields `Progress` about once a second.

use std::sync::Arc;
use std::time::Duration;

use redb::Database;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::codec::rev_i64;
use super::read::replay;
use super::writer::Committed;
use crate::{Result, StoreError, WatchItem, WatchStream};

/// Revisions scanned per replay step.
const REPLAY_CHUNK: usize = 2000;
/// Items buffered between the watch task and the consumer.
const OUTPUT_BUFFER: usize = 64;
/// Idle time after which a progress notification is sent.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the task feeding a watch stream. `sub` must have been subscribed
/// before `snapshot_rev` was read.
pub(crate) fn start(
    db: Arc<Database>,
    sub: broadcast::Receiver<Arc<Committed>>,
    prefix: String,
    after: u64,
    snapshot_rev: u64,
) -> WatchStream {
    let (tx, rx) = mpsc::channel(OUTPUT_BUFFER);
    tokio::spawn(async move {
        if let Err(e) = feed(db, sub, prefix, after, snapshot_rev, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

type Out = mpsc::Sender<Result<WatchItem>>;

/// Sends an item; false when the consumer is gone.
async fn send(tx: &Out, item: WatchItem) -> bool {
    tx.send(Ok(item)).await.is_ok()
}

async fn feed(
    db: Arc<Database>,
    mut sub: broadcast::Receiver<Arc<Committed>>,
    prefix: String,
    after: u64,
    snapshot_rev: u64,
    tx: &Out,
) -> Result<()> {
    // Everything up to `sent` has been delivered (or did not match).
    let mut sent = after;
    // Everything up to `seen` is known to be committed and delivered.
    let mut seen = snapshot_rev;
    while sent < snapshot_rev {
        let (db2, prefix2) = (db.clone(), prefix.clone());
        let from = sent + 1;
        let chunk = tokio::task::spawn_blocking(move || {
            replay(&db2, &prefix2, from, snapshot_rev, REPLAY_CHUNK)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("watch replay task failed: {e}")))??;
        if !chunk.events.is_empty() && !send(tx, WatchItem::Events(chunk.events)).await {
            return Ok(());
        }
        sent = chunk.scanned_to.max(from);
    }
    loop {
        tokio::select! {
            msg = sub.recv() => match msg {
                Ok(batch) => {
                    seen = seen.max(batch.revision);
                    if batch.revision <= sent {
                        continue;
                    }
                    let events: Vec<_> = batch
                        .events
                        .iter()
                        .filter(|e| {
                            u64::try_from(e.kv.mod_revision).is_ok_and(|r| r > sent)
                                && e.kv.key.starts_with(prefix.as_str())
                        })
                        .cloned()
                        .collect();
                    sent = batch.revision;
                    if !events.is_empty() && !send(tx, WatchItem::Events(events)).await {
                        return Ok(());
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(prefix = %prefix, missed = n, "embedded store watcher fell behind; closing it");
                    return Err(StoreError::Backend(format!(
                        "watch fell behind by {n} commits and was closed; re-list and watch again"
                    )));
                }
                Err(RecvError::Closed) => {
                    return Err(StoreError::Backend("embedded store closed".into()));
                }
            },
            _ = tokio::time::sleep(PROGRESS_INTERVAL) => {
                if !send(tx, WatchItem::Progress(rev_i64(seen))).await {
                    return Ok(());
                }
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}
