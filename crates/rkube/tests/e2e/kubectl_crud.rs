//! End-to-end: the real kubectl against the real rkube binary — create,
//! apply, get in every output format, describe, edit, patch, label, annotate,
//! taint, scale, delete, wait, api-resources, explain, events and metrics.

use std::time::Duration;

use crate::common::{eventually, Server};

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        env:
        - {name: A, value: "1"}
      - name: sidecar
        image: busybox:1.36
"#;

#[test]
fn namespaces_exist_from_the_start_and_anonymous_is_refused() {
    let s = Server::start();
    let out = s.ok(&["get", "ns", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(&format!("namespace/{ns}")), "{out}");
    }
    let out = s.ok(&["get", "ns", "default"]);
    assert!(
        out.contains("NAME") && out.contains("STATUS") && out.contains("Active"),
        "{out}"
    );
    let version = s.ok(&["version", "-o", "json"]);
    assert!(version.contains("\"gitVersion\": \"v1.33"), "{version}");

    // Anonymous: no client certificate (an unknown bearer token is not a credential).
    let ca = s.dir.path().join("pki/ca.crt");
    let anon = |args: &[&str]| {
        std::process::Command::new(crate::common::kubectl_bin())
            .args([
                "--kubeconfig=/dev/null",
                "--server",
                &s.url,
                "--certificate-authority",
                ca.to_str().unwrap(),
                "--token=bogus",
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let o = anon(&["get", "ns"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Unauthorized"), "{err}");
    let o = anon(&["get", "--raw", "/readyz"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
}

#[test]
fn create_apply_get_and_formats() {
    let s = Server::start();
    let out = s.apply(DEPLOY);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = s.apply(DEPLOY);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    let changed = DEPLOY.replace("nginx:1.25", "nginx:1.26");
    let out = s.apply(&changed);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let img = s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(
        img, "nginx:1.26 busybox:1.36",
        "apply patched the container by name, keeping the sidecar"
    );
    let gen = s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    assert_eq!(gen, "2");

    let wide = s.ok(&["get", "deploy", "-o", "wide"]);
    let header = wide.lines().next().unwrap();
    for col in [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ] {
        assert!(header.contains(col), "missing {col} in {header}");
    }
    assert!(
        wide.contains("nginx,sidecar") && wide.contains("app=web"),
        "{wide}"
    );
    let yaml = s.ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Deployment") && yaml.contains("revisionHistoryLimit: 10"),
        "defaults applied: {yaml}"
    );
    assert!(
        yaml.contains("resourceVersion:") && yaml.contains("uid:"),
        "{yaml}"
    );

    s.ok(&["create", "configmap", "c1", "--from-literal=k=v"]);
    let err = s.fails(&["create", "configmap", "c1", "--from-literal=k=v"]);
    assert!(
        err.contains("AlreadyExists") || err.contains("already exists"),
        "{err}"
    );
    let cm = s.ok(&["get", "cm", "c1", "-o", "jsonpath={.data.k}"]);
    assert_eq!(cm, "v");
    let out = s.ok(&["get", "cm"]);
    assert!(out.lines().next().unwrap().contains("DATA"), "{out}");
}

#[test]
fn invalid_objects_are_rejected_like_upstream() {
    let s = Server::start();
    let no_selector = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i}]\n";
    let o = s.apply_result(no_selector);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("spec.selector: Required value"), "{err}");

    let long = "x".repeat(64);
    s.ok(&["create", "configmap", "lbl2"]);
    let err = s.fails(&["label", "cm", "lbl2", &format!("k={long}")]);
    assert!(err.contains("must be no more than 63 characters"), "{err}");
    let err = s.fails(&["create", "configmap", "Bad_Name"]);
    assert!(err.contains("RFC 1123"), "{err}");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n";
    let o = s.apply_result(pod);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("spec.containers: Required value"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Unknown fields are refused by kubectl's default (Strict) validation.
    let typo = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\ndatta: {a: b}\n";
    let o = s.apply_result(typo);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("unknown field \"datta\""),
        "{err}"
    );
}

#[test]
fn patch_label_annotate_scale_and_delete() {
    let s = Server::start();
    s.apply(DEPLOY);
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ]);
    s.ok(&["patch", "deploy", "web", "--type=json", "-p", r#"[{"op":"test","path":"/spec/replicas","value":2},{"op":"replace","path":"/spec/replicas","value":4}]"#]);
    let err = s.fails(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":99}]"#,
    ]);
    assert!(!err.is_empty());
    s.ok(&["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.37"}]}}}}"#]);
    let imgs = s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(imgs, "nginx:1.25 busybox:1.37");
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    s.ok(&["label", "deploy", "web", "env=prod"]);
    s.ok(&["annotate", "deploy", "web", "note=hello"]);
    let sel = s.ok(&[
        "get",
        "deploy",
        "-l",
        "env=prod,tier in (front)",
        "-o",
        "name",
    ]);
    assert_eq!(sel.trim(), "deployment.apps/web");
    assert_eq!(
        s.ok(&["get", "deploy", "-l", "env!=prod", "-o", "name"])
            .trim(),
        ""
    );
    s.ok(&["label", "deploy", "web", "env-"]);
    assert_eq!(
        s.ok(&["get", "deploy", "-l", "env", "-o", "name"]).trim(),
        ""
    );
    let out = s.ok(&["scale", "deploy", "web", "--replicas=7"]);
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "7"
    );
    let desc = s.ok(&["describe", "deploy", "web"]);
    assert!(
        desc.lines()
            .any(|l| l.starts_with("Name:") && l.ends_with("web")),
        "{desc}"
    );
    assert!(desc.contains("note: hello"), "{desc}");
    assert!(
        desc.contains("Replicas:") && desc.contains("7 desired"),
        "{desc}"
    );
    let out = s.ok(&["delete", "deploy", "web"]);
    assert!(out.contains("deleted"), "{out}");
    assert!(s.fails(&["get", "deploy", "web"]).contains("NotFound"));
}

