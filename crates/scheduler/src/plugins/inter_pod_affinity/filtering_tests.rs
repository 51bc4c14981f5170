//! Unit tests of InterPodAffinity's filtering: affinity, the first-pod
//! rule, anti-affinity, existing pods' anti-affinity (symmetry), namespaces
//! and namespace selectors, matchLabelKeys/mismatchLabelKeys, and AddPod/
//! RemovePod consistency with PreFilter.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, Time,
};
use serde_json::Value;

use super::super::test_util::*;
use super::*;
use crate::framework::Code;
use crate::testing::{info, node, pod};

#[test]
fn pre_filter_skips_pods_without_required_terms_or_conflicts() {
    let s = snap(vec![(
        zone_node("n1", "z1"),
        vec![pod("web").label("app", "web").build()],
    )]);
    let mut st = CycleState::default();
    let p = info(pod("p").label("app", "web").build());
    assert_eq!(plugin().pre_filter(&mut st, &p, &s).code, Code::Skip);
    // Preferred terms alone do not filter.
    let pref = with(
        pod("p"),
        Aff {
            pref: vec![(5, term(ZONE, &[("app", "web")]))],
            ..Default::default()
        },
    );
    assert_eq!(
        plugin().pre_filter(&mut st, &info(pref), &s).code,
        Code::Skip
    );
}

#[test]
fn required_affinity_needs_a_matching_pod_in_the_topology() {
    let s = snap(vec![
        (
            zone_node("n1", "z1"),
            vec![pod("web").label("app", "web").build()],
        ),
        (zone_node("n2", "z1"), vec![]),
        (
            zone_node("n3", "z2"),
            vec![pod("db").label("app", "db").build()],
        ),
        (node("n4"), vec![]),
    ]);
    let p = with(
        pod("p").label("app", "client"),
        Aff {
            req: vec![term(ZONE, &[("app", "web")])],
            ..Default::default()
        },
    );
    assert_eq!(
        run_filter(&plugin(), &p, &s),
        vec![ok(), ok(), no_aff(), no_aff()]
    );
    assert_eq!(no_aff().code, Code::UnschedulableAndUnresolvable);
    // All terms must be matched by the same pod.
    let both = with(
        pod("p"),
        Aff {
            req: vec![term(ZONE, &[("app", "web")]), term(HOST, &[("app", "db")])],
            ..Default::default()
        },
    );
    assert_eq!(
        run_filter(&plugin(), &both, &s),
        vec![no_aff(), no_aff(), no_aff(), no_aff()]
    );
    // A pod matching both terms on n3: only n3 has both pairs counted.
    let s2 = snap(vec![
        (zone_node("n1", "z1"), vec![]),
        (
            zone_node("n3", "z2"),
            vec![pod("x").label("app", "web").label("tier", "db").build()],
        ),
        (zone_node("n5", "z2"), vec![]),
    ]);
    let both = with(
        pod("p"),
        Aff {
            req: vec![term(ZONE, &[("app", "web")]), term(HOST, &[("tier", "db")])],
            ..Default::default()
        },
    );
    assert_eq!(
        run_filter(&plugin(), &both, &s2),
        vec![no_aff(), ok(), no_aff()]
    );
}

