//! End-to-end: placement rules beyond resources and taints — pod affinity
//! and anti-affinity, topology spread, RuntimeClass overhead, priorities and
//! preemption — with the real kubectl over simulated nodes.

use std::time::Duration;

use crate::common::{eventually, jsonpath, Server};

fn node(name: &str, cpu: &str, zone: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n  labels:\n    kubernetes.io/hostname: {name}\n    \
         topology.kubernetes.io/zone: {zone}\nstatus:\n  capacity:\n    cpu: \"{cpu}\"\n    \
         memory: 16Gi\n    pods: \"110\"\n---\n"
    )
}

/// A pod with labels, a cpu request and extra spec lines (indented by 2).
fn pod(name: &str, labels: &[(&str, &str)], cpu: &str, spec: &str) -> String {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("    {k}: {v}\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n{labels}spec:\n{spec}  \
         containers:\n  - name: app\n    image: nginx\n    resources:\n      requests:\n        \
         cpu: \"{cpu}\"\n---\n"
    )
}

fn setup(nodes: &[(&str, &str, &str)]) -> Server {
    let s = Server::start();
    let manifests: String = nodes.iter().map(|(n, c, z)| node(n, c, z)).collect();
    s.ok_stdin(&["apply", "-f", "-"], &manifests);
    eventually(Duration::from_secs(30), || {
        let out = s.ok(&["get", "nodes"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == nodes.len()).then_some(())
    });
    s
}

fn wait_node(s: &Server, pod: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let n = jsonpath(s, &["get", "pod", pod], "{.spec.nodeName}");
        (!n.is_empty()).then_some(n)
    })
}

fn wait_unschedulable(s: &Server, pod: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let m = jsonpath(
            s,
            &["get", "pod", pod],
            "{.status.conditions[?(@.type==\"PodScheduled\")].message}",
        );
        (!m.is_empty()).then_some(m)
    })
}

const REDIS_AFFINITY: &str = "  affinity:\n    podAffinity:\n      \
    requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          \
    matchLabels:\n            app: redis\n        topologyKey: kubernetes.io/hostname\n";

#[test]
fn pod_affinity_and_anti_affinity() {
    let s = setup(&[("a", "4", "z1"), ("b", "4", "z1"), ("c", "4", "z2")]);
    // No redis pod yet, and the pod does not match its own term: Pending.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("web-0", &[("app", "web")], "100m", REDIS_AFFINITY),
    );
    let msg = wait_unschedulable(&s, "web-0");
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod affinity rules."),
        "{msg}"
    );
    // The redis pod lands on b; the web pod follows it there.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod(
            "redis",
            &[("app", "redis")],
            "100m",
            "  nodeSelector:\n    kubernetes.io/hostname: b\n",
        ),
    );
    assert_eq!(wait_node(&s, "redis"), "b");
    assert_eq!(wait_node(&s, "web-0"), "b");
    // Anti-affinity to redis over zones: only zone z2 (node c).
    let anti = "  affinity:\n    podAntiAffinity:\n      \
        requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          \
        matchExpressions:\n          - key: app\n            operator: In\n            \
        values: [redis]\n        topologyKey: topology.kubernetes.io/zone\n";
    for i in 0..2 {
        let name = format!("away-{i}");
        s.ok_stdin(
            &["apply", "-f", "-"],
            &pod(&name, &[("app", "away")], "100m", anti),
        );
        assert_eq!(wait_node(&s, &name), "c", "{name}");
    }
    // Symmetry: a pod on c that repels app=cache keeps new cache pods off
    // c, although they say nothing about it themselves.
    let repel = "  nodeSelector:\n    kubernetes.io/hostname: c\n  affinity:\n    \
        podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      \
        - labelSelector:\n          matchLabels:\n            app: cache\n        \
        topologyKey: kubernetes.io/hostname\n";
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("guard", &[("app", "guard")], "100m", repel),
    );
    assert_eq!(wait_node(&s, "guard"), "c");
    let pinned_c = "  nodeSelector:\n    topology.kubernetes.io/zone: z2\n";
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("cache", &[("app", "cache")], "100m", pinned_c),
    );
    let msg = wait_unschedulable(&s, "cache");
    assert!(
        msg.contains("1 node(s) didn't satisfy existing pods anti-affinity rules"),
        "{msg}"
    );
}

