//! End-to-end: simulated nodes, driven with the real kubectl. Nodes run
//! inside `rkube server --simulated-nodes N`, are adopted KWOK-style when
//! created with `rkube.io/simulated: "true"`, or run in a separate
//! `rkube agent --simulate N` process; pod CIDRs come from the control
//! plane's node IPAM controller.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::common::{eventually, jsonpath, KillOnDrop, Server};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;

fn pod_on(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  \
         containers:\n  - name: app\n    image: nginx:1.27\n"
    )
}

fn wait_running(s: &Server, pod: &str) {
    eventually(Duration::from_secs(30), || {
        (jsonpath(s, &["get", "pod", pod], "{.status.phase}") == "Running").then_some(())
    });
}

/// Whether `ip` is a pod address of `cidr` (`a.b.c.d/len`).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (Ok(ip), Some((net, len))) = (ip.parse::<Ipv4Addr>(), cidr.split_once('/')) else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) && u32::from(ip) != u32::from(net)
}

const KWOK_NODES: &str = "\
apiVersion: v1
kind: Node
metadata:
  name: kw-big
  annotations:
    rkube.io/simulated: \"true\"
  labels:
    pool: big
spec:
  taints:
  - key: dedicated
    value: big
    effect: NoSchedule
status:
  capacity:
    cpu: \"64\"
    memory: 256Gi
    pods: \"3\"
---
apiVersion: v1
kind: Node
metadata:
  name: kw-plain
  annotations:
    rkube.io/simulated: \"true\"
";

#[test]
fn server_simulates_nodes_and_adopts_annotated_ones() {
    let s = Server::start_with(&[
        "--simulated-nodes",
        "3",
        "--node-lease-renew-interval",
        "500ms",
        "--node-status-report-interval",
        "1s",
    ]);
    // The server's own simulated nodes: Ready, with the default capacity.
    let out = eventually(Duration::from_secs(30), || {
        let out = s.ok(&["get", "nodes", "-o", "wide"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == 3).then_some(out)
    });
    let header = out.lines().next().unwrap();
    for col in ["NAME", "STATUS", "INTERNAL-IP", "CONTAINER-RUNTIME"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        out.contains("sim-node-0") && out.contains("sim-node-2"),
        "{out}"
    );
    assert!(out.contains("172.16.0.1"), "{out}");
    let cap = jsonpath(
        &s,
        &["get", "node", "sim-node-1"],
        "{.status.capacity.cpu}/{.status.capacity.memory}/{.status.allocatable.pods}",
    );
    assert_eq!(cap, "4/16Gi/110");

    // KWOK-style: nodes applied with the annotation are adopted; given
    // capacity, labels and taints are kept, missing ones defaulted.
    s.ok_stdin(&["apply", "-f", "-"], KWOK_NODES);
    eventually(Duration::from_secs(30), || {
        let out = s.ok(&["get", "nodes"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == 5).then_some(())
    });
    let big = jsonpath(
        &s,
        &["get", "node", "kw-big"],
        "{.status.capacity.cpu}/{.status.capacity.memory}/{.status.allocatable.pods} \
         {.metadata.labels.pool} {.spec.taints[0].key}",
    );
    assert_eq!(big, "64/256Gi/3 big dedicated");
    let plain = jsonpath(
        &s,
        &["get", "node", "kw-plain"],
        "{.status.capacity.cpu}/{.status.capacity.memory}/{.status.capacity.pods}",
    );
    assert_eq!(plain, "4/16Gi/110");

    // Every node gets a pod CIDR from the control plane; a bound pod runs
    // with an address inside its node's CIDR.
    let cidr = eventually(Duration::from_secs(30), || {
        let c = jsonpath(&s, &["get", "node", "kw-big"], "{.spec.podCIDR}");
        (!c.is_empty()).then_some(c)
    });
    assert!(cidr.starts_with("10.") && cidr.ends_with("/24"), "{cidr}");
    let cidrs: Vec<String> = ["sim-node-0", "sim-node-1", "sim-node-2", "kw-plain"]
        .iter()
        .map(|n| {
            eventually(Duration::from_secs(30), || {
                let c = jsonpath(&s, &["get", "node", n], "{.spec.podCIDR}");
                (!c.is_empty()).then_some(c)
            })
        })
        .collect();
    let mut all = cidrs.clone();
    all.push(cidr.clone());
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5, "pod CIDRs are distinct: {cidrs:?} {cidr}");
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        s.ok_stdin(&["apply", "-f", "-"], &pod_on(name, "kw-big"));
        wait_running(&s, name);
        let ip = jsonpath(&s, &["get", "pod", name], "{.status.podIP}");
        assert!(in_cidr(&ip, &cidr), "pod {i} ip {ip} not in {cidr}");
        let host = jsonpath(&s, &["get", "pod", name], "{.status.hostIP}");
        assert!(host.starts_with("172.24."), "{host}");
    }
    // kw-big admits 3 pods: the fourth is rejected by the node.
    s.ok_stdin(&["apply", "-f", "-"], &pod_on("d", "kw-big"));
    eventually(Duration::from_secs(30), || {
        (jsonpath(&s, &["get", "pod", "d"], "{.status.phase}/{.status.reason}")
            == "Failed/OutOfpods")
            .then_some(())
    });
    // kubectl delete finishes gracefully (the node confirms).
    s.ok(&["delete", "pod", "a", "d", "--timeout=30s"]);
    assert!(s.ok(&["get", "pods", "-o", "name"]).lines().count() == 2);

    // A node whose heartbeat stops: its Lease goes stale and its Ready
    // condition is no longer refreshed; both resume when the annotation goes.
    let lease = |s: &Server| {
        jsonpath(
            s,
            &["get", "lease", "-n", "kube-node-lease", "kw-plain"],
            "{.spec.renewTime}",
        )
    };
    let heartbeat = |s: &Server| {
        jsonpath(
            s,
            &["get", "node", "kw-plain"],
            "{.status.conditions[?(@.type==\"Ready\")].lastHeartbeatTime}",
        )
    };
    eventually(Duration::from_secs(30), || {
        (!lease(&s).is_empty()).then_some(())
    });
    s.ok(&[
        "annotate",
        "node",
        "kw-plain",
        "rkube.io/simulate-heartbeat=stopped",
    ]);
    // Let a renewal already in flight land.
    std::thread::sleep(Duration::from_secs(1));
    let (l0, h0) = (lease(&s), heartbeat(&s));
    // Many lease intervals (500ms) and report intervals (1s) later...
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lease(&s), l0, "lease renewed while stopped");
    assert_eq!(heartbeat(&s), h0, "Ready refreshed while stopped");
    // ...while the other nodes keep renewing.
    let other = || {
        jsonpath(
            &s,
            &["get", "lease", "-n", "kube-node-lease", "kw-big"],
            "{.spec.renewTime}",
        )
    };
    let o0 = other();
    eventually(Duration::from_secs(10), || (other() != o0).then_some(()));
    s.ok(&[
        "annotate",
        "node",
        "kw-plain",
        "rkube.io/simulate-heartbeat-",
    ]);
    eventually(Duration::from_secs(10), || {
        (lease(&s) != l0 && heartbeat(&s) != h0).then_some(())
    });
}

