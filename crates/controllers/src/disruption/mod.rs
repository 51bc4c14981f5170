//! Disruption: keeps each PodDisruptionBudget's status current, like
//! upstream's disruption controller (`pkg/controller/disruption`,
//! `--controllers` name `disruption`).
//!
//! For a budget, the pods it selects (same namespace; a null selector
//! selects nothing, an empty one everything, as policy/v1) give
//! ([`budget`]):
//!
//! * `expectedPods` and `desiredHealthy`: with an integer `minAvailable`,
//!   the number of pods and `minAvailable`; with a percentage
//!   `minAvailable` or any `maxUnavailable`, the total `spec.replicas` of
//!   the pods' controllers (a ReplicaSet, or the Deployment owning it, or a
//!   StatefulSet — each counted once), of which the percentage is taken
//!   rounding up. Pods without a controller are skipped then (warning event
//!   `UnmanagedPods`); a controller that cannot be found makes the budget
//!   fail safe (no disruptions allowed, condition reason `SyncFailed`,
//!   warning `CalculateExpectedPodCountFailed`).
//! * `currentHealthy`: Ready pods not being deleted and not in
//!   `disruptedPods` (evictions the API server granted but whose deletion
//!   is not seen yet; an entry expires after 2 minutes).
//! * `disruptionsAllowed` = currentHealthy − desiredHealthy (at least 0; 0
//!   when no pods are expected), `observedGeneration`, and the
//!   `DisruptionAllowed` condition (`SufficientPods` / `InsufficientPods`).
//!
//! The status is written (compare-and-swap on the resourceVersion) only
//! when it changes. Budgets are synced on their own changes, on changes of
//! the pods they select, and on scale changes of Deployments, ReplicaSets
//! and StatefulSets in their namespace.

pub mod budget;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::events::{self, Recorder};
use crate::informers::{Change, Informed};
use crate::manager::{run_workers, Context, Running};
use crate::util::{controller_of, key_of, selector_matches, split_key};
use crate::workqueue::WorkQueue;

#[derive(Debug, thiserror::Error)]
pub enum DisruptionError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

struct Controller {
    client: Client,
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
    recorder: Recorder,
}

fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    pdb.namespace() == pod.namespace()
        && selector_matches(
            pdb.spec.as_ref().and_then(|s| s.selector.as_ref()),
            pod.metadata.labels.as_ref().unwrap_or(&Default::default()),
        )
}

/// Queues every budget in `ns`.
fn queue_namespace(q: &WorkQueue, pdbs: &Store<PodDisruptionBudget>, ns: Option<String>) {
    for b in pdbs.state() {
        if b.namespace() == ns {
            q.add(key_of(b.as_ref()));
        }
    }
}

/// Queues the namespace's budgets when a workload's replicas change.
fn on_scale_change<K: Informed>(
    ctx: &Context,
    q: &Arc<WorkQueue>,
    pdbs: &Store<PodDisruptionBudget>,
    replicas: fn(&K) -> Option<i32>,
) {
    let q = q.clone();
    let pdbs = pdbs.clone();
    ctx.informers.get::<K>().on_change(move |c| {
        let changed = match c {
            Change::Applied {
                old: Some(old),
                new,
            } => replicas(old) != replicas(new),
            _ => true,
        };
        if changed {
            queue_namespace(&q, &pdbs, c.object().meta().namespace.clone());
        }
    });
}

/// Sets the controller up (see the module doc).
pub fn start(ctx: &Context) -> Running {
    let pdbs = ctx.informers.get::<PodDisruptionBudget>();
    let pods = ctx.informers.get::<Pod>();
    let queue = ctx.queue("disruption");
    let q = queue.clone();
    pdbs.on_change(move |c| q.add(key_of(c.object().as_ref())));
    let q = queue.clone();
    let pdb_store = pdbs.store();
    pods.on_change(move |c| {
        let (old, new) = match c {
            Change::Applied { old, new } => (old.as_deref(), new.as_ref()),
            Change::Deleted(p) => (None, p.as_ref()),
        };
        for b in pdb_store.state() {
            if selects(&b, new) || old.is_some_and(|o| selects(&b, o)) {
                q.add(key_of(b.as_ref()));
            }
        }
    });
    let pdb_store = pdbs.store();
    on_scale_change::<ReplicaSet>(ctx, &queue, &pdb_store, |r| {
        r.spec.as_ref().and_then(|s| s.replicas)
    });
    on_scale_change::<Deployment>(ctx, &queue, &pdb_store, |d| {
        d.spec.as_ref().and_then(|s| s.replicas)
    });
    on_scale_change::<StatefulSet>(ctx, &queue, &pdb_store, |s| {
        s.spec.as_ref().and_then(|s| s.replicas)
    });
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        pdbs: pdb_store,
        pods: pods.store(),
        replicasets: ctx.informers.get::<ReplicaSet>().store(),
        deployments: ctx.informers.get::<Deployment>().store(),
        statefulsets: ctx.informers.get::<StatefulSet>().store(),
        recorder: ctx.recorder("controllermanager"),
    });
    let workers = ctx.config.workers;
    Box::pin(async move {
        let ready = [
            c.pdbs.wait_until_ready().await.is_ok(),
            c.pods.wait_until_ready().await.is_ok(),
            c.replicasets.wait_until_ready().await.is_ok(),
            c.deployments.wait_until_ready().await.is_ok(),
            c.statefulsets.wait_until_ready().await.is_ok(),
        ];
        if ready.contains(&false) {
            return Err("informer stopped before syncing".into());
        }
        run_workers(queue, workers, move |key| {
            let c = c.clone();
            async move { c.reconcile(&key).await }
        })
        .await;
        Ok(())
    })
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

