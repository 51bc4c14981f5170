//! Unit tests of one scheduling cycle.
use super::*;
use crate::plugins::Handle;
use crate::testing::{info, node, pod};

fn snapshot(nodes: Vec<k8s_openapi::api::core::v1::Node>) -> Snapshot {
    Snapshot::new(
        nodes
            .into_iter()
            .map(|n| Arc::new(NodeInfo::new(Arc::new(n))))
            .collect(),
    )
}

#[test]
fn picks_a_feasible_node_and_explains_rejections() {
    let profile = Profile::default_profile(&Handle::default()).unwrap();
    let mut cordoned = node("c").build();
    cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
    let snap = snapshot(vec![cordoned, node("ok").build()]);
    let mut alg = Algorithm::default();
    let mut ex = Explanation::default();
    let out = alg.schedule(
        &profile,
        &mut CycleState::default(),
        &info(pod("p").build()),
        &snap,
        Some(&mut ex),
    );
    assert!(
        matches!(out, Outcome::Scheduled { ref node, .. } if node == "ok"),
        "{out:?}"
    );
    assert_eq!(ex.rejected["c"].0, "NodeUnschedulable");
    assert_eq!(ex.chosen.as_deref(), Some("ok"));
}

#[test]
fn fit_error_message_is_upstreams() {
    let mut statuses = HashMap::new();
    for (n, r) in [
        ("a", "Insufficient cpu"),
        ("b", "Insufficient cpu"),
        ("c", "node(s) had untolerated taint {dedicated: gpu}"),
    ] {
        statuses.insert(n.to_string(), Status::unschedulable(r));
    }
    let fit = FitError {
        num_all_nodes: 3,
        pre_filter: None,
        node_statuses: statuses,
        post_filter_msg: Some(
            "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling"
                .into(),
        ),
        nominated: None,
    };
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
         2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not \
         helpful for scheduling."
    );
    let none = snapshot(vec![]);
    let profile = Profile::default_profile(&Handle::default()).unwrap();
    let out = Algorithm::default().schedule(
        &profile,
        &mut CycleState::default(),
        &info(pod("p").build()),
        &none,
        None,
    );
    match out {
        Outcome::Unschedulable(f) => assert_eq!(f.message(), "0/0 nodes are available:"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn round_robin_start() {
    let profile = Profile::default_profile(&Handle::default()).unwrap();
    let nodes: Vec<_> = (0..200).map(|i| node(&format!("n{i}")).build()).collect();
    let snap = snapshot(nodes);
    let mut alg = Algorithm::default();
    // 200 nodes: 100 feasible wanted per cycle; the next cycle starts
    // after the last node evaluated.
    let out = alg.schedule(
        &profile,
        &mut CycleState::default(),
        &info(pod("p").build()),
        &snap,
        None,
    );
    assert!(
        matches!(
            out,
            Outcome::Scheduled {
                evaluated: 100,
                feasible: 100,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(alg.next_start, 100);
}
