//! `httpGet` actions of probes and lifecycle hooks, performed as upstream's
//! kubelet does (`pkg/probe/http`, `pkg/kubelet/lifecycle`): one HTTP/1.1
//! request per connection (`Connection: close`, no proxy), HTTPS without
//! verifying the server's certificate (upstream sets `InsecureSkipVerify`:
//! the kubelet has no way to know which CA a pod's server uses, and a probe
//! only asks "does it answer"), redirects followed up to 10 times and only
//! to the same host name (another host ends the chain with its 3xx
//! response), `User-Agent: kube-probe/<major.minor>` (hooks:
//! `kube-lifecycle/…`) and `Accept: */*` unless the action sets them (an
//! empty `Accept` removes it), and at most 10 KiB of the body read.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The Kubernetes version the agent speaks (for the User-Agent).
pub const KUBE_MAJOR_MINOR: &str = "1.32";
/// Upstream's cap on the body a probe reads.
const MAX_BODY: usize = 10 * 1024;
/// Upstream's (Go's) cap on redirects.
const MAX_REDIRECTS: usize = 10;

/// Who sends the request (names the User-Agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Probe,
    Lifecycle,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpGetError {
    #[error("dial tcp {addr}: {source}")]
    Dial { addr: String, source: io::Error },
    #[error("http: server gave HTTP response to HTTPS client")]
    HttpResponseToHttps,
    #[error("tls: {0}")]
    Tls(io::Error),
    #[error("{0}")]
    Http(String),
    #[error("stopped after {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("invalid redirect location {0:?}")]
    Location(String),
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query.
    pub path: String,
}

impl Target {
    /// `host:port` (IPv6 hosts in brackets), as Go's `JoinHostPort`.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL, as upstream's messages show it.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    /// The target of a redirect to `location` from here.
    fn resolve(&self, location: &str) -> Result<Target, HttpGetError> {
        let bad = || HttpGetError::Location(location.to_string());
        let absolute = |https: bool, rest: &str| -> Result<Target, HttpGetError> {
            let (auth, path) = match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let uri: http::uri::Authority = auth.parse().map_err(|_| bad())?;
            let host = uri.host().trim_start_matches('[').trim_end_matches(']');
            let path = if path.starts_with('?') {
                format!("/{path}")
            } else {
                path.to_string()
            };
            Ok(Target {
                https,
                host: host.to_string(),
                port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
                path,
            })
        };
        let lower = location.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return absolute(true, &location[8..]);
        }
        if lower.starts_with("http://") {
            return absolute(false, &location[7..]);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return absolute(self.https, rest);
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            // Relative to the current path's directory.
            let cur = self.path.split(['?', '#']).next().unwrap_or("/");
            let dir = &cur[..cur.rfind('/').map_or(0, |i| i + 1)];
            let dir = if dir.is_empty() { "/" } else { dir };
            if location.starts_with('?') {
                format!("{cur}{location}")
            } else {
                format!("{dir}{location}")
            }
        };
        Ok(Target {
            path,
            ..self.clone()
        })
    }

    /// The same target without a `#fragment` (never sent).
    fn without_fragment(mut self) -> Target {
        if let Some(i) = self.path.find('#') {
            self.path.truncate(i);
        }
        if self.path.is_empty() {
            self.path.push('/');
        }
        self
    }
}

/// A response: its status and the start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GET `target` with `headers`, following same-host redirects.
pub async fn get(
    target: &Target,
    headers: &[(String, String)],
    purpose: Purpose,
) -> Result<Response, HttpGetError> {
    let custom_host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone());
    let mut host_header = custom_host.clone();
    let mut cur = target.clone();
    let mut requests = 0;
    loop {
        let resp = once(&cur, headers, host_header.as_deref(), purpose).await?;
        requests += 1;
        let Some(location) = resp
            .location
            .as_deref()
            .filter(|_| is_redirect(resp.response.status))
        else {
            return Ok(resp.response);
        };
        let next = cur.resolve(location)?.without_fragment();
        if next.host != target.host {
            // Upstream's redirect checker: the last response stands.
            return Ok(resp.response);
        }
        if requests >= MAX_REDIRECTS {
            return Err(HttpGetError::TooManyRedirects);
        }
        // Go keeps a custom Host header only through relative redirects.
        let relative = !location.contains("://") && !location.starts_with("//");
        host_header = custom_host.clone().filter(|_| relative);
        cur = next;
    }
}

