//! End-to-end: the scheduler's configuration file (profiles chosen by
//! `schedulerName`, per-plugin args), `rkube scheduler explain`, and leader
//! election between two standalone `rkube scheduler` processes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{eventually, http_get, jsonpath, KillOnDrop, Server};

fn node(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
         rkube.io/simulated: \"true\"\n  labels:\n    kubernetes.io/hostname: {name}\n\
         status:\n  capacity:\n    cpu: \"{cpu}\"\n    memory: 16Gi\n    pods: \"110\"\n---\n"
    )
}

fn pod(name: &str, cpu: &str, scheduler: Option<&str>, node: Option<&str>) -> String {
    let mut spec = String::new();
    if let Some(s) = scheduler {
        spec.push_str(&format!("  schedulerName: {s}\n"));
    }
    if let Some(n) = node {
        spec.push_str(&format!("  nodeName: {n}\n"));
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}  containers:\n  \
         - name: app\n    image: nginx\n    resources:\n      requests:\n        cpu: \"{cpu}\"\n---\n"
    )
}

fn wait_ready_nodes(s: &Server, n: usize) {
    eventually(Duration::from_secs(30), || {
        let out = s.ok(&["get", "nodes"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == n).then_some(())
    });
}

fn wait_node(s: &Server, pod: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let n = jsonpath(s, &["get", "pod", pod], "{.spec.nodeName}");
        (!n.is_empty()).then_some(n)
    })
}

const CONFIG: &str = r#"apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
  leaseDuration: 4s
  renewDeadline: 3s
  retryPeriod: 500ms
profiles:
- schedulerName: default-scheduler
- schedulerName: binpack
  plugins:
    score:
      disabled:
      - name: "*"
      enabled:
      - name: NodeResourcesFit
        weight: 1
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
"#;

fn write_config(dir: &Path) -> String {
    let path = dir.join("scheduler.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    path.display().to_string()
}

fn explain(s: &Server, config: &str, pod: &str) -> std::process::Output {
    Command::new(crate::common::rkube_bin())
        .args(["scheduler", "explain", pod, "--kubeconfig"])
        .arg(&s.kubeconfig)
        .args(["--config", config])
        .env("RKUBE_LOG", "warn")
        .output()
        .expect("run rkube scheduler explain")
}

#[test]
fn profiles_by_scheduler_name_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let s = Server::start_with(&["--scheduler-config", &config]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &format!("{}{}", node("a", "4"), node("b", "4")),
    );
    wait_ready_nodes(&s, 2);
    // a is half full; a pod for another scheduler is left alone.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            "{}{}",
            pod("filler", "2", None, Some("a")),
            pod("foreign", "100m", Some("someone-else"), None)
        ),
    );
    // The binpack profile (MostAllocated) puts pods on the fuller node,
    // every time.
    for i in 0..3 {
        let name = format!("packed-{i}");
        s.ok_stdin(
            &["apply", "-f", "-"],
            &pod(&name, "500m", Some("binpack"), None),
        );
        assert_eq!(wait_node(&s, &name), "a", "{name}");
    }
    assert_eq!(
        jsonpath(
            &s,
            &["get", "pod", "foreign"],
            "{.spec.nodeName}|{.status.conditions}"
        ),
        "|"
    );

    // The in-process scheduler's metrics are served with the API server's.
    let metrics = s.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains(
            "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"binpack\"} 3"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("apiserver_request_total"), "{metrics}");
    assert_eq!(metrics.matches("# EOF").count(), 1);

    // explain: per node, the verdict and the score of each plugin.
    let out = explain(&s, &config, "default/packed-0");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Scheduler:  binpack"), "{text}");
    assert!(text.contains("Bound to:   a"), "{text}");
    assert!(
        text.contains("Result:     fits 2 node(s); best: a"),
        "{text}"
    );
    let row = |n: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("a").contains("chosen") && row("a").contains("NodeResourcesFit="),
        "{text}"
    );
    assert!(row("b").contains("feasible"), "{text}");

    s.ok_stdin(&["apply", "-f", "-"], &pod("huge", "6", None, None));
    eventually(Duration::from_secs(30), || {
        let c = jsonpath(
            &s,
            &["get", "pod", "huge"],
            "{.status.conditions[?(@.type==\"PodScheduled\")].reason}",
        );
        (c == "Unschedulable").then_some(())
    });
    let out = explain(&s, &config, "default/huge");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("unschedulable: 0/2 nodes are available: 2 Insufficient cpu."),
        "{text}"
    );
    assert!(
        row_of(&text, "b").contains("NodeResourcesFit: Insufficient cpu"),
        "{text}"
    );

    let out = explain(&s, &config, "default/nope");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pod default/nope not found"),
        "{out:?}"
    );
}

