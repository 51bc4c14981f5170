use super::*;
use k8s_openapi::api::core::v1::{ContainerPort, ExecAction, HTTPGetAction, TCPSocketAction};

fn container() -> Container {
    Container {
        name: "c".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

#[test]
fn spec_defaults_and_named_ports() {
    let p = Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = spec(Kind::Readiness, &p, &container(), "10.1.0.7");
    assert_eq!(
        s.action,
        Action::Http {
            https: false,
            host: "10.1.0.7".into(),
            port: 8080,
            path: "/".into(),
            headers: vec![]
        }
    );
    assert_eq!(
        (
            s.period,
            s.timeout,
            s.success_threshold,
            s.failure_threshold
        ),
        (Duration::from_secs(10), Duration::from_secs(1), 1, 3)
    );
    let p = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("nope".into()),
            host: None,
        }),
        success_threshold: Some(5),
        ..Default::default()
    };
    let s = spec(Kind::Liveness, &p, &container(), "10.1.0.7");
    assert!(matches!(s.action, Action::Invalid(_)));
    assert_eq!(s.success_threshold, 1, "liveness success threshold is 1");
}

#[test]
fn thresholds() {
    let p = Probe {
        exec: Some(ExecAction {
            command: Some(vec!["true".into()]),
        }),
        success_threshold: Some(2),
        failure_threshold: Some(2),
        ..Default::default()
    };
    let s = spec(Kind::Readiness, &p, &container(), "");
    let mut t = Tracker::new(&s);
    assert!(!t.result, "readiness starts failing");
    assert_eq!(t.record(true), None);
    assert_eq!(t.record(true), Some(true));
    assert_eq!(t.record(false), None);
    assert_eq!(t.record(true), None, "a success resets the failure run");
    assert_eq!(t.record(false), None);
    assert_eq!(t.record(false), Some(false));
    let s = spec(Kind::Liveness, &p, &container(), "");
    let mut t = Tracker::new(&s);
    assert!(t.result, "liveness starts passing");
    assert_eq!(t.record(false), None);
    assert_eq!(t.record(false), Some(false));
    let s = spec(Kind::Startup, &p, &container(), "");
    let mut t = Tracker::new(&s);
    assert_eq!(t.record(false), None);
    assert_eq!(t.record(false), Some(false), "startup gives up");
}

struct FakeExec(i32);

#[async_trait]
impl Exec for FakeExec {
    async fn exec(&self, _cmd: &[String], _t: Duration) -> Result<(i32, String), String> {
        Ok((self.0, String::new()))
    }
}

#[tokio::test]
async fn tcp_and_http_probes_against_real_sockets() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if req.starts_with("GET /healthz")
                    && req.to_ascii_lowercase().contains("x-probe: yes")
                {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            });
        }
    });
    let e = FakeExec(0);
    let t = Duration::from_secs(2);
    let tcp = Action::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    assert!(run_once(&tcp, t, &e).await.0);
    let http = |path: &str| Action::Http {
        https: false,
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
        headers: vec![("X-Probe".into(), "yes".into())],
    };
    assert_eq!(
        run_once(&http("/healthz"), t, &e).await,
        (true, String::new())
    );
    let (ok, msg) = run_once(&http("/other"), t, &e).await;
    assert!(!ok);
    assert_eq!(msg, "HTTP probe failed with statuscode: 503");
    // A closed port fails.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cport = closed.local_addr().unwrap().port();
    drop(closed);
    let (ok, msg) = run_once(
        &Action::Tcp {
            host: "127.0.0.1".into(),
            port: cport,
        },
        t,
        &e,
    )
    .await;
    assert!(!ok && msg.starts_with("dial tcp"), "{msg}");
    assert!(
        !run_once(&Action::Exec(vec!["x".into()]), t, &FakeExec(1))
            .await
            .0
    );
}
