//! Unit tests of PodTopologySpread's filtering: maxSkew over hostname and
//! zone, missing labels, which pods count, minDomains, node inclusion
//! policies, matchLabelKeys, and AddPod/RemovePod consistency with
//! PreFilter.

use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::super::test_util::*;
use super::*;
use crate::framework::Code;
use crate::testing::{info, node, pod};

#[test]
fn pods_without_hard_constraints_skip_filtering() {
    let s = snap(vec![(zone_node("n1", "z1"), webs("w", 3))]);
    let mut st = CycleState::default();
    // System defaults are all ScheduleAnyway.
    let p = info(web("p"));
    assert_eq!(plugin().pre_filter(&mut st, &p, &s).code, Code::Skip);
    let only_soft = info(spread(pod("p"), vec![soft(ZONE, 1)]));
    assert_eq!(
        plugin().pre_filter(&mut st, &only_soft, &s).code,
        Code::Skip
    );
}

#[test]
fn max_skew_over_hostnames() {
    let s = snap(vec![
        (node("n1"), webs("a", 2)),
        (node("n2"), webs("b", 1)),
        (node("n3"), vec![]),
    ]);
    let p = |skew: i32, label: &str| spread(pod("p").label("app", label), vec![hard(HOST, skew)]);
    assert_eq!(
        run_filter(&plugin(), &p(1, "web"), &s),
        vec![skew(), skew(), ok()]
    );
    assert_eq!(skew().code, Code::Unschedulable);
    assert_eq!(
        run_filter(&plugin(), &p(2, "web"), &s),
        vec![skew(), ok(), ok()]
    );
    // A pod its selector does not match adds nothing itself.
    assert_eq!(
        run_filter(&plugin(), &p(1, "db"), &s),
        vec![skew(), ok(), ok()]
    );
}

#[test]
fn max_skew_over_zones_and_missing_labels() {
    let s = snap(vec![
        (zone_node("n1", "z1"), webs("a", 1)),
        (zone_node("n2", "z1"), webs("b", 1)),
        (zone_node("n3", "z2"), webs("c", 1)),
        (zone_node("n4", "z3"), vec![]),
        // Not counted anywhere: the node has no zone.
        (node("n5"), webs("d", 5)),
    ]);
    let p = spread(pod("p").label("app", "web"), vec![hard(ZONE, 1)]);
    assert_eq!(
        run_filter(&plugin(), &p, &s),
        vec![skew(), skew(), skew(), ok(), no_label()]
    );
    assert_eq!(no_label().code, Code::UnschedulableAndUnresolvable);
    // Nodes must carry every constraint's key.
    let both = spread(
        pod("p").label("app", "web"),
        vec![hard(ZONE, 3), hard(HOST, 3)],
    );
    assert_eq!(
        run_filter(&plugin(), &both, &s),
        vec![ok(), ok(), ok(), ok(), no_label()]
    );
    let rack = spread(pod("p"), vec![hard("rack", 1)]);
    assert_eq!(run_filter(&plugin(), &rack, &s)[0], no_label());
}

#[test]
fn only_live_matching_pods_of_the_namespace_count() {
    let mut dying = web("dying");
    dying.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    let elsewhere = pod("other-ns")
        .namespace("other")
        .label("app", "web")
        .build();
    let db = pod("db").label("app", "db").build();
    let p = spread(pod("p").label("app", "web"), vec![hard(HOST, 1)]);
    let s = snap(vec![
        (
            node("n1"),
            vec![dying.clone(), elsewhere.clone(), db.clone()],
        ),
        (node("n2"), vec![]),
    ]);
    assert_eq!(run_filter(&plugin(), &p, &s), vec![ok(), ok()]);
    let s = snap(vec![
        (node("n1"), vec![dying, elsewhere, db, web("live")]),
        (node("n2"), vec![]),
    ]);
    assert_eq!(run_filter(&plugin(), &p, &s), vec![skew(), ok()]);
    // The pod's own namespace decides.
    let other = spread(
        pod("p").namespace("other").label("app", "web"),
        vec![hard(HOST, 1)],
    );
    assert_eq!(run_filter(&plugin(), &other, &s), vec![skew(), ok()]);
}

