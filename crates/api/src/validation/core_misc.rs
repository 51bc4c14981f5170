//! core/v1 kinds other than Pod and Service: Namespace, ConfigMap, Secret,
//! ServiceAccount, Node, Event, LimitRange and ResourceQuota.

use std::collections::HashSet;

use base64::Engine;
use serde_json::Value;

use super::meta::{
    validate_finalizers, validate_label_name, validate_object_meta, validate_object_meta_update,
    validate_qualified_name,
};
use super::pod::validate_taint_effect;
use super::quantity::Quantity;
use super::resources::{
    container_resource_name, quota_resource_name, resource_name, resource_quantity,
};
use super::util::*;
use crate::field::Path;
use crate::names::*;

const MAX_SECRET_SIZE: usize = 1024 * 1024;

pub(crate) fn validate_namespace(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, false, name_is_dns_label);
    namespace_finalizers(e, obj);
}

fn namespace_finalizers(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    let fp = sp.child("finalizers");
    for f in strings(e, spec, &sp, "finalizers") {
        validate_finalizers(e, &[f], &fp);
        if !f.contains('/') && f != "kubernetes" {
            e.push(invalid(
                &fp,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// Namespace status and finalize updates.
pub(crate) fn validate_namespace_status_update(e: &mut Errs, new: &Value) {
    let phase = str_at(new, &["status", "phase"]);
    let p = Path::new("status").child("Phase");
    if at(new, &["metadata", "deletionTimestamp"]).is_none() {
        if phase != "Active" {
            e.push(invalid(
                &p,
                phase,
                "may only be 'Active' if `deletionTimestamp` is empty",
            ));
        }
    } else if phase != "Terminating" {
        e.push(invalid(
            &p,
            phase,
            "may only be 'Terminating' if `deletionTimestamp` is not empty",
        ));
    }
    namespace_finalizers(e, new);
}

/// ConfigMap data keys, binaryData keys and total size.
pub(crate) fn validate_config_map(e: &mut Errs, obj: &Value, with_meta: bool) {
    if with_meta {
        validate_object_meta(e, obj, true, name_is_dns_subdomain);
    }
    let root = Path::new("");
    let mut total = 0usize;
    let binary = map(e, obj, &root, "binaryData");
    for (k, v) in map(e, obj, &root, "data").into_iter().flatten() {
        let kp = Path::new("data").key(k);
        for m in is_config_map_key(k) {
            e.push(invalid(&kp, k.as_str(), m));
        }
        if binary.is_some_and(|b| b.contains_key(k)) {
            e.push(invalid(
                &kp,
                k.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        match v.as_str() {
            Some(s) => total += s.len(),
            None => e.push(invalid(&kp, v.clone(), "must be a string")),
        }
    }
    for (k, v) in binary.into_iter().flatten() {
        let kp = Path::new("binaryData").key(k);
        for m in is_config_map_key(k) {
            e.push(invalid(&kp, k.as_str(), m));
        }
        total += decoded_len(e, v, &kp);
    }
    if total > MAX_SECRET_SIZE {
        e.push(too_long(&root, MAX_SECRET_SIZE));
    }
}

/// Decodes base64 data values (already type-checked by the decoder).
fn decode(v: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str()?)
        .ok()
}

fn decoded_len(e: &mut Errs, v: &Value, p: &Path) -> usize {
    match decode(v) {
        Some(b) => b.len(),
        None => {
            e.push(invalid(
                p,
                "<secret contents redacted>",
                "must be a base64-encoded string",
            ));
            0
        }
    }
}

pub(crate) fn validate_config_map_update(e: &mut Errs, new: &Value, old: &Value, secret: bool) {
    validate_object_meta_update(e, new, old);
    if secret {
        immutable(e, get(new, "type"), get(old, "type"), &Path::new("type"));
    }
    if get(old, "immutable") == Some(&Value::Bool(true)) {
        if get(new, "immutable") != Some(&Value::Bool(true)) {
            e.push(forbidden(
                &Path::new("immutable"),
                "field is immutable when `immutable` is set",
            ));
        }
        let keys: &[&str] = if secret {
            &["data"]
        } else {
            &["data", "binaryData"]
        };
        for key in keys {
            if !same(get(new, key), get(old, key)) {
                e.push(forbidden(
                    &Path::new(key),
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    if secret {
        validate_secret(e, new, false);
    } else {
        validate_config_map(e, new, false);
    }
}

pub(crate) fn validate_secret(e: &mut Errs, obj: &Value, with_meta: bool) {
    if with_meta {
        validate_object_meta(e, obj, true, name_is_dns_subdomain);
    }
    let dp = Path::new("data");
    let data = map(e, obj, &Path::new(""), "data");
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        for m in is_config_map_key(k) {
            e.push(invalid(&dp.key(k), k.as_str(), m));
        }
        total += decoded_len(e, v, &dp.key(k));
    }
    if total > MAX_SECRET_SIZE {
        e.push(too_long(&dp, MAX_SECRET_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let sa_name = str_at(
        obj,
        &[
            "metadata",
            "annotations",
            "kubernetes.io/service-account.name",
        ],
    );
    let ssh_key_missing = data
        .and_then(|d| d.get("ssh-privatekey"))
        .and_then(decode)
        .is_none_or(|b| b.is_empty());
    match str_at(obj, &["type"]) {
        "kubernetes.io/service-account-token" if sa_name.is_empty() => {
            e.push(required(
                &Path::new("metadata")
                    .child("annotations")
                    .key("kubernetes.io/service-account.name"),
                "",
            ));
        }
        t @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if t == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.and_then(|d| d.get(key)) {
                None => e.push(required(&dp.key(key), "")),
                Some(v) => {
                    let bytes = decode(v).unwrap_or_default();
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(Value::Object(_)) => {}
                        Ok(_) => e.push(invalid(
                            &dp.key(key),
                            "<secret contents redacted>",
                            "json: cannot unmarshal into Go value of type map[string]interface {}",
                        )),
                        Err(err) => e.push(invalid(
                            &dp.key(key),
                            "<secret contents redacted>",
                            err.to_string(),
                        )),
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            e.push(required(&dp.key("username"), ""));
            e.push(required(&dp.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if ssh_key_missing => {
            e.push(required(&dp.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    e.push(required(&dp.key(key), ""));
                }
            }
        }
        _ => {}
    }
}

pub(crate) fn validate_node(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, false, name_is_dns_subdomain);
    node_common(e, obj);
    let cidrs = pod_cidrs(obj);
    let p = Path::new("spec").child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        if parse_cidr_sloppy(c).is_none() {
            e.push(invalid(&p.index(i), c.as_str(), CIDR_ERR));
        }
    }
    if cidrs.len() > 1 {
        let families: HashSet<bool> = cidrs
            .iter()
            .filter_map(|c| parse_cidr_sloppy(c))
            .map(|(ip, _)| ip.is_ipv4())
            .collect();
        if families.len() != 2 || cidrs.len() > 2 {
            e.push(invalid_raw(
                &p,
                &go_string_slice(Some(&Value::from(cidrs.clone()))),
                "may specify no more than one CIDR for each IP family",
            ));
        }
    }
}

/// `spec.podCIDRs`, or `[spec.podCIDR]` (the conversion fills one from the other).
fn pod_cidrs(obj: &Value) -> Vec<String> {
    let list: Vec<String> = at(obj, &["spec", "podCIDRs"])
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let single = str_at(obj, &["spec", "podCIDR"]);
    if list.is_empty() && !single.is_empty() {
        vec![single.to_string()]
    } else {
        list
    }
}

/// Taints (reported under `metadata.taints`, as upstream does) and status
/// quantities.
fn node_common(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    let tp = Path::new("metadata").child("taints");
    let mut seen = HashSet::new();
    for (i, t) in objects(e, spec, &sp, "taints") {
        let ip = tp.index(i);
        let key = string(e, t, &ip, "key");
        validate_label_name(e, key, &ip.child("key"));
        let value = string(e, t, &ip, "value");
        let msgs = is_label_value(value);
        if !msgs.is_empty() {
            e.push(invalid(&ip.child("value"), value, msgs.join(";")));
        }
        let effect = string(e, t, &ip, "effect");
        validate_taint_effect(e, effect, false, &ip.child("effect"));
        if !seen.insert((key, effect)) {
            let rendered = format!(
                "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:<nil>}}",
                go_quote(key),
                go_quote(value),
                go_quote(effect)
            );
            e.push(duplicate_raw(
                &ip,
                &rendered,
                "taints must be unique by key and effect pair",
            ));
        }
    }
    let status = get(obj, "status").unwrap_or(&Value::Null);
    for key in ["capacity", "allocatable"] {
        for (name, q) in map(e, status, &Path::new("status"), key)
            .into_iter()
            .flatten()
        {
            resource_quantity(e, name, q, &Path::new("status").child(key).child(name));
        }
    }
}

pub(crate) fn validate_node_update(e: &mut Errs, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    let (nc, oc) = (pod_cidrs(new), pod_cidrs(old));
    if !oc.is_empty() && nc != oc {
        e.push(forbidden(
            &Path::new("spec").child("podCIDRs"),
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    let old_provider = str_at(old, &["spec", "providerID"]);
    if !old_provider.is_empty() && old_provider != str_at(new, &["spec", "providerID"]) {
        e.push(forbidden(
            &Path::new("spec").child("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    node_common(e, new);
}

/// core/v1 Event (legacy validation, as upstream applies to v1 requests).
pub(crate) fn validate_event(e: &mut Errs, obj: &Value) {
    let ns = str_at(obj, &["metadata", "namespace"]);
    let involved_ns = str_at(obj, &["involvedObject", "namespace"]);
    let ip = Path::new("involvedObject").child("namespace");
    if get(obj, "eventTime").is_none() {
        let ok = if involved_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == involved_ns
        };
        if !ok {
            e.push(invalid(&ip, involved_ns, "does not match event.namespace"));
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            e.push(invalid(&ip, involved_ns, "does not match event.namespace"));
        }
        let rc = str_at(obj, &["reportingComponent"]);
        if rc.is_empty() {
            e.push(required(&Path::new("reportingComponent"), ""));
        }
        validate_qualified_name(e, rc, &Path::new("reportingComponent"));
        for (key, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
            let v = str_at(obj, &[key]);
            if v.is_empty() {
                e.push(required(&Path::new(key), ""));
            }
            if v.len() > limit {
                e.push(invalid(
                    &Path::new(key),
                    "",
                    format!("can have at most {limit} characters"),
                ));
            }
        }
        if str_at(obj, &["message"]).len() > 1024 {
            e.push(invalid(
                &Path::new("message"),
                "",
                "can have at most 1024 characters",
            ));
        }
    }
    for m in is_dns1123_subdomain(ns) {
        e.push(invalid(&Path::new("namespace"), ns, m));
    }
}

const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

pub(crate) fn validate_limit_range(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    let lp = sp.child("limits");
    let mut types = HashSet::new();
    for (i, limit) in objects(e, spec, &sp, "limits") {
        let ip = lp.index(i);
        let t = string(e, limit, &ip, "type");
        for m in is_qualified_name(t) {
            e.push(invalid(&ip.child("type"), t, m));
        }
        if !t.contains('/') && !LIMIT_TYPES.contains(&t) {
            e.push(invalid(
                &ip.child("type"),
                t,
                "must be a standard limit type or fully qualified",
            ));
        }
        if !types.insert(t) {
            e.push(duplicate(&ip.child("type"), t));
        }
        let q = |e: &mut Errs, key: &str| -> Vec<(String, Quantity)> {
            let mut out = Vec::new();
            for (name, v) in map(e, limit, &ip, key).into_iter().flatten() {
                if t == "Pod" || t == "Container" {
                    container_resource_name(e, name, &ip.child(key).key(name));
                } else {
                    resource_name(e, name, &ip.child(key).key(name));
                }
                if let Some(x) = resource_quantity(e, name, v, &ip.child(key).key(name)) {
                    out.push((name.clone(), x));
                }
            }
            out
        };
        let max = q(e, "max");
        let min = q(e, "min");
        let (default, default_request) = if t == "Pod" {
            for key in ["default", "defaultRequest"] {
                if map(e, limit, &ip, key).is_some_and(|m| !m.is_empty()) {
                    e.push(forbidden(
                        &ip.child(key),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
            (Vec::new(), Vec::new())
        } else {
            (q(e, "default"), q(e, "defaultRequest"))
        };
        if t == "PersistentVolumeClaim" && !min.iter().chain(&max).any(|(n, _)| n == "storage") {
            e.push(required(
                &ip.child("limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        let ratio = q(e, "maxLimitRequestRatio");
        fn find<'a>(l: &'a [(String, Quantity)], k: &str) -> Option<&'a Quantity> {
            l.iter().find(|(n, _)| n == k).map(|(_, q)| q)
        }
        let mut keys: Vec<&String> = Vec::new();
        for (k, _) in max
            .iter()
            .chain(&min)
            .chain(&default)
            .chain(&default_request)
        {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for k in keys {
            let (mn, mx, d, dr) = (
                find(&min, k),
                find(&max, k),
                find(&default, k),
                find(&default_request, k),
            );
            let c = |q: &Quantity| q.canonical();
            if let (Some(a), Some(b)) = (mn, mx) {
                if a.cmp(b).is_gt() {
                    e.push(invalid(
                        &ip.child("min").key(k),
                        c(a),
                        format!("min value {} is greater than max value {}", c(a), c(b)),
                    ));
                }
            }
            if let (Some(r), Some(a)) = (dr, mn) {
                if a.cmp(r).is_gt() {
                    e.push(invalid(
                        &ip.child("defaultRequest").key(k),
                        c(r),
                        format!(
                            "min value {} is greater than default request value {}",
                            c(a),
                            c(r)
                        ),
                    ));
                }
            }
            if let (Some(r), Some(b)) = (dr, mx) {
                if r.cmp(b).is_gt() {
                    e.push(invalid(
                        &ip.child("defaultRequest").key(k),
                        c(r),
                        format!(
                            "default request value {} is greater than max value {}",
                            c(r),
                            c(b)
                        ),
                    ));
                }
            }
            if let (Some(r), Some(dl)) = (dr, d) {
                if r.cmp(dl).is_gt() {
                    e.push(invalid(
                        &ip.child("defaultRequest").key(k),
                        c(r),
                        format!(
                            "default request value {} is greater than default limit value {}",
                            c(r),
                            c(dl)
                        ),
                    ));
                }
            }
            if let (Some(dl), Some(a)) = (d, mn) {
                if a.cmp(dl).is_gt() {
                    e.push(invalid(
                        &ip.child("default").key(k),
                        c(a),
                        format!("min value {} is greater than default value {}", c(a), c(dl)),
                    ));
                }
            }
            if let (Some(dl), Some(b)) = (d, mx) {
                if dl.cmp(b).is_gt() {
                    e.push(invalid(
                        &ip.child("default").key(k),
                        c(b),
                        format!("default value {} is greater than max value {}", c(dl), c(b)),
                    ));
                }
            }
        }
        for (k, r) in &ratio {
            if Quantity::parse("1").is_some_and(|one| r.cmp(&one).is_lt()) {
                e.push(invalid(
                    &ip.child("maxLimitRequestRatio").key(k),
                    r.canonical(),
                    format!("ratio {} is less than 1", r.canonical()),
                ));
            }
        }
    }
}

const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

pub(crate) fn validate_resource_quota(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    for (name, v) in map(e, spec, &sp, "hard").into_iter().flatten() {
        let rp = sp.child("hard").key(name);
        quota_resource_name(e, name, &rp);
        resource_quantity(e, name, v, &rp);
    }
    let scopes = strings(e, spec, &sp, "scopes");
    if scopes.iter().any(|s| !QUOTA_SCOPES.contains(s)) {
        e.push(invalid(
            &sp.child("scopes"),
            get(spec, "scopes").cloned().unwrap_or_default(),
            "unsupported scope",
        ));
    }
}
