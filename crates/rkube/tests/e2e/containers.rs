//! Real containers (issue 6) with the real kubectl: images pulled from a
//! real `docker-registry` on loopback, run by runc in CNI-networked pods of
//! the agent embedded in `rkube server`. Needs root, runc, the CNI plugins,
//! iptables, docker-registry and busybox-static (installed by `.ci/run`).

use std::time::Duration;

use rkube_image::testing::{ImageBuilder, TestRegistry};

use crate::common::{eventually, http_get, jsonpath, Server};

/// A server whose embedded agent runs real containers on its own bridge
/// and pod CIDR (tests run in parallel).
pub fn real_server(extra: &[&str]) -> Server {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n =
        (std::process::id() % 50) * 4 + NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 4;
    let cidr = format!("10.{}.{}.0/24", 200 + n / 250, n % 250);
    let bridge = format!("rkt{n}");
    let mut args = vec![
        "--pod-cidr",
        &cidr,
        "--cni-bridge",
        &bridge,
        "--agent-port",
        "0",
    ];
    // Upstream's disk thresholds (imagefs.available<15%) would report
    // DiskPressure, and so taint the node, on a build machine's fuller disk.
    if !extra.contains(&"--eviction-hard") {
        args.extend([
            "--eviction-hard",
            "memory.available<100Mi,nodefs.available<1%,imagefs.available<1%",
        ]);
    }
    args.extend_from_slice(extra);
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let s = Server::start_with_agent(&refs);
    eventually(Duration::from_secs(60), || {
        let st = s.kubectl(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (String::from_utf8_lossy(&st.stdout) == "True").then_some(())
    });
    s
}

/// A registry with `busybox:1` pushed.
pub fn registry() -> (TestRegistry, String) {
    let reg = TestRegistry::start().expect("start docker-registry");
    let img = ImageBuilder::busybox().expect("busybox image").build();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(reg.push("busybox", "1", &img)).expect("push");
    let r = reg.reference("busybox:1");
    (reg, r)
}

/// `kubectl run NAME --image IMAGE --restart=Never -- sh -c SCRIPT`.
pub fn run_sh(s: &Server, name: &str, image: &str, script: &str) {
    s.ok(&[
        "run",
        name,
        "--image",
        image,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        script,
    ]);
}

pub fn phase(s: &Server, pod: &str) -> String {
    jsonpath(s, &["get", "pod", pod], "{.status.phase}")
}

pub fn wait_phase(s: &Server, pod: &str, want: &str, secs: u64) {
    eventually(Duration::from_secs(secs), || {
        (phase(s, pod) == want).then_some(())
    });
}

#[test]
fn echo_pod_succeeds_and_kubectl_logs_shows_its_output() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    run_sh(
        &s,
        "echo",
        &image,
        "echo hello from rkube; echo to-stderr >&2",
    );
    wait_phase(&s, "echo", "Succeeded", 90);
    let logs = s.ok(&["logs", "echo"]);
    assert!(logs.contains("hello from rkube"), "{logs}");
    assert!(logs.contains("to-stderr"), "{logs}");
    let code = jsonpath(
        &s,
        &["get", "pod", "echo"],
        "{.status.containerStatuses[0].state.terminated.exitCode}",
    );
    assert_eq!(code, "0");
    let reason = jsonpath(
        &s,
        &["get", "pod", "echo"],
        "{.status.containerStatuses[0].state.terminated.reason}",
    );
    assert_eq!(reason, "Completed");
    let tail = s.ok(&["logs", "echo", "--tail", "1", "--timestamps"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=echo",
    ]);
    for reason in ["Pulling", "Pulled", "Created", "Started"] {
        assert!(events.contains(reason), "missing {reason}: {events}");
    }
}

