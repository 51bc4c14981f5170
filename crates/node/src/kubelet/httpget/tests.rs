use super::*;
use std::sync::Mutex as StdMutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Handler = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A one-request-per-connection server on 127.0.0.1 (TLS with a
/// self-signed certificate when `tls`); records the requests it got.
struct Server {
    port: u16,
    requests: Arc<StdMutex<Vec<String>>>,
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    h: &Handler,
    log: &StdMutex<Vec<String>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.first() == Some(&0x16) {
            // A TLS hello to a plain server: answer as Go's servers do.
            let _ = s.write_all(status("400 Bad Request").as_bytes()).await;
            return;
        }
    }
    let req = String::from_utf8_lossy(&buf).into_owned();
    let resp = h(&req);
    log.lock().unwrap().push(req);
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

async fn server(tls: bool, h: impl Fn(&str) -> String + Send + Sync + 'static) -> Server {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let requests = Arc::new(StdMutex::new(Vec::new()));
    let log = requests.clone();
    let h: Handler = Arc::new(h);
    let acceptor = tls.then(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["pod.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    });
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (h, log, acceptor) = (h.clone(), log.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(s).await {
                            serve(s, &h, &log).await;
                        }
                    }
                    None => serve(s, &h, &log).await,
                }
            });
        }
    });
    Server { port, requests }
}

fn status(code: &str) -> String {
    format!("HTTP/1.1 {code}\r\ncontent-length: 2\r\n\r\nok")
}

fn redirect(to: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n")
}

fn target(https: bool, port: u16, path: &str) -> Target {
    Target {
        https,
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
    }
}

fn header<'a>(req: &'a str, name: &str) -> Option<&'a str> {
    req.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn https_without_verification_and_upstream_headers() {
    let s = server(true, |_| status("200 OK")).await;
    let r = get(
        &target(true, s.port, "/healthz?x=1"),
        &[("X-Probe".into(), "yes".into())],
        Purpose::Probe,
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        Response {
            status: 200,
            body: b"ok".to_vec()
        }
    );
    let reqs = s.requests.lock().unwrap().clone();
    let req = &reqs[0];
    assert!(req.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{req}");
    assert_eq!(header(req, "user-agent"), Some("kube-probe/1.32"));
    assert_eq!(header(req, "accept"), Some("*/*"));
    assert_eq!(header(req, "x-probe"), Some("yes"));
    assert_eq!(
        header(req, "host"),
        Some(format!("127.0.0.1:{}", s.port).as_str())
    );
    assert_eq!(header(req, "connection"), Some("close"));
}

#[tokio::test]
async fn headers_given_by_the_action_win() {
    let s = server(false, |_| status("200 OK")).await;
    let hs = [
        ("User-Agent".to_string(), "mine".to_string()),
        ("Accept".to_string(), String::new()),
        ("Host".to_string(), "svc.local".to_string()),
    ];
    get(&target(false, s.port, "/"), &hs, Purpose::Lifecycle)
        .await
        .unwrap();
    let req = s.requests.lock().unwrap()[0].clone();
    assert_eq!(header(&req, "user-agent"), Some("mine"));
    assert_eq!(header(&req, "accept"), None, "an empty Accept removes it");
    assert_eq!(header(&req, "host"), Some("svc.local"));
    let s = server(false, |_| status("200 OK")).await;
    get(&target(false, s.port, "/"), &[], Purpose::Lifecycle)
        .await
        .unwrap();
    let req = s.requests.lock().unwrap()[0].clone();
    assert_eq!(header(&req, "user-agent"), Some("kube-lifecycle/1.32"));
}

#[tokio::test]
async fn redirects_only_to_the_same_host() {
    let plain = server(false, |req| {
        if req.starts_with("GET /final") {
            status("200 OK")
        } else {
            status("500 Internal Server Error")
        }
    })
    .await;
    let pport = plain.port;
    // Same host name (another port and scheme): followed.
    let s = server(true, move |req| {
        if req.starts_with("GET /a ") {
            redirect("b")
        } else if req.starts_with("GET /b ") {
            redirect(&format!("http://127.0.0.1:{pport}/final"))
        } else {
            redirect(&format!("http://localhost:{pport}/final"))
        }
    })
    .await;
    let r = get(&target(true, s.port, "/a"), &[], Purpose::Probe)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(plain.requests.lock().unwrap().len(), 1);
    // Another host name: the 302 stands (a probe warning, i.e. success).
    let r = get(&target(true, s.port, "/elsewhere"), &[], Purpose::Probe)
        .await
        .unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(plain.requests.lock().unwrap().len(), 1, "not followed");
    let (ok, msg) = super::super::probe::run_once(
        &super::super::probe::Action::Http {
            https: true,
            host: "127.0.0.1".into(),
            port: s.port,
            path: "/elsewhere".into(),
            headers: vec![],
        },
        std::time::Duration::from_secs(5),
        &NoExec,
    )
    .await;
    assert!(ok, "{msg}");
}

#[tokio::test]
async fn at_most_ten_redirects() {
    let s = server(false, |_| redirect("/again")).await;
    let e = get(&target(false, s.port, "/"), &[], Purpose::Probe)
        .await
        .unwrap_err();
    assert!(matches!(e, HttpGetError::TooManyRedirects), "{e}");
    assert_eq!(s.requests.lock().unwrap().len(), 10);
}

#[tokio::test]
async fn plain_http_answer_to_https() {
    let s = server(false, |_| status("400 Bad Request")).await;
    let t = target(true, s.port, "/hook");
    let e = get(&t, &[], Purpose::Probe).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "http: server gave HTTP response to HTTPS client"
    );
    // A hook retries over HTTP, without the Authorization header.
    let s = server(false, |_| status("200 OK")).await;
    let t = target(true, s.port, "/hook");
    let hs = [("Authorization".to_string(), "Bearer x".to_string())];
    assert!(hook(&t, &hs).await.unwrap(), "fell back to HTTP");
    let reqs = s.requests.lock().unwrap().clone();
    let last = reqs.last().unwrap();
    assert!(last.starts_with("GET /hook HTTP/1.1"), "{last}");
    assert_eq!(header(last, "authorization"), None);
    // Any status is fine for a hook.
    let s = server(true, |_| status("503 Service Unavailable")).await;
    assert!(!hook(&target(true, s.port, "/"), &[]).await.unwrap());
}

#[test]
fn redirect_locations() {
    let t = target(true, 8443, "/a/b?q=1");
    let r = |loc: &str| t.resolve(loc).unwrap().without_fragment();
    assert_eq!(r("c").path, "/a/c");
    assert_eq!(r("/x#frag").path, "/x");
    assert_eq!(r("?z=2").path, "/a/b?z=2");
    let abs = r("http://127.0.0.1:9000");
    assert_eq!((abs.https, abs.port, abs.path.as_str()), (false, 9000, "/"));
    let v6 = r("https://[fd00::1]/p");
    assert_eq!((v6.host.as_str(), v6.port), ("fd00::1", 443));
    assert_eq!(v6.url(), "https://[fd00::1]:443/p");
    let rel = r("//other:81/q");
    assert_eq!(
        (rel.https, rel.host.as_str(), rel.port),
        (true, "other", 81)
    );
}

struct NoExec;

#[async_trait::async_trait]
impl super::super::probe::Exec for NoExec {
    async fn exec(&self, _: &[String], _: std::time::Duration) -> Result<(i32, String), String> {
        Err("no exec".into())
    }
}
