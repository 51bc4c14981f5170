//! Request dispatch: non-resource endpoints (health, version, metrics,
//! discovery, OpenAPI), authentication, and the resource verbs with their
//! subresources, each request in its own tracing span and metered.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rkube_api::decode::parse_body;
use rkube_api::resources;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::negotiate;
use crate::request::{self, RequestInfo};
use crate::rest::read::ListOptions;
use crate::rest::watch::WatchOptions;
use crate::rest::write::{DeleteOptions, PatchType};
use crate::rest::{FieldValidation, Rest, Target, UserInfo, WriteOptions};
use crate::subresources;

/// Largest accepted request body, as upstream (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// How much of an oversized body is read and discarded before the 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Everything a request handler needs.
pub struct ApiServer {
    pub rest: Arc<Rest>,
    pub metrics: Metrics,
    pub server_address: String,
    pub ready: AtomicBool,
    pub bookmark_interval: Duration,
    /// TLS client for proxying pod streams to node agents.
    pub kubelet: crate::proxy::KubeletClient,
}

pub type Resp = Response<Body>;

fn json_response(code: StatusCode, v: &Value) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn bytes_response(code: StatusCode, ct: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn error_response(e: &ApiError) -> Resp {
    json_response(e.code, &e.status())
}

fn text(code: StatusCode, s: &str) -> Resp {
    bytes_response(
        code,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(s.as_bytes()),
    )
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The version document (`/version`).
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0-rkube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
    })
}

/// Entry point for one request.
pub async fn handle(
    srv: Arc<ApiServer>,
    user: Option<UserInfo>,
    req: Request<hyper::body::Incoming>,
) -> Result<Resp, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", %method, %path, user = user.as_ref().map(|u| u.name.as_str()).unwrap_or("anonymous"));
    let (resp, verb, resource) = dispatch(&srv, user, req).instrument(span.clone()).await;
    let code = resp.status().as_u16();
    let secs = start.elapsed().as_secs_f64();
    srv.metrics.observe(&verb, &resource, code, secs);
    span.in_scope(|| tracing::debug!(code, ms = secs * 1000.0, "done"));
    Ok(resp)
}

async fn dispatch(
    srv: &Arc<ApiServer>,
    user: Option<UserInfo>,
    req: Request<hyper::body::Incoming>,
) -> (Resp, String, String) {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    // Unauthenticated endpoints.
    match path.as_str() {
        "/healthz" | "/livez" => {
            return (
                text(StatusCode::OK, "ok"),
                method.to_string(),
                String::new(),
            )
        }
        "/readyz" => {
            let ok = srv.ready.load(Ordering::Relaxed) && srv.rest.store.ping().await.is_ok();
            let r = if ok {
                text(StatusCode::OK, "ok")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "[-]storage failed: not ready\nreadyz check failed",
                )
            };
            return (r, method.to_string(), String::new());
        }
        "/version" | "/version/" => {
            return (
                json_response(StatusCode::OK, &version_info()),
                "GET".into(),
                String::new(),
            )
        }
        _ => {}
    }
    if user.is_none() {
        return (
            error_response(&ApiError::unauthorized()),
            method.to_string(),
            String::new(),
        );
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let q = query_map(req.uri().query());
    let watch_param = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    if let Some(r) = non_resource(srv, &method, &path, accept.as_deref()) {
        return (r, method.to_string(), String::new());
    }
    let Some(info) = request::parse(&method, &path, watch_param) else {
        return (
            error_response(&ApiError::not_found_path()),
            method.to_string(),
            String::new(),
        );
    };
    if crate::proxy::is_streaming(&info) {
        let verb = if info.subresource.as_deref() == Some("log") {
            "GET"
        } else {
            "CONNECT"
        };
        let resp = crate::proxy::handle(&srv.rest, &srv.kubelet, &info, req)
            .await
            .unwrap_or_else(|e| error_response(&e));
        return (resp, verb.to_string(), info.resource);
    }
    if crate::proxy::is_node_proxy(&info) {
        let resp = crate::proxy::handle_node(&srv.rest, &srv.kubelet, &info, req)
            .await
            .unwrap_or_else(|e| error_response(&e));
        return (resp, "CONNECT".to_string(), info.resource);
    }
    // Upstream's `verb` label: the HTTP method, with GET split into
    // GET/LIST/WATCH.
    let verb = match info.verb {
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        "list" => "LIST",
        "watch" => "WATCH",
        "get" => "GET",
        _ => "UNKNOWN",
    }
    .to_string();
    let resource = info.resource.clone();
    let resp = match resource_request(srv, info, q, accept.as_deref(), req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    (resp, verb, resource)
}

fn non_resource(
    srv: &ApiServer,
    method: &Method,
    path: &str,
    accept: Option<&str>,
) -> Option<Resp> {
    if method != Method::GET {
        return None;
    }
    let aggregated = accept.and_then(|a| {
        a.split(',').map(str::trim).find_map(|p| {
            if p.contains("as=APIGroupDiscoveryList") && p.contains("g=apidiscovery.k8s.io") {
                if p.contains("v=v2beta1") {
                    Some("v2beta1")
                } else if p.contains("v=v2") {
                    Some("v2")
                } else {
                    None
                }
            } else {
                None
            }
        })
    });
    let trimmed = path.trim_end_matches('/');
    let r = match trimmed {
        "/metrics" => bytes_response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            srv.metrics.render(),
        ),
        "/api" | "/apis" => match aggregated {
            Some(v) => bytes_response(
                StatusCode::OK,
                &format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
                crate::discovery::aggregated(trimmed == "/api", v),
            ),
            None if trimmed == "/api" => json_response(
                StatusCode::OK,
                &crate::discovery::api_versions(&srv.server_address),
            ),
            None => json_response(StatusCode::OK, &crate::discovery::api_group_list()),
        },
        "/api/v1" => json_response(StatusCode::OK, &crate::discovery::resource_list("", "v1")?),
        "/openapi/v2" => {
            use rkube_api::openapi as oa;
            // client-go asks for (and parses) the gnostic protobuf form only.
            let (ct, doc) = if oa::v2_wants_protobuf(accept) {
                (oa::V2_PROTOBUF_RESPONSE_CONTENT_TYPE, oa::v2_protobuf())
            } else {
                (oa::JSON_CONTENT_TYPE, oa::v2_document())
            };
            let mut r = bytes_response(StatusCode::OK, ct, (*doc).clone());
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            r
        }
        "/openapi/v3" => json_response(StatusCode::OK, &rkube_api::openapi::v3_index()),
        _ => {
            if let Some(gv) = trimmed.strip_prefix("/openapi/v3/") {
                let doc = rkube_api::openapi::v3_document(gv)?;
                let mut r = bytes_response(StatusCode::OK, "application/json", (*doc).clone());
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, immutable"),
                );
                return Some(r);
            }
            let parts: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
            match parts.as_slice() {
                ["apis", g] => json_response(StatusCode::OK, &crate::discovery::group(g)?),
                ["apis", g, v] => {
                    json_response(StatusCode::OK, &crate::discovery::resource_list(g, v)?)
                }
                _ => return None,
            }
        }
    };
    Some(r)
}

