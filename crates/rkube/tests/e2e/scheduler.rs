//! End-to-end: the scheduler inside `rkube server`, driven with the real
//! kubectl over simulated nodes created as annotated Node manifests.

use std::time::Duration;

use crate::common::{eventually, jsonpath, Server};

fn node(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n  labels:\n    kubernetes.io/hostname: {name}\n\
         status:\n  capacity:\n    cpu: \"{cpu}\"\n    memory: 16Gi\n    pods: \"110\"\n---\n"
    )
}

fn pod(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  \
         - name: app\n    image: nginx\n    resources:\n      requests:\n        cpu: \"{cpu}\"\n"
    )
}

fn node_of(s: &Server, pod: &str) -> String {
    jsonpath(s, &["get", "pod", pod], "{.spec.nodeName}")
}

fn wait_node(s: &Server, pod: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let n = node_of(s, pod);
        (!n.is_empty()).then_some(n)
    })
}

fn setup(nodes: &[(&str, &str)]) -> Server {
    let s = Server::start();
    let manifests: String = nodes.iter().map(|(n, c)| node(n, c)).collect();
    s.ok_stdin(&["apply", "-f", "-"], &manifests);
    eventually(Duration::from_secs(30), || {
        let out = s.ok(&["get", "nodes"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == nodes.len()).then_some(())
    });
    s
}

#[test]
fn resources_and_cordon_decide_placement() {
    let s = setup(&[("a", "2"), ("b", "5")]);
    // Only b has 3 CPUs free.
    s.ok_stdin(&["apply", "-f", "-"], &pod("p1", "3"));
    assert_eq!(wait_node(&s, "p1"), "b");
    eventually(Duration::from_secs(30), || {
        (jsonpath(&s, &["get", "pod", "p1"], "{.status.phase}") == "Running").then_some(())
    });
    // Cordoned b takes nothing: p2 goes to a.
    s.ok(&["cordon", "b"]);
    s.ok_stdin(&["apply", "-f", "-"], &pod("p2", "1"));
    assert_eq!(wait_node(&s, "p2"), "a");
    // p3 fits nowhere: a lacks CPU, b is cordoned. It stays Pending with
    // upstream's condition and event.
    s.ok_stdin(&["apply", "-f", "-"], &pod("p3", "1500m"));
    // DefaultPreemption adds its own verdict: a has no lower-priority pod
    // to evict, b is cordoned.
    let want = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable. \
                preemption: 0/2 nodes are available: 1 No preemption victims found for \
                incoming pod, 1 Preemption is not helpful for scheduling..";
    eventually(Duration::from_secs(30), || {
        let c = jsonpath(
            &s,
            &["get", "pod", "p3"],
            "{.status.conditions[?(@.type==\"PodScheduled\")].reason}|\
             {.status.conditions[?(@.type==\"PodScheduled\")].message}",
        );
        (c == format!("Unschedulable|{want}")).then_some(())
    });
    assert!(s.ok(&["get", "pod", "p3"]).contains("Pending"));
    eventually(Duration::from_secs(30), || {
        let ev = s.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=p3",
        ]);
        (ev.contains("FailedScheduling") && ev.contains(want)).then_some(())
    });
    assert!(s.ok(&["describe", "pod", "p3"]).contains(want));
    // Uncordoning b is a cluster event: p3 is retried and lands there.
    s.ok(&["uncordon", "b"]);
    assert_eq!(wait_node(&s, "p3"), "b");
    let ev = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=p3",
    ]);
    assert!(ev.contains("Successfully assigned default/p3 to b"), "{ev}");
    // Deleting a pod frees room: a 2-CPU pod waits until p1 goes.
    s.ok_stdin(&["apply", "-f", "-"], &pod("p4", "2"));
    eventually(Duration::from_secs(30), || {
        jsonpath(&s, &["get", "pod", "p4"], "{.status.conditions[0].reason}")
            .eq("Unschedulable")
            .then_some(())
    });
    s.ok(&["delete", "pod", "p1", "--timeout=30s"]);
    assert_eq!(wait_node(&s, "p4"), "b");
}

#[test]
fn scheduling_gates_hold_pods_until_removed() {
    let s = setup(&[("a", "2")]);
    let gated = pod("g", "100m").replace(
        "spec:\n",
        "spec:\n  schedulingGates:\n  - name: example.com/quota\n",
    );
    s.ok_stdin(&["apply", "-f", "-"], &gated);
    eventually(Duration::from_secs(30), || {
        s.ok(&["get", "pod", "g"])
            .contains("SchedulingGated")
            .then_some(())
    });
    assert_eq!(
        jsonpath(&s, &["get", "pod", "g"], "{.spec.schedulingGates}"),
        r#"[{"name":"example.com/quota"}]"#
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node_of(&s, "g"), "", "a gated pod is not scheduled");
    s.ok(&[
        "patch",
        "pod",
        "g",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/schedulingGates"}]"#,
    ]);
    assert_eq!(wait_node(&s, "g"), "a");
}

#[test]
fn taints_and_node_affinity() {
    let s = setup(&[("a", "4"), ("b", "4"), ("c", "4")]);
    s.ok(&["label", "node", "b", "disktype=ssd"]);
    s.ok(&["taint", "node", "a", "dedicated=gpu:NoSchedule"]);
    s.ok(&["taint", "node", "c", "dedicated=gpu:NoSchedule"]);
    // Only b is untainted.
    s.ok_stdin(&["apply", "-f", "-"], &pod("t1", "100m"));
    assert_eq!(wait_node(&s, "t1"), "b");
    // A pod that must run on a: untolerated taint, upstream's message.
    let pinned = pod("t2", "100m").replace(
        "spec:\n",
        "spec:\n  nodeSelector:\n    kubernetes.io/hostname: a\n",
    );
    s.ok_stdin(&["apply", "-f", "-"], &pinned);
    // Filters run in upstream's order (TaintToleration before
    // NodeAffinity): c fails on its taint, b on the selector.
    let want = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                2 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/3 nodes are \
                available: 3 Preemption is not helpful for scheduling..";
    eventually(Duration::from_secs(30), || {
        let m = jsonpath(&s, &["get", "pod", "t2"], "{.status.conditions[0].message}");
        (m == want).then_some(())
    });
    // Removing the taint with `-` lets it in.
    s.ok(&["taint", "node", "a", "dedicated-"]);
    assert_eq!(wait_node(&s, "t2"), "a");
    // A toleration admits the tainted node c.
    let tolerant = pod("t3", "100m").replace(
        "spec:\n",
        "spec:\n  nodeSelector:\n    kubernetes.io/hostname: c\n  tolerations:\n  \
         - key: dedicated\n    operator: Equal\n    value: gpu\n    effect: NoSchedule\n",
    );
    s.ok_stdin(&["apply", "-f", "-"], &tolerant);
    assert_eq!(wait_node(&s, "t3"), "c");
    // Required affinity to a or b by hostname, preferring disktype=ssd: b.
    for i in 0..3 {
        let name = format!("aff{i}");
        let affine = pod(&name, "100m").replace(
            "spec:\n",
            "spec:\n  affinity:\n    nodeAffinity:\n      \
             requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        \
             - matchExpressions:\n          - key: kubernetes.io/hostname\n            \
             operator: In\n            values: [a, b]\n      \
             preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 100\n        \
             preference:\n          matchExpressions:\n          - key: disktype\n            \
             operator: In\n            values: [ssd]\n",
        );
        s.ok_stdin(&["apply", "-f", "-"], &affine);
        assert_eq!(wait_node(&s, &name), "b", "{name} prefers the ssd node");
    }
}
