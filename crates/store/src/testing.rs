//! Test support (feature `testing`): a throwaway etcd server on loopback,
//! for the conformance suite, the end-to-end tests and the benchmarks.
//! Uses Debian's `etcd` binary (package `etcd-server`), or `RKUBE_ETCD_BIN`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::etcd::EtcdStore;
use crate::Store;

/// An etcd process with its own data dir and ports; killed on drop.
pub struct EtcdProcess {
    child: Child,
    /// The client URL, e.g. `http://127.0.0.1:PORT`.
    pub endpoint: String,
    dir: tempfile::TempDir,
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the etcd binary is: `RKUBE_ETCD_BIN`, else `etcd` on the PATH.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("RKUBE_ETCD_BIN") {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// A free TCP port on loopback (racy by nature; callers retry).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl EtcdProcess {
    /// Starts etcd on free loopback ports and waits until it answers.
    /// Panics (this is test support) when etcd is missing or never ready.
    pub async fn start() -> EtcdProcess {
        match Self::try_start(None).await {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`EtcdProcess::start`] with an explicit binary, returning errors.
    pub async fn try_start(bin: Option<PathBuf>) -> Result<EtcdProcess, String> {
        let Some(bin) = bin.or_else(etcd_binary) else {
            return Err("etcd binary not found (install Debian's `etcd-server` package, or set RKUBE_ETCD_BIN); \
                 set RKUBE_SKIP_ETCD=1 to skip the etcd tests"
                .to_string());
        };
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let (client, peer) = (free_port(), free_port());
            let log =
                std::fs::File::create(dir.path().join("etcd.log")).map_err(|e| e.to_string())?;
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let child = Command::new(&bin)
                .args(["--name", "rkube-test"])
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("rkube-test={peer_url}")])
                .args(["--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("starting {}: {e}", bin.display()))?;
            spawn_orphan_reaper(child.id());
            let mut proc = EtcdProcess {
                child,
                endpoint: client_url,
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if proc.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                let connect = EtcdStore::connect(std::slice::from_ref(&proc.endpoint));
                if let Ok(Ok(store)) = tokio::time::timeout(Duration::from_secs(3), connect).await {
                    if store.current_revision().await.is_ok() {
                        return Ok(proc);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            last_log =
                std::fs::read_to_string(proc.dir.path().join("etcd.log")).unwrap_or_default();
            let _ = proc.child.kill();
        }
        Err(format!("etcd did not become ready; last log:\n{last_log}"))
    }

    /// The etcd process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Kills `etcd_pid` if this process dies without running destructors (e.g.
/// SIGKILL on timeout), so no server is left behind.
pub fn spawn_orphan_reaper(etcd_pid: u32) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do kill -0 {etcd_pid} 2>/dev/null || exit 0; sleep 1; done; kill -9 {etcd_pid} 2>/dev/null",
        parent = std::process::id()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