async fn read_body(req: Request<hyper::body::Incoming>) -> ApiResult<(Bytes, String)> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Read at most MAX_BODY; past that, drain (up to a bound) before
    // answering 413, so that the client reads the answer instead of a reset.
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("error reading request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > MAX_BODY {
                if seen > DRAIN_LIMIT {
                    break;
                }
                continue;
            }
            buf.extend_from_slice(&data);
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::too_large());
    }
    let body = buf.freeze();
    Ok((body, ct))
}

pub(crate) fn parse_json_body(body: &[u8], ct: &str) -> ApiResult<Value> {
    let media = ct.split(';').next().unwrap_or("").trim();
    if rkube_api::protobuf::is_protobuf(media) {
        return rkube_api::protobuf::decode(body).map_err(|e| ApiError::bad_request(e.to_string()));
    }
    if media.contains("protobuf") {
        return Err(ApiError::unsupported_media(media));
    }
    parse_body(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn write_options(q: &HashMap<String, String>) -> ApiResult<WriteOptions> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other:?}; supported values: \"All\""
            )))
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_validation: FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?,
        field_manager: q.get("fieldManager").cloned(),
    })
}

fn with_warnings(mut r: Resp, warnings: &[String]) -> Resp {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

async fn resource_request(
    srv: &Arc<ApiServer>,
    info: RequestInfo,
    q: HashMap<String, String>,
    accept: Option<&str>,
    req: Request<hyper::body::Incoming>,
) -> ApiResult<Resp> {
    let res = resources::lookup(&info.group, &info.version, &info.resource)
        .ok_or_else(ApiError::not_found_path)?;
    if !res.namespaced && info.namespace.is_some() {
        return Err(ApiError::not_found_path());
    }
    if let Some(sub) = &info.subresource {
        if !res.has_subresource(sub) {
            return Err(ApiError::not_found_path());
        }
    }
    let out = negotiate::output(accept, q.get("includeObject").map(String::as_str));
    let t = Target {
        res,
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        subresource: info.subresource.clone(),
    };
    let rest = &srv.rest;
    if let Some(sub) = info.subresource.as_deref().filter(|s| *s != "status") {
        let body = if matches!(info.verb, "create" | "update" | "patch") {
            Some(read_body(req).await?)
        } else {
            None
        };
        return subresources::handle(rest, &t, sub, info.verb, body, &q)
            .await
            .map(|(code, v)| json_response(code, &v));
    }
    match info.verb {
        "get" => {
            let obj =
                crate::rest::read::get(rest, &t, q.get("resourceVersion").map(String::as_str))
                    .await?;
            Ok(json_response(
                StatusCode::OK,
                &negotiate::render_object(res, obj, out),
            ))
        }
        "list" => {
            let opts = ListOptions::parse(res, &q)?;
            let r = crate::rest::read::list(rest, &t, &opts).await?;
            Ok(bytes_response(
                StatusCode::OK,
                "application/json",
                negotiate::render_list(res, &r, out),
            ))
        }
        "watch" => {
            let list = ListOptions::parse(res, &q)?;
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(
                    1800 + (uuid::Uuid::new_v4().as_u128() % 1800) as u64,
                ));
            let send_initial_events = q.get("sendInitialEvents").is_some_and(|v| v == "true");
            let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
            if send_initial_events && list.resource_version_match.as_deref() != Some("NotOlderThan")
            {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
                ));
            }
            if send_initial_events && !bookmarks {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "allowWatchBookmarks: Forbidden: allowWatchBookmarks must be true when sendInitialEvents is set",
                ));
            }
            let opts = WatchOptions {
                list,
                bookmarks,
                send_initial_events,
                timeout,
                bookmark_interval: srv.bookmark_interval,
            };
            let rx = crate::rest::watch::watch(
                rest.clone(),
                t,
                opts,
                negotiate::watch_encoder(res, out),
            )
            .await;
            srv.metrics.inflight_watches.inc();
            let guard = WatchGuard(srv.clone());
            let stream = crate::rest::watch::coalesced(rx).map(move |b| {
                let _g = &guard;
                Ok::<Bytes, Infallible>(b)
            });
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        "create" => {
            if info.name.is_some() && info.subresource.is_none() {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            let (body, ct) = read_body(req).await?;
            let v = parse_json_body(&body, &ct)?;
            let r = crate::rest::write::create(rest, &t, v, &write_options(&q)?).await?;
            Ok(write_response(res, r, out))
        }
        "update" => {
            let (body, ct) = read_body(req).await?;
            let v = parse_json_body(&body, &ct)?;
            let r = crate::rest::write::update(rest, &t, v, &write_options(&q)?).await?;
            Ok(write_response(res, r, out))
        }
        "patch" => {
            let (body, ct) = read_body(req).await?;
            let pt = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media(&ct))?;
            let patch: Value = if pt == PatchType::Apply {
                parse_body(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
            } else {
                serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
            };
            let opts = write_options(&q)?;
            let r = match crate::rest::write::patch(rest, &t, pt, patch.clone(), &opts).await {
                Err(e)
                    if pt == PatchType::Apply
                        && e.code == StatusCode::NOT_FOUND
                        && t.subresource.is_none() =>
                {
                    crate::rest::write::create(rest, &t, patch, &opts).await?
                }
                other => other?,
            };
            Ok(write_response(res, r, out))
        }
        "delete" => {
            let opts = delete_options(req, &q).await?;
            crate::admission::check_delete(&t)?;
            let (obj, gone) = crate::rest::write::delete(rest, &t, &opts).await?;
            // Upstream answers 202 when deletion is pending (grace period, finalizers).
            let code = if gone {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok(json_response(
                code,
                &negotiate::render_object(res, obj, out),
            ))
        }
        "deletecollection" => {
            let opts = delete_options(req, &q).await?;
            let list = ListOptions {
                resource_version: None,
                limit: 0,
                continue_token: None,
                ..ListOptions::parse(res, &q)?
            };
            let r = crate::rest::read::list(rest, &t, &list).await?;
            for item in &r.items {
                let name = crate::rest::name_of(item).to_string();
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let one = Target {
                    name: Some(name),
                    namespace: ns.or(t.namespace.clone()),
                    ..t.clone()
                };
                match crate::rest::write::delete(rest, &one, &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == StatusCode::NOT_FOUND => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// 201 for a created object, 200 otherwise, with the decoding warnings.
fn write_response(
    res: &'static rkube_api::ResourceInfo,
    r: crate::rest::WriteResult,
    out: negotiate::Output,
) -> Resp {
    let code = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    with_warnings(
        json_response(code, &negotiate::render_object(res, r.obj, out)),
        &r.warnings,
    )
}

/// DeleteOptions from the body (if any), overridden by query parameters.
async fn delete_options(
    req: Request<hyper::body::Incoming>,
    q: &HashMap<String, String>,
) -> ApiResult<DeleteOptions> {
    let (body, ct) = read_body(req).await?;
    let body = if body.is_empty() {
        None
    } else {
        Some(parse_json_body(&body, &ct)?)
    };
    let mut opts = DeleteOptions::from_body(body.as_ref())?;
    apply_delete_query(&mut opts, q)?;
    Ok(opts)
}

fn apply_delete_query(opts: &mut DeleteOptions, q: &HashMap<String, String>) -> ApiResult<()> {
    if let Some(g) = q.get("gracePeriodSeconds") {
        opts.grace_period = Some(
            g.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g:?}")))?
                .max(0),
        );
    }
    if let Some(p) = q.get("propagationPolicy") {
        let mut tmp = DeleteOptions::from_body(Some(&json!({"propagationPolicy": p})))?;
        opts.propagation = tmp.propagation.take();
    }
    if q.get("dryRun").is_some_and(|d| d == "All") {
        opts.dry_run = true;
    }
    Ok(())
}

/// Keeps the open-watches gauge right when a watch body is dropped.
struct WatchGuard(Arc<ApiServer>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.metrics.inflight_watches.dec();
    }
}