#[test]
fn first_pod_of_a_group_may_schedule_when_it_matches_its_own_terms() {
    let self_affine = with(
        pod("p").label("app", "web"),
        Aff {
            req: vec![term(ZONE, &[("app", "web")])],
            ..Default::default()
        },
    );
    let empty = snap(vec![
        (
            zone_node("n1", "z1"),
            vec![pod("db").label("app", "db").build()],
        ),
        (zone_node("n2", "z2"), vec![]),
        (node("n3"), vec![]),
    ]);
    // No web pod anywhere: every node with the topology key fits.
    assert_eq!(
        run_filter(&plugin(), &self_affine, &empty),
        vec![ok(), ok(), no_aff()]
    );
    // The pod does not match its own terms: nothing fits.
    let other = with(
        pod("p").label("app", "client"),
        Aff {
            req: vec![term(ZONE, &[("app", "web")])],
            ..Default::default()
        },
    );
    assert_eq!(
        run_filter(&plugin(), &other, &empty),
        vec![no_aff(), no_aff(), no_aff()]
    );
    // A matching pod in z2: only z2 fits.
    let one = snap(vec![
        (zone_node("n1", "z1"), vec![]),
        (
            zone_node("n2", "z2"),
            vec![pod("w").label("app", "web").build()],
        ),
    ]);
    assert_eq!(
        run_filter(&plugin(), &self_affine, &one),
        vec![no_aff(), ok()]
    );
    // A matching pod only on a node without the key counts for no pair,
    // so the first-pod rule still applies (as upstream).
    let keyless = snap(vec![
        (zone_node("n1", "z1"), vec![]),
        (node("n2"), vec![pod("w").label("app", "web").build()]),
    ]);
    assert_eq!(
        run_filter(&plugin(), &self_affine, &keyless),
        vec![ok(), no_aff()]
    );
}

#[test]
fn required_anti_affinity_rejects_topologies_with_matching_pods() {
    let s = snap(vec![
        (
            zone_node("n1", "z1"),
            vec![pod("web").label("app", "web").build()],
        ),
        (zone_node("n2", "z1"), vec![]),
        (zone_node("n3", "z2"), vec![]),
        (node("n4"), vec![]),
    ]);
    let p = with(
        pod("p").label("app", "web"),
        Aff {
            anti: vec![term(ZONE, &[("app", "web")])],
            ..Default::default()
        },
    );
    assert_eq!(
        run_filter(&plugin(), &p, &s),
        vec![no_anti(), no_anti(), ok(), ok()]
    );
    assert_eq!(no_anti().code, Code::Unschedulable);
    let host = with(
        pod("p"),
        Aff {
            anti: vec![term(HOST, &[("app", "web")])],
            ..Default::default()
        },
    );
    assert_eq!(
        run_filter(&plugin(), &host, &s),
        vec![no_anti(), ok(), ok(), ok()]
    );
}

#[test]
fn existing_pods_anti_affinity_is_symmetric() {
    let guard = with(
        pod("guard").label("app", "guard"),
        Aff {
            anti: vec![term(ZONE, &[("app", "web")])],
            ..Default::default()
        },
    );
    let s = snap(vec![
        (zone_node("n1", "z1"), vec![guard]),
        (zone_node("n2", "z1"), vec![]),
        (zone_node("n3", "z2"), vec![]),
    ]);
    assert_eq!(s.have_pods_with_required_anti_affinity, vec![0]);
    let web = pod("p").label("app", "web").build();
    assert_eq!(
        run_filter(&plugin(), &web, &s),
        vec![existing(), existing(), ok()]
    );
    // A pod the guard does not select is not affected (PreFilter skips).
    let db = info(pod("p").label("app", "db").build());
    let mut st = CycleState::default();
    assert_eq!(plugin().pre_filter(&mut st, &db, &s).code, Code::Skip);
}

#[test]
fn terminating_pods_still_count() {
    let mut web = pod("web").label("app", "web").build();
    web.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    let s = snap(vec![
        (zone_node("n1", "z1"), vec![web]),
        (zone_node("n2", "z2"), vec![]),
    ]);
    let p = with(
        pod("p"),
        Aff {
            anti: vec![term(ZONE, &[("app", "web")])],
            ..Default::default()
        },
    );
    assert_eq!(run_filter(&plugin(), &p, &s), vec![no_anti(), ok()]);
}

