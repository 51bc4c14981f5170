//! End-to-end: the node lifecycle, taint eviction and disruption
//! controllers and the eviction subresource, driven with the real kubectl
//! over simulated nodes (a node "dies" with the annotation
//! `rkube.io/simulate-heartbeat: stopped`).

use std::time::Duration;

use crate::common::{eventually, jsonpath, Server};

const T: Duration = Duration::from_secs(60);

fn node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n  labels:\n    kubernetes.io/hostname: {name}\n\
         status:\n  capacity:\n    cpu: \"4\"\n    memory: 16Gi\n    pods: \"110\"\n---\n"
    )
}

/// A pod bound to `node`, with extra spec lines (already indented).
fn pod(name: &str, node: &str, labels: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\n\
         spec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx\n{extra}---\n"
    )
}

fn tolerate(key: &str, secs: Option<u32>) -> String {
    let secs = secs.map_or(String::new(), |s| format!("\n    tolerationSeconds: {s}"));
    format!("  - key: {key}\n    operator: Exists\n    effect: NoExecute{secs}\n")
}

fn setup(s: &Server, nodes: &[&str]) {
    let manifests: String = nodes.iter().map(|n| node(n)).collect();
    s.ok_stdin(&["apply", "-f", "-"], &manifests);
    eventually(T, || {
        let out = s.ok(&["get", "nodes"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == nodes.len()).then_some(())
    });
}

fn wait_running(s: &Server, pods: &[&str]) {
    for p in pods {
        eventually(T, || {
            (jsonpath(s, &["get", "pod", p], "{.status.phase}") == "Running").then_some(())
        });
    }
}

fn deletion_of(s: &Server, pod: &str) -> String {
    jsonpath(s, &["get", "pod", pod], "{.metadata.deletionTimestamp}")
}

fn pod_gone_or_deleting(s: &Server, pod: &str) -> bool {
    let out = s.kubectl(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    !out.status.success() || !String::from_utf8_lossy(&out.stdout).is_empty()
}

fn events_for(s: &Server, name: &str, reason: &str) -> String {
    s.ok(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        &format!("involvedObject.name={name},reason={reason}"),
        "-o",
        "jsonpath={range .items[*]}{.message}|{.firstTimestamp}|{.source.component}{\"\\n\"}{end}",
    ])
}

fn seconds(rfc3339: &str) -> i64 {
    rfc3339
        .trim()
        .parse::<k8s_openapi::jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("bad time {rfc3339:?}: {e}"))
        .as_second()
}

