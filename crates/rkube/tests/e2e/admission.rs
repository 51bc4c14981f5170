//! End-to-end: the admission plugins scheduling depends on (RuntimeClass,
//! Priority, DefaultTolerationSeconds) and the scheduling-gate update
//! rules, driven with the real kubectl. Every pod names `schedulerName:
//! manual`, so the in-process scheduler leaves it alone.

use crate::common::{jsonpath, run_stdin, Server};
use serde_json::Value;

/// A pod manifest: `extra_spec` is indented YAML for `spec`.
fn pod(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  schedulerName: manual\n\
         {extra_spec}  containers:\n  - name: app\n    image: nginx\n"
    )
}

/// `kubectl create -f -` of `yaml`, asserting failure; returns stderr.
fn create_fails(s: &Server, yaml: &str) -> String {
    let mut cmd = s.kubectl_cmd();
    cmd.args(["create", "-f", "-"]);
    let o = run_stdin(cmd, yaml);
    assert!(
        !o.status.success(),
        "create unexpectedly succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn create(s: &Server, yaml: &str) {
    s.ok_stdin(&["create", "-f", "-"], yaml);
}

fn field(s: &Server, pod: &str, path: &str) -> String {
    jsonpath(s, &["get", "pod", pod], path)
}

/// The pod's tolerations as (key, effect, tolerationSeconds) triples.
fn tolerations(s: &Server, pod: &str) -> Vec<(String, String, Option<i64>)> {
    let raw = field(s, pod, "{.spec.tolerations}");
    let v: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw:?}"));
    v.as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or("").to_string(),
                t["effect"].as_str().unwrap_or("").to_string(),
                t["tolerationSeconds"].as_i64(),
            )
        })
        .collect()
}

fn default_tolerations() -> Vec<(String, String, Option<i64>)> {
    vec![
        (
            "node.kubernetes.io/not-ready".into(),
            "NoExecute".into(),
            Some(300),
        ),
        (
            "node.kubernetes.io/unreachable".into(),
            "NoExecute".into(),
            Some(300),
        ),
    ]
}

const KATA: &str = "apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: kata
handler: kata
overhead:
  podFixed:
    cpu: 250m
    memory: 120Mi
scheduling:
  nodeSelector:
    runtime: kata
  tolerations:
  - key: kata
    operator: Exists
    effect: NoSchedule
";

#[test]
fn runtime_class_sets_overhead_and_scheduling() {
    let s = Server::start();
    s.apply(KATA);
    // The worked example: two containers limited (and so requesting)
    // 500m/100Mi and 1500m/100Mi.
    create(
        &s,
        "apiVersion: v1
kind: Pod
metadata:
  name: kata-pod
spec:
  schedulerName: manual
  runtimeClassName: kata
  nodeSelector:
    disk: ssd
  containers:
  - name: a
    image: nginx
    resources:
      limits: {cpu: 500m, memory: 100Mi}
  - name: b
    image: nginx
    resources:
      limits: {cpu: 1500m, memory: 100Mi}
",
    );
    assert_eq!(
        field(
            &s,
            "kata-pod",
            "{.spec.overhead.cpu} {.spec.overhead.memory}"
        ),
        "250m 120Mi"
    );
    assert_eq!(
        field(
            &s,
            "kata-pod",
            "{.spec.containers[*].resources.requests.cpu}"
        ),
        "500m 1500m"
    );
    let sel: Value = serde_json::from_str(&field(&s, "kata-pod", "{.spec.nodeSelector}")).unwrap();
    assert_eq!(sel, serde_json::json!({"disk": "ssd", "runtime": "kata"}));
    let mut want = default_tolerations();
    want.push(("kata".into(), "NoSchedule".into(), None));
    assert_eq!(tolerations(&s, "kata-pod"), want);

    // An unknown class.
    let err = create_fails(&s, &pod("nope", "  runtimeClassName: gvisor\n"));
    assert!(
        err.contains(
            "Error from server (Forbidden): error when creating \"STDIN\": pods \"nope\" is forbidden: pod rejected: RuntimeClass \"gvisor\" not found"
        ),
        "{err}"
    );
    // A node selector that contradicts the class.
    let err = create_fails(
        &s,
        &pod(
            "conflict",
            "  runtimeClassName: kata\n  nodeSelector:\n    runtime: runc\n",
        ),
    );
    assert!(
        err.contains("pods \"conflict\" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[runtime] = kata; pod.spec.nodeSelector[runtime] = runc"),
        "{err}"
    );
    // A pod overhead other than the class's, or without a class.
    let err = create_fails(
        &s,
        &pod(
            "heavy",
            "  runtimeClassName: kata\n  overhead:\n    cpu: \"1\"\n",
        ),
    );
    assert!(
        err.contains("pods \"heavy\" is forbidden: pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"),
        "{err}"
    );
    let err = create_fails(&s, &pod("classless", "  overhead:\n    cpu: \"1\"\n"));
    assert!(
        err.contains("pods \"classless\" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"),
        "{err}"
    );
    // The same overhead as the class's, written differently, is fine.
    create(
        &s,
        &pod(
            "same",
            "  runtimeClassName: kata\n  overhead:\n    cpu: \"0.25\"\n    memory: 120Mi\n",
        ),
    );
}

