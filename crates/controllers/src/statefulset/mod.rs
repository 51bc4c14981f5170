//! The StatefulSet controller (upstream `pkg/controller/statefulset`,
//! enabled as `statefulset`): pods with stable identities `<set>-<ordinal>`
//! (from `spec.ordinals.start`), each with labels
//! `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
//! `controller-revision-hash` (the name of its ControllerRevision), hostname
//! = pod name and subdomain = `serviceName`, and one PersistentVolumeClaim
//! per `volumeClaimTemplates` entry named `<template>-<set>-<ordinal>`,
//! created before the pod and mounted by it.
//!
//! Each sync ([`Controller::sync`]):
//! 1. finds or makes the update revision (the ControllerRevision whose data
//!    is the current template patch: `<set>-<hash>`, label
//!    `controller.kubernetes.io/hash`; an older equal revision, e.g. after
//!    `kubectl rollout undo`, is renumbered to be the newest) and the
//!    current revision (`status.currentRevision`, else the update one);
//! 2. plans the actions ([`plan::plan`]): OrderedReady creates pods in
//!    ordinal order, each after its predecessors are Running and Ready, and
//!    scales down from the highest ordinal, one at a time; Parallel does
//!    all at once; RollingUpdate deletes the highest-ordinal pod at or above
//!    the partition that is not at the update revision once the pods above
//!    are healthy (recreated at the update revision by the next sync);
//!    OnDelete leaves that to the user; failed pods are recreated;
//! 3. carries them out, with upstream's events (SuccessfulCreate
//!    `create Pod web-0 in StatefulSet web successful`, SuccessfulDelete,
//!    FailedCreate, claims' `create Claim ... success`,
//!    RecreatingFailedPod);
//! 4. prunes revisions beyond `revisionHistoryLimit` that no pod uses;
//! 5. writes the status (replicas, ready/current/updated/available
//!    replicas, revisions, observedGeneration, collisionCount); once every
//!    pod is updated and ready the update revision becomes current.
//!
//! Not done: `persistentVolumeClaimRetentionPolicy` is ignored (claims are
//! always retained, upstream's default `Retain`/`Retain`), the alpha
//! `maxUnavailable` of rolling updates (upstream's feature gate
//! `MaxUnavailableStatefulSet` is off by default) is ignored, and pods are
//! neither adopted nor released (only pods the set controls count).
//! Claims stay Pending until storage exists; the simulated node runs pods
//! regardless of their volumes.

pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{Recorder, NORMAL, WARNING};
use crate::history;
use crate::informers::Change;
use crate::manager::{run_workers, Context, Running};
use crate::util::{controller_of, is_controlled_by, is_deleting, key_of, split_key};

use plan::{Action, Recreate, Revisions, REVISION_HASH_LABEL, REVISION_LABEL};

/// The name `--controllers` knows this controller by.
pub const NAME: &str = "statefulset";

#[derive(Debug, thiserror::Error)]
pub enum StatefulSetError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("hash collision on ControllerRevision {0}; collisionCount raised")]
    Collision(String),
    #[error("create Pod {pod} in StatefulSet {set} failed error: {error}")]
    CreatePod {
        pod: String,
        set: String,
        error: kube::Error,
    },
    #[error("PersistentVolumeClaim {0} is being deleted")]
    ClaimDeleting(String),
}

struct Controller {
    client: Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    recorder: Recorder,
}

/// The key of the StatefulSet controlling `obj`, if one does.
fn owner_key<K: kube::Resource>(obj: &K) -> Option<String> {
    let r = controller_of(obj)?;
    if r.kind != "StatefulSet" || !r.api_version.starts_with("apps/") {
        return None;
    }
    let ns = obj.meta().namespace.as_deref().unwrap_or_default();
    Some(format!("{ns}/{}", r.name))
}

