//! Node facts of the real agent embedded in `rkube server`, through the real
//! kubectl: allocatable from `--system-reserved`/`--kube-reserved`/
//! `--eviction-hard`, ephemeral-storage capacity from the agent's file
//! system, the Summary API through `nodes/{name}/proxy/stats/summary`, and
//! MemoryPressure measured against a threshold no host can meet. Needs what
//! `containers.rs` needs (root, runc, CNI plugins, docker-registry).

use std::time::Duration;

use rkube_api::quantity::Quantity;
use serde_json::Value;

use crate::common::{eventually, jsonpath, Server};
use crate::containers::{real_server, registry, run_sh, wait_phase};

fn node_json(s: &Server) -> Value {
    let out = s.ok(&["get", "nodes", "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("node list json");
    list["items"][0].clone()
}

fn q(v: &Value) -> Quantity {
    Quantity::parse(v.as_str().expect("quantity string")).expect("quantity")
}

const MI: i128 = 1 << 20;
const GI: i128 = 1 << 30;

#[test]
fn allocatable_is_capacity_minus_reservations_and_the_hard_eviction_threshold() {
    let s = real_server(&[
        "--system-reserved",
        "cpu=100m,memory=256Mi,ephemeral-storage=1Gi",
        "--kube-reserved",
        "cpu=200m,memory=128Mi",
        "--eviction-hard",
        "memory.available<100Mi,nodefs.available<1%,imagefs.available<1%",
    ]);
    let node = node_json(&s);
    let cap = &node["status"]["capacity"];
    let alloc = &node["status"]["allocatable"];
    assert_eq!(
        q(&alloc["cpu"]).milli_value(),
        q(&cap["cpu"]).milli_value() - 300,
        "{node}"
    );
    assert_eq!(
        q(&alloc["memory"]).value(),
        q(&cap["memory"]).value() - 256 * MI - 128 * MI - 100 * MI,
        "{node}"
    );
    // Ephemeral storage: the agent root's file system, less 1Gi and 1%.
    let (fs_cap, _) = rkube_image::fs_space(&s.dir.path().join("agent")).expect("statvfs");
    let storage = q(&cap["ephemeral-storage"]).value();
    assert_eq!(storage, i128::from(fs_cap), "{node}");
    assert_eq!(
        q(&alloc["ephemeral-storage"]).value(),
        storage - GI - (fs_cap as f64 * 0.01) as i128,
        "{node}"
    );
    assert_eq!(alloc["pods"], cap["pods"]);
    let mem = jsonpath(
        &s,
        &["get", "nodes"],
        "{.items[0].status.conditions[?(@.type==\"MemoryPressure\")].reason}",
    );
    assert_eq!(mem, "KubeletHasSufficientMemory");
    // nodeInfo is the host's, as `kubectl get nodes -o wide` shows it.
    let info = &node["status"]["nodeInfo"];
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert_eq!(info["kernelVersion"], kernel.trim(), "{info}");
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot_id");
    assert_eq!(info["bootID"], boot_id.trim(), "{info}");
    let runc = std::process::Command::new("/usr/sbin/runc")
        .arg("--version")
        .output()
        .expect("runc --version");
    let runc = String::from_utf8_lossy(&runc.stdout);
    let runc_version = runc.split_whitespace().nth(2).expect("runc version");
    assert_eq!(
        info["containerRuntimeVersion"],
        format!("runc://{runc_version}"),
        "{info}"
    );
    let wide = s.ok(&["get", "nodes", "-o", "wide"]);
    assert!(wide.contains(kernel.trim()), "{wide}");
    assert!(!wide.contains("simulated"), "{wide}");
}

#[test]
fn a_bad_reservation_is_a_cli_error_naming_the_flag() {
    let out = std::process::Command::new(crate::common::rkube_bin())
        .args(["agent", "--system-reserved", "memory=lots"])
        .output()
        .expect("run rkube");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--system-reserved"), "{err}");
    assert!(err.contains("memory=lots"), "{err}");
    let out = std::process::Command::new(crate::common::rkube_bin())
        .args(["agent", "--eviction-hard", "memory.free<1Gi"])
        .output()
        .expect("run rkube");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--eviction-hard"), "{err}");
    assert!(err.contains("memory.free"), "{err}");
}

#[test]
fn stats_summary_through_the_node_proxy_lists_a_running_pod() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    run_sh(
        &s,
        "stats-pod",
        &image,
        "x=$(head -c 4000000 /dev/zero | tr '\\0' a); exec sleep 3600",
    );
    wait_phase(&s, "stats-pod", "Running", 90);
    let node = jsonpath(&s, &["get", "nodes"], "{.items[0].metadata.name}");
    let uid = jsonpath(&s, &["get", "pod", "stats-pod"], "{.metadata.uid}");
    let path = format!("/api/v1/nodes/{node}/proxy/stats/summary");
    // The pod is listed once its container runs; its working set is real.
    let (summary, pod) = eventually(Duration::from_secs(60), || {
        let out = s.ok(&["get", "--raw", &path]);
        let v: Value = serde_json::from_str(&out).expect("summary json");
        let pod = v["pods"]
            .as_array()?
            .iter()
            .find(|p| p["podRef"]["name"] == "stats-pod")?
            .clone();
        Some((v, pod))
    });
    assert_eq!(summary["node"]["nodeName"], node.as_str());
    assert!(summary["node"]["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0));
    assert!(summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0));
    assert!(summary["node"]["fs"]["capacityBytes"].as_u64() > Some(0));
    assert!(summary["node"]["runtime"]["imageFs"]["availableBytes"].is_u64());
    assert_eq!(pod["podRef"]["namespace"], "default");
    assert_eq!(pod["podRef"]["uid"], uid.as_str());
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "stats-pod");
    assert!(c["startTime"].is_string(), "{pod}");
    assert!(c["memory"]["workingSetBytes"].as_u64() > Some(0), "{pod}");
    assert!(c["cpu"]["usageCoreNanoSeconds"].is_u64(), "{pod}");
    assert!(pod["memory"]["workingSetBytes"].as_u64() > Some(0), "{pod}");
    // Other agent paths are proxied too.
    assert_eq!(
        s.ok(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/healthz")
        ]),
        "ok"
    );
}