#[test]
fn http_server_deployment_is_reachable_on_its_pod_ip_from_the_host() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    s.ok(&[
        "create", "deployment", "web", "--image", &image, "--port", "8080", "--",
        "sh", "-c", "mkdir -p /www && echo served-by-busybox > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]);
    s.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let ip = jsonpath(
        &s,
        &["get", "pods", "-l", "app=web"],
        "{.items[0].status.podIP}",
    );
    assert!(ip.starts_with("10.2"), "pod IP from the node's CIDR: {ip}");
    let body = eventually(Duration::from_secs(30), || {
        let b = http_get(&format!("{ip}:8080"), "/");
        b.contains("served-by-busybox").then_some(b)
    });
    assert!(body.contains("served-by-busybox"));
}

#[test]
fn config_maps_secrets_env_and_init_containers_in_order() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    s.ok(&[
        "create",
        "configmap",
        "app",
        "--from-literal=color=blue",
        "--from-literal=size=xl",
    ]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ]);
    s.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: cfg}}
spec:
  restartPolicy: Never
  initContainers:
  - {{name: first, image: "{image}", command: [sh, -c, "echo first >> /work/order"], volumeMounts: [{{name: work, mountPath: /work}}]}}
  - {{name: second, image: "{image}", command: [sh, -c, "echo second >> /work/order"], volumeMounts: [{{name: work, mountPath: /work}}]}}
  containers:
  - name: main
    image: "{image}"
    command: [sh, -c, "cat /work/order; echo COLOR=$COLOR; echo PW=$(cat /secret/password); echo SIZE=$(cat /config/size); echo GREETING=$GREETING; echo POD=$POD_NAME"]
    env:
    - {{name: COLOR, valueFrom: {{configMapKeyRef: {{name: app, key: color}}}}}}
    - {{name: GREETING, value: "hi-$(COLOR)"}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: config, mountPath: /config}}
    - {{name: secret, mountPath: /secret}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: config, configMap: {{name: app}}}}
  - {{name: secret, secret: {{secretName: creds, defaultMode: 0400}}}}
"#
    ));
    wait_phase(&s, "cfg", "Succeeded", 90);
    let logs = s.ok(&["logs", "cfg", "-c", "main"]);
    assert!(logs.contains("first\nsecond\n"), "init order: {logs}");
    for want in [
        "COLOR=blue",
        "PW=s3cret",
        "SIZE=xl",
        "GREETING=hi-blue",
        "POD=cfg",
    ] {
        assert!(logs.contains(want), "missing {want}: {logs}");
    }
    let init = jsonpath(
        &s,
        &["get", "pod", "cfg"],
        "{.status.initContainerStatuses[*].state.terminated.reason}",
    );
    assert_eq!(init, "Completed Completed");
}

#[test]
fn config_map_volume_updates_in_place() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    s.ok(&["create", "configmap", "live", "--from-literal=v=one"]);
    s.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: watcher}}
spec:
  containers:
  - name: c
    image: "{image}"
    command: [sh, -c, "while true; do echo v=$(cat /cfg/v); sleep 1; done"]
    volumeMounts: [{{name: cfg, mountPath: /cfg}}]
  volumes: [{{name: cfg, configMap: {{name: live}}}}]
"#
    ));
    wait_phase(&s, "watcher", "Running", 90);
    eventually(Duration::from_secs(20), || {
        s.ok(&["logs", "watcher"]).contains("v=one").then_some(())
    });
    s.ok(&[
        "patch",
        "configmap",
        "live",
        "-p",
        r#"{"data":{"v":"two"}}"#,
    ]);
    eventually(Duration::from_secs(40), || {
        s.ok(&["logs", "watcher"]).contains("v=two").then_some(())
    });
}

#[test]
fn oom_killed_container_reports_reason_and_137() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    s.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: "{image}"
    command: [sh, -c, "tail /dev/zero"]
    resources: {{limits: {{memory: 16Mi}}}}
"#
    ));
    wait_phase(&s, "hog", "Failed", 90);
    let t = |f: &str| {
        jsonpath(
            &s,
            &["get", "pod", "hog"],
            &format!("{{.status.containerStatuses[0].state.terminated.{f}}}"),
        )
    };
    assert_eq!(t("reason"), "OOMKilled");
    assert_eq!(t("exitCode"), "137");
}

