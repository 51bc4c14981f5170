//! Unit tests of NodeResourcesFit: args, Filter reasons and codes, and the
//! three scoring strategies (expected values worked out from upstream's
//! integer formulas).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use super::*;
use crate::framework::Code;
use crate::testing::{info, node, pod};

fn plugin(args: Value) -> NodeResourcesFit {
    NodeResourcesFit::from_args(parse_args(NAME, &args).unwrap()).unwrap()
}

fn args_error(args: Value) -> String {
    let err = parse_args::<FitArgs>(NAME, &args).and_then(NodeResourcesFit::from_args);
    match err {
        Err(PluginError::Args { plugin, message }) => {
            assert_eq!(plugin, NAME);
            message
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("args {args} accepted"),
    }
}

fn node_info(alloc: &[(&str, &str)], pods: Vec<Pod>) -> NodeInfo {
    let mut ni = NodeInfo::new(Arc::new(node("n").allocatable(alloc).build()));
    for p in pods {
        ni.add_pod(Arc::new(info(p)));
    }
    ni
}

fn filter(pl: &NodeResourcesFit, p: Pod, ni: &NodeInfo) -> Status {
    let p = info(p);
    let mut st = CycleState::default();
    assert!(pl
        .pre_filter(&mut st, &p, &Snapshot::default())
        .is_success());
    pl.filter(&st, &p, ni)
}

fn score(pl: &NodeResourcesFit, p: Pod, ni: &NodeInfo) -> i64 {
    let p = info(p);
    let mut st = CycleState::default();
    assert!(pl
        .pre_score(&mut st, &p, &[], &Snapshot::default())
        .is_success());
    let (s, status) = pl.score(&st, &p, ni);
    assert!(status.is_success());
    // Without PreScore state, Score computes the same on its own.
    assert_eq!(pl.score(&CycleState::default(), &p, ni).0, s);
    s
}

fn rejected(reasons: &[&str]) -> Status {
    Status {
        code: Code::Unschedulable,
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
        plugin: "",
    }
}

#[test]
fn default_args() {
    for args in [
        Value::Null,
        json!({}),
        json!({"scoringStrategy": {"type": "LeastAllocated"}}),
    ] {
        let pl = plugin(args);
        assert_eq!(pl.strategy(), &Strategy::LeastAllocated);
        assert_eq!(pl.resources(), default_resources().as_slice());
    }
}

#[test]
fn parses_strategies() {
    let pl = plugin(json!({"scoringStrategy": {"type": "MostAllocated",
        "resources": [{"name": "cpu", "weight": 1}]}}));
    assert_eq!(pl.strategy(), &Strategy::MostAllocated);
    assert_eq!(pl.resources().len(), 1);
    let pl = plugin(json!({
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "NodeResourcesFitArgs",
        "ignoredResources": ["example.com/foo"],
        "ignoredResourceGroups": ["example.org"],
        "scoringStrategy": {
            "type": "RequestedToCapacityRatio",
            "resources": [{"name": "cpu", "weight": 3}, {"name": "example.com/gpu"}],
            "requestedToCapacityRatio": {"shape": [
                {"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}
        }
    }));
    assert_eq!(
        pl.strategy(),
        &Strategy::RequestedToCapacityRatio(vec![(0, 0), (100, 100)])
    );
    // An omitted weight defaults to 1.
    assert_eq!(pl.resources()[1].weight, 1);
    assert!(pl.ignored_resources.contains("example.com/foo"));
    assert!(pl.ignored_resource_groups.contains("example.org"));
}

#[test]
fn rejects_invalid_args() {
    let m = args_error(json!({"scoringStrategy": {"type": "Random"}}));
    assert!(m.contains("Unsupported value"), "{m}");
    // A given strategy must name its type.
    args_error(json!({"scoringStrategy": {"resources": [{"name": "cpu"}]}}));
    let m = args_error(json!({"scoringStrategy": {"type": "MostAllocated",
        "resources": [{"name": "cpu", "weight": 101}]}}));
    assert!(m.contains("not in valid range (0, 100]"), "{m}");
    args_error(json!({"scoringStrategy": {"type": "MostAllocated",
        "resources": [{"name": "cpu", "weight": -1}]}}));
    args_error(json!({"scoringStrategy": {"type": "MostAllocated",
        "resources": [{"name": "cpu", "weight": "heavy"}]}}));
    args_error(json!({"scoringStrategy": {"type": "RequestedToCapacityRatio"}}));
    let m = args_error(
        json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [
            {"utilization": 50, "score": 1}, {"utilization": 50, "score": 2}]}}}),
    );
    assert!(m.contains("sorted in increasing order"), "{m}");
    args_error(
        json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [{"utilization": 10, "score": 11}]}}}),
    );
    args_error(
        json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [{"utilization": 101, "score": 1}]}}}),
    );
    args_error(
        json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": []}}}),
    );
    let m = args_error(json!({"ignoredResourceGroups": ["example.com/foo"]}));
    assert!(m.contains("can't contain '/'"), "{m}");
    args_error(json!({"ignoredResources": ["not a name"]}));
    args_error(json!({"ignoredResources": "example.com/foo"}));
    args_error(json!({"scoringStrategyy": {}}));
}

