//! Unit tests of InterPodAffinity's scoring: the incoming pod's preferred
//! terms, existing pods' terms (symmetry, hardPodAffinityWeight,
//! ignorePreferredTermsOfExistingPods), and NormalizeScore.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::super::test_util::*;
use super::*;
use crate::framework::Code;
use crate::testing::{info, pod};

/// PreScore, Score and NormalizeScore over all nodes: (raw, normalized).
fn run_score(pl: &InterPodAffinity, p: &Pod, s: &Snapshot) -> Option<(Vec<i64>, Vec<i64>)> {
    let pi = info(p.clone());
    let mut st = CycleState::default();
    let status = pl.pre_score(&mut st, &pi, &s.nodes, s);
    if status.code == Code::Skip {
        return None;
    }
    assert!(status.is_success(), "{status:?}");
    let mut scores: Vec<NodeScore> = s
        .nodes
        .iter()
        .map(|n| {
            let (score, st) = pl.score(&st, &pi, n);
            assert!(st.is_success());
            NodeScore {
                name: n.name.clone(),
                score,
            }
        })
        .collect();
    let raw = scores.iter().map(|s| s.score).collect();
    assert!(pl.normalize(&st, &pi, &mut scores).is_success());
    Some((raw, scores.iter().map(|s| s.score).collect()))
}

#[test]
fn preferred_terms_of_the_incoming_pod_score_by_weight() {
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
        (zone_node("n4", "z3"), vec![]),
    ]);
    let p = with(
        pod("p"),
        Aff {
            pref: vec![(10, term(ZONE, &[("app", "web")]))],
            pref_anti: vec![(4, term(ZONE, &[("app", "db")]))],
            ..Default::default()
        },
    );
    let (raw, norm) = run_score(&plugin(), &p, &s).unwrap();
    assert_eq!(raw, vec![10, 10, -4, 0]);
    // (score - min) / (max - min), truncated: 4/14 of 100 = 28.
    assert_eq!(norm, vec![100, 100, 0, 28]);
    // Two matching pods in a zone count twice.
    let s2 = snap(vec![
        (
            zone_node("n1", "z1"),
            vec![
                pod("a").label("app", "web").build(),
                pod("b").label("app", "web").build(),
            ],
        ),
        (
            zone_node("n2", "z2"),
            vec![pod("c").label("app", "web").build()],
        ),
    ]);
    let (raw, norm) = run_score(&plugin(), &p, &s2).unwrap();
    assert_eq!(raw, vec![20, 10]);
    assert_eq!(norm, vec![100, 0]);
    // Nothing matches: PreScore skips.
    let lonely = snap(vec![(zone_node("n1", "z1"), vec![])]);
    assert!(run_score(&plugin(), &p, &lonely).is_none());
}

#[test]
fn existing_pods_terms_score_symmetrically() {
    let fan = with(
        pod("fan"),
        Aff {
            pref: vec![(7, term(HOST, &[("app", "inc")]))],
            ..Default::default()
        },
    );
    let sticky = with(
        pod("sticky"),
        Aff {
            req: vec![term(ZONE, &[("app", "inc")])],
            ..Default::default()
        },
    );
    let hater = with(
        pod("hater"),
        Aff {
            pref_anti: vec![(3, term(ZONE, &[("app", "inc")]))],
            ..Default::default()
        },
    );
    let s = snap(vec![
        (zone_node("n1", "z1"), vec![]),
        (zone_node("n2", "z1"), vec![hater]),
        (zone_node("n3", "z2"), vec![fan]),
        (zone_node("n4", "z3"), vec![sticky]),
        (
            zone_node("n5", "z4"),
            vec![pod("x").label("app", "inc").build()],
        ),
    ]);
    let p = pod("p").label("app", "inc").build();
    let (raw, norm) = run_score(&plugin(), &p, &s).unwrap();
    assert_eq!(raw, vec![-3, -3, 7, 1, 0]);
    assert_eq!(norm, vec![0, 0, 100, 40, 30]);
    // hardPodAffinityWeight scales the existing pods' required terms.
    let heavy = plugin_with(json!({"hardPodAffinityWeight": 5}), vec![]);
    assert_eq!(run_score(&heavy, &p, &s).unwrap().0, vec![-3, -3, 7, 5, 0]);
    let none = plugin_with(json!({"hardPodAffinityWeight": 0}), vec![]);
    assert_eq!(run_score(&none, &p, &s).unwrap().0, vec![-3, -3, 7, 0, 0]);
    // A pod nobody cares about: skipped.
    let other = pod("p").label("app", "other").build();
    assert!(run_score(&plugin(), &other, &s).is_none());
    // Ignoring existing pods' preferences skips pods without their own...
    let ignore = plugin_with(json!({"ignorePreferredTermsOfExistingPods": true}), vec![]);
    assert!(run_score(&ignore, &p, &s).is_none());
    // ...but a pod with preferred terms still sees them all.
    let own = with(
        pod("p").label("app", "inc"),
        Aff {
            pref: vec![(2, term(ZONE, &[("app", "inc")]))],
            ..Default::default()
        },
    );
    assert_eq!(
        run_score(&ignore, &own, &s).unwrap().0,
        vec![-3, -3, 7, 1, 2]
    );
}

#[test]
fn normalize_scales_between_min_and_max() {
    let pl = plugin();
    let mut st = CycleState::default();
    st.write(
        PRE_SCORE_KEY,
        PreScoreState {
            scores: Arc::new(ScoreMap::from([(
                ZONE.to_string(),
                HashMap::from([("z1".to_string(), 1)]),
            )])),
        },
    );
    let p = info(pod("p").build());
    let norm = |v: &[i64]| {
        let mut s: Vec<NodeScore> = v
            .iter()
            .map(|&score| NodeScore {
                name: "n".into(),
                score,
            })
            .collect();
        assert!(pl.normalize(&st, &p, &mut s).is_success());
        s.into_iter().map(|s| s.score).collect::<Vec<_>>()
    };
    assert_eq!(norm(&[-5, 0, 5]), vec![0, 50, 100]);
    assert_eq!(norm(&[3, 3]), vec![0, 0]);
    assert_eq!(norm(&[0, 1, 2]), vec![0, 50, 100]);
    assert_eq!(norm(&[-2, -1]), vec![0, 100]);
}
