//! API discovery: the legacy documents (`/api`, `/apis`, `/api/v1`,
//! `/apis/<group>`, `/apis/<group>/<version>`) and aggregated discovery v2
//! (`APIGroupDiscoveryList`), built once from the resource registry.

use std::sync::OnceLock;

use rkube_api::resources::{
    group_version_resources, group_versions, ResourceInfo, ALL_VERBS, GROUPS,
};
use serde_json::{json, Value};

/// The kind and verbs a subresource answers with.
fn subresource_kind(
    res: &ResourceInfo,
    sub: &str,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        "binding" => ("", "v1", "Binding", &["create"]),
        "eviction" => ("policy", "v1", "Eviction", &["create"]),
        "finalize" => (res.group, res.version, res.kind, &["update"]),
        _ => (
            res.group,
            res.version,
            res.kind,
            &["get", "patch", "update"],
        ),
    }
}

fn verbs(_res: &ResourceInfo) -> &'static [&'static str] {
    ALL_VERBS
}

fn legacy_resources(group: &str, version: &str) -> Value {
    let mut out = Vec::new();
    for r in group_version_resources(group, version) {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        out.push(e);
        for sub in r.subresources {
            let (g, v, k, verbs) = subresource_kind(r, sub);
            let mut s = json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": verbs,
            });
            if g != r.group || v != r.version {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            out.push(s);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out})
}

/// `/api/v1` or `/apis/<group>/<version>`; None when not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    group_version_resources(group, version).next()?;
    Some(legacy_resources(group, version))
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str) -> Value {
    let versions: Vec<Value> = group_versions(group)
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .filter(|g| !g.is_empty())
        .map(|g| api_group(g))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(group: &str) -> Option<Value> {
    if group.is_empty() || !GROUPS.contains(&group) {
        return None;
    }
    let mut g = api_group(group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn aggregated_group(group: &str) -> Value {
    let versions: Vec<Value> = group_versions(group)
        .into_iter()
        .map(|v| {
            let resources: Vec<Value> = group_version_resources(group, v)
                .map(|r| {
                    let mut e = json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": verbs(r),
                    });
                    if !r.short_names.is_empty() {
                        e["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        e["categories"] = json!(r.categories);
                    }
                    if !r.subresources.is_empty() {
                        e["subresources"] = json!(r
                            .subresources
                            .iter()
                            .map(|s| {
                                let (g, ver, k, verbs) = subresource_kind(r, s);
                                json!({"subresource": s, "responseKind": {"group": g, "version": ver, "kind": k}, "verbs": verbs})
                            })
                            .collect::<Vec<_>>());
                    }
                    e
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

/// Aggregated discovery for `/api` (core only) or `/apis` (all named groups),
/// as `apidiscovery.k8s.io/<version>` (v2 or v2beta1).
pub fn aggregated(core: bool, api_version: &str) -> Vec<u8> {
    static CACHE: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    let docs = CACHE.get_or_init(|| {
        let make = |core: bool, v: &str| {
            let items: Vec<Value> = if core {
                vec![aggregated_group("")]
            } else {
                GROUPS
                    .iter()
                    .filter(|g| !g.is_empty())
                    .map(|g| aggregated_group(g))
                    .collect()
            };
            serde_json::to_vec(&json!({
                "kind": "APIGroupDiscoveryList",
                "apiVersion": format!("apidiscovery.k8s.io/{v}"),
                "metadata": {},
                "items": items,
            }))
            .unwrap_or_default()
        };
        [
            make(true, "v2"),
            make(false, "v2"),
            make(true, "v2beta1"),
            make(false, "v2beta1"),
        ]
    });
    let i = match (core, api_version) {
        (true, "v2") => 0,
        (false, "v2") => 1,
        (true, _) => 2,
        (false, _) => 3,
    };
    docs[i].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_lists_name_subresources_with_their_kinds() {
        let v1 = resource_list("", "v1").unwrap();
        let names: Vec<&str> = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"pods/binding")
                && names.contains(&"pods/status")
                && names.contains(&"namespaces/finalize")
        );
        let eviction = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(
            (eviction["group"].as_str(), eviction["kind"].as_str()),
            (Some("policy"), Some("Eviction"))
        );
        assert!(resource_list("apps", "v2").is_none());
        assert_eq!(
            group("apps").unwrap()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
    }

    #[test]
    fn aggregated_discovery_covers_every_group() {
        let all: Value = serde_json::from_slice(&aggregated(false, "v2")).unwrap();
        assert_eq!(all["items"].as_array().unwrap().len(), GROUPS.len() - 1);
        let core: Value = serde_json::from_slice(&aggregated(true, "v2")).unwrap();
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], json!(["po"]));
    }
}
