//! The Deployment controller (upstream `pkg/controller/deployment`, name
//! `deployment`): rolls a Deployment's pod template out through
//! ReplicaSets.
//!
//! Each ReplicaSet a Deployment creates is named `<deployment>-<hash>`,
//! with the template's hash ([`util::compute_hash`], salted with
//! `status.collisionCount`, which goes up when a ReplicaSet of that name
//! with another template is in the way) as its `pod-template-hash` label
//! and selector term. The ReplicaSet whose template equals the
//! Deployment's (ignoring that label) is the new one; the others are old.
//! The new one gets revision `max(old revisions) + 1` (an old one coming
//! back, as after `kubectl rollout undo`, which patches the template back
//! client-side, keeps its former revisions in `revision-history`), the
//! Deployment's annotations (so `kubernetes.io/change-cause` shows in
//! `kubectl rollout history`) and the `desired-replicas`/`max-replicas`
//! annotations. The Deployment's own `revision` annotation follows.
//!
//! A sync of one Deployment, as upstream's `syncDeployment`: claim the
//! matching ReplicaSets (adopt orphans, release non-matching ones); a
//! paused Deployment, or one whose size changed (`isScalingEvent`), only
//! scales ([`rolling::proportional_scale`]) and reports status; otherwise
//! a RollingUpdate grows the new ReplicaSet within `maxSurge` and shrinks
//! old ones within `maxUnavailable` ([`rolling`]), and Recreate scales the
//! old ones to zero, waits until none of their pods runs, then creates and
//! scales up the new one. Completed rollouts delete old, empty
//! ReplicaSets beyond `revisionHistoryLimit`. Status and the Progressing
//! and Available conditions follow [`status`]; a rollout that stops making
//! progress is looked at again when its deadline passes. Events:
//! `ScalingReplicaSet` "Scaled up/down replica set X from A to B".
//!
//! Simplifications: no `SelectingAll` guard beyond refusing to act on an
//! empty selector; overlapping Deployments are not detected.

pub mod rolling;
pub mod status;
mod sync;
pub mod util;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::events::{self, Recorder};
use crate::informers::Change;
use crate::manager::{run_workers, Context, Running};
use crate::replicaset::apply_claim;
use crate::replicaset::logic::claim;
use crate::util::{controller_of, is_deleting, key_of, selector_matches, split_key};
use sync::Rollout;
use util::*;

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("claiming replica sets: {0}")]
    Claim(String),
    #[error("replica set {0:?} already exists with another template (collision count now {1})")]
    Collision(String, i32),
}

struct Controller {
    client: Client,
    deployments: Store<Deployment>,
    sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    recorder: Recorder,
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> Running {
    let d_inf = ctx.informers.get::<Deployment>();
    let rs_inf = ctx.informers.get::<ReplicaSet>();
    let pod_inf = ctx.informers.get::<Pod>();
    let queue = ctx.queue("deployment");
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        deployments: d_inf.store(),
        sets: rs_inf.store(),
        pods: pod_inf.store(),
        recorder: ctx.recorder("deployment-controller"),
    });
    {
        let q = queue.clone();
        d_inf.on_change(move |ch: &Change<Deployment>| q.add(key_of(ch.object().as_ref())));
    }
    {
        let q = queue.clone();
        let c = c.clone();
        rs_inf.on_change(move |ch: &Change<ReplicaSet>| {
            let (old, new) = match ch {
                Change::Applied { old, new } => (old.as_deref(), new.as_ref()),
                Change::Deleted(rs) => (None, rs.as_ref()),
            };
            if let Some(k) = c.owner_key(new) {
                q.add(k);
            } else if old.is_none_or(|o| o.labels() != new.labels() || controller_of(o).is_some()) {
                for k in c.matching_deployments(new) {
                    q.add(k);
                }
            }
            if let Some(k) = old.and_then(|o| c.owner_key(o)) {
                q.add(k);
            }
        });
    }
    {
        let q = queue.clone();
        let c = c.clone();
        pod_inf.on_change(move |ch: &Change<Pod>| {
            // Recreate waits for old pods to go.
            if let Change::Deleted(pod) = ch {
                let rs = controller_of(pod.as_ref()).and_then(|r| {
                    let ns = pod.namespace().unwrap_or_default();
                    c.sets.get(&ObjectRef::new(&r.name).within(&ns))
                });
                if let Some(k) = rs.and_then(|rs| c.owner_key(&rs)) {
                    q.add(k);
                }
            }
        });
    }
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

