//! The streaming subresources of pods, proxied to the node agent as
//! kube-apiserver proxies them to kubelet: `pods/log` → `/containerLogs/..`,
//! `pods/exec` → `/exec/..`, `pods/attach` → `/attach/..`,
//! `pods/portforward` → `/portForward/..`; and `nodes/{name}/proxy/{path}`
//! → the agent's `/{path}` (e.g. `/stats/summary`).
//!
//! The request's pod is checked first (container choice, node assignment)
//! with upstream's messages; the agent is reached at its Node's address
//! (InternalIP first) and `status.daemonEndpoints.kubeletEndpoint.Port`,
//! over TLS with the API server's kubelet-client certificate. As upstream
//! without `--kubelet-certificate-authority`, the agent's serving
//! certificate is **not** verified. Upgrades (WebSocket, SPDY) are spliced
//! byte for byte between the client and the agent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rkube_api::resources;
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::request::RequestInfo;
use crate::rest::{Rest, Target};

/// The agent's port when a Node reports none (kubelet's default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// The kubelet client could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("kubelet client TLS configuration: {0}")]
    Tls(String),
}

/// TLS client configuration for talking to node agents.
pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
}

impl KubeletClient {
    /// A client presenting `cert_pem`/`key_pem` (the kubelet-client identity).
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Self, ProxyError> {
        let err = |e: &dyn std::fmt::Display| ProxyError::Tls(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| err(&e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| err(&e))?;
        let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| err(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(rkube_api::x509::AnyServerCert(provider)))
            .with_client_auth_cert(chain, key)
            .map_err(|e| err(&e))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient { tls: Arc::new(tls) })
    }
}

/// Whether `info` addresses one of the proxied pod subresources.
pub fn is_streaming(info: &RequestInfo) -> bool {
    info.group.is_empty()
        && info.resource == "pods"
        && info.name.is_some()
        && matches!(
            info.subresource.as_deref(),
            Some("log" | "exec" | "attach" | "portforward")
        )
}

/// Whether `info` addresses `nodes/{name}/proxy[/{path}]`.
pub fn is_node_proxy(info: &RequestInfo) -> bool {
    info.group.is_empty()
        && info.resource == "nodes"
        && info.name.is_some()
        && info
            .subresource
            .as_deref()
            .is_some_and(|s| s == "proxy" || s.starts_with("proxy/"))
}

/// Handles `nodes/{name}/proxy/{path}`: the request goes to the agent's
/// `/{path}` with its query.
pub async fn handle_node(
    rest: &Rest,
    client: &KubeletClient,
    info: &RequestInfo,
    req: Request<hyper::body::Incoming>,
) -> ApiResult<Response<Body>> {
    let node_name = info.name.clone().unwrap_or_default();
    let sub = info.subresource.as_deref().unwrap_or("proxy");
    let path = node_proxy_path(sub, req.uri().path(), req.uri().query());
    forward(rest, client, &node_name, path, req).await
}

/// The agent path of a `nodes/{name}/{sub}` request (`sub` = `proxy/...`).
fn node_proxy_path(sub: &str, uri_path: &str, query: Option<&str>) -> String {
    let mut path = match sub.strip_prefix("proxy").unwrap_or("") {
        "" => "/".to_string(),
        p => p.to_string(),
    };
    if uri_path.ends_with('/') && !path.ends_with('/') {
        path.push('/');
    }
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

fn names(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request addresses, chosen and checked as upstream.
fn container_of(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    let spec = pod.get("spec");
    let containers = names(spec.and_then(|s| s.get("containers")));
    let init = names(spec.and_then(|s| s.get("initContainers")));
    let ephemeral = names(spec.and_then(|s| s.get("ephemeralContainers")));
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => {
            if containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|n| n == c)
            {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None => match containers.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            many => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    many.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(ApiError::bad_request(msg))
            }
        },
    }
}

/// The agent's address: the Node's InternalIP (else ExternalIP, Hostname)
/// and its reported kubelet port.
fn agent_address(node: &Value) -> Option<(String, u16)> {
    let addrs = node.pointer("/status/addresses")?.as_array()?;
    let host = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| {
            addrs.iter().find_map(|a| {
                (a.get("type")?.as_str()? == *t)
                    .then(|| a.get("address")?.as_str().map(str::to_string))
                    .flatten()
            })
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p <= u16::MAX as u64)
        .map_or(DEFAULT_KUBELET_PORT, |p| p as u16);
    Some((host, port))
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(q.unwrap_or("")).unwrap_or_default()
}

/// The agent path and query of a log request, with the options validated.
fn log_query(pairs: &[(String, String)]) -> ApiResult<String> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "follow" | "previous" | "timestamps" | "sinceTime" => out.push((k.clone(), v.clone())),
            "tailLines" | "sinceSeconds" | "limitBytes" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid value {v:?} for {k}")))?;
                let min = if k == "tailLines" { 0 } else { 1 };
                if n < min {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        format!("PodLogOptions \"\" is invalid: {k}: Invalid value: {n}: must be greater than {}", if min == 0 { "or equal to 0" } else { "0" }),
                    ));
                }
                out.push((k.clone(), v.clone()));
            }
            _ => {}
        }
    }
    Ok(serde_urlencoded::to_string(&out).unwrap_or_default())
}

