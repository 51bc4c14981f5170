//! The ReplicaSet controller's pure decisions: which pods it claims,
//! adopts and releases, which pods go first when scaling down, the
//! slow-start batches of creations, the pod a template makes, and the
//! status it reports. Nothing here talks to the API server.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use crate::util::{
    controller_of, controller_ref_to, is_deleting, pod_is_available, pod_is_ready, selector_matches,
};

/// The annotation that makes a pod cheaper (or dearer) to delete.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The condition type reporting failed creations or deletions.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
/// How many pods one sync creates or deletes at most (upstream's
/// `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// The first slow-start batch (upstream's `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// What claiming objects decided (upstream's `ControllerRefManager`
/// `ClaimPods`/`ClaimReplicaSets`).
#[derive(Debug)]
pub struct Claim<'a, K> {
    /// Objects the owner controls and whose labels match.
    pub owned: Vec<&'a K>,
    /// Orphans that match: to adopt (patch in our controller ref).
    pub adopt: Vec<&'a K>,
    /// Objects we control that no longer match: to release (orphan).
    pub release: Vec<&'a K>,
}

/// Sorts `objs` (of the owner's namespace) into owned, to adopt and to
/// release by the owner's `selector`. Objects controlled by someone else
/// are ignored; objects being deleted are neither adopted nor released; an
/// owner being deleted adopts nothing.
pub fn claim<'a, O: Resource, K: Resource + 'a>(
    owner: &O,
    selector: Option<&LabelSelector>,
    objs: impl IntoIterator<Item = &'a K>,
) -> Claim<'a, K> {
    let uid = owner.meta().uid.as_deref().unwrap_or_default();
    let mut c = Claim {
        owned: Vec::new(),
        adopt: Vec::new(),
        release: Vec::new(),
    };
    for obj in objs {
        let matches = selector_matches(selector, obj.labels());
        match controller_of(obj) {
            Some(r) if r.uid == uid => {
                if matches {
                    c.owned.push(obj);
                } else if !is_deleting(obj) {
                    c.release.push(obj);
                }
            }
            Some(_) => {}
            None => {
                if matches && !is_deleting(obj) && !is_deleting(owner) {
                    c.adopt.push(obj);
                }
            }
        }
    }
    c
}

/// The pod a ReplicaSet creates from its template (upstream's
/// `GetPodFromTemplate`): the template's labels, annotations, finalizers
/// and spec, `generateName` `<rs-name>-`, and a controller reference.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone());
    let tmeta = template
        .as_ref()
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref_to(rs)]),
            ..Default::default()
        },
        spec: template.and_then(|t| t.spec),
        status: None,
    }
}

/// Runs `count` calls of `f` in batches of 1, 2, 4, ... (each batch
/// concurrently), stopping after the first batch with an error (upstream's
/// `slowStartBatch`). Returns how many calls succeeded and the first error.
pub async fn slow_start_batch<F, Fut, E>(count: usize, initial: usize, f: F) -> (usize, Option<E>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = remaining.min(initial.max(1));
    while batch > 0 {
        let results = futures::future::join_all((0..batch).map(|_| f())).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => successes += 1,
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if first_err.is_some() {
            return (successes, first_err);
        }
        remaining -= batch;
        batch = remaining.min(batch * 2);
    }
    (successes, None)
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i64 {
    pod.annotations()
        .get(POD_DELETION_COST)
        .and_then(|v| v.parse::<i32>().ok())
        .map(i64::from)
        .unwrap_or(0)
}

fn ready_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Earlier-first for optional times where "no time" comes first and a
/// later time comes before an earlier one (newest first).
fn newest_first(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// Which of two pods to delete first (`Less` = `a` first), upstream's
/// `ActivePodsWithRanks` order: unassigned before assigned; Pending before
/// Unknown before Running; not ready before ready; lower
/// `pod-deletion-cost` first; more pods of the same owner family on the
/// node (`rank`) first; ready for less time first; more restarts first;
/// newer first. Simplification: times are compared exactly, not in
/// upstream's logarithmic buckets (`LogarithmicScaleDown`).
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    node(a)
        .cmp(&node(b))
        .then_with(|| phase_ordinal(a).cmp(&phase_ordinal(b)))
        .then_with(|| pod_is_ready(a).cmp(&pod_is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            if pod_is_ready(a) && pod_is_ready(b) {
                newest_first(ready_time(a), ready_time(b))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| {
            newest_first(
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        })
}

/// The `diff` pods to delete out of `pods`, ranked against `related`
/// (the active pods of the ReplicaSet and its siblings under the same
/// owner): a pod's rank is how many related pods share its node (upstream's
/// `getPodsToDelete`).
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], diff: usize) -> Vec<&'a Pod> {
    let node_of = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for p in related {
        if crate::util::pod_is_active(p) {
            if let Some(n) = node_of(p) {
                *on_node.entry(n).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|p| {
            let rank = node_of(p)
                .and_then(|n| on_node.get(&n).copied())
                .unwrap_or(0);
            (*p, rank)
        })
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb));
    ranked.into_iter().take(diff).map(|(p, _)| p).collect()
}

/// The status a ReplicaSet reports for its active, controlled `pods`
/// (upstream's `calculateStatus`): counts, and the ReplicaFailure
/// condition set (`FailedCreate`/`FailedDelete`, the error as message)
/// while managing replicas fails and removed once it succeeds.
pub fn compute_status(
    rs: &ReplicaSet,
    pods: &[&Pod],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels: BTreeMap<String, String> = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let (mut fully, mut ready, mut available) = (0, 0, 0);
    for p in pods {
        if template_labels
            .iter()
            .all(|(k, v)| p.labels().get(k) == Some(v))
        {
            fully += 1;
        }
        if pod_is_ready(p) {
            ready += 1;
            if pod_is_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == REPLICA_FAILURE));
    match manage_error {
        Some(msg) if !has_failure => {
            let diff = pods.len() as i64 - i64::from(spec.replicas.unwrap_or(1));
            let reason = match diff.cmp(&0) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
                    type_: REPLICA_FAILURE.into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(msg.into()),
                    last_transition_time: Some(Time(now)),
                });
        }
        None if has_failure => {
            if let Some(cs) = status.conditions.as_mut() {
                cs.retain(|c| c.type_ != REPLICA_FAILURE);
            }
            if status.conditions.as_ref().is_some_and(|c| c.is_empty()) {
                status.conditions = None;
            }
        }
        _ => {}
    }
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = Some(fully);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status
}

/// How long until the next ready-but-not-yet-available pod becomes
/// available, when some is waiting out `minReadySeconds`.
pub fn next_availability(pods: &[&Pod], min_ready_seconds: i32, now: Timestamp) -> Option<i64> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| pod_is_ready(p) && !pod_is_available(p, min_ready_seconds, now))
        .map(|p| {
            ready_time(p)
                .map(|t| t.as_second() + i64::from(min_ready_seconds) - now.as_second())
                .unwrap_or(i64::from(min_ready_seconds))
                .max(1)
        })
        .min()
}

#[cfg(test)]
#[path = "logic_tests.rs"]
mod tests;