#[test]
fn agent_simulates_many_nodes_in_one_process() {
    let s = Server::start();
    let child = std::process::Command::new(crate::common::rkube_bin())
        .args(["agent", "--simulate", "50", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .args(["--node-name-prefix", "t-", "--cpu", "8", "--memory", "32Gi"])
        .args([
            "--max-pods-from-interfaces",
            "2",
            "--ips-per-interface",
            "3",
        ])
        .args([
            "--node-labels",
            "pool=sim",
            "--register-with-taints",
            "sim=yes:NoSchedule",
        ])
        .env("RKUBE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start rkube agent --simulate");
    let _child = KillOnDrop(child);
    eventually(Duration::from_secs(60), || {
        let out = s.ok(&["get", "nodes", "-l", "pool=sim"]);
        (out.lines().filter(|l| l.contains(" Ready ")).count() == 50).then_some(())
    });
    let got = jsonpath(
        &s,
        &["get", "node", "t-49"],
        "{.status.capacity.cpu}/{.status.capacity.memory}/{.status.capacity.pods} \
         {.spec.taints[0].key} {.metadata.labels.kubernetes\\.io/hostname}",
    );
    // EKS-style max pods: 2 interfaces * (3 - 1) = 4.
    assert_eq!(got, "8/32Gi/4 sim t-49");
    // Pods on one node: 4 run, the fifth is rejected.
    for i in 0..5 {
        s.ok_stdin(&["apply", "-f", "-"], &pod_on(&format!("p{i}"), "t-7"));
        if i < 4 {
            wait_running(&s, &format!("p{i}"));
        }
    }
    eventually(Duration::from_secs(30), || {
        (jsonpath(&s, &["get", "pod", "p4"], "{.status.reason}") == "OutOfpods").then_some(())
    });
    let cidr = jsonpath(&s, &["get", "node", "t-7"], "{.spec.podCIDR}");
    let ip = jsonpath(&s, &["get", "pod", "p0"], "{.status.podIP}");
    assert!(in_cidr(&ip, &cidr), "{ip} not in {cidr}");
    // Bad flags are named.
    let out = std::process::Command::new(crate::common::rkube_bin())
        .args(["agent", "--simulate", "2", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .args(["--register-with-taints", "oops"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid taint \"oops\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A thousand pods created and deleted in churn over two simulated nodes:
/// no two live pods ever share an address, and every address is inside
/// its node's CIDR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_ips_are_never_duplicated_in_churn() {
    let s = Server::start_with(&["--simulated-nodes", "2"]);
    let client = s.client().await;
    let nodes = ["sim-node-0", "sim-node-1"];
    let cidrs: HashMap<String, String> = tokio::task::block_in_place(|| {
        nodes
            .iter()
            .map(|n| {
                let c = eventually(Duration::from_secs(30), || {
                    let c = jsonpath(&s, &["get", "node", n], "{.spec.podCIDR}");
                    (!c.is_empty()).then_some(c)
                });
                (n.to_string(), c)
            })
            .collect()
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Watch every pod; check live addresses as events arrive.
    let watch = {
        let pods = pods.clone();
        let cidrs = cidrs.clone();
        tokio::spawn(async move {
            let mut live: HashMap<String, String> = HashMap::new(); // ip -> uid
            let mut by_uid: HashMap<String, String> = HashMap::new(); // uid -> ip
            let mut running_seen = 0usize;
            let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
            while let Some(ev) = events.try_next().await.expect("watch") {
                let (pod, gone) = match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, false),
                    watcher::Event::Delete(p) => (p, true),
                    _ => continue,
                };
                let uid = pod.metadata.uid.clone().unwrap();
                if let Some(ip) = by_uid.remove(&uid) {
                    live.remove(&ip);
                }
                let st = pod.status.clone().unwrap_or_default();
                let terminating = pod.metadata.deletion_timestamp.is_some();
                if gone || terminating || st.phase.as_deref() != Some("Running") {
                    continue;
                }
                let Some(ip) = st.pod_ip.clone() else {
                    continue;
                };
                let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
                assert!(in_cidr(&ip, &cidrs[&node]), "{ip} outside {node}");
                if let Some(other) = live.insert(ip.clone(), uid.clone()) {
                    panic!("address {ip} of pod {uid} already held by live pod {other}");
                }
                by_uid.insert(uid, ip);
                running_seen += 1;
                if pod.metadata.name.as_deref() == Some("last") {
                    return running_seen;
                }
            }
            running_seen
        })
    };
    let pp = PostParams::default();
    let mut created = Vec::new();
    for wave in 0..10 {
        // 100 new pods, spread over both nodes; then delete 100 of the live
        // ones (oldest first), so that ~100 are live at any time.
        let batch: Vec<Pod> = (0..100)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("churn-{wave}-{i}")},
                    "spec": {"nodeName": nodes[i % 2],
                             "containers": [{"name": "app", "image": "nginx"}]}
                }))
                .unwrap()
            })
            .collect();
        futures::stream::iter(batch)
            .map(|p| {
                let pods = pods.clone();
                let pp = pp.clone();
                async move { pods.create(&pp, &p).await.map(drop) }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .expect("create");
        created.extend((0..100).map(|i| format!("churn-{wave}-{i}")));
        if wave > 0 {
            let victims: Vec<String> = created.drain(..100).collect();
            futures::stream::iter(victims)
                .map(|n| {
                    let pods = pods.clone();
                    async move { pods.delete(&n, &DeleteParams::default()).await.map(drop) }
                })
                .buffer_unordered(16)
                .try_collect::<Vec<()>>()
                .await
                .expect("delete");
        }
    }
    let last: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "last"},
        "spec": {"nodeName": nodes[0], "containers": [{"name": "app", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&pp, &last).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(120), watch)
        .await
        .expect("all pods observed")
        .expect("no duplicate address");
    // Every created pod was seen Running at least once, but the deleted
    // ones may have been deleted before they ran: at least the survivors.
    assert!(seen >= 101, "only {seen} pods seen running");
    // The survivors all run with distinct addresses.
    let ips: Vec<String> = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(60), || {
            let out = jsonpath(
                &s,
                &["get", "pods", "--field-selector", "status.phase=Running"],
                "{range .items[*]}{.status.podIP}{\"\\n\"}{end}",
            );
            let ips: Vec<String> = out.lines().map(String::from).collect();
            (ips.len() == 101).then_some(ips)
        })
    });
    let mut dedup = ips.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), ips.len());
}
