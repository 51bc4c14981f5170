//! The DaemonSet controller's decisions as pure functions of a snapshot
//! (the DaemonSet, all Nodes, the pods it controls, the current revision
//! hash and the time): which nodes should run a daemon pod, which pods to
//! create and delete (upstream `manage` / `podsShouldBeOnNode`), what the
//! rolling update does next (`rollingUpdate`, with and without surge) and
//! the status (`updateDaemonSetStatus`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rkube_api::scheduling::{
    find_untolerated_taint, is_do_not_schedule_taint, node_taints,
    pod_matches_node_selector_and_affinity,
};

use crate::util::{pod_is_available, pod_is_ready};

/// The pod label with the revision hash of the template a pod came from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The pod label with the DaemonSet's template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// The tolerations upstream adds to every daemon pod
/// (`AddOrUpdateDaemonPodTolerations`), as (key, effect).
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
/// Added for host-network pods only.
const NETWORK_UNAVAILABLE: (&str, &str) = ("node.kubernetes.io/network-unavailable", "NoSchedule");

/// Whether a toleration equals another in key, operator, value and effect
/// (upstream `Toleration.MatchToleration`).
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    let op = |t: &Toleration| t.operator.clone().unwrap_or_else(|| "Equal".into());
    a.key == b.key && op(a) == op(b) && a.value == b.value && a.effect == b.effect
}

/// Adds (or replaces, when one differs only in tolerationSeconds) the
/// daemon tolerations (`Exists`, no tolerationSeconds) to a pod spec.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network == Some(true);
    let wanted = DAEMON_TOLERATIONS
        .iter()
        .chain(host_network.then_some(&NETWORK_UNAVAILABLE));
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let t = Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".into()),
            effect: Some(effect.to_string()),
            ..Default::default()
        };
        match list.iter_mut().find(|x| same_toleration(x, &t)) {
            Some(x) => *x = t,
            None => list.push(t),
        }
    }
}

/// Pins a pod to `node` the way upstream does
/// (`ReplaceDaemonSetPodNodeNameNodeAffinity`): the required node affinity
/// becomes the single term `matchFields metadata.name In [node]`.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for: its `nodeName` or, before it is bound,
/// the node of its `matchFields metadata.name` affinity (upstream
/// `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.as_ref()?.iter().find_map(|r| {
            let values = r.values.as_deref()?;
            (r.key == "metadata.name" && r.operator == "In" && values.len() == 1)
                .then(|| values[0].clone())
        })
    })
}

/// Whether a node should run the daemon pod, and whether a pod already
/// there may keep running (upstream `NodeShouldRunDaemonPod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFit {
    pub should_run: bool,
    pub should_continue_running: bool,
}

/// The pod the DaemonSet would run on a node, for the predicates: the
/// template with the daemon tolerations.
fn template_pod(ds: &DaemonSet) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: Some(spec),
        status: None,
    }
}

/// Upstream `NodeShouldRunDaemonPod`: the template's nodeName (if any), node
/// selector and required node affinity must fit; a NoSchedule/NoExecute
/// taint the pod does not tolerate keeps new pods off, and only an
/// untolerated NoExecute taint evicts a running one.
pub fn node_fit(ds: &DaemonSet, node: &Node) -> NodeFit {
    node_fit_pod(&template_pod(ds), node)
}

fn node_fit_pod(pod: &Pod, node: &Node) -> NodeFit {
    let no = NodeFit {
        should_run: false,
        should_continue_running: false,
    };
    let name = node.name_any();
    let spec = pod.spec.as_ref();
    if spec
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return no;
    }
    if !pod_matches_node_selector_and_affinity(pod, node) {
        return no;
    }
    let tolerations = spec
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let taints = node_taints(node);
    if find_untolerated_taint(taints, tolerations, is_do_not_schedule_taint).is_some() {
        let evicting = find_untolerated_taint(taints, tolerations, |t| t.effect == "NoExecute");
        return NodeFit {
            should_run: false,
            should_continue_running: evicting.is_none(),
        };
    }
    NodeFit {
        should_run: true,
        should_continue_running: true,
    }
}

/// Everything one sync looks at.
pub struct Snapshot<'a> {
    pub ds: &'a DaemonSet,
    pub nodes: &'a [Arc<Node>],
    /// The pods the DaemonSet controls.
    pub pods: &'a [Arc<Pod>],
    /// The current revision's hash.
    pub hash: &'a str,
    pub now: Timestamp,
}

/// What a sync does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Nodes to create a daemon pod for.
    pub create_on: Vec<String>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// Pods for nodes that no longer exist, to delete at once (grace
    /// period 0, as the pod GC would: no kubelet is left to confirm).
    pub orphaned: Vec<String>,
    /// Failed pods being deleted, (pod, node), for the FailedDaemonPod
    /// event.
    pub failed: Vec<(String, String)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty() && self.orphaned.is_empty()
    }
}

