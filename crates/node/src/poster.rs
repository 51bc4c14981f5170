//! The writer every node of an agent process shares: API writes (pod
//! statuses, pod deletions, lease renewals, node statuses) go through a
//! bounded pool of workers over one client. Writes are keyed (a pod's uid,
//! a node's lease, ...): a key has at most one write in flight, and a newer
//! write queued for the same key replaces an older one not yet sent, so the
//! API server always ends with the newest state and a slow server never
//! sees a backlog of stale writes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Attempts of a pod write before it is dropped.
const MAX_ATTEMPTS: u32 = 8;

/// One API write.
#[derive(Debug, Clone)]
pub enum Job {
    /// Merge-patches `{"status": status}` onto the pod's status.
    PodStatus {
        namespace: String,
        name: String,
        status: Value,
    },
    /// Deletes the pod with grace period 0, if it still has this uid.
    DeletePod {
        namespace: String,
        name: String,
        uid: String,
    },
    /// Renews (or creates) the node's Lease.
    Lease {
        node: String,
        node_uid: Option<String>,
        duration_seconds: i32,
    },
    /// Merge-patches `{"status": status}` onto the node's status.
    NodeStatus { node: String, status: Value },
}

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    pending: HashMap<String, (Job, u32)>,
    inflight: HashSet<String>,
}

struct Inner {
    client: Client,
    state: Mutex<State>,
    work: Notify,
    drained: Notify,
}

/// The shared writer; cheap to clone.
#[derive(Clone)]
pub struct Poster {
    inner: Arc<Inner>,
}

impl Poster {
    /// Starts `workers` writer tasks over `client`.
    pub fn start(client: Client, workers: usize) -> Self {
        let inner = Arc::new(Inner {
            client,
            state: Mutex::new(State::default()),
            work: Notify::new(),
            drained: Notify::new(),
        });
        for _ in 0..workers.max(1) {
            tokio::spawn(worker(inner.clone()));
        }
        Poster { inner }
    }

    /// Queues `job` under `key`, replacing a queued job of the same key.
    pub fn submit(&self, key: String, job: Job) {
        self.inner.submit(key, job, 0);
    }

    /// Writes queued or in flight.
    pub fn backlog(&self) -> usize {
        let s = self.inner.lock();
        s.pending.len() + s.inflight.len()
    }

    /// Waits until fewer than `limit` writes are queued or in flight.
    pub async fn wait_below(&self, limit: usize) {
        loop {
            let drained = self.inner.drained.notified();
            if self.backlog() < limit.max(1) {
                return;
            }
            drained.await;
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; a poisoned lock still
        // holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn submit(&self, key: String, job: Job, attempts: u32) {
        let mut s = self.lock();
        let fresh = s.pending.insert(key.clone(), (job, attempts)).is_none();
        if fresh && !s.inflight.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.work.notify_one();
        }
    }

    /// Requeues a failed job unless a newer one for its key is queued.
    fn retry(&self, key: String, job: Job, attempts: u32) {
        let s = self.lock();
        if s.pending.contains_key(&key) {
            return;
        }
        drop(s);
        self.submit(key, job, attempts);
    }

    fn take(&self) -> Option<(String, Job, u32)> {
        let mut s = self.lock();
        while let Some(key) = s.queue.pop_front() {
            if let Some((job, attempts)) = s.pending.remove(&key) {
                s.inflight.insert(key.clone());
                return Some((key, job, attempts));
            }
        }
        None
    }

    fn done(&self, key: &str) {
        let mut s = self.lock();
        s.inflight.remove(key);
        if s.pending.contains_key(key) {
            s.queue.push_back(key.to_string());
            drop(s);
            self.work.notify_one();
        } else {
            drop(s);
        }
        self.drained.notify_waiters();
    }
}

async fn worker(inner: Arc<Inner>) {
    loop {
        let work = inner.work.notified();
        let Some((key, job, attempts)) = inner.take() else {
            work.await;
            continue;
        };
        // Wake another worker if more is queued.
        if !inner.lock().queue.is_empty() {
            inner.work.notify_one();
        }
        let result = execute(&inner.client, &job).await;
        inner.done(&key);
        if let Err(e) = result {
            let retriable = matches!(job, Job::PodStatus { .. } | Job::DeletePod { .. });
            if retriable && attempts + 1 < MAX_ATTEMPTS {
                tracing::debug!(key, error = %e, "write failed; retrying");
                let inner = inner.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(250 << attempts.min(5))).await;
                    inner.retry(key, job, attempts + 1);
                });
            } else {
                tracing::warn!(key, error = %e, "write failed");
            }
        }
    }
}

fn is_status(e: &kube::Error, codes: &[u16]) -> bool {
    matches!(e, kube::Error::Api(s) if codes.contains(&s.code))
}

