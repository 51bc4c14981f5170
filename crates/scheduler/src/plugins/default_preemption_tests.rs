//! Unit tests of DefaultPreemption, through the whole algorithm with the
//! default profile.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::api::ObjectMeta;
use serde_json::json;

use super::*;
use crate::core::{Algorithm, Outcome};
use crate::framework::Snapshot;
use crate::testing::{info, node, pod};

fn prio(mut p: Pod, v: i32) -> Pod {
    p.spec.as_mut().unwrap().priority = Some(v);
    p
}

fn started(mut p: Pod, secs: i64) -> Pod {
    let t = k8s_openapi::jiff::Timestamp::from_second(secs).unwrap();
    p.status.get_or_insert_with(Default::default).start_time = Some(Time(t));
    p
}

/// Nodes `(name, cpu)` with pods `(node, pod)` on them.
fn snapshot(nodes: &[(&str, &str)], pods: Vec<(&str, Pod)>) -> Snapshot {
    let mut infos: Vec<NodeInfo> = nodes
        .iter()
        .map(|(n, cpu)| {
            NodeInfo::new(Arc::new(
                node(n)
                    .allocatable(&[("cpu", cpu), ("memory", "8Gi"), ("pods", "110")])
                    .build(),
            ))
        })
        .collect();
    for (n, p) in pods {
        let i = infos.iter().position(|x| x.name == n).unwrap();
        infos[i].add_pod(Arc::new(info(p)));
    }
    Snapshot::new(infos.into_iter().map(Arc::new).collect())
}

fn profile(listers: Listers) -> Profile {
    let h = Handle {
        client: None,
        listers,
        waiting: Default::default(),
    };
    Profile::default_profile(&h).unwrap()
}

fn run(profile: &Profile, snap: &Snapshot, p: Pod, nominator: Nominator) -> (Outcome, String) {
    let mut alg = Algorithm::default();
    alg.nominator = nominator;
    let out = alg.schedule(profile, &mut CycleState::default(), &info(p), snap, None);
    let msg = match &out {
        Outcome::Unschedulable(f) => f.message(),
        _ => String::new(),
    };
    (out, msg)
}

fn nominated(out: &Outcome) -> Option<(String, Vec<String>)> {
    match out {
        Outcome::Unschedulable(f) => f.nominated.as_ref().map(|r| {
            (
                r.nominated_node.clone(),
                r.victims
                    .iter()
                    .map(|v| v.pod.metadata.name.clone().unwrap())
                    .collect(),
            )
        }),
        _ => None,
    }
}

fn cpu(name: &str, amount: &str, priority: i32) -> Pod {
    prio(pod(name).requests(&[("cpu", amount)]).build(), priority)
}

#[test]
fn preempts_the_node_with_the_least_important_victims() {
    let snap = snapshot(
        &[("a", "1"), ("b", "1")],
        vec![("a", cpu("mid", "1", 10)), ("b", cpu("low", "1", 5))],
    );
    let (out, msg) = run(
        &profile(Listers::default()),
        &snap,
        cpu("big", "1", 100),
        Nominator::default(),
    );
    assert_eq!(nominated(&out), Some(("b".into(), vec!["low".into()])));
    // Successful preemption adds nothing to the message.
    assert_eq!(msg, "0/2 nodes are available: 2 Insufficient cpu.");
}

#[test]
fn reprieves_the_most_important_victims_that_can_stay() {
    let snap = snapshot(
        &[("a", "1")],
        vec![
            ("a", cpu("p1", "300m", 1)),
            ("a", cpu("p2", "300m", 2)),
            ("a", cpu("p3", "300m", 3)),
        ],
    );
    let (out, _) = run(
        &profile(Listers::default()),
        &snap,
        cpu("new", "500m", 10),
        Nominator::default(),
    );
    // All removed: 1000m free; p3 back: 700m, fits; p2 back: 400m, no.
    assert_eq!(
        nominated(&out),
        Some(("a".into(), vec!["p2".into(), "p1".into()]))
    );
}

#[test]
fn preemption_policy_never_and_no_lower_priority_pods() {
    let snap = snapshot(&[("a", "1")], vec![("a", cpu("high", "1", 200))]);
    let prof = profile(Listers::default());
    let mut never = cpu("never", "1", 1000);
    never.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
    let (out, msg) = run(&prof, &snap, never, Nominator::default());
    assert_eq!(nominated(&out), None);
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to \
         preemptionPolicy=Never.."
    );
    let (out, msg) = run(&prof, &snap, cpu("p", "1", 100), Nominator::default());
    assert_eq!(nominated(&out), Some((String::new(), vec![])));
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are \
         available: 1 No preemption victims found for incoming pod.."
    );
}

#[test]
fn unresolvable_nodes_are_not_candidates() {
    let mut tainted = node("t")
        .allocatable(&[("cpu", "4"), ("pods", "110")])
        .taint("dedicated", "gpu", "NoSchedule")
        .build();
    tainted.metadata.name = Some("t".into());
    let mut infos = vec![NodeInfo::new(Arc::new(tainted))];
    infos[0].add_pod(Arc::new(info(cpu("low", "1", 0))));
    let snap = Snapshot::new(infos.into_iter().map(Arc::new).collect());
    let (out, msg) = run(
        &profile(Listers::default()),
        &snap,
        cpu("p", "1", 100),
        Nominator::default(),
    );
    assert_eq!(nominated(&out), Some((String::new(), vec![])));
    assert!(
        msg.ends_with(
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
        ),
        "{msg}"
    );
}

