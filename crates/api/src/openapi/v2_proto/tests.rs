//! Tests of the gnostic protobuf form of `/openapi/v2`: the bytes are
//! decoded with `prost` through hand-declared subsets of the gnostic
//! messages (field numbers of `openapiv2/OpenAPIv2.proto`), turned back
//! into JSON and compared with the JSON document; and the decoded document
//! passes the checks kube-openapi's `NewOpenAPIData` makes when kubectl
//! loads it, with kinds found through `x-kubernetes-group-version-kind`.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use serde_json::{json, Map, Value};

use super::gnostic_messages::*;
use super::*;

fn decoded() -> Document {
    Document::decode(v2_protobuf().as_slice()).expect("decode gnostic Document")
}

fn json_doc() -> Value {
    serde_json::from_slice(&v2_document()).expect("v2 json")
}

// Conversion of the decoded messages back to JSON.

fn put_str(m: &mut Map<String, Value>, key: &str, s: &str) {
    if !s.is_empty() {
        m.insert(key.into(), Value::String(s.into()));
    }
}

fn put_strs(m: &mut Map<String, Value>, key: &str, v: &[String]) {
    if !v.is_empty() {
        m.insert(key.into(), json!(v));
    }
}

fn put_extensions(m: &mut Map<String, Value>, ext: &[NamedAny]) {
    for e in ext {
        let yaml = e.value.as_ref().map(|a| a.yaml.as_str()).unwrap_or("");
        let v: Value = serde_yaml::from_str(yaml).expect("extension YAML");
        m.insert(e.name.clone(), v);
    }
}

fn schema_json(s: &Schema) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "$ref", &s.xref);
    put_str(&mut m, "format", &s.format);
    put_str(&mut m, "description", &s.description);
    put_strs(&mut m, "required", &s.required);
    if let Some(a) = &s.additional_properties {
        let v = match (&a.schema, a.boolean) {
            (Some(s), _) => schema_json(s),
            (None, Some(b)) => Value::Bool(b),
            (None, None) => Value::Null,
        };
        m.insert("additionalProperties".into(), v);
    }
    if let Some(t) = &s.r#type {
        let v = match t.value.as_slice() {
            [one] => Value::String(one.clone()),
            many => json!(many),
        };
        m.insert("type".into(), v);
    }
    if let Some(items) = &s.items {
        let v = match items.schema.as_slice() {
            [one] => schema_json(one),
            many => many.iter().map(schema_json).collect(),
        };
        m.insert("items".into(), v);
    }
    if let Some(p) = &s.properties {
        let props: Map<String, Value> = p
            .additional_properties
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.value.as_ref().map_or(Value::Null, schema_json),
                )
            })
            .collect();
        m.insert("properties".into(), Value::Object(props));
    }
    put_extensions(&mut m, &s.vendor_extension);
    Value::Object(m)
}

fn parameter_json(p: &ParametersItem) -> Value {
    let p = p.parameter.as_ref().expect("parameter");
    if let Some(b) = &p.body_parameter {
        let mut m = Map::new();
        put_str(&mut m, "name", &b.name);
        put_str(&mut m, "in", &b.r#in);
        if b.required {
            m.insert("required".into(), Value::Bool(true));
        }
        if let Some(s) = &b.schema {
            m.insert("schema".into(), schema_json(s));
        }
        return Value::Object(m);
    }
    let nb = p.non_body_parameter.as_ref().expect("non-body parameter");
    let (required, location, description, name, ty, unique) = match (&nb.query, &nb.path) {
        (Some(q), _) => (
            q.required,
            &q.r#in,
            &q.description,
            &q.name,
            &q.r#type,
            q.unique_items,
        ),
        (None, Some(p)) => (
            p.required,
            &p.r#in,
            &p.description,
            &p.name,
            &p.r#type,
            p.unique_items,
        ),
        (None, None) => panic!("unexpected parameter location"),
    };
    let mut m = Map::new();
    if unique {
        m.insert("uniqueItems".into(), Value::Bool(true));
    }
    put_str(&mut m, "type", ty);
    put_str(&mut m, "description", description);
    put_str(&mut m, "name", name);
    put_str(&mut m, "in", location);
    if required {
        m.insert("required".into(), Value::Bool(true));
    }
    Value::Object(m)
}

fn operation_json(op: &Operation) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "description", &op.description);
    put_strs(&mut m, "consumes", &op.consumes);
    put_strs(&mut m, "produces", &op.produces);
    put_strs(&mut m, "schemes", &op.schemes);
    put_strs(&mut m, "tags", &op.tags);
    put_str(&mut m, "operationId", &op.operation_id);
    if !op.parameters.is_empty() {
        let params: Vec<Value> = op.parameters.iter().map(parameter_json).collect();
        m.insert("parameters".into(), Value::Array(params));
    }
    let mut responses = Map::new();
    for r in op.responses.iter().flat_map(|r| &r.response_code) {
        let resp = r.value.as_ref().and_then(|v| v.response.as_ref());
        let resp = resp.expect("response");
        let mut v = Map::new();
        put_str(&mut v, "description", &resp.description);
        if let Some(s) = resp.schema.as_ref().and_then(|s| s.schema.as_ref()) {
            v.insert("schema".into(), schema_json(s));
        }
        responses.insert(r.name.clone(), Value::Object(v));
    }
    m.insert("responses".into(), Value::Object(responses));
    put_extensions(&mut m, &op.vendor_extension);
    Value::Object(m)
}

