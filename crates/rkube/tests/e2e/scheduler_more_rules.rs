//! End-to-end: more placement rules with the real kubectl over simulated
//! nodes — host ports, node affinity operators and matchFields,
//! PreferNoSchedule scoring, pod affinity across namespaces, preferred
//! anti-affinity, topology spread's nodeTaintsPolicy, extended resources
//! and init containers.

use std::time::Duration;

use crate::common::{eventually, jsonpath, Server};

/// A simulated node with extra labels, taints (`key=value:Effect`) and
/// capacity lines.
fn node(name: &str, labels: &[(&str, &str)], taints: &[&str], capacity: &[(&str, &str)]) -> String {
    let mut labels_yaml = format!("    kubernetes.io/hostname: {name}\n");
    for (k, v) in labels {
        labels_yaml.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    let mut spec = String::new();
    if !taints.is_empty() {
        spec.push_str("spec:\n  taints:\n");
        for t in taints {
            let (kv, effect) = t.split_once(':').unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            spec.push_str(&format!(
                "  - key: {k}\n    value: {v}\n    effect: {effect}\n"
            ));
        }
    }
    let mut cap = "    cpu: \"4\"\n    memory: 16Gi\n    pods: \"110\"\n".to_string();
    for (k, v) in capacity {
        cap.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n  labels:\n{labels_yaml}{spec}status:\n  capacity:\n{cap}---\n"
    )
}

/// A pod with labels, a namespace and extra spec lines (indented by 2); one
/// container requesting 100m CPU unless `resources` replaces that.
fn pod(name: &str, ns: &str, labels: &[(&str, &str)], spec: &str, resources: &str) -> String {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("    {k}: {v}\n"))
        .collect();
    let resources = if resources.is_empty() {
        "        cpu: 100m\n"
    } else {
        resources
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    \
         x: z\n{labels}spec:\n{spec}  containers:\n  - name: app\n    image: nginx\n    \
         resources:\n      requests:\n{resources}---\n"
    )
}

fn setup(nodes: &[String]) -> Server {
    let s = Server::start();
    s.ok_stdin(&["apply", "-f", "-"], &nodes.concat());
    eventually(Duration::from_secs(30), || {
        let out = s.ok(&["get", "nodes"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == nodes.len()).then_some(())
    });
    s
}

fn wait_node(s: &Server, ns: &str, pod: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let n = jsonpath(s, &["get", "pod", "-n", ns, pod], "{.spec.nodeName}");
        (!n.is_empty()).then_some(n)
    })
}

fn wait_unschedulable(s: &Server, ns: &str, pod: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let m = jsonpath(
            s,
            &["get", "pod", "-n", ns, pod],
            "{.status.conditions[?(@.type==\"PodScheduled\")].message}",
        );
        (!m.is_empty()).then_some(m)
    })
}

#[test]
fn host_ports_node_affinity_operators_and_prefer_no_schedule() {
    let s = setup(&[
        node("n1", &[("gen", "3")], &[], &[]),
        node("n2", &[("gen", "5")], &[], &[]),
        node(
            "n3",
            &[("gen", "8")],
            &["dedicated=batch:PreferNoSchedule"],
            &[],
        ),
    ]);
    // Host ports: the second pod asking for 8080 on n1 does not fit.
    let port_pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeSelector:\n    \
             kubernetes.io/hostname: n1\n  containers:\n  - name: web\n    image: nginx\n    \
             ports:\n    - containerPort: 80\n      hostPort: 8080\n"
        )
    };
    s.ok_stdin(&["apply", "-f", "-"], &port_pod("hp1"));
    assert_eq!(wait_node(&s, "default", "hp1"), "n1");
    s.ok_stdin(&["apply", "-f", "-"], &port_pod("hp2"));
    let msg = wait_unschedulable(&s, "default", "hp2");
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod \
             ports, 2 node(s) didn't match Pod's node affinity/selector."
        ),
        "{msg}"
    );
    // Gt and Lt on a numeric label: only gen=5.
    let gt_lt = "  affinity:\n    nodeAffinity:\n      \
        requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        \
        - matchExpressions:\n          - key: gen\n            operator: Gt\n            \
        values: [\"4\"]\n          - key: gen\n            operator: Lt\n            \
        values: [\"7\"]\n";
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("gtlt", "default", &[], gt_lt, ""),
    );
    assert_eq!(wait_node(&s, "default", "gtlt"), "n2");
    // matchFields on metadata.name: n3, whose PreferNoSchedule taint only
    // lowers its score.
    let fields = "  affinity:\n    nodeAffinity:\n      \
        requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        \
        - matchFields:\n          - key: metadata.name\n            operator: In\n            \
        values: [n3]\n";
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("byname", "default", &[], fields, ""),
    );
    assert_eq!(wait_node(&s, "default", "byname"), "n3");
    // Between n2 and n3 (gen > 4), the untainted n2 scores higher.
    let gt4 = "  affinity:\n    nodeAffinity:\n      \
        requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        \
        - matchExpressions:\n          - key: gen\n            operator: Gt\n            \
        values: [\"4\"]\n";
    for i in 0..2 {
        let name = format!("soft-{i}");
        s.ok_stdin(&["apply", "-f", "-"], &pod(&name, "default", &[], gt4, ""));
        assert_eq!(wait_node(&s, "default", &name), "n2", "{name}");
    }
}