#[test]
fn namespaces_and_namespace_selectors_of_the_incoming_pod() {
    let web = |ns: &str| {
        pod(&format!("web-{ns}"))
            .namespace(ns)
            .label("app", "web")
            .build()
    };
    let s = snap(vec![
        (zone_node("n1", "z1"), vec![web("other")]),
        (zone_node("n2", "z2"), vec![web("third")]),
        (zone_node("n3", "z3"), vec![web("default")]),
        (zone_node("n4", "z4"), vec![]),
    ]);
    let pl = plugin_with(Value::Null, namespaces());
    let run = |names: Option<Vec<&str>>, ns_sel: Option<LabelSelector>| {
        let mut t = term(ZONE, &[("app", "web")]);
        t.namespaces = names.map(|v| v.iter().map(|s| s.to_string()).collect());
        t.namespace_selector = ns_sel;
        let p = with(
            pod("p").label("app", "client"),
            Aff {
                req: vec![t],
                ..Default::default()
            },
        );
        run_filter(&pl, &p, &s)
    };
    let team_a = LabelSelector {
        match_labels: Some(map(&[("team", "a")])),
        match_expressions: None,
    };
    // None named, no selector: the pod's own namespace.
    assert_eq!(run(None, None), vec![no_aff(), no_aff(), ok(), no_aff()]);
    assert_eq!(
        run(Some(vec![]), None),
        vec![no_aff(), no_aff(), ok(), no_aff()]
    );
    assert_eq!(
        run(Some(vec!["other"]), None),
        vec![ok(), no_aff(), no_aff(), no_aff()]
    );
    // A selector resolved against the namespace lister.
    assert_eq!(
        run(None, Some(team_a.clone())),
        vec![no_aff(), ok(), ok(), no_aff()]
    );
    // Named namespaces and the selector are ORed.
    assert_eq!(
        run(Some(vec!["other"]), Some(team_a)),
        vec![ok(), ok(), ok(), no_aff()]
    );
    // An empty selector: all namespaces.
    assert_eq!(
        run(None, Some(LabelSelector::default())),
        vec![ok(), ok(), ok(), no_aff()]
    );
    // Expressions in the namespace selector.
    let not_b = LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "team".into(),
            operator: "NotIn".into(),
            values: Some(vec!["b".into()]),
        }]),
    };
    assert_eq!(run(None, Some(not_b)), vec![no_aff(), ok(), ok(), no_aff()]);
}

#[test]
fn existing_pods_terms_use_their_namespace_and_the_incoming_namespace_labels() {
    let guard = |ns_sel: Option<LabelSelector>| {
        let mut t = term(HOST, &[("app", "web")]);
        t.namespace_selector = ns_sel;
        with(
            pod("guard").namespace("other"),
            Aff {
                anti: vec![t],
                ..Default::default()
            },
        )
    };
    let pl = plugin_with(Value::Null, namespaces());
    let web_in = |ns: &str| pod("p").namespace(ns).label("app", "web").build();
    let team_a = LabelSelector {
        match_labels: Some(map(&[("team", "a")])),
        match_expressions: None,
    };
    // Default: the guard's own namespace.
    let s = snap(vec![(node("n1"), vec![guard(None)]), (node("n2"), vec![])]);
    assert_eq!(
        run_filter(&pl, &web_in("other"), &s),
        vec![existing(), ok()]
    );
    assert_eq!(run_filter(&pl, &web_in("default"), &s), vec![ok(), ok()]);
    // The selector is evaluated on the incoming pod's namespace labels.
    let s = snap(vec![
        (node("n1"), vec![guard(Some(team_a))]),
        (node("n2"), vec![]),
    ]);
    assert_eq!(
        run_filter(&pl, &web_in("default"), &s),
        vec![existing(), ok()]
    );
    assert_eq!(
        run_filter(&pl, &web_in("third"), &s),
        vec![existing(), ok()]
    );
    assert_eq!(run_filter(&pl, &web_in("other"), &s), vec![ok(), ok()]);
    // An unknown namespace has no labels.
    assert_eq!(run_filter(&pl, &web_in("ghost"), &s), vec![ok(), ok()]);
    let s = snap(vec![(
        node("n1"),
        vec![guard(Some(LabelSelector::default()))],
    )]);
    assert_eq!(run_filter(&pl, &web_in("ghost"), &s), vec![existing()]);
}