impl Controller {
    /// The key of the Deployment controlling `rs`, if it exists.
    fn owner_key(&self, rs: &ReplicaSet) -> Option<String> {
        let r = controller_of(rs)?;
        if r.kind != "Deployment" {
            return None;
        }
        let ns = rs.namespace().unwrap_or_default();
        let d = self.deployments.get(&ObjectRef::new(&r.name).within(&ns))?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then(|| key_of(d.as_ref()))
    }

    fn matching_deployments(&self, rs: &ReplicaSet) -> Vec<String> {
        let ns = rs.namespace();
        self.deployments
            .state()
            .iter()
            .filter(|d| {
                d.namespace() == ns
                    && selector_matches(d.spec.as_ref().map(|s| &s.selector), rs.labels())
            })
            .map(|d| key_of(d.as_ref()))
            .collect()
    }

    /// One sync. A conflict means the cache is behind an object the watch
    /// is about to deliver, which queues the Deployment again: not an
    /// error worth a backoff.
    async fn sync(&self, key: &str) -> Result<Option<Duration>, DeploymentError> {
        match self.sync_inner(key).await {
            Err(DeploymentError::Api(kube::Error::Api(s))) if s.code == 409 => {
                tracing::debug!(message = %s.message, "conflict; waiting for the newer object");
                Ok(None)
            }
            r => r,
        }
    }

    async fn sync_inner(&self, key: &str) -> Result<Option<Duration>, DeploymentError> {
        let _ = self.deployments.wait_until_ready().await;
        let _ = self.sets.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let (ns, name) = split_key(key);
        let Some(d) = self.deployments.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        let mut d = (*d).clone();
        let selector = d.spec.as_ref().map(|s| s.selector.clone());
        if selector.as_ref().is_none_or(selector_is_empty) {
            self.recorder.event(
                &d,
                events::WARNING,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            return Ok(None);
        }
        let rs_list = self.claim_replica_sets(&d, selector.as_ref()).await?;
        let mut s = Rollout {
            c: self,
            api: Api::namespaced(self.client.clone(), ns),
            rs_api: Api::namespaced(self.client.clone(), ns),
            requeue: None,
        };
        if is_deleting(&d) {
            s.sync_status_only(&mut d, rs_list).await?;
            return Ok(s.requeue);
        }
        if let Some(st) = status::paused_status(&d, now()) {
            s.update_status(&mut d, st).await?;
        }
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let all: Vec<&ReplicaSet> = rs_list.iter().collect();
        if paused || rolling::is_scaling_event(&d, &all) {
            s.sync_scale(&mut d, rs_list).await?;
        } else if is_recreate(&d) {
            s.rollout_recreate(&mut d, rs_list).await?;
        } else {
            s.rollout_rolling(&mut d, rs_list).await?;
        }
        Ok(s.requeue)
    }

    /// The Deployment's ReplicaSets after adopting matching orphans and
    /// releasing those that no longer match.
    async fn claim_replica_sets(
        &self,
        d: &Deployment,
        selector: Option<&LabelSelector>,
    ) -> Result<Vec<ReplicaSet>, DeploymentError> {
        let ns = d.namespace();
        let all = self.sets.state();
        let in_ns: Vec<&ReplicaSet> = all
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| r.namespace() == ns)
            .collect();
        let c = claim(d, selector, in_ns.iter().copied());
        let mut owned: Vec<ReplicaSet> = c.owned.iter().map(|r| (*r).clone()).collect();
        if c.adopt.is_empty() && c.release.is_empty() {
            return Ok(owned);
        }
        let errors = apply_claim(&self.client, d, &c, &mut owned).await?;
        if errors.is_empty() {
            Ok(owned)
        } else {
            Err(DeploymentError::Claim(errors.join("; ")))
        }
    }
}

fn selector_is_empty(s: &LabelSelector) -> bool {
    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

/// Now, to the second (API times have second precision).
pub(crate) fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
}

#[cfg(test)]
mod tests;