#[test]
fn priority_classes_resolve_pod_priority() {
    let s = Server::start();
    // The system classes exist from the start and may not be deleted.
    let pcs = s.ok(&["get", "priorityclasses"]);
    assert!(
        pcs.lines()
            .any(|l| l.starts_with("system-cluster-critical") && l.contains("2000000000")),
        "{pcs}"
    );
    assert!(
        pcs.lines()
            .any(|l| l.starts_with("system-node-critical") && l.contains("2000001000")),
        "{pcs}"
    );
    let err = s.fails(&["delete", "priorityclass", "system-node-critical"]);
    assert!(
        err.contains("Error from server (Forbidden): priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a system priority class and cannot be deleted"),
        "{err}"
    );

    // No class and no default: priority 0.
    let plain = pod("plain", "");
    create(&s, &plain);
    assert_eq!(
        field(
            &s,
            "plain",
            "{.spec.priority}|{.spec.preemptionPolicy}|{.spec.priorityClassName}"
        ),
        "0|PreemptLowerPriority|"
    );
    // An update that drops what admission set gets it back (and so passes
    // the immutability checks).
    s.ok(&[
        "patch",
        "pod",
        "plain",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/priority"},{"op":"remove","path":"/spec/tolerations"}]"#,
    ]);
    assert_eq!(field(&s, "plain", "{.spec.priority}"), "0");
    assert_eq!(tolerations(&s, "plain"), default_tolerations());

    // A named class.
    s.apply(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\n\
         preemptionPolicy: Never\n",
    );
    create(&s, &pod("important", "  priorityClassName: high\n"));
    assert_eq!(
        field(&s, "important", "{.spec.priority}|{.spec.preemptionPolicy}"),
        "1000|Never"
    );
    // The system classes work in any namespace (as upstream since 1.17).
    create(
        &s,
        &pod("critical", "  priorityClassName: system-node-critical\n"),
    );
    assert_eq!(field(&s, "critical", "{.spec.priority}"), "2000001000");

    // An unknown class, and a priority contradicting the class.
    let err = create_fails(&s, &pod("lost", "  priorityClassName: foo\n"));
    assert!(
        err.contains("Error from server (Forbidden): error when creating \"STDIN\": pods \"lost\" is forbidden: no PriorityClass with name foo was found"),
        "{err}"
    );
    let err = create_fails(
        &s,
        &pod("liar", "  priorityClassName: high\n  priority: 5\n"),
    );
    assert!(
        err.contains("pods \"liar\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"),
        "{err}"
    );

    // A global default applies to pods naming no class, and is recorded.
    s.apply(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: standard\nvalue: 10\n\
         globalDefault: true\n",
    );
    create(&s, &pod("defaulted", ""));
    assert_eq!(
        field(
            &s,
            "defaulted",
            "{.spec.priority}|{.spec.priorityClassName}"
        ),
        "10|standard"
    );
    // Dry-run requests are admitted too.
    let dry = s.ok(&[
        "run",
        "dry",
        "--image=nginx",
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.priority}|{.spec.tolerations[*].key}",
    ]);
    assert_eq!(
        dry,
        "10|node.kubernetes.io/not-ready node.kubernetes.io/unreachable"
    );
    assert!(s.fails(&["get", "pod", "dry"]).contains("NotFound"));

    // Only one default.
    let mut cmd = s.kubectl_cmd();
    cmd.args(["create", "-f", "-"]);
    let o = run_stdin(
        cmd,
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: second\nvalue: 20\n\
         globalDefault: true\n",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("priorityclasses.scheduling.k8s.io \"second\" is forbidden: PriorityClass standard is already marked as default. Only one default can exist"),
        "{err}"
    );
    // Nor may an existing class become a second default.
    let err = s.fails(&[
        "patch",
        "priorityclass",
        "high",
        "-p",
        "{\"globalDefault\":true}",
    ]);
    assert!(
        err.contains(
            "PriorityClass standard is already marked as default. Only one default can exist"
        ),
        "{err}"
    );
}

