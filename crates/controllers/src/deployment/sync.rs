//! One Deployment sync's API calls (upstream's `sync.go`, `rolling.go`,
//! `recreate.go` and `progress.go` glue): finding or creating the new
//! ReplicaSet, resizing ReplicaSets with their annotations and events,
//! pruning history, and writing status. The decisions come from
//! [`super::rolling`] and [`super::status`].

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

use super::rolling::{self, Scale};
use super::status;
use super::util::*;
use super::{now, Controller, DeploymentError};
use crate::events;
use crate::replicaset::{api_message, is_not_found};
use crate::util::{controller_of, controller_ref_to};

/// One sync's API calls.
pub(super) struct Rollout<'a> {
    pub(super) c: &'a Controller,
    pub(super) api: Api<Deployment>,
    pub(super) rs_api: Api<ReplicaSet>,
    pub(super) requeue: Option<Duration>,
}

/// The new ReplicaSet (if any) and the old ones.
struct Split {
    new: Option<ReplicaSet>,
    old: Vec<ReplicaSet>,
}

impl Split {
    fn all(&self) -> Vec<&ReplicaSet> {
        self.old.iter().chain(self.new.as_ref()).collect()
    }

    fn old_refs(&self) -> Vec<&ReplicaSet> {
        self.old.iter().collect()
    }

    /// Applies a resize made through the API to the local copies.
    fn replace(&mut self, rs: ReplicaSet) {
        let name = rs.name_any();
        if self.new.as_ref().is_some_and(|n| n.name_any() == name) {
            self.new = Some(rs);
        } else if let Some(o) = self.old.iter_mut().find(|o| o.name_any() == name) {
            *o = rs;
        }
    }

    fn get(&self, name: &str) -> Option<&ReplicaSet> {
        self.all().into_iter().find(|r| r.name_any() == name)
    }
}

fn template_of(d: &Deployment) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

