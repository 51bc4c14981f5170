//! Taint eviction: deletes pods bound to nodes with NoExecute taints they
//! do not tolerate, like upstream's taint eviction controller
//! (`pkg/controller/tainteviction`, `--controllers` name
//! `taint-eviction-controller`).
//!
//! For a pod on a node with NoExecute taints ([`verdict`]):
//!
//! * a taint no toleration of the pod tolerates → the pod is deleted at once;
//! * every taint tolerated, some toleration with `tolerationSeconds` → the
//!   pod is deleted once the smallest of them has run out, counted from the
//!   taint's `timeAdded` (upstream counts from when the controller first
//!   saw the taint; `timeAdded` survives a controller restart, and is used
//!   here, falling back to first sight when a taint has none);
//! * every toleration without `tolerationSeconds` → the pod stays.
//!
//! Per taint, the first toleration that tolerates it counts (upstream
//! `GetMatchingTolerations`). A scheduled deletion is cancelled when the
//! taint goes or the tolerations change (event `TaintManagerEviction`
//! "Cancelling deletion of Pod NS/NAME"). Before deleting, the controller
//! records `TaintManagerEviction` "Marking for deletion Pod NS/NAME" and
//! sets the pod's `DisruptionTarget` condition (reason
//! `DeletionByTaintManager`). DaemonSet pods stay because their controller
//! gives them tolerations without `tolerationSeconds`; nothing here treats
//! them specially.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{self, Recorder};
use crate::informers::Change;
use crate::manager::{run_workers, Context, Running};
use crate::util::{key_of, split_key};

/// The event reason of this controller.
pub const REASON: &str = "TaintManagerEviction";

#[derive(Debug, thiserror::Error)]
pub enum TaintEvictionError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What to do with a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No NoExecute taint, or all tolerated for ever.
    Stay,
    /// Delete it now.
    EvictNow,
    /// Delete it at this time.
    EvictAt(Timestamp),
}

fn no_execute(taints: &[Taint]) -> impl Iterator<Item = &Taint> {
    taints.iter().filter(|t| t.effect == "NoExecute")
}

