//! The real agent's housekeeping on a real node: the orphan sweep at agent
//! start (what a pod deleted while the agent was down left behind goes) and
//! image garbage collection above `--image-gc-high-threshold` (unused
//! images go, images a container — running or exited — uses stay).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rkube_image::testing::{ImageBuilder, LayerBuilder, TestRegistry};

use crate::common::{eventually, jsonpath, rkube_bin, Server};
use crate::containers::{real_server, registry, run_sh, wait_phase};

fn agent_dir(s: &Server) -> PathBuf {
    s.dir.path().join("agent")
}

/// The ID of the pod's first container (without the `rkube://` scheme).
fn container_id(s: &Server, pod: &str) -> String {
    let id = jsonpath(
        s,
        &["get", "pod", pod],
        "{.status.containerStatuses[0].containerID}",
    );
    id.strip_prefix("rkube://")
        .unwrap_or_else(|| panic!("unexpected container ID {id:?}"))
        .to_string()
}

/// `runc --root ROOT state ID`'s pid, if runc knows the container.
fn runc_pid(runc_root: &Path, id: &str) -> Option<u32> {
    let o = Command::new("runc")
        .arg("--root")
        .arg(runc_root)
        .args(["state", id])
        .output()
        .expect("run runc");
    if !o.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("runc state JSON");
    v["pid"].as_u64().map(|p| p as u32)
}

