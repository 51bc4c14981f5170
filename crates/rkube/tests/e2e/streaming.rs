//! End-to-end streaming with the real kubectl through the API server's
//! proxy to an in-process agent streaming server (host-process backend):
//! `kubectl logs` (tail, timestamps, follow, container errors), `exec`
//! (exit codes, stdin, an interactive TTY through `script`), `cp` both ways
//! and `port-forward` carrying TCP bytes both ways.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{eventually, KillOnDrop, Server};
use rkube_node::server::hostproc::HostBackend;
use rkube_node::server::{PodRef, ServerConfig, StreamingServer};

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: stream-node\n  containers:\n  - name: app\n    image: busybox\n  - name: side\n    image: busybox\n";

/// Starts the agent streaming server and registers its Node and the pod.
async fn setup(s: &Server, dir: &std::path::Path) -> Arc<HostBackend> {
    let ca = std::fs::read_to_string(s.dir.path().join("pki/ca.crt")).expect("cluster CA");
    let backend = Arc::new(HostBackend::new(dir));
    backend.add_pod("default", "web", &["app", "side"]);
    let server = StreamingServer::bind(
        ServerConfig::new("127.0.0.1:0".parse().unwrap(), ca),
        backend.clone(),
    )
    .await
    .expect("agent server");
    let port = server.local_addr().port();
    tokio::spawn(server.run(std::future::pending()));
    tokio::task::block_in_place(|| {
        s.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: stream-node\n");
        let status = format!(
            r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}"#
        );
        s.ok(&[
            "patch",
            "node",
            "stream-node",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ]);
        s.apply(POD);
        s.ok(&[
            "patch",
            "pod",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running"}}"#,
        ]);
    });
    backend
}

fn write_log(backend: &HostBackend, lines: &str) {
    let pod = PodRef {
        namespace: "default".into(),
        name: "web".into(),
    };
    let path = backend.log_path(&pod, "app");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(lines.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_through_the_proxy() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let backend = setup(&s, dir.path()).await;
    write_log(
        &backend,
        "2025-01-01T00:00:01Z stdout F one\n2025-01-01T00:00:02.5Z stderr F two\n",
    );
    tokio::task::block_in_place(|| {
        assert_eq!(s.ok(&["logs", "web", "-c", "app"]), "one\ntwo\n");
        assert_eq!(s.ok(&["logs", "web", "-c", "app", "--tail=1"]), "two\n");
        assert_eq!(
            s.ok(&["logs", "web", "-c", "app", "--timestamps"]),
            "2025-01-01T00:00:01Z one\n2025-01-01T00:00:02.5Z two\n"
        );
        assert_eq!(
            s.ok(&["logs", "web", "-c", "app", "--limit-bytes=5"]),
            "one\nt"
        );
        let err = s.fails(&["logs", "web", "-c", "nope"]);
        assert!(
            err.contains("container nope is not valid for pod web"),
            "{err}"
        );
        let raw = s.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/web/log"]);
        let err = String::from_utf8_lossy(&raw.stderr);
        assert!(
            err.contains(
                "a container name must be specified for pod web, choose one of: [app side]"
            ),
            "{err}"
        );
        let err = s.fails(&["logs", "missing"]);
        assert!(err.contains("pods \"missing\" not found"), "{err}");

        // -f keeps streaming until the container ends.
        let mut f = s.kubectl_cmd();
        f.args(["logs", "-f", "web", "-c", "app"])
            .stdout(Stdio::piped());
        let mut child = KillOnDrop(f.spawn().unwrap());
        let mut out = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "one\n");
        write_log(&backend, "2025-01-01T00:00:03Z stdout F three\n");
        let mut rest = String::new();
        while !rest.contains("three") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "log stream ended early"
            );
            rest.push_str(&line);
        }
        std::fs::write(dir.path().join("default_web/app.exited"), "").unwrap();
        out.read_to_string(&mut rest).unwrap();
        assert!(child.0.wait().unwrap().success());
        assert_eq!(rest, "two\nthree\n");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_cp_and_port_forward() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let _backend = setup(&s, dir.path()).await;
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in echo.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(b"echo:").is_err() || c.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    tokio::task::block_in_place(|| {
        // Exit codes and output streams.
        let o = s.kubectl(&[
            "exec",
            "web",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        assert_eq!(o.status.code(), Some(3), "{o:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
        assert!(String::from_utf8_lossy(&o.stderr).contains("err\n"));
        assert_eq!(
            s.ok(&["exec", "web", "-c", "app", "--", "echo", "hi"]),
            "hi\n"
        );
        // Stdin.
        let out = s.ok_stdin(
            &[
                "exec",
                "-i",
                "web",
                "-c",
                "app",
                "--",
                "sh",
                "-c",
                "tr a-z A-Z",
            ],
            "hello\n",
        );
        assert_eq!(out, "HELLO\n");
        let err = s.fails(&["exec", "web", "-c", "nope", "--", "true"]);
        assert!(
            err.contains("container nope is not valid for pod web"),
            "{err}"
        );

        // Interactive: kubectl on a terminal made by `script`.
        let o = s.exec_on_terminal(
            &["web", "-c", "app", "--", "sh"],
            "echo tty-$((6*7)); tty; exit 5\n",
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("tty-42") && text.contains("/dev/pts/"),
            "{text}"
        );
        assert_eq!(o.status.code(), Some(5), "{text}");

        // kubectl cp both ways (tar over exec).
        let remote = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        std::fs::write(local.path().join("up.txt"), "uploaded\n").unwrap();
        let dest = format!("web:{}/up.txt", remote.path().display());
        s.ok(&[
            "cp",
            "-c",
            "app",
            local.path().join("up.txt").to_str().unwrap(),
            &dest,
        ]);
        assert_eq!(
            std::fs::read_to_string(remote.path().join("up.txt")).unwrap(),
            "uploaded\n"
        );
        std::fs::write(remote.path().join("down.txt"), "downloaded\n").unwrap();
        let src = format!("web:{}/down.txt", remote.path().display());
        s.ok(&[
            "cp",
            "-c",
            "app",
            &src,
            local.path().join("down.txt").to_str().unwrap(),
        ]);
        assert_eq!(
            std::fs::read_to_string(local.path().join("down.txt")).unwrap(),
            "downloaded\n"
        );

        // Port-forward: real TCP both ways, two connections.
        let (_pf, local_port) = s.port_forward("pod/web", echo_port);
        for msg in ["ping", "second connection"] {
            let mut c = eventually(Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", local_port)).ok()
            });
            c.write_all(msg.as_bytes()).unwrap();
            let want = format!("echo:{msg}");
            let mut got = vec![0u8; want.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(String::from_utf8_lossy(&got), want);
        }
    });
}
