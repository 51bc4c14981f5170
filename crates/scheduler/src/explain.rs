//! `rkube scheduler explain <namespace>/<pod>`: why a pod is pending, or
//! why it landed where it did. It reads the cluster once through the API
//! (nodes, pods, namespaces, workloads, PDBs), rebuilds the scheduler's
//! view, and runs one scheduling cycle for the pod with every node
//! evaluated, recording for each node the filter that rejected it or its
//! weighted score from each score plugin. A bound pod is explained as if
//! it were being scheduled now, without itself on its node.

use std::fmt::Write as _;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Client};

use crate::cache::Cache;
use crate::config::Config;
use crate::core::{Algorithm, Explanation, Outcome};
use crate::framework::{CycleState, PodInfo};
use crate::listers::Listers;
use crate::plugins::Handle;
use crate::profile::DEFAULT_SCHEDULER_NAME;
use crate::resources::pod_requests;

/// Errors of `explain`.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("pod {0} not found")]
    NotFound(String),
    #[error("pod {pod} uses scheduler {name:?}, which no profile of this configuration has")]
    NoProfile { pod: String, name: String },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The report for one pod.
#[derive(Debug, Clone)]
pub struct Report {
    pub pod: String,
    pub bound_to: Option<String>,
    pub scheduler: String,
    pub priority: i32,
    pub outcome: Outcome,
    pub explanation: Explanation,
    /// Node names in the snapshot, sorted.
    pub nodes: Vec<String>,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Explains `namespace/name` against the live cluster.
pub async fn explain(
    client: Client,
    config: &Config,
    namespace: &str,
    name: &str,
) -> Result<Report, ExplainError> {
    let key = format!("{namespace}/{name}");
    let target = Api::<Pod>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| ExplainError::NotFound(key.clone()))?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&Default::default())
        .await?;
    let pods = Api::<Pod>::all(client.clone())
        .list(&Default::default())
        .await?;
    let listers = Listers::list_all(&client).await?;
    let handle = Handle {
        client: None,
        listers,
        waiting: Default::default(),
    };
    explain_with(config, &handle, target, nodes.items, pods.items)
}

/// Explains `target` given the cluster's nodes and pods.
pub fn explain_with(
    config: &Config,
    handle: &Handle,
    mut target: Pod,
    nodes: Vec<Node>,
    pods: Vec<Pod>,
) -> Result<Report, ExplainError> {
    // A bound pod is explained as pending (its nodeName would pin it).
    let bound_to = target
        .spec
        .as_mut()
        .and_then(|s| s.node_name.take())
        .filter(|n| !n.is_empty());
    let info = PodInfo::with(Arc::new(target), pod_requests);
    let scheduler = info
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.clone())
        .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.into());
    let mut profile = config
        .build_profiles(handle)?
        .into_iter()
        .find(|p| p.scheduler_name == scheduler)
        .ok_or_else(|| ExplainError::NoProfile {
            pod: info.key.clone(),
            name: scheduler.clone(),
        })?;
    // Every node is evaluated and scored.
    profile.percentage_of_nodes_to_score = Some(100);
    let mut cache = Cache::new();
    let mut names = Vec::new();
    for n in nodes {
        names.push(n.metadata.name.clone().unwrap_or_default());
        cache.upsert_node(n);
    }
    names.sort();
    for p in pods {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let Some(node) = node.filter(|n| !n.is_empty()) else {
            continue;
        };
        if is_terminal(&p) || p.metadata.uid.as_deref() == Some(info.uid.as_str()) {
            continue;
        }
        cache.upsert_pod(Arc::new(PodInfo::with(Arc::new(p), pod_requests)), &node);
    }
    let mut explanation = Explanation::default();
    let mut alg = Algorithm::default();
    let outcome = alg.schedule(
        &profile,
        &mut CycleState::default(),
        &info,
        cache.snapshot(),
        Some(&mut explanation),
    );
    Ok(Report {
        pod: info.key.clone(),
        bound_to,
        scheduler,
        priority: info.priority(),
        outcome,
        explanation,
        nodes: names,
    })
}

