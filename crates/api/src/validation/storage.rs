//! PersistentVolume, PersistentVolumeClaim and StorageClass validation.

use serde_json::Value;

use super::meta::{
    validate_label_selector, validate_object_meta, validate_object_meta_update,
    validate_qualified_name,
};
use super::quantity::{Quantity, QUANTITY_ERR};
use super::util::*;
use crate::field::Path;
use crate::names::*;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const PV_SOURCES: &[&str] = &[
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

fn access_modes(e: &mut Errs, spec: &Value, sp: &Path, required_detail: &str) {
    let modes = strings(e, spec, sp, "accessModes");
    if modes.is_empty() {
        e.push(required(&sp.child("accessModes"), required_detail));
    }
    for m in &modes {
        if !ACCESS_MODES.contains(m) {
            e.push(not_supported(&sp.child("accessModes"), *m, ACCESS_MODES));
        }
    }
    if modes.contains(&"ReadWriteOncePod") && modes.len() > 1 {
        e.push(forbidden(
            &sp.child("accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

fn volume_mode(e: &mut Errs, spec: &Value, sp: &Path) {
    if let Some(m) = opt_string(e, spec, sp, "volumeMode") {
        if m != "Block" && m != "Filesystem" {
            e.push(not_supported(
                &sp.child("volumeMode"),
                m,
                &["Block", "Filesystem"],
            ));
        }
    }
}

fn class_name(e: &mut Errs, spec: &Value, sp: &Path) {
    let c = string(e, spec, sp, "storageClassName");
    if !c.is_empty() {
        for m in name_is_dns_subdomain(c, false) {
            e.push(invalid(&sp.child("storageClassName"), c, m));
        }
    }
}

/// A positive quantity (upstream's `ValidatePositiveQuantityValue`).
fn positive_quantity(e: &mut Errs, v: &Value, p: &Path) {
    match Quantity::from_json(v) {
        None => e.push(invalid(p, v.clone(), QUANTITY_ERR)),
        Some(q) if q.is_negative() || q.is_zero() => {
            e.push(invalid(p, q.canonical(), "must be greater than zero"))
        }
        Some(_) => {}
    }
}

pub(crate) fn validate_pv(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, false, is_valid_path_segment_name);
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    access_modes(e, spec, &sp, "");
    let cap = map(e, spec, &sp, "capacity");
    let cap_len = cap.map_or(0, |c| c.len());
    if cap_len == 0 {
        e.push(required(&sp.child("capacity"), ""));
    }
    if !cap.is_some_and(|c| c.contains_key("storage")) || cap_len > 1 {
        let rendered = match cap {
            Some(c) => format!(
                "core.ResourceList{{{}}}",
                c.keys().map(|k| go_quote(k)).collect::<Vec<_>>().join(", ")
            ),
            None => "core.ResourceList(nil)".to_string(),
        };
        e.push(not_supported_raw(
            &sp.child("capacity"),
            &rendered,
            &["storage"],
        ));
    }
    for (name, q) in cap.into_iter().flatten() {
        positive_quantity(e, q, &sp.child("capacity").key(name));
    }
    class_name(e, spec, &sp);
    volume_mode(e, spec, &sp);
    if let Some(p) = opt_string(e, spec, &sp, "persistentVolumeReclaimPolicy") {
        if !["Delete", "Recycle", "Retain"].contains(&p) {
            e.push(not_supported(
                &sp.child("persistentVolumeReclaimPolicy"),
                p,
                &["Delete", "Recycle", "Retain"],
            ));
        }
    }
    let present: Vec<&str> = PV_SOURCES
        .iter()
        .copied()
        .filter(|k| get(spec, k).is_some())
        .collect();
    if present.is_empty() {
        e.push(required(&sp, "must specify a volume type"));
    }
    for extra in present.iter().skip(1) {
        e.push(forbidden(
            &sp.child(extra),
            "may not specify more than 1 volume type",
        ));
    }
    if let Some(kind) = present.first() {
        let p = sp.child(kind);
        let src = get(spec, kind).unwrap_or(&Value::Null);
        match *kind {
            "hostPath" | "local" => {
                let path = string(e, src, &p, "path");
                if path.is_empty() {
                    e.push(required(&p.child("path"), ""));
                } else if path.split('/').any(|s| s == "..") {
                    e.push(invalid(&p.child("path"), path, "must not contain '..'"));
                }
                if *kind == "local" && get(spec, "nodeAffinity").is_none() {
                    e.push(required(
                        &sp.child("nodeAffinity"),
                        "Local volume requires node affinity",
                    ));
                }
            }
            "nfs" => {
                if string(e, src, &p, "server").is_empty() {
                    e.push(required(&p.child("server"), ""));
                }
                let path = string(e, src, &p, "path");
                if path.is_empty() {
                    e.push(required(&p.child("path"), ""));
                } else if !path.starts_with('/') {
                    e.push(invalid(&p.child("path"), path, "must be an absolute path"));
                }
            }
            "csi" => {
                for key in ["driver", "volumeHandle"] {
                    if string(e, src, &p, key).is_empty() {
                        e.push(required(&p.child(key), ""));
                    }
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn validate_pv_update(e: &mut Errs, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    let (ns, os) = (
        get(new, "spec").unwrap_or(&Value::Null),
        get(old, "spec").unwrap_or(&Value::Null),
    );
    if PV_SOURCES.iter().any(|k| !same(get(ns, k), get(os, k))) {
        e.push(forbidden(
            &Path::new("spec").child("persistentvolumesource"),
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    immutable(
        e,
        get(ns, "volumeMode"),
        get(os, "volumeMode"),
        &Path::new("volumeMode"),
    );
    if get(os, "nodeAffinity").is_some() {
        immutable(
            e,
            get(ns, "nodeAffinity"),
            get(os, "nodeAffinity"),
            &Path::new("spec").child("nodeAffinity"),
        );
    }
    let mut e2 = Vec::new();
    validate_pv(&mut e2, new);
    e.extend(e2.into_iter().filter(|x| !x.field.starts_with("metadata.")));
}

pub(crate) fn validate_pvc(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, is_valid_path_segment_name);
    pvc_spec(e, obj);
}

fn pvc_spec(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    access_modes(e, spec, &sp, "at least 1 access mode is required");
    if let Some(sel) = object(e, spec, &sp, "selector") {
        validate_label_selector(e, Some(sel), &sp.child("selector"));
    }
    let rp = sp.child("resources").key("storage");
    match at(spec, &["resources", "requests", "storage"]) {
        None => e.push(required(&rp, "")),
        Some(v) => positive_quantity(e, v, &rp),
    }
    if get(spec, "storageClassName").is_some() {
        class_name(e, spec, &sp);
    }
    volume_mode(e, spec, &sp);
    for key in ["dataSource", "dataSourceRef"] {
        if let Some(ds) = object(e, spec, &sp, key) {
            let dp = sp.child(key);
            for f in ["name", "kind"] {
                if string(e, ds, &dp, f).is_empty() {
                    e.push(required(&dp.child(f), ""));
                }
            }
        }
    }
}

pub(crate) fn validate_pvc_update(e: &mut Errs, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    pvc_spec(e, new);
    let (ns, os) = (
        get(new, "spec").unwrap_or(&Value::Null),
        get(old, "spec").unwrap_or(&Value::Null),
    );
    let bound = str_at(old, &["status", "phase"]) == "Bound";
    let mut n = ns.as_object().cloned().unwrap_or_default();
    let mut o = os.as_object().cloned().unwrap_or_default();
    if str_at(os, &["volumeName"]).is_empty() {
        // The volume name may be set once.
        copy_member(&mut o, n.get("volumeName"), "volumeName");
    }
    if bound {
        // A bound claim may change its storage request and attributes class.
        let old_storage = at(os, &["resources", "requests", "storage"]).cloned();
        if let Some(Value::Object(req)) = n.get_mut("resources").and_then(|r| r.get_mut("requests"))
        {
            copy_member(req, old_storage.as_ref(), "storage");
        }
        if n.contains_key("volumeAttributesClassName") {
            copy_member(
                &mut n,
                os.get("volumeAttributesClassName"),
                "volumeAttributesClassName",
            );
        }
    }
    let (n, o) = (Value::Object(n), Value::Object(o));
    if !semantic_eq(&n, &o) {
        e.push(forbidden(
            &Path::new("spec"),
            format!(
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{}",
                spec_diff("core.PersistentVolumeClaimSpec", &o, &n)
            ),
        ));
    }
    let quantity = |v: Option<&Value>| v.and_then(Quantity::from_json);
    let new_size = quantity(at(ns, &["resources", "requests", "storage"]));
    let old_size = quantity(at(os, &["resources", "requests", "storage"]));
    let capacity = quantity(at(old, &["status", "capacity", "storage"]));
    if let (Some(n), Some(o)) = (new_size, old_size) {
        // RecoverVolumeExpansionFailure: shrinking is allowed down to
        // (but not including) the recorded capacity.
        if n.cmp(&o).is_lt() && capacity.is_some_and(|c| n.cmp(&c).is_le()) {
            e.push(forbidden(
                &Path::new("spec")
                    .child("resources")
                    .child("requests")
                    .child("storage"),
                "field can not be less than status.capacity",
            ));
        }
    }
    immutable(
        e,
        get(ns, "volumeMode"),
        get(os, "volumeMode"),
        &Path::new("volumeMode"),
    );
}

fn copy_member(dst: &mut serde_json::Map<String, Value>, src: Option<&Value>, key: &str) {
    match src {
        Some(v) => dst.insert(key.to_string(), v.clone()),
        None => dst.remove(key),
    };
}

pub(crate) fn validate_storage_class(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, false, name_is_dns_subdomain);
    let root = Path::new("");
    let provisioner = string(e, obj, &root, "provisioner");
    if provisioner.is_empty() {
        e.push(required(&Path::new("provisioner"), ""));
    } else {
        validate_qualified_name(e, &provisioner.to_lowercase(), &Path::new("provisioner"));
    }
    for (k, _) in map(e, obj, &root, "parameters").into_iter().flatten() {
        if k.is_empty() {
            e.push(invalid(
                &Path::new("parameters"),
                k.as_str(),
                "field can not be empty.",
            ));
        }
    }
    if let Some(p) = opt_string(e, obj, &root, "reclaimPolicy") {
        if !p.is_empty() && p != "Delete" && p != "Retain" {
            e.push(not_supported(
                &Path::new("reclaimPolicy"),
                p,
                &["Delete", "Retain"],
            ));
        }
    }
    match opt_string(e, obj, &root, "volumeBindingMode") {
        None => e.push(required(&Path::new("volumeBindingMode"), "")),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(m) => e.push(not_supported(
            &Path::new("volumeBindingMode"),
            m,
            &["Immediate", "WaitForFirstConsumer"],
        )),
    }
}

pub(crate) fn validate_storage_class_update(e: &mut Errs, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    if !same(get(new, "parameters"), get(old, "parameters")) {
        e.push(forbidden(
            &Path::new("parameters"),
            "updates to parameters are forbidden.",
        ));
    }
    if str_at(new, &["provisioner"]) != str_at(old, &["provisioner"]) {
        e.push(forbidden(
            &Path::new("provisioner"),
            "updates to provisioner are forbidden.",
        ));
    }
    if str_at(new, &["reclaimPolicy"]) != str_at(old, &["reclaimPolicy"]) {
        e.push(forbidden(
            &Path::new("reclaimPolicy"),
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    immutable(
        e,
        get(new, "volumeBindingMode"),
        get(old, "volumeBindingMode"),
        &Path::new("volumeBindingMode"),
    );
}