#[test]
fn pod_affinity_across_namespaces_and_preferred_anti_affinity() {
    let s = setup(&[
        node("a", &[], &[], &[]),
        node("b", &[], &[], &[]),
        node("c", &[], &[], &[]),
    ]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cache\n  labels:\n    team: cache\n",
    );
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod(
            "redis",
            "cache",
            &[("app", "redis")],
            "  nodeSelector:\n    kubernetes.io/hostname: b\n",
            "",
        ),
    );
    assert_eq!(wait_node(&s, "cache", "redis"), "b");
    // Affinity to app=redis in namespaces labelled team=cache: b.
    let across = "  affinity:\n    podAffinity:\n      \
        requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          \
        matchLabels:\n            app: redis\n        namespaceSelector:\n          \
        matchLabels:\n            team: cache\n        topologyKey: kubernetes.io/hostname\n";
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("near", "default", &[], across, ""),
    );
    assert_eq!(wait_node(&s, "default", "near"), "b");
    // Without the namespaceSelector the term means the pod's own namespace,
    // where no redis runs.
    let own = "  affinity:\n    podAffinity:\n      \
        requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          \
        matchLabels:\n            app: redis\n        topologyKey: kubernetes.io/hostname\n";
    s.ok_stdin(&["apply", "-f", "-"], &pod("lost", "default", &[], own, ""));
    let msg = wait_unschedulable(&s, "default", "lost");
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod affinity rules."),
        "{msg}"
    );
    // Preferred anti-affinity to redis (any namespace): not b.
    let avoid = "  affinity:\n    podAntiAffinity:\n      \
        preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 100\n        \
        podAffinityTerm:\n          labelSelector:\n            matchLabels:\n              \
        app: redis\n          namespaceSelector: {}\n          \
        topologyKey: kubernetes.io/hostname\n";
    for i in 0..3 {
        let name = format!("shy-{i}");
        s.ok_stdin(
            &["apply", "-f", "-"],
            &pod(&name, "default", &[], avoid, ""),
        );
        assert_ne!(wait_node(&s, "default", &name), "b", "{name}");
    }
}

#[test]
fn spread_node_taints_policy_extended_resources_and_init_containers() {
    let s = setup(&[
        node(
            "a",
            &[("topology.kubernetes.io/zone", "z1")],
            &[],
            &[("example.com/gpu", "2")],
        ),
        node("b", &[("topology.kubernetes.io/zone", "z2")], &[], &[]),
        node(
            "c",
            &[("topology.kubernetes.io/zone", "z3")],
            &["dedicated=gpu:NoSchedule"],
            &[],
        ),
    ]);
    // Spread over zones; c's zone counts (nodeTaintsPolicy Ignore, the
    // default) though nothing can land there: after one pod in z1 and one in
    // z2 a third would make skew 2.
    let spread = |policy: &str| {
        format!(
            "  topologySpreadConstraints:\n  - maxSkew: 1\n    \
             topologyKey: topology.kubernetes.io/zone\n    whenUnsatisfiable: DoNotSchedule\n    \
             nodeTaintsPolicy: {policy}\n    labelSelector:\n      matchLabels:\n        \
             app: spread\n"
        )
    };
    let mut placed = Vec::new();
    for i in 0..2 {
        let name = format!("s-{i}");
        s.ok_stdin(
            &["apply", "-f", "-"],
            &pod(
                &name,
                "default",
                &[("app", "spread")],
                &spread("Ignore"),
                "",
            ),
        );
        placed.push(wait_node(&s, "default", &name));
    }
    placed.sort();
    assert_eq!(placed, ["a", "b"]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod(
            "s-2",
            "default",
            &[("app", "spread")],
            &spread("Ignore"),
            "",
        ),
    );
    let msg = wait_unschedulable(&s, "default", "s-2");
    assert!(
        msg.contains("2 node(s) didn't match pod topology spread constraints"),
        "{msg}"
    );
    // With Honor the tainted node's zone is not a domain: it fits.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("s-3", "default", &[("app", "spread")], &spread("Honor"), ""),
    );
    let n = wait_node(&s, "default", "s-3");
    assert!(n == "a" || n == "b", "{n}");

    // Extended resources: only a has GPUs, and only 2.
    let gpus = |n: u32| format!("        cpu: 100m\n        example.com/gpu: \"{n}\"\n");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("gpu-1", "default", &[], "", &gpus(1)).replace(
            "      requests:\n",
            "      limits:\n        example.com/gpu: \"1\"\n      requests:\n",
        ),
    );
    assert_eq!(wait_node(&s, "default", "gpu-1"), "a");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("gpu-3", "default", &[], "", &gpus(3)).replace(
            "      requests:\n",
            "      limits:\n        example.com/gpu: \"3\"\n      requests:\n",
        ),
    );
    let msg = wait_unschedulable(&s, "default", "gpu-3");
    assert!(msg.contains("Insufficient example.com/gpu"), "{msg}");

    // Init containers count by the max rule: a 5-CPU init container does
    // not fit any 4-CPU node, although the app container asks for 100m.
    let init = "  initContainers:\n  - name: setup\n    image: busybox\n    resources:\n      \
        requests:\n        cpu: \"5\"\n";
    s.ok_stdin(
        &["apply", "-f", "-"],
        &pod("init", "default", &[], init, ""),
    );
    let msg = wait_unschedulable(&s, "default", "init");
    assert!(msg.contains("Insufficient cpu"), "{msg}");
}
