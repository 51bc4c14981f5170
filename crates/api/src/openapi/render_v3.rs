//! Rendering of the operation model and the schema registry as OpenAPI
//! 3.0 documents (one per group-version, as `/openapi/v3/<gv>` serves them).

use serde_json::{json, Map, Value};

use super::model::{Body, Operation, PathItem, Response, PATCH_TYPES};
use super::schemas::{registry, to_v3, GVK_EXT, REF_PREFIX};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

fn request_body(body: &Body) -> Value {
    let mut content = Map::new();
    if body.patch {
        for t in PATCH_TYPES {
            content.insert((*t).into(), json!({ "schema": schema_ref(&body.schema) }));
        }
    } else {
        content.insert("*/*".into(), json!({ "schema": schema_ref(&body.schema) }));
    }
    let mut v = json!({ "content": content });
    if body.required {
        v["required"] = Value::Bool(true);
    }
    v
}

fn responses(list: &[Response], produces: &[&str]) -> Value {
    let mut out = Map::new();
    for r in list {
        let mut resp = json!({ "description": r.description });
        if let Some(schema) = &r.schema {
            let content: Map<String, Value> = produces
                .iter()
                .map(|t| ((*t).to_string(), json!({ "schema": schema_ref(schema) })))
                .collect();
            resp["content"] = Value::Object(content);
        }
        out.insert(r.code.to_string(), resp);
    }
    Value::Object(out)
}

/// One operation object.
pub(crate) fn operation(op: &Operation) -> Value {
    let mut v = Map::new();
    v.insert("tags".into(), json!([op.tag]));
    v.insert("description".into(), Value::String(op.description.clone()));
    v.insert("operationId".into(), Value::String(op.id.clone()));
    if !op.params.is_empty() {
        v.insert(
            "parameters".into(),
            op.params.iter().map(|p| p.to_v3()).collect(),
        );
    }
    if let Some(body) = &op.body {
        v.insert("requestBody".into(), request_body(body));
    }
    v.insert("responses".into(), responses(&op.responses, op.produces));
    if let Some(action) = op.action {
        v.insert("x-kubernetes-action".into(), Value::String(action.into()));
    }
    if let Some(gvk) = op.gvk {
        v.insert(
            GVK_EXT.into(),
            json!({ "group": gvk.group, "kind": gvk.kind, "version": gvk.version }),
        );
    }
    Value::Object(v)
}

/// The `paths` object of `items`.
pub(crate) fn paths(items: &[PathItem]) -> Map<String, Value> {
    let mut out = Map::new();
    for item in items {
        let mut v = Map::new();
        for op in &item.ops {
            v.insert(op.method.key().into(), operation(op));
        }
        if !item.params.is_empty() {
            v.insert(
                "parameters".into(),
                item.params.iter().map(|p| p.to_v3()).collect(),
            );
        }
        out.insert(item.path.clone(), Value::Object(v));
    }
    out
}

/// Definition names the operations of `items` refer to directly.
pub(crate) fn operation_roots(items: &[PathItem]) -> Vec<String> {
    let mut roots = Vec::new();
    for op in items.iter().flat_map(|i| &i.ops) {
        if let Some(b) = &op.body {
            roots.push(b.schema.clone());
        }
        roots.extend(op.responses.iter().filter_map(|r| r.schema.clone()));
    }
    roots
}

/// The whole document of `items`, with exactly the schemas they reach.
pub(crate) fn document(items: &[PathItem]) -> Value {
    let reg = registry();
    let schemas: Map<String, Value> = reg
        .closure(operation_roots(items))
        .into_iter()
        .filter_map(|name| reg.definitions.get(&name).map(|d| (name, to_v3(d))))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "unversioned" },
        "paths": paths(items),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                },
            },
        },
    })
}
