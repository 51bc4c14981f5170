//! Service environment variables as upstream's kubelet injects them
//! (`pkg/kubelet/envvars` and `getServiceEnvVarMap`): for every Service with
//! a cluster IP in the pod's namespace (when `enableServiceLinks` is not
//! false), and always for the master service `kubernetes` of the `default`
//! namespace, `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT`,
//! `{SVC}_SERVICE_PORT_{PORTNAME}` and the Docker-link variables
//! `{SVC}_PORT`, `{SVC}_PORT_{port}_{PROTO}` with `_PROTO`, `_PORT` and
//! `_ADDR`.
//!
//! Pure: the caller passes the Services it knows.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};

/// The namespace of the master services.
pub const MASTER_SERVICE_NAMESPACE: &str = "default";
/// Services whose variables every pod gets, links or not.
pub const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// Whether `svc` has a cluster IP (not empty, not `None`: headless and
/// ExternalName services get no variables).
pub fn is_service_ip_set(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// Upstream's `makeEnvVariableName`: upper case, `-` → `_` (nothing else:
/// service names are DNS labels).
pub fn env_var_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// `host:port`, with brackets around an IPv6 host (Go's `JoinHostPort`).
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The variables of `services` (upstream's `envvars.FromServices`), in
/// upstream's order per service.
pub fn from_services<'a>(services: impl IntoIterator<Item = &'a Service>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        if !is_service_ip_set(svc) {
            continue;
        }
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let prefix = env_var_name(svc.metadata.name.as_deref().unwrap_or(""));
        let ports = spec.ports.as_deref().unwrap_or(&[]);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        let Some(first) = ports.first() else {
            // Validation requires ports when a cluster IP is set; upstream
            // would index the first one. Nothing more to say without ports.
            continue;
        };
        let port_var = format!("{prefix}_SERVICE_PORT");
        out.push((port_var.clone(), first.port.to_string()));
        for p in ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{port_var}_{}", env_var_name(name)),
                    p.port.to_string(),
                ));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let proto = p
                .protocol
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("TCP");
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{}", join_host_port(&ip, p.port));
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.clone()));
        }
    }
    out
}

/// Upstream's `getServiceEnvVarMap`: the variables of the services a pod in
/// namespace `ns` sees. A service of the pod's own namespace wins over a
/// master service of the same name.
pub fn for_namespace<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    ns: &str,
    enable_service_links: bool,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        if !is_service_ip_set(svc) {
            continue;
        }
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let svc_ns = svc.metadata.namespace.as_deref().unwrap_or("");
        if svc_ns == MASTER_SERVICE_NAMESPACE && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(svc);
        } else if svc_ns == ns && enable_service_links {
            chosen.insert(name, svc);
        }
    }
    from_services(chosen.into_values()).into_iter().collect()
}

/// `spec.enableServiceLinks` (defaulted to true, as the API server does).
pub fn links_enabled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true)
}

