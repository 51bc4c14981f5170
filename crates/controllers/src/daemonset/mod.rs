//! The DaemonSet controller (upstream `pkg/controller/daemon`, enabled as
//! `daemonset`): one pod of the DaemonSet's template on every eligible
//! node.
//!
//! A node is eligible when the template's nodeName (if set), nodeSelector
//! and required node affinity fit it and the pod, with the daemon
//! tolerations upstream adds (not-ready/unreachable NoExecute;
//! disk/memory/pid-pressure and unschedulable NoSchedule; network-unavailable
//! for host-network pods), tolerates its NoSchedule and NoExecute taints
//! ([`plan::node_fit`]). Pods are created like upstream's: name
//! `<ds>-<random>`, labels `controller-revision-hash` and
//! `pod-template-generation` (the DaemonSet's `metadata.generation`; rkube's
//! API server keeps no separate template generation), and pinned to their
//! node by a required node affinity `matchFields metadata.name In [node]`
//! (replacing the template's required terms) so that the scheduler binds
//! them.
//!
//! Each sync ([`Controller::sync`]), like upstream's `syncDaemonSet`:
//! 1. finds or makes the ControllerRevision of the current template
//!    (`<ds>-<hash>`, data = the template patch, revision = one past the
//!    highest; a rollback renumbers the matching old revision instead);
//! 2. unless creations/deletions are still unobserved (expectations),
//!    creates the missing pods and deletes the ones on nodes that no longer
//!    fit, duplicates, failed pods and pods for nodes that are gone
//!    ([`plan::manage`]; upstream leaves pods bound to deleted nodes to the
//!    pod GC, which rkube does not have yet);
//! 3. when nothing was left to manage, takes the next RollingUpdate step
//!    ([`plan::rolling_update`], maxUnavailable / maxSurge); OnDelete waits
//!    for the user to delete pods;
//! 4. prunes revisions beyond `revisionHistoryLimit` that no pod uses;
//! 5. writes the status ([`plan::status`]) with `observedGeneration`.
//!
//! Events: SuccessfulCreate `Created pod: <name>`, FailedCreate
//! `Error creating: <error>`, SuccessfulDelete `Deleted pod: <name>`,
//! FailedDelete, FailedDaemonPod. Not done: adopting orphaned pods and
//! releasing pods that stop matching the selector, the failed-pod deletion
//! backoff, and the DaemonSet conditions.

pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{Recorder, NORMAL, WARNING};
use crate::expectations::Expectations;
use crate::history;
use crate::informers::Change;
use crate::manager::{run_workers, Context, Running};
use crate::util::{
    controller_of, controller_ref_to, is_controlled_by, is_deleting, key_of, split_key,
};
use crate::workqueue::WorkQueue;

use plan::{Plan, Snapshot, REVISION_HASH_LABEL, TEMPLATE_GENERATION_LABEL};

/// The name `--controllers` knows this controller by.
pub const NAME: &str = "daemonset";

#[derive(Debug, thiserror::Error)]
pub enum DaemonSetError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("hash collision on ControllerRevision {0}; collisionCount raised")]
    Collision(String),
    #[error("{count} pod operation(s) failed, the first: {first}")]
    Pods { count: usize, first: String },
}

struct Controller {
    client: Client,
    daemonsets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    recorder: Recorder,
}

/// The key of the DaemonSet controlling `obj`, if one does.
fn owner_key<K: kube::Resource>(obj: &K) -> Option<String> {
    let r = controller_of(obj)?;
    if r.kind != "DaemonSet" || !r.api_version.starts_with("apps/") {
        return None;
    }
    let ns = obj.meta().namespace.as_deref().unwrap_or_default();
    Some(format!("{ns}/{}", r.name))
}

/// Whether a node change can change which DaemonSets fit it.
fn node_changed(old: &Node, new: &Node) -> bool {
    old.metadata.labels != new.metadata.labels
        || old.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
            != new.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
}

/// Sets up the informers, handlers and queue; returns the workers.
pub fn start(ctx: &Context) -> Running {
    let queue = ctx.queue(NAME);
    let ds_inf = ctx.informers.get::<DaemonSet>();
    let pod_inf = ctx.informers.get::<Pod>();
    let node_inf = ctx.informers.get::<Node>();
    let rev_inf = ctx.informers.get::<ControllerRevision>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        daemonsets: ds_inf.store(),
        pods: pod_inf.store(),
        nodes: node_inf.store(),
        revisions: rev_inf.store(),
        expectations: Expectations::default(),
        recorder: ctx.recorder("daemonset-controller"),
    });
    let q = queue.clone();
    ds_inf.on_change(move |ch: &Change<DaemonSet>| q.add(key_of(&**ch.object())));
    let (q, cc) = (queue.clone(), c.clone());
    pod_inf.on_change(move |ch: &Change<Pod>| on_pod(&cc, &q, ch));
    let (q, dss) = (queue.clone(), c.daemonsets.clone());
    node_inf.on_change(move |ch: &Change<Node>| {
        let relevant = match ch {
            Change::Applied {
                old: Some(old),
                new,
            } => node_changed(old, new),
            _ => true,
        };
        if relevant {
            for ds in dss.state() {
                q.add(key_of(&*ds));
            }
        }
    });
    let q = queue.clone();
    rev_inf.on_change(move |ch: &Change<ControllerRevision>| {
        if let Some(k) = owner_key(&**ch.object()) {
            q.add(k);
        }
    });
    let workers = ctx.config.workers;
    Box::pin(async move {
        run_workers(queue, workers, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
        Ok(())
    })
}

