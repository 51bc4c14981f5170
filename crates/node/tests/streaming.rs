//! The agent's streaming server over real TLS with the host-process
//! backend: client-certificate enforcement, logs, exec over the WebSocket
//! v5 protocol (stdin, stdout, stderr, exit codes, TTY), and port-forward
//! through the SPDY-over-WebSocket tunnel to a real TCP listener.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rkube_node::server::hostproc::HostBackend;
use rkube_node::server::spdy::{self, Frame, HeaderCompressor, HeaderDecompressor, FLAG_FIN};
use rkube_node::server::{ServerConfig, StreamingServer};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    let issuer = Issuer::from_ca_cert_pem(&pem, key).unwrap();
    Ca { pem, issuer }
}

fn leaf(ca: &Ca, cn: &str, server: bool) -> (String, String) {
    let names = if server {
        vec!["localhost".to_string()]
    } else {
        vec![]
    };
    let mut p = CertificateParams::new(names).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if server {
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

struct Agent {
    addr: std::net::SocketAddr,
    ca: Ca,
    backend: Arc<HostBackend>,
    _dir: tempfile::TempDir,
}

async fn start() -> Agent {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = ca("test-ca");
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(HostBackend::new(dir.path()));
    backend.add_pod("default", "web", &["app", "side"]);
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), ca.pem.clone());
    cfg.serving = Some(leaf(&ca, "agent", true));
    let server = StreamingServer::bind(cfg, backend.clone()).await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    Agent {
        addr,
        ca,
        backend,
        _dir: dir,
    }
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(agent: &Agent, client: Option<(String, String)>) -> std::io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(agent.ca.pem.as_bytes()).unwrap())
        .unwrap();
    let b = rustls::ClientConfig::builder().with_root_certificates(roots);
    let cfg = match client {
        Some((c, k)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(agent.addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn apiserver_cert(agent: &Agent) -> Option<(String, String)> {
    Some(leaf(&agent.ca, "kube-apiserver-kubelet-client", false))
}

/// GET `path`; (status, body).
async fn get(
    agent: &Agent,
    client: Option<(String, String)>,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let tls = connect(agent, client).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?;
    Ok((code, String::from_utf8_lossy(&body.to_bytes()).into_owned()))
}

#[tokio::test]
async fn only_the_api_servers_certificate_is_served() {
    let agent = start().await;
    assert!(
        get(&agent, None, "/healthz").await.is_err(),
        "no certificate"
    );
    let other = ca("other-ca");
    assert!(
        get(
            &agent,
            Some(leaf(&other, "kube-apiserver-kubelet-client", false)),
            "/healthz"
        )
        .await
        .is_err(),
        "certificate of another CA"
    );
    let (code, body) = get(
        &agent,
        Some(leaf(&agent.ca, "system:admin", false)),
        "/healthz",
    )
    .await
    .unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        get(&agent, apiserver_cert(&agent), "/healthz")
            .await
            .unwrap(),
        (200, "ok".into())
    );
    let (code, _) = get(&agent, apiserver_cert(&agent), "/stats/summary")
        .await
        .unwrap();
    assert_eq!(code, 501);
}

#[tokio::test]
async fn logs_with_options_and_errors() {
    let agent = start().await;
    let pod = rkube_node::server::PodRef {
        namespace: "default".into(),
        name: "web".into(),
    };
    let path = agent.backend.log_path(&pod, "app");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        "2025-01-01T00:00:01Z stdout F one\n2025-01-01T00:00:02Z stderr F two\n2025-01-01T00:00:03Z stdout F three\n",
    )
    .unwrap();
    let c = || apiserver_cert(&agent);
    assert_eq!(
        get(&agent, c(), "/containerLogs/default/web/app")
            .await
            .unwrap(),
        (200, "one\ntwo\nthree\n".into())
    );
    assert_eq!(
        get(
            &agent,
            c(),
            "/containerLogs/default/web/app?tailLines=1&timestamps=true"
        )
        .await
        .unwrap(),
        (200, "2025-01-01T00:00:03Z three\n".into())
    );
    let (code, body) = get(&agent, c(), "/containerLogs/default/web/nope")
        .await
        .unwrap();
    assert_eq!(code, 404, "{body}");
    let (code, _) = get(&agent, c(), "/containerLogs/default/gone/app")
        .await
        .unwrap();
    assert_eq!(code, 404);
    let (code, _) = get(&agent, c(), "/containerLogs/default/web/app?tailLines=-2")
        .await
        .unwrap();
    assert_eq!(code, 400);
}

type Ws = tokio_tungstenite::WebSocketStream<Tls>;

async fn websocket(agent: &Agent, path: &str, protocol: &str) -> Ws {
    let tls = connect(agent, apiserver_cert(agent)).await.unwrap();
    let mut req = format!("wss://localhost{path}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        protocol
    );
    ws
}

/// Runs an exec session: sends `stdin` then the v5 close signal; returns
/// (stdout, stderr, status JSON).
async fn exec(ws: &mut Ws, stdin: &[u8]) -> (String, String, serde_json::Value) {
    if !stdin.is_empty() {
        let mut m = vec![0u8];
        m.extend_from_slice(stdin);
        ws.send(Message::Binary(m.into())).await.unwrap();
        ws.send(Message::Binary(vec![255u8, 0].into()))
            .await
            .unwrap();
    }
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), serde_json::Value::Null);
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Binary(b) = m {
            match b[0] {
                1 => out.extend_from_slice(&b[1..]),
                2 => err.extend_from_slice(&b[1..]),
                3 => status = serde_json::from_slice(&b[1..]).unwrap(),
                _ => {}
            }
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        status,
    )
}

