//! End-to-end: an in-process `NodeAgent` with the simulated runtime against
//! a real `rkube server`, checked with the real kubectl: node registration,
//! pod lifecycle with IPs from the pod CIDR, graceful deletion, max-pods,
//! and lease renewal.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::common::{eventually, jsonpath, KillOnDrop, Server};
use rkube_node::{EngineConfig, NodeAgent, NodeConfig};

fn pod_yaml(name: &str, annotations: &[(&str, &str)]) -> String {
    let mut ann = String::new();
    for (k, v) in annotations {
        ann.push_str(&format!("\n    {k}: \"{v}\""));
    }
    let ann = if ann.is_empty() {
        String::new()
    } else {
        format!("\n  annotations:{ann}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}{ann}\nspec:\n  nodeName: n1\n  \
         containers:\n  - name: app\n    image: nginx:1.27\n"
    )
}

fn wait_phase(s: &Server, pod: &str, phase: &str) {
    eventually(Duration::from_secs(20), || {
        (jsonpath(s, &["get", "pod", pod], "{.status.phase}") == phase).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_node_runs_pods() {
    let s = Server::start();
    let client = s.client().await;
    let mut cfg = NodeConfig::new("n1").with_pod_cidr("10.244.1.0/24");
    cfg.max_pods = 3;
    cfg.memory = "8Gi".into();
    cfg.labels
        .insert("topology.kubernetes.io/zone".into(), "z1".into());
    cfg.taints
        .push(rkube_node::parse_taint("dedicated=sim:NoSchedule").unwrap());
    let engine = EngineConfig {
        lease_renew_interval: Duration::from_millis(500),
        ..Default::default()
    };
    let agent = tokio::spawn(NodeAgent::run(client, cfg, engine));

    tokio::task::block_in_place(|| {
        // The node registers Ready with its capacity, labels, taints, CIDR.
        eventually(Duration::from_secs(20), || {
            let out = s.ok(&["get", "nodes"]);
            out.lines()
                .any(|l| l.starts_with("n1 ") && l.contains(" Ready"))
                .then_some(())
        });
        let cap = jsonpath(
            &s,
            &["get", "node", "n1"],
            "{.status.capacity.cpu}/{.status.capacity.memory}/{.status.capacity.pods}",
        );
        assert_eq!(cap, "4/8Gi/3");
        let ready = jsonpath(
            &s,
            &["get", "node", "n1"],
            "{.status.conditions[?(@.type==\"Ready\")].reason}",
        );
        assert_eq!(ready, "KubeletReady");
        let spec = jsonpath(
            &s,
            &["get", "node", "n1"],
            "{.spec.podCIDR} {.spec.taints[0].key} {.metadata.labels.kubernetes\\.io/hostname} \
             {.metadata.labels.kubernetes\\.io/os} {.metadata.labels.topology\\.kubernetes\\.io/zone}",
        );
        assert_eq!(spec, "10.244.1.0/24 dedicated n1 linux z1");

        // A bound pod runs with an address from the pod CIDR.
        s.apply(&pod_yaml("web", &[]));
        wait_phase(&s, "web", "Running");
        let ip: Ipv4Addr = jsonpath(&s, &["get", "pod", "web"], "{.status.podIP}")
            .parse()
            .unwrap();
        assert_eq!(ip.octets()[..3], [10, 244, 1]);
        assert!(ip.octets()[3] >= 2 && ip.octets()[3] <= 254, "{ip}");
        let st = jsonpath(
            &s,
            &["get", "pod", "web"],
            "{.status.hostIP} {.status.conditions[?(@.type==\"Ready\")].status} \
             {.status.containerStatuses[0].ready} {.status.containerStatuses[0].restartCount}",
        );
        assert_eq!(st, "127.0.0.1 True true 0");
        assert!(s.ok(&["get", "pod", "web"]).contains("1/1"));

        // A pod (restartPolicy OnFailure) that exits 0 after 1s Succeeds
        // and no longer counts.
        s.apply(
            &pod_yaml("done", &[("rkube.io/simulate-exit-after", "1s")])
                .replace("spec:\n", "spec:\n  restartPolicy: OnFailure\n"),
        );
        wait_phase(&s, "done", "Succeeded");
        s.apply(&pod_yaml("third", &[("rkube.io/simulate-ready", "false")]));
        wait_phase(&s, "third", "Running");
        assert!(s.ok(&["get", "pod", "third"]).contains("0/1"));
        // Readiness follows the annotation.
        s.ok(&[
            "annotate",
            "pod",
            "third",
            "rkube.io/simulate-ready=true",
            "--overwrite",
        ]);
        eventually(Duration::from_secs(20), || {
            s.ok(&["get", "pod", "third"]).contains("1/1").then_some(())
        });
        // A container that keeps failing is restarted (restartPolicy
        // Always): restartCount and lastState follow.
        s.apply(&pod_yaml(
            "crash",
            &[
                ("rkube.io/simulate-exit-after", "1s"),
                ("rkube.io/simulate-exit-code", "3"),
            ],
        ));
        let restarted = eventually(Duration::from_secs(20), || {
            let got = jsonpath(
                &s,
                &["get", "pod", "crash"],
                "{.status.phase} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode}",
            );
            (got == "Running 1 3").then_some(got)
        });
        assert_eq!(restarted, "Running 1 3");
        // The second exit waits in CrashLoopBackOff, as kubectl shows.
        eventually(Duration::from_secs(20), || {
            s.ok(&["get", "pod", "crash"])
                .contains("CrashLoopBackOff")
                .then_some(())
        });
        // Beyond max-pods (3 running): rejected with OutOfpods.
        s.apply(&pod_yaml("extra", &[]));
        wait_phase(&s, "extra", "Failed");
        assert_eq!(
            jsonpath(&s, &["get", "pod", "extra"], "{.status.reason}"),
            "OutOfpods"
        );

        // Graceful deletion is finished by the agent; the IP is reused.
        s.ok(&["delete", "pod", "web", "--timeout=20s"]);
        assert!(!s.kubectl(&["get", "pod", "web"]).status.success());
        s.ok(&["delete", "pod", "extra", "crash", "--timeout=20s"]);
        s.apply(&pod_yaml("again", &[]));
        wait_phase(&s, "again", "Running");
        assert_eq!(
            jsonpath(&s, &["get", "pod", "again"], "{.status.podIP}"),
            ip.to_string()
        );

        // The lease exists, is held by the node, and renews.
        let lease = |s: &Server| {
            jsonpath(
                s,
                &["get", "lease", "-n", "kube-node-lease", "n1"],
                "{.spec.holderIdentity} {.spec.leaseDurationSeconds} {.spec.renewTime}",
            )
        };
        let first = eventually(Duration::from_secs(10), || {
            let l = lease(&s);
            l.starts_with("n1 40 ").then_some(l)
        });
        eventually(Duration::from_secs(10), || {
            let l = lease(&s);
            (l.starts_with("n1 40 ") && l != first).then_some(())
        });
    });
    assert!(!agent.is_finished(), "agent exited: {:?}", agent.await);
    agent.abort();
}

#[test]
fn agent_subcommand_registers_node() {
    let s = Server::start();
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("etcd.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\n\
         spec:\n  containers:\n  - name: etcd\n    image: etcd:3.5\n",
    )
    .unwrap();
    let child = std::process::Command::new(crate::common::rkube_bin())
        .arg("agent")
        .args(["--container-runtime", "simulated"])
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["--node-name", "n2", "--pod-cidr", "10.244.2.0/24"])
        .args(["--max-pods", "5", "--node-labels", "a=b,c=d"])
        .args(["--register-with-taints", "x=y:NoSchedule"])
        .arg("--pod-manifest-path")
        .arg(manifests.path())
        .args(["--file-check-frequency", "500ms"])
        .env("RKUBE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start rkube agent");
    let _child = KillOnDrop(child);
    eventually(Duration::from_secs(20), || {
        let out = s.ok(&["get", "nodes"]);
        out.lines()
            .any(|l| l.starts_with("n2 ") && l.contains(" Ready"))
            .then_some(())
    });
    let got = jsonpath(
        &s,
        &["get", "node", "n2"],
        "{.status.allocatable.pods} {.metadata.labels.a} {.metadata.labels.c} \
         {.spec.taints[0].key}={.spec.taints[0].value}:{.spec.taints[0].effect} {.spec.podCIDR}",
    );
    assert_eq!(got, "5 b d x=y:NoSchedule 10.244.2.0/24");
    let p = pod_yaml("p", &[]).replace("nodeName: n1", "nodeName: n2");
    s.apply(&p);
    wait_phase(&s, "p", "Running");
    let ip = jsonpath(&s, &["get", "pod", "p"], "{.status.podIP}");
    assert!(ip.starts_with("10.244.2."), "{ip}");

    // The static pod runs as a mirror pod named after the node, owned by it.
    let mirror = ["-n", "kube-system", "get", "pod", "etcd-n2"];
    eventually(Duration::from_secs(20), || {
        (jsonpath(&s, &mirror, "{.status.phase}") == "Running").then_some(())
    });
    let got = jsonpath(
        &s,
        &mirror,
        "{.spec.nodeName} {.metadata.ownerReferences[0].kind} \
         {.metadata.annotations.kubernetes\\.io/config\\.source}",
    );
    assert_eq!(got, "n2 Node file");
    let uid = jsonpath(&s, &mirror, "{.metadata.uid}");
    // Deleted through the API, it comes back.
    s.ok(&[
        "-n",
        "kube-system",
        "delete",
        "pod",
        "etcd-n2",
        "--timeout=20s",
    ]);
    eventually(Duration::from_secs(20), || {
        let now = s.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "pod",
            "etcd-n2",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        let now = String::from_utf8_lossy(&now.stdout).into_owned();
        (!now.is_empty() && now != uid).then_some(())
    });
    // Its manifest removed, it goes.
    std::fs::remove_file(manifests.path().join("etcd.yaml")).unwrap();
    eventually(Duration::from_secs(20), || {
        (!s.kubectl(&mirror).status.success()).then_some(())
    });
}
