//! End-to-end: the DaemonSet and StatefulSet controllers inside `rkube
//! server`, driven with the real kubectl over simulated nodes (pods are
//! bound by the in-process scheduler and run by the simulated kubelet).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{eventually, jsonpath, Server};

const WAIT: Duration = Duration::from_secs(60);

fn node(name: &str, labels: &[(&str, &str)], taint: Option<&str>) -> String {
    let mut extra = String::new();
    for (k, v) in labels {
        extra.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    let spec = match taint {
        Some(t) => format!("spec:\n  taints:\n  - key: {t}\n    effect: NoSchedule\n"),
        None => String::new(),
    };
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n  labels:\n    kubernetes.io/hostname: {name}\n{extra}\
         {spec}status:\n  capacity:\n    cpu: \"4\"\n    memory: 16Gi\n    pods: \"110\"\n---\n"
    )
}

fn wait_nodes_ready(s: &Server, n: usize) {
    eventually(WAIT, || {
        let out = s.ok(&["get", "nodes"]);
        (out.lines().filter(|l| l.contains(" Ready")).count() == n).then_some(())
    });
}

/// Pod name → (node, phase) of the pods with label `app=<app>`.
fn pods_of(s: &Server, app: &str) -> BTreeMap<String, (String, String)> {
    let out = jsonpath(
        s,
        &["get", "pods", "-l", &format!("app={app}")],
        "{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
    );
    out.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            Some((
                f.next()?.to_string(),
                (f.next()?.to_string(), f.next()?.to_string()),
            ))
        })
        .collect()
}

/// The nodes running a Running pod of `app`, sorted (with repeats).
fn running_nodes(s: &Server, app: &str) -> Vec<String> {
    let mut v: Vec<String> = pods_of(s, app)
        .into_values()
        .filter(|(_, phase)| phase == "Running")
        .map(|(n, _)| n)
        .collect();
    v.sort();
    v
}

fn wait_running_on(s: &Server, app: &str, want: &[&str]) {
    eventually(WAIT, || {
        let got = running_nodes(s, app);
        let total = pods_of(s, app).len();
        (got == want && total == want.len()).then_some(())
    });
}

const DS: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: agent:1
";

#[test]
fn daemonset_runs_one_pod_per_eligible_node_and_rolls_updates() {
    let s = Server::start();
    s.apply(&format!(
        "{}{}{}",
        node("n1", &[], None),
        node("n2", &[], None),
        node("n3", &[], Some("dedicated"))
    ));
    wait_nodes_ready(&s, 3);
    s.apply(DS);
    // n3's NoSchedule taint is not tolerated: no pod there.
    wait_running_on(&s, "agent", &["n1", "n2"]);
    eventually(WAIT, || {
        let st = jsonpath(
            &s,
            &["get", "ds", "agent"],
            "{.status.desiredNumberScheduled} {.status.currentNumberScheduled} \
             {.status.numberReady} {.status.updatedNumberScheduled} {.status.numberAvailable}",
        );
        (st == "2 2 2 2 2").then_some(())
    });
    // Daemon pods carry the revision labels, the daemon tolerations and
    // the node pin.
    let pod = pods_of(&s, "agent").into_keys().next().unwrap();
    let labels = jsonpath(&s, &["get", "pod", &pod], "{.metadata.labels}");
    assert!(labels.contains("controller-revision-hash"), "{labels}");
    assert!(
        labels.contains("\"pod-template-generation\":\"1\""),
        "{labels}"
    );
    let tolerations = jsonpath(&s, &["get", "pod", &pod], "{.spec.tolerations[*].key}");
    for key in [
        "not-ready",
        "unreachable",
        "disk-pressure",
        "memory-pressure",
        "pid-pressure",
        "unschedulable",
    ] {
        assert!(
            tolerations.contains(&format!("node.kubernetes.io/{key}")),
            "{tolerations}"
        );
    }
    let pin = jsonpath(
        &s,
        &["get", "pod", &pod],
        "{.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key}",
    );
    assert_eq!(pin, "metadata.name");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=DaemonSet",
    ]);
    assert!(
        events.contains("SuccessfulCreate") && events.contains("Created pod: agent-"),
        "{events}"
    );

    // A new node gets a pod.
    s.apply(&node("n4", &[], None));
    wait_running_on(&s, "agent", &["n1", "n2", "n4"]);
    // A deleted node's pod goes.
    s.ok(&["delete", "node", "n2"]);
    wait_running_on(&s, "agent", &["n1", "n4"]);
    // Untainting n3 makes it eligible.
    s.ok(&["taint", "node", "n3", "dedicated:NoSchedule-"]);
    wait_running_on(&s, "agent", &["n1", "n3", "n4"]);

    // A rolling update replaces every pod; rollout status waits for it.
    s.ok(&["set", "image", "ds/agent", "agent=agent:2"]);
    let out = s.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    let images = jsonpath(
        &s,
        &["get", "pods", "-l", "app=agent"],
        "{.items[*].spec.containers[0].image}",
    );
    assert_eq!(
        images.split(' ').collect::<Vec<_>>(),
        vec!["agent:2"; 3],
        "{images}"
    );
    wait_running_on(&s, "agent", &["n1", "n3", "n4"]);
    let history = s.ok(&["rollout", "history", "ds/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(revisions.len(), 2, "{history}");
    assert!(
        revisions[0].starts_with('1') && revisions[1].starts_with('2'),
        "{history}"
    );
    let crs = s.ok(&["get", "controllerrevisions"]);
    assert!(crs.contains("daemonset.apps/agent"), "{crs}");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=DaemonSet",
    ]);
    assert!(events.contains("SuccessfulDelete"), "{events}");
    // `rollout history --revision` shows the old template.
    let r1 = s.ok(&["rollout", "history", "ds/agent", "--revision=1"]);
    assert!(r1.contains("agent:1"), "{r1}");
}