#[test]
fn default_tolerations_and_scheduling_gates() {
    let s = Server::start();
    create(&s, &pod("bare", ""));
    assert_eq!(tolerations(&s, "bare"), default_tolerations());
    // A pod that tolerates not-ready itself gets only the other default.
    create(
        &s,
        &pod(
            "own",
            "  tolerations:\n  - key: node.kubernetes.io/not-ready\n    operator: Exists\n    \
             effect: NoExecute\n    tolerationSeconds: 60\n",
        ),
    );
    assert_eq!(
        tolerations(&s, "own"),
        vec![
            (
                "node.kubernetes.io/not-ready".into(),
                "NoExecute".into(),
                Some(60)
            ),
            (
                "node.kubernetes.io/unreachable".into(),
                "NoExecute".into(),
                Some(300)
            ),
        ]
    );
    // A pod tolerating every taint gets none.
    create(&s, &pod("all", "  tolerations:\n  - operator: Exists\n"));
    assert_eq!(
        tolerations(&s, "all"),
        vec![(String::new(), String::new(), None)]
    );

    // Scheduling gates may be removed, never added (422 Invalid).
    create(
        &s,
        &pod("gated", "  schedulingGates:\n  - name: example.com/gate\n"),
    );
    let o = s.kubectl(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/schedulingGates/-","value":{"name":"example.com/other"}}]"#,
        "-v=6",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("The Pod \"gated\" is invalid: spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found new scheduling gate 'example.com/other'"),
        "{err}"
    );
    assert!(err.contains("422 Unprocessable Entity"), "{err}");
    // While gated, the node selector may grow, and required node affinity
    // may be set.
    s.ok(&[
        "patch",
        "pod",
        "gated",
        "-p",
        r#"{"spec":{"nodeSelector":{"zone":"a"}}}"#,
    ]);
    s.ok(&[
        "patch",
        "pod",
        "gated",
        "-p",
        r#"{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"disk","operator":"In","values":["ssd"]}]}]}}}}}"#,
    ]);
    // ...but not change an existing entry.
    let err = s.fails(&[
        "patch",
        "pod",
        "gated",
        "-p",
        r#"{"spec":{"nodeSelector":{"zone":"b"}}}"#,
    ]);
    assert!(
        err.contains(r#"spec.nodeSelector: Invalid value: map[string]string{"zone":"b"}: only additions to spec.nodeSelector are allowed (no mutations or deletions)"#),
        "{err}"
    );
    let err = s.fails(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions/0/values","value":["hdd"]}]"#,
    ]);
    assert!(
        err.contains("nodeSelectorTerms[0]: Invalid value: core.NodeSelectorTerm{")
            && err.contains("only additions are allowed (no mutations or deletions)"),
        "{err}"
    );
    // Removing the gate releases the pod; now the selector is frozen.
    s.ok(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/schedulingGates"}]"#,
    ]);
    assert_eq!(field(&s, "gated", "{.spec.schedulingGates}"), "");
    let err = s.fails(&[
        "patch",
        "pod",
        "gated",
        "-p",
        r#"{"spec":{"nodeSelector":{"rack":"r1"}}}"#,
    ]);
    assert!(
        err.contains("spec: Forbidden: pod updates may not change fields other than"),
        "{err}"
    );
}