#[test]
fn registry_builds_all_extension_points() {
    let ext = new(&json!({}), &Handle::default()).unwrap();
    assert!(ext.pre_filter.is_some() && ext.filter.is_some());
    assert!(ext.pre_score.is_some() && ext.score.is_some());
    assert!(matches!(
        new(
            &json!({"scoringStrategy": {"type": "x"}}),
            &Handle::default()
        ),
        Err(PluginError::Args { .. })
    ));
}

#[test]
fn resource_name_classes() {
    assert!(is_extended_resource_name("example.com/foo"));
    assert!(!is_extended_resource_name("cpu"));
    assert!(!is_extended_resource_name("kubernetes.io/foo"));
    assert!(!is_extended_resource_name("requests.example.com/foo"));
    assert!(is_scalar_resource_name("hugepages-2Mi"));
    assert!(is_scalar_resource_name("attachable-volumes-aws-ebs"));
    assert!(is_scalar_resource_name("kubernetes.io/foo"));
    assert!(is_scalar_resource_name("example.com/foo"));
    assert!(!is_scalar_resource_name("memory"));
    assert!(!is_scalar_resource_name("foo"));
}

#[test]
fn filter_fits_and_reports_each_short_resource() {
    let pl = plugin(json!({}));
    let ni = node_info(
        &[("cpu", "2"), ("memory", "4Gi")],
        vec![pod("a")
            .requests(&[("cpu", "1500m"), ("memory", "3Gi")])
            .build()],
    );
    assert!(filter(&pl, pod("p").build(), &ni).is_success());
    let fits = pod("p")
        .requests(&[("cpu", "500m"), ("memory", "1Gi")])
        .build();
    assert!(filter(&pl, fits, &ni).is_success());
    let cpu = pod("p").requests(&[("cpu", "501m")]).build();
    assert_eq!(filter(&pl, cpu, &ni), rejected(&["Insufficient cpu"]));
    let both = pod("p")
        .requests(&[("cpu", "1"), ("memory", "2Gi")])
        .build();
    assert_eq!(
        filter(&pl, both, &ni),
        rejected(&["Insufficient cpu", "Insufficient memory"])
    );
}

#[test]
fn filter_larger_than_node_is_still_unschedulable_in_v1_33() {
    let pl = plugin(json!({}));
    let ni = node_info(&[("cpu", "1")], vec![]);
    let huge = pod("p").requests(&[("cpu", "8")]).build();
    let s = filter(&pl, huge, &ni);
    assert_eq!(s.code, Code::Unschedulable);
    assert_eq!(s.reasons, vec!["Insufficient cpu".to_string()]);
}

#[test]
fn filter_too_many_pods() {
    let pl = plugin(json!({}));
    let ni = node_info(&[("pods", "1")], vec![pod("a").build()]);
    assert_eq!(
        filter(&pl, pod("p").build(), &ni),
        rejected(&["Too many pods"])
    );
    let big = pod("p").requests(&[("cpu", "5")]).build();
    assert_eq!(
        filter(&pl, big, &ni),
        rejected(&["Too many pods", "Insufficient cpu"])
    );
    // A node reporting no pod capacity takes none.
    let ni = NodeInfo::new(Arc::new(Node::default()));
    assert_eq!(
        filter(&pl, pod("p").build(), &ni),
        rejected(&["Too many pods"])
    );
}

