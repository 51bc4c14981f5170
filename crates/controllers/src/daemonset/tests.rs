//! Unit tests of the DaemonSet controller's pure decisions.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Node, NodeSpec, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::new_pod;
use super::plan::*;

fn ds() -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("default".into()),
            uid: Some("ds-uid".into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "agent".to_string())].into()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_string(), "agent".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn node(name: &str) -> Arc<Node> {
    Arc::new(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn tainted(name: &str, key: &str, effect: &str) -> Arc<Node> {
    let mut n = (*node(name)).clone();
    n.spec = Some(NodeSpec {
        taints: Some(vec![Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    Arc::new(n)
}

/// A running, ready pod of hash `hash` on `node`, created at `created`.
fn pod(name: &str, node: &str, hash: &str, created: i64) -> Arc<Pod> {
    let mut p = new_pod(&ds(), node, hash);
    p.metadata.name = Some(name.into());
    p.metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(TEMPLATE_GENERATION_LABEL);
    p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
    p.spec.as_mut().unwrap().node_name = Some(node.into());
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(Timestamp::from_second(created).unwrap())),
            ..Default::default()
        }]),
        ..Default::default()
    });
    Arc::new(p)
}

fn not_ready(p: Arc<Pod>) -> Arc<Pod> {
    let mut p = (*p).clone();
    p.status.as_mut().unwrap().conditions = None;
    Arc::new(p)
}

fn snap<'a>(ds: &'a DaemonSet, nodes: &'a [Arc<Node>], pods: &'a [Arc<Pod>]) -> Snapshot<'a> {
    Snapshot {
        ds,
        nodes,
        pods,
        hash: "new",
        now: Timestamp::from_second(10_000).unwrap(),
    }
}

#[test]
fn daemon_pods_get_upstreams_tolerations_labels_and_node_affinity() {
    let mut d = ds();
    let spec = d.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    spec.host_network = Some(true);
    spec.tolerations = Some(vec![Toleration {
        key: Some("node.kubernetes.io/not-ready".into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(300),
        ..Default::default()
    }]);
    let p = new_pod(&d, "n1", "h1");
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["controller-revision-hash"], "h1");
    assert_eq!(labels["pod-template-generation"], "2");
    assert_eq!(labels["app"], "agent");
    assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
    let tol = p.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
    let keys: Vec<(&str, &str)> = tol
        .iter()
        .map(|t| (t.key.as_deref().unwrap(), t.effect.as_deref().unwrap()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/network-unavailable", "NoSchedule"),
        ]
    );
    // The user's tolerationSeconds is replaced: daemon pods stay for good.
    assert!(tol.iter().all(|t| t.toleration_seconds.is_none()));
    assert_eq!(target_node(&p).as_deref(), Some("n1"));
    let terms = &p
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    let f = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!(
        (f.key.as_str(), f.operator.as_str()),
        ("metadata.name", "In")
    );
}

#[test]
fn node_eligibility_follows_selector_affinity_and_taints() {
    let d = ds();
    let yes = NodeFit {
        should_run: true,
        should_continue_running: true,
    };
    let no = NodeFit {
        should_run: false,
        should_continue_running: false,
    };
    assert_eq!(node_fit(&d, &node("n1")), yes);
    // Untolerated NoSchedule: no new pod, but a running one may stay.
    assert_eq!(
        node_fit(&d, &tainted("n1", "dedicated", "NoSchedule")),
        NodeFit {
            should_run: false,
            should_continue_running: true
        }
    );
    assert_eq!(node_fit(&d, &tainted("n1", "dedicated", "NoExecute")), no);
    // PreferNoSchedule does not count; the daemon tolerations do.
    assert_eq!(node_fit(&d, &tainted("n1", "x", "PreferNoSchedule")), yes);
    assert_eq!(
        node_fit(
            &d,
            &tainted("n1", "node.kubernetes.io/unschedulable", "NoSchedule")
        ),
        yes
    );
    assert_eq!(
        node_fit(
            &d,
            &tainted("n1", "node.kubernetes.io/not-ready", "NoExecute")
        ),
        yes
    );
    // nodeSelector.
    let mut sel = ds();
    sel.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_selector = Some([("kubernetes.io/hostname".to_string(), "n2".to_string())].into());
    assert_eq!(node_fit(&sel, &node("n1")), no);
    assert_eq!(node_fit(&sel, &node("n2")), yes);
    // A template nodeName pins the DaemonSet to one node.
    let mut named = ds();
    named
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_name = Some("n2".into());
    assert_eq!(node_fit(&named, &node("n1")), no);
}