fn on_pod(c: &Controller, q: &WorkQueue, ch: &Change<Pod>) {
    match ch {
        Change::Applied { old, new } => {
            if let Some(k) = owner_key(&**new) {
                match old {
                    None if !is_deleting(&**new) => c.expectations.creation_observed(&k),
                    Some(o) if !is_deleting(&**o) && is_deleting(&**new) => {
                        c.expectations.deletion_observed(&k)
                    }
                    _ => {}
                }
                q.add(k);
            }
            if let Some(k) = old.as_ref().and_then(|o| owner_key(&**o)) {
                q.add(k);
            }
        }
        Change::Deleted(p) => {
            if let Some(k) = owner_key(&**p) {
                if !is_deleting(&**p) {
                    c.expectations.deletion_observed(&k);
                }
                q.add(k);
            }
        }
    }
}

/// The pod the DaemonSet runs on `node` (upstream `CreatePodTemplate` +
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`).
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(
        TEMPLATE_GENERATION_LABEL.into(),
        ds.metadata.generation.unwrap_or(0).to_string(),
    );
    labels.insert(REVISION_HASH_LABEL.into(), hash.to_string());
    let mut spec = template.spec.unwrap_or_default();
    plan::add_daemon_tolerations(&mut spec);
    plan::pin_to_node(&mut spec, node);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref_to(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

impl Controller {
    async fn wait_synced(&self) {
        let _ = self.daemonsets.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
        let _ = self.revisions.wait_until_ready().await;
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, DaemonSetError> {
        self.wait_synced().await;
        let (ns, name) = split_key(key);
        let Some(ds) = self.daemonsets.get(&ObjectRef::new(name).within(ns)) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && is_controlled_by(&**p, &uid))
            .collect();
        let revs: Vec<Arc<ControllerRevision>> = self
            .revisions
            .state()
            .into_iter()
            .filter(|r| r.metadata.namespace.as_deref() == Some(ns) && is_controlled_by(&**r, &uid))
            .collect();
        let mut nodes = self.nodes.state();
        nodes.sort_by_key(|n| n.name_any());
        let hash = self.construct_history(&ds, &revs).await?;
        let snap = Snapshot {
            ds: &ds,
            nodes: &nodes,
            pods: &pods,
            hash: &hash,
            now: Timestamp::now(),
        };
        let mut result = Ok(());
        if !is_deleting(&*ds) && self.expectations.satisfied(key) {
            let mut todo = plan::manage(&snap);
            if todo.is_empty() {
                todo = plan::rolling_update(&snap);
            }
            if !todo.is_empty() {
                result = self.sync_nodes(key, &ds, &todo, &hash).await;
            }
            self.cleanup_history(&ds, &revs, &pods, &hash).await;
        }
        let status = plan::status(&snap);
        let requeue = self.update_status(&ds, status).await?;
        result?;
        // Look again when ready pods should have become available.
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        Ok(
            (requeue && min_ready > 0)
                .then(|| Duration::from_secs(min_ready.unsigned_abs().into())),
        )
    }

    /// Creates and deletes pods (upstream `syncNodes`), recording events.
    async fn sync_nodes(
        &self,
        key: &str,
        ds: &DaemonSet,
        todo: &Plan,
        hash: &str,
    ) -> Result<(), DaemonSetError> {
        let ns = ds.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        // Orphaned pods go at once (and may be deleting already, with no
        // further deletion to observe): they are not waited for.
        self.expectations
            .expect(key, todo.create_on.len(), todo.delete.len());
        for (pod, node) in &todo.failed {
            self.recorder.event(
                ds,
                WARNING,
                "FailedDaemonPod",
                format!("Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it"),
            );
        }
        let creates = todo.create_on.iter().map(|node| {
            let pod = new_pod(ds, node, hash);
            let api = api.clone();
            async move { api.create(&PostParams::default(), &pod).await }
        });
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        let deletes = todo
            .delete
            .iter()
            .map(|n| (n, DeleteParams::default()))
            .chain(todo.orphaned.iter().map(|n| (n, now.clone())))
            .map(|(name, dp)| {
                let api = api.clone();
                async move { (name, api.delete(name, &dp).await) }
            });
        let (created, deleted) = futures::join!(
            futures::future::join_all(creates),
            futures::future::join_all(deletes)
        );
        let mut errors = Vec::new();
        for r in created {
            match r {
                Ok(p) => self.recorder.event(
                    ds,
                    NORMAL,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    self.expectations.creation_observed(key);
                    self.recorder.event(
                        ds,
                        WARNING,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                    errors.push(e.to_string());
                }
            }
        }
        for (name, r) in deleted {
            match r {
                Ok(_) => self.recorder.event(
                    ds,
                    NORMAL,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.expectations.deletion_observed(key)
                }
                Err(e) => {
                    self.expectations.deletion_observed(key);
                    self.recorder.event(
                        ds,
                        WARNING,
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    );
                    errors.push(e.to_string());
                }
            }
        }
        match errors.first() {
            None => Ok(()),
            Some(first) => Err(DaemonSetError::Pods {
                count: errors.len(),
                first: first.clone(),
            }),
        }
    }

    /// Upstream `constructHistory`: the current template's revision, made
    /// (or renumbered to be the newest) as needed; returns its hash.
    async fn construct_history(
        &self,
        ds: &DaemonSet,
        revs: &[Arc<ControllerRevision>],
    ) -> Result<String, DaemonSetError> {
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let data = history::template_patch(&template);
        let refs: Vec<&ControllerRevision> = revs.iter().map(|r| &**r).collect();
        let next = history::next_revision(&refs);
        let ns = ds.namespace().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let current = refs
            .iter()
            .filter(|r| history::data_matches(r, &data))
            .max_by_key(|r| r.revision);
        if let Some(cur) = current {
            if cur.revision < next - 1 {
                api.patch(
                    &cur.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"revision": next})),
                )
                .await?;
            }
            let hash = cur
                .labels()
                .get(REVISION_HASH_LABEL)
                .cloned()
                .unwrap_or_else(|| {
                    cur.name_any()
                        .rsplit('-')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                });
            return Ok(hash);
        }
        let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = history::template_hash(&template, collisions);
        let mut rev = history::new_revision(
            ds,
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            data.clone(),
            next,
        );
        rev.metadata.name = Some(format!("{}-{hash}", ds.name_any()));
        rev.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(REVISION_HASH_LABEL.into(), hash.clone());
        match history::create(&self.client, ds, &rev, &data, collisions).await? {
            history::Created::Ok => Ok(hash),
            history::Created::Collision => Err(DaemonSetError::Collision(rev.name_any())),
        }
    }

    /// Upstream `cleanupHistory`: deletes the oldest revisions beyond
    /// `revisionHistoryLimit` that neither the current template nor any pod
    /// uses. Failures are only logged: the next sync tries again.
    async fn cleanup_history(
        &self,
        ds: &DaemonSet,
        revs: &[Arc<ControllerRevision>],
        pods: &[Arc<Pod>],
        hash: &str,
    ) {
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let in_use: BTreeSet<&str> = pods
            .iter()
            .filter_map(|p| p.labels().get(REVISION_HASH_LABEL).map(String::as_str))
            .chain([hash])
            .collect();
        let live = |r: &ControllerRevision| {
            r.labels()
                .get(REVISION_HASH_LABEL)
                .is_some_and(|h| in_use.contains(h.as_str()))
        };
        let ns = ds.namespace().unwrap_or_default();
        history::prune(&self.client, &ns, revs, &live, limit).await;
    }

    /// Writes the status when it changed; returns whether some ready pods
    /// are not yet available (minReadySeconds), to look again.
    async fn update_status(
        &self,
        ds: &DaemonSet,
        mut status: DaemonSetStatus,
    ) -> Result<bool, DaemonSetError> {
        let old = ds.status.clone().unwrap_or_default();
        status.observed_generation = ds.metadata.generation;
        status.collision_count = old.collision_count;
        status.conditions = old.conditions.clone();
        let pending_available = status.number_ready != status.number_available.unwrap_or(0);
        if status == old {
            return Ok(pending_available);
        }
        let api: Api<DaemonSet> =
            Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
        // A merge patch with explicit nulls, so that counts dropping to an
        // omitted zero are cleared.
        let body = json!({"status": {
            "currentNumberScheduled": status.current_number_scheduled,
            "numberMisscheduled": status.number_misscheduled,
            "desiredNumberScheduled": status.desired_number_scheduled,
            "numberReady": status.number_ready,
            "observedGeneration": status.observed_generation,
            "updatedNumberScheduled": status.updated_number_scheduled,
            "numberAvailable": status.number_available,
            "numberUnavailable": status.number_unavailable,
        }});
        match api
            .patch_status(&ds.name_any(), &PatchParams::default(), &Patch::Merge(body))
            .await
        {
            Ok(_) => Ok(pending_available),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
