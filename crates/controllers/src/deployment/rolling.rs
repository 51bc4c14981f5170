//! The arithmetic of rollouts, as pure functions over ReplicaSet snapshots
//! (upstream's `rolling.go`, `recreate.go`, `sync.go` `scale` and the
//! helpers they use): how far the new ReplicaSet may grow, how far old
//! ones may shrink, proportional scaling, and history cleanup.

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::util::{
    available_replicas, by_creation, by_revision, deploy_replicas, desired_annotation, is_recreate,
    max_replicas_annotation, max_surge, max_unavailable, spec_replicas, status_replicas,
};
use crate::util::controller_of;

/// One ReplicaSet resize the controller should make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub name: String,
    pub replicas: i32,
}

pub fn sum_spec<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(spec_replicas).sum()
}

/// ReplicaSets with replicas wanted (upstream's `FilterActiveReplicaSets`).
pub fn active<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> Vec<&'a ReplicaSet> {
    rss.into_iter().filter(|r| spec_replicas(r) > 0).collect()
}

/// The size the new ReplicaSet should have now (upstream's
/// `NewRSNewReplicas`): for a rolling update, grow within
/// `replicas + maxSurge` pods in total; for Recreate, `replicas`.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let replicas = deploy_replicas(d);
    if is_recreate(d) {
        return replicas;
    }
    let current = sum_spec(all.iter().copied());
    let max_total = replicas + max_surge(d);
    let new_size = spec_replicas(new_rs);
    if current >= max_total {
        return new_size;
    }
    let up = (max_total - current).min(replicas - new_size);
    new_size + up
}

/// The new ReplicaSet's target when it should change (upstream's
/// `reconcileNewReplicaSet`).
pub fn reconcile_new(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> Option<i32> {
    let replicas = deploy_replicas(d);
    let cur = spec_replicas(new_rs);
    if cur == replicas {
        return None;
    }
    if cur > replicas {
        return Some(replicas);
    }
    let n = new_rs_new_replicas(d, all, new_rs);
    (n != cur).then_some(n)
}

/// The scale-downs of old ReplicaSets a rolling update may make now
/// (upstream's `reconcileOldReplicaSets`): first the unhealthy replicas
/// of old ReplicaSets (oldest first), then healthy ones while at least
/// `replicas - maxUnavailable` pods stay available.
pub fn reconcile_old(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> Vec<Scale> {
    let new_name = new_rs.name_any();
    let mut old: Vec<ReplicaSet> = all
        .iter()
        .filter(|r| r.name_any() != new_name && spec_replicas(r) > 0)
        .map(|r| (*r).clone())
        .collect();
    if sum_spec(old.iter()) == 0 {
        return Vec::new();
    }
    let all_pods = sum_spec(all.iter().copied());
    let min_available = deploy_replicas(d) - max_unavailable(d);
    let new_unavailable = spec_replicas(new_rs) - available_replicas(new_rs);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    old.sort_by(by_creation);
    let mut out = Vec::new();
    // Clean up unhealthy replicas first.
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let size = spec_replicas(rs);
        let avail = available_replicas(rs);
        if size == 0 || size <= avail {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(size - avail);
        set_size(rs, size - down);
        out.push(Scale {
            name: rs.name_any(),
            replicas: size - down,
        });
        cleaned += down;
    }
    // Then scale down healthy replicas while availability allows.
    let available: i32 =
        old.iter().map(available_replicas).sum::<i32>() + available_replicas(new_rs);
    if available > min_available {
        let total = available - min_available;
        let mut done = 0;
        for rs in old.iter_mut() {
            if done >= total {
                break;
            }
            let size = spec_replicas(rs);
            if size == 0 {
                continue;
            }
            let down = size.min(total - done);
            set_size(rs, size - down);
            done += down;
            match out.iter_mut().find(|s| s.name == rs.name_any()) {
                Some(s) => s.replicas = size - down,
                None => out.push(Scale {
                    name: rs.name_any(),
                    replicas: size - down,
                }),
            }
        }
    }
    out
}

fn set_size(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// The only active ReplicaSet, or the newest when none is active; `None`
/// when several are active (upstream's `FindActiveOrLatest`).
pub fn find_active_or_latest<'a>(
    new_rs: Option<&'a ReplicaSet>,
    old: &[&'a ReplicaSet],
) -> Option<&'a ReplicaSet> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let mut sorted: Vec<&ReplicaSet> = old.to_vec();
    sorted.sort_by(|a, b| by_creation(b, a));
    let mut all = sorted.clone();
    all.extend(new_rs);
    let act = active(all);
    match act.len() {
        0 => new_rs.or(sorted.first().copied()),
        1 => Some(act[0]),
        _ => None,
    }
}

/// Whether the new ReplicaSet runs all replicas, all available (upstream's
/// `IsSaturated`).
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let r = deploy_replicas(d);
    desired_annotation(rs) == Some(r) && spec_replicas(rs) == r && available_replicas(rs) == r
}

fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let replicas = deploy_replicas(d);
    if replicas == 0 {
        return -spec_replicas(rs);
    }
    let deployment_replicas = replicas + max_surge(d);
    let annotated = max_replicas_annotation(rs).unwrap_or_else(|| {
        d.status
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or_default()
    });
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(spec_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - spec_replicas(rs)
}

/// A ReplicaSet's share of `to_add` (upstream's `GetProportion`).
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let f = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        f.min(allowed)
    } else {
        f.max(allowed)
    }
}