#[test]
fn a_memory_threshold_above_the_host_memory_sets_memory_pressure_and_its_taint() {
    // No host has a pebibyte free: the real measurement is below it.
    let s = real_server(&[
        "--eviction-hard",
        "memory.available<1Pi,nodefs.available<1%,imagefs.available<1%",
    ]);
    let cond = |field: &str| {
        jsonpath(
            &s,
            &["get", "nodes"],
            &format!("{{.items[0].status.conditions[?(@.type==\"MemoryPressure\")].{field}}}"),
        )
    };
    assert_eq!(cond("status"), "True");
    assert_eq!(cond("reason"), "KubeletHasInsufficientMemory");
    assert_eq!(cond("message"), "kubelet has insufficient memory available");
    let disk = jsonpath(
        &s,
        &["get", "nodes"],
        "{.items[0].status.conditions[?(@.type==\"DiskPressure\")].reason}",
    );
    assert_eq!(disk, "KubeletHasNoDiskPressure");
    // The node lifecycle controller taints the node by its condition.
    eventually(Duration::from_secs(60), || {
        let taints = jsonpath(
            &s,
            &["get", "nodes"],
            "{range .items[0].spec.taints[*]}{.key}:{.effect} {end}",
        );
        taints
            .contains("node.kubernetes.io/memory-pressure:NoSchedule")
            .then_some(())
    });
    // Allocatable memory cannot go below zero.
    let alloc = jsonpath(
        &s,
        &["get", "nodes"],
        "{.items[0].status.allocatable.memory}",
    );
    assert_eq!(alloc, "0");
    // The agent admits by pressure as upstream's eviction manager does: a
    // BestEffort pod bound to the node is rejected, a Burstable one runs.
    let (_reg, image) = registry();
    let node = jsonpath(&s, &["get", "nodes"], "{.items[0].metadata.name}");
    let bound = |name: &str, resources: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},
            "spec":{{"nodeName":"{node}","terminationGracePeriodSeconds":1,
            "containers":[{{"name":"c","image":"{image}","command":["sleep","3600"],
            "resources":{resources}}}]}}}}"#
        )
    };
    s.ok_stdin(&["create", "-f", "-"], &bound("best-effort", "{}"));
    s.ok_stdin(
        &["create", "-f", "-"],
        &bound("burstable", r#"{"requests":{"cpu":"10m"}}"#),
    );
    wait_phase(&s, "best-effort", "Failed", 60);
    let why = jsonpath(
        &s,
        &["get", "pod", "best-effort"],
        "{.status.reason}/{.status.message}",
    );
    assert_eq!(
        why,
        "Evicted/Pod was rejected: The node had condition: [MemoryPressure]. "
    );
    wait_phase(&s, "burstable", "Running", 90);
}