#[test]
fn failing_liveness_probe_restarts_then_crash_loop_back_off() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    s.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: sick}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: "{image}"
    command: [sh, -c, "sleep 3600"]
    livenessProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1, failureThreshold: 1}}
"#
    ));
    eventually(Duration::from_secs(120), || {
        let reason = jsonpath(
            &s,
            &["get", "pod", "sick"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        let restarts: i32 = jsonpath(
            &s,
            &["get", "pod", "sick"],
            "{.status.containerStatuses[0].restartCount}",
        )
        .parse()
        .unwrap_or(0);
        (reason == "CrashLoopBackOff" && restarts >= 1).then_some(())
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=sick",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");
    assert!(
        events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );
    let out = s.ok(&["get", "pod", "sick"]);
    assert!(out.contains("CrashLoopBackOff"), "{out}");
}

#[test]
fn readiness_probe_gates_the_ready_condition() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    s.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: slow}}
spec:
  containers:
  - name: c
    image: "{image}"
    command: [sh, -c, "sleep 4; touch /tmp/ready; sleep 3600"]
    readinessProbe: {{exec: {{command: [cat, /tmp/ready]}}, periodSeconds: 1}}
"#
    ));
    wait_phase(&s, "slow", "Running", 90);
    let ready = |s: &Server| {
        jsonpath(
            s,
            &["get", "pod", "slow"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        )
    };
    assert_eq!(ready(&s), "False", "not ready before the file exists");
    eventually(Duration::from_secs(30), || {
        (ready(&s) == "True").then_some(())
    });
}

#[test]
fn graceful_termination_runs_the_sigterm_trap() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    let out = tempfile::tempdir().unwrap();
    s.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: trap}}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: c
    image: "{image}"
    command: [sh, -c, "trap 'echo got-TERM > /out/term; exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes: [{{name: out, hostPath: {{path: "{}", type: Directory}}}}]
"#,
        out.path().display()
    ));
    wait_phase(&s, "trap", "Running", 90);
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["delete", "pod", "trap", "--wait=true", "--timeout=60s"]);
    let term = std::fs::read_to_string(out.path().join("term")).unwrap_or_default();
    assert_eq!(term.trim(), "got-TERM");
}

