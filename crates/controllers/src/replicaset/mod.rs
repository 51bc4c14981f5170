//! The ReplicaSet controller (upstream `pkg/controller/replicaset`, name
//! `replicaset`): keeps `spec.replicas` active pods matching each
//! ReplicaSet's selector.
//!
//! A sync of one ReplicaSet:
//! 1. claims the namespace's active pods ([`logic::claim`]): matching
//!    orphans are adopted (a merge patch adding our controller reference,
//!    conditional on the pod's resourceVersion, after re-reading the
//!    ReplicaSet to be sure it is not being deleted), controlled pods that
//!    no longer match are released (the reference removed the same way);
//! 2. when its expectations are met, creates missing pods from the template
//!    in slow-start batches 1, 2, 4, ... stopping at the first error
//!    ([`logic::slow_start_batch`]), or deletes surplus pods in upstream's
//!    order ([`logic::pods_to_delete`]), at most [`logic::BURST_REPLICAS`]
//!    per sync. Expectations are recorded first so a stale cache never
//!    creates or deletes twice; deletions are tracked by pod key, so a pod
//!    seen first terminating and then gone counts once;
//! 3. writes the status (replicas, fullyLabeledReplicas, readyReplicas,
//!    availableReplicas, observedGeneration, the ReplicaFailure condition)
//!    and looks again when a ready pod will have waited out
//!    `minReadySeconds`.
//!
//! Events as upstream's pod control: `SuccessfulCreate` "Created pod: X",
//! `SuccessfulDelete` "Deleted pod: X", `FailedCreate` "Error creating:
//! ...", `FailedDelete` "Error deleting: ...".

pub mod logic;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{self, Recorder};
use crate::expectations::Expectations;
use crate::informers::Change;
use crate::manager::{run_workers, Context, Running};
use crate::util::{
    controller_of, key_of, pod_is_active, pod_is_ready, selector_matches, split_key,
};
use crate::workqueue::WorkQueue;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("claiming pods: {0}")]
    Claim(String),
    #[error("{0}")]
    Manage(String),
}

/// The message of an API error as upstream prints it (`err.Error()`).
pub(crate) fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Replaces an object's owner references with `refs` by a merge patch
/// conditional on the resourceVersion last seen (adoption and release).
pub(crate) async fn patch_owner_refs<K>(
    api: &Api<K>,
    obj: &K,
    refs: Vec<OwnerReference>,
) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = json!({
        "metadata": {
            "resourceVersion": obj.meta().resource_version,
            "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { json!(refs) },
        }
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await
}

/// Carries out a [`logic::Claim`] for `owner` (upstream's
/// ControllerRefManager): adopts the orphans, only while a fresh read shows
/// the owner's same incarnation not being deleted (RecheckDeletionTimestamp),
/// and releases the objects that stopped matching. Adopted objects are
/// appended to `owned`; the messages of failed patches are returned (objects
/// gone meanwhile are not failures).
pub(crate) async fn apply_claim<O, K>(
    client: &Client,
    owner: &O,
    claim: &logic::Claim<'_, K>,
    owned: &mut Vec<K>,
) -> Result<Vec<String>, kube::Error>
where
    O: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut errors = Vec::new();
    if claim.adopt.is_empty() && claim.release.is_empty() {
        return Ok(errors);
    }
    let ns = owner.namespace().unwrap_or_default();
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    if !claim.adopt.is_empty() {
        let fresh = Api::<O>::namespaced(client.clone(), &ns)
            .get_opt(&owner.name_any())
            .await?;
        let can_adopt = fresh.is_some_and(|f| {
            f.meta().uid.as_deref() == Some(uid.as_str()) && !crate::util::is_deleting(&f)
        });
        if can_adopt {
            for obj in &claim.adopt {
                let mut refs = obj.meta().owner_references.clone().unwrap_or_default();
                refs.push(crate::util::controller_ref_to(owner));
                match patch_owner_refs(&api, *obj, refs).await {
                    Ok(o) => owned.push(o),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => errors.push(api_message(&e)),
                }
            }
        }
    }
    for obj in &claim.release {
        let refs: Vec<_> = obj
            .meta()
            .owner_references
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.uid != uid)
            .collect();
        match patch_owner_refs(&api, *obj, refs).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => errors.push(api_message(&e)),
        }
    }
    Ok(errors)
}