#[test]
fn match_and_mismatch_label_keys_merge_the_owners_values() {
    let web = |name: &str, version: &str| {
        pod(name)
            .label("app", "web")
            .label("version", version)
            .build()
    };
    let s = snap(vec![
        (zone_node("n1", "z1"), vec![web("a", "v1")]),
        (zone_node("n2", "z2"), vec![web("b", "v2")]),
    ]);
    let incoming = |match_keys: Vec<&str>, mismatch_keys: Vec<&str>| {
        let mut t = term(ZONE, &[("app", "web")]);
        let own = |v: Vec<&str>| (!v.is_empty()).then(|| v.iter().map(|s| s.to_string()).collect());
        t.match_label_keys = own(match_keys);
        t.mismatch_label_keys = own(mismatch_keys);
        with(
            pod("p").label("app", "client").label("version", "v2"),
            Aff {
                req: vec![t],
                ..Default::default()
            },
        )
    };
    assert_eq!(
        run_filter(&plugin(), &incoming(vec![], vec![]), &s),
        vec![ok(), ok()]
    );
    assert_eq!(
        run_filter(&plugin(), &incoming(vec!["version"], vec![]), &s),
        vec![no_aff(), ok()]
    );
    assert_eq!(
        run_filter(&plugin(), &incoming(vec![], vec!["version"]), &s),
        vec![ok(), no_aff()]
    );
    // A key the pod does not have adds nothing.
    assert_eq!(
        run_filter(&plugin(), &incoming(vec!["track"], vec![]), &s),
        vec![ok(), ok()]
    );
    // An existing pod's keys take the existing pod's values.
    let mut t = term(HOST, &[("app", "web")]);
    t.match_label_keys = Some(vec!["version".into()]);
    let guard = with(
        pod("guard").label("version", "v1"),
        Aff {
            anti: vec![t],
            ..Default::default()
        },
    );
    let s = snap(vec![(node("n1"), vec![guard]), (node("n2"), vec![])]);
    assert_eq!(
        run_filter(&plugin(), &web("p", "v1"), &s),
        vec![existing(), ok()]
    );
    assert_eq!(run_filter(&plugin(), &web("p", "v2"), &s), vec![ok(), ok()]);
    // mismatchLabelKeys on the existing side: NotIn its value.
    let mut t = term(HOST, &[("app", "web")]);
    t.mismatch_label_keys = Some(vec!["version".into()]);
    let guard = with(
        pod("guard").label("version", "v1"),
        Aff {
            anti: vec![t],
            ..Default::default()
        },
    );
    let s = snap(vec![(node("n1"), vec![guard])]);
    assert_eq!(run_filter(&plugin(), &web("p", "v1"), &s), vec![ok()]);
    assert_eq!(run_filter(&plugin(), &web("p", "v2"), &s), vec![existing()]);
}

#[test]
fn null_selectors_match_nothing_and_invalid_ones_are_unresolvable() {
    let s = snap(vec![(
        zone_node("n1", "z1"),
        vec![pod("w").label("app", "web").build()],
    )]);
    let mut t = term(ZONE, &[]);
    t.label_selector = None;
    let p = with(
        pod("p").label("app", "web"),
        Aff {
            anti: vec![t],
            ..Default::default()
        },
    );
    assert_eq!(run_filter(&plugin(), &p, &s), vec![ok()]);
    let mut bad = term(ZONE, &[]);
    bad.label_selector = Some(LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "app".into(),
            operator: "In".into(),
            values: None,
        }]),
    });
    let p = with(
        pod("p"),
        Aff {
            req: vec![bad],
            ..Default::default()
        },
    );
    let st = plugin().pre_filter(&mut CycleState::default(), &info(p), &s);
    assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
    assert!(st.reasons[0].starts_with("parsing pod: "), "{st:?}");
}

type Counts = (TopologyCounts, TopologyCounts, TopologyCounts);