/// Handles `pods/{log,exec,attach,portforward}`.
pub async fn handle(
    rest: &Rest,
    client: &KubeletClient,
    info: &RequestInfo,
    req: Request<hyper::body::Incoming>,
) -> ApiResult<Response<Body>> {
    let pods = resources::lookup("", "v1", "pods").ok_or_else(ApiError::not_found_path)?;
    let name = info.name.clone().unwrap_or_default();
    let ns = info.namespace.clone().unwrap_or_default();
    let pod = crate::rest::read::get(
        rest,
        &Target {
            res: pods,
            namespace: Some(ns.clone()),
            name: Some(name.clone()),
            subresource: None,
        },
        None,
    )
    .await?;
    let pairs = query_pairs(req.uri().query());
    let asked = pairs
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str());
    let sub = info.subresource.as_deref().unwrap_or("");
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let path = match sub {
        "log" => {
            let c = container_of(&pod, &name, asked)?;
            let q = log_query(&pairs)?;
            if node_name.is_empty() {
                // Upstream: no location, an empty log.
                return Ok(Response::new(Body::empty()));
            }
            format!("/containerLogs/{ns}/{name}/{c}?{q}")
        }
        "exec" | "attach" => {
            let c = container_of(&pod, &name, asked)?;
            if node_name.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            }
            format!("/{sub}/{ns}/{name}/{c}?{}", req.uri().query().unwrap_or(""))
        }
        _ => {
            if node_name.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            }
            format!(
                "/portForward/{ns}/{name}?{}",
                req.uri().query().unwrap_or("")
            )
        }
    };
    forward(rest, client, &node_name, path, req).await
}

/// Sends the request to `path` on the agent of `node_name`, splicing
/// upgraded connections.
async fn forward(
    rest: &Rest,
    client: &KubeletClient,
    node_name: &str,
    path: String,
    mut req: Request<hyper::body::Incoming>,
) -> ApiResult<Response<Body>> {
    let nodes = resources::lookup("", "v1", "nodes").ok_or_else(ApiError::not_found_path)?;
    let node = crate::rest::read::get(
        rest,
        &Target {
            res: nodes,
            namespace: None,
            name: Some(node_name.to_string()),
            subresource: None,
        },
        None,
    )
    .await?;
    let (host, port) = agent_address(&node).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("node {node_name} has no address"),
        )
    })?;
    let upgrade = req
        .headers()
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let backend_err = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("error dialing backend: {e}"),
        )
    };
    let hostport = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(hostport.as_str()),
    )
    .await
    .map_err(|e| backend_err(&e))?
    .map_err(|e| backend_err(&e))?;
    let _ = tcp.set_nodelay(true);
    let server_name = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.clone()).map_err(|e| backend_err(&e))?,
    };
    let tls = tokio_rustls::TlsConnector::from(client.tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| backend_err(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| backend_err(&e))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(path)
        .body(Empty::<Bytes>::new())
        .map_err(|e| backend_err(&e))?;
    for (k, v) in req.headers() {
        if k != header::HOST && k != header::AUTHORIZATION && k != header::CONTENT_LENGTH {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    if let Ok(h) = HeaderValue::from_str(&hostport) {
        out.headers_mut().insert(header::HOST, h);
    }
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| backend_err(&e))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(backend_err(&"unexpected upgrade from the node"));
        };
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(a), Ok(b)) = futures::join!(client_upgrade, backend_upgrade) {
                let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            }
        });
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *r.headers_mut() = resp.headers().clone();
        return Ok(r);
    }
    let status = resp.status();
    let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
    let mut r = Response::new(Body::new(resp.into_body()));
    *r.status_mut() = status;
    if let Some(ct) = ct {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_chosen_as_upstream() {
        let pod = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}],
        }});
        let e = container_of(&pod, "p", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(
            container_of(&pod, "p", Some("c")).unwrap_err().message,
            "container c is not valid for pod p"
        );
        assert_eq!(container_of(&pod, "p", Some("i")).unwrap(), "i");
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container_of(&one, "p", None).unwrap(), "only");
    }

    #[test]
    fn agent_address_prefers_internal_ip_and_reported_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}},
        }});
        assert_eq!(agent_address(&node), Some(("10.0.0.5".into(), 12345)));
        let bare = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(
            agent_address(&bare),
            Some(("n1".into(), DEFAULT_KUBELET_PORT))
        );
        assert_eq!(agent_address(&json!({})), None);
    }

    #[test]
    fn node_proxy_paths_map_to_the_agent() {
        let info = crate::request::parse(
            &http::Method::GET,
            "/api/v1/nodes/n1/proxy/stats/summary",
            false,
        )
        .unwrap();
        assert!(is_node_proxy(&info));
        assert_eq!(
            node_proxy_path(info.subresource.as_deref().unwrap(), "", None),
            "/stats/summary"
        );
        assert_eq!(
            node_proxy_path("proxy", "/api/v1/nodes/n1/proxy/", Some("a=b")),
            "/?a=b"
        );
        assert_eq!(
            node_proxy_path("proxy/healthz", "/api/v1/nodes/n1/proxy/healthz", None),
            "/healthz"
        );
        let status =
            crate::request::parse(&http::Method::GET, "/api/v1/nodes/n1/status", false).unwrap();
        assert!(!is_node_proxy(&status));
    }

    #[test]
    fn log_options_are_validated_and_filtered() {
        let q = query_pairs(Some("container=a&follow=true&tailLines=5&bogus=1"));
        assert_eq!(log_query(&q).unwrap(), "follow=true&tailLines=5");
        assert!(log_query(&query_pairs(Some("tailLines=x"))).is_err());
        assert_eq!(
            log_query(&query_pairs(Some("limitBytes=0")))
                .unwrap_err()
                .code,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