impl Report {
    /// The human-readable report: a summary, then one line per node.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Pod:        {}\nScheduler:  {}\nPriority:   {}",
            self.pod, self.scheduler, self.priority
        );
        if let Some(n) = &self.bound_to {
            let _ = writeln!(
                out,
                "Bound to:   {n} (explained as if it were scheduled now)"
            );
        }
        let result = match &self.outcome {
            Outcome::Scheduled { node, feasible, .. } => {
                format!("fits {feasible} node(s); best: {node}")
            }
            Outcome::Unschedulable(fit) => format!("unschedulable: {}", fit.message()),
            Outcome::Error(e) => format!("error: {e}"),
        };
        let _ = writeln!(out, "Result:     {result}\n");
        let mut rows: Vec<[String; 4]> = Vec::new();
        let pre_filter = match &self.outcome {
            Outcome::Unschedulable(f) => f.pre_filter.clone(),
            _ => None,
        };
        for node in &self.nodes {
            let row = if let Some((plugin, reason)) = self.explanation.rejected.get(node) {
                [
                    node.clone(),
                    "rejected".into(),
                    String::new(),
                    format!("{plugin}: {reason}"),
                ]
            } else if let Some(scores) = self.explanation.scores.get(node) {
                let total: i64 = scores.values().sum();
                let detail: Vec<String> = scores.iter().map(|(p, s)| format!("{p}={s}")).collect();
                let verdict = if self.explanation.chosen.as_deref() == Some(node) {
                    "chosen"
                } else {
                    "feasible"
                };
                [
                    node.clone(),
                    verdict.into(),
                    total.to_string(),
                    detail.join(" "),
                ]
            } else if let Some(s) = &pre_filter {
                [
                    node.clone(),
                    "rejected".into(),
                    String::new(),
                    format!("{} (PreFilter): {}", s.plugin, s.reasons.join(", ")),
                ]
            } else if self.explanation.chosen.as_deref() == Some(node) {
                [node.clone(), "chosen".into(), String::new(), String::new()]
            } else {
                [
                    node.clone(),
                    "feasible".into(),
                    String::new(),
                    "not scored".into(),
                ]
            };
            rows.push(row);
        }
        let header = [
            "NODE".to_string(),
            "VERDICT".into(),
            "SCORE".into(),
            "DETAILS".into(),
        ];
        let mut widths = [0usize; 3];
        for r in std::iter::once(&header).chain(rows.iter()) {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(r[i].len());
            }
        }
        for r in std::iter::once(&header).chain(rows.iter()) {
            let _ = writeln!(
                out,
                "{:w0$}   {:w1$}   {:w2$}   {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod};

    #[test]
    fn explains_rejections_and_scores_per_node() {
        let config = Config::parse(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration",
        )
        .unwrap();
        let nodes = vec![
            node("small")
                .allocatable(&[("cpu", "1"), ("pods", "10")])
                .build(),
            node("big")
                .allocatable(&[("cpu", "8"), ("pods", "10")])
                .build(),
            node("tainted")
                .allocatable(&[("cpu", "8"), ("pods", "10")])
                .taint("dedicated", "gpu", "NoSchedule")
                .build(),
        ];
        let filler = pod("filler")
            .requests(&[("cpu", "500m")])
            .node("small")
            .build();
        let target = pod("web").requests(&[("cpu", "2")]).build();
        let r = explain_with(&config, &Handle::default(), target, nodes, vec![filler]).unwrap();
        assert!(matches!(r.outcome, Outcome::Scheduled { ref node, .. } if node == "big"));
        let text = r.render();
        assert!(
            text.contains("Result:     fits 1 node(s); best: big"),
            "{text}"
        );
        let line = |n: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{n} ")))
                .unwrap()
                .to_string()
        };
        assert!(line("small").contains("rejected"), "{text}");
        assert!(
            line("small").contains("NodeResourcesFit: Insufficient cpu"),
            "{text}"
        );
        assert!(line("tainted").contains("TaintToleration"), "{text}");
        assert!(line("big").contains("chosen"), "{text}");
        // A pod no node fits gets upstream's message.
        let greedy = pod("greedy").requests(&[("cpu", "64")]).build();
        let nodes = vec![node("small")
            .allocatable(&[("cpu", "1"), ("pods", "10")])
            .build()];
        let r = explain_with(&config, &Handle::default(), greedy, nodes, vec![]).unwrap();
        assert!(
            r.render()
                .contains("unschedulable: 0/1 nodes are available: 1 Insufficient cpu."),
            "{}",
            r.render()
        );
    }
}