impl Snapshot<'_> {
    fn min_ready_seconds(&self) -> i32 {
        self.ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn allows_surge(&self) -> bool {
        self.rolling_update_type() && self.surge_value().is_some_and(|v| v != 0)
    }

    fn rolling_update_type(&self) -> bool {
        self.ds
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            .unwrap_or("RollingUpdate")
            == "RollingUpdate"
    }

    fn rolling(&self) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
        self.ds
            .spec
            .as_ref()?
            .update_strategy
            .as_ref()?
            .rolling_update
            .as_ref()
    }

    /// maxSurge, for the "is surge on" question (a percentage counts as
    /// non-zero unless it is "0%").
    fn surge_value(&self) -> Option<i64> {
        match self.rolling()?.max_surge.as_ref()? {
            IntOrString::Int(i) => Some(i64::from(*i)),
            IntOrString::String(s) => Some(s.trim_end_matches('%').parse().unwrap_or(0)),
        }
    }

    /// The pods of each node (by target node), every controlled pod.
    pub fn pods_by_node(&self) -> (BTreeMap<String, Vec<&Pod>>, Vec<&Pod>) {
        let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        let mut nowhere = Vec::new();
        for p in self.pods {
            match target_node(p) {
                Some(n) => by_node.entry(n).or_default().push(p),
                None => nowhere.push(&**p),
            }
        }
        for pods in by_node.values_mut() {
            pods.sort_by(|a, b| pod_order(a, b));
        }
        (by_node, nowhere)
    }

    /// Which nodes should run a pod, by name.
    pub fn fits(&self) -> BTreeMap<String, NodeFit> {
        let pod = template_pod(self.ds);
        self.nodes
            .iter()
            .map(|n| (n.name_any(), node_fit_pod(&pod, n)))
            .collect()
    }

    fn generation(&self) -> i64 {
        self.ds.metadata.generation.unwrap_or(0)
    }

    /// Whether a pod is of the current template (upstream `IsPodUpdated`:
    /// its template generation or its hash matches).
    pub fn is_updated(&self, pod: &Pod) -> bool {
        let labels = pod.labels();
        labels.get(TEMPLATE_GENERATION_LABEL) == Some(&self.generation().to_string())
            || labels.get(REVISION_HASH_LABEL).map(String::as_str) == Some(self.hash)
    }

    fn is_new(&self, pod: &Pod) -> bool {
        pod.labels().get(REVISION_HASH_LABEL).map(String::as_str) == Some(self.hash)
    }

    fn available(&self, pod: &Pod) -> bool {
        pod_is_available(pod, self.min_ready_seconds(), self.now)
    }
}

/// Oldest first; among equally old ones, the one further along (Running
/// before Pending before unknown) first (upstream
/// `podByCreationTimestampAndPhase`).
fn pod_order(a: &Pod, b: &Pod) -> std::cmp::Ordering {
    let phase_rank = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => 0,
        Some("Pending") => 1,
        _ => 2,
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(a.name_any().cmp(&b.name_any()))
}

/// Whether the pod is being deleted.
fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Upstream `manage`: a pod for each node that should run one and has
/// none; failed and succeeded pods deleted (to be replaced); extra pods on
/// a node deleted (all but the oldest, or with surge the pair rule); every
/// pod on a node that must not run one deleted; and pods whose node does
/// not exist deleted (upstream leaves bound ones to the pod GC).
pub fn manage(s: &Snapshot) -> Plan {
    let mut plan = Plan::default();
    let (by_node, nowhere) = s.pods_by_node();
    let fits = s.fits();
    for (node, fit) in &fits {
        let pods = by_node.get(node);
        if fit.should_run && pods.is_none() {
            plan.create_on.push(node.clone());
        } else if fit.should_continue_running {
            let mut running: Vec<&Pod> = Vec::new();
            for p in pods.into_iter().flatten() {
                if deleting(p) {
                    continue;
                }
                match phase(p) {
                    Some("Failed") => {
                        plan.failed.push((p.name_any(), node.clone()));
                        plan.delete.push(p.name_any());
                    }
                    Some("Succeeded") => plan.delete.push(p.name_any()),
                    _ => running.push(p),
                }
            }
            if running.len() <= 1 {
                continue;
            }
            if !s.allows_surge() {
                plan.delete
                    .extend(running[1..].iter().map(|p| p.name_any()));
                continue;
            }
            // With surge, an old and a new pod may coexist while the new
            // one is not ready and the old one is.
            let mut oldest_new: Option<&Pod> = None;
            let mut oldest_old: Option<&Pod> = None;
            for p in running {
                let slot = if s.is_new(p) {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(p);
                } else {
                    plan.delete.push(p.name_any());
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if !pod_is_ready(old) || pod_is_ready(new) {
                    plan.delete.push(old.name_any());
                }
            }
        } else if let Some(pods) = pods {
            plan.delete
                .extend(pods.iter().filter(|p| !deleting(p)).map(|p| p.name_any()));
        }
    }
    // Pods for nodes that do not exist (or for no node at all); those
    // already being deleted too, since no kubelet will finish that.
    for (node, pods) in &by_node {
        if !fits.contains_key(node) {
            plan.orphaned.extend(pods.iter().map(|p| p.name_any()));
        }
    }
    plan.orphaned.extend(nowhere.iter().map(|p| p.name_any()));
    dedup(&mut plan.delete);
    plan
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

/// Upstream's scaled int-or-percent (rounding up).
pub fn scaled(v: Option<&IntOrString>, total: i32) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let total = i64::from(total);
            i32::try_from((pct * total + 99) / 100).unwrap_or(i32::MAX)
        }
    }
}

