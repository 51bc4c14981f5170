//! Deployment helpers (upstream's `pkg/controller/deployment/util`):
//! annotations and revisions, the pod-template hash, surge and
//! unavailability fenceposts, ReplicaSet orderings and conditions.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The label (and selector term) that tells a Deployment's ReplicaSets
/// apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Upstream's bound on the revision-history annotation's length.
pub const MAX_REV_HISTORY_CHARS: usize = 2000;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const REASON_RS_UPDATED: &str = "ReplicaSetUpdated";
pub const REASON_RS_CREATE_ERROR: &str = "ReplicaSetCreateError";
pub const REASON_NEW_RS: &str = "NewReplicaSetCreated";
pub const REASON_FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const REASON_NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const REASON_TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const REASON_PAUSED: &str = "DeploymentPaused";
pub const REASON_RESUMED: &str = "DeploymentResumed";
pub const REASON_MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const REASON_MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Annotations never copied between a Deployment and its ReplicaSets.
pub fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS
    ) || key == "deprecated.deployment.rollback.to"
}

pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn ready_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn deploy_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// The revision a ReplicaSet carries (0 without or unparsable).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().map(revision).max().unwrap_or(0)
}

fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations().get(key)?.parse().ok()
}

pub fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation_i32(rs, DESIRED_REPLICAS)
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation_i32(rs, MAX_REPLICAS)
}

/// Oldest first, ties by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let t = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b))
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// Lowest revision first, ties oldest first (`ReplicaSetsByRevision`).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

/// Whether two pod templates are equal once the `pod-template-hash`
/// label is ignored (upstream's `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn strip(t: &PodTemplateSpec) -> PodTemplateSpec {
        let mut t = t.clone();
        let meta = t.metadata.get_or_insert_with(Default::default);
        if let Some(l) = meta.labels.as_mut() {
            l.remove(POD_TEMPLATE_HASH);
            if l.is_empty() {
                meta.labels = None;
            }
        }
        if meta.annotations.as_ref().is_some_and(|a| a.is_empty()) {
            meta.annotations = None;
        }
        t
    }
    strip(a) == strip(b)
}

/// 32-bit FNV-1a.
fn fnv1a(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Upstream's `rand.SafeEncodeString`: each character mapped into an
/// alphabet without vowels or look-alikes, so a hash never spells words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The pod-template hash (upstream's `ComputeHash`): FNV-1a over the
/// template's canonical JSON, then the collision count (little endian),
/// rendered in decimal through [`safe_encode`]. Stable for equal templates
/// and collision count; not bit-identical to upstream, whose input is Go's
/// object dump.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv1a(&bytes, 0x811c_9dc5);
    if let Some(c) = collision_count {
        h = fnv1a(&(c as u32).to_le_bytes(), h);
    }
    safe_encode(&h.to_string())
}

/// An int-or-percent scaled against `total` (upstream's
/// `GetScaledValueFromIntOrPercent`); percentages round up or down.
pub fn scaled_value(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let num = p * i64::from(total);
            let v = if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            };
            v as i32
        }
    }
}

fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

pub fn is_recreate(d: &Deployment) -> bool {
    !is_rolling(d)
}

/// Surge and unavailability for `desired` replicas (upstream's
/// `ResolveFenceposts`): surge rounds up, unavailability down, and both
/// zero make unavailability 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let surge = scaled_value(max_surge, desired, true);
    let mut unavailable = scaled_value(max_unavailable, desired, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let pct = IntOrString::String("25%".into());
    let surge = ru.map_or(Some(&pct), |r| r.max_surge.as_ref());
    let unavail = ru.map_or(Some(&pct), |r| r.max_unavailable.as_ref());
    resolve_fenceposts(surge, unavail, deploy_replicas(d))
}

/// How many pods above `replicas` a rolling update may run (0 otherwise).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// How many of `replicas` may be unavailable during a rolling update.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = deploy_replicas(d);
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

/// Sets the desired/max replicas annotations; whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.annotations_mut();
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    desired_annotation(rs) != Some(desired) || max_replicas_annotation(rs) != Some(max)
}

/// Brings a (new) ReplicaSet's annotations up to date (upstream's
/// `SetNewReplicaSetAnnotations`): the Deployment's annotations copied
/// (but for the skipped ones), the revision raised to `new_revision` when
/// lower — keeping the old one in `revision-history` — and, for a
/// ReplicaSet about to be created, the replicas annotations. Whether
/// anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let dann: BTreeMap<String, String> = d.annotations().clone();
    let a = rs.annotations_mut();
    for (k, v) in dann {
        if skip_copy(&k) || a.get(&k) == Some(&v) {
            continue;
        }
        a.insert(k, v);
        changed = true;
    }
    let old = a.get(REVISION).cloned();
    let old_num: i64 = old.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    if old_num < new_revision {
        a.insert(REVISION.into(), new_revision.to_string());
        changed = true;
    }
    if let Some(old) = old.filter(|_| changed) {
        if old_num < new_revision {
            let hist = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            let mut parts: Vec<&str> = hist.split(',').filter(|s| !s.is_empty()).collect();
            parts.push(&old);
            while parts.len() > 1 && parts.join(",").len() > MAX_REV_HISTORY_CHARS {
                parts.remove(0);
            }
            a.insert(REVISION_HISTORY.into(), parts.join(","));
        }
    }
    if !exists {
        let replicas = deploy_replicas(d);
        if set_replicas_annotations(rs, replicas, replicas + max_surge(d)) {
            changed = true;
        }
    }
    changed
}

pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream's `SetDeploymentCondition`: no change for the same status and
/// reason; the transition time kept when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// Whether the rollout is done: every replica updated and available and
/// the newest generation observed (upstream's `DeploymentComplete`).
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = deploy_replicas(d);
    s.updated_replicas.unwrap_or(0) == r
        && s.replicas.unwrap_or(0) == r
        && s.available_replicas.unwrap_or(0) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `new` shows progress over the Deployment's current status
/// (upstream's `DeploymentProgressing`).
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| v.unwrap_or(0);
    let old_old = g(old.replicas) - g(old.updated_replicas);
    let new_old = g(new.replicas) - g(new.updated_replicas);
    g(new.updated_replicas) > g(old.updated_replicas)
        || new_old < old_old
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

/// Whether the Progressing condition in `new` is past the deadline
/// (upstream's `DeploymentTimedOut`).
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(new, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(REASON_NEW_RS_AVAILABLE) => false,
        Some(REASON_TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0.as_second() + i64::from(deadline) < now.as_second()),
    }
}