#[test]
fn topology_spread_puts_one_pod_on_each_node() {
    let s = setup(&[("a", "4", "z1"), ("b", "4", "z1"), ("c", "4", "z2")]);
    let spread = "  topologySpreadConstraints:\n  - maxSkew: 1\n    \
        topologyKey: kubernetes.io/hostname\n    whenUnsatisfiable: DoNotSchedule\n    \
        labelSelector:\n      matchLabels:\n        app: spread\n";
    let all: String = (0..3)
        .map(|i| pod(&format!("s-{i}"), &[("app", "spread")], "100m", spread))
        .collect();
    s.ok_stdin(&["apply", "-f", "-"], &all);
    let mut nodes: Vec<String> = (0..3).map(|i| wait_node(&s, &format!("s-{i}"))).collect();
    nodes.sort();
    assert_eq!(nodes, ["a", "b", "c"]);
    // Pods limited to zone z1 (a, b) that still count c as a domain
    // (nodeAffinityPolicy: Ignore): a and b may each reach 2 (skew 1 over
    // c's 1); a fifth would make skew 2 and stays Pending.
    let z1 = "  nodeSelector:\n    topology.kubernetes.io/zone: z1\n";
    let ignore = spread.replace(
        "    labelSelector:",
        "    nodeAffinityPolicy: Ignore\n    labelSelector:",
    );
    let spec = format!("{z1}{ignore}");
    let mut z1_nodes = Vec::new();
    for i in 3..5 {
        let name = format!("s-{i}");
        s.ok_stdin(
            &["apply", "-f", "-"],
            &pod(&name, &[("app", "spread")], "100m", &spec),
        );
        z1_nodes.push(wait_node(&s, &name));
    }
    z1_nodes.sort();
    assert_eq!(z1_nodes, ["a", "b"]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("s-5", &[("app", "spread")], "100m", &spec),
    );
    let msg = wait_unschedulable(&s, "s-5");
    assert!(
        msg.contains("2 node(s) didn't match pod topology spread constraints"),
        "{msg}"
    );
}

#[test]
fn runtime_class_overhead_counts_toward_fit() {
    let s = setup(&[("two", "2", "z1"), ("two-and-half", "2500m", "z1")]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: kata\n\
         handler: kata\noverhead:\n  podFixed:\n    cpu: 250m\n    memory: 120Mi\n",
    );
    // Limits only (requests default to them): 500m + 1500m + 250m overhead.
    let kata = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  \
             runtimeClassName: kata\n  containers:\n  - name: a\n    image: busybox\n    \
             resources:\n      limits:\n        cpu: 500m\n        memory: 100Mi\n  \
             - name: b\n    image: nginx\n    resources:\n      limits:\n        \
             cpu: 1500m\n        memory: 100Mi\n"
        )
    };
    s.ok_stdin(&["apply", "-f", "-"], &kata("k1"));
    assert_eq!(
        jsonpath(
            &s,
            &["get", "pod", "k1"],
            "{.spec.overhead.cpu} {.spec.overhead.memory}"
        ),
        "250m 120Mi"
    );
    // 2250m fits 2.5 CPUs, not 2.
    assert_eq!(wait_node(&s, "k1"), "two-and-half");
    // A second one fits nowhere now.
    s.ok_stdin(&["apply", "-f", "-"], &kata("k2"));
    let msg = wait_unschedulable(&s, "k2");
    assert!(
        msg.starts_with("0/2 nodes are available: 2 Insufficient cpu."),
        "{msg}"
    );
}

fn priority_class(name: &str, value: i32, policy: &str) -> String {
    format!(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: {name}\n\
         value: {value}\npreemptionPolicy: {policy}\n---\n"
    )
}

#[test]
fn preemption_evicts_a_lower_priority_pod() {
    let s = setup(&[("a", "2", "z1")]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            "{}{}{}",
            priority_class("low", 100, "PreemptLowerPriority"),
            priority_class("high", 1000, "PreemptLowerPriority"),
            priority_class("high-never", 1000, "Never"),
        ),
    );
    let low = "  priorityClassName: low\n";
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("low-1", &[("app", "low")], "1", low),
    );
    assert_eq!(wait_node(&s, "low-1"), "a");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("low-2", &[("app", "low")], "1", low),
    );
    assert_eq!(wait_node(&s, "low-2"), "a");
    // A high-priority pod that never preempts waits.
    let never = "  priorityClassName: high-never\n";
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("polite", &[("app", "high")], "1", never),
    );
    let msg = wait_unschedulable(&s, "polite");
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to \
         preemptionPolicy=Never.."
    );
    s.ok(&["delete", "pod", "polite", "--wait=false"]);
    // The high-priority pod preempts one low pod: the one that started
    // last (the other is more important by start time).
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod(
            "urgent",
            &[("app", "high")],
            "1",
            "  priorityClassName: high\n",
        ),
    );
    assert_eq!(wait_node(&s, "urgent"), "a");
    eventually(Duration::from_secs(30), || {
        let out = s.ok(&["get", "pods", "-l", "app=low", "-o", "name"]);
        (out.lines().count() == 1).then_some(())
    });
    let left = s.ok(&["get", "pods", "-l", "app=low", "-o", "name"]);
    assert_eq!(left.trim(), "pod/low-1");
    let uid = jsonpath(&s, &["get", "pod", "urgent"], "{.metadata.uid}");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=low-2,reason=Preempted",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert_eq!(events, format!("Preempted by pod {uid} on node a"));
}
