//! What the `scheduler` scenario's watches keep: per node whether it is
//! Ready; per pod (init pods `i-k`, measured pods `m-k`) when it was first
//! seen, when it was first seen bound (`spec.nodeName`) and to which node,
//! Running, reported unschedulable (PodScheduled=False) or deleted. From
//! that: throughput per second, scheduling lag, and the workloads' checks.

use std::collections::HashMap;
use std::time::Instant;

use serde::Deserialize;

use crate::sim_nodes::{index_of, Change, Obj, Tracker};
use crate::stats::{ms, nanos, thousands, Summary};

/// A node `{prefix}i` that is no node of the run (a churn node).
const OTHER_NODE: u32 = u32::MAX;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Condition {
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NodeStatus {
    conditions: Option<Vec<Condition>>,
}

/// Which of the nodes `{prefix}0..n` are Ready.
pub struct Nodes {
    prefix: String,
    ready: Vec<bool>,
    pub ready_count: usize,
    pub last_progress: Instant,
}

impl Nodes {
    pub fn new(n: usize, prefix: &str) -> Nodes {
        Nodes {
            prefix: prefix.to_string(),
            ready: vec![false; n],
            ready_count: 0,
            last_progress: Instant::now(),
        }
    }
}

impl Tracker for Nodes {
    type Spec = serde::de::IgnoredAny;
    type Status = NodeStatus;

    fn apply(&mut self, obj: Obj<Self::Spec, NodeStatus>, change: Change, now: Instant) {
        let Some(i) = index_of(obj.metadata.name.as_deref(), &self.prefix, self.ready.len()) else {
            return;
        };
        let ready = change != Change::Deleted
            && obj
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.kind.as_deref() == Some("Ready") && c.status.as_deref() == Some("True"));
        if ready != self.ready[i] {
            self.ready[i] = ready;
            if ready {
                self.ready_count += 1;
            } else {
                self.ready_count -= 1;
            }
            self.last_progress = now;
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PodSpec {
    #[serde(rename = "nodeName")]
    node_name: Option<String>,
    priority: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PodStatus {
    phase: Option<String>,
    conditions: Option<Vec<Condition>>,
}

/// One set of pods `{prefix}0..n`.
pub struct Group {
    pub seen: usize,
    pub bound: usize,
    pub running: usize,
    /// Reported PodScheduled=False/Unschedulable.
    pub reported: usize,
    pub deleted: u64,
    /// Seen bound to one node, later to another.
    pub rebound: u64,
    /// First seen without `spec.priority`.
    pub no_priority: u64,
    node: Vec<Option<u32>>,
    running_flag: Vec<bool>,
    reported_flag: Vec<bool>,
    deleted_flag: Vec<bool>,
    added_at: Vec<Option<Instant>>,
    bound_at: Vec<Option<Instant>>,
    pub last_bound_at: Option<Instant>,
}

impl Group {
    fn new(n: usize) -> Group {
        Group {
            seen: 0,
            bound: 0,
            running: 0,
            reported: 0,
            deleted: 0,
            rebound: 0,
            no_priority: 0,
            node: vec![None; n],
            running_flag: vec![false; n],
            reported_flag: vec![false; n],
            deleted_flag: vec![false; n],
            added_at: vec![None; n],
            bound_at: vec![None; n],
            last_bound_at: None,
        }
    }

    /// Pods bound per second since `t0`: "per second: median 2,010, min
    /// 1,200, max 2,500" over the whole seconds between the first and the
    /// last bind.
    pub fn describe_rate(&self, t0: Instant) -> String {
        let mut buckets: Vec<u64> = Vec::new();
        for t in self.bound_at.iter().flatten() {
            let s = t.saturating_duration_since(t0).as_secs() as usize;
            if buckets.len() <= s {
                buckets.resize(s + 1, 0);
            }
            buckets[s] += 1;
        }
        let first = buckets.iter().position(|&b| b > 0).unwrap_or(0);
        // The last second is partial.
        let mut full: Vec<u64> = buckets
            .get(first..buckets.len().saturating_sub(1))
            .unwrap_or_default()
            .to_vec();
        if full.is_empty() {
            return "under 2 s of binds".into();
        }
        full.sort_unstable();
        format!(
            "binds per second over {} whole seconds: median {}, min {}, max {}",
            full.len(),
            thousands(full[full.len() / 2]),
            thousands(full[0]),
            thousands(full[full.len() - 1])
        )
    }

    /// Watch ADDED → seen bound, per pod.
    pub fn describe_lag(&self) -> String {
        let mut lag: Vec<u64> = self
            .added_at
            .iter()
            .zip(&self.bound_at)
            .filter_map(|(a, b)| Some(nanos(b.as_ref()?.saturating_duration_since(*a.as_ref()?))))
            .collect();
        let s = Summary::of(&mut lag);
        format!(
            "create → bound (as watched) p50 {}, p99 {}, max {}",
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        )
    }
}

/// The pods of a run.
pub struct Pods {
    pub init: Group,
    pub measured: Group,
    node_prefix: String,
    nodes: usize,
    pub last_progress: Instant,
    /// When the measured pods started being created.
    pub t0: Option<Instant>,
}

impl Pods {
    pub fn new(init: usize, measured: usize, node_prefix: &str, nodes: usize) -> Pods {
        Pods {
            init: Group::new(init),
            measured: Group::new(measured),
            node_prefix: node_prefix.to_string(),
            nodes,
            last_progress: Instant::now(),
            t0: None,
        }
    }

    /// Nodes holding more than `limit` live pods of one group, pods
    /// grouped by `k % groups` (anti-affinity groups; 1: all pods).
    pub fn per_node_violations(&self, groups: u64, limit: u64) -> u64 {
        let mut counts: HashMap<(u32, u64), u64> = HashMap::new();
        for g in [&self.init, &self.measured] {
            for (k, node) in g.node.iter().enumerate() {
                match node {
                    Some(i) if *i != OTHER_NODE && !g.deleted_flag[k] => {
                        *counts.entry((*i, k as u64 % groups.max(1))).or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
        counts.values().filter(|&&c| c > limit).count() as u64
    }
}

/// Whether the measured pods' zone counts differ by more than `zone_skew`
/// (0 or 1), and how many nodes hold more than `host_skew` pods above the
/// least loaded node (node `i` is in zone `i % zones`).
pub fn skew_violations(
    g: &Group,
    nodes: usize,
    zones: u64,
    zone_skew: u64,
    host_skew: u64,
) -> (u64, u64) {
    let mut per_node = vec![0u64; nodes];
    let mut per_zone = vec![0u64; zones.max(1) as usize];
    for i in g.node.iter().flatten().filter(|&&i| i != OTHER_NODE) {
        per_node[*i as usize] += 1;
        per_zone[(*i as u64 % zones.max(1)) as usize] += 1;
    }
    let spread = |v: &[u64]| {
        let min = v.iter().copied().min().unwrap_or(0);
        (min, v.iter().copied().max().unwrap_or(0) - min)
    };
    let zone = u64::from(spread(&per_zone).1 > zone_skew);
    let (min, _) = spread(&per_node);
    let host = per_node.iter().filter(|&&c| c > min + host_skew).count() as u64;
    (zone, host)
}

impl Tracker for Pods {
    type Spec = PodSpec;
    type Status = PodStatus;

    fn apply(&mut self, obj: Obj<PodSpec, PodStatus>, change: Change, now: Instant) {
        let name = obj.metadata.name.as_deref();
        let (g, k) = if let Some(k) = index_of(name, "m-", self.measured.node.len()) {
            (&mut self.measured, k)
        } else if let Some(k) = index_of(name, "i-", self.init.node.len()) {
            (&mut self.init, k)
        } else {
            return; // churn and probe pods
        };
        if change == Change::Deleted {
            if !g.deleted_flag[k] {
                g.deleted_flag[k] = true;
                g.deleted += 1;
            }
            return;
        }
        let spec = obj.spec.unwrap_or_default();
        if g.added_at[k].is_none() {
            g.added_at[k] = Some(now);
            g.seen += 1;
            g.no_priority += u64::from(spec.priority.is_none());
        }
        if let Some(node) = spec.node_name.filter(|n| !n.is_empty()) {
            let i = index_of(Some(&node), &self.node_prefix, self.nodes)
                .map_or(OTHER_NODE, |i| i as u32);
            match g.node[k] {
                None => {
                    g.node[k] = Some(i);
                    g.bound += 1;
                    g.bound_at[k] = Some(now);
                    g.last_bound_at = Some(now);
                    self.last_progress = now;
                }
                Some(j) if j != i => g.rebound += 1,
                Some(_) => {}
            }
        }
        let status = obj.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Running") && !g.running_flag[k] {
            g.running_flag[k] = true;
            g.running += 1;
            self.last_progress = now;
        }
        let unschedulable = status.conditions.unwrap_or_default().iter().any(|c| {
            c.kind.as_deref() == Some("PodScheduled")
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some("Unschedulable")
        });
        if unschedulable && !g.reported_flag[k] {
            g.reported_flag[k] = true;
            g.reported += 1;
            self.last_progress = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str) -> Obj<PodSpec, PodStatus> {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "priority": 5},
            "status": {"phase": phase, "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
        }))
        .expect("pod")
    }

    #[test]
    fn binds_are_counted_once_and_checked() {
        let mut p = Pods::new(2, 3, "node-", 4);
        let now = Instant::now();
        p.apply(pod("m-0", None, "Pending"), Change::Added, now);
        p.apply(pod("m-0", Some("node-1"), "Pending"), Change::Modified, now);
        p.apply(pod("m-0", Some("node-1"), "Running"), Change::Modified, now);
        p.apply(pod("m-1", Some("node-2"), "Pending"), Change::Added, now);
        p.apply(pod("m-1", Some("node-3"), "Pending"), Change::Modified, now);
        p.apply(pod("i-0", Some("node-1"), "Running"), Change::Listed, now);
        p.apply(pod("c-0", Some("node-1"), "Running"), Change::Added, now);
        assert_eq!(
            (p.measured.seen, p.measured.bound, p.measured.running),
            (2, 2, 1)
        );
        assert_eq!(
            (
                p.measured.rebound,
                p.measured.reported,
                p.measured.no_priority
            ),
            (1, 2, 0)
        );
        // node-1 holds m-0 and i-0.
        assert_eq!(p.per_node_violations(1, 1), 1);
        // m-0 and i-0 are in the same anti-affinity group (0 % 2 == 0).
        assert_eq!(p.per_node_violations(2, 1), 1);
        p.apply(pod("i-0", Some("node-1"), "Running"), Change::Deleted, now);
        assert_eq!(p.init.deleted, 1);
        assert_eq!(p.per_node_violations(1, 1), 0);
        // Zones: node-1 → zone 1, node-2 → zone 0 (of 2): balanced.
        assert_eq!(skew_violations(&p.measured, 4, 2, 1, 5), (0, 0));
        assert_eq!(skew_violations(&p.measured, 4, 2, 0, 0), (0, 2));
    }
}