#[test]
fn daemonset_honours_node_selector_as_labels_change() {
    let s = Server::start();
    s.apply(&format!(
        "{}{}",
        node("a", &[("role", "edge")], None),
        node("b", &[], None)
    ));
    wait_nodes_ready(&s, 2);
    s.apply(&DS.replace(
        "    spec:\n      containers:",
        "    spec:\n      nodeSelector:\n        role: edge\n      containers:",
    ));
    wait_running_on(&s, "agent", &["a"]);
    // b starts matching: it gets a pod; a stops: its pod goes.
    s.ok(&["label", "node", "b", "role=edge"]);
    wait_running_on(&s, "agent", &["a", "b"]);
    s.ok(&["label", "node", "a", "role-"]);
    wait_running_on(&s, "agent", &["b"]);
    eventually(WAIT, || {
        let st = jsonpath(
            &s,
            &["get", "ds", "agent"],
            "{.status.desiredNumberScheduled} {.status.numberMisscheduled}",
        );
        (st == "1 0").then_some(())
    });
}

const STS: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
";

fn sts_pods(s: &Server) -> Vec<String> {
    pods_of(s, "web").into_keys().collect()
}

fn wait_sts_ready(s: &Server, want: &str) {
    eventually(WAIT, || {
        (jsonpath(s, &["get", "sts", "web"], "{.status.readyReplicas}") == want).then_some(())
    });
}