/// Performs one write; outcomes that need no retry (the object is gone, or
/// was replaced) count as success.
async fn execute(client: &Client, job: &Job) -> Result<(), kube::Error> {
    let pp = PatchParams::default();
    match job {
        Job::PodStatus {
            namespace,
            name,
            status,
        } => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let body = json!({ "status": status });
            match api.patch_status(name, &pp, &Patch::Merge(&body)).await {
                Err(e) if !is_status(&e, &[404]) => Err(e),
                _ => Ok(()),
            }
        }
        Job::DeletePod {
            namespace,
            name,
            uid,
        } => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(name, &dp).await {
                Err(e) if !is_status(&e, &[404, 409]) => Err(e),
                _ => Ok(()),
            }
        }
        Job::Lease {
            node,
            node_uid,
            duration_seconds,
        } => renew_lease(client, node, node_uid.as_deref(), *duration_seconds).await,
        Job::NodeStatus { node, status } => {
            let api: Api<Node> = Api::all(client.clone());
            let body = json!({ "status": status });
            match api.patch_status(node, &pp, &Patch::Merge(&body)).await {
                Err(e) if !is_status(&e, &[404]) => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// Renews the node's Lease, creating it (owned by the Node) when missing.
async fn renew_lease(
    client: &Client,
    node: &str,
    node_uid: Option<&str>,
    duration_seconds: i32,
) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let spec = LeaseSpec {
        holder_identity: Some(node.to_string()),
        lease_duration_seconds: Some(duration_seconds),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..Default::default()
    };
    let patch = json!({ "spec": spec });
    match api
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(e) if is_status(&e, &[404]) => {}
        other => return other.map(drop),
    }
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(LEASE_NAMESPACE.into()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.to_string(),
                    uid: uid.to_string(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(spec),
    };
    match api.create(&PostParams::default(), &lease).await {
        Err(e) if !is_status(&e, &[409]) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Seen {
        bodies: Mutex<Vec<(String, Value)>>,
        inflight: Mutex<HashMap<String, usize>>,
        max_same_key: AtomicUsize,
        now: AtomicUsize,
        max_total: AtomicUsize,
    }

    /// A client whose "API server" records each write and answers after a
    /// short delay.
    fn client(seen: Arc<Seen>) -> Client {
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let seen = seen.clone();
            async move {
                let path = req.uri().path().to_string();
                {
                    let mut f = seen.inflight.lock().unwrap();
                    let n = f.entry(path.clone()).or_default();
                    *n += 1;
                    seen.max_same_key.fetch_max(*n, Ordering::SeqCst);
                }
                let total = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
                seen.max_total.fetch_max(total, Ordering::SeqCst);
                let body = req.into_body().collect().await.unwrap().to_bytes();
                tokio::time::sleep(Duration::from_millis(20)).await;
                seen.now.fetch_sub(1, Ordering::SeqCst);
                *seen.inflight.lock().unwrap().get_mut(&path).unwrap() -= 1;
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                seen.bodies.lock().unwrap().push((path, v));
                let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#;
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(pod)))
                        .unwrap(),
                )
            }
        });
        Client::new(svc, "default")
    }

    fn status(ns: &str, name: &str, n: usize) -> Job {
        Job::PodStatus {
            namespace: ns.into(),
            name: name.into(),
            status: json!({ "n": n }),
        }
    }

    #[tokio::test]
    async fn coalesces_per_key_and_runs_keys_in_parallel() {
        let seen = Arc::new(Seen::default());
        let poster = Poster::start(client(seen.clone()), 4);
        for n in 0..50 {
            poster.submit("uid-a".into(), status("ns", "a", n));
        }
        for i in 0..8 {
            poster.submit(format!("uid-{i}"), status("ns", &format!("p{i}"), 0));
        }
        tokio::time::timeout(Duration::from_secs(10), poster.wait_below(1))
            .await
            .expect("drained");
        let bodies = seen.bodies.lock().unwrap().clone();
        let a: Vec<&Value> = bodies
            .iter()
            .filter(|(p, _)| p == "/api/v1/namespaces/ns/pods/a/status")
            .map(|(_, v)| v)
            .collect();
        // The newest status always lands last; stale ones are skipped.
        assert_eq!(a.last().unwrap()["status"]["n"], 49);
        assert!(a.len() < 10, "{} writes for one pod", a.len());
        assert_eq!(seen.max_same_key.load(Ordering::SeqCst), 1);
        assert!(
            seen.max_total.load(Ordering::SeqCst) > 1,
            "keys run in parallel"
        );
        assert!(
            seen.max_total.load(Ordering::SeqCst) <= 4,
            "bounded by workers"
        );
        assert_eq!(bodies.len(), a.len() + 8);
        assert_eq!(poster.backlog(), 0);
    }
}
