//! The HTTPS listener: TLS with optional client certificates, one hyper
//! connection per socket (HTTP/1.1 and HTTP/2), the identity of each
//! connection's certificate handed to every request on it, graceful
//! shutdown, and the background tasks (namespace lifecycle, compaction).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rkube_store::Store;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::cache::Cacher;
use crate::certs;
use crate::http::{handle, ApiServer};
use crate::metrics::Metrics;
use crate::rest::{prepare::Allocators, Rest, UserInfo};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Cert(#[from] certs::CertError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),
    #[error("storage: {0}")]
    Store(#[from] rkube_store::StoreError),
}

/// How to run the API server.
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub store: Arc<dyn Store>,
    /// Interval of watch bookmarks.
    pub bookmark_interval: Duration,
    /// Compact history older than this.
    pub compaction_interval: Duration,
    /// In-process components' metrics served on /metrics too.
    pub extra_metrics: Vec<crate::metrics::ExtraMetrics>,
}

impl Config {
    pub fn new(data_dir: PathBuf, listen: SocketAddr, store: Arc<dyn Store>) -> Self {
        Config {
            data_dir,
            listen,
            store,
            bookmark_interval: Duration::from_secs(60),
            compaction_interval: Duration::from_secs(300),
            extra_metrics: Vec::new(),
        }
    }
}

/// A running server's handle: its address and kubeconfig.
pub struct Started {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
}

/// Starts the server; `on_ready` is called once it accepts requests.
/// Returns when `shutdown` completes (after draining connections briefly).
pub async fn run(
    config: Config,
    on_ready: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let listen_ip = config.listen.ip();
    let extra_ips = if listen_ip.is_unspecified() || listen_ip.is_loopback() {
        vec![]
    } else {
        vec![listen_ip]
    };
    let pki = certs::ensure_pki(&config.data_dir, &extra_ips, &[])?;
    let tls = Arc::new(certs::server_tls_config(&pki)?);
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("https://{host}:{}", addr.port());
    let kubeconfig = certs::write_admin_kubeconfig(&config.data_dir, &url, &pki)?;

    let cache = Cacher::start(config.store.clone()).await?;
    let alloc = Allocators::new();
    alloc.seed(&cache);
    let rest = Arc::new(Rest {
        store: config.store.clone(),
        cache,
        alloc,
    });
    crate::lifecycle::ensure_builtins(&rest, addr).await;
    tokio::spawn(crate::lifecycle::run_namespace_controller(rest.clone()));
    tokio::spawn(compaction_loop(
        config.store.clone(),
        config.compaction_interval,
    ));

    let srv = Arc::new(ApiServer {
        rest,
        metrics: Metrics::with_extra(config.extra_metrics.clone()),
        server_address: format!("{host}:{}", addr.port()),
        ready: Default::default(),
        bookmark_interval: config.bookmark_interval,
        kubelet: crate::proxy::KubeletClient::new(
            &pki.kubelet_client_cert_pem,
            &pki.kubelet_client_key_pem,
        )?,
    });
    srv.ready.store(true, Ordering::Relaxed);
    on_ready(&Started { addr, kubeconfig });

    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let srv = srv.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => { tracing::debug!(%peer, error = %e, "TLS handshake failed"); return; }
                        Err(_) => return,
                    };
                    let user = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| certs::identity_from_cert(c.as_ref()))
                        .map(|(name, groups)| UserInfo { name, groups });
                    let service = hyper::service::service_fn(move |req| handle(srv.clone(), user.clone(), req));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    let conn = watcher.watch(conn.into_owned());
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                });
            }
        }
    }
    tracing::info!("shutting down: draining connections");
    srv.ready.store(false, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// Compacts the store periodically to the revision seen one interval ago,
/// as kube-apiserver does (every 5 minutes by default).
async fn compaction_loop(store: Arc<dyn Store>, every: Duration) {
    let mut previous: Option<i64> = None;
    loop {
        tokio::time::sleep(every).await;
        if let Some(rev) = previous {
            if let Err(e) = store.compact(rev).await {
                tracing::warn!(error = %e, rev, "compaction failed");
            } else {
                tracing::info!(rev, "compacted");
            }
        }
        previous = store.current_revision().await.ok();
    }
}