/// The new and the old pod on a node, ignoring pods being deleted; `None`
/// when there are several of either (upstream `findUpdatedPodsOnNode`).
fn new_and_old<'p>(s: &Snapshot, pods: &[&'p Pod]) -> Option<(Option<&'p Pod>, Option<&'p Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods {
        if deleting(p) {
            continue;
        }
        let slot = if s.is_updated(p) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*p);
    }
    Some((new, old))
}

/// The surge and unavailability budgets of a rolling update, scaled on the
/// desired number of pods (1 unavailable when both come out 0).
pub fn budgets(s: &Snapshot, desired: i32) -> (i32, i32) {
    let r = s.rolling();
    let mut max_unavailable = scaled(r.and_then(|r| r.max_unavailable.as_ref()), desired);
    let max_surge = scaled(r.and_then(|r| r.max_surge.as_ref()), desired);
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    (max_unavailable, max_surge)
}

/// Upstream `rollingUpdate`: the next step of replacing old pods. Without
/// surge, old pods are deleted (the manage step then creates new ones)
/// while at most maxUnavailable nodes lack an available new pod, unavailable
/// old pods first; with surge, new pods are created next to available old
/// ones (at most maxSurge at a time) and an old pod is deleted once its
/// replacement is available.
pub fn rolling_update(s: &Snapshot) -> Plan {
    let mut plan = Plan::default();
    if !s.rolling_update_type() {
        return plan;
    }
    let fits = s.fits();
    let desired = fits.values().filter(|f| f.should_run).count() as i32;
    let (max_unavailable, max_surge) = budgets(s, desired);
    let (by_node, _) = s.pods_by_node();
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for pods in by_node.values() {
            match new_and_old(s, pods) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !s.available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !s.available(old) {
                        replace.push(old.name_any());
                    } else if unavailable < max_unavailable {
                        candidates.push(old.name_any());
                    }
                }
            }
        }
        let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
        candidates.truncate(room);
        plan.delete = replace;
        plan.delete.extend(candidates);
        return plan;
    }
    let mut surging = 0;
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    for (node, pods) in &by_node {
        match new_and_old(s, pods) {
            None => surging += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) => {
                if !s.available(old) {
                    if fits.get(node).is_some_and(|f| f.should_run) {
                        allowed.push(node.clone());
                    } else {
                        plan.delete.push(old.name_any());
                    }
                } else if surging < max_surge {
                    candidates.push(node.clone());
                }
            }
            Some((Some(new), Some(old))) => {
                if s.available(new) {
                    plan.delete.push(old.name_any());
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = usize::try_from((max_surge - surging).max(0)).unwrap_or(0);
    candidates.truncate(room);
    plan.create_on = allowed;
    plan.create_on.extend(candidates);
    plan
}

/// Upstream `updateDaemonSetStatus`'s counts (collisionCount and
/// observedGeneration are the caller's).
pub fn status(s: &Snapshot) -> DaemonSetStatus {
    let (by_node, _) = s.pods_by_node();
    let mut st = DaemonSetStatus::default();
    let (mut available, mut updated) = (0, 0);
    for (node, fit) in s.fits() {
        let pods = by_node.get(&node).filter(|p| !p.is_empty());
        if !fit.should_run {
            if pods.is_some() {
                st.number_misscheduled += 1;
            }
            continue;
        }
        st.desired_number_scheduled += 1;
        let Some(pods) = pods else { continue };
        st.current_number_scheduled += 1;
        let pod = pods[0];
        if pod_is_ready(pod) {
            st.number_ready += 1;
            if s.available(pod) {
                available += 1;
            }
        }
        if s.is_updated(pod) {
            updated += 1;
        }
    }
    // These three are `omitempty` upstream: absent when zero.
    let nonzero = |n: i32| (n != 0).then_some(n);
    st.number_available = nonzero(available);
    st.updated_number_scheduled = nonzero(updated);
    st.number_unavailable = nonzero(st.desired_number_scheduled - available);
    st
}
