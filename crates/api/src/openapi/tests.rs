//! Tests of the OpenAPI documents: coverage of the resource table, ref
//! integrity, the lookups kubectl performs (field-validation support,
//! explain, strategic-merge metadata) and the discovery index.

use serde_json::Value;

use super::*;
use crate::resources::RESOURCES;

fn doc(path: &str) -> Value {
    let bytes = v3_document(path).unwrap_or_else(|| panic!("no document {path}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn gvk_obj(group: &str, version: &str, kind: &str) -> Value {
    serde_json::json!({ "group": group, "kind": kind, "version": version })
}

/// kubectl's `supportsQueryParamV3`: the first PATCH operation (in map
/// order, which Go randomizes, so every one must agree) whose GVK matches
/// decides, looking only at operation-level parameters.
fn patch_ops_for<'a>(d: &'a Value, gvk: &Value) -> Vec<&'a Value> {
    let paths = d["paths"].as_object().expect("paths");
    paths
        .values()
        .filter_map(|item| item.get("patch"))
        .filter(|op| op.get("x-kubernetes-group-version-kind") == Some(gvk))
        .collect()
}

fn has_param(op: &Value, name: &str) -> bool {
    op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == name))
}

/// Follows a schema through `allOf` and `$ref` the way kubectl's explain
/// and strategic-merge lookups do.
fn resolve<'a>(d: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(first) = s.get("allOf").and_then(|a| a.get(0)) {
            s = first;
        }
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .expect("v3 ref prefix");
                s = &d["components"]["schemas"][name];
            }
            None => return s,
        }
    }
    s
}

fn walk_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                if k == "$ref" {
                    out.push(c.as_str().expect("string ref").to_string());
                } else {
                    walk_refs(c, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| walk_refs(c, out)),
        _ => {}
    }
}

#[test]
fn documents_build() {
    assert!(!v3_document_paths().is_empty());
    for p in v3_document_paths() {
        assert!(v3_document(p).is_some_and(|b| !b.is_empty()), "{p}");
    }
    assert!(!v2_document().is_empty());
    assert!(v3_document("apis/nope/v1").is_none());
}

#[test]
fn every_resource_appears_with_its_gvk() {
    for r in RESOURCES {
        let d = doc(&gv_path(r.group, r.version));
        let gvk = gvk_obj(r.group, r.version, r.kind);
        let ops: Vec<&Value> = d["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| ["get", "put", "post", "delete", "patch"].map(|m| item.get(m)))
            .flatten()
            .filter(|op| op["x-kubernetes-group-version-kind"] == gvk)
            .collect();
        let actions: Vec<&str> = ops
            .iter()
            .filter_map(|op| op["x-kubernetes-action"].as_str())
            .collect();
        for a in [
            "list",
            "post",
            "deletecollection",
            "get",
            "put",
            "patch",
            "delete",
            "watch",
            "watchlist",
        ] {
            assert!(
                actions.contains(&a),
                "{} lacks action {a}",
                r.qualified_kind()
            );
        }
        let schemas = d["components"]["schemas"].as_object().expect("schemas");
        let with_gvk = schemas.values().filter(|s| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|l| l.contains(&gvk))
        });
        assert_eq!(with_gvk.count(), 1, "{} schema", r.qualified_kind());
        let list = gvk_obj(r.group, r.version, &format!("{}List", r.kind));
        assert!(
            schemas.values().any(|s| s[super::schemas::GVK_EXT]
                .as_array()
                .is_some_and(|l| l.contains(&list))),
            "{}List schema",
            r.kind
        );
    }
}

#[test]
fn every_v3_ref_resolves() {
    for p in v3_document_paths() {
        let d = doc(p);
        let mut refs = Vec::new();
        walk_refs(&d, &mut refs);
        assert!(!refs.is_empty() || p == "apis", "{p} has no refs");
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{p}: bad ref {r}"));
            assert!(
                d["components"]["schemas"].get(name).is_some(),
                "{p}: unresolved {r}"
            );
        }
    }
}