fn row_of(text: &str, node: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(&format!("{node} ")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_bad_configuration_is_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
         profiles:\n- schedulerName: x\n  plugins:\n    multiPoint:\n      enabled:\n      \
         - name: NoSuchPlugin\n",
    )
    .unwrap();
    let out = Command::new(crate::common::rkube_bin())
        .args(["scheduler", "--kubeconfig", "/nonexistent", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown plugin \"NoSuchPlugin\""), "{err}");
}

fn start_scheduler(s: &Server, config: &str, extra: &[&str]) -> KillOnDrop {
    let child = Command::new(crate::common::rkube_bin())
        .args(["scheduler", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .args(["--config", config])
        .args(extra)
        .env("RKUBE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start rkube scheduler");
    KillOnDrop(child)
}

fn holder(s: &Server) -> String {
    jsonpath(
        s,
        &["get", "lease", "-n", "kube-system", "kube-scheduler"],
        "{.spec.holderIdentity}",
    )
}

#[test]
fn two_schedulers_elect_one_leader_and_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let s = Server::start_with(&["--disable-scheduler"]);
    s.ok_stdin(&["apply", "-f", "-"], &node("a", "4"));
    wait_ready_nodes(&s, 1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut first = start_scheduler(&s, &config, &["--metrics-bind-address", &addr]);
    let leader = eventually(Duration::from_secs(30), || {
        let h = holder(&s);
        (!h.is_empty()).then_some(h)
    });
    let _second = start_scheduler(&s, &config, &[]);
    s.ok_stdin(&["apply", "-f", "-"], &pod("p1", "100m", None, None));
    assert_eq!(wait_node(&s, "p1"), "a");
    assert_eq!(holder(&s), leader);
    // The leader's metrics, under upstream's names.
    let text = http_get(&addr, "/metrics");
    for want in [
        "scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"} 1",
        "scheduler_pending_pods{queue=\"active\"} 0",
        "scheduler_scheduling_attempt_duration_seconds_count{result=\"scheduled\",profile=\"default-scheduler\"} 1",
        "scheduler_framework_extension_point_duration_seconds_count{extension_point=\"Filter\",status=\"Success\",profile=\"default-scheduler\"} 1",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
    // The leader dies without releasing the lease: the other takes over
    // once the lease expires, and schedules.
    let _ = Command::new("kill")
        .args(["-9", &first.0.id().to_string()])
        .status();
    let _ = first.0.wait();
    let next = eventually(Duration::from_secs(30), || {
        let h = holder(&s);
        (!h.is_empty() && h != leader).then_some(h)
    });
    assert_ne!(next, leader);
    let transitions = jsonpath(
        &s,
        &["get", "lease", "-n", "kube-system", "kube-scheduler"],
        "{.spec.leaseTransitions}",
    );
    assert_eq!(transitions, "1");
    s.ok_stdin(&["apply", "-f", "-"], &pod("p2", "100m", None, None));
    assert_eq!(wait_node(&s, "p2"), "a");
}
