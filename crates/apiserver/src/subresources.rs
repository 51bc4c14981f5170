//! Subresources other than `status`: `scale` (autoscaling/v1 Scale over
//! spec.replicas), `pods/binding`, `pods/eviction` (see [`crate::eviction`]) and
//! `namespaces/finalize`.

use std::collections::HashMap;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::rest::write::{self, PatchType};
use crate::rest::{meta_str, name_of, FieldValidation, Rest, Target, WriteOptions};

fn success(code: StatusCode) -> (StatusCode, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()}),
    )
}

/// The Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let mut meta = json!({});
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.pointer(&format!("/metadata/{k}")) {
            meta[k] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

fn opts(q: &HashMap<String, String>) -> WriteOptions {
    WriteOptions {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        field_validation: FieldValidation::Ignore,
        field_manager: None,
    }
}

pub async fn handle(
    rest: &Rest,
    t: &Target,
    sub: &str,
    verb: &str,
    body: Option<(Bytes, String)>,
    q: &HashMap<String, String>,
) -> ApiResult<(StatusCode, Value)> {
    let parent = Target {
        subresource: None,
        ..t.clone()
    };
    let body_json = |b: &Option<(Bytes, String)>| -> ApiResult<Value> {
        let (bytes, ct) = b
            .as_ref()
            .ok_or_else(|| ApiError::bad_request("request body required"))?;
        crate::http::parse_json_body(bytes, ct)
    };
    match (sub, verb) {
        ("scale", "get") => {
            let obj = crate::rest::read::get(rest, &parent, None).await?;
            Ok((StatusCode::OK, scale_of(&obj)))
        }
        ("scale", "update") | ("scale", "patch") => {
            let current = crate::rest::read::get(rest, &parent, None).await?;
            let scale = scale_of(&current);
            let new_scale = if verb == "update" {
                body_json(&body)?
            } else {
                let (bytes, ct) = body
                    .as_ref()
                    .ok_or_else(|| ApiError::bad_request("request body required"))?;
                let pt = PatchType::from_content_type(ct)
                    .ok_or_else(|| ApiError::unsupported_media(ct))?;
                let patch: Value = serde_json::from_slice(bytes)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                match pt {
                    PatchType::Json => rkube_api::smp::json_patch(&scale, &patch)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?,
                    _ => rkube_api::smp::json_merge_patch(&scale, &patch),
                }
            };
            let replicas = new_scale
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0", t.name()),
                ));
            }
            let mut patch = json!({"spec": {"replicas": replicas}});
            if let Some(rv) = meta_str(&new_scale, "resourceVersion").filter(|s| !s.is_empty()) {
                if verb == "update" {
                    patch["metadata"] = json!({"resourceVersion": rv});
                }
            }
            let r = write::patch(rest, &parent, PatchType::Merge, patch, &opts(q)).await?;
            Ok((StatusCode::OK, scale_of(&r.obj)))
        }
        ("binding", "create") => {
            let b = body_json(&body)?;
            let node = b
                .pointer("/target/name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "Binding \"\" is invalid: target.name: Required value",
                    )
                })?;
            let pod_name = if name_of(&b).is_empty() {
                t.name().to_string()
            } else {
                name_of(&b).to_string()
            };
            let pod = Target {
                name: Some(pod_name.clone()),
                ..parent.clone()
            };
            // As upstream's GuaranteedUpdate: re-read and retry when the pod
            // changed between the read and the write (e.g. a status update).
            for _ in 0..8 {
                let current = crate::rest::read::get(rest, &pod, None).await?;
                if let Some(existing) = current
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    return Err(ApiError::conflict(
                        t.res,
                        &pod_name,
                        &format!("pod {pod_name} is already assigned to node \"{existing}\""),
                    ));
                }
                if current.pointer("/metadata/deletionTimestamp").is_some() {
                    return Err(ApiError::conflict(
                        t.res,
                        &pod_name,
                        "pod is being deleted, cannot be assigned to a host",
                    ));
                }
                let rv = meta_str(&current, "resourceVersion")
                    .unwrap_or("")
                    .to_string();
                let mut conditions: Vec<Value> = current
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                conditions
                    .retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": crate::rest::now_rfc3339()}));
                let mut updated = current.clone();
                updated["spec"]["nodeName"] = json!(node);
                updated["status"]["conditions"] = json!(conditions);
                updated["metadata"]["resourceVersion"] = json!(rv);
                // Binding writes spec and status together, bypassing the
                // main-resource rule that status is kept.
                if write::bind(rest, &pod, updated, &current).await?.is_some() {
                    return Ok(success(StatusCode::CREATED));
                }
                tracing::debug!(pod = pod_name, "pod changed during binding; retrying");
            }
            Err(ApiError::stale(t.res, &pod_name))
        }
        ("eviction", "create") => {
            let b = match &body {
                Some((bytes, _)) if !bytes.is_empty() => body_json(&body)?,
                _ => json!({}),
            };
            crate::eviction::evict(rest, &parent, &b, q).await
        }
        ("finalize", "update") => {
            let b = body_json(&body)?;
            let fins = b.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
            let r = write::patch(
                rest,
                &parent,
                PatchType::Merge,
                json!({"spec": {"finalizers": fins}}),
                &opts(q),
            )
            .await?;
            Ok((StatusCode::OK, r.obj))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}