fn counts(pl: &InterPodAffinity, p: &PodInfo, s: &Snapshot) -> (CycleState, Counts) {
    let mut st = CycleState::default();
    assert!(pl.pre_filter(&mut st, p, s).is_success());
    let c = read_counts(&st);
    (st, c)
}

fn read_counts(st: &CycleState) -> Counts {
    let s = st.read::<PreFilterState>(PRE_FILTER_KEY).unwrap();
    (
        s.existing_anti.clone(),
        s.affinity.clone(),
        s.anti_affinity.clone(),
    )
}

#[test]
fn add_and_remove_pod_match_pre_filter_without_the_pod() {
    let guard = with(
        pod("guard").label("app", "web"),
        Aff {
            anti: vec![term(ZONE, &[("app", "inc")])],
            ..Default::default()
        },
    );
    let nodes = || {
        vec![
            (
                zone_node("n1", "z1"),
                vec![guard.clone(), pod("db1").label("app", "db").build()],
            ),
            (
                zone_node("n2", "z1"),
                vec![pod("db2").label("app", "db").build()],
            ),
            (
                zone_node("n3", "z2"),
                vec![pod("web2").label("app", "web").build()],
            ),
            (node("n4"), vec![pod("web3").label("app", "web").build()]),
        ]
    };
    let incoming = info(with(
        pod("p").label("app", "inc"),
        Aff {
            req: vec![term(ZONE, &[("app", "web")])],
            anti: vec![term(HOST, &[("app", "db")])],
            ..Default::default()
        },
    ));
    let pl = plugin();
    let full = snap(nodes());
    let (full_state, base) = counts(&pl, &incoming, &full);
    assert_eq!(base.0.get(ZONE, "z1"), 1);
    assert_eq!(base.1.get(ZONE, "z1"), 1);
    assert_eq!(base.1.get(ZONE, "z2"), 1);
    assert_eq!(base.2.get(HOST, "n1"), 1);
    assert_eq!(base.2.get(HOST, "n2"), 1);
    for (ni, n) in full.nodes.iter().enumerate() {
        for victim in &n.pods {
            // PreFilter on a snapshot without the pod.
            let mut without = nodes();
            without[ni]
                .1
                .retain(|p| p.metadata.name != victim.pod.metadata.name);
            let (_, want) = counts(&pl, &incoming, &snap(without));
            let mut st = full_state.clone();
            assert!(pl.remove_pod(&mut st, &incoming, victim, n).is_success());
            assert_eq!(read_counts(&st), want, "removing {}", victim.key);
            assert!(pl.add_pod(&mut st, &incoming, victim, n).is_success());
            assert_eq!(read_counts(&st), base, "adding {} back", victim.key);
        }
    }
    // Removing a guard lifts its anti-affinity, in the cycle copy only.
    let guard = with(
        pod("guard").label("app", "guard"),
        Aff {
            anti: vec![term(ZONE, &[("app", "inc")])],
            ..Default::default()
        },
    );
    let small = snap(vec![
        (zone_node("n1", "z1"), vec![guard]),
        (zone_node("n2", "z1"), vec![]),
    ]);
    let plain = info(pod("p").label("app", "inc").build());
    let mut base_state = CycleState::default();
    assert!(pl.pre_filter(&mut base_state, &plain, &small).is_success());
    let guard_info = small.nodes[0].pods[0].clone();
    assert_eq!(pl.filter(&base_state, &plain, &small.nodes[1]), existing());
    let mut st = base_state.clone();
    assert!(pl
        .remove_pod(&mut st, &plain, &guard_info, &small.nodes[0])
        .is_success());
    assert_eq!(pl.filter(&st, &plain, &small.nodes[1]), ok());
    assert_eq!(pl.filter(&base_state, &plain, &small.nodes[1]), existing());
    // Without PreFilter state (it skipped) the extensions do nothing.
    let mut empty = CycleState::default();
    assert!(pl
        .add_pod(&mut empty, &plain, &guard_info, &small.nodes[0])
        .is_success());
    assert_eq!(pl.filter(&empty, &plain, &small.nodes[0]).code, Code::Error);
}