/// A lifecycle hook's request: any response is a success (upstream does
/// not look at the status); an HTTPS hook answered in plain HTTP is sent
/// again over HTTP without its `Authorization` header, as upstream does.
/// Returns whether it fell back to HTTP.
pub async fn hook(target: &Target, headers: &[(String, String)]) -> Result<bool, HttpGetError> {
    match get(target, headers, Purpose::Lifecycle).await {
        Ok(_) => Ok(false),
        Err(HttpGetError::HttpResponseToHttps) => {
            let plain = Target {
                https: false,
                ..target.clone()
            };
            let headers: Vec<(String, String)> = headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
                .cloned()
                .collect();
            get(&plain, &headers, Purpose::Lifecycle)
                .await
                .map(|_| true)
        }
        Err(e) => Err(e),
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

struct Raw {
    response: Response,
    location: Option<String>,
}

async fn once(
    t: &Target,
    headers: &[(String, String)],
    host_header: Option<&str>,
    purpose: Purpose,
) -> Result<Raw, HttpGetError> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|source| HttpGetError::Dial {
            addr: t.authority(),
            source,
        })?;
    let mut req = http::Request::get(t.path.as_str())
        .header(http::header::HOST, host_header.unwrap_or(&t.authority()));
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        let who = match purpose {
            Purpose::Probe => "probe",
            Purpose::Lifecycle => "lifecycle",
        };
        req = req.header(
            http::header::USER_AGENT,
            format!("kube-{who}/{KUBE_MAJOR_MINOR}"),
        );
    }
    if !has("accept") {
        req = req.header(http::header::ACCEPT, "*/*");
    }
    for (k, v) in headers {
        let empty_accept = k.eq_ignore_ascii_case("accept") && v.is_empty();
        if !k.eq_ignore_ascii_case("host") && !empty_accept {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    req = req.header(http::header::CONNECTION, "close");
    let req = req
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| HttpGetError::Http(e.to_string()))?;
    if !t.https {
        return send(tcp, req).await;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sniff = Sniff {
        inner: tcp,
        seen: seen.clone(),
    };
    let name =
        ServerName::try_from(t.host.clone()).map_err(|e| HttpGetError::Tls(io::Error::other(e)))?;
    match tls_connector().connect(name, sniff).await {
        Ok(tls) => send(tls, req).await,
        Err(e) => {
            let head = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if head.starts_with(b"HTTP/") {
                Err(HttpGetError::HttpResponseToHttps)
            } else {
                Err(HttpGetError::Tls(e))
            }
        }
    }
}

async fn send<S>(
    io: S,
    req: http::Request<http_body_util::Empty<Bytes>>,
) -> Result<Raw, HttpGetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let err = |e: hyper::Error| HttpGetError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(err)?;
    let conn = tokio::spawn(conn);
    let result = async {
        let resp = sender.send_request(req).await.map_err(err)?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.into_body();
        let mut data = Vec::new();
        while data.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Some(chunk) = f.data_ref() {
                        data.extend_from_slice(chunk);
                    }
                }
                Some(Err(e)) => return Err(err(e)),
                None => break,
            }
        }
        data.truncate(MAX_BODY);
        Ok(Raw {
            response: Response { status, body: data },
            location,
        })
    }
    .await;
    conn.abort();
    result
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let cfg = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(rkube_api::x509::AnyServerCert(provider)))
            .with_no_client_auth();
        Arc::new(cfg)
    });
    tokio_rustls::TlsConnector::from(cfg.clone())
}

/// Keeps the first bytes the server sent, to tell a plain-HTTP answer to
/// a TLS hello (Go's "server gave HTTP response to HTTPS client").
struct Sniff {
    inner: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Sniff {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let want = 5usize.saturating_sub(seen.len());
            let new = &buf.filled()[before..];
            seen.extend_from_slice(&new[..want.min(new.len())]);
        }
        r
    }
}

impl AsyncWrite for Sniff {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