#[test]
fn min_domains_treats_the_global_minimum_as_zero() {
    let s = snap(vec![
        (zone_node("n1", "z1"), webs("a", 2)),
        (zone_node("n2", "z2"), webs("b", 1)),
    ]);
    let p = |skew: i32, min_domains: Option<i32>| {
        let mut c = hard(ZONE, skew);
        c.min_domains = min_domains;
        spread(pod("p").label("app", "web"), vec![c])
    };
    assert_eq!(run_filter(&plugin(), &p(1, None), &s), vec![skew(), ok()]);
    assert_eq!(
        run_filter(&plugin(), &p(1, Some(2)), &s),
        vec![skew(), ok()]
    );
    assert_eq!(
        run_filter(&plugin(), &p(1, Some(3)), &s),
        vec![skew(), skew()]
    );
    assert_eq!(
        run_filter(&plugin(), &p(2, Some(3)), &s),
        vec![skew(), ok()]
    );
}

#[test]
fn node_affinity_policy_decides_which_domains_count() {
    let s = snap(vec![
        (zone_node("n1", "z1").label("disk", "ssd"), webs("a", 1)),
        (zone_node("n2", "z2").label("disk", "ssd"), webs("b", 1)),
        (zone_node("n3", "z3"), vec![]),
    ]);
    let p = |policy: Option<&str>| {
        let mut c = hard(ZONE, 1);
        c.node_affinity_policy = policy.map(String::from);
        let mut p = spread(pod("p").label("app", "web"), vec![c]);
        p.spec.as_mut().unwrap().node_selector = Some(map(&[("disk", "ssd")]));
        p
    };
    // Honor (default): z3 does not fit the pod, so it is no domain.
    assert_eq!(run_filter(&plugin(), &p(None), &s), vec![ok(), ok(), ok()]);
    assert_eq!(
        run_filter(&plugin(), &p(Some("Honor")), &s),
        vec![ok(), ok(), ok()]
    );
    // Ignore: z3 is an empty domain, the minimum is 0.
    assert_eq!(
        run_filter(&plugin(), &p(Some("Ignore")), &s),
        vec![skew(), skew(), ok()]
    );
}

#[test]
fn node_taints_policy_decides_which_domains_count() {
    let s = snap(vec![
        (zone_node("n1", "z1"), webs("a", 1)),
        (zone_node("n2", "z2"), webs("b", 1)),
        (
            zone_node("n3", "z3").taint("dedicated", "gpu", "NoSchedule"),
            vec![],
        ),
    ]);
    let p = |policy: Option<&str>, tolerate: bool| {
        let mut c = hard(ZONE, 1);
        c.node_taints_policy = policy.map(String::from);
        let mut p = spread(pod("p").label("app", "web"), vec![c]);
        if tolerate {
            p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }]);
        }
        p
    };
    // Ignore (default): the tainted node's zone counts.
    assert_eq!(
        run_filter(&plugin(), &p(None, false), &s),
        vec![skew(), skew(), ok()]
    );
    // Honor: untolerated taints exclude the domain...
    assert_eq!(
        run_filter(&plugin(), &p(Some("Honor"), false), &s),
        vec![ok(), ok(), ok()]
    );
    // ...tolerated ones do not.
    assert_eq!(
        run_filter(&plugin(), &p(Some("Honor"), true), &s),
        vec![skew(), skew(), ok()]
    );
}

#[test]
fn match_label_keys_narrow_the_selector_to_the_pods_values() {
    let versioned = |name: &str, v: &str| pod(name).label("app", "web").label("version", v).build();
    let s = snap(vec![
        (node("n1"), vec![versioned("a", "v1"), versioned("b", "v1")]),
        (node("n2"), vec![versioned("c", "v2")]),
    ]);
    let p = |keys: Option<Vec<&str>>| {
        let mut c = hard(HOST, 1);
        c.match_label_keys = keys.map(|k| k.iter().map(|s| s.to_string()).collect());
        spread(pod("p").label("app", "web").label("version", "v2"), vec![c])
    };
    assert_eq!(run_filter(&plugin(), &p(None), &s), vec![skew(), ok()]);
    assert_eq!(
        run_filter(&plugin(), &p(Some(vec!["version"])), &s),
        vec![ok(), skew()]
    );
    // Keys the pod lacks add nothing.
    assert_eq!(
        run_filter(&plugin(), &p(Some(vec!["track"])), &s),
        vec![skew(), ok()]
    );
    // A null selector still matches nothing.
    let mut c = hard(HOST, 1);
    c.label_selector = None;
    c.match_label_keys = Some(vec!["version".into()]);
    let null = spread(pod("p").label("app", "web").label("version", "v1"), vec![c]);
    assert_eq!(run_filter(&plugin(), &null, &s), vec![ok(), ok()]);
}