/// Decides a pod's fate from its node's taints and its tolerations at
/// `now`; `first_seen` stands in for a taint's missing `timeAdded`.
pub fn verdict(
    taints: &[Taint],
    tolerations: &[Toleration],
    first_seen: Timestamp,
    now: Timestamp,
) -> Verdict {
    let mut deadline: Option<Timestamp> = None;
    for taint in no_execute(taints) {
        let Some(tol) = tolerations
            .iter()
            .find(|t| rkube_api::scheduling::tolerates(t, taint))
        else {
            return Verdict::EvictNow;
        };
        let Some(secs) = tol.toleration_seconds else {
            continue;
        };
        let since = taint.time_added.as_ref().map_or(first_seen, |t| t.0);
        let at = since
            .checked_add(SignedDuration::from_secs(secs.max(0)))
            .unwrap_or(Timestamp::MAX);
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    match deadline {
        None => Verdict::Stay,
        Some(d) if d <= now => Verdict::EvictNow,
        Some(d) => Verdict::EvictAt(d),
    }
}

struct Controller {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    recorder: Recorder,
    /// Pods with a deletion scheduled.
    scheduled: Mutex<HashSet<String>>,
    /// When NoExecute taints were first seen on a pod's node (for taints
    /// without timeAdded).
    first_seen: Mutex<HashMap<String, Timestamp>>,
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn no_execute_taints(node: Option<&Node>) -> Vec<&Taint> {
    node.map(|n| no_execute(rkube_api::scheduling::node_taints(n)).collect())
        .unwrap_or_default()
}

/// Sets the controller up (see the module doc).
pub fn start(ctx: &Context) -> Running {
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let queue = ctx.queue("taint_eviction");
    let q = queue.clone();
    pods.on_change(move |c| {
        if let Change::Applied { new, .. } = c {
            if node_name(new).is_some() && new.metadata.deletion_timestamp.is_none() {
                q.add(key_of(new.as_ref()));
            }
        }
    });
    let q = queue.clone();
    let pod_store = pods.store();
    nodes.on_change(move |c| {
        let Change::Applied { old, new } = c else {
            return;
        };
        let before = no_execute_taints(old.as_deref());
        let after = no_execute_taints(Some(new));
        if before == after {
            return;
        }
        let name = new.name_any();
        for p in pod_store.state() {
            if node_name(&p) == Some(name.as_str()) {
                q.add(key_of(p.as_ref()));
            }
        }
    });
    let c = Arc::new(Controller {
        client: ctx.client.clone(),
        pods: pods.store(),
        nodes: nodes.store(),
        recorder: ctx.recorder("taint-eviction-controller"),
        scheduled: Mutex::new(HashSet::new()),
        first_seen: Mutex::new(HashMap::new()),
    });
    let workers = ctx.config.workers;
    Box::pin(async move {
        if c.pods.wait_until_ready().await.is_err() || c.nodes.wait_until_ready().await.is_err() {
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

impl Controller {
    fn cancel(&self, key: &str, pod: Option<&Pod>) {
        self.first_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        let was = self
            .scheduled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if let (true, Some(pod)) = (was, pod) {
            tracing::info!(pod = key, "cancelling scheduled deletion");
            self.recorder.event(
                pod,
                events::NORMAL,
                REASON,
                format!("Cancelling deletion of Pod {key}"),
            );
        }
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, TaintEvictionError> {
        let (ns, name) = split_key(key);
        let Some(pod) = self.pods.get(&ObjectRef::new(name).within(ns)) else {
            self.cancel(key, None);
            return Ok(None);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            self.cancel(key, None);
            return Ok(None);
        }
        let Some(node) = node_name(&pod).and_then(|n| self.nodes.get(&ObjectRef::new(n))) else {
            self.cancel(key, Some(&pod));
            return Ok(None);
        };
        let taints = rkube_api::scheduling::node_taints(&node);
        let tolerations = rkube_api::scheduling::pod_tolerations(&pod);
        let now = Timestamp::now();
        let first_seen = if no_execute(taints).next().is_some() {
            *self
                .first_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key.to_string())
                .or_insert(now)
        } else {
            now
        };
        match verdict(taints, tolerations, first_seen, now) {
            Verdict::Stay => {
                self.cancel(key, Some(&pod));
                Ok(None)
            }
            Verdict::EvictAt(at) => {
                let wait = now.duration_until(at).unsigned_abs();
                tracing::debug!(pod = key, ?wait, "deletion scheduled");
                self.scheduled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.to_string());
                Ok(Some(wait))
            }
            Verdict::EvictNow => {
                self.evict(&pod, key).await?;
                self.scheduled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(key);
                self.first_seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(key);
                Ok(None)
            }
        }
    }

    async fn evict(&self, pod: &Pod, key: &str) -> Result<(), TaintEvictionError> {
        let (ns, name) = split_key(key);
        tracing::info!(pod = key, "deleting pod for a NoExecute taint");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let already = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
            });
        if !already {
            self.recorder.event(
                pod,
                events::NORMAL,
                REASON,
                format!("Marking for deletion Pod {key}"),
            );
            let patch = json!({"status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": Time(Timestamp::now()),
            }]}});
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn taint(key: &str, effect: &str, added: Option<i64>) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: added.map(|s| Time(ts(s))),
        }
    }

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            ..Default::default()
        }
    }

    const U: &str = "node.kubernetes.io/unreachable";

    #[test]
    fn untolerated_taint_evicts_at_once() {
        let t = [taint(U, "NoExecute", Some(100))];
        assert_eq!(verdict(&t, &[], ts(0), ts(100)), Verdict::EvictNow);
        assert_eq!(
            verdict(&t, &[tol("other", None)], ts(0), ts(100)),
            Verdict::EvictNow
        );
    }

    #[test]
    fn toleration_seconds_count_from_time_added() {
        let t = [taint(U, "NoExecute", Some(100))];
        assert_eq!(
            verdict(&t, &[tol(U, Some(3))], ts(0), ts(101)),
            Verdict::EvictAt(ts(103))
        );
        assert_eq!(
            verdict(&t, &[tol(U, Some(3))], ts(0), ts(103)),
            Verdict::EvictNow
        );
        // Negative seconds count as zero.
        assert_eq!(
            verdict(&t, &[tol(U, Some(-5))], ts(0), ts(100)),
            Verdict::EvictNow
        );
        // No timeAdded: from first sight.
        let bare = [taint(U, "NoExecute", None)];
        assert_eq!(
            verdict(&bare, &[tol(U, Some(10))], ts(200), ts(201)),
            Verdict::EvictAt(ts(210))
        );
    }

    #[test]
    fn smallest_deadline_over_taints_wins_and_forever_stays() {
        let t = [
            taint(U, "NoExecute", Some(100)),
            taint("dedicated", "NoExecute", Some(50)),
            taint("soft", "NoSchedule", Some(0)),
        ];
        let tols = [tol(U, Some(30)), tol("dedicated", Some(60))];
        assert_eq!(
            verdict(&t, &tols, ts(0), ts(101)),
            Verdict::EvictAt(ts(110))
        );
        // Tolerating for ever (as DaemonSet pods do): stays.
        let forever = [tol(U, None), tol("dedicated", None)];
        assert_eq!(verdict(&t, &forever, ts(0), ts(10_000)), Verdict::Stay);
        // The first matching toleration counts, as upstream.
        let first = [tol(U, None), tol(U, Some(1)), tol("dedicated", None)];
        assert_eq!(verdict(&t, &first, ts(0), ts(10_000)), Verdict::Stay);
        // NoSchedule taints alone: nothing to do.
        assert_eq!(verdict(&t[2..], &[], ts(0), ts(0)), Verdict::Stay);
        // A wildcard toleration (empty key, Exists) tolerates everything.
        let any = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert_eq!(verdict(&t, &[any], ts(0), ts(0)), Verdict::Stay);
    }
}
