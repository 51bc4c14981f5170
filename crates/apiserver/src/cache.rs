//! The watch cache: every stored object, decoded, in memory, kept current by
//! one store watch over `/registry/` and demultiplexed per resource, plus a
//! window of recent events per resource so that watches can resume from a
//! resourceVersion. Lists and watches are served from here, as
//! kube-apiserver's cacher serves them.
//!
//! One global store watch (rather than one per resource) gives the cache a
//! single revision clock: once it has applied revision R, every resource is
//! current to R, so a consistent list only has to wait for the cache to reach
//! the store's current revision.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rkube_api::resources::RESOURCES;
use rkube_api::ResourceInfo;
use rkube_store::{EventType, RangeRequest, Store, StoreError, WatchItem};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

/// How many events per resource are kept for watch resumption.
const HISTORY: usize = 10_000;
/// Capacity of each resource's fan-out channel; a watcher lagging further is closed.
const FANOUT: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change to one object, with the object after (or, for deletions, at)
/// the change and the object before it.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventKind,
    pub rev: i64,
    pub key: String,
    pub obj: Arc<Value>,
    pub prev: Option<Arc<Value>>,
    /// `{"type":…,"object":…}\n`, serialized once for all JSON watchers.
    line: OnceLock<Bytes>,
}

impl CacheEvent {
    pub fn new(
        kind: EventKind,
        rev: i64,
        key: String,
        obj: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Self {
        CacheEvent {
            kind,
            rev,
            key,
            obj,
            prev,
            line: OnceLock::new(),
        }
    }

    /// The watch-stream line of this event (JSON), computed once.
    pub fn json_line(&self) -> Bytes {
        self.line
            .get_or_init(|| {
                let mut v = serde_json::to_vec(
                    &serde_json::json!({"type": self.kind.as_str(), "object": &*self.obj}),
                )
                .unwrap_or_default();
                v.push(b'\n');
                Bytes::from(v)
            })
            .clone()
    }
}

/// The cached state of one resource.
pub struct ResourceCache {
    pub info: &'static ResourceInfo,
    state: RwLock<CacheState>,
}

struct CacheState {
    objects: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Watches may resume from any revision >= this one.
    oldest_rev: i64,
    tx: broadcast::Sender<Arc<CacheEvent>>,
}

/// A consistent view handed to a new watcher: objects (when asked for) and
/// the events after `from_rev`, plus the receiver for what follows.
pub struct WatchStart {
    pub initial: Vec<Arc<Value>>,
    pub replay: Vec<Arc<CacheEvent>>,
    pub rx: broadcast::Receiver<Arc<CacheEvent>>,
    pub rev: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld { requested: i64, oldest: i64 },
    #[error("timed out waiting for the cache to reach revision {0}")]
    Timeout(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ResourceCache {
    /// Objects whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<Arc<Value>> {
        self.select(prefix, |_| true)
    }

    /// Objects under `prefix` for which `keep` holds, in key order; only
    /// those are copied out of the cache.
    pub fn select(&self, prefix: &str, keep: impl Fn(&Value) -> bool) -> Vec<Arc<Value>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, v)| keep(v))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.objects.get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .objects
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a watch after `from_rev` (the caller made sure the cache has
    /// reached it). With `initial`, also returns every current object under
    /// `prefix`, and replays nothing (the objects are the state at `rev`).
    pub fn start_watch(
        &self,
        prefix: &str,
        from_rev: i64,
        initial: bool,
        current_rev: i64,
    ) -> Result<WatchStart, CacheError> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        let rx = st.tx.subscribe();
        if initial {
            let objs = st
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect();
            return Ok(WatchStart {
                initial: objs,
                replay: Vec::new(),
                rx,
                rev: current_rev,
            });
        }
        if from_rev < st.oldest_rev {
            return Err(CacheError::TooOld {
                requested: from_rev,
                oldest: st.oldest_rev,
            });
        }
        let replay = st
            .history
            .iter()
            .filter(|e| e.rev > from_rev && e.key.starts_with(prefix))
            .cloned()
            .collect();
        Ok(WatchStart {
            initial: Vec::new(),
            replay,
            rx,
            rev: current_rev,
        })
    }

    fn apply(&self, ev: Arc<CacheEvent>) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        match ev.kind {
            EventKind::Deleted => {
                st.objects.remove(&ev.key);
            }
            _ => {
                st.objects.insert(ev.key.clone(), ev.obj.clone());
            }
        }
        if st.history.len() >= HISTORY {
            if let Some(old) = st.history.pop_front() {
                st.oldest_rev = old.rev;
            }
        }
        st.history.push_back(ev.clone());
        let _ = st.tx.send(ev);
    }

    fn reset(&self, objects: BTreeMap<String, Arc<Value>>, rev: i64) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.objects = objects;
        st.history.clear();
        st.oldest_rev = rev;
        // Replacing the sender closes every current watch; clients resume
        // from their last resourceVersion or relist on 410.
        st.tx = broadcast::channel(FANOUT).0;
    }
}

/// All resource caches and the revision they are current to.
pub struct Cacher {
    store: Arc<dyn Store>,
    by_prefix: HashMap<String, Arc<ResourceCache>>,
    rev_tx: watch::Sender<i64>,
}

/// Decodes a stored value and stamps its resourceVersion.
pub fn decode_stored(bytes: &[u8], rev: i64) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(bytes).ok()?;
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
    Some(v)
}

