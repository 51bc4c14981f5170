//! The agent's HTTPS streaming API, as kubelet serves it on :10250: container
//! logs, exec, attach and port-forward (WebSocket and SPDY stream
//! protocols), `/healthz` and `/stats/summary`, backed by a
//! [`StreamingBackend`].
//!
//! TLS with a serving certificate the agent signs itself (as kubelet does by
//! default) and **client certificates required**, verified against the
//! cluster CA; of those, only the configured users (the API server's
//! kubelet-client identity by default) are served, others get 403.

pub mod backend;
pub mod hostproc;
pub mod logs;
pub mod portforward;
mod routes;
pub mod spdy;
pub mod wsstream;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use backend::{
    BackendError, Duplex, ExecOptions, ExecSession, LogOptions, PodRef, StreamingBackend,
    TerminalSize,
};

/// The identity of the API server's kubelet client certificate.
pub const APISERVER_KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("serving certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How to run the streaming server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (kubelet: 0.0.0.0:10250).
    pub listen: SocketAddr,
    /// The cluster CA (PEM) that client certificates must chain to.
    pub client_ca_pem: String,
    /// Serving certificate and key (PEM); `None`: self-signed at start.
    pub serving: Option<(String, String)>,
    /// Host names and addresses of the self-signed certificate.
    pub names: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// Client certificate users (CN) allowed to use the API.
    pub allowed_users: Vec<String>,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, client_ca_pem: impl Into<String>) -> Self {
        ServerConfig {
            listen,
            client_ca_pem: client_ca_pem.into(),
            serving: None,
            names: vec!["localhost".into()],
            ips: vec![listen.ip()],
            allowed_users: vec![APISERVER_KUBELET_CLIENT.into()],
        }
    }
}

fn tls_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(e.to_string())
}

/// A self-signed serving certificate (PEM cert, PEM key), as kubelet makes
/// when given none: CN `<host>@<unix time>`.
pub fn self_signed(names: &[String], ips: &[IpAddr]) -> Result<(String, String), ServerError> {
    let mut p = rcgen::CertificateParams::new(names.to_vec())?;
    for ip in ips.iter().filter(|ip| !ip.is_unspecified()) {
        p.subject_alt_names.push(rcgen::SanType::IpAddress(*ip));
    }
    let host = names.first().map(String::as_str).unwrap_or("localhost");
    let now = jiff::Timestamp::now().as_second();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{host}@{now}"));
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = p.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The rustls configuration: our certificate, client certificates required
/// and verified against the CA.
pub fn tls_config(cfg: &ServerConfig) -> Result<rustls::ServerConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cfg.client_ca_pem.as_bytes()) {
        roots.add(c.map_err(tls_err)?).map_err(tls_err)?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .map_err(tls_err)?;
    let (cert, key) = match &cfg.serving {
        Some(pair) => pair.clone(),
        None => self_signed(&cfg.names, &cfg.ips)?,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(tls_err)?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(tls_err)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    // Upgrades (WebSocket, SPDY) are HTTP/1.1.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// User (CN) and groups (O) of a certificate.
pub use rkube_api::x509::identity;

/// The source of `/stats/summary` (upstream's stats/v1alpha1 Summary).
pub trait SummarySource: Send + Sync + 'static {
    /// The Summary document now. Blocking (reads cgroups and /proc).
    fn summary_json(&self) -> serde_json::Value;
}

/// A bound, not yet serving, streaming server.
pub struct StreamingServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: routes::State,
}

impl StreamingServer {
    /// Binds the listener and prepares TLS.
    pub async fn bind(
        cfg: ServerConfig,
        backend: Arc<dyn StreamingBackend>,
    ) -> Result<StreamingServer, ServerError> {
        let tls = tls_config(&cfg)?;
        let listener =
            TcpListener::bind(cfg.listen)
                .await
                .map_err(|source| ServerError::Listen {
                    addr: cfg.listen,
                    source,
                })?;
        Ok(StreamingServer {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            state: routes::State {
                backend,
                summary: None,
                allowed_users: cfg.allowed_users,
            },
        })
    }

    /// Serves `/stats/summary` from `source` (else from the backend).
    pub fn with_summary(mut self, source: Arc<dyn SummarySource>) -> Self {
        self.state.summary = Some(source);
        self
    }

    /// The bound address (its port goes into the Node's
    /// `status.daemonEndpoints.kubeletEndpoint.Port`).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let state = Arc::new(self.state);
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => return,
                };
                let user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| identity(c.as_ref()));
                let service = hyper::service::service_fn(move |req| {
                    routes::handle(state.clone(), user.clone(), req)
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with error");
                }
            });
        }
    }
}