/// Whether `pod` came from a file rather than the API server (upstream's
/// `IsStaticPod`): such pods do not wait for the Service source to sync.
pub fn is_static_pod(pod: &Pod) -> bool {
    let ann = pod.metadata.annotations.as_ref();
    ann.and_then(|a| a.get(crate::static_pods::ANN_SOURCE))
        .is_some_and(|s| s != "api")
        || ann.is_some_and(|a| a.contains_key(crate::static_pods::ANN_MIRROR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

    fn svc(ns: &str, name: &str, ip: &str, ports: &[(Option<&str>, i32, Option<&str>)]) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some(ns.into());
        s.spec = Some(ServiceSpec {
            cluster_ip: Some(ip.into()),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| ServicePort {
                        name: n.map(String::from),
                        port: *p,
                        protocol: proto.map(String::from),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        s
    }

    fn get<'a>(v: &'a [(String, String)], k: &str) -> Option<&'a str> {
        v.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn names_are_mangled_as_upstream() {
        assert_eq!(env_var_name("my-svc"), "MY_SVC");
        assert_eq!(env_var_name("a.b-c"), "A.B_C");
    }

    #[test]
    fn variables_of_one_service_in_upstream_order() {
        let s = svc(
            "ns",
            "my-svc",
            "10.0.0.11",
            &[
                (Some("http-port"), 80, None),
                (Some("dns"), 53, Some("UDP")),
            ],
        );
        let v = from_services([&s]);
        let want: Vec<(String, String)> = [
            ("MY_SVC_SERVICE_HOST", "10.0.0.11"),
            ("MY_SVC_SERVICE_PORT", "80"),
            ("MY_SVC_SERVICE_PORT_HTTP_PORT", "80"),
            ("MY_SVC_SERVICE_PORT_DNS", "53"),
            ("MY_SVC_PORT", "tcp://10.0.0.11:80"),
            ("MY_SVC_PORT_80_TCP", "tcp://10.0.0.11:80"),
            ("MY_SVC_PORT_80_TCP_PROTO", "tcp"),
            ("MY_SVC_PORT_80_TCP_PORT", "80"),
            ("MY_SVC_PORT_80_TCP_ADDR", "10.0.0.11"),
            ("MY_SVC_PORT_53_UDP", "udp://10.0.0.11:53"),
            ("MY_SVC_PORT_53_UDP_PROTO", "udp"),
            ("MY_SVC_PORT_53_UDP_PORT", "53"),
            ("MY_SVC_PORT_53_UDP_ADDR", "10.0.0.11"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(v, want);
    }

    #[test]
    fn unnamed_port_ipv6_and_headless() {
        let s = svc("ns", "v6", "fd00::1", &[(None, 443, None)]);
        let v = from_services([&s]);
        assert_eq!(get(&v, "V6_PORT"), Some("tcp://[fd00::1]:443"));
        assert_eq!(get(&v, "V6_SERVICE_PORT"), Some("443"));
        assert!(v.iter().all(|(k, _)| !k.starts_with("V6_SERVICE_PORT_")));
        let headless = svc("ns", "h", "None", &[(None, 80, None)]);
        let empty = svc("ns", "e", "", &[(None, 80, None)]);
        assert!(from_services([&headless, &empty]).is_empty());
    }

    #[test]
    fn namespace_projection_and_service_links() {
        let master = svc(
            "default",
            "kubernetes",
            "10.0.0.1",
            &[(Some("https"), 443, None)],
        );
        let other_default = svc("default", "web", "10.0.0.5", &[(None, 80, None)]);
        let mine = svc("app", "my-svc", "10.0.0.9", &[(None, 8080, None)]);
        let elsewhere = svc("other", "x", "10.0.0.7", &[(None, 1, None)]);
        let all = [&master, &other_default, &mine, &elsewhere];
        let m = for_namespace(all, "app", true);
        assert_eq!(m["KUBERNETES_SERVICE_HOST"], "10.0.0.1");
        assert_eq!(m["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert_eq!(m["MY_SVC_SERVICE_HOST"], "10.0.0.9");
        assert!(
            !m.contains_key("WEB_SERVICE_HOST"),
            "default ns is not ours"
        );
        assert!(!m.contains_key("X_SERVICE_HOST"));
        let m = for_namespace(all, "app", false);
        assert_eq!(m["KUBERNETES_SERVICE_HOST"], "10.0.0.1", "master always");
        assert!(!m.contains_key("MY_SVC_SERVICE_HOST"));
        // Pods of `default` see its services with links, only the master without.
        let m = for_namespace(all, "default", true);
        assert!(m.contains_key("WEB_SERVICE_HOST") && m.contains_key("KUBERNETES_PORT"));
        let m = for_namespace(all, "default", false);
        assert!(!m.contains_key("WEB_SERVICE_HOST") && m.contains_key("KUBERNETES_PORT"));
        // A namespace's own `kubernetes` service wins, in either order.
        let own = svc("app", "kubernetes", "10.0.0.42", &[(None, 1, None)]);
        for order in [[&master, &own], [&own, &master]] {
            let m = for_namespace(order, "app", true);
            assert_eq!(m["KUBERNETES_SERVICE_HOST"], "10.0.0.42");
        }
    }

    #[test]
    fn pod_flags() {
        let mut p = Pod::default();
        assert!(links_enabled(&p));
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            enable_service_links: Some(false),
            ..Default::default()
        });
        assert!(!links_enabled(&p));
        assert!(!is_static_pod(&p));
        p.metadata.annotations = Some(
            [(
                crate::static_pods::ANN_SOURCE.to_string(),
                "file".to_string(),
            )]
            .into(),
        );
        assert!(is_static_pod(&p));
    }
}