#[test]
fn manage_creates_missing_and_deletes_extra_misplaced_and_orphaned_pods() {
    let d = ds();
    let nodes = vec![
        node("a"),
        node("b"),
        tainted("c", "dedicated", "NoExecute"),
        node("d"),
    ];
    let pods = vec![
        pod("p-a1", "a", "new", 100),
        pod("p-a2", "a", "new", 200),      // duplicate: the younger goes
        pod("p-c", "c", "new", 100),       // evicted by the NoExecute taint
        pod("p-gone", "gone", "new", 100), // its node was deleted
    ];
    let plan = manage(&snap(&d, &nodes, &pods));
    assert_eq!(plan.create_on, vec!["b", "d"]);
    assert_eq!(plan.delete, vec!["p-a2", "p-c"]);
    assert_eq!(plan.orphaned, vec!["p-gone"]);
    // A failed pod is deleted (then replaced by the next sync).
    let mut failed = (*pod("p-b", "b", "new", 100)).clone();
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let pods = vec![Arc::new(failed)];
    let plan = manage(&snap(&d, &nodes[..2], &pods));
    assert_eq!(plan.create_on, vec!["a"]);
    assert_eq!(plan.delete, vec!["p-b"]);
    assert_eq!(plan.failed, vec![("p-b".to_string(), "b".to_string())]);
}

fn rolling(max_unavailable: Option<IntOrString>, max_surge: Option<IntOrString>) -> DaemonSet {
    let mut d = ds();
    d.spec.as_mut().unwrap().update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDaemonSet {
            max_unavailable,
            max_surge,
        }),
    });
    d
}

#[test]
fn rolling_update_replaces_at_most_max_unavailable_old_pods() {
    let nodes = vec![node("a"), node("b"), node("c"), node("d")];
    let d = rolling(Some(IntOrString::Int(2)), None);
    let pods = vec![
        pod("pa", "a", "old", 1),
        pod("pb", "b", "old", 1),
        pod("pc", "c", "old", 1),
        not_ready(pod("pd", "d", "new", 1)), // counts as unavailable
    ];
    let plan = rolling_update(&snap(&d, &nodes, &pods));
    assert_eq!(plan.delete, vec!["pa"]);
    assert!(plan.create_on.is_empty());
    // Unavailable old pods are replaced regardless of the budget.
    let pods = vec![
        not_ready(pod("pa", "a", "old", 1)),
        not_ready(pod("pb", "b", "old", 1)),
        not_ready(pod("pc", "c", "old", 1)),
        pod("pd", "d", "new", 1),
    ];
    let plan = rolling_update(&snap(&d, &nodes, &pods));
    assert_eq!(plan.delete, vec!["pa", "pb", "pc"]);
    // 25% of 4 rounds up to 1.
    let d = rolling(Some(IntOrString::String("25%".into())), None);
    let pods: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| pod(&format!("p{n}"), n, "old", 1))
        .collect();
    assert_eq!(rolling_update(&snap(&d, &nodes, &pods)).delete, vec!["pa"]);
    // Done: nothing to do.
    let pods: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| pod(&format!("p{n}"), n, "new", 1))
        .collect();
    assert!(rolling_update(&snap(&d, &nodes, &pods)).is_empty());
    // OnDelete never deletes.
    let mut od = ds();
    od.spec.as_mut().unwrap().update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    let pods: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| pod(&format!("p{n}"), n, "old", 1))
        .collect();
    assert!(rolling_update(&snap(&od, &nodes, &pods)).is_empty());
}

#[test]
fn rolling_update_with_surge_creates_before_deleting() {
    let nodes = vec![node("a"), node("b"), node("c")];
    let d = rolling(Some(IntOrString::Int(0)), Some(IntOrString::Int(1)));
    let pods: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| pod(&format!("p{n}"), n, "old", 1))
        .collect();
    let plan = rolling_update(&snap(&d, &nodes, &pods));
    assert_eq!(plan.create_on, vec!["a"]);
    assert!(plan.delete.is_empty());
    // The surge pod on a is not available yet: wait.
    let mut pods2 = pods.clone();
    pods2.push(not_ready(pod("pa2", "a", "new", 2)));
    assert!(rolling_update(&snap(&d, &nodes, &pods2)).is_empty());
    // Once it is, the old pod goes and the next node surges.
    let mut pods3 = pods.clone();
    pods3.push(pod("pa2", "a", "new", 2));
    let plan = rolling_update(&snap(&d, &nodes, &pods3));
    assert_eq!(plan.delete, vec!["pa"]);
    assert_eq!(plan.create_on, vec!["b"]);
    // manage keeps both pods while the new one is not ready.
    let plan = manage(&snap(&d, &nodes, &pods2));
    assert!(plan.delete.is_empty(), "{plan:?}");
}

#[test]
fn status_counts_like_upstream() {
    let d = ds();
    let nodes = vec![
        node("a"),
        node("b"),
        node("c"),
        tainted("t", "dedicated", "NoSchedule"),
    ];
    let pods = vec![
        pod("pa", "a", "new", 1),
        not_ready(pod("pb", "b", "old", 1)),
        pod("pt", "t", "old", 1), // misscheduled
    ];
    let st = status(&snap(&d, &nodes, &pods));
    assert_eq!(st.desired_number_scheduled, 3);
    assert_eq!(st.current_number_scheduled, 2);
    assert_eq!(st.number_misscheduled, 1);
    assert_eq!(st.number_ready, 1);
    assert_eq!(st.number_available, Some(1));
    assert_eq!(st.updated_number_scheduled, Some(1));
    assert_eq!(st.number_unavailable, Some(2));
    assert_eq!(scaled(Some(&IntOrString::String("50%".into())), 3), 2);
}