#[test]
fn dead_node_is_marked_tainted_and_its_pods_evicted_by_toleration() {
    let s = Server::start_with(&[
        "--node-monitor-grace-period",
        "5s",
        "--node-lease-renew-interval",
        "1s",
    ]);
    setup(&s, &["n1", "n2"]);
    let forever = format!(
        "  tolerations:\n{}{}",
        tolerate("node.kubernetes.io/unreachable", None),
        tolerate("node.kubernetes.io/not-ready", None)
    );
    // A real DaemonSet on n1: its controller gives the pod upstream's
    // daemon tolerations (unreachable/not-ready NoExecute, no seconds).
    s.apply(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    \
         matchLabels: {app: agent}\n  template:\n    metadata:\n      labels: {app: agent}\n    \
         spec:\n      nodeSelector: {kubernetes.io/hostname: n1}\n      containers:\n      - name: a\n        \
         image: busybox\n",
    );
    let daemon = eventually(T, || {
        let n = jsonpath(
            &s,
            &["get", "pods", "-l", "app=agent"],
            "{.items[*].metadata.name}",
        );
        (!n.is_empty() && !n.contains(' ')).then_some(n)
    });
    let manifests = [
        pod(
            "gone",
            "n1",
            "",
            &format!(
                "  tolerations:\n{}",
                tolerate("node.kubernetes.io/unreachable", Some(0))
            ),
        ),
        pod(
            "soon",
            "n1",
            "",
            &format!(
                "  tolerations:\n{}",
                tolerate("node.kubernetes.io/unreachable", Some(3))
            ),
        ),
        pod("forever", "n1", "", &forever),
    ]
    .concat();
    s.ok_stdin(&["apply", "-f", "-"], &manifests);
    wait_running(&s, &["gone", "soon", "forever", &daemon]);

    // n1 stops heartbeating.
    s.ok(&[
        "annotate",
        "node",
        "n1",
        "rkube.io/simulate-heartbeat=stopped",
    ]);
    eventually(T, || {
        let c = jsonpath(
            &s,
            &["get", "node", "n1"],
            "{range .status.conditions[*]}{.type}={.status}/{.reason}/{.message};{end}",
        );
        let all_unknown = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
            .iter()
            .all(|t| {
                c.contains(&format!(
                    "{t}=Unknown/NodeStatusUnknown/Kubelet stopped posting node status.;"
                ))
            });
        all_unknown.then_some(())
    });
    let taints = eventually(T, || {
        let t = jsonpath(
            &s,
            &["get", "node", "n1"],
            "{range .spec.taints[*]}{.key}:{.effect}@{.timeAdded};{end}",
        );
        (t.contains("node.kubernetes.io/unreachable:NoExecute@")
            && t.contains("node.kubernetes.io/unreachable:NoSchedule@"))
        .then_some(t)
    });
    let added = taints
        .split(';')
        .find_map(|t| t.strip_prefix("node.kubernetes.io/unreachable:NoExecute@"))
        .unwrap()
        .to_string();
    assert!(!added.is_empty(), "timeAdded set: {taints}");
    assert!(s.ok(&["get", "node", "n1"]).contains("NotReady"));
    assert!(s.ok(&["get", "node", "n2"]).contains(" Ready "));
    eventually(T, || {
        let ev = events_for(&s, "n1", "NodeNotReady");
        ev.contains("Node n1 status is now: NodeNotReady|")
            .then_some(())
    });

    // tolerationSeconds 0: evicted at once, with the DisruptionTarget
    // condition and the event.
    eventually(T, || pod_gone_or_deleting(&s, "gone").then_some(()));
    let cond = jsonpath(
        &s,
        &["get", "pod", "gone"],
        "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
    );
    assert_eq!(cond, "DeletionByTaintManager");
    eventually(T, || {
        events_for(&s, "gone", "TaintManagerEviction")
            .contains("Marking for deletion Pod default/gone|")
            .then_some(())
    });
    // tolerationSeconds 3: evicted 3 s after the taint was added.
    eventually(T, || (!deletion_of(&s, "soon").is_empty()).then_some(()));
    let ev = eventually(T, || {
        let e = events_for(&s, "soon", "TaintManagerEviction");
        e.contains("Marking for deletion Pod default/soon|")
            .then_some(e)
    });
    let marked = ev.lines().next().unwrap().split('|').nth(1).unwrap();
    assert!(
        seconds(marked) - seconds(&added) >= 2,
        "evicted at {marked}, tainted at {added}"
    );
    // Tolerating for ever (like DaemonSet pods): they stay, marked not
    // ready.
    for p in ["forever", daemon.as_str()] {
        assert_eq!(deletion_of(&s, p), "", "{p} must stay");
        eventually(T, || {
            (jsonpath(
                &s,
                &["get", "pod", p],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            ) == "False")
                .then_some(())
        });
    }
    assert!(events_for(&s, "forever", "TaintManagerEviction").is_empty());

    // n1 comes back: the taints go.
    s.ok(&["annotate", "node", "n1", "rkube.io/simulate-heartbeat-"]);
    eventually(T, || {
        let t = jsonpath(&s, &["get", "node", "n1"], "{.spec.taints}");
        let ready = jsonpath(
            &s,
            &["get", "node", "n1"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        (!t.contains("unreachable") && ready == "True").then_some(())
    });
    assert_eq!(deletion_of(&s, "forever"), "");
}

#[test]
fn no_execute_taint_evicts_untolerating_pods_and_cancels_when_removed() {
    let s = Server::start();
    setup(&s, &["n1"]);
    let manifests = [
        pod("plain", "n1", "", ""),
        pod(
            "ok",
            "n1",
            "",
            &format!("  tolerations:\n{}", tolerate("dedicated", None)),
        ),
        pod(
            "later",
            "n1",
            "",
            &format!("  tolerations:\n{}", tolerate("dedicated", Some(600))),
        ),
    ]
    .concat();
    s.ok_stdin(&["apply", "-f", "-"], &manifests);
    wait_running(&s, &["plain", "ok", "later"]);
    s.ok(&["taint", "nodes", "n1", "dedicated=x:NoExecute"]);
    eventually(T, || pod_gone_or_deleting(&s, "plain").then_some(()));
    eventually(T, || {
        let ev = events_for(&s, "plain", "TaintManagerEviction");
        (ev.contains("Marking for deletion Pod default/plain|")
            && ev.contains("|taint-eviction-controller"))
        .then_some(())
    });
    // The taint goes before "later" runs out: its deletion is cancelled.
    s.ok(&["taint", "nodes", "n1", "dedicated=x:NoExecute-"]);
    eventually(T, || {
        events_for(&s, "later", "TaintManagerEviction")
            .contains("Cancelling deletion of Pod default/later|")
            .then_some(())
    });
    assert_eq!(deletion_of(&s, "ok"), "");
    assert_eq!(deletion_of(&s, "later"), "");
}

fn pdb_columns(s: &Server) -> Vec<String> {
    let out = s.ok(&["get", "pdb", "web"]);
    let line = out.lines().nth(1).unwrap_or("").to_string();
    line.split_whitespace().map(str::to_string).collect()
}

fn web_pods(s: &Server) -> usize {
    s.ok(&["get", "pods", "-l", "app=web", "-o", "name"])
        .lines()
        .count()
}

#[test]
fn pdb_status_drain_and_cordon() {
    let s = Server::start();
    setup(&s, &["n1", "n2"]);
    let manifests: String = (0..3)
        .map(|i| pod(&format!("web-{i}"), "n1", "app: web", ""))
        .collect();
    s.ok_stdin(&["apply", "-f", "-"], &manifests);
    wait_running(&s, &["web-0", "web-1", "web-2"]);
    s.apply(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  \
         minAvailable: 3\n  selector:\n    matchLabels: {app: web}\n",
    );
    eventually(T, || {
        let st = jsonpath(
            &s,
            &["get", "pdb", "web"],
            "{.status.currentHealthy}/{.status.desiredHealthy}/{.status.expectedPods}/\
             {.status.disruptionsAllowed}/{.status.observedGeneration}/\
             {.status.conditions[?(@.type==\"DisruptionAllowed\")].reason}",
        );
        (st == "3/3/3/0/1/InsufficientPods").then_some(())
    });
    // NAME MIN-AVAILABLE MAX-UNAVAILABLE ALLOWED-DISRUPTIONS AGE
    let cols = pdb_columns(&s);
    assert_eq!(&cols[..4], &["web", "3", "N/A", "0"], "{cols:?}");

    // Drain is refused by the budget (and cordons the node).
    let drain = [
        "drain",
        "n1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--timeout=8s",
    ];
    let err = s.fails(&drain);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{err}"
    );
    assert_eq!(web_pods(&s), 3);
    let n1 = s.ok(&["get", "node", "n1"]);
    assert!(n1.contains("SchedulingDisabled"), "{n1}");
    eventually(T, || {
        jsonpath(&s, &["get", "node", "n1"], "{.spec.taints[*].key}")
            .contains("node.kubernetes.io/unschedulable")
            .then_some(())
    });

    // One disruption allowed: one pod goes, the rest are refused.
    s.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        "{\"spec\":{\"minAvailable\":2}}",
    ]);
    eventually(T, || (pdb_columns(&s)[3] == "1").then_some(()));
    let err = s.fails(&drain);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{err}"
    );
    eventually(T, || (web_pods(&s) == 2).then_some(()));
    eventually(T, || {
        let st = jsonpath(
            &s,
            &["get", "pdb", "web"],
            "{.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}",
        );
        (st == "2/2/0").then_some(())
    });

    // The budget allows everything: drain succeeds.
    s.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        "{\"spec\":{\"minAvailable\":0}}",
    ]);
    eventually(T, || (pdb_columns(&s)[3] == "2").then_some(()));
    let out = s.ok(&[
        "drain",
        "n1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--timeout=60s",
    ]);
    assert!(out.contains("node/n1 drained"), "{out}");
    assert_eq!(web_pods(&s), 0);

    // Uncordon lifts SchedulingDisabled and the unschedulable taint.
    s.ok(&["uncordon", "n1"]);
    assert!(!s.ok(&["get", "node", "n1"]).contains("SchedulingDisabled"));
    eventually(T, || {
        (!jsonpath(&s, &["get", "node", "n1"], "{.spec.taints}").contains("unschedulable"))
            .then_some(())
    });
    s.ok(&["cordon", "n2"]);
    assert!(s.ok(&["get", "node", "n2"]).contains("SchedulingDisabled"));
    s.ok(&["uncordon", "n2"]);
    assert!(!s.ok(&["get", "node", "n2"]).contains("SchedulingDisabled"));
}