struct Controller {
    client: Client,
    sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    /// Pods we asked to delete and have not seen go, by ReplicaSet key.
    deleting: Mutex<HashMap<String, HashSet<String>>>,
    recorder: Recorder,
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> Running {
    let rs_inf = ctx.informers.get::<ReplicaSet>();
    let pod_inf = ctx.informers.get::<Pod>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        sets: rs_inf.store(),
        pods: pod_inf.store(),
        queue: ctx.queue("replicaset"),
        expectations: Expectations::default(),
        deleting: Mutex::new(HashMap::new()),
        recorder: ctx.recorder("replicaset-controller"),
    });
    {
        let c = c.clone();
        rs_inf.on_change(move |ch: &Change<ReplicaSet>| {
            let key = key_of(ch.object().as_ref());
            if let Change::Deleted(_) = ch {
                c.expectations.forget(&key);
                c.lock_deleting().remove(&key);
            }
            c.queue.add(key);
        });
    }
    {
        let c = c.clone();
        pod_inf.on_change(move |ch: &Change<Pod>| c.on_pod(ch));
    }
    let workers = ctx.config.workers;
    Box::pin(async move {
        let queue = c.queue.clone();
        run_workers(queue, workers, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
        Ok(())
    })
}

impl Controller {
    fn lock_deleting(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.deleting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ReplicaSet a pod's controller reference names, if it exists.
    fn owner_of(&self, pod: &Pod) -> Option<Arc<ReplicaSet>> {
        let r = controller_of(pod)?;
        if r.kind != "ReplicaSet" {
            return None;
        }
        let ns = pod.namespace().unwrap_or_default();
        let rs = self.sets.get(&ObjectRef::new(&r.name).within(&ns))?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(rs)
    }

    /// Queues every ReplicaSet of the pod's namespace whose selector
    /// matches it (for orphans).
    fn queue_matching(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        for rs in self.sets.state() {
            if rs.namespace().unwrap_or_default() == ns
                && selector_matches(rs.spec.as_ref().map(|s| &s.selector), pod.labels())
            {
                self.queue.add(key_of(rs.as_ref()));
            }
        }
    }

    fn observe_deletion(&self, rs_key: &str, pod: &Pod) {
        let pod_key = key_of(pod);
        let removed = self
            .lock_deleting()
            .get_mut(rs_key)
            .is_some_and(|s| s.remove(&pod_key));
        if removed {
            self.expectations.deletion_observed(rs_key);
        }
    }

    fn pod_gone(&self, pod: &Pod) {
        if let Some(rs) = self.owner_of(pod) {
            let key = key_of(rs.as_ref());
            self.observe_deletion(&key, pod);
            self.queue.add(key);
        }
    }

    fn on_pod(&self, ch: &Change<Pod>) {
        match ch {
            Change::Deleted(pod) => self.pod_gone(pod),
            Change::Applied { old: None, new } => {
                if crate::util::is_deleting(new.as_ref()) {
                    self.pod_gone(new);
                    return;
                }
                if controller_of(new.as_ref()).is_some() {
                    if let Some(rs) = self.owner_of(new) {
                        let key = key_of(rs.as_ref());
                        self.expectations.creation_observed(&key);
                        self.queue.add(key);
                    }
                    return;
                }
                self.queue_matching(new);
            }
            Change::Applied {
                old: Some(old),
                new,
            } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let labels_changed = old.labels() != new.labels();
                if crate::util::is_deleting(new.as_ref()) {
                    self.pod_gone(new);
                    if labels_changed {
                        self.pod_gone(old);
                    }
                    return;
                }
                let old_ref = controller_of(old.as_ref());
                let new_ref = controller_of(new.as_ref());
                let ref_changed = old_ref.map(|r| &r.uid) != new_ref.map(|r| &r.uid);
                if ref_changed {
                    if let Some(rs) = self.owner_of(old) {
                        self.queue.add(key_of(rs.as_ref()));
                    }
                }
                if new_ref.is_some() {
                    if let Some(rs) = self.owner_of(new) {
                        let key = key_of(rs.as_ref());
                        let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
                        if let Some(m) = min_ready.filter(|m| *m > 0) {
                            if !pod_is_ready(old) && pod_is_ready(new) {
                                self.queue
                                    .add_after(key.clone(), Duration::from_secs(m as u64 + 1));
                            }
                        }
                        self.queue.add(key);
                    }
                    return;
                }
                if labels_changed || ref_changed {
                    self.queue_matching(new);
                }
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, ReplicaSetError> {
        let _ = self.sets.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let (ns, name) = split_key(key);
        let Some(rs) = self.sets.get(&ObjectRef::new(name).within(ns)) else {
            self.expectations.forget(key);
            self.lock_deleting().remove(key);
            return Ok(None);
        };
        let needs_sync = self.expectations.satisfied(key);
        let all_pods = self.pods.state();
        let active: Vec<&Pod> = all_pods
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| p.namespace().as_deref() == Some(ns) && pod_is_active(p))
            .collect();
        let claim = logic::claim(
            rs.as_ref(),
            rs.spec.as_ref().map(|s| &s.selector),
            active.iter().copied(),
        );
        let mut owned: Vec<Pod> = claim.owned.iter().map(|p| (*p).clone()).collect();
        self.adopt_and_release(&rs, &claim, &mut owned).await?;

        let owned_refs: Vec<&Pod> = owned.iter().collect();
        let manage_error = if needs_sync && !crate::util::is_deleting(rs.as_ref()) {
            self.manage_replicas(key, &rs, &owned_refs, &active)
                .await
                .err()
        } else {
            None
        };
        let now = Timestamp::now();
        let mut status = logic::compute_status(&rs, &owned_refs, manage_error.as_deref(), now);
        status.observed_generation = rs.metadata.generation;
        if rs.status.as_ref() != Some(&status) {
            let mut value = serde_json::to_value(&status).unwrap_or_default();
            if let Some(o) = value.as_object_mut() {
                o.entry("conditions").or_insert(serde_json::Value::Null);
            }
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
            match api
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": value })),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(msg) = manage_error {
            return Err(ReplicaSetError::Manage(msg));
        }
        let min_ready = rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        Ok(logic::next_availability(&owned_refs, min_ready, now)
            .map(|s| Duration::from_secs(s as u64)))
    }

    /// Adopts matching orphans and releases controlled pods that no
    /// longer match; adopted pods join `owned`.
    async fn adopt_and_release(
        &self,
        rs: &ReplicaSet,
        claim: &logic::Claim<'_, Pod>,
        owned: &mut Vec<Pod>,
    ) -> Result<(), ReplicaSetError> {
        let errors = apply_claim(&self.client, rs, claim, owned).await?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ReplicaSetError::Claim(errors.join("; ")))
        }
    }

