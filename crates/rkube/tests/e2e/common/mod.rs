//! Test harness for end-to-end tests: starts the real `rkube` binary on a
//! free port with a temporary data dir, and runs the real `kubectl` against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `rkube server`; killed on drop.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub kubeconfig: PathBuf,
    pub extra_args: Vec<String>,
}

pub fn rkube_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rkube")
}

fn spawn(dir: &Path, listen: &str, extra: &[String]) -> (Child, String) {
    let mut child = Command::new(rkube_bin())
        .arg("server")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(listen)
        .args(extra)
        .env("RKUBE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rkube");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                    sent = true;
                    continue;
                }
            }
            eprintln!("[rkube] {line}");
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("rkube did not start listening within 60s");
    (child, url)
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// A server without the embedded real node agent (`--no-agent`).
    pub fn start_with(extra: &[&str]) -> Server {
        let mut args = vec!["--no-agent"];
        args.extend_from_slice(extra);
        Self::start_with_agent(&args)
    }

    /// A server with whatever `extra` says about the embedded node agent
    /// (by default it runs one, with real containers). Its pods are deleted
    /// gracefully on drop so no container outlives the test.
    pub fn start_with_agent(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn(dir.path(), "127.0.0.1:0", &extra);
        let kubeconfig = dir.path().join("kubeconfig");
        let s = Server {
            child,
            dir,
            url,
            kubeconfig,
            extra_args: extra,
        };
        s.wait_ready();
        s
    }

    /// Restarts on the same data dir and port (e.g. after a kill -9).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.url.rsplit(':').next().unwrap().to_string();
        let (child, url) = spawn(
            self.dir.path(),
            &format!("127.0.0.1:{port}"),
            &self.extra_args,
        );
        self.child = child;
        self.url = url;
        self.wait_ready();
    }

    pub fn kill9(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let o = self.kubectl(&["get", "--raw", "/readyz"]);
            if o.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rkube never became ready");
    }

    pub fn kubectl_cmd(&self) -> Command {
        let mut c = Command::new(kubectl_bin());
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c.env_remove("KUBECONFIG");
        c
    }

    /// Runs kubectl with args; returns the output whatever the exit code.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd().args(args).output().expect("run kubectl")
    }

    /// Runs kubectl, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs kubectl, asserting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            !o.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Runs kubectl with `stdin` as standard input, asserting success.
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let mut cmd = self.kubectl_cmd();
        cmd.args(args);
        let o = run_stdin(cmd, stdin);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `yaml`, whatever the exit code.
    pub fn apply_result(&self, yaml: &str) -> Output {
        let mut cmd = self.kubectl_cmd();
        cmd.args(["apply", "-f", "-"]);
        run_stdin(cmd, yaml)
    }

    /// Applies YAML from a string with `kubectl apply -f -`.
    pub fn apply(&self, yaml: &str) -> String {
        self.ok_stdin(&["apply", "-f", "-"], yaml)
    }

    /// A `kube::Client` for this server (admin credentials).
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config");
        kube::Client::try_from(cfg).expect("kube client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.extra_args.iter().any(|a| a == "--no-agent") {
            // Workload controllers first, or they would recreate the pods
            // deleted below and leave containers behind.
            let _ = self.kubectl(&[
                "delete",
                "deployments,replicasets,statefulsets,daemonsets,jobs,cronjobs",
                "--all",
                "--all-namespaces",
                "--cascade=orphan",
                "--wait=false",
            ]);
            let _ = self.kubectl(&[
                "delete",
                "pods",
                "--all",
                "--all-namespaces",
                "--grace-period=1",
                "--wait=true",
                "--timeout=60s",
            ]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with `stdin` as standard input; returns the output whatever
/// the exit code.
pub fn run_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run command");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// The versioned kubectl binaries shipped beside the default one (the
/// machine's kubectl package has `kubectl.1.32`, `kubectl.1.33`, …).
pub fn versioned_kubectls() -> Vec<PathBuf> {
    let Ok(out) = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
    else {
        return vec![];
    };
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let Some(dir) = path.parent() else {
        return vec![];
    };
    ["kubectl.1.32", "kubectl.1.33"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

pub fn kubectl_bin() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string())
}

/// The stdout of `kubectl <args> -o jsonpath=<path>` (empty on failure).
pub fn jsonpath(s: &Server, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let jp = format!("jsonpath={path}");
    a.extend(["-o", jp.as_str()]);
    String::from_utf8_lossy(&s.kubectl(&a).stdout).into_owned()
}

/// Kills the child process on drop.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP GET on loopback; the response body.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).expect("connect metrics");
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

impl Server {
    /// Runs `kubectl exec -it ARGS...` on a terminal made by `script`,
    /// typing `input`; returns script's output (the terminal's bytes).
    pub fn exec_on_terminal(&self, args: &[&str], input: &str) -> Output {
        let mut all = vec!["exec", "-it"];
        all.extend_from_slice(args);
        self.kubectl_on_terminal(&all, input)
    }

    /// Runs `kubectl ARGS...` (joined with spaces, for `sh -c`) on a
    /// terminal made by `script`, typing `input`; returns script's output.
    pub fn kubectl_on_terminal(&self, args: &[&str], input: &str) -> Output {
        let cmd = format!(
            "{} --kubeconfig {} {}",
            kubectl_bin(),
            self.kubeconfig.display(),
            args.join(" ")
        );
        let mut script = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start script");
        script
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write to script");
        script.wait_with_output().expect("script")
    }

    /// Starts `kubectl port-forward TARGET :REMOTE`; returns the process
    /// (killed on drop) and the local port it chose.
    pub fn port_forward(&self, target: &str, remote: u16) -> (KillOnDrop, u16) {
        let mut pf = self.kubectl_cmd();
        pf.args(["port-forward", target, &format!(":{remote}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut pf = KillOnDrop(pf.spawn().expect("start port-forward"));
        let mut out = BufReader::new(pf.0.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("port-forward output");
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected port-forward output {line:?}"));
        // kubectl prints a line per connection: keep reading so it never
        // writes to a closed pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        (pf, port)
    }
}