fn pdb(ns: &str, app: &str, allowed: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(format!("pdb-{app}")),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PodDisruptionBudgetStatus {
            disruptions_allowed: allowed,
            ..Default::default()
        }),
    }
}

#[test]
fn prefers_nodes_without_pdb_violations() {
    let guarded = prio(
        pod("guarded")
            .label("app", "db")
            .requests(&[("cpu", "1")])
            .build(),
        1,
    );
    // The guarded pod is less important, but evicting it violates its PDB.
    let snap = snapshot(
        &[("a", "1"), ("b", "1")],
        vec![("a", guarded), ("b", cpu("other", "1", 5))],
    );
    let listers = Listers::fill(vec![], vec![], vec![], vec![pdb("default", "db", 0)]);
    let (out, _) = run(
        &profile(listers),
        &snap,
        cpu("p", "1", 100),
        Nominator::default(),
    );
    assert_eq!(nominated(&out), Some(("b".into(), vec!["other".into()])));
    // With a disruption allowed, the less important victim wins again.
    let listers = Listers::fill(vec![], vec![], vec![], vec![pdb("default", "db", 1)]);
    let (out, _) = run(
        &profile(listers),
        &snap,
        cpu("p", "1", 100),
        Nominator::default(),
    );
    assert_eq!(nominated(&out), Some(("a".into(), vec!["guarded".into()])));
}

#[test]
fn pick_one_breaks_ties_in_upstreams_order() {
    let v = |name: &str, p: i32, start: i64| Arc::new(info(started(cpu(name, "1", p), start)));
    let c = |node: &str, victims: Vec<Arc<PodInfo>>, pdb: usize| Candidate {
        node: node.into(),
        victims,
        pdb_violations: pdb,
    };
    // Fewer PDB violations beat everything.
    let cs = [c("x", vec![v("a", 1, 0)], 1), c("y", vec![v("b", 9, 0)], 0)];
    assert_eq!(pick_one(&cs).unwrap().node, "y");
    // Then the lowest highest priority.
    let cs = [
        c("x", vec![v("a", 5, 0)], 0),
        c("y", vec![v("b", 3, 0), v("c", 3, 0)], 0),
    ];
    assert_eq!(pick_one(&cs).unwrap().node, "y");
    // Then the smallest sum of priorities.
    let cs = [
        c("x", vec![v("a", 5, 0), v("b", 4, 0)], 0),
        c("y", vec![v("c", 5, 0), v("d", 1, 0)], 0),
    ];
    assert_eq!(pick_one(&cs).unwrap().node, "y");
    // Then the fewest victims (negative priorities count as positive sums).
    let cs = [
        c("x", vec![v("a", -5, 0), v("b", -5, 0)], 0),
        c("y", vec![v("c", -5, 0)], 0),
    ];
    assert_eq!(pick_one(&cs).unwrap().node, "y");
    // Then the latest-started most important victims.
    let cs = [
        c("x", vec![v("a", 5, 100)], 0),
        c("y", vec![v("b", 5, 200)], 0),
    ];
    assert_eq!(pick_one(&cs).unwrap().node, "y");
    assert!(pick_one(&[]).is_none());
}

#[test]
fn nominated_pods_hold_their_space() {
    let snap = snapshot(&[("a", "1")], vec![]);
    let prof = profile(Listers::default());
    let mut nom = Nominator::default();
    nom.add(Arc::new(info(cpu("waiting", "1", 100))), "a");
    // A lower-priority pod does not take the space...
    let (out, msg) = run(&prof, &snap, cpu("low", "500m", 1), nom.clone());
    assert!(matches!(out, Outcome::Unschedulable(_)), "{out:?}");
    assert!(
        msg.starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{msg}"
    );
    // ...a higher-priority one does, and the nominated pod itself fits.
    let (out, _) = run(&prof, &snap, cpu("higher", "500m", 200), nom.clone());
    assert!(matches!(out, Outcome::Scheduled { .. }), "{out:?}");
    let (out, _) = run(&prof, &snap, cpu("waiting", "1", 100), nom);
    assert!(
        matches!(out, Outcome::Scheduled { ref node, evaluated: 1, .. } if node == "a"),
        "{out:?}"
    );
}

#[test]
fn a_pod_waiting_for_its_victims_does_not_preempt_again() {
    let mut victim = cpu("victim", "1", 1);
    victim.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    victim.status = Some(
        serde_json::from_value(json!({"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": PREEMPTION_BY_SCHEDULER
        }]}))
        .unwrap(),
    );
    let snap = snapshot(
        &[("a", "1"), ("b", "1")],
        vec![("a", victim), ("b", cpu("other", "1", 1))],
    );
    let mut nom = Nominator::default();
    let me = cpu("me", "1", 100);
    nom.add(Arc::new(info(me.clone())), "a");
    let (out, msg) = run(&profile(Listers::default()), &snap, me, nom);
    assert_eq!(nominated(&out), None);
    assert!(
        msg.ends_with("preemption: not eligible due to a terminating pod on the nominated node.."),
        "{msg}"
    );
}

#[test]
fn args_are_validated() {
    let h = Handle::default();
    assert!(new(&json!({}), &h).is_ok());
    assert!(new(&json!({"minCandidateNodesPercentage": 101}), &h).is_err());
    assert!(new(&json!({"minCandidateNodesAbsolute": -1}), &h).is_err());
    assert!(new(
        &json!({"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 0}),
        &h
    )
    .is_err());
    assert!(new(&json!({"bogus": 1}), &h).is_err());
}