impl Rollout<'_> {
    pub(super) async fn update_status(
        &mut self,
        d: &mut Deployment,
        mut st: DeploymentStatus,
    ) -> Result<(), DeploymentError> {
        status::normalize(&mut st);
        let mut body = d.clone();
        body.status = Some(st);
        *d = self
            .api
            .replace_status(&d.name_any(), &PostParams::default(), &body)
            .await?;
        Ok(())
    }

    /// Splits `rs_list` into new and old, bringing the new one's
    /// annotations up to date and, when `create`, creating it (upstream's
    /// `getAllReplicaSetsAndSyncRevision`).
    async fn split(
        &mut self,
        d: &mut Deployment,
        mut rs_list: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<Split, DeploymentError> {
        rs_list.sort_by(by_creation);
        let template = template_of(d);
        let pos = rs_list.iter().position(|r| {
            r.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &template))
        });
        let existing = pos.map(|i| rs_list.remove(i));
        let old = rs_list;
        let new_revision = max_revision(old.iter()) + 1;
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(mut rs) = existing {
            let changed = set_new_rs_annotations(d, &mut rs, new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            if changed || spec.min_ready_seconds != min_ready {
                spec.min_ready_seconds = min_ready;
                rs = self
                    .rs_api
                    .replace(&rs.name_any(), &PostParams::default(), &rs)
                    .await?;
                return Ok(Split { new: Some(rs), old });
            }
            let rev = rs.annotations().get(REVISION).cloned().unwrap_or_default();
            self.set_revision(d, &rev).await?;
            let mut st = d.status.clone().unwrap_or_default();
            if progress_deadline(d).is_some() && get_condition(&st, PROGRESSING).is_none() {
                set_condition(
                    &mut st,
                    new_condition(
                        PROGRESSING,
                        "True",
                        REASON_FOUND_NEW_RS,
                        format!("Found new replica set \"{}\"", rs.name_any()),
                        now(),
                    ),
                );
                self.update_status(d, st).await?;
            }
            return Ok(Split { new: Some(rs), old });
        }
        if !create {
            return Ok(Split { new: None, old });
        }
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision);
        let mut tmpl = template.clone();
        tmpl.metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let rs_name = format!("{}-{hash}", d.name_any());
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: d.namespace(),
                owner_references: Some(vec![controller_ref_to(d)]),
                labels: tmpl.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(tmpl),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&new_rs)).collect();
        let replicas = rolling::new_rs_new_replicas(d, &all, &new_rs);
        if let Some(s) = new_rs.spec.as_mut() {
            s.replicas = Some(replicas);
        }
        set_new_rs_annotations(d, &mut new_rs, new_revision, false);
        let (created, already) = match self.rs_api.create(&PostParams::default(), &new_rs).await {
            Ok(rs) => (rs, false),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let rs = self.rs_api.get(&rs_name).await?;
                let ours = controller_of(&rs)
                    .is_some_and(|r| Some(r.uid.as_str()) == d.metadata.uid.as_deref());
                let same = rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template));
                if ours && same {
                    (rs, true)
                } else {
                    let mut st = d.status.clone().unwrap_or_default();
                    let n = st.collision_count.unwrap_or(0) + 1;
                    st.collision_count = Some(n);
                    self.update_status(d, st).await?;
                    return Err(DeploymentError::Collision(rs_name, n));
                }
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set \"{rs_name}\": {}",
                    api_message(&e)
                );
                if progress_deadline(d).is_some() {
                    let mut st = d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut st,
                        new_condition(
                            PROGRESSING,
                            "False",
                            REASON_RS_CREATE_ERROR,
                            msg.clone(),
                            now(),
                        ),
                    );
                    let _ = self.update_status(d, st).await;
                }
                self.c
                    .recorder
                    .event(d, events::WARNING, REASON_RS_CREATE_ERROR, msg);
                return Err(e.into());
            }
        };
        if !already && replicas > 0 {
            self.c.recorder.event(
                d,
                events::NORMAL,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} from 0 to {replicas}",
                    created.name_any()
                ),
            );
        }
        self.set_revision(d, &new_revision.to_string()).await?;
        if !already && progress_deadline(d).is_some() {
            let mut st = d.status.clone().unwrap_or_default();
            set_condition(
                &mut st,
                new_condition(
                    PROGRESSING,
                    "True",
                    REASON_NEW_RS,
                    format!("Created new replica set \"{}\"", created.name_any()),
                    now(),
                ),
            );
            self.update_status(d, st).await?;
        }
        Ok(Split {
            new: Some(created),
            old,
        })
    }

    /// Sets the Deployment's revision annotation (a metadata patch; the
    /// status subresource cannot carry it).
    async fn set_revision(&mut self, d: &mut Deployment, rev: &str) -> Result<(), DeploymentError> {
        if rev.is_empty() || d.annotations().get(REVISION).map(String::as_str) == Some(rev) {
            return Ok(());
        }
        let body = json!({"metadata": {"annotations": {REVISION: rev}}});
        let status = d.status.clone();
        *d = self
            .api
            .patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        d.status = status;
        Ok(())
    }

    /// Resizes one ReplicaSet, refreshing its replicas annotations, with a
    /// `ScalingReplicaSet` event when the size changes (upstream's
    /// `scaleReplicaSet`).
    async fn scale(
        &mut self,
        d: &Deployment,
        split: &mut Split,
        to: &Scale,
    ) -> Result<bool, DeploymentError> {
        let Some(rs) = split.get(&to.name).cloned() else {
            return Ok(false);
        };
        let replicas = deploy_replicas(d);
        let max = replicas + max_surge(d);
        let from = spec_replicas(&rs);
        let resize = from != to.replicas;
        if !resize && !replicas_annotations_need_update(&rs, replicas, max) {
            return Ok(false);
        }
        let mut body = rs.clone();
        body.spec.get_or_insert_with(Default::default).replicas = Some(to.replicas);
        set_replicas_annotations(&mut body, replicas, max);
        let updated = self
            .rs_api
            .replace(&rs.name_any(), &PostParams::default(), &body)
            .await?;
        if resize {
            let op = if from < to.replicas { "up" } else { "down" };
            self.c.recorder.event(
                d,
                events::NORMAL,
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} from {from} to {}",
                    rs.name_any(),
                    to.replicas
                ),
            );
        }
        split.replace(updated);
        Ok(resize)
    }

    /// Status only (a Deployment being deleted).
    pub(super) async fn sync_status_only(
        &mut self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> Result<(), DeploymentError> {
        let split = self.split(d, rs_list, false).await?;
        self.sync_deployment_status(d, &split).await
    }

    async fn sync_deployment_status(
        &mut self,
        d: &mut Deployment,
        split: &Split,
    ) -> Result<(), DeploymentError> {
        let mut st = status::calculate_status(d, &split.all(), split.new.as_ref(), now());
        status::normalize(&mut st);
        if d.status.as_ref() != Some(&st) {
            self.update_status(d, st).await?;
        }
        Ok(())
    }

    /// Scaling only (paused, or a scaling event); a paused Deployment
    /// also prunes its history (upstream's `sync`).
    pub(super) async fn sync_scale(
        &mut self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> Result<(), DeploymentError> {
        let mut split = self.split(d, rs_list, false).await?;
        let plan = rolling::proportional_scale(d, split.new.as_ref(), &split.old_refs());
        for s in &plan {
            self.scale(d, &mut split, s).await?;
        }
        if d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.cleanup(d, &split).await?;
        }
        self.sync_deployment_status(d, &split).await
    }

    async fn cleanup(&mut self, d: &Deployment, split: &Split) -> Result<(), DeploymentError> {
        for rs in rolling::history_to_delete(d, &split.old_refs()) {
            match self
                .rs_api
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reports the rollout's status and when to look again (upstream's
    /// `syncRolloutStatus`).
    async fn sync_rollout_status(
        &mut self,
        d: &mut Deployment,
        split: &Split,
    ) -> Result<(), DeploymentError> {
        let now = now();
        let st = status::rollout_status(d, &split.all(), split.new.as_ref(), now);
        if d.status.as_ref() == Some(&st) {
            self.requeue = status::requeue_stuck(d, &st, now);
            return Ok(());
        }
        self.update_status(d, st).await
    }

    pub(super) async fn rollout_rolling(
        &mut self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> Result<(), DeploymentError> {
        let mut split = self.split(d, rs_list, true).await?;
        let Some(new_rs) = split.new.clone() else {
            return self.sync_rollout_status(d, &split).await;
        };
        if let Some(n) = rolling::reconcile_new(d, &split.all(), &new_rs) {
            let to = Scale {
                name: new_rs.name_any(),
                replicas: n,
            };
            if self.scale(d, &mut split, &to).await? {
                return self.sync_rollout_status(d, &split).await;
            }
        }
        let new_rs = split.new.clone().unwrap_or(new_rs);
        let plan = rolling::reconcile_old(d, &split.all(), &new_rs);
        let mut scaled_down = false;
        for s in &plan {
            scaled_down |= self.scale(d, &mut split, s).await?;
        }
        if scaled_down {
            return self.sync_rollout_status(d, &split).await;
        }
        if deployment_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &split).await?;
        }
        self.sync_rollout_status(d, &split).await
    }

    pub(super) async fn rollout_recreate(
        &mut self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> Result<(), DeploymentError> {
        let mut split = self.split(d, rs_list.clone(), false).await?;
        let mut scaled_down = false;
        let old_active: Vec<String> = rolling::active(split.old.iter())
            .into_iter()
            .map(|r| r.name_any())
            .collect();
        for name in old_active {
            let to = Scale { name, replicas: 0 };
            scaled_down |= self.scale(d, &mut split, &to).await?;
        }
        if scaled_down {
            return self.sync_rollout_status(d, &split).await;
        }
        let pods = self.c.pods.state();
        let ns = d.namespace();
        let pods: Vec<&Pod> = pods
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| p.namespace() == ns)
            .collect();
        if rolling::old_pods_running(split.new.as_ref(), &split.old_refs(), &pods) {
            return self.sync_rollout_status(d, &split).await;
        }
        if split.new.is_none() {
            split = self.split(d, rs_list, true).await?;
        }
        if let Some(new_rs) = split.new.clone() {
            let replicas = deploy_replicas(d);
            if spec_replicas(&new_rs) != replicas {
                let to = Scale {
                    name: new_rs.name_any(),
                    replicas,
                };
                self.scale(d, &mut split, &to).await?;
            }
        }
        if deployment_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &split).await?;
        }
        self.sync_rollout_status(d, &split).await
    }
}