#[test]
fn filter_ephemeral_storage_and_scalar_resources() {
    let pl = plugin(json!({}));
    let ni = node_info(
        &[
            ("ephemeral-storage", "10Gi"),
            ("example.com/gpu", "2"),
            ("hugepages-2Mi", "4Mi"),
        ],
        vec![pod("a").requests(&[("example.com/gpu", "1")]).build()],
    );
    let p = pod("p").requests(&[("ephemeral-storage", "11Gi")]).build();
    assert_eq!(
        filter(&pl, p, &ni),
        rejected(&["Insufficient ephemeral-storage"])
    );
    let p = pod("p").requests(&[("example.com/gpu", "1")]).build();
    assert!(filter(&pl, p, &ni).is_success());
    let p = pod("p")
        .requests(&[
            ("example.com/gpu", "2"),
            ("hugepages-2Mi", "6Mi"),
            ("example.com/fpga", "1"),
        ])
        .build();
    assert_eq!(
        filter(&pl, p, &ni),
        rejected(&[
            "Insufficient example.com/fpga",
            "Insufficient example.com/gpu",
            "Insufficient hugepages-2Mi",
        ])
    );
    // Zero requests of a resource the node lacks are fine.
    let p = pod("p").requests(&[("example.com/fpga", "0")]).build();
    assert!(filter(&pl, p, &ni).is_success());
}

#[test]
fn filter_honours_ignored_resources_and_groups() {
    let ni = node_info(&[], vec![]);
    let p = || {
        pod("p")
            .requests(&[
                ("example.com/foo", "1"),
                ("example.org/bar", "1"),
                ("hugepages-1Gi", "1Gi"),
            ])
            .build()
    };
    let pl = plugin(json!({}));
    assert_eq!(filter(&pl, p(), &ni).reasons.len(), 3);
    let pl = plugin(json!({"ignoredResources": ["example.com/foo", "hugepages-1Gi"]}));
    // Only extended resources can be ignored.
    assert_eq!(
        filter(&pl, p(), &ni),
        rejected(&["Insufficient example.org/bar", "Insufficient hugepages-1Gi"])
    );
    let pl = plugin(json!({"ignoredResources": ["example.com/foo"],
        "ignoredResourceGroups": ["example.org"]}));
    assert_eq!(
        filter(&pl, p(), &ni),
        rejected(&["Insufficient hugepages-1Gi"])
    );
}

#[test]
fn filter_without_pre_filter_is_an_error() {
    let pl = plugin(json!({}));
    let s = pl.filter(
        &CycleState::default(),
        &info(pod("p").build()),
        &node_info(&[], vec![]),
    );
    assert_eq!(s.code, Code::Error);
    assert!(s.reasons[0].contains("PreFilterNodeResourcesFit"));
}

#[test]
fn fits_helper_matches_filter() {
    let ni = node_info(&[("cpu", "1")], vec![]);
    let lacking = fits(&info(pod("p").requests(&[("cpu", "2")]).build()), &ni);
    assert_eq!(
        lacking,
        vec![InsufficientResource {
            resource_name: "cpu".into(),
            reason: "Insufficient cpu".into(),
            requested: 2000,
            used: 0,
            capacity: 1000,
        }]
    );
}

#[test]
fn per_resource_scores() {
    assert_eq!(least_requested_score(1000, 4000), 75);
    assert_eq!(least_requested_score(3333, 10000), 66);
    assert_eq!(least_requested_score(5, 4), 0);
    assert_eq!(least_requested_score(0, 0), 0);
    assert_eq!(most_requested_score(1000, 4000), 25);
    assert_eq!(most_requested_score(5, 4), 100);
    assert_eq!(most_requested_score(1, 0), 0);
    let shape = [(0, 0), (50, 100), (100, 0)];
    assert_eq!(broken_linear(&shape, 25), 50);
    assert_eq!(broken_linear(&shape, 60), 80);
    assert_eq!(broken_linear(&shape, 100), 0);
    let shape = [(20, 30), (80, 90)];
    assert_eq!(broken_linear(&shape, 0), 30);
    assert_eq!(broken_linear(&shape, 50), 60);
    assert_eq!(broken_linear(&shape, 100), 90);
}

fn cpu_mem_pod(cpu: &str, mem: &str) -> Pod {
    pod("p").requests(&[("cpu", cpu), ("memory", mem)]).build()
}

#[test]
fn least_allocated_score() {
    let pl = plugin(json!({}));
    let ni = node_info(&[("cpu", "4"), ("memory", "10000")], vec![]);
    // cpu (4000-1000)*100/4000 = 75, memory (10000-2000)*100/10000 = 80.
    assert_eq!(score(&pl, cpu_mem_pod("1", "2000"), &ni), 77);
    let ni = node_info(
        &[("cpu", "4"), ("memory", "10000")],
        vec![cpu_mem_pod("3", "5000")],
    );
    // cpu 0 (4000 of 4000), memory 30.
    assert_eq!(score(&pl, cpu_mem_pod("1", "2000"), &ni), 15);
    // Over capacity scores 0.
    assert_eq!(score(&pl, cpu_mem_pod("2", "6000"), &ni), 0);
}

