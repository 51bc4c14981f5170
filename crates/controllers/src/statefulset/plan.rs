//! The StatefulSet controller's decisions as pure functions: pod identity
//! (names, ordinals, labels, claims), which revision a new pod gets, and
//! one sync's actions and status (upstream `updateStatefulSet` with
//! `processReplica`, `processCondemned` and the rolling-update loop).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::util::{controller_ref_to, is_deleting, pod_is_available, pod_is_ready};

/// The pod label with the pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The pod label with the name of the pod's ControllerRevision.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The ControllerRevision label with its hash.
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The parent name and ordinal of a pod name `<parent>-<ordinal>`.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

/// Whether a pod's name makes it one of the set's (upstream `isMemberOf`).
pub fn is_member(set: &StatefulSet, pod: &Pod) -> bool {
    parent_and_ordinal(&pod.name_any()).is_some_and(|(p, _)| p == set.name_any())
}

/// The pod name of an ordinal.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// The claim name of a volume claim template for an ordinal.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

fn spec_replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

/// `spec.ordinals.start` (0 by default).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// Whether the set creates and deletes pods one at a time
/// (OrderedReady, the default) rather than all at once (Parallel).
pub fn monotonic(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        != Some("Parallel")
}

fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// The rolling update's partition, if a rollingUpdate is given.
pub fn partition(set: &StatefulSet) -> Option<i32> {
    let ru = set
        .spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()?;
    Some(ru.partition.unwrap_or(0))
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The claims of an ordinal's pod, by template name (upstream
/// `getPersistentVolumeClaims`): the template named
/// `<template>-<set>-<ordinal>`, labelled with the selector's matchLabels.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let Some(spec) = set.spec.as_ref() else {
        return Vec::new();
    };
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let tname = t.name_any();
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector_labels.clone());
            let claim = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&tname, &set.name_any(), ordinal)),
                    namespace: set.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            };
            (tname, claim)
        })
        .collect()
}

/// The pod of `ordinal` from `template` at revision `revision` (upstream
/// `newVersionedStatefulSetPod`): name `<set>-<ordinal>`, identity labels,
/// hostname and subdomain, and a volume per claim template.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let name = pod_name(set, ordinal);
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.to_string());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let claims = claims_for(set, ordinal);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(tname, claim)| Volume {
            name: tname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.name_any(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    volumes.extend(
        spec.volumes
            .take()
            .into_iter()
            .flatten()
            .filter(|v| !claims.iter().any(|(t, _)| *t == v.name)),
    );
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(format!("{}-", set.name_any())),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref_to(set)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Whether a pod carries its identity labels (upstream `identityMatches`,
/// the part a label update can fix).
fn identity_matches(pod: &Pod, ordinal: i32) -> bool {
    let l = pod.labels();
    l.get(POD_NAME_LABEL) == Some(&pod.name_any())
        && l.get(POD_INDEX_LABEL) == Some(&ordinal.to_string())
}

/// The two revisions a sync works with.
pub struct Revisions<'a> {
    /// The revision the set's pods are at (status.currentRevision).
    pub current: &'a str,
    pub current_template: &'a PodTemplateSpec,
    /// The revision of the set's template now.
    pub update: &'a str,
    pub update_template: &'a PodTemplateSpec,
}

/// One step of a sync.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this pod (and first its claims).
    Create(Box<Pod>),
    /// Delete this pod; `recreate` gives the event of a failed or
    /// succeeded pod being recreated.
    Delete {
        pod: String,
        recreate: Option<Recreate>,
    },
    /// Put the identity labels back on this pod.
    Relabel { pod: String, ordinal: i32 },
}

/// Why a finished pod is deleted to be recreated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recreate {
    Failed,
    Succeeded,
}

/// A sync's actions, in order, and the resulting status.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: StatefulSetStatus,
}

/// Whether the pod is being deleted.
fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && pod_is_ready(pod)
}

fn healthy(pod: &Pod) -> bool {
    running_and_ready(pod) && !deleting(pod)
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.labels().get(REVISION_LABEL).map(String::as_str)
}

/// The template and revision a new pod at `ordinal` gets: the current
/// revision below the partition, the update revision from it on.
fn versioned_pod(set: &StatefulSet, revs: &Revisions, ordinal: i32) -> Pod {
    let start = start_ordinal(set);
    let current_replicas = set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let use_current = match partition(set) {
        None => strategy_type(set) == "RollingUpdate" && ordinal < start + current_replicas,
        Some(p) => ordinal < start + p,
    };
    if use_current {
        new_pod(set, revs.current_template, ordinal, revs.current)
    } else {
        new_pod(set, revs.update_template, ordinal, revs.update)
    }
}

