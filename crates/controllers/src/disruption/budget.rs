//! The PodDisruptionBudget arithmetic (upstream `getExpectedPodCount`,
//! `countHealthyPods`, `buildDisruptedPodMap`, `updatePdbStatus`), pure
//! over snapshots.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::util::{controller_of, pod_is_ready};

/// How long an eviction stays in `disruptedPods` waiting for the pod's
/// deletion to be seen (upstream `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The condition type and its reasons.
pub const CONDITION: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    #[error("invalid value {0:?} for IntOrString: {1}")]
    BadPercentage(String, String),
    #[error("found no controllers for pod {0:?}")]
    NoController(String),
}

/// An int, or a percentage of `total` rounded up (upstream
/// `GetScaledValueFromIntOrPercent` with `roundUp`).
pub fn scaled(v: &IntOrString, total: i32) -> Result<i32, BudgetError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let p = s.strip_suffix('%').ok_or(BudgetError::NotAPercentage)?;
            let p: i64 = p.parse().map_err(|e: std::num::ParseIntError| {
                BudgetError::BadPercentage(s.clone(), e.to_string())
            })?;
            Ok((p as f64 * f64::from(total) / 100.0).ceil() as i32)
        }
    }
}

/// Whether the budget's expected count comes from the pods' controllers'
/// scale (maxUnavailable, or a percentage minAvailable) rather than from
/// the number of pods.
pub fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let spec = pdb.spec.as_ref();
    spec.and_then(|s| s.max_unavailable.as_ref()).is_some()
        || matches!(
            spec.and_then(|s| s.min_available.as_ref()),
            Some(IntOrString::String(_))
        )
}

/// The pods' controllers' total scale: each controller (found by
/// `find`, which returns its identity and `spec.replicas`) counted once.
/// Pods without a controller are skipped and named in the second result.
pub fn expected_scale<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    find: impl Fn(&OwnerReference) -> Option<(String, i32)>,
) -> Result<(i32, Vec<String>), BudgetError> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(owner) = controller_of(pod) else {
            unmanaged.push(name);
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let (id, replicas) = find(owner).ok_or(BudgetError::NoController(name))?;
        scales.insert(owner.uid.clone(), 0);
        scales.insert(id, replicas);
    }
    Ok((scales.values().sum(), unmanaged))
}

/// Expected pods and desired healthy pods. `scale` is the controllers'
/// total scale, needed when [`needs_scale`].
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pod_count: i32,
    scale: i32,
) -> Result<(i32, i32), BudgetError> {
    let spec = pdb.spec.as_ref();
    if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let max = scaled(max, scale)?;
        return Ok((scale, (scale - max).max(0)));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(i)) => Ok((pod_count, *i)),
        Some(v @ IntOrString::String(_)) => Ok((scale, scaled(v, scale)?)),
        None => Ok((0, 0)),
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// The pods still in `disruptedPods`: evicted, not yet seen deleted, and
/// within [`DELETION_TIMEOUT`]. Also when to look again (the earliest
/// expiry), and the pods that overstayed (for a log line).
pub fn disrupted_pods(
    pods: &[&Pod],
    old: Option<&BTreeMap<String, Time>>,
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut expired = Vec::new();
    let Some(old) = old else {
        return (kept, None, expired);
    };
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(at) = old.get(&name) else {
            continue;
        };
        let expires = plus(at.0, DELETION_TIMEOUT);
        if expires < now {
            expired.push(name);
            continue;
        }
        recheck = Some(recheck.map_or(expires, |r| r.min(expires)));
        kept.insert(name, at.clone());
    }
    (kept, recheck, expired)
}

/// Ready pods that are neither being deleted nor just evicted.
pub fn current_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or("")))
        .filter(|p| pod_is_ready(p))
        .count() as i32
}

/// Sets the DisruptionAllowed condition (upstream
/// `UpdateDisruptionAllowedCondition` / `meta.SetStatusCondition`): the
/// transition time moves only when the status changes.
pub fn set_condition(
    conds: &mut Vec<Condition>,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    match conds.iter_mut().find(|c| c.type_ == CONDITION) {
        Some(c) => {
            if c.status != status {
                c.status = status.into();
                c.last_transition_time = Time(now);
            }
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = observed_generation;
        }
        None => conds.push(Condition {
            type_: CONDITION.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation,
            last_transition_time: Time(now),
        }),
    }
}

/// The budget's new status from the counts.
pub fn status(
    pdb: &PodDisruptionBudget,
    expected: i32,
    desired: i32,
    healthy: i32,
    disrupted: BTreeMap<String, Time>,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let old = pdb.status.clone().unwrap_or_default();
    let allowed = if expected <= 0 || healthy <= desired {
        0
    } else {
        healthy - desired
    };
    let mut conditions = old.conditions.unwrap_or_default();
    let (ok, reason) = if allowed > 0 {
        (true, SUFFICIENT_PODS)
    } else {
        (false, INSUFFICIENT_PODS)
    };
    set_condition(&mut conditions, ok, reason, "", None, now);
    PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: pdb.metadata.generation,
        conditions: Some(conditions),
    }
}

