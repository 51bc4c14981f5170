//! Unit tests of PodTopologySpread's scoring, and of default constraints
//! (system and list) built from the Services selecting the pod.

use serde_json::{json, Value};

use super::super::test_util::*;
use super::super::DO_NOT_SCHEDULE;
use super::*;
use crate::plugins::Handle;
use crate::testing::{node, pod};

#[test]
fn scores_prefer_domains_with_fewer_matching_pods() {
    let s = snap(vec![
        (zone_node("n1", "z1"), webs("a", 2)),
        (zone_node("n2", "z1"), vec![]),
        (zone_node("n3", "z2"), webs("c", 1)),
        (node("n4"), webs("d", 1)),
    ]);
    let zone = spread(pod("p").label("app", "web"), vec![soft(ZONE, 1)]);
    // Two zones: weight ln(4); z1 has 2 pods, z2 one; n4 lacks the key.
    assert_eq!(
        run_score(&plugin(), &zone, &s, None),
        Some((vec![3, 3, 1, 0], vec![33, 33, 100, 0]))
    );
    // Hostname, maxSkew 2: weight ln(4 + 2), plus maxSkew - 1.
    let host = spread(pod("p").label("app", "web"), vec![soft(HOST, 2)]);
    assert_eq!(
        run_score(&plugin(), &host, &s, None),
        Some((vec![5, 1, 3, 3], vec![20, 100, 60, 60]))
    );
    // Domains come from the filtered nodes only: z1 alone, weight ln(3).
    assert_eq!(
        run_score(&plugin(), &zone, &s, Some(&[0, 1])),
        Some((vec![2, 2], vec![100, 100]))
    );
    // No matching pods at all: every node scores 100.
    let none = spread(
        pod("p").label("app", "db"),
        vec![tsc(HOST, 1, SCHEDULE_ANYWAY, &[("app", "db")])],
    );
    assert_eq!(
        run_score(&plugin(), &none, &s, None),
        Some((vec![0, 0, 0, 0], vec![100, 100, 100, 100]))
    );
    // Only DoNotSchedule constraints: nothing to score.
    let hard_only = spread(pod("p").label("app", "web"), vec![hard(ZONE, 1)]);
    assert!(run_score(&plugin(), &hard_only, &s, None).is_none());
}

#[test]
fn system_default_constraints_use_the_services_selecting_the_pod() {
    let s = defaults_snapshot();
    let p = web("p");
    let web_svc = service("web", "default", Some(&[("app", "web")]));
    let pl = plugin_with(Value::Null, &handle(vec![web_svc], vec![]));
    // Hostname (maxSkew 3, weight ln 6) and zone (maxSkew 5, weight ln 5;
    // n4's missing zone is a domain of its own but scores nothing): the
    // system defaults do not require every key.
    assert_eq!(
        run_score(&pl, &p, &s, None),
        Some((vec![13, 9, 9, 4], vec![30, 61, 61, 100]))
    );
    // Nothing selects the pod: no default constraints.
    assert!(run_score(&plugin(), &p, &s, None).is_none());
    for svc in [
        service("web", "other", Some(&[("app", "web")])),
        service("db", "default", Some(&[("app", "db")])),
        service("headless", "default", None),
        // An empty selector selects the pod but adds no requirement.
        service("all", "default", Some(&[])),
    ] {
        let pl = plugin_with(Value::Null, &handle(vec![svc.clone()], vec![]));
        assert!(
            run_score(&pl, &p, &s, None).is_none(),
            "{:?}",
            svc.metadata.name
        );
    }
    // Own constraints replace the defaults.
    let pl = plugin_with(
        Value::Null,
        &handle(
            vec![service("web", "default", Some(&[("app", "web")]))],
            vec![],
        ),
    );
    let own = spread(pod("p").label("app", "web"), vec![soft(ZONE, 1)]);
    assert_eq!(
        run_score(&pl, &own, &s, None).map(|r| r.0),
        Some(vec![3, 3, 1, 0])
    );
}

#[test]
fn list_default_constraints_require_every_key_and_can_filter() {
    let s = defaults_snapshot();
    let h = handle(
        vec![service("web", "default", Some(&[("app", "web")]))],
        vec![],
    );
    let c = |key: &str, skew: i32, when: &str| json!({"topologyKey": key, "maxSkew": skew, "whenUnsatisfiable": when});
    let soft_list = plugin_with(
        json!({"defaultingType": "List", "defaultConstraints": [
            c(HOST, 3, SCHEDULE_ANYWAY), c(ZONE, 5, SCHEDULE_ANYWAY)]}),
        &h,
    );
    // Same constraints as the system defaults, but n4 (no zone) is ignored.
    assert_eq!(
        run_score(&soft_list, &web("p"), &s, None),
        Some((vec![12, 9, 9, 0], vec![75, 100, 100, 0]))
    );
    let hard_list = plugin_with(
        json!({"defaultingType": "List", "defaultConstraints": [c(HOST, 1, DO_NOT_SCHEDULE)]}),
        &h,
    );
    assert_eq!(
        run_filter(&hard_list, &web("p"), &s),
        vec![skew(), ok(), skew(), skew()]
    );
    // A pod with constraints of its own (only soft ones) is not filtered.
    let own = spread(pod("p").label("app", "web"), vec![soft(HOST, 1)]);
    assert_eq!(
        run_filter(&hard_list, &own, &s),
        vec![ok(), ok(), ok(), ok()]
    );
    // Without a Service selecting it, neither.
    let lone = plugin_with(
        json!({"defaultingType": "List", "defaultConstraints": [c(HOST, 1, DO_NOT_SCHEDULE)]}),
        &Handle::default(),
    );
    assert_eq!(
        run_filter(&lone, &web("p"), &s),
        vec![ok(), ok(), ok(), ok()]
    );
}