/// One sync of a StatefulSet over the pods it controls (upstream
/// `updateStatefulSet`). In OrderedReady mode it stops at the first step
/// that must wait: pods are created in ordinal order, each once its
/// predecessors are Running and Ready (and available), and removed from
/// the highest ordinal down; in Parallel mode every missing pod is created
/// and every surplus one deleted at once. Then, with RollingUpdate, the
/// highest-ordinal pod at or above the partition that is not at the update
/// revision is deleted (the next sync recreates it), one at a time, each
/// after the pods above it are healthy again.
pub fn plan(set: &StatefulSet, revs: &Revisions, pods: &[Arc<Pod>], now: Timestamp) -> Plan {
    let start = start_ordinal(set);
    let replicas = spec_replicas(set);
    let end = start + replicas; // exclusive
    let min_ready = min_ready_seconds(set);
    let mono = monotonic(set);
    let available = |p: &Pod| running_and_ready(p) && pod_is_available(p, min_ready, now);

    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(revs.current.to_string()),
        update_revision: Some(revs.update.to_string()),
        collision_count: Some(
            set.status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        ),
        ..Default::default()
    };
    let (mut ready, mut avail, mut current, mut updated) = (0, 0, 0, 0);
    let mut slots: Vec<Option<&Pod>> = vec![None; usize::try_from(replicas).unwrap_or(0)];
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in pods {
        let Some((_, ord)) = parent_and_ordinal(p.metadata.name.as_deref().unwrap_or_default())
        else {
            continue;
        };
        status.replicas += 1;
        if running_and_ready(p) {
            ready += 1;
            if available(p) {
                avail += 1;
            }
        }
        if !deleting(p) {
            if revision_of(p) == Some(revs.current) {
                current += 1;
            }
            if revision_of(p) == Some(revs.update) {
                updated += 1;
            }
        }
        if (start..end).contains(&ord) {
            slots[usize::try_from(ord - start).unwrap_or(0)] = Some(&**p);
        } else {
            condemned.push((ord, &**p));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let first_unhealthy: Option<&Pod> = slots
        .iter()
        .flatten()
        .copied()
        .chain(condemned.iter().rev().map(|(_, p)| *p))
        .find(|p| !healthy(p));
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(avail);
    status.current_replicas = Some(current);
    status.updated_replicas = Some(updated);
    let mut actions = Vec::new();
    let finish = |mut status: StatefulSetStatus, actions| {
        complete_rolling_update(set, &mut status);
        Plan { actions, status }
    };
    if is_deleting(set) {
        return finish(status, actions);
    }

    // Living replicas, in ordinal order.
    for (i, slot) in slots.iter().enumerate() {
        let ord = start + i32::try_from(i).unwrap_or(0);
        let Some(p) = slot else {
            actions.push(Action::Create(Box::new(versioned_pod(set, revs, ord))));
            if mono {
                return finish(status, actions);
            }
            continue;
        };
        match phase(p) {
            Some("Failed") | Some("Succeeded") if !deleting(p) => {
                let why = if phase(p) == Some("Failed") {
                    Recreate::Failed
                } else {
                    Recreate::Succeeded
                };
                actions.push(Action::Delete {
                    pod: p.name_any(),
                    recreate: Some(why),
                });
                if mono {
                    return finish(status, actions);
                }
                continue;
            }
            _ => {}
        }
        if mono && (deleting(p) || !running_and_ready(p) || !available(p)) {
            return finish(status, actions);
        }
        if !deleting(p) && !identity_matches(p, ord) {
            actions.push(Action::Relabel {
                pod: p.name_any(),
                ordinal: ord,
            });
        }
    }

    // Surplus pods, from the highest ordinal down.
    for (_, p) in &condemned {
        if deleting(p) {
            if mono {
                return finish(status, actions);
            }
            continue;
        }
        let is_first_unhealthy = first_unhealthy.is_some_and(|u| std::ptr::eq(u, *p));
        if mono && !available(p) && !is_first_unhealthy {
            return finish(status, actions);
        }
        actions.push(Action::Delete {
            pod: p.name_any(),
            recreate: None,
        });
        if mono {
            return finish(status, actions);
        }
    }

    if strategy_type(set) == "OnDelete" {
        return finish(status, actions);
    }
    // Rolling update: the highest ordinal not at the update revision.
    let removed: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { pod, .. } => Some(pod.clone()),
            _ => None,
        })
        .collect();
    let update_min = usize::try_from(partition(set).unwrap_or(0).max(0)).unwrap_or(0);
    for target in (update_min..slots.len()).rev() {
        // A pod being created or recreated this sync is not healthy yet.
        let Some(p) = slots[target].filter(|p| !removed.contains(&p.name_any())) else {
            break;
        };
        if revision_of(p) != Some(revs.update) && !deleting(p) {
            actions.push(Action::Delete {
                pod: p.name_any(),
                recreate: None,
            });
            if let Some(c) = status.current_replicas.as_mut() {
                *c -= 1;
            }
            break;
        }
        if !healthy(p) {
            break;
        }
    }
    finish(status, actions)
}

/// Upstream `completeRollingUpdate`: once every pod is updated and ready,
/// the update revision becomes the current one.
fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    if strategy_type(set) == "RollingUpdate"
        && status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

/// The identity labels to patch onto a pod.
pub fn identity_labels(pod: &str, ordinal: i32) -> BTreeMap<String, String> {
    [
        (POD_NAME_LABEL.to_string(), pod.to_string()),
        (POD_INDEX_LABEL.to_string(), ordinal.to_string()),
    ]
    .into()
}