fn path_item_json(item: &PathItem) -> Value {
    let mut m = Map::new();
    let ops = [
        ("get", &item.get),
        ("put", &item.put),
        ("post", &item.post),
        ("delete", &item.delete),
        ("patch", &item.patch),
    ];
    for (method, op) in ops {
        if let Some(op) = op {
            m.insert(method.into(), operation_json(op));
        }
    }
    if !item.parameters.is_empty() {
        let params: Vec<Value> = item.parameters.iter().map(parameter_json).collect();
        m.insert("parameters".into(), Value::Array(params));
    }
    Value::Object(m)
}

fn document_json(d: &Document) -> Value {
    let info = d.info.as_ref().expect("info");
    let paths: Map<String, Value> = d
        .paths
        .iter()
        .flat_map(|p| &p.path)
        .map(|p| {
            (
                p.name.clone(),
                path_item_json(p.value.as_ref().expect("path item")),
            )
        })
        .collect();
    let definitions: Map<String, Value> = d
        .definitions
        .iter()
        .flat_map(|d| &d.additional_properties)
        .map(|n| {
            (
                n.name.clone(),
                schema_json(n.value.as_ref().expect("schema")),
            )
        })
        .collect();
    let security_definitions: Map<String, Value> = d
        .security_definitions
        .iter()
        .flat_map(|s| &s.additional_properties)
        .map(|n| {
            let k = n.value.as_ref().and_then(|v| v.api_key_security.as_ref());
            let k = k.expect("apiKey security definition");
            let v = json!({ "description": k.description, "type": k.r#type, "name": k.name, "in": k.r#in });
            (n.name.clone(), v)
        })
        .collect();
    let security: Vec<Value> = d
        .security
        .iter()
        .map(|r| {
            let m: Map<String, Value> = r
                .additional_properties
                .iter()
                .map(|n| {
                    (
                        n.name.clone(),
                        json!(n
                            .value
                            .as_ref()
                            .map(|a| a.value.clone())
                            .unwrap_or_default()),
                    )
                })
                .collect();
            Value::Object(m)
        })
        .collect();
    json!({
        "swagger": d.swagger,
        "info": { "title": info.title, "version": info.version },
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": security_definitions,
        "security": security,
    })
}

#[test]
fn protobuf_decodes_back_to_the_json_document() {
    let back = document_json(&decoded());
    let want = json_doc();
    for (name, def) in want["definitions"].as_object().expect("definitions") {
        assert_eq!(&back["definitions"][name], def, "definition {name}");
    }
    for (path, item) in want["paths"].as_object().expect("paths") {
        assert_eq!(&back["paths"][path], item, "path {path}");
    }
    assert_eq!(back, want);
}

#[test]
fn definitions_keep_document_order_and_kinds_schemas() {
    let d = decoded();
    let defs = &d
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties;
    let names: Vec<&str> = defs.iter().map(|n| n.name.as_str()).collect();
    let want = json_doc();
    let want: Vec<&str> = want["definitions"]
        .as_object()
        .expect("defs")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, want);

    let pod = defs
        .iter()
        .find(|n| n.name == "io.k8s.api.core.v1.Pod")
        .expect("Pod");
    let pod = pod.value.as_ref().expect("Pod schema");
    let props = &pod
        .properties
        .as_ref()
        .expect("Pod properties")
        .additional_properties;
    let prop = |name: &str| {
        props
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.as_ref())
    };
    assert!(prop("spec").is_some() && prop("status").is_some());
    let meta = prop("metadata").expect("metadata");
    assert_eq!(
        meta.xref,
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(meta.r#type.is_none() && meta.properties.is_none());
    assert_eq!(
        pod.r#type.as_ref().map(|t| t.value.clone()),
        Some(vec!["object".to_string()])
    );
}

/// kubectl's `NewOpenAPIData`: every definition listing GVKs in
/// `x-kubernetes-group-version-kind` (YAML of a list of maps with string
/// `group`, `version` and `kind`) serves those kinds.
#[test]
fn gvk_extensions_map_kinds_to_definitions() {
    let d = decoded();
    let mut kinds: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for n in &d
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties
    {
        let schema = n.value.as_ref().expect("schema");
        for e in schema
            .vendor_extension
            .iter()
            .filter(|e| e.name == "x-kubernetes-group-version-kind")
        {
            let yaml = &e.value.as_ref().expect("value").yaml;
            let list: Vec<BTreeMap<String, String>> =
                serde_yaml::from_str(yaml).expect("gvk list of string maps");
            for gvk in list {
                let key = (
                    gvk["group"].clone(),
                    gvk["version"].clone(),
                    gvk["kind"].clone(),
                );
                kinds.insert(key, n.name.clone());
            }
        }
    }
    let model = |g: &str, v: &str, k: &str| kinds.get(&(g.into(), v.into(), k.into())).cloned();
    assert_eq!(
        model("", "v1", "ConfigMap").as_deref(),
        Some("io.k8s.api.core.v1.ConfigMap")
    );
    assert_eq!(
        model("", "v1", "Pod").as_deref(),
        Some("io.k8s.api.core.v1.Pod")
    );
    assert_eq!(
        model("apps", "v1", "Deployment").as_deref(),
        Some("io.k8s.api.apps.v1.Deployment")
    );
    assert_eq!(
        model("", "v1", "ConfigMapList").as_deref(),
        Some("io.k8s.api.core.v1.ConfigMapList")
    );
}

/// The checks of kube-openapi's `Definitions.ParseSchema`, which fails the
/// whole document (and kubectl's validation) on any violation.
fn check_parseable(s: &Schema, path: &str, models: &BTreeSet<&str>, refs: &mut usize) {
    let types = s
        .r#type
        .as_ref()
        .map(|t| t.value.as_slice())
        .unwrap_or_default();
    let props = s
        .properties
        .as_ref()
        .map(|p| p.additional_properties.as_slice());
    if !s.xref.is_empty() {
        *refs += 1;
        assert!(
            props.unwrap_or_default().is_empty(),
            "{path}: ref with properties"
        );
        assert!(types.is_empty(), "{path}: ref with a type");
        let target = s.xref.strip_prefix("#/definitions/");
        assert!(
            target.is_some_and(|t| models.contains(t)),
            "{path}: dangling {}",
            s.xref
        );
        return;
    }
    match types {
        [] => {}
        [t] if t == "array" => {
            let items = s
                .items
                .as_ref()
                .map(|i| i.schema.as_slice())
                .unwrap_or_default();
            assert_eq!(items.len(), 1, "{path}: array needs one item schema");
            check_parseable(&items[0], &format!("{path}[]"), models, refs);
        }
        [t] if t == "object" => {
            if props.is_none() {
                if let Some(sub) = s
                    .additional_properties
                    .as_ref()
                    .and_then(|a| a.schema.as_ref())
                {
                    check_parseable(sub, &format!("{path}{{}}"), models, refs);
                }
            }
        }
        [t] => assert!(
            ["string", "number", "integer", "boolean"].contains(&t.as_str()),
            "{path}: type {t}"
        ),
        _ => panic!("{path}: several types {types:?}"),
    }
    for p in props.unwrap_or_default() {
        let sub = p.value.as_ref().expect("property schema");
        check_parseable(sub, &format!("{path}.{}", p.name), models, refs);
    }
}

#[test]
fn every_definition_parses_as_kube_openapi_would() {
    let d = decoded();
    let defs = &d
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties;
    let models: BTreeSet<&str> = defs.iter().map(|n| n.name.as_str()).collect();
    let mut refs = 0;
    for n in defs {
        check_parseable(
            n.value.as_ref().expect("schema"),
            &n.name,
            &models,
            &mut refs,
        );
    }
    // Every `$ref` of the JSON definitions is encoded as `_ref`.
    let want = json_doc();
    let want_refs = serde_json::to_string(&want["definitions"])
        .expect("json")
        .matches("\"$ref\"")
        .count();
    assert_eq!(refs, want_refs);
    assert!(refs > 100);
}

#[test]
fn patch_operations_carry_gvk_and_field_validation() {
    let d = decoded();
    let paths = &d.paths.as_ref().expect("paths").path;
    let item = paths
        .iter()
        .find(|p| p.name == "/api/v1/namespaces/{namespace}/configmaps/{name}")
        .and_then(|p| p.value.as_ref())
        .expect("configmap item path");
    let patch = item.patch.as_ref().expect("PATCH");
    let gvk = patch
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind");
    let gvk: Value =
        serde_yaml::from_str(&gvk.and_then(|e| e.value.as_ref()).expect("gvk").yaml).expect("yaml");
    assert_eq!(
        gvk,
        json!({ "group": "", "kind": "ConfigMap", "version": "v1" })
    );
    let query: Vec<&str> = patch
        .parameters
        .iter()
        .filter_map(|p| {
            p.parameter
                .as_ref()?
                .non_body_parameter
                .as_ref()?
                .query
                .as_ref()
        })
        .map(|q| q.name.as_str())
        .collect();
    assert!(query.contains(&"fieldValidation"), "{query:?}");
    let path_params: Vec<&str> = item
        .parameters
        .iter()
        .filter_map(|p| {
            p.parameter
                .as_ref()?
                .non_body_parameter
                .as_ref()?
                .path
                .as_ref()
        })
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(path_params, ["name", "namespace"]);
}

#[test]
fn writer_wire_format() {
    let mut m = Msg::default();
    m.varint(300);
    m.int64(1, -1);
    m.double(2, 1.5);
    m.string(3, "");
    m.bool_always(4, false);
    let mut want = vec![0xac, 0x02, 0x08];
    want.extend_from_slice(&[0xff; 9]);
    want.push(0x01);
    want.push(0x11);
    want.extend_from_slice(&1.5f64.to_le_bytes());
    want.extend_from_slice(&[0x20, 0x00]);
    assert_eq!(m.0, want);
}

#[test]
fn additional_properties_false_is_kept() {
    let bytes = schema(&json!({ "type": "object", "additionalProperties": false })).0;
    let s = Schema::decode(bytes.as_slice()).expect("schema");
    assert_eq!(s.additional_properties.and_then(|a| a.boolean), Some(false));
}

#[test]
fn accept_negotiation() {
    let pb = V2_PROTOBUF_CONTENT_TYPE;
    assert!(v2_wants_protobuf(Some(pb)));
    assert!(v2_wants_protobuf(Some(&format!("{pb}, application/json"))));
    assert!(v2_wants_protobuf(Some(&format!(
        "text/html, {pb};q=0.9, */*;q=0.1"
    ))));
    assert!(v2_wants_protobuf(Some(V2_PROTOBUF_RESPONSE_CONTENT_TYPE)));
    assert!(!v2_wants_protobuf(None));
    assert!(!v2_wants_protobuf(Some("application/json")));
    assert!(!v2_wants_protobuf(Some(&format!("application/json, {pb}"))));
    assert!(!v2_wants_protobuf(Some(&format!(
        "{pb};q=0, application/json"
    ))));
    assert!(!v2_wants_protobuf(Some("*/*")));
    assert!(!v2_wants_protobuf(Some(
        crate::openapi::V3_PROTOBUF_CONTENT_TYPE
    )));
}