impl Controller {
    /// A pod's controller's identity and scale (upstream's finders:
    /// Deployment through its ReplicaSet, ReplicaSet, StatefulSet).
    fn find_scale(&self, ns: &str, owner: &OwnerReference) -> Option<(String, i32)> {
        if group_of(&owner.api_version) != "apps" {
            return None;
        }
        match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = self
                    .replicasets
                    .get(&ObjectRef::new(&owner.name).within(ns))
                    .filter(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str()))?;
                if let Some(d) = controller_of(rs.as_ref()).filter(|r| r.kind == "Deployment") {
                    let dep = self
                        .deployments
                        .get(&ObjectRef::new(&d.name).within(ns))
                        .filter(|x| x.metadata.uid.as_deref() == Some(d.uid.as_str()))?;
                    let replicas = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    return Some((d.uid.clone(), replicas));
                }
                let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                Some((owner.uid.clone(), replicas))
            }
            "StatefulSet" => {
                let sts = self
                    .statefulsets
                    .get(&ObjectRef::new(&owner.name).within(ns))
                    .filter(|s| s.metadata.uid.as_deref() == Some(owner.uid.as_str()))?;
                let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                Some((owner.uid.clone(), replicas))
            }
            _ => None,
        }
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, DisruptionError> {
        let (ns, name) = split_key(key);
        let Some(pdb) = self.pdbs.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        if pdb.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let all_pods = self.pods.state();
        let pods: Vec<&Pod> = all_pods
            .iter()
            .map(Arc::as_ref)
            .filter(|p| selects(&pdb, p))
            .collect();
        if pods.is_empty() {
            self.recorder.event(
                pdb.as_ref(),
                events::NORMAL,
                "NoPods",
                "No matching pods found",
            );
        }
        let now = Timestamp::now();
        let mut recheck = None;
        let computed = (|| {
            let scale = if budget::needs_scale(&pdb) {
                let (scale, unmanaged) =
                    budget::expected_scale(pods.iter().copied(), |o| self.find_scale(ns, o))?;
                if !unmanaged.is_empty() {
                    self.recorder.event(
                        pdb.as_ref(),
                        events::WARNING,
                        "UnmanagedPods",
                        format!(
                            "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                            selector_string(&pdb)
                        ),
                    );
                }
                scale
            } else {
                0
            };
            let (expected, desired) = budget::expected_and_desired(&pdb, pods.len() as i32, scale)?;
            let (disrupted, again, expired) = budget::disrupted_pods(
                &pods,
                pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()),
                now,
            );
            for p in expired {
                tracing::info!(pdb = key, pod = %p, "evicted pod was not deleted in time; counting it again");
            }
            recheck = again;
            let healthy = budget::current_healthy(&pods, &disrupted);
            Ok::<_, budget::BudgetError>(budget::status(
                &pdb, expected, desired, healthy, disrupted, now,
            ))
        })();
        let status = match computed {
            Ok(s) => s,
            Err(e) => {
                self.recorder.event(
                    pdb.as_ref(),
                    events::WARNING,
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {e}"),
                );
                budget::fail_safe(&pdb, &e.to_string(), now)
            }
        };
        if pdb.status.as_ref() != Some(&status) {
            let mut new = (*pdb).clone();
            new.status = Some(status);
            let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), ns);
            match api.replace_status(name, &PostParams::default(), &new).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(recheck.map(|t| now.duration_until(t).unsigned_abs() + Duration::from_secs(1)))
    }
}

/// The budget's selector in `kubectl`'s `k=v,...` form, for messages.
fn selector_string(pdb: &PodDisruptionBudget) -> String {
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| s.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