/// The status when the budget cannot be computed: no disruptions allowed,
/// condition False with reason SyncFailed and the error as message.
pub fn fail_safe(
    pdb: &PodDisruptionBudget,
    err: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut st = pdb.status.clone().unwrap_or_default();
    st.disruptions_allowed = 0;
    let mut conditions = st.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        false,
        SYNC_FAILED,
        err,
        st.observed_generation,
        now,
    );
    st.conditions = Some(conditions);
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn pod(name: &str, ready: bool, owner: Option<&str>) -> Pod {
        let mut p = Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.metadata.name = Some(name.into());
        if let Some(o) = owner {
            p.metadata.owner_references = Some(vec![OwnerReference {
                kind: "ReplicaSet".into(),
                name: o.into(),
                uid: format!("uid-{o}"),
                controller: Some(true),
                ..Default::default()
            }]);
        }
        p
    }

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        let mut b = PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                ..Default::default()
            }),
            ..Default::default()
        };
        b.metadata.generation = Some(3);
        b
    }

    #[test]
    fn scaling_rounds_percentages_up() {
        assert_eq!(scaled(&IntOrString::Int(2), 10), Ok(2));
        assert_eq!(scaled(&IntOrString::String("50%".into()), 5), Ok(3));
        assert_eq!(scaled(&IntOrString::String("10%".into()), 10), Ok(1));
        assert_eq!(scaled(&IntOrString::String("0%".into()), 10), Ok(0));
        assert_eq!(
            scaled(&IntOrString::String("5".into()), 10),
            Err(BudgetError::NotAPercentage)
        );
    }

    #[test]
    fn expected_and_desired_per_spec() {
        let int_min = pdb(Some(IntOrString::Int(2)), None);
        assert!(!needs_scale(&int_min));
        assert_eq!(expected_and_desired(&int_min, 3, 0), Ok((3, 2)));
        let pct_min = pdb(Some(IntOrString::String("50%".into())), None);
        assert!(needs_scale(&pct_min));
        assert_eq!(expected_and_desired(&pct_min, 3, 5), Ok((5, 3)));
        let max = pdb(None, Some(IntOrString::Int(1)));
        assert!(needs_scale(&max));
        assert_eq!(expected_and_desired(&max, 3, 4), Ok((4, 3)));
        let max_pct = pdb(None, Some(IntOrString::String("30%".into())));
        assert_eq!(expected_and_desired(&max_pct, 3, 10), Ok((10, 7)));
        // More unavailable allowed than expected: desired 0.
        let big = pdb(None, Some(IntOrString::Int(20)));
        assert_eq!(expected_and_desired(&big, 3, 4), Ok((4, 0)));
        assert_eq!(expected_and_desired(&pdb(None, None), 3, 4), Ok((0, 0)));
    }

    #[test]
    fn scale_counts_each_controller_once() {
        let pods = [
            pod("a", true, Some("rs1")),
            pod("b", true, Some("rs1")),
            pod("c", true, Some("rs2")),
            pod("d", true, None),
        ];
        let find = |o: &OwnerReference| match o.name.as_str() {
            "rs1" => Some(("uid-rs1".to_string(), 3)),
            "rs2" => Some(("uid-rs2".to_string(), 2)),
            _ => None,
        };
        let (scale, unmanaged) = expected_scale(pods.iter(), find).unwrap();
        assert_eq!(scale, 5);
        assert_eq!(unmanaged, vec!["d".to_string()]);
        let gone = [pod("x", true, Some("rs9"))];
        assert_eq!(
            expected_scale(gone.iter(), find),
            Err(BudgetError::NoController("x".into()))
        );
    }

    #[test]
    fn status_counts_ready_pods_minus_disrupted() {
        let pods = [
            pod("a", true, None),
            pod("b", true, None),
            pod("c", false, None),
            pod("d", true, None),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let old = BTreeMap::from([
            ("d".to_string(), Time(ts(1000))),
            ("zz".to_string(), Time(ts(1000))),
            ("b".to_string(), Time(ts(0))),
        ]);
        let (kept, recheck, expired) = disrupted_pods(&refs, Some(&old), ts(1010));
        // d is recent; b's eviction expired; zz is gone.
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["d"]);
        assert_eq!(recheck, Some(ts(1120)));
        assert_eq!(expired, vec!["b".to_string()]);
        let healthy = current_healthy(&refs, &kept);
        assert_eq!(healthy, 2);
        let b = pdb(Some(IntOrString::Int(1)), None);
        let st = status(&b, 4, 1, healthy, kept, ts(1010));
        assert_eq!(st.disruptions_allowed, 1);
        assert_eq!(st.observed_generation, Some(3));
        let c = &st.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", SUFFICIENT_PODS)
        );
        let st0 = status(&b, 4, 2, 2, BTreeMap::new(), ts(1010));
        assert_eq!(st0.disruptions_allowed, 0);
        assert_eq!(st0.disrupted_pods, None);
        let c = &st0.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", INSUFFICIENT_PODS)
        );
        // No expected pods: nothing allowed.
        assert_eq!(
            status(&b, 0, 0, 2, BTreeMap::new(), ts(0)).disruptions_allowed,
            0
        );
    }

    #[test]
    fn condition_transition_time_moves_only_on_change() {
        let mut c = Vec::new();
        set_condition(&mut c, false, INSUFFICIENT_PODS, "", None, ts(1));
        set_condition(&mut c, false, INSUFFICIENT_PODS, "", None, ts(2));
        assert_eq!(c[0].last_transition_time, Time(ts(1)));
        set_condition(&mut c, true, SUFFICIENT_PODS, "", None, ts(3));
        assert_eq!(c[0].last_transition_time, Time(ts(3)));
        let mut b = pdb(Some(IntOrString::Int(1)), None);
        b.status = Some(PodDisruptionBudgetStatus {
            disruptions_allowed: 2,
            conditions: Some(c),
            ..Default::default()
        });
        let fs = fail_safe(&b, "boom", ts(4));
        assert_eq!(fs.disruptions_allowed, 0);
        let c = &fs.conditions.unwrap()[0];
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            (SYNC_FAILED, "boom")
        );
    }
}