/// The resource prefix (`/registry/<group>/<resource>/`) of a key.
fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("/registry/")?;
    let mut slashes = rest.match_indices('/');
    let _ = slashes.next()?;
    let (i, _) = slashes.next()?;
    Some(&key[..("/registry/".len() + i + 1)])
}

impl Cacher {
    /// Lists everything, then follows the store. Returns once the initial
    /// list is loaded.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Cacher>, StoreError> {
        let mut by_prefix = HashMap::new();
        for info in RESOURCES {
            by_prefix.entry(info.key_prefix()).or_insert_with(|| {
                Arc::new(ResourceCache {
                    info,
                    state: RwLock::new(CacheState {
                        objects: BTreeMap::new(),
                        history: VecDeque::new(),
                        oldest_rev: 0,
                        tx: broadcast::channel(FANOUT).0,
                    }),
                })
            });
        }
        let (rev_tx, _) = watch::channel(0);
        let cacher = Arc::new(Cacher {
            store,
            by_prefix,
            rev_tx,
        });
        let rev = cacher.relist().await?;
        let c = cacher.clone();
        tokio::spawn(async move { c.follow(rev).await });
        Ok(cacher)
    }

    async fn relist(&self) -> Result<i64, StoreError> {
        let res = self
            .store
            .range(RangeRequest {
                prefix: "/registry/".into(),
                ..Default::default()
            })
            .await?;
        let mut maps: HashMap<&str, BTreeMap<String, Arc<Value>>> = HashMap::new();
        for kv in &res.kvs {
            let Some(p) = prefix_of(&kv.key) else {
                continue;
            };
            let Some((prefix, _)) = self.by_prefix.get_key_value(p) else {
                continue;
            };
            if let Some(v) = decode_stored(&kv.value, kv.mod_revision) {
                maps.entry(prefix.as_str())
                    .or_default()
                    .insert(kv.key.clone(), Arc::new(v));
            }
        }
        for (prefix, cache) in &self.by_prefix {
            cache.reset(
                maps.remove(prefix.as_str()).unwrap_or_default(),
                res.revision,
            );
        }
        self.rev_tx.send_replace(res.revision);
        Ok(res.revision)
    }

    async fn follow(self: Arc<Self>, mut rev: i64) {
        loop {
            match self.store.watch("/registry/", rev).await {
                Ok(mut stream) => {
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(WatchItem::Events(evs)) => {
                                for e in evs {
                                    rev = rev.max(e.kv.mod_revision);
                                    self.apply_store_event(e);
                                }
                                self.rev_tx.send_replace(rev);
                            }
                            Ok(WatchItem::Progress(r)) => {
                                if r > rev {
                                    rev = r;
                                    self.rev_tx.send_replace(rev);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "store watch failed; relisting");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "store watch could not start; relisting"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            match self.relist().await {
                Ok(r) => rev = r,
                Err(e) => tracing::warn!(error = %e, "relist failed"),
            }
        }
    }

    fn apply_store_event(&self, e: rkube_store::Event) {
        let Some(p) = prefix_of(&e.kv.key) else {
            return;
        };
        let Some(cache) = self.by_prefix.get(p) else {
            return;
        };
        let rev = e.kv.mod_revision;
        let prev = cache.get(&e.kv.key);
        let ev = match e.kind {
            EventType::Put => {
                let Some(obj) = decode_stored(&e.kv.value, rev) else {
                    return;
                };
                let kind = if prev.is_some() {
                    EventKind::Modified
                } else {
                    EventKind::Added
                };
                CacheEvent::new(kind, rev, e.kv.key, Arc::new(obj), prev)
            }
            EventType::Delete => {
                let Some(prev) = prev else { return };
                let mut obj = (*prev).clone();
                if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
                }
                CacheEvent::new(EventKind::Deleted, rev, e.kv.key, Arc::new(obj), Some(prev))
            }
        };
        cache.apply(Arc::new(ev));
    }

    /// The revision the cache is current to.
    pub fn revision(&self) -> i64 {
        *self.rev_tx.borrow()
    }

    /// Every resource cache (one per storage prefix).
    pub fn caches(&self) -> impl Iterator<Item = &Arc<ResourceCache>> {
        self.by_prefix.values()
    }

    pub fn resource(&self, info: &ResourceInfo) -> Option<&Arc<ResourceCache>> {
        self.by_prefix.get(&info.key_prefix())
    }

    /// Waits until the cache has applied revision `rev` (at most `timeout`).
    pub async fn wait_for(&self, rev: i64, timeout: Duration) -> Result<i64, CacheError> {
        let mut rx = self.rev_tx.subscribe();
        let fut = async move { rx.wait_for(|r| *r >= rev).await.map(|r| *r) };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(r)) => Ok(r),
            _ => Err(CacheError::Timeout(rev)),
        }
    }

    /// Waits until the cache is current with the store (a consistent read).
    pub async fn sync(&self) -> Result<i64, CacheError> {
        let current = self.store.current_revision().await?;
        self.wait_for(current, Duration::from_secs(3)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_resource_prefixes() {
        assert_eq!(
            prefix_of("/registry/core/pods/default/web"),
            Some("/registry/core/pods/")
        );
        assert_eq!(
            prefix_of("/registry/core/namespaces/default"),
            Some("/registry/core/namespaces/")
        );
        assert_eq!(prefix_of("/registry/apps"), None);
        assert_eq!(prefix_of("/other/x/y"), None);
    }

    #[test]
    fn stored_objects_get_their_revision() {
        let v = decode_stored(br#"{"metadata":{"name":"a"}}"#, 42).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert!(decode_stored(b"not json", 1).is_none());
    }
}