#[test]
fn statefulset_orders_pods_scales_down_and_rolls_partitions() {
    let s = Server::start();
    s.apply(&format!(
        "{}{}",
        node("n1", &[], None),
        node("n2", &[], None)
    ));
    wait_nodes_ready(&s, 2);
    s.apply(STS);
    wait_sts_ready(&s, "3");
    assert_eq!(sts_pods(&s), vec!["web-0", "web-1", "web-2"]);
    // Created in order, each after the previous one was ready.
    let created = |p: &str| jsonpath(&s, &["get", "pod", p], "{.metadata.creationTimestamp}");
    let ready_at = |p: &str| {
        jsonpath(
            &s,
            &["get", "pod", p],
            "{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}",
        )
    };
    assert!(ready_at("web-0") <= created("web-1"));
    assert!(ready_at("web-1") <= created("web-2"));
    // Identity: labels, hostname, subdomain, claims.
    let labels = jsonpath(&s, &["get", "pod", "web-1"], "{.metadata.labels}");
    assert!(
        labels.contains("\"statefulset.kubernetes.io/pod-name\":\"web-1\""),
        "{labels}"
    );
    assert!(
        labels.contains("\"apps.kubernetes.io/pod-index\":\"1\""),
        "{labels}"
    );
    let rev = jsonpath(&s, &["get", "sts", "web"], "{.status.updateRevision}");
    assert!(rev.starts_with("web-"), "{rev}");
    assert!(
        labels.contains(&format!("\"controller-revision-hash\":\"{rev}\"")),
        "{labels}"
    );
    assert_eq!(
        jsonpath(
            &s,
            &["get", "pod", "web-1"],
            "{.spec.hostname} {.spec.subdomain}"
        ),
        "web-1 nginx"
    );
    assert_eq!(
        jsonpath(
            &s,
            &["get", "pod", "web-1"],
            "{.spec.volumes[?(@.name==\"www\")].persistentVolumeClaim.claimName}"
        ),
        "www-web-1"
    );
    // The claims exist (Pending: there is no storage; the simulated node
    // runs the pods regardless).
    let pvcs = s.ok(&["get", "pvc"]);
    for c in ["www-web-0", "www-web-1", "www-web-2"] {
        assert!(pvcs.contains(c), "{pvcs}");
    }
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=StatefulSet",
    ]);
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful"),
        "{events}"
    );
    assert!(
        events.contains("create Claim www-web-0 Pod web-0 in StatefulSet web success"),
        "{events}"
    );
    let st = jsonpath(
        &s,
        &["get", "sts", "web"],
        "{.status.replicas} {.status.currentReplicas} {.status.updatedReplicas} {.status.availableReplicas}",
    );
    assert_eq!(st, "3 3 3 3");
    assert_eq!(
        jsonpath(&s, &["get", "sts", "web"], "{.status.currentRevision}"),
        rev
    );

    // Scale down: web-2 goes, the others stay.
    s.ok(&["scale", "sts", "web", "--replicas=2"]);
    eventually(WAIT, || (sts_pods(&s) == ["web-0", "web-1"]).then_some(()));
    wait_sts_ready(&s, "2");
    s.ok(&["scale", "sts", "web", "--replicas=3"]);
    wait_sts_ready(&s, "3");

    // Partitioned rolling update: only web-2 moves to the new revision.
    s.ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}"#,
    ]);
    s.ok(&["set", "image", "sts/web", "nginx=nginx:2"]);
    let out = s.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(
        out.contains("partitioned roll out complete: 1 new pods have been updated"),
        "{out}"
    );
    let image = |p: &str| jsonpath(&s, &["get", "pod", p], "{.spec.containers[0].image}");
    eventually(WAIT, || (image("web-2") == "nginx:2").then_some(()));
    assert_eq!(image("web-0"), "nginx:1");
    assert_eq!(image("web-1"), "nginx:1");
    let (cur, upd) = (
        jsonpath(&s, &["get", "sts", "web"], "{.status.currentRevision}"),
        jsonpath(&s, &["get", "sts", "web"], "{.status.updateRevision}"),
    );
    assert_eq!(cur, rev);
    assert_ne!(upd, rev);
    let hash = |p: &str| {
        jsonpath(
            &s,
            &["get", "pod", p],
            "{.metadata.labels.controller-revision-hash}",
        )
    };
    assert_eq!(hash("web-2"), upd);
    assert_eq!(hash("web-0"), cur);
    let history = s.ok(&["rollout", "history", "sts/web"]);
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );

    // Finish the rollout (partition 0): everything is updated, the update
    // revision becomes current.
    s.ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    let out = s.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    eventually(WAIT, || {
        let st = jsonpath(
            &s,
            &["get", "sts", "web"],
            "{.status.currentRevision} {.status.updatedReplicas}",
        );
        (st == format!("{upd} 3")).then_some(())
    });
    assert_eq!(image("web-0"), "nginx:2");

    // Undo goes back to the first template, as a new revision.
    let out = s.ok(&["rollout", "undo", "sts/web"]);
    assert!(out.contains("rolled back"), "{out}");
    eventually(WAIT, || {
        (["web-0", "web-1", "web-2"]
            .iter()
            .all(|p| image(p) == "nginx:1"))
        .then_some(())
    });
    wait_sts_ready(&s, "3");
    eventually(WAIT, || {
        let st = jsonpath(
            &s,
            &["get", "sts", "web"],
            "{.status.currentRevision} {.status.updateRevision}",
        );
        (st == format!("{rev} {rev}")).then_some(())
    });
    let history = s.ok(&["rollout", "history", "sts/web"]);
    assert!(
        history.contains("\n2 ") && history.contains("\n3 ") && !history.contains("\n1 "),
        "{history}"
    );
    let revision = jsonpath(&s, &["get", "controllerrevision", &rev], "{.revision}");
    assert_eq!(revision, "3");
}

#[test]
fn statefulset_ordered_ready_waits_for_each_pod() {
    let s = Server::start();
    s.apply(&node("n1", &[], None));
    wait_nodes_ready(&s, 1);
    let unready = STS.replace(
        "      labels:\n        app: web\n    spec:",
        "      labels:\n        app: web\n      annotations:\n        rkube.io/simulate-ready: \"false\"\n    spec:",
    );
    s.apply(&unready);
    eventually(WAIT, || {
        (pods_of(&s, "web")
            .get("web-0")
            .is_some_and(|(_, ph)| ph == "Running"))
        .then_some(())
    });
    // web-0 never gets ready, so web-1 never appears.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sts_pods(&s), vec!["web-0"]);
    assert_eq!(
        jsonpath(&s, &["get", "sts", "web"], "{.status.replicas}"),
        "1"
    );
    // Once it is ready, the others follow.
    s.ok(&[
        "annotate",
        "pod",
        "web-0",
        "rkube.io/simulate-ready=true",
        "--overwrite",
    ]);
    eventually(WAIT, || (sts_pods(&s).len() == 2).then_some(()));
    assert_eq!(sts_pods(&s), vec!["web-0", "web-1"]);
}

#[test]
fn statefulset_parallel_creates_all_at_once() {
    let s = Server::start();
    s.apply(&node("n1", &[], None));
    wait_nodes_ready(&s, 1);
    let parallel = STS
        .replace("  replicas: 3\n", "  replicas: 3\n  podManagementPolicy: Parallel\n")
        .replace(
            "      labels:\n        app: web\n    spec:",
            "      labels:\n        app: web\n      annotations:\n        rkube.io/simulate-ready: \"false\"\n    spec:",
        );
    s.apply(&parallel);
    // Not ready, yet all three exist.
    eventually(WAIT, || {
        (sts_pods(&s) == ["web-0", "web-1", "web-2"]).then_some(())
    });
    assert_eq!(
        jsonpath(&s, &["get", "sts", "web"], "{.status.readyReplicas}"),
        ""
    );
}
