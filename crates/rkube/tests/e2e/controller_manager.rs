//! End-to-end: `rkube controller-manager` alone against a server started
//! with `--disable-controller-manager`: replicas elect one leader through
//! the `kube-system/kube-controller-manager` Lease, fail over after a
//! kill -9, serve metrics, and refuse unknown controllers.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{eventually, http_get, jsonpath, KillOnDrop, Server};

fn node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n"
    )
}

fn start_cm(s: &Server, extra: &[&str]) -> KillOnDrop {
    let child = Command::new(crate::common::rkube_bin())
        .args(["controller-manager", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .args(extra)
        .env("RKUBE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start rkube controller-manager");
    KillOnDrop(child)
}

fn holder(s: &Server) -> String {
    jsonpath(
        s,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
        ],
        "{.spec.holderIdentity}",
    )
}

fn pod_cidr(s: &Server, node: &str) -> String {
    jsonpath(s, &["get", "node", node], "{.spec.podCIDR}")
}

#[test]
fn standalone_controller_managers_elect_a_leader_and_fail_over() {
    let s = Server::start_with(&["--disable-controller-manager"]);
    s.ok_stdin(&["apply", "-f", "-"], &node("a"));
    // Nothing in the server hands out pod CIDRs now.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pod_cidr(&s, "a"), "");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut first = start_cm(&s, &["--metrics-bind-address", &addr]);
    let leader = eventually(Duration::from_secs(30), || {
        let h = holder(&s);
        (!h.is_empty()).then_some(h)
    });
    let _second = start_cm(&s, &[]);
    eventually(Duration::from_secs(30), || {
        (!pod_cidr(&s, "a").is_empty()).then_some(())
    });
    assert_eq!(holder(&s), leader);
    let text = http_get(&addr, "/metrics");
    // Upstream's workqueue metrics, one series per controller.
    for want in [
        "workqueue_depth{name=\"deployment\"}",
        "workqueue_adds_total{name=\"serviceaccount\"}",
        "workqueue_work_duration_seconds_count{name=\"serviceaccount\"}",
        "rkube_controller_reconcile_errors_total{name=\"replicaset\"}",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }

    // The leader dies without releasing the lease: the other takes over
    // once it expires, and its controllers act.
    let _ = Command::new("kill")
        .args(["-9", &first.0.id().to_string()])
        .status();
    let _ = first.0.wait();
    let next = eventually(Duration::from_secs(40), || {
        let h = holder(&s);
        (!h.is_empty() && h != leader).then_some(h)
    });
    assert_ne!(next, leader);
    s.ok_stdin(&["apply", "-f", "-"], &node("b"));
    eventually(Duration::from_secs(30), || {
        (!pod_cidr(&s, "b").is_empty()).then_some(())
    });
    assert_ne!(pod_cidr(&s, "a"), pod_cidr(&s, "b"));
    let transitions = jsonpath(
        &s,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
        ],
        "{.spec.leaseTransitions}",
    );
    assert_eq!(transitions, "1");
}

#[test]
fn unknown_controllers_are_refused() {
    let out = Command::new(crate::common::rkube_bin())
        .args([
            "controller-manager",
            "--kubeconfig",
            "/nonexistent",
            "--controllers",
            "*,-nodeipam,bogus",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown controller \"bogus\""), "{err}");
}
