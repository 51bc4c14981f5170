//! Test harness for controller tests: a real rkube API server in this
//! process (embedded store in a temporary data dir, HTTPS on 127.0.0.1:0),
//! and admin `kube::Client`s for it.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running in-process API server; shut down on drop.
pub struct ApiServer {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// Starts a server on a fresh data dir; returns once it serves requests.
    pub async fn start() -> ApiServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = rkube_store::embedded::EmbeddedStore::open(&dir.path().join("state.redb"))
            .expect("open the embedded store");
        let config = rkube_apiserver::Config::new(
            dir.path().to_path_buf(),
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(store),
        );
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let res = rkube_apiserver::run(
                config,
                move |s| {
                    let _ = ready_tx.send((s.addr, s.kubeconfig.clone()));
                },
                async {
                    let _ = stop_rx.await;
                },
            )
            .await;
            if let Err(e) = res {
                panic!("API server failed: {e}");
            }
        });
        let (addr, kubeconfig) = tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .expect("API server did not start within 30s")
            .expect("API server exited before it was ready");
        ApiServer {
            dir,
            addr,
            kubeconfig,
            stop: Some(stop_tx),
            task,
        }
    }

    /// A `kube::Client` with the admin credentials.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config");
        kube::Client::try_from(cfg).expect("kube client")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what`
/// after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
