//! The status a Deployment reports, as pure functions (upstream's
//! `calculateStatus`, `syncRolloutStatus`, `checkPausedConditions`,
//! `requeueStuckDeployment` and `getReplicaFailures`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::rolling::sum_spec;
use super::util::*;

/// The counts and Available condition over `all` ReplicaSets (upstream's
/// `calculateStatus`); other conditions are carried over.
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let available: i32 = all.iter().map(|r| available_replicas(r)).sum();
    let total = sum_spec(all.iter().copied());
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|r| status_replicas(r)).sum()),
        updated_replicas: Some(new_rs.map(status_replicas).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|r| ready_replicas(r)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let cond = if available >= deploy_replicas(d) - max_unavailable(d) {
        new_condition(
            AVAILABLE,
            "True",
            REASON_MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            REASON_MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut s, cond);
    s
}

/// The ReplicaFailure condition of the new ReplicaSet, else of an old
/// one, as a Deployment condition (upstream's `getReplicaFailures`).
fn replica_failure(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<DeploymentCondition> {
    let of = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: c.last_transition_time.clone(),
                last_update_time: c.last_transition_time.clone(),
            })
    };
    new_rs.and_then(of).or_else(|| {
        all.iter()
            .filter(|r| Some(r.name_any()) != new_rs.map(|n| n.name_any()))
            .find_map(|r| of(r))
    })
}

/// The status a rollout step reports (upstream's `syncRolloutStatus`):
/// [`calculate_status`] plus the Progressing condition — NewReplicaSet-
/// Available once complete, ReplicaSetUpdated (fresh lastUpdateTime) on
/// progress, ProgressDeadlineExceeded past the deadline — and the
/// ReplicaFailure condition of the ReplicaSets.
pub fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut s = calculate_status(d, all, new_rs, now);
    if progress_deadline(d).is_none() {
        remove_condition(&mut s, PROGRESSING);
    }
    let cur = d
        .status
        .as_ref()
        .and_then(|st| get_condition(st, PROGRESSING))
        .cloned();
    let complete_already = s.replicas == s.updated_replicas
        && cur.as_ref().and_then(|c| c.reason.as_deref()) == Some(REASON_NEW_RS_AVAILABLE);
    let what = |verb: &str| match new_rs {
        Some(rs) => format!("ReplicaSet \"{}\" {verb}", rs.name_any()),
        None => format!("Deployment \"{}\" {verb}", d.name_any()),
    };
    if progress_deadline(d).is_some() && !complete_already {
        if deployment_complete(d, &s) {
            let c = new_condition(
                PROGRESSING,
                "True",
                REASON_NEW_RS_AVAILABLE,
                what("has successfully progressed."),
                now,
            );
            set_condition(&mut s, c);
        } else if deployment_progressing(d, &s) {
            let mut c = new_condition(
                PROGRESSING,
                "True",
                REASON_RS_UPDATED,
                what("is progressing."),
                now,
            );
            if let Some(cur) = &cur {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut s, PROGRESSING);
            }
            set_condition(&mut s, c);
        } else if deployment_timed_out(d, &s, now) {
            let c = new_condition(
                PROGRESSING,
                "False",
                REASON_TIMED_OUT,
                what("has timed out progressing."),
                now,
            );
            set_condition(&mut s, c);
        }
    }
    match replica_failure(all, new_rs) {
        Some(c) => set_condition(&mut s, c),
        None => remove_condition(&mut s, REPLICA_FAILURE),
    }
    normalize(&mut s);
    s
}

/// Empty condition lists are absent.
pub fn normalize(s: &mut DeploymentStatus) {
    if s.conditions.as_ref().is_some_and(|c| c.is_empty()) {
        s.conditions = None;
    }
}

/// When to look at a rollout again to notice it missed its progress
/// deadline (upstream's `requeueStuckDeployment`).
pub fn requeue_stuck(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let cur = get_condition(d.status.as_ref()?, PROGRESSING)?;
    if deployment_complete(d, new) || cur.reason.as_deref() == Some(REASON_TIMED_OUT) {
        return None;
    }
    let from = cur.last_update_time.as_ref()?.0.as_second();
    let after = from + i64::from(deadline) - now.as_second();
    if after < 1 {
        Some(Duration::from_millis(500))
    } else {
        Some(Duration::from_secs(after as u64 + 1))
    }
}

/// The status with the Progressing condition a pause or resume calls
/// for, if it changes (upstream's `checkPausedConditions`): Unknown with
/// DeploymentPaused "Deployment is paused" / DeploymentResumed
/// "Deployment is resumed"; nothing once the deadline was exceeded.
pub fn paused_status(d: &Deployment, now: Timestamp) -> Option<DeploymentStatus> {
    progress_deadline(d)?;
    let mut s = d.status.clone().unwrap_or_default();
    let cond = get_condition(&s, PROGRESSING);
    if cond.and_then(|c| c.reason.as_deref()) == Some(REASON_TIMED_OUT) {
        return None;
    }
    let paused_cond = cond.and_then(|c| c.reason.as_deref()) == Some(REASON_PAUSED);
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let c = if paused && !paused_cond {
        new_condition(
            PROGRESSING,
            "Unknown",
            REASON_PAUSED,
            "Deployment is paused".into(),
            now,
        )
    } else if !paused && paused_cond {
        new_condition(
            PROGRESSING,
            "Unknown",
            REASON_RESUMED,
            "Deployment is resumed".into(),
            now,
        )
    } else {
        return None;
    };
    set_condition(&mut s, c);
    Some(s)
}
