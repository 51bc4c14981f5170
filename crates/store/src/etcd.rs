//! The etcd backend: the [`Store`] trait on a real etcd (v3 API) cluster
//! through `etcd-client`.
//!
//! * `create`: `Txn(create_revision(key) == 0 → put, else get)`.
//! * `update`: `Txn(create_revision(key) > 0 && mod_revision(key) == expected
//!   → put with prev_kv, else get)`; the extra `create_revision > 0` check
//!   keeps `expected == 0` from creating a missing key.
//! * `delete`: `Txn(create_revision(key) > 0 [&& mod_revision == expected]
//!   → delete with prev_kv, else get)`.
//! * `range`: one Range over `[max(prefix, start_key), prefix_end)` at the
//!   requested revision with the limit; etcd reports `count` and `more`.
//! * `watch`: a watch from `after + 1` with `prev_kv` and progress
//!   notifications; when idle for a second the stream asks etcd for a progress
//!   notification, which becomes `WatchItem::Progress`.
//!
//! etcd's "required revision has been compacted" and "required revision is a
//! future revision" errors (and a watch canceled with a compact revision) map
//! to [`StoreError::Compacted`] and [`StoreError::FutureRevision`]. etcd's
//! range error does not say which revision was compacted; it is learned by a
//! probe watch from revision 1, which etcd cancels with the compact revision.
//!
//! Keys are UTF-8 strings; etcd keys that are not UTF-8 give `Backend` errors.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::embedded::codec::key_bounds;
use crate::{
    Event, EventType, KeyValue, RangeRequest, RangeResult, Result, Store, StoreError, WatchItem,
    WatchStream,
};

/// Time allowed to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one unary request (not watches).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle time after which a watch asks etcd for a progress notification.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Items buffered between a watch task and its consumer.
const WATCH_BUFFER: usize = 64;

const COMPACTED_MSG: &str = "required revision has been compacted";
const FUTURE_MSG: &str = "required revision is a future revision";

/// A [`Store`] backed by an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// What an etcd error means to us.
enum Kind {
    Compacted,
    Future,
    Other,
}