#[test]
fn scoring_counts_non_zero_defaults() {
    let pl = plugin(json!({}));
    // 100m of 1000m, 200Mi of 1000Mi.
    let ni = node_info(&[("cpu", "1"), ("memory", "1000Mi")], vec![]);
    assert_eq!(score(&pl, pod("p").build(), &ni), (90 + 80) / 2);
    // A pod on the node without requests counts its defaults too.
    let ni = node_info(
        &[("cpu", "1"), ("memory", "1000Mi")],
        vec![pod("a").build()],
    );
    assert_eq!(score(&pl, pod("p").build(), &ni), (80 + 60) / 2);
    // An explicit zero request stays zero.
    let zero = cpu_mem_pod("0", "0");
    let ni = node_info(&[("cpu", "1"), ("memory", "1000Mi")], vec![]);
    assert_eq!(score(&pl, zero, &ni), 100);
}

#[test]
fn most_allocated_score_with_weights() {
    let ni = node_info(&[("cpu", "4"), ("memory", "10000")], vec![]);
    let pl = plugin(json!({"scoringStrategy": {"type": "MostAllocated"}}));
    // cpu 25, memory 20.
    assert_eq!(score(&pl, cpu_mem_pod("1", "2000"), &ni), 22);
    let pl = plugin(json!({"scoringStrategy": {"type": "MostAllocated",
        "resources": [{"name": "cpu", "weight": 2}, {"name": "memory", "weight": 1}]}}));
    // (25*2 + 20) / 3.
    assert_eq!(score(&pl, cpu_mem_pod("1", "2000"), &ni), 23);
    // Over capacity is capped at 100.
    assert_eq!(score(&pl, cpu_mem_pod("8", "20000"), &ni), 100);
}

#[test]
fn requested_to_capacity_ratio_score() {
    let ni = node_info(&[("cpu", "4"), ("memory", "10000")], vec![]);
    let pl = plugin(
        json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [
            {"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}}),
    );
    // 25 and 20, averaged and rounded half away from zero.
    assert_eq!(score(&pl, cpu_mem_pod("1", "2000"), &ni), 23);
    let pl = plugin(
        json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [
            {"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]}}}),
    );
    // cpu is full (score 0, left out of the average); memory 20% → 80.
    assert_eq!(score(&pl, cpu_mem_pod("4", "2000"), &ni), 80);
    // Over capacity counts as full utilization.
    assert_eq!(score(&pl, cpu_mem_pod("5", "20000"), &ni), 0);
}

#[test]
fn extended_resources_score_only_when_requested() {
    let ni = node_info(
        &[("cpu", "4"), ("memory", "10000"), ("example.com/gpu", "4")],
        // Explicit zeros: no non-zero defaults for the pod on the node.
        vec![pod("a")
            .requests(&[("cpu", "0"), ("memory", "0"), ("example.com/gpu", "1")])
            .build()],
    );
    let pl = plugin(
        json!({"scoringStrategy": {"type": "MostAllocated", "resources": [
        {"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1},
        {"name": "example.com/gpu", "weight": 2}, {"name": "example.com/fpga", "weight": 5}]}}),
    );
    // gpu not requested: only cpu 25 and memory 20.
    assert_eq!(score(&pl, cpu_mem_pod("1", "2000"), &ni), 22);
    // gpu (1+1)/4 → 50 with weight 2; fpga absent on the node is skipped.
    let p = pod("p")
        .requests(&[
            ("cpu", "1"),
            ("memory", "2000"),
            ("example.com/gpu", "1"),
            ("example.com/fpga", "1"),
        ])
        .build();
    assert_eq!(score(&pl, p, &ni), (25 + 20 + 50 * 2) / 4);
}

#[test]
fn ephemeral_storage_scores_on_actual_requests() {
    let ni = node_info(
        &[("ephemeral-storage", "100")],
        vec![pod("a").requests(&[("ephemeral-storage", "30")]).build()],
    );
    let pl = plugin(json!({"scoringStrategy": {"type": "LeastAllocated",
        "resources": [{"name": "ephemeral-storage", "weight": 1}]}}));
    assert_eq!(
        score(
            &pl,
            pod("p").requests(&[("ephemeral-storage", "20")]).build(),
            &ni
        ),
        50
    );
    // A node without the resource scores 0.
    let ni = node_info(&[], vec![]);
    assert_eq!(score(&pl, pod("p").build(), &ni), 0);
}
