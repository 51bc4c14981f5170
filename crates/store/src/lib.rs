//! etcd-style key-value storage for rkube.
//!
//! One [`Store`] trait with etcd's semantics — range reads at a revision,
//! create/update as compare-and-swap on the mod revision, delete, watch from a
//! revision, and compaction — and two backends behind it:
//!
//! * [`embedded::EmbeddedStore`]: a durable MVCC store on `redb`, with group
//!   commit (one fsync shared by every write that arrived while the previous
//!   commit was syncing). The default.
//! * [`etcd::EtcdStore`]: a real etcd cluster through `etcd-client`.
//!
//! Revisions are global, strictly increasing integers starting at 1; every
//! successful write (create, update, delete) takes the next one. An object's
//! `resourceVersion` in the API is its key's `mod_revision`.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

pub mod embedded;
pub mod etcd;
#[cfg(feature = "testing")]
pub mod testing;

/// One key and its value at some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision at which this key was (last) created.
    pub create_revision: i64,
    /// Revision of the last write to this key.
    pub mod_revision: i64,
}

/// Result of a [`Store::range`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    /// Matching keys in ascending key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at (the store's current revision when
    /// `revision` was 0).
    pub revision: i64,
    /// True when more keys matched than were returned.
    pub more: bool,
    /// Number of keys in the whole requested range (ignoring `limit`).
    pub count: i64,
}

/// What a range read covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeRequest {
    /// Keys starting with this prefix.
    pub prefix: String,
    /// Start at this key (inclusive) instead of the first key of the prefix;
    /// used for pagination. Must start with `prefix` when set.
    pub start_key: Option<String>,
    /// Read at this revision; 0 means the current revision.
    pub revision: i64,
    /// At most this many keys; 0 means no limit.
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// One change, as a watch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    /// For `Put`, the new key-value. For `Delete`, the key with an empty value,
    /// `mod_revision` = the deletion's revision.
    pub kv: KeyValue,
    /// The previous key-value, when there was one (always for `Delete`).
    pub prev_kv: Option<KeyValue>,
}

/// Items a watch yields: batches of events in revision order, or progress
/// notifications meaning "you have seen everything up to this revision".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    Events(Vec<Event>),
    Progress(i64),
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchItem, StoreError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create of a key that exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// Update/delete of a key that does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// Compare-and-swap failed; carries the current value.
    #[error("key {key}: revision conflict (current mod revision {current})", key = .0.key, current = .0.mod_revision)]
    Conflict(Box<KeyValue>),
    /// The requested revision has been compacted away. Carries the compacted revision.
    #[error("required revision has been compacted (compacted revision {0})")]
    Compacted(i64),
    /// The requested revision is in the future.
    #[error("required revision {0} is a future revision")]
    FutureRevision(i64),
    /// The backend is unreachable or failed.
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// etcd-style MVCC key-value storage. All methods are safe to call concurrently.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Current revision of the store (the revision of the last write, or the
    /// starting revision if nothing was ever written).
    async fn current_revision(&self) -> Result<i64>;

    /// Reads one key at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Reads a range of keys. See [`RangeRequest`].
    async fn range(&self, req: RangeRequest) -> Result<RangeResult>;

    /// Creates `key`; fails with `AlreadyExists` if it exists. Returns the new KeyValue.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;

    /// Replaces `key` if its mod revision equals `expected_mod_revision`;
    /// otherwise `Conflict` with the current value (or `NotFound`).
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<KeyValue>;

    /// Deletes `key`, if `expected_mod_revision` is `Some`, only when it matches
    /// (else `Conflict`). Returns the deleted KeyValue. `NotFound` if absent.
    /// The returned KeyValue's `mod_revision` is the revision of the deletion.
    async fn delete(&self, key: &str, expected_mod_revision: Option<i64>) -> Result<KeyValue>;

    /// Watches every key under `prefix`, delivering every change with a
    /// revision greater than `after_revision` (0: only changes after now), in
    /// revision order, with `prev_kv`. Fails with `Compacted` (either at once or
    /// as the stream's first item) when `after_revision + 1` is compacted away.
    /// Progress notifications may be sent when idle.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream>;

    /// Discards history older than `revision`: afterwards, reads at and watches
    /// from revisions below it fail with `Compacted`.
    async fn compact(&self, revision: i64) -> Result<()>;

    /// Cheap liveness check used by `/readyz`.
    async fn ping(&self) -> Result<()>;
}
