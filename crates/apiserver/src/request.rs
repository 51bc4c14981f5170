//! Parsing of resource request paths into a [`RequestInfo`], the way
//! upstream's `RequestInfoFactory` does: `/api/v1/namespaces/ns/pods/name/status`,
//! `/apis/apps/v1/deployments`, the legacy `/watch/` prefix, and the verb
//! implied by method, name and the `watch` parameter.

use http::Method;

/// What a resource request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
}

/// Parses `path` (without query). Returns `None` for non-resource paths
/// (discovery roots like `/api`, `/apis/apps`, `/api/v1`).
pub fn parse(method: &Method, path: &str, watch_param: bool) -> Option<RequestInfo> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
        _ => return None,
    };
    let mut rest: Vec<&str> = rest.to_vec();
    let mut watch = watch_param;
    if rest.first() == Some(&"watch") {
        watch = true;
        rest.remove(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut namespace = None;
    // namespaces/{ns}/{resource}... but `namespaces/{name}` and
    // `namespaces/{name}/{status|finalize}` address the namespace itself.
    if rest[0] == "namespaces" && rest.len() >= 3 && rest[2] != "status" && rest[2] != "finalize" {
        namespace = Some(rest[1].to_string());
        rest.drain(0..2);
    } else if rest[0] == "namespaces" && rest.len() >= 2 {
        namespace = None;
    }
    let resource = rest[0].to_string();
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 {
        return Some(RequestInfo {
            group,
            version,
            namespace,
            resource,
            name,
            subresource: Some(rest[2..].join("/")),
            verb: "unknown",
        });
    }
    let verb = match *method {
        Method::GET | Method::HEAD => match (&name, watch) {
            (_, true) => "watch",
            (Some(_), false) => "get",
            (None, false) => "list",
        },
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if name.is_some() {
                "delete"
            } else {
                "deletecollection"
            }
        }
        _ => "unknown",
    };
    Some(RequestInfo {
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
        verb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: Method, path: &str) -> RequestInfo {
        parse(&m, path, false).unwrap()
    }

    #[test]
    fn parses_upstream_path_shapes() {
        let r = p(Method::GET, "/api/v1/namespaces/default/pods/web/status");
        assert_eq!(
            (
                r.group.as_str(),
                r.namespace.as_deref(),
                r.resource.as_str()
            ),
            ("", Some("default"), "pods")
        );
        assert_eq!(
            (r.name.as_deref(), r.subresource.as_deref(), r.verb),
            (Some("web"), Some("status"), "get")
        );

        let r = p(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!(
            (r.group.as_str(), r.namespace, r.verb),
            ("apps", None, "list")
        );

        let r = p(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );

        let r = p(Method::PUT, "/api/v1/namespaces/ns1/finalize");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("ns1"), Some("finalize"))
        );

        let r = p(Method::GET, "/api/v1/watch/namespaces/default/pods");
        assert_eq!((r.verb, r.namespace.as_deref()), ("watch", Some("default")));

        let r = p(Method::DELETE, "/api/v1/namespaces/default/configmaps");
        assert_eq!(r.verb, "deletecollection");
        assert!(parse(&Method::GET, "/api/v1", false).is_none());
        assert!(parse(&Method::GET, "/apis/apps", false).is_none());
        assert_eq!(
            parse(&Method::GET, "/api/v1/pods", true).unwrap().verb,
            "watch"
        );
    }
}