#[test]
fn missing_image_goes_err_image_pull_then_image_pull_back_off() {
    let (reg, _image) = registry();
    let s = real_server(&[]);
    let missing = reg.reference("nothere:1");
    s.ok(&["run", "ghost", "--image", &missing, "--restart=Never"]);
    let reason = |s: &Server| {
        jsonpath(
            s,
            &["get", "pod", "ghost"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        )
    };
    eventually(Duration::from_secs(60), || {
        (reason(&s) == "ErrImagePull").then_some(())
    });
    eventually(Duration::from_secs(60), || {
        (reason(&s) == "ImagePullBackOff").then_some(())
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=ghost",
    ]);
    assert!(events.contains("Failed to pull image"), "{events}");
}

#[test]
fn private_image_needs_its_pull_secret() {
    let reg = TestRegistry::start_with_auth("alice", "wonderland").expect("registry");
    let img = ImageBuilder::busybox().unwrap().build();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(reg.push("private", "1", &img))
        .unwrap();
    let image = reg.reference("private:1");
    let s = real_server(&[]);
    s.ok(&[
        "run",
        "nosecret",
        "--image",
        &image,
        "--restart=Never",
        "--",
        "sleep",
        "600",
    ]);
    eventually(Duration::from_secs(60), || {
        let r = jsonpath(
            &s,
            &["get", "pod", "nosecret"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        matches!(r.as_str(), "ErrImagePull" | "ImagePullBackOff").then_some(())
    });
    s.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server",
        &reg.host(),
        "--docker-username",
        "alice",
        "--docker-password",
        "wonderland",
    ]);
    s.ok(&[
        "run",
        "withsecret",
        "--image",
        &image,
        "--restart=Never",
        "--overrides",
        r#"{"spec":{"imagePullSecrets":[{"name":"regcred"}]}}"#,
        "--",
        "sleep",
        "600",
    ]);
    wait_phase(&s, "withsecret", "Running", 90);
}

#[test]
fn restarting_the_agent_keeps_pods_running_with_the_right_status() {
    let (_reg, image) = registry();
    let mut s = real_server(&[]);
    s.ok(&[
        "run",
        "keeper",
        "--image",
        &image,
        "--",
        "sh",
        "-c",
        "echo up; sleep 3600",
    ]);
    wait_phase(&s, "keeper", "Running", 90);
    let started = jsonpath(
        &s,
        &["get", "pod", "keeper"],
        "{.status.containerStatuses[0].state.running.startedAt}",
    );
    let id = jsonpath(
        &s,
        &["get", "pod", "keeper"],
        "{.status.containerStatuses[0].containerID}",
    );
    let ip = jsonpath(&s, &["get", "pod", "keeper"], "{.status.podIP}");
    s.kill9();
    s.restart();
    // Give the restarted agent time to re-adopt and post.
    std::thread::sleep(Duration::from_secs(3));
    eventually(Duration::from_secs(60), || {
        (phase(&s, "keeper") == "Running").then_some(())
    });
    let after = |f: &str| jsonpath(&s, &["get", "pod", "keeper"], f);
    assert_eq!(
        after("{.status.containerStatuses[0].state.running.startedAt}"),
        started
    );
    assert_eq!(after("{.status.containerStatuses[0].containerID}"), id);
    assert_eq!(after("{.status.containerStatuses[0].restartCount}"), "0");
    assert_eq!(after("{.status.podIP}"), ip);
    assert!(s.ok(&["logs", "keeper"]).contains("up"));
}

#[test]
fn exec_cp_and_port_forward_into_real_containers() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    // The server listens on the pod's 127.0.0.1 only: port-forward must
    // connect inside the pod's network namespace.
    s.ok(&[
        "run", "box", "--image", &image, "--",
        "sh", "-c", "mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
    ]);
    wait_phase(&s, "box", "Running", 90);
    // Non-interactive exec: output and exit codes.
    assert_eq!(
        s.ok(&["exec", "box", "--", "cat", "/www/index.html"]),
        "forwarded\n"
    );
    let o = s.kubectl(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("err"));
    assert_eq!(
        s.ok_stdin(
            &["exec", "-i", "box", "--", "sed", "s/hello/HELLO/"],
            "hello\n"
        ),
        "HELLO\n"
    );
    // Interactive exec on a terminal made by `script`.
    let o = s.exec_on_terminal(&["box", "--", "sh"], "echo tty-$((6*7)); tty; exit 5\n");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("tty-42") && text.contains("/dev/pts/"),
        "{text}"
    );
    assert_eq!(o.status.code(), Some(5), "{text}");
    // kubectl cp both ways (tar in the container).
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("up.txt"), "uploaded\n").unwrap();
    s.ok(&[
        "cp",
        local.path().join("up.txt").to_str().unwrap(),
        "box:/tmp/up.txt",
    ]);
    assert_eq!(
        s.ok(&["exec", "box", "--", "cat", "/tmp/up.txt"]),
        "uploaded\n"
    );
    s.ok(&[
        "cp",
        "box:/www/index.html",
        local.path().join("down.txt").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(local.path().join("down.txt")).unwrap(),
        "forwarded\n"
    );
    // Port-forward carries real HTTP.
    let (_pf, port) = s.port_forward("pod/box", 8080);
    let body = eventually(Duration::from_secs(20), || {
        let b = http_get(&format!("127.0.0.1:{port}"), "/");
        b.contains("forwarded").then_some(b)
    });
    assert!(body.contains("forwarded"));
}