/// `runc --root ROOT list -q`: the container IDs runc knows.
fn runc_list(runc_root: &Path) -> Vec<String> {
    let o = Command::new("runc")
        .arg("--root")
        .arg(runc_root)
        .args(["list", "-q"])
        .output()
        .expect("run runc");
    assert!(o.status.success(), "runc list failed: {o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// PIDs of the processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

fn wait_node_ready(s: &Server) {
    eventually(Duration::from_secs(60), || {
        let ready = jsonpath(
            s,
            &["get", "nodes"],
            "{.items[0].status.conditions[?(@.type==\"Ready\")].status}",
        );
        (ready == "True").then_some(())
    });
}

#[test]
fn agent_start_sweeps_what_a_pod_deleted_while_it_was_down_left_behind() {
    let (_reg, image) = registry();
    let mut s = real_server(&[]);
    run_sh(&s, "keeper", &image, "sleep 3600");
    run_sh(&s, "orphan", &image, "sleep 3600");
    wait_phase(&s, "keeper", "Running", 90);
    wait_phase(&s, "orphan", "Running", 90);
    let agent = agent_dir(&s);
    let runc_root = agent.join("runc");
    let keeper_id = container_id(&s, "keeper");
    let id = container_id(&s, "orphan");
    let uid = jsonpath(&s, &["get", "pod", "orphan"], "{.metadata.uid}");
    let state_dir = agent.join("containers").join(&id);
    let pod_dir = agent.join("pods").join(&uid);
    let netns = PathBuf::from(format!("/run/netns/rkube-{uid}"));
    let pid = runc_pid(&runc_root, &id).expect("runc knows the running container");
    let state_needle = state_dir.to_string_lossy().into_owned();
    assert!(state_dir.is_dir() && pod_dir.is_dir() && netns.exists());
    assert!(
        !processes_mentioning(&state_needle).is_empty(),
        "the container's monitor runs with its state dir"
    );

    // The agent dies; the containers keep running under their monitors.
    s.kill9();
    assert!(alive(pid), "the container outlives the agent");
    // The pod is deleted while no agent runs: the control plane alone on
    // the same data dir.
    let agent_args = s.extra_args.clone();
    s.extra_args.push("--no-agent".into());
    s.restart();
    s.ok(&["delete", "pod", "orphan", "--force", "--grace-period=0"]);
    assert!(!s.ok(&["get", "pods", "-o", "name"]).contains("orphan"));
    s.kill9();
    assert!(
        alive(pid),
        "nothing stopped the container of the deleted pod"
    );

    // The agent comes back and sweeps what the deleted pod left.
    s.extra_args = agent_args;
    s.restart();
    eventually(Duration::from_secs(60), || {
        (!alive(pid)
            && processes_mentioning(&state_needle).is_empty()
            && !runc_list(&runc_root).contains(&id)
            && !state_dir.exists()
            && !pod_dir.exists()
            && !netns.exists())
        .then_some(())
    });
    // The pod still bound to the node keeps its container.
    wait_node_ready(&s);
    wait_phase(&s, "keeper", "Running", 60);
    assert_eq!(container_id(&s, "keeper"), keeper_id);
    assert!(runc_list(&runc_root).contains(&keeper_id));
    assert!(agent.join("containers").join(&keeper_id).is_dir());
}

/// Pushes busybox plus a layer of its own as `name:1`; its reference.
fn push_variant(reg: &TestRegistry, name: &str) -> String {
    let img = ImageBuilder::busybox()
        .expect("busybox image")
        .layer(LayerBuilder::new().file(name, name.as_bytes().to_vec(), 0o644))
        .build();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push(name, "1", &img)).expect("push");
    reg.reference(&format!("{name}:1"))
}

/// The repositories (`host:port/name`) of the images in the agent's store,
/// as `rkube image ls` lists them.
fn stored_images(s: &Server) -> String {
    let o = Command::new(rkube_bin())
        .args(["image", "ls", "--root"])
        .arg(agent_dir(s).join("images"))
        .output()
        .expect("run rkube image ls");
    assert!(o.status.success(), "rkube image ls: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn repo(reference: &str) -> &str {
    reference.rsplit_once(':').map(|(r, _)| r).unwrap()
}

#[test]
fn image_gc_above_the_high_threshold_removes_only_unused_images() {
    let reg = TestRegistry::start().expect("start docker-registry");
    let [used_by_exited, running, unused] =
        ["gc-exited", "gc-running", "gc-unused"].map(|n| push_variant(&reg, n));
    // Any usage is above 1%: every round collects what it may.
    let s = real_server(&[
        "--image-gc-high-threshold",
        "1",
        "--image-gc-low-threshold",
        "0",
        "--housekeeping-interval",
        "1s",
        // Long enough for a pulled image to get its container.
        "--minimum-image-ttl-duration",
        "15s",
    ]);
    run_sh(&s, "running", &running, "sleep 3600");
    run_sh(&s, "exited", &used_by_exited, "true");
    run_sh(&s, "unused", &unused, "true");
    wait_phase(&s, "running", "Running", 90);
    wait_phase(&s, "exited", "Succeeded", 90);
    wait_phase(&s, "unused", "Succeeded", 90);
    let ls = stored_images(&s);
    for r in [&used_by_exited, &running, &unused] {
        assert!(ls.contains(repo(r)), "{r} pulled:\n{ls}");
    }

    // Once its pod (and so its container) is gone, its image goes too.
    s.ok(&["delete", "pod", "unused", "--wait=true"]);
    let ls = eventually(Duration::from_secs(60), || {
        let ls = stored_images(&s);
        (!ls.contains(repo(&unused))).then_some(ls)
    });
    // That round kept the images of the running and the exited container.
    assert!(ls.contains(repo(&running)), "{ls}");
    assert!(ls.contains(repo(&used_by_exited)), "{ls}");

    s.ok(&["delete", "pod", "exited", "--wait=true"]);
    let ls = eventually(Duration::from_secs(60), || {
        let ls = stored_images(&s);
        (!ls.contains(repo(&used_by_exited))).then_some(ls)
    });
    assert!(ls.contains(repo(&running)), "{ls}");
    // The running pod is unaffected.
    assert_eq!(
        jsonpath(&s, &["get", "pod", "running"], "{.status.phase}"),
        "Running"
    );
    assert!(s
        .ok(&["exec", "running", "--", "cat", "/gc-running"])
        .contains("gc-running"));
}
