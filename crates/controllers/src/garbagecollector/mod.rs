//! The garbage collector (upstream's `garbage-collector-controller`,
//! `--controllers` name `garbagecollector`): deletes objects whose owners
//! are all gone, and carries out `propagationPolicy: Orphan` and
//! `Foreground` deletions.
//!
//! How it maps to upstream (`pkg/controller/garbagecollector`):
//! * Monitors ([`monitors`]): at start, discovery gives every resource that
//!   supports list, watch and delete (events excepted, as upstream's
//!   `DefaultIgnoredResources`); each is watched metadata-only
//!   (`PartialObjectMetadata`). The set is fixed at start; an owner kind
//!   discovered later is still resolved for lookups, but objects of types
//!   added later are not watched (upstream re-discovers every 30 s).
//! * The graph builder ([`graph`]) folds the monitors' events, one at a
//!   time, into the ownership graph (uid → identity, owner references,
//!   deletion state; owner → dependents) and queues uids on two work queues,
//!   `garbage_collector_attempt_to_delete` and
//!   `garbage_collector_attempt_to_orphan` (upstream's names).
//! * Workers ([`worker`]) start once every monitor has its first list in.
//!   Attempt-to-delete: a dependent whose owners are all absent (not in the
//!   graph and confirmed by a live GET: not found, or found with another
//!   uid) is deleted with a uid precondition, with the policy its own
//!   finalizers ask for (Background by default); dangling references of a
//!   dependent that still has an owner are patched away. An owner being
//!   deleted in the foreground (`foregroundDeletion`) has its dependents
//!   deleted (a dependent that has dependents of its own in the
//!   foreground), and loses the finalizer once no dependent with
//!   `blockOwnerDeletion: true` is left. Attempt-to-orphan: an owner being
//!   deleted with `orphan` has its reference removed from every dependent,
//!   then loses the finalizer. The decisions are pure functions
//!   ([`decide`]).
//! * A namespaced dependent naming an owner observed in another namespace
//!   gets a Warning event `OwnerRefInvalidNamespace` ("ownerRef [...] does
//!   not exist in namespace ..."), and the reference counts as absent (a
//!   GET in the dependent's namespace does not find it). A cluster-scoped
//!   dependent naming a namespaced kind is left alone (logged, not retried),
//!   as upstream does.
//! * Not done: upstream's `absentOwnerCache` (each check GETs the owner),
//!   the `/debug/controllers/garbagecollector/graph` endpoint, and the
//!   periodic re-discovery.

pub mod decide;
pub mod graph;
pub mod monitors;
pub mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::events::{self, Recorder};
use crate::manager::{self, Context, Running};
use crate::workqueue::WorkQueue;
use graph::{Effect, Graph};
use monitors::Msg;

/// The garbage collector's errors.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("discovery: {0}")]
    Discovery(#[source] kube::Error),
    #[error("cannot resolve owner kind {0}: {1}")]
    UnknownKind(String, String),
    #[error("{0}: {1}")]
    Api(String, #[source] kube::Error),
}

/// The shared state of the graph builder and the workers.
pub struct Gc {
    pub graph: Mutex<Graph>,
    pub attempt_to_delete: Arc<WorkQueue>,
    pub attempt_to_orphan: Arc<WorkQueue>,
    pub resolver: monitors::Resolver,
}

impl Gc {
    /// Runs `f` on the graph (never across an await).
    pub fn with_graph<T>(&self, f: impl FnOnce(&Graph) -> T) -> T {
        f(&self.graph.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The controller's entry in the registry.
pub fn start(ctx: &Context) -> Running {
    let client = ctx.client.clone();
    let attempt_to_delete = ctx.queue("garbage_collector_attempt_to_delete");
    let attempt_to_orphan = ctx.queue("garbage_collector_attempt_to_orphan");
    let recorder = ctx.recorder("garbage-collector-controller");
    let workers = ctx.config.workers;
    Box::pin(async move {
        let known = discover(&client).await;
        tracing::info!(
            resources = known.len(),
            "garbage collector monitoring resources"
        );
        let gc = Arc::new(Gc {
            graph: Mutex::new(Graph::default()),
            attempt_to_delete,
            attempt_to_orphan,
            resolver: monitors::Resolver::new(client.clone(), &known),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (synced_tx, mut synced_rx) = watch::channel(false);
        let monitors = futures::future::join_all(
            known
                .iter()
                .map(|k| monitors::monitor(client.clone(), k.clone(), tx.clone())),
        );
        drop(tx);
        let builder = build_graph(gc.clone(), rx, known.len(), synced_tx, recorder);
        let workers = async move {
            // Upstream waits for every monitor before the first deletion, so
            // a not-yet-listed owner is never taken for a deleted one.
            let _ = synced_rx.wait_for(|s| *s).await;
            tracing::info!("garbage collector synced; workers starting");
            let del = {
                let gc = gc.clone();
                manager::run_workers(gc.attempt_to_delete.clone(), workers, move |uid| {
                    let gc = gc.clone();
                    async move { worker::attempt_to_delete(&gc, &uid).await }
                })
            };
            let orphan = {
                let gc = gc.clone();
                manager::run_workers(gc.attempt_to_orphan.clone(), workers, move |uid| {
                    let gc = gc.clone();
                    async move { worker::attempt_to_orphan(&gc, &uid).await }
                })
            };
            futures::join!(del, orphan);
        };
        futures::join!(monitors, builder, workers);
        Ok(())
    })
}

/// Discovery, retried until the API server answers.
async fn discover(client: &kube::Client) -> Vec<monitors::Known> {
    let mut delay = Duration::from_millis(200);
    loop {
        match monitors::deletable_resources(client).await {
            Ok(k) => return k,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector discovery failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The graph builder: applies the monitors' events one at a time and
/// dispatches their effects; reports sync once every monitor has listed.
async fn build_graph(
    gc: Arc<Gc>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    monitors: usize,
    synced: watch::Sender<bool>,
    recorder: Recorder,
) {
    let mut pending = monitors;
    if pending == 0 {
        let _ = synced.send(true);
    }
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Synced(resource) => {
                tracing::debug!(%resource, "garbage collector monitor synced");
                pending = pending.saturating_sub(1);
                if pending == 0 {
                    let _ = synced.send(true);
                }
            }
            Msg::Event(ev) => {
                let effects = gc.graph.lock().unwrap_or_else(|e| e.into_inner()).apply(ev);
                for e in effects {
                    dispatch(&gc, &recorder, e);
                }
            }
        }
    }
}

fn dispatch(gc: &Gc, recorder: &Recorder, effect: Effect) {
    match effect {
        Effect::AttemptToDelete(uid) => gc.attempt_to_delete.add(uid),
        Effect::AttemptToOrphan(uid) => gc.attempt_to_orphan.add(uid),
        Effect::InvalidNamespace { dependent, owner } => {
            let invalid = graph::Identity {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                namespace: dependent.namespace.clone(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
            };
            let object = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(dependent.api_version.clone()),
                kind: Some(dependent.kind.clone()),
                namespace: Some(dependent.namespace.clone()).filter(|n| !n.is_empty()),
                name: Some(dependent.name.clone()),
                uid: Some(dependent.uid.clone()),
                ..Default::default()
            };
            recorder.event_ref(
                object,
                events::WARNING,
                "OwnerRefInvalidNamespace",
                format!(
                    "ownerRef {invalid} does not exist in namespace {:?}",
                    dependent.namespace
                ),
            );
        }
    }
}