#[tokio::test]
async fn exec_over_websocket_v5() {
    let agent = start().await;
    let cmd =
        "command=sh&command=-c&command=read+x%3B+echo+out%3A%24x%3B+echo+err+%3E%262%3B+exit+3";
    let mut ws = websocket(
        &agent,
        &format!("/exec/default/web/app?{cmd}&stdin=1&stdout=1&stderr=1"),
        "v5.channel.k8s.io",
    )
    .await;
    let (out, err, status) = exec(&mut ws, b"hi\n").await;
    assert_eq!((out.as_str(), err.as_str()), ("out:hi\n", "err\n"));
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    let mut ws = websocket(
        &agent,
        "/exec/default/web/app?command=true&stdout=1",
        "v4.channel.k8s.io",
    )
    .await;
    let (_, _, status) = exec(&mut ws, b"").await;
    assert_eq!(status["status"], "Success");

    // A TTY: one output stream, a real terminal.
    let mut ws = websocket(
        &agent,
        "/exec/default/web/app?command=sh&command=-c&command=tty%3B+exit+7&stdin=1&stdout=1&tty=1",
        "v5.channel.k8s.io",
    )
    .await;
    let mut resize = vec![4u8];
    resize.extend_from_slice(br#"{"Width":100,"Height":30}"#);
    ws.send(Message::Binary(resize.into())).await.unwrap();
    let (out, err, status) = exec(&mut ws, b"").await;
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(err.is_empty());
    assert_eq!(status["details"]["causes"][0]["message"], "7");
}

#[tokio::test]
async fn port_forward_through_the_spdy_tunnel() {
    let agent = start().await;
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = echo.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        s.write_all(b"echo:").await.unwrap();
        s.write_all(&buf[..n]).await.unwrap();
    });
    let mut ws = websocket(
        &agent,
        &format!("/portForward/default/web?ports={port}"),
        "SPDY/3.1+portforward.k8s.io",
    )
    .await;
    let (mut comp, mut dec) = (HeaderCompressor::default(), HeaderDecompressor::default());
    let mut send = |f: Frame| {
        let mut b = BytesMut::new();
        spdy::encode(&f, &mut comp, &mut b).unwrap();
        Message::Binary(b.freeze())
    };
    let hdr = |t: &str| {
        vec![
            ("streamtype".to_string(), t.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestid".to_string(), "0".to_string()),
        ]
    };
    for (id, t) in [(1, "error"), (3, "data")] {
        let f = Frame::SynStream {
            stream_id: id,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: hdr(t),
        };
        ws.send(send(f)).await.unwrap();
    }
    ws.send(send(Frame::Data {
        stream_id: 3,
        flags: FLAG_FIN,
        data: Bytes::from_static(b"ping"),
    }))
    .await
    .unwrap();
    ws.send(send(Frame::Ping(1))).await.unwrap();
    let mut buf = BytesMut::new();
    let (mut replies, mut data, mut data_fin, mut error_fin, mut pong) =
        (0, Vec::new(), false, false, false);
    while !(data_fin && error_fin && pong) {
        let Some(Ok(Message::Binary(b))) = ws.next().await else {
            panic!("tunnel closed early");
        };
        buf.extend_from_slice(&b);
        while let Some(f) = spdy::decode(&mut buf, &mut dec).unwrap() {
            match f {
                Frame::SynReply { .. } => replies += 1,
                Frame::Data {
                    stream_id: 3,
                    flags,
                    data: d,
                } => {
                    data.extend_from_slice(&d);
                    data_fin |= flags & FLAG_FIN != 0;
                }
                Frame::Data {
                    stream_id: 1,
                    flags,
                    data: d,
                } => {
                    assert!(d.is_empty(), "error: {}", String::from_utf8_lossy(&d));
                    error_fin |= flags & FLAG_FIN != 0;
                }
                Frame::Ping(1) => pong = true,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(replies, 2);
    assert_eq!(data, b"echo:ping");
}