#[test]
fn every_v2_ref_resolves() {
    let d: Value = serde_json::from_slice(&v2_document()).expect("v2 json");
    assert_eq!(d["swagger"], "2.0");
    let mut refs = Vec::new();
    walk_refs(&d, &mut refs);
    assert!(refs.len() > 100);
    for r in refs {
        let name = r
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("bad ref {r}"));
        assert!(d["definitions"].get(name).is_some(), "unresolved {r}");
    }
    let op = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(has_param(op, "fieldValidation"));
    assert_eq!(
        op["x-kubernetes-group-version-kind"],
        gvk_obj("apps", "v1", "Deployment")
    );
    assert!(op["consumes"]
        .as_array()
        .is_some_and(|c| c.contains(&"application/strategic-merge-patch+json".into())));
}

#[test]
fn pod_containers_resolve_to_described_container() {
    let d = doc("api/v1");
    let pod = &d["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
    assert!(pod["description"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        pod.get("required").is_none(),
        "metadata is not required upstream"
    );
    let spec_prop = &pod["properties"]["spec"];
    assert!(
        spec_prop["description"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "spec description"
    );
    assert!(
        spec_prop.get("allOf").is_some(),
        "ref with siblings is wrapped in allOf"
    );
    let spec = resolve(&d, spec_prop);
    let containers = &spec["properties"]["containers"];
    assert!(containers["description"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let container = resolve(&d, &containers["items"]);
    assert!(container["description"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(container["properties"]["name"]["description"].is_string());
    assert!(container["properties"]["image"].is_object());
}

#[test]
fn every_patch_declares_field_validation() {
    let d = doc("apis/apps/v1");
    let deploy = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    for p in ["fieldValidation", "dryRun", "fieldManager", "force"] {
        assert!(has_param(deploy, p), "deployment patch lacks {p}");
    }
    let content = deploy["requestBody"]["content"]
        .as_object()
        .expect("content");
    for t in model::PATCH_TYPES {
        assert!(content.contains_key(*t), "{t}");
    }
    for r in RESOURCES {
        let d = doc(&gv_path(r.group, r.version));
        let ops = patch_ops_for(&d, &gvk_obj(r.group, r.version, r.kind));
        assert!(!ops.is_empty(), "{} has no PATCH", r.qualified_kind());
        for op in ops {
            assert!(
                has_param(op, "fieldValidation"),
                "{} PATCH lacks fieldValidation",
                r.qualified_kind()
            );
            assert!(op["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some());
        }
    }
    for item in d["paths"].as_object().expect("paths").values() {
        for m in ["post", "put"] {
            if let Some(op) = item.get(m) {
                for p in ["fieldValidation", "dryRun", "fieldManager"] {
                    assert!(has_param(op, p), "{} lacks {p}", op["operationId"]);
                }
            }
        }
    }
}

/// kubectl explain v2: the GVK comes from an operation on one of four
/// candidate paths; the schema is the one whose GVK list contains it.
#[test]
fn explain_lookup_finds_every_kind() {
    for r in RESOURCES {
        let d = doc(&gv_path(r.group, r.version));
        let prefix = if r.group.is_empty() {
            "/api".to_string()
        } else {
            format!("/apis/{}", r.group)
        };
        let candidates = [
            format!("{prefix}/{}/{}", r.version, r.plural),
            format!("{prefix}/{}/{}/{{name}}", r.version, r.plural),
            format!(
                "{prefix}/{}/namespaces/{{namespace}}/{}",
                r.version, r.plural
            ),
        ];
        let gvk = candidates
            .iter()
            .filter_map(|p| d["paths"].get(p))
            .find_map(|item| item["get"].get("x-kubernetes-group-version-kind"))
            .unwrap_or_else(|| panic!("{} GVR not found", r.plural));
        let schema = d["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .values()
            .find(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(gvk))
            })
            .unwrap_or_else(|| panic!("{} schema not found", r.kind));
        assert!(schema["description"].is_string(), "{}", r.kind);
        assert!(schema["properties"]["metadata"].is_object(), "{}", r.kind);
    }
}

#[test]
fn index_lists_every_group_version() {
    let index = v3_index();
    let paths = index["paths"].as_object().expect("paths");
    for (g, v) in served_group_versions() {
        let p = gv_path(g, v);
        let url = paths[&p]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{p} missing"));
        let hash = v3_document_hash(&p).expect("hash");
        assert_eq!(url, format!("/openapi/v3/{p}?hash={hash}"));
        assert_eq!(v3_server_relative_url(&p).as_deref(), Some(url));
        assert_eq!(hash, content_hash(&v3_document(&p).expect("doc")));
    }
    for r in RESOURCES {
        assert!(paths.contains_key(&gv_path(r.group, r.version)));
    }
    assert!(
        paths.contains_key("api") && paths.contains_key("apis") && paths.contains_key("apis/apps")
    );
}

#[test]
fn hashes_are_stable_and_content_sensitive() {
    assert_eq!(content_hash(b"abc"), content_hash(b"abc"));
    assert_ne!(content_hash(b"abc"), content_hash(b"abd"));
    assert_eq!(content_hash(b"").len(), 32);
    assert_eq!(v3_document_hash("api/v1"), v3_document_hash("/api/v1/"));
}

#[test]
fn patch_metadata_targets_existing_fields() {
    let reg = schemas::registry();
    for f in patch_meta::PATCH_FIELDS {
        let prop = &reg.definitions[f.definition]["properties"][f.property];
        assert_eq!(
            prop["x-kubernetes-patch-strategy"], f.strategy,
            "{}.{}",
            f.definition, f.property
        );
    }
    let d = doc("apis/apps/v1");
    let spec = resolve(
        &d,
        &d["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"],
    );
    assert_eq!(
        spec["properties"]["strategy"]["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
    assert!(spec["properties"]["strategy"]["allOf"].is_array());
}

#[test]
fn definitions_are_objects_with_meta_types() {
    let reg = schemas::registry();
    for (name, def) in &reg.definitions {
        assert!(def.is_object(), "{name} is not an object schema");
    }
    for name in [
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    ] {
        assert!(reg.definitions.contains_key(name), "{name}");
    }
    let d = doc("api/v1");
    for name in ["Status", "DeleteOptions", "Patch", "WatchEvent"] {
        let key = format!("io.k8s.apimachinery.pkg.apis.meta.v1.{name}");
        assert!(
            d["components"]["schemas"].get(&key).is_some(),
            "{key} in api/v1"
        );
    }
}

#[test]
fn subresources_have_operations() {
    let d = doc("api/v1");
    let p = &d["paths"];
    let pod = "/api/v1/namespaces/{namespace}/pods/{name}";
    assert_eq!(
        p[format!("{pod}/status")]["patch"]["x-kubernetes-group-version-kind"],
        gvk_obj("", "v1", "Pod")
    );
    assert_eq!(
        p[format!("{pod}/binding")]["post"]["x-kubernetes-group-version-kind"],
        gvk_obj("", "v1", "Binding")
    );
    assert_eq!(
        p[format!("{pod}/eviction")]["post"]["x-kubernetes-group-version-kind"],
        gvk_obj("policy", "v1", "Eviction")
    );
    assert!(p["/api/v1/namespaces/{name}/finalize"]["put"].is_object());
    assert!(p["/api/v1/pods"]["get"]["x-kubernetes-action"] == "list");
    let apps = doc("apis/apps/v1");
    let scale =
        &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(
        scale["x-kubernetes-group-version-kind"],
        gvk_obj("autoscaling", "v1", "Scale")
    );
    assert!(has_param(scale, "fieldValidation"));
}