fn classify(e: &etcd_client::Error) -> Kind {
    let msg = match e {
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        other => other.to_string(),
    };
    if msg.contains(COMPACTED_MSG) {
        Kind::Compacted
    } else if msg.contains(FUTURE_MSG) {
        Kind::Future
    } else {
        Kind::Other
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

fn key_of(raw: &[u8]) -> Result<String> {
    String::from_utf8(raw.to_vec())
        .map_err(|_| StoreError::Backend("etcd: key is not UTF-8".into()))
}

fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key_of(kv.key())?,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn convert_event(ev: &etcd_client::Event) -> Result<Event> {
    let kv = ev
        .kv()
        .ok_or_else(|| StoreError::Backend("etcd: watch event without kv".into()))?;
    let kind = match ev.event_type() {
        etcd_client::EventType::Put => EventType::Put,
        etcd_client::EventType::Delete => EventType::Delete,
    };
    let mut kv = convert_kv(kv)?;
    if kind == EventType::Delete {
        kv.value.clear();
        kv.create_revision = 0;
    }
    Ok(Event {
        kind,
        kv,
        prev_kv: ev.prev_kv().map(convert_kv).transpose()?,
    })
}

fn header_revision(resp: &TxnResponse) -> i64 {
    resp.header().map_or(0, |h| h.revision())
}

/// The key-value read by the `else` branch of a failed transaction.
fn failed_txn_kv(resp: &TxnResponse) -> Result<Option<KeyValue>> {
    match resp.op_responses().first() {
        Some(TxnOpResponse::Get(get)) => get.kvs().first().map(convert_kv).transpose(),
        _ => Ok(None),
    }
}

/// Key and range end (etcd encoding) for keys under `prefix` from `start_key`.
fn etcd_range(prefix: &str, start_key: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let (start, end) = key_bounds(prefix, start_key);
    // etcd: an empty key is invalid, "\0" is the smallest key; a range end of
    // "\0" means "every key >= key".
    let start = if start.is_empty() { vec![0] } else { start };
    (start, end.unwrap_or_else(|| vec![0]))
}

impl EtcdStore {
    /// Connects to an etcd cluster. Endpoints are `host:port` or
    /// `http://host:port`. Fails if no endpoint answers within a few seconds.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        if endpoints.is_empty() {
            return Err(StoreError::Backend("etcd: no endpoints given".into()));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(backend)?;
        let store = EtcdStore {
            client,
            endpoints: endpoints.to_vec(),
        };
        store.ping().await?;
        tracing::info!(endpoints = ?endpoints, "connected to etcd");
        Ok(store)
    }

    /// The endpoints this store connects to.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let mut kv = self.client.kv_client();
        tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(txn))
            .await
            .map_err(|_| StoreError::Backend("etcd: request timed out".into()))?
            .map_err(backend)
    }

    /// Maps an error of a request made at (or about) `revision`.
    async fn map_err(&self, e: etcd_client::Error, revision: i64) -> StoreError {
        match classify(&e) {
            Kind::Compacted => {
                StoreError::Compacted(self.compacted_revision().await.unwrap_or(revision + 1))
            }
            Kind::Future => StoreError::FutureRevision(revision),
            Kind::Other => backend(e),
        }
    }

    /// Learns etcd's compacted revision: a watch from revision 1 is canceled
    /// with it. `None` when the store was never compacted or on failure.
    pub async fn compacted_revision(&self) -> Option<i64> {
        let probe = async {
            let mut client = self.client.clone();
            let opts = WatchOptions::new().with_start_revision(1);
            let mut stream = client.watch(vec![0u8], Some(opts)).await.ok()?;
            // etcd answers "created", then cancels the watch with the compact
            // revision; a watch that streams events instead was not compacted.
            for _ in 0..3 {
                let resp = tokio::time::timeout(Duration::from_millis(500), stream.message())
                    .await
                    .ok()?
                    .ok()??;
                if resp.compact_revision() > 0 {
                    return Some(resp.compact_revision());
                }
                if resp.canceled() || !resp.events().is_empty() {
                    return None;
                }
            }
            None
        };
        tokio::time::timeout(Duration::from_secs(5), probe)
            .await
            .ok()
            .flatten()
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<i64> {
        let mut kv = self.client.kv_client();
        let resp = tokio::time::timeout(
            REQUEST_TIMEOUT,
            kv.get(vec![0u8], Some(GetOptions::new().with_count_only())),
        )
        .await
        .map_err(|_| StoreError::Backend("etcd: request timed out".into()))?
        .map_err(backend)?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut kv = self.client.kv_client();
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, kv.get(key, None))
            .await
            .map_err(|_| StoreError::Backend("etcd: request timed out".into()))?
            .map_err(backend)?;
        resp.kvs().first().map(convert_kv).transpose()
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResult> {
        let (start, end) = etcd_range(&req.prefix, req.start_key.as_deref());
        let opts = GetOptions::new()
            .with_range(end)
            .with_revision(req.revision.max(0))
            .with_limit(req.limit.max(0));
        let mut kv = self.client.kv_client();
        let resp = match tokio::time::timeout(REQUEST_TIMEOUT, kv.get(start, Some(opts))).await {
            Err(_) => return Err(StoreError::Backend("etcd: request timed out".into())),
            Ok(Err(e)) => return Err(self.map_err(e, req.revision).await),
            Ok(Ok(resp)) => resp,
        };
        let kvs = resp
            .kvs()
            .iter()
            .map(convert_kv)
            .collect::<Result<Vec<_>>>()?;
        Ok(RangeResult {
            revision: if req.revision > 0 {
                req.revision
            } else {
                resp.header().map_or(0, |h| h.revision())
            },
            more: resp.more(),
            count: resp.count(),
            kvs,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let rev = header_revision(&resp);
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: rev,
            mod_revision: rev,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision),
            ])
            .and_then([TxnOp::put(
                key,
                value.clone(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return match failed_txn_kv(&resp)? {
                Some(current) => Err(StoreError::Conflict(Box::new(current))),
                None => Err(StoreError::NotFound(key.to_string())),
            };
        }
        let rev = header_revision(&resp);
        let create_revision = match resp.op_responses().first() {
            Some(TxnOpResponse::Put(put)) => put.prev_key().map_or(rev, |p| p.create_revision()),
            _ => rev,
        };
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision,
            mod_revision: rev,
        })
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<i64>) -> Result<KeyValue> {
        let mut compares = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected_mod_revision {
            compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return match failed_txn_kv(&resp)? {
                Some(current) => Err(StoreError::Conflict(Box::new(current))),
                None => Err(StoreError::NotFound(key.to_string())),
            };
        }
        let rev = header_revision(&resp);
        let prev = match resp.op_responses().first() {
            Some(TxnOpResponse::Delete(del)) => {
                del.prev_kvs().first().map(convert_kv).transpose()?
            }
            _ => None,
        };
        let mut deleted = prev.ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        deleted.mod_revision = rev;
        Ok(deleted)
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        if after_revision < 0 {
            return Err(StoreError::Backend(format!(
                "invalid watch revision {after_revision}"
            )));
        }
        let (key, end) = etcd_range(prefix, None);
        let mut opts = WatchOptions::new()
            .with_range(end)
            .with_prev_key()
            .with_progress_notify();
        if after_revision > 0 {
            opts = opts.with_start_revision(after_revision + 1);
        }
        let mut client = self.client.clone();
        let stream = client.watch(key, Some(opts)).await.map_err(backend)?;
        let (mut requests, mut responses) = stream.split();
        let (tx, rx) = mpsc::channel::<Result<WatchItem>>(WATCH_BUFFER);
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    msg = responses.message() => {
                        let item = match msg {
                            Ok(Some(resp)) => {
                                if resp.compact_revision() > 0 {
                                    Err(StoreError::Compacted(resp.compact_revision()))
                                } else if resp.canceled() {
                                    Err(StoreError::Backend(format!("etcd: watch canceled: {}", resp.cancel_reason())))
                                } else if resp.created() && resp.events().is_empty() {
                                    continue;
                                } else if resp.events().is_empty() {
                                    Ok(WatchItem::Progress(resp.header().map_or(0, |h| h.revision())))
                                } else {
                                    resp.events().iter().map(convert_event).collect::<Result<Vec<_>>>().map(WatchItem::Events)
                                }
                            }
                            Ok(None) => Err(StoreError::Backend("etcd: watch stream ended".into())),
                            Err(e) => Err(match classify(&e) {
                                Kind::Compacted => StoreError::Compacted(after_revision + 1),
                                _ => backend(e),
                            }),
                        };
                        let failed = item.is_err();
                        if failed {
                            tracing::debug!(prefix = %prefix, "etcd watch ended with an error");
                        }
                        if tx.send(item).await.is_err() || failed {
                            return;
                        }
                    }
                    _ = tokio::time::sleep(PROGRESS_INTERVAL) => {
                        // Best effort: etcd answers only when the watcher is synced.
                        let _ = requests.request_progress().await;
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let mut kv = self.client.kv_client();
        match kv
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.map_err(e, revision).await),
        }
    }

    async fn ping(&self) -> Result<()> {
        let mut maintenance = self.client.maintenance_client();
        tokio::time::timeout(Duration::from_secs(5), maintenance.status())
            .await
            .map_err(|_| StoreError::Backend("etcd: status request timed out".into()))?
            .map(|_| ())
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_range_encoding() {
        assert_eq!(etcd_range("/a/", None), (b"/a/".to_vec(), b"/a0".to_vec()));
        assert_eq!(
            etcd_range("/a/", Some("/a/m")),
            (b"/a/m".to_vec(), b"/a0".to_vec())
        );
        assert_eq!(etcd_range("", None), (vec![0], vec![0]));
    }
}