#[test]
fn edit_taint_wait_and_watch() {
    let s = Server::start();
    // edit through KUBE_EDITOR
    s.ok(&["create", "configmap", "ed", "--from-literal=k=old"]);
    let o = s
        .kubectl_cmd()
        .args(["edit", "cm", "ed"])
        .env("KUBE_EDITOR", "sed -i s/old/new/")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        s.ok(&["get", "cm", "ed", "-o", "jsonpath={.data.k}"]),
        "new"
    );

    // taint add / remove on a node
    s.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {kubernetes.io/hostname: n1}\n");
    s.ok(&["taint", "nodes", "n1", "dedicated=gpu:NoSchedule"]);
    let t = s.ok(&[
        "get",
        "node",
        "n1",
        "-o",
        "jsonpath={.spec.taints[0].key}={.spec.taints[0].value}:{.spec.taints[0].effect}",
    ]);
    assert_eq!(t, "dedicated=gpu:NoSchedule");
    s.ok(&["taint", "nodes", "n1", "dedicated=gpu:NoSchedule-"]);
    assert_eq!(
        s.ok(&["get", "node", "n1", "-o", "jsonpath={.spec.taints}"]),
        ""
    );

    // wait --for=condition on a status written through the status subresource
    s.apply("apiVersion: v1\nkind: Node\nmetadata: {name: n2}\n");
    let mut waiter = s
        .kubectl_cmd()
        .args(["wait", "--for=condition=Ready", "node/n2", "--timeout=30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["patch", "node", "n2", "--subresource=status", "--type=merge", "-p", r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"ok"}]}}"#]);
    let st = waiter.wait().unwrap();
    assert!(st.success(), "kubectl wait --for=condition failed");

    // wait --for=delete
    s.ok(&["create", "configmap", "gone"]);
    let mut waiter = s
        .kubectl_cmd()
        .args(["wait", "--for=delete", "cm/gone", "--timeout=30s"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.ok(&["delete", "cm", "gone"]);
    assert!(waiter.wait().unwrap().success());

    // get -w sees a later change
    let mut w = s
        .kubectl_cmd()
        .args(["get", "cm", "-w", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["create", "configmap", "watched"]);
    let stdout = w.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let got = eventually(Duration::from_secs(20), || {
        let l = rx.recv_timeout(Duration::from_millis(200)).ok()?;
        l.contains("configmap/watched").then_some(l)
    });
    assert!(got.contains("watched"));
    let _ = w.kill();
    let _ = w.wait();
}

#[test]
fn discovery_explain_events_and_metrics() {
    let s = Server::start();
    let out = s.ok(&["api-resources"]);
    for line in [
        "pods",
        "deployments",
        "leases",
        "priorityclasses",
        "endpointslices",
    ] {
        assert!(out.contains(line), "api-resources lacks {line}: {out}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("pods")
            && l.contains("po")
            && l.contains("true")
            && l.contains("Pod")),
        "{out}"
    );
    let ex = s.ok(&["explain", "pod.spec.containers"]);
    assert!(
        ex.contains("KIND:") && ex.contains("Pod") && ex.contains("FIELD:") && ex.contains("image"),
        "{ex}"
    );
    s.apply("apiVersion: v1\nkind: Event\nmetadata: {name: e1}\ninvolvedObject: {kind: Pod, name: p, namespace: default}\nreason: Testing\nmessage: hello events\ntype: Normal\n");
    let ev = s.ok(&["get", "events"]);
    assert!(
        ev.contains("Testing") && ev.contains("hello events") && ev.contains("pod/p"),
        "{ev}"
    );
    let m = s.ok(&["get", "--raw", "/metrics"]);
    assert!(
        m.contains("apiserver_request_total")
            && m.contains("apiserver_request_duration_seconds_bucket"),
        "{m}"
    );
}

#[test]
fn namespace_deletion_removes_content() {
    let s = Server::start();
    s.ok(&["create", "ns", "tmp"]);
    s.ok(&["-n", "tmp", "create", "configmap", "a"]);
    s.ok(&["delete", "ns", "tmp", "--wait=false"]);
    let err = s.fails(&["-n", "tmp", "create", "configmap", "b"]);
    assert!(
        err.contains("being terminated") || err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    eventually(Duration::from_secs(20), || {
        let o = s.kubectl(&["get", "ns", "tmp"]);
        (!o.status.success()).then_some(())
    });
    assert!(s
        .fails(&["-n", "tmp", "get", "cm", "a"])
        .contains("NotFound"));
}

#[test]
fn cascading_deletion_orphan_and_foreground() {
    let s = Server::start();
    for (owner, dep) in [("owner1", "dep1"), ("owner2", "dep2")] {
        s.ok(&["create", "configmap", owner]);
        let uid = s.ok(&["get", "cm", owner, "-o", "jsonpath={.metadata.uid}"]);
        s.apply(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {dep}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {uid}}}\n"
        ));
    }
    s.ok(&[
        "delete",
        "cm",
        "owner1",
        "--cascade=orphan",
        "--timeout=30s",
    ]);
    assert!(s.fails(&["get", "cm", "owner1"]).contains("NotFound"));
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "dep1",
            "-o",
            "jsonpath={.metadata.ownerReferences}"
        ]),
        "",
        "dependent orphaned"
    );
    s.ok(&[
        "delete",
        "cm",
        "owner2",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    eventually(Duration::from_secs(20), || {
        let gone = |n: &str| !s.kubectl(&["get", "cm", n]).status.success();
        (gone("owner2") && gone("dep2")).then_some(())
    });
}

#[test]
fn kubectl_1_32_and_1_33_both_work() {
    let bins = crate::common::versioned_kubectls();
    if bins.is_empty() {
        eprintln!(
            "no versioned kubectl binaries beside kubectl; the default kubectl is tested elsewhere"
        );
        return;
    }
    let s = Server::start();
    for bin in bins {
        let run = |args: &[&str], stdin: Option<&str>| -> String {
            use std::io::Write;
            let mut c = std::process::Command::new(&bin)
                .arg("--kubeconfig")
                .arg(&s.kubeconfig)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin
                .take()
                .unwrap()
                .write_all(stdin.unwrap_or("").as_bytes())
                .unwrap();
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "{} {args:?}: {}",
                bin.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let name = bin.file_name().unwrap().to_string_lossy().replace('.', "-");
        let manifest = DEPLOY.replace("name: web\n", &format!("name: {name}\n"));
        assert!(run(&["apply", "-f", "-"], Some(&manifest)).contains("created"));
        assert!(run(&["apply", "-f", "-"], Some(&manifest)).contains("unchanged"));
        assert!(
            run(&["create", "configmap", &name, "--from-literal=a=b"], None).contains("created")
        );
        assert!(run(&["get", "deploy", &name, "-o", "wide"], None).contains("nginx,sidecar"));
        assert!(run(&["explain", "deployment.spec.strategy"], None).contains("rollingUpdate"));
    }
}

#[test]
fn gated_pods_show_scheduling_gated() {
    let s = Server::start();
    s.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: gated}\nspec:\n  schedulingGates: [{name: example.com/wait}]\n  containers: [{name: c, image: busybox}]\n");
    let out = s.ok(&["get", "pod", "gated"]);
    assert!(out.contains("SchedulingGated"), "{out}");
    let reason = s.ok(&[
        "get",
        "pod",
        "gated",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}",
    ]);
    assert_eq!(reason, "SchedulingGated");
    // Gates may be removed, never added.
    s.ok(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/schedulingGates"}]"#,
    ]);
    let err = s.fails(&[
        "patch",
        "pod",
        "gated",
        "--type=merge",
        "-p",
        r#"{"spec":{"schedulingGates":[{"name":"again"}]}}"#,
    ]);
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );
}
