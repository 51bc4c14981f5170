//! Content negotiation of responses: plain JSON objects and lists,
//! server-side `Table`s (`as=Table;g=meta.k8s.io;v=v1`) and
//! `PartialObjectMetadata`(`List`), as requested by the Accept header.

use std::sync::Arc;

use bytes::Bytes;
use rkube_api::{table, ResourceInfo};
use serde_json::{json, Value};

use crate::cache::EventKind;
use crate::rest::read::ListResult;

/// What representation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table { include_object: IncludeObject },
    PartialMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// Reads the Accept header (first acceptable entry wins, as upstream).
pub fn output(accept: Option<&str>, include_object: Option<&str>) -> Output {
    let Some(accept) = accept else {
        return Output::Json;
    };
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if !params
            .first()
            .is_some_and(|m| m.starts_with("application/json") || *m == "*/*")
        {
            continue;
        }
        if has("as=Table") && has("g=meta.k8s.io") && (has("v=v1") || has("v=v1beta1")) {
            let io = match include_object {
                Some("None") => IncludeObject::None,
                Some("Object") => IncludeObject::Object,
                _ => IncludeObject::Metadata,
            };
            return Output::Table { include_object: io };
        }
        if (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList"))
            && has("g=meta.k8s.io")
        {
            return Output::PartialMetadata;
        }
        if !params.iter().any(|p| p.starts_with("as=")) {
            return Output::Json;
        }
    }
    Output::Json
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn row(res: &ResourceInfo, obj: &Value, io: IncludeObject, now: jiff::Timestamp) -> Value {
    let mut r = json!({"cells": table::row_cells(res, obj, now)});
    match io {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial(obj),
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// A Table of the given objects.
pub fn table_of(res: &ResourceInfo, objs: &[&Value], io: IncludeObject, list_meta: Value) -> Value {
    let now = jiff::Timestamp::now();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": table::column_definitions(res),
        "rows": objs.iter().map(|o| row(res, o, io, now)).collect::<Vec<_>>(),
    })
}

fn list_meta(r: &ListResult) -> Value {
    let mut meta = json!({"resourceVersion": r.resource_version.to_string()});
    if let Some(c) = &r.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = r.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    meta
}

/// A list serialized straight from the cached objects, without copying them.
#[derive(serde::Serialize)]
struct ListOut<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

/// Renders a list result as JSON bytes.
pub fn render_list(res: &ResourceInfo, r: &ListResult, out: Output) -> Vec<u8> {
    let v = match out {
        Output::Json => {
            let list = ListOut {
                kind: format!("{}List", res.kind),
                api_version: res.api_version(),
                metadata: list_meta(r),
                items: r.items.iter().map(|a| a.as_ref()).collect(),
            };
            return serde_json::to_vec(&list).unwrap_or_default();
        }
        Output::Table { include_object } => {
            let objs: Vec<&Value> = r.items.iter().map(|a| a.as_ref()).collect();
            table_of(res, &objs, include_object, list_meta(r))
        }
        Output::PartialMetadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta(r),
            "items": r.items.iter().map(|o| partial(o)).collect::<Vec<_>>(),
        }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Renders one object.
pub fn render_object(res: &ResourceInfo, obj: Value, out: Output) -> Value {
    match out {
        Output::Json => obj,
        Output::Table { include_object } => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            table_of(res, &[&obj], include_object, json!({"resourceVersion": rv}))
        }
        Output::PartialMetadata => partial(&obj),
    }
}

/// The per-event encoder of a watch, or None for plain JSON.
pub fn watch_encoder(
    res: &'static ResourceInfo,
    out: Output,
) -> Option<crate::rest::watch::Encoder> {
    match out {
        Output::Json => None,
        Output::Table { include_object } => Some(Arc::new(move |kind: EventKind, obj: &Value| {
            let t = table_of(
                res,
                &[obj],
                include_object,
                json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}),
            );
            line(kind, &t)
        })),
        Output::PartialMetadata => Some(Arc::new(move |kind: EventKind, obj: &Value| {
            line(kind, &partial(obj))
        })),
    }
}

fn line(kind: EventKind, obj: &Value) -> Bytes {
    let mut v =
        serde_json::to_vec(&json!({"type": kind.as_str(), "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            output(Some(kubectl_get), None),
            Output::Table {
                include_object: IncludeObject::Metadata
            }
        );
        assert_eq!(output(Some("application/json"), None), Output::Json);
        assert_eq!(output(None, None), Output::Json);
        assert_eq!(
            output(Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"), None),
            Output::PartialMetadata
        );
        assert_eq!(
            output(
                Some("application/json;as=Other;g=x;v=v1,application/json"),
                None
            ),
            Output::Json
        );
    }
}
