//! Pure node-health rules: when a node counts as silent, how its
//! conditions are marked Unknown, and which taints its conditions call for
//! (upstream `tryUpdateNodeHealth`, `doNoScheduleTaintingPass` and the
//! NoExecute taint templates).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The taint of a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a cordoned node (`spec.unschedulable`).
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// The NoSchedule taint keys this controller owns.
const NO_SCHEDULE_KEYS: [&str; 7] = [
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    TAINT_MEMORY_PRESSURE,
    TAINT_DISK_PRESSURE,
    TAINT_PID_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
];

/// The NoExecute taint keys this controller owns.
const NO_EXECUTE_KEYS: [&str; 2] = [TAINT_NOT_READY, TAINT_UNREACHABLE];

/// The conditions a silent node gets marked Unknown (upstream
/// `nodeConditionTypes` plus Ready).
pub const MARKED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The reason and message of a condition marked Unknown.
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
/// The reason and message of a condition the kubelet never posted.
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
pub const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// A node's Ready condition as this controller reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Readiness {
    /// No Ready condition yet.
    Missing,
    True,
    False,
    Unknown,
}

impl Readiness {
    pub fn is_ready(self) -> bool {
        self == Readiness::True
    }
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The node's Ready condition.
pub fn readiness(node: &Node) -> Readiness {
    match condition(node, "Ready").map(|c| c.status.as_str()) {
        None => Readiness::Missing,
        Some("True") => Readiness::True,
        Some("False") => Readiness::False,
        Some(_) => Readiness::Unknown,
    }
}

/// The latest sign of life: the Lease's renewTime or the Ready condition's
/// lastHeartbeatTime, whichever is later.
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let from_status = condition(node, "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let from_lease = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    from_status.max(from_lease)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// Whether the node has been silent too long: past `grace` since its last
/// heartbeat, or, if it never posted a Ready condition, past
/// `startup_grace` since it was created (upstream uses
/// `--node-startup-grace-period` there). A node with neither a heartbeat
/// nor a creation time is given the benefit of the doubt.
pub fn is_silent(
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    grace: Duration,
    startup_grace: Duration,
) -> bool {
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if readiness(node) == Readiness::Missing {
        let since = last_heartbeat(node, lease).max(created);
        let g = if last_heartbeat(node, lease).is_some() {
            grace
        } else {
            startup_grace
        };
        return since.is_some_and(|s| now > plus(s, g));
    }
    last_heartbeat(node, lease)
        .or(created)
        .is_some_and(|s| now > plus(s, grace))
}

/// The conditions of a silent node with Ready, MemoryPressure, DiskPressure
/// and PIDPressure marked Unknown (missing ones added as never updated);
/// `None` when they all are Unknown already.
pub fn mark_unknown(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conds: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in MARKED_CONDITIONS {
        match conds.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_UNKNOWN.into());
                c.message = Some(MESSAGE_UNKNOWN.into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conds.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NEVER_UPDATED.into()),
                    message: Some(MESSAGE_NEVER_UPDATED.into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conds)
}

/// The NoSchedule taints the node's conditions and `spec.unschedulable`
/// call for (upstream TaintNodesByCondition).
pub fn wanted_no_schedule(node: &Node) -> BTreeSet<&'static str> {
    let mut keys = BTreeSet::new();
    match readiness(node) {
        Readiness::False => {
            keys.insert(TAINT_NOT_READY);
        }
        Readiness::Unknown => {
            keys.insert(TAINT_UNREACHABLE);
        }
        Readiness::True | Readiness::Missing => {}
    }
    for (type_, key) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ] {
        if condition(node, type_).is_some_and(|c| c.status == "True") {
            keys.insert(key);
        }
    }
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        keys.insert(TAINT_UNSCHEDULABLE);
    }
    keys
}

/// The NoExecute taint the Ready condition calls for.
pub fn wanted_no_execute(r: Readiness) -> Option<&'static str> {
    match r {
        Readiness::False => Some(TAINT_NOT_READY),
        Readiness::Unknown => Some(TAINT_UNREACHABLE),
        Readiness::True | Readiness::Missing => None,
    }
}