/// Issue 5's node-failure story: a ReplicaSet pod tolerating the
/// unreachable taint for 5 s is evicted about 5 s after its node is tainted
/// and the ReplicaSet replaces it on the healthy node.
#[test]
fn replicaset_pod_on_a_dead_node_is_replaced_on_a_healthy_one() {
    let s = Server::start_with(&[
        "--node-monitor-grace-period",
        "5s",
        "--node-lease-renew-interval",
        "1s",
    ]);
    setup(&s, &["n1", "n2"]);
    // Only n1 takes the first pod.
    s.ok(&["cordon", "n2"]);
    s.apply(&format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    \
         spec:\n      containers:\n      - name: app\n        image: nginx\n      tolerations:\n{}",
        tolerate("node.kubernetes.io/unreachable", Some(5)).replace("  - ", "      - ").replace("\n    ", "\n        ")
    ));
    let first = eventually(T, || {
        let out = jsonpath(
            &s,
            &["get", "pods", "-l", "app=web"],
            "{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
        );
        let l = out.lines().next()?.to_string();
        l.ends_with(" n1 Running")
            .then(|| l.split(' ').next().unwrap().to_string())
    });
    s.ok(&["uncordon", "n2"]);
    s.ok(&[
        "annotate",
        "node",
        "n1",
        "rkube.io/simulate-heartbeat=stopped",
    ]);
    let added = eventually(T, || {
        let t = jsonpath(
            &s,
            &["get", "node", "n1"],
            "{range .spec.taints[*]}{.key}:{.effect}@{.timeAdded};{end}",
        );
        t.split(';')
            .find_map(|t| t.strip_prefix("node.kubernetes.io/unreachable:NoExecute@"))
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    });
    // Evicted once its 5 s are up, not before.
    let ev = eventually(T, || {
        let e = events_for(&s, &first, "TaintManagerEviction");
        e.contains(&format!("Marking for deletion Pod default/{first}|"))
            .then_some(e)
    });
    let marked = ev.lines().next().unwrap().split('|').nth(1).unwrap();
    let waited = seconds(marked) - seconds(&added);
    assert!(
        (4..=15).contains(&waited),
        "evicted {waited} s after the taint"
    );
    // The replacement runs on n2.
    eventually(T, || {
        let out = jsonpath(
            &s,
            &["get", "pods", "-l", "app=web"],
            "{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
        );
        out.lines()
            .any(|l| !l.starts_with(&format!("{first} ")) && l.ends_with(" n2 Running"))
            .then_some(())
    });
    assert_eq!(
        jsonpath(&s, &["get", "rs", "web"], "{.status.readyReplicas}"),
        "1"
    );
}