    /// Creates or deletes pods toward `spec.replicas`; the error message
    /// of the first failure.
    async fn manage_replicas(
        &self,
        key: &str,
        rs: &ReplicaSet,
        owned: &[&Pod],
        active: &[&Pod],
    ) -> Result<(), String> {
        let want = rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as usize;
        let ns = rs.namespace().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if owned.len() < want {
            let n = (want - owned.len()).min(logic::BURST_REPLICAS);
            self.expectations.expect(key, n, 0);
            let template = logic::pod_from_template(rs);
            let (ok, err) = logic::slow_start_batch(n, logic::SLOW_START_INITIAL_BATCH, || {
                let pods = pods.clone();
                let template = template.clone();
                async move {
                    match pods.create(&PostParams::default(), &template).await {
                        Ok(p) => {
                            self.recorder.event(
                                rs,
                                events::NORMAL,
                                "SuccessfulCreate",
                                format!("Created pod: {}", p.name_any()),
                            );
                            Ok(())
                        }
                        Err(e) => {
                            let msg = api_message(&e);
                            self.recorder.event(
                                rs,
                                events::WARNING,
                                "FailedCreate",
                                format!("Error creating: {msg}"),
                            );
                            Err(msg)
                        }
                    }
                }
            })
            .await;
            for _ in ok..n {
                self.expectations.creation_observed(key);
            }
            return err.map_or(Ok(()), Err);
        }
        if owned.len() > want {
            let n = (owned.len() - want).min(logic::BURST_REPLICAS);
            let related = self.related_pods(rs, active);
            let victims = logic::pods_to_delete(owned, &related, n);
            {
                let mut d = self.lock_deleting();
                let set = d.entry(key.to_string()).or_default();
                set.clear();
                set.extend(victims.iter().map(|p| key_of(*p)));
            }
            self.expectations.expect(key, 0, victims.len());
            let results = futures::future::join_all(victims.iter().map(|p| {
                let pods = pods.clone();
                async move {
                    (
                        p,
                        pods.delete(&p.name_any(), &DeleteParams::default()).await,
                    )
                }
            }))
            .await;
            let mut first = None;
            for (p, r) in results {
                match r {
                    Ok(_) => self.recorder.event(
                        rs,
                        events::NORMAL,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    ),
                    Err(e) => {
                        self.observe_deletion(key, p);
                        if !is_not_found(&e) {
                            let msg = api_message(&e);
                            self.recorder.event(
                                rs,
                                events::WARNING,
                                "FailedDelete",
                                format!("Error deleting: {msg}"),
                            );
                            first.get_or_insert(msg);
                        }
                    }
                }
            }
            return first.map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// The active pods of this ReplicaSet and of the ReplicaSets sharing
    /// its controller (upstream's `getIndirectlyRelatedPods`).
    fn related_pods<'a>(&self, rs: &ReplicaSet, active: &[&'a Pod]) -> Vec<&'a Pod> {
        let mut uids: HashSet<String> = rs.metadata.uid.iter().cloned().collect();
        if let Some(owner) = controller_of(rs) {
            for other in self.sets.state() {
                if other.namespace() == rs.namespace()
                    && controller_of(other.as_ref()).is_some_and(|r| r.uid == owner.uid)
                {
                    uids.extend(other.metadata.uid.iter().cloned());
                }
            }
        }
        active
            .iter()
            .copied()
            .filter(|p| controller_of(*p).is_some_and(|r| uids.contains(&r.uid)))
            .collect()
    }
}