/// Sets up the informers, handlers and queue; returns the workers.
pub fn start(ctx: &Context) -> Running {
    let queue = ctx.queue(NAME);
    let set_inf = ctx.informers.get::<StatefulSet>();
    let pod_inf = ctx.informers.get::<Pod>();
    let rev_inf = ctx.informers.get::<ControllerRevision>();
    let pvc_inf = ctx.informers.get::<PersistentVolumeClaim>();
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        sets: set_inf.store(),
        pods: pod_inf.store(),
        revisions: rev_inf.store(),
        claims: pvc_inf.store(),
        recorder: ctx.recorder("statefulset-controller"),
    });
    let q = queue.clone();
    set_inf.on_change(move |ch: &Change<StatefulSet>| q.add(key_of(&**ch.object())));
    let q = queue.clone();
    pod_inf.on_change(move |ch: &Change<Pod>| {
        if let Some(k) = owner_key(&**ch.object()) {
            q.add(k);
        }
        if let Change::Applied { old: Some(old), .. } = ch {
            if let Some(k) = owner_key(&**old) {
                q.add(k);
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

/// The revisions a sync works with, resolved against the API.
struct Resolved {
    current: String,
    current_template: PodTemplateSpec,
    update: String,
    update_template: PodTemplateSpec,
}

impl Controller {
    async fn wait_synced(&self) {
        let _ = self.sets.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let _ = self.revisions.wait_until_ready().await;
        let _ = self.claims.wait_until_ready().await;
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, StatefulSetError> {
        self.wait_synced().await;
        let (ns, name) = split_key(key);
        let Some(set) = self.sets.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let mut pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && is_controlled_by(&**p, &uid)
                    && plan::is_member(&set, p)
            })
            .collect();
        pods.sort_by_key(|p| plan::parent_and_ordinal(&p.name_any()).map(|(_, o)| o));
        let revs: Vec<Arc<ControllerRevision>> = self
            .revisions
            .state()
            .into_iter()
            .filter(|r| r.metadata.namespace.as_deref() == Some(ns) && is_controlled_by(&**r, &uid))
            .collect();
        let r = self.revisions_of(&set, &revs).await?;
        let revisions = Revisions {
            current: &r.current,
            current_template: &r.current_template,
            update: &r.update,
            update_template: &r.update_template,
        };
        let plan = plan::plan(&set, &revisions, &pods, Timestamp::now());
        let result = self.run(&set, &plan.actions).await;
        if !is_deleting(&*set) {
            self.truncate_history(&set, &revs, &pods, &r).await;
        }
        self.update_status(&set, &plan.status).await?;
        result?;
        let min_ready = set
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let waiting = plan.status.ready_replicas != plan.status.available_replicas;
        Ok(
            (min_ready > 0 && waiting)
                .then(|| Duration::from_secs(min_ready.unsigned_abs().into())),
        )
    }

    /// Carries out the actions in order, stopping at the first failure.
    async fn run(&self, set: &StatefulSet, actions: &[Action]) -> Result<(), StatefulSetError> {
        let ns = set.namespace().unwrap_or_default();
        let sname = set.name_any();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        for a in actions {
            match a {
                Action::Create(pod) => {
                    let ordinal = plan::parent_and_ordinal(&pod.name_any()).map_or(0, |(_, o)| o);
                    self.create_claims(set, pod, ordinal).await?;
                    match pods.create(&PostParams::default(), pod).await {
                        Ok(_) => self.recorder.event(
                            set,
                            NORMAL,
                            "SuccessfulCreate",
                            format!(
                                "create Pod {} in StatefulSet {sname} successful",
                                pod.name_any()
                            ),
                        ),
                        // The cache is behind: it exists already.
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => {
                            self.recorder.event(
                                set,
                                WARNING,
                                "FailedCreate",
                                format!(
                                    "create Pod {} in StatefulSet {sname} failed error: {e}",
                                    pod.name_any()
                                ),
                            );
                            return Err(StatefulSetError::CreatePod {
                                pod: pod.name_any(),
                                set: sname,
                                error: e,
                            });
                        }
                    }
                }
                Action::Delete { pod, recreate } => {
                    match recreate {
                        Some(Recreate::Failed) => self.recorder.event(
                            set,
                            WARNING,
                            "RecreatingFailedPod",
                            format!("StatefulSet {ns}/{sname} is recreating failed Pod {pod}"),
                        ),
                        Some(Recreate::Succeeded) => self.recorder.event(
                            set,
                            NORMAL,
                            "RecreatingTerminatedPod",
                            format!("StatefulSet {ns}/{sname} is recreating terminated Pod {pod}"),
                        ),
                        None => {}
                    }
                    match pods.delete(pod, &DeleteParams::default()).await {
                        Ok(_) => self.recorder.event(
                            set,
                            NORMAL,
                            "SuccessfulDelete",
                            format!("delete Pod {pod} in StatefulSet {sname} successful"),
                        ),
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => {
                            self.recorder.event(
                                set,
                                WARNING,
                                "FailedDelete",
                                format!(
                                    "delete Pod {pod} in StatefulSet {sname} failed error: {e}"
                                ),
                            );
                            return Err(e.into());
                        }
                    }
                }
                Action::Relabel { pod, ordinal } => {
                    let body =
                        json!({"metadata": {"labels": plan::identity_labels(pod, *ordinal)}});
                    match pods
                        .patch(pod, &PatchParams::default(), &Patch::Merge(body))
                        .await
                    {
                        Ok(_) => self.recorder.event(
                            set,
                            NORMAL,
                            "SuccessfulUpdate",
                            format!("update Pod {pod} in StatefulSet {sname} successful"),
                        ),
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates the pod's missing claims (upstream
    /// `createPersistentVolumeClaims`).
    async fn create_claims(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        ordinal: i32,
    ) -> Result<(), StatefulSetError> {
        let ns = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        for (_, claim) in plan::claims_for(set, ordinal) {
            let cname = claim.name_any();
            if let Some(existing) = self.claims.get(&ObjectRef::new(&cname).within(&ns)) {
                if is_deleting(&*existing) {
                    return Err(StatefulSetError::ClaimDeleting(cname));
                }
                continue;
            }
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => self.recorder.event(
                    set,
                    NORMAL,
                    "SuccessfulCreate",
                    format!(
                        "create Claim {cname} Pod {} in StatefulSet {} success",
                        pod.name_any(),
                        set.name_any()
                    ),
                ),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    self.recorder.event(
                        set,
                        WARNING,
                        "FailedCreate",
                        format!(
                            "create Claim {cname} for Pod {} in StatefulSet {} failed error: {e}",
                            pod.name_any(),
                            set.name_any()
                        ),
                    );
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Upstream `getStatefulSetRevisions`: the update revision (made, or an
    /// equal older one renumbered to be the newest) and the current one.
    async fn revisions_of(
        &self,
        set: &StatefulSet,
        revs: &[Arc<ControllerRevision>],
    ) -> Result<Resolved, StatefulSetError> {
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let data = history::template_patch(&template);
        let refs: Vec<&ControllerRevision> = revs.iter().map(|r| &**r).collect();
        let next = history::next_revision(&refs);
        let ns = set.namespace().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let equal = refs
            .iter()
            .filter(|r| history::data_matches(r, &data))
            .max_by_key(|r| r.revision);
        let update = match equal {
            Some(r) => {
                if r.revision < next - 1 {
                    api.patch(
                        &r.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"revision": next})),
                    )
                    .await?;
                }
                r.name_any()
            }
            None => self.create_revision(set, &template, data, next).await?,
        };
        let status_current = set.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = status_current
            .and_then(|name| refs.iter().find(|r| r.name_any() == name).copied())
            .filter(|r| r.name_any() != update);
        Ok(match current {
            Some(cur) => Resolved {
                current: cur.name_any(),
                current_template: history::template_of(cur).unwrap_or_else(|| template.clone()),
                update,
                update_template: template,
            },
            None => Resolved {
                current: update.clone(),
                current_template: template.clone(),
                update,
                update_template: template,
            },
        })
    }

    async fn create_revision(
        &self,
        set: &StatefulSet,
        template: &PodTemplateSpec,
        data: serde_json::Value,
        revision: i64,
    ) -> Result<String, StatefulSetError> {
        let collisions = set.status.as_ref().and_then(|s| s.collision_count);
        let hash = history::data_hash(&data, collisions);
        let mut rev = history::new_revision(
            set,
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            data.clone(),
            revision,
        );
        let name = history::revision_name(&set.name_any(), &hash);
        rev.metadata.name = Some(name.clone());
        rev.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(REVISION_HASH_LABEL.into(), hash);
        match history::create(&self.client, set, &rev, &data, collisions).await? {
            history::Created::Ok => Ok(name),
            history::Created::Collision => Err(StatefulSetError::Collision(name)),
        }
    }

    /// Upstream `truncateHistory`: keeps `revisionHistoryLimit` revisions
    /// besides the current, the update and those pods are at.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        revs: &[Arc<ControllerRevision>],
        pods: &[Arc<Pod>],
        r: &Resolved,
    ) {
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let live: BTreeSet<&str> = pods
            .iter()
            .filter_map(|p| p.labels().get(REVISION_LABEL).map(String::as_str))
            .chain([r.current.as_str(), r.update.as_str()])
            .collect();
        let is_live = |rev: &ControllerRevision| live.contains(rev.name_any().as_str());
        let ns = set.namespace().unwrap_or_default();
        history::prune(&self.client, &ns, revs, &is_live, limit).await;
    }

    /// Writes the status when it changed (upstream
    /// `updateStatefulSetStatus`), keeping the conditions.
    async fn update_status(
        &self,
        set: &StatefulSet,
        status: &k8s_openapi::api::apps::v1::StatefulSetStatus,
    ) -> Result<(), StatefulSetError> {
        let mut want = status.clone();
        let old = set.status.clone().unwrap_or_default();
        want.conditions = old.conditions.clone();
        // `omitempty` counts are absent when zero, as upstream writes them.
        let nonzero = |n: Option<i32>| n.filter(|n| *n != 0);
        want.ready_replicas = nonzero(want.ready_replicas);
        want.current_replicas = nonzero(want.current_replicas);
        want.updated_replicas = nonzero(want.updated_replicas);
        let mut old_norm = old.clone();
        old_norm.available_replicas = Some(old.available_replicas.unwrap_or(0));
        if want == old_norm {
            return Ok(());
        }
        let api: Api<StatefulSet> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        let body = json!({"status": {
            "observedGeneration": want.observed_generation,
            "replicas": want.replicas,
            "readyReplicas": want.ready_replicas,
            "currentReplicas": want.current_replicas,
            "updatedReplicas": want.updated_replicas,
            "availableReplicas": want.available_replicas.unwrap_or(0),
            "currentRevision": want.current_revision,
            "updateRevision": want.update_revision,
            "collisionCount": want.collision_count,
        }});
        match api
            .patch_status(
                &set.name_any(),
                &PatchParams::default(),
                &Patch::Merge(body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
