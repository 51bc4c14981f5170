//! Rendering of the operation model and the schema registry as one
//! Swagger 2.0 document (`/openapi/v2`) covering every group-version.

use serde_json::{json, Map, Value};

use super::model::{Method, Operation, PathItem, PATCH_TYPES};
use super::schemas::{registry, v2_definition, GVK_EXT, V2_REF_PREFIX};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{V2_REF_PREFIX}{name}") })
}

fn operation(op: &Operation) -> Value {
    let mut v = Map::new();
    v.insert("description".into(), Value::String(op.description.clone()));
    let consumes: Vec<&str> = if op.method == Method::Patch {
        PATCH_TYPES.to_vec()
    } else {
        vec!["*/*"]
    };
    v.insert("consumes".into(), json!(consumes));
    v.insert("produces".into(), json!(op.produces));
    v.insert("schemes".into(), json!(["https"]));
    v.insert("tags".into(), json!([op.tag]));
    v.insert("operationId".into(), Value::String(op.id.clone()));
    let mut params: Vec<Value> = Vec::new();
    if let Some(body) = &op.body {
        let mut p = json!({ "name": "body", "in": "body", "schema": schema_ref(&body.schema) });
        if body.required {
            p["required"] = Value::Bool(true);
        }
        params.push(p);
    }
    params.extend(op.params.iter().map(|p| p.to_v2()));
    if !params.is_empty() {
        v.insert("parameters".into(), Value::Array(params));
    }
    let mut responses = Map::new();
    for r in &op.responses {
        let mut resp = json!({ "description": r.description });
        if let Some(schema) = &r.schema {
            resp["schema"] = schema_ref(schema);
        }
        responses.insert(r.code.to_string(), resp);
    }
    v.insert("responses".into(), Value::Object(responses));
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

/// The whole Swagger 2.0 document of `items`, with every registry schema.
pub(crate) fn document(items: &[PathItem]) -> Value {
    let mut paths = Map::new();
    for item in items {
        let mut v = Map::new();
        for op in &item.ops {
            v.insert(op.method.key().into(), operation(op));
        }
        if !item.params.is_empty() {
            v.insert(
                "parameters".into(),
                item.params.iter().map(|p| p.to_v2()).collect(),
            );
        }
        paths.insert(item.path.clone(), Value::Object(v));
    }
    let definitions: Map<String, Value> = registry()
        .definitions
        .iter()
        .map(|(name, d)| (name.clone(), v2_definition(name, d)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "unversioned" },
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "type": "apiKey",
                "name": "authorization",
                "in": "header",
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}
