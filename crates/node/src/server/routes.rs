//! Request routing of the streaming server, with kubelet's paths:
//! `/containerLogs/{ns}/{pod}/{container}`, `/exec/{ns}/{pod}/{container}`,
//! `/attach/{ns}/{pod}/{container}`, `/portForward/{ns}/{pod}`, `/healthz`
//! and `/stats/summary`; errors as `metav1.Status` bodies.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::backend::{BackendError, ExecOptions, PodRef, StreamingBackend};
use super::{logs, portforward, wsstream};

pub(super) struct State {
    pub backend: Arc<dyn StreamingBackend>,
    pub summary: Option<Arc<dyn super::SummarySource>>,
    pub allowed_users: Vec<String>,
}

type Body = UnsyncBoxBody<Bytes, io::Error>;
type Resp = Response<Body>;

fn full(code: StatusCode, ct: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Resp {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message.into(), "reason": reason, "code": code.as_u16(),
    });
    full(code, "application/json", body.to_string())
}

fn backend_error(e: &BackendError) -> Resp {
    let code = e.status();
    let reason = match code {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_IMPLEMENTED => "NotImplemented",
        _ => "InternalError",
    };
    status(code, reason, e.to_string())
}

fn bad(msg: impl Into<String>) -> Resp {
    status(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_upgrade_to(req: &Request<Incoming>, proto: &str) -> bool {
    header_str(req, header::UPGRADE).eq_ignore_ascii_case(proto)
        && header_str(req, header::CONNECTION)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The first subprotocol the client offers that we support.
fn pick_protocol(req: &Request<Incoming>, supported: &[&'static str]) -> Option<&'static str> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| supported.iter().copied().find(|s| *s == p))
}

fn switching(headers: &[(header::HeaderName, String)]) -> Resp {
    let mut r = Response::new(
        Full::new(Bytes::new())
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(k.clone(), v);
        }
    }
    r
}

/// Accepts a WebSocket upgrade with `protocol`; `then` runs on the socket.
fn websocket<F, Fut>(mut req: Request<Incoming>, protocol: &'static str, then: F) -> Resp
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return bad("missing Sec-WebSocket-Key");
    };
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on.await {
            Ok(up) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                then(ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    switching(&[
        (header::CONNECTION, "Upgrade".into()),
        (header::UPGRADE, "websocket".into()),
        (
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        ),
        (header::SEC_WEBSOCKET_PROTOCOL, protocol.into()),
    ])
}

/// Entry point for one request of an authenticated connection.
pub(super) async fn handle(
    state: Arc<State>,
    user: Option<(String, Vec<String>)>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let Some((name, _groups)) = user else {
        return Ok(status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
        ));
    };
    let path = req.uri().path().to_string();
    if !state.allowed_users.contains(&name) {
        return Ok(status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Forbidden (user={name}, verb={}, resource=nodes, subresource=proxy)",
                req.method().as_str().to_lowercase()
            ),
        ));
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get_or_post = matches!(*req.method(), Method::GET | Method::POST);
    let resp = match segs.as_slice() {
        ["healthz"] => full(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
        ["stats", "summary"] if req.method() == Method::GET => stats_summary(&state).await,
        ["containerLogs", ns, pod, container] if req.method() == Method::GET => {
            container_logs(&state, pod_ref(ns, pod), container, &q).await
        }
        [verb @ ("exec" | "attach"), ns, pod, container] if get_or_post => {
            let (pod, container) = (pod_ref(ns, pod), container.to_string());
            exec(&state, req, pod, container, *verb == "attach", &pairs, &q).await
        }
        ["portForward", ns, pod] if get_or_post => port_forward(&state, req, pod_ref(ns, pod)),
        _ => status(StatusCode::NOT_FOUND, "NotFound", "404 page not found"),
    };
    Ok(resp)
}

async fn stats_summary(state: &State) -> Resp {
    let summary = match &state.summary {
        Some(src) => {
            let src = src.clone();
            match tokio::task::spawn_blocking(move || src.summary_json()).await {
                Ok(v) => Ok(v),
                Err(e) => Err(BackendError::Internal(e.to_string())),
            }
        }
        None => state.backend.stats_summary().await,
    };
    match summary {
        Ok(v) => full(StatusCode::OK, "application/json", v.to_string()),
        Err(e) => backend_error(&e),
    }
}

fn pod_ref(ns: &str, pod: &str) -> PodRef {
    PodRef {
        namespace: ns.to_string(),
        name: pod.to_string(),
    }
}

async fn container_logs(
    state: &State,
    pod: PodRef,
    container: &str,
    q: &HashMap<String, String>,
) -> Resp {
    let opts = match logs::parse_log_query(q, jiff::Timestamp::now()) {
        Ok(o) => o,
        Err(e) => return bad(e.0),
    };
    match state.backend.logs(&pod, container, opts).await {
        Ok(stream) => {
            let body = StreamBody::new(stream.map(|r| r.map(Frame::data)));
            let mut r = Response::new(BodyExt::boxed_unsync(body));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        Err(e) => backend_error(&e),
    }
}

fn flag(q: &HashMap<String, String>, names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| q.get(*n).is_some_and(|v| v == "1" || v == "true"))
}

async fn exec(
    state: &State,
    req: Request<Incoming>,
    pod: PodRef,
    container: String,
    attach: bool,
    pairs: &[(String, String)],
    q: &HashMap<String, String>,
) -> Resp {
    let cmd: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let tty = flag(q, &["tty"]);
    let opts = ExecOptions {
        tty,
        stdin: flag(q, &["stdin", "input"]),
        stdout: flag(q, &["stdout", "output"]),
        // As kubelet: no separate stderr with a TTY.
        stderr: flag(q, &["stderr", "error"]) && !tty,
    };
    if !attach && cmd.is_empty() {
        return bad("you must specify at least 1 command");
    }
    if !(opts.stdin || opts.stdout || opts.stderr) {
        return bad("you must specify at least one of stdin, stdout, stderr");
    }
    if !is_upgrade_to(&req, "websocket") {
        return bad(format!(
            "this node serves exec and attach over WebSocket ({}) only",
            wsstream::V5
        ));
    }
    let Some(proto) = pick_protocol(&req, &[wsstream::V5, wsstream::V4]) else {
        return bad(format!(
            "unsupported stream protocol; supported: {}, {}",
            wsstream::V5,
            wsstream::V4
        ));
    };
    let session = if attach {
        state.backend.attach(&pod, &container, opts).await
    } else {
        state
            .backend
            .exec(&pod, &container, cmd.clone(), opts)
            .await
    };
    match session {
        Ok(session) => websocket(req, proto, move |ws| {
            wsstream::serve_exec(ws, proto == wsstream::V5, session, cmd)
        }),
        Err(e) => backend_error(&e),
    }
}

fn port_forward(state: &State, mut req: Request<Incoming>, pod: PodRef) -> Resp {
    let backend = state.backend.clone();
    if is_upgrade_to(&req, "websocket") {
        if pick_protocol(&req, &[wsstream::PORT_FORWARD_TUNNEL]).is_none() {
            return bad(format!(
                "unsupported stream protocol; supported: {}",
                wsstream::PORT_FORWARD_TUNNEL
            ));
        }
        return websocket(req, wsstream::PORT_FORWARD_TUNNEL, move |ws| {
            portforward::serve(wsstream::tunnel(ws), backend, pod)
        });
    }
    let offered = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == portforward::PROTOCOL);
    if !is_upgrade_to(&req, "SPDY/3.1") || !offered {
        return bad("Upgrade request required");
    }
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(up) = on.await {
            portforward::serve(TokioIo::new(up), backend, pod).await;
        }
    });
    switching(&[
        (header::CONNECTION, "Upgrade".into()),
        (header::UPGRADE, "SPDY/3.1".into()),
        (
            header::HeaderName::from_static("x-stream-protocol-version"),
            portforward::PROTOCOL.into(),
        ),
    ])
}