/// The controller-owned NoExecute taint the node carries.
pub fn current_no_execute(taints: &[Taint]) -> Option<&'static str> {
    NO_EXECUTE_KEYS.into_iter().find(|k| {
        taints
            .iter()
            .any(|t| t.key == *k && t.effect == "NoExecute")
    })
}

/// What to do about a node's NoExecute taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoExecuteStep {
    /// As it should be.
    Keep,
    /// Recovered: remove it at once.
    Remove,
    /// Swap not-ready for unreachable or back, at once.
    Swap(&'static str),
    /// Newly unhealthy: add it, when the zone's rate limiter allows.
    Add(&'static str),
}

/// Compares the wanted NoExecute taint with the current one.
pub fn no_execute_step(
    wanted: Option<&'static str>,
    current: Option<&'static str>,
) -> NoExecuteStep {
    match (wanted, current) {
        (None, None) => NoExecuteStep::Keep,
        (None, Some(_)) => NoExecuteStep::Remove,
        (Some(w), Some(c)) if w == c => NoExecuteStep::Keep,
        (Some(w), Some(_)) => NoExecuteStep::Swap(w),
        (Some(w), None) => NoExecuteStep::Add(w),
    }
}

/// The node's taints with the controller-owned ones replaced: NoSchedule
/// taints exactly `no_schedule`, NoExecute taint `no_execute`. Kept taints
/// keep their timeAdded; added ones get `now`. `None` if nothing changes.
pub fn reconcile_taints(
    current: &[Taint],
    no_schedule: &BTreeSet<&'static str>,
    no_execute: Option<&'static str>,
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let owned = |t: &Taint| match t.effect.as_str() {
        "NoSchedule" => NO_SCHEDULE_KEYS.contains(&t.key.as_str()),
        "NoExecute" => NO_EXECUTE_KEYS.contains(&t.key.as_str()),
        _ => false,
    };
    let wanted = |t: &Taint| match t.effect.as_str() {
        "NoSchedule" => no_schedule.contains(t.key.as_str()),
        "NoExecute" => no_execute == Some(t.key.as_str()),
        _ => false,
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !owned(t) || wanted(t))
        .cloned()
        .collect();
    let mut add = |key: &str, effect: &str| {
        if !out.iter().any(|t| t.key == key && t.effect == effect) {
            out.push(Taint {
                key: key.into(),
                effect: effect.into(),
                value: None,
                time_added: Some(Time(now)),
            });
        }
    };
    for k in no_schedule {
        add(k, "NoSchedule");
    }
    if let Some(k) = no_execute {
        add(k, "NoExecute");
    }
    (out.as_slice() != current).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn cond(type_: &str, status: &str, hb: i64) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some("Kubelet".into()),
            last_heartbeat_time: Some(Time(ts(hb))),
            last_transition_time: Some(Time(ts(0))),
            ..Default::default()
        }
    }

    fn node(conds: Vec<NodeCondition>) -> Node {
        let mut n = Node {
            status: Some(NodeStatus {
                conditions: Some(conds),
                ..Default::default()
            }),
            ..Default::default()
        };
        n.metadata.creation_timestamp = Some(Time(ts(0)));
        n
    }

    fn lease(renew: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(ts(renew))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const G: Duration = Duration::from_secs(40);
    const SG: Duration = Duration::from_secs(60);

    #[test]
    fn silence_counts_from_the_later_of_lease_and_status() {
        let n = node(vec![cond("Ready", "True", 100)]);
        assert!(!is_silent(&n, None, ts(140), G, SG));
        assert!(is_silent(&n, None, ts(141), G, SG));
        // A fresh lease keeps the node alive though its status is old.
        assert!(!is_silent(&n, Some(&lease(130)), ts(160), G, SG));
        assert!(is_silent(&n, Some(&lease(130)), ts(171), G, SG));
        // Never posted status: the startup grace from creation applies.
        let fresh = node(vec![]);
        assert!(!is_silent(&fresh, None, ts(59), G, SG));
        assert!(is_silent(&fresh, None, ts(61), G, SG));
    }

    #[test]
    fn marking_unknown_keeps_heartbeats_and_adds_missing() {
        let n = node(vec![
            cond("Ready", "True", 100),
            cond("MemoryPressure", "False", 100),
        ]);
        let c = mark_unknown(&n, ts(200)).unwrap();
        assert_eq!(c.len(), 4);
        let ready = c.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some(REASON_UNKNOWN));
        assert_eq!(ready.message.as_deref(), Some(MESSAGE_UNKNOWN));
        assert_eq!(ready.last_heartbeat_time, Some(Time(ts(100))));
        assert_eq!(ready.last_transition_time, Some(Time(ts(200))));
        let pid = c.iter().find(|c| c.type_ == "PIDPressure").unwrap();
        assert_eq!(pid.reason.as_deref(), Some(REASON_NEVER_UPDATED));
        // Marking again changes nothing.
        assert!(mark_unknown(&node(c), ts(300)).is_none());
    }

    #[test]
    fn no_schedule_taints_follow_conditions_and_cordon() {
        let mut n = node(vec![
            cond("Ready", "False", 1),
            cond("DiskPressure", "True", 1),
        ]);
        n.spec = Some(NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        let want: Vec<_> = wanted_no_schedule(&n).into_iter().collect();
        assert_eq!(
            want,
            vec![TAINT_DISK_PRESSURE, TAINT_NOT_READY, TAINT_UNSCHEDULABLE]
        );
        let unknown = node(vec![cond("Ready", "Unknown", 1)]);
        assert!(wanted_no_schedule(&unknown).contains(TAINT_UNREACHABLE));
        assert!(wanted_no_schedule(&node(vec![cond("Ready", "True", 1)])).is_empty());
    }

    #[test]
    fn no_execute_steps() {
        use NoExecuteStep::*;
        assert_eq!(no_execute_step(None, None), Keep);
        assert_eq!(no_execute_step(None, Some(TAINT_UNREACHABLE)), Remove);
        assert_eq!(
            no_execute_step(Some(TAINT_UNREACHABLE), None),
            Add(TAINT_UNREACHABLE)
        );
        assert_eq!(
            no_execute_step(Some(TAINT_NOT_READY), Some(TAINT_UNREACHABLE)),
            Swap(TAINT_NOT_READY)
        );
        assert_eq!(
            no_execute_step(Some(TAINT_NOT_READY), Some(TAINT_NOT_READY)),
            Keep
        );
        assert_eq!(
            wanted_no_execute(Readiness::Unknown),
            Some(TAINT_UNREACHABLE)
        );
        assert_eq!(wanted_no_execute(Readiness::Missing), None);
    }

    #[test]
    fn taints_are_reconciled_keeping_foreign_ones() {
        let foreign = Taint {
            key: "dedicated".into(),
            effect: "NoExecute".into(),
            value: Some("x".into()),
            time_added: None,
        };
        let old_unreach = Taint {
            key: TAINT_UNREACHABLE.into(),
            effect: "NoExecute".into(),
            value: None,
            time_added: Some(Time(ts(5))),
        };
        let current = vec![foreign.clone(), old_unreach.clone()];
        // Unchanged: nothing to write, timeAdded kept.
        let ns = BTreeSet::new();
        assert!(reconcile_taints(&current, &ns, Some(TAINT_UNREACHABLE), ts(9)).is_none());
        // Swap to not-ready, add the NoSchedule variant.
        let ns = BTreeSet::from([TAINT_NOT_READY]);
        let out = reconcile_taints(&current, &ns, Some(TAINT_NOT_READY), ts(9)).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], foreign);
        assert!(out.iter().any(|t| t.key == TAINT_NOT_READY
            && t.effect == "NoExecute"
            && t.time_added == Some(Time(ts(9)))));
        assert!(out
            .iter()
            .any(|t| t.key == TAINT_NOT_READY && t.effect == "NoSchedule"));
        // Recovery removes everything owned.
        let out = reconcile_taints(&current, &BTreeSet::new(), None, ts(9)).unwrap();
        assert_eq!(out, vec![foreign]);
        assert_eq!(current_no_execute(&[old_unreach]), Some(TAINT_UNREACHABLE));
    }
}