/// The resizes a scaling event needs (upstream's `scale`): the one active
/// (or latest) ReplicaSet takes `replicas`; a saturated new ReplicaSet
/// zeroes the old ones; mid-rollout, the change to `replicas + maxSurge`
/// is spread over the active ReplicaSets in proportion to their size
/// (from their `max-replicas` annotation), leftovers to the largest.
/// Entries with unchanged sizes are included when scaling (so their
/// annotations get refreshed), as upstream does.
pub fn proportional_scale(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[&ReplicaSet],
) -> Vec<Scale> {
    let replicas = deploy_replicas(d);
    if let Some(rs) = find_active_or_latest(new_rs, old) {
        if spec_replicas(rs) == replicas {
            return Vec::new();
        }
        return vec![Scale {
            name: rs.name_any(),
            replicas,
        }];
    }
    if is_saturated(d, new_rs) {
        return active(old.iter().copied())
            .into_iter()
            .map(|r| Scale {
                name: r.name_any(),
                replicas: 0,
            })
            .collect();
    }
    if is_recreate(d) {
        return Vec::new();
    }
    let mut all: Vec<&ReplicaSet> = old.to_vec();
    all.extend(new_rs);
    let mut all = active(all);
    let current = sum_spec(all.iter().copied());
    let allowed = if replicas > 0 {
        replicas + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    match to_add.cmp(&0) {
        // Largest first; ties newest first.
        Ordering::Greater => all.sort_by(|a, b| {
            spec_replicas(b)
                .cmp(&spec_replicas(a))
                .then_with(|| by_creation(b, a))
        }),
        // Largest first; ties oldest first.
        Ordering::Less => all.sort_by(|a, b| {
            spec_replicas(b)
                .cmp(&spec_replicas(a))
                .then_with(|| by_creation(a, b))
        }),
        Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
    for rs in &all {
        if to_add != 0 {
            let p = proportion(rs, d, to_add, added);
            sizes.push(spec_replicas(rs) + p);
            added += p;
        } else {
            sizes.push(spec_replicas(rs));
        }
    }
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
    }
    all.iter()
        .zip(sizes)
        .map(|(rs, n)| Scale {
            name: rs.name_any(),
            replicas: n,
        })
        .collect()
}

/// Whether a rollout's ReplicaSets disagree with the Deployment's size
/// (upstream's `isScalingEvent`): some active ReplicaSet's
/// `desired-replicas` annotation differs from `replicas`.
pub fn is_scaling_event(d: &Deployment, all: &[&ReplicaSet]) -> bool {
    let replicas = deploy_replicas(d);
    active(all.iter().copied())
        .into_iter()
        .filter_map(desired_annotation)
        .any(|n| n != replicas)
}

/// The old ReplicaSets to delete beyond `revisionHistoryLimit`: lowest
/// revisions first, only those fully scaled down and settled (upstream's
/// `cleanupDeployment`).
pub fn history_to_delete<'a>(d: &Deployment, old: &[&'a ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
        return Vec::new();
    };
    let mut alive: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    let diff = alive.len() as i64 - i64::from(limit);
    if diff <= 0 {
        return Vec::new();
    }
    alive.sort_by(|a, b| by_revision(a, b));
    alive
        .into_iter()
        .take(diff as usize)
        .filter(|r| {
            status_replicas(r) == 0
                && spec_replicas(r) == 0
                && r.metadata.generation.unwrap_or(0)
                    <= r.status
                        .as_ref()
                        .and_then(|s| s.observed_generation)
                        .unwrap_or(0)
        })
        .collect()
}

/// Whether pods of old ReplicaSets still run (upstream's
/// `oldPodsRunning`, for Recreate): any old ReplicaSet reports replicas, or
/// a pod controlled by one is neither Succeeded nor Failed.
pub fn old_pods_running(new_rs: Option<&ReplicaSet>, old: &[&ReplicaSet], pods: &[&Pod]) -> bool {
    if old.iter().map(|r| status_replicas(r)).sum::<i32>() > 0 {
        return true;
    }
    let old_uids: HashMap<&str, ()> = old
        .iter()
        .filter_map(|r| r.metadata.uid.as_deref().map(|u| (u, ())))
        .collect();
    let new_uid = new_rs.and_then(|r| r.metadata.uid.as_deref());
    pods.iter().any(|p| {
        let Some(owner) = controller_of(*p) else {
            return false;
        };
        if Some(owner.uid.as_str()) == new_uid || !old_uids.contains_key(owner.uid.as_str()) {
            return false;
        }
        !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        )
    })
}
