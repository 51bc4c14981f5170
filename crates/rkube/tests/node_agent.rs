//! End-to-end: an in-process `NodeAgent` with the simulated runtime against
//! a real `rkube server`, checked with the real kubectl: node registration,
//! pod lifecycle with IPs from the pod CIDR, graceful deletion, max-pods,
//! and lease renewal.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{eventually, Server};
use rkube_node::{NodeAgent, NodeConfig};

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

fn jsonpath(s: &Server, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let jp = format!("jsonpath={path}");
    a.extend(["-o", jp.as_str()]);
    let o = s.kubectl(&a);
    String::from_utf8_lossy(&o.stdout).into_owned()
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
    let mut cfg = NodeConfig::new("n1", "10.244.1.0/24");
    cfg.max_pods = 2;
    cfg.labels
        .insert("topology.kubernetes.io/zone".into(), "z1".into());
    cfg.taints
        .push(rkube_node::agent::parse_taint("dedicated=sim:NoSchedule").unwrap());
    cfg.lease_renew_interval = Duration::from_millis(500);
    let agent = tokio::spawn(NodeAgent::run(client, cfg));

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
        assert_eq!(cap, "4/8Gi/2");
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

        // A pod that exits 0 after 1s Succeeds and no longer counts.
        s.apply(&pod_yaml("done", &[("rkube.io/simulate-exit-after", "1s")]));
        wait_phase(&s, "done", "Succeeded");
        s.apply(&pod_yaml("third", &[("rkube.io/simulate-ready", "false")]));
        wait_phase(&s, "third", "Running");
        assert!(s.ok(&["get", "pod", "third"]).contains("0/1"));
        // Beyond max-pods (2 running): rejected with OutOfpods.
        s.apply(&pod_yaml("extra", &[]));
        wait_phase(&s, "extra", "Failed");
        assert_eq!(
            jsonpath(&s, &["get", "pod", "extra"], "{.status.reason}"),
            "OutOfpods"
        );

        // Graceful deletion is finished by the agent; the IP is reused.
        s.ok(&["delete", "pod", "web", "--timeout=20s"]);
        assert!(!s.kubectl(&["get", "pod", "web"]).status.success());
        s.ok(&["delete", "pod", "extra", "--timeout=20s"]);
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

/// Kills the child on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agent_subcommand_registers_node() {
    let s = Server::start();
    let child = std::process::Command::new(common::rkube_bin())
        .arg("agent")
        .arg("--server-kubeconfig")
        .arg(&s.kubeconfig)
        .args(["--node-name", "n2", "--pod-cidr", "10.244.2.0/24"])
        .args(["--max-pods", "5", "--node-labels", "a=b,c=d"])
        .args(["--register-with-taints", "x=y:NoSchedule"])
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
    assert_eq!(ip, "10.244.2.2");
}