/// Counts and global minimum per constraint.
fn view(st: &CycleState) -> (Vec<HashMap<String, i64>>, Vec<i64>) {
    let s = st.read::<PreFilterState>(PRE_FILTER_KEY).unwrap();
    let mins = (0..s.constraints.len()).map(|i| s.min_match(i)).collect();
    (s.counts.clone(), mins)
}

#[test]
fn add_and_remove_pod_match_pre_filter_without_the_pod() {
    let nodes = || {
        vec![
            (zone_node("n1", "z1").label("disk", "ssd"), webs("a", 2)),
            (
                zone_node("n2", "z1").label("disk", "ssd"),
                vec![web("b-0"), pod("db").label("app", "db").build()],
            ),
            (zone_node("n3", "z2").label("disk", "ssd"), webs("c", 1)),
            // Fails the pod's node selector: no domain.
            (zone_node("n4", "z3"), webs("d", 1)),
            // No zone: not counted.
            (node("n5").label("disk", "ssd"), webs("e", 1)),
            (
                zone_node("n6", "z2").label("disk", "ssd"),
                vec![pod("x").namespace("other").label("app", "web").build()],
            ),
        ]
    };
    let mut incoming = spread(
        pod("p").label("app", "web"),
        vec![hard(ZONE, 1), hard(HOST, 2)],
    );
    incoming.spec.as_mut().unwrap().node_selector = Some(map(&[("disk", "ssd")]));
    let incoming = info(incoming);
    let pl = plugin();
    let full = snap(nodes());
    let mut base = CycleState::default();
    assert!(pl.pre_filter(&mut base, &incoming, &full).is_success());
    let (counts, mins) = view(&base);
    assert_eq!(
        counts[0],
        HashMap::from([("z1".into(), 3), ("z2".into(), 1)])
    );
    assert_eq!(counts[1].len(), 4, "n1, n2, n3, n6");
    assert_eq!(mins, vec![1, 0]);
    let verdicts = |st: &CycleState| -> Vec<Status> {
        full.nodes
            .iter()
            .map(|n| pl.filter(st, &incoming, n))
            .collect()
    };
    for (ni, n) in full.nodes.iter().enumerate() {
        for victim in &n.pods {
            let mut without = nodes();
            without[ni]
                .1
                .retain(|p| p.metadata.name != victim.pod.metadata.name);
            let mut want = CycleState::default();
            assert!(pl
                .pre_filter(&mut want, &incoming, &snap(without))
                .is_success());
            let mut st = base.clone();
            assert!(pl.remove_pod(&mut st, &incoming, victim, n).is_success());
            assert_eq!(view(&st), view(&want), "removing {}", victim.key);
            assert_eq!(verdicts(&st), verdicts(&want), "removing {}", victim.key);
            assert!(pl.add_pod(&mut st, &incoming, victim, n).is_success());
            assert_eq!(view(&st).0, counts, "adding {} back", victim.key);
            assert_eq!(view(&st).1, mins);
        }
    }
    // Removing z2's only pod lowers the minimum to 0 in the copy only.
    let mut st = base.clone();
    let c0 = full.nodes[2].pods[0].clone();
    assert_eq!(pl.filter(&st, &incoming, &full.nodes[0]), skew());
    pl.remove_pod(&mut st, &incoming, &c0, &full.nodes[2]);
    assert_eq!(view(&st).1, vec![0, 0]);
    assert_eq!(view(&base).1, vec![1, 0]);
    // Without PreFilter state the extensions do nothing.
    let mut empty = CycleState::default();
    assert!(pl
        .add_pod(&mut empty, &incoming, &c0, &full.nodes[2])
        .is_success());
    assert_eq!(
        pl.filter(&empty, &incoming, &full.nodes[0]).code,
        Code::Error
    );
}

#[test]
fn critical_paths_track_the_two_smallest_domains() {
    let mut p = CriticalPaths::new();
    for (v, n) in [("a", 3), ("b", 1), ("c", 2), ("d", 5)] {
        p.update(v, n);
    }
    assert_eq!(p.min(), 1);
    assert_eq!(p.0[1], ("c".to_string(), 2));
    p.update("b", 4);
    assert_eq!(p.0[0], ("c".to_string(), 2));
    p.update("c", 0);
    assert_eq!(p.min(), 0);
}
