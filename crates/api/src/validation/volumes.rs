//! Pod volume validation (upstream's `ValidateVolumes` and
//! `validateVolumeSource`): names, exactly one source, and per-source
//! required fields.

use std::collections::HashSet;

use serde_json::Value;

use super::container::{dns_label, local_descending_path, validate_field_ref};
use super::quantity::{Quantity, QUANTITY_ERR};
use super::util::*;
use crate::field::Path;

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
];

const FILE_MODE_ERR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Upstream's `ValidateVolumes`; returns the names of the valid volumes
/// (mounts may only refer to those).
pub(crate) fn validate_volumes(e: &mut Errs, spec: &Value, sp: &Path) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, vol) in objects(e, spec, sp, "volumes") {
        let vp = sp.child("volumes").index(i);
        let mut el = Vec::new();
        validate_volume_source(&mut el, vol, &vp);
        let name = string(&mut el, vol, &vp, "name");
        if name.is_empty() {
            el.push(required(&vp.child("name"), ""));
        } else {
            dns_label(&mut el, name, &vp.child("name"));
        }
        if names.contains(name) {
            el.push(duplicate(&vp.child("name"), name));
        }
        if el.is_empty() {
            names.insert(name.to_string());
        } else {
            e.extend(el);
        }
    }
    names
}

fn validate_volume_source(e: &mut Errs, vol: &Value, vp: &Path) {
    let present: Vec<&str> = VOLUME_SOURCES
        .iter()
        .copied()
        .filter(|k| get(vol, k).is_some())
        .collect();
    let Some((kind, rest)) = present.split_first() else {
        e.push(required(vp, "must specify a volume type"));
        return;
    };
    // The first source is validated; later ones are reported after it.
    validate_one_source(e, vol, vp, kind);
    for extra in rest {
        e.push(forbidden(
            &vp.child(extra),
            "may not specify more than 1 volume type",
        ));
    }
}

fn validate_one_source(e: &mut Errs, vol: &Value, vp: &Path, kind: &str) {
    let Some(src) = object(e, vol, vp, kind) else {
        return;
    };
    let p = vp.child(kind);
    match kind {
        "hostPath" => {
            let path = string(e, src, &p, "path");
            if path.is_empty() {
                e.push(required(&p.child("path"), ""));
                return;
            }
            if path.split('/').any(|s| s == "..") {
                e.push(invalid(&p.child("path"), path, "must not contain '..'"));
            }
            if let Some(t) = opt_string(e, src, &p, "type") {
                const TYPES: &[&str] = &[
                    "",
                    "BlockDevice",
                    "CharDevice",
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                ];
                if !TYPES.contains(&t) {
                    e.push(not_supported(&p.child("type"), t, TYPES));
                }
            }
        }
        "emptyDir" => {
            if let Some(v) = get(src, "sizeLimit") {
                match Quantity::from_json(v) {
                    None => e.push(invalid(&p.child("sizeLimit"), v.clone(), QUANTITY_ERR)),
                    Some(q) if q.is_negative() => e.push(forbidden(
                        &p.child("sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    )),
                    Some(_) => {}
                }
            }
        }
        "secret" | "configMap" => {
            let name_key = if kind == "secret" {
                "secretName"
            } else {
                "name"
            };
            if string(e, src, &p, name_key).is_empty() {
                e.push(required(&p.child(name_key), ""));
            }
            file_mode(e, src, &p, "defaultMode");
            key_to_paths(e, src, &p);
        }
        "persistentVolumeClaim" => require_str(e, src, &p, "claimName"),
        "nfs" => {
            if string(e, src, &p, "server").is_empty() {
                e.push(required(&p.child("server"), ""));
            }
            let path = string(e, src, &p, "path");
            if path.is_empty() {
                e.push(required(&p.child("path"), ""));
            }
            if !path.starts_with('/') {
                e.push(invalid(&p.child("path"), path, "must be an absolute path"));
            }
        }
        "downwardAPI" => {
            file_mode(e, src, &p, "defaultMode");
            for (i, item) in objects(e, src, &p, "items") {
                let ip = p.child("items").index(i);
                let path = string(e, item, &ip, "path");
                if path.is_empty() {
                    e.push(required(&ip.child("path"), ""));
                }
                local_non_reserved_path(e, path, &ip.child("path"));
                downward_item_source(e, item, &ip);
                file_mode(e, item, &ip, "mode");
            }
        }
        "projected" => {
            file_mode(e, src, &p, "defaultMode");
            for (i, s) in objects(e, src, &p, "sources") {
                let srcp = p.child("sources").index(i);
                for k in ["secret", "configMap"] {
                    if let Some(x) = object(e, s, &srcp, k) {
                        key_to_paths(e, x, &srcp.child(k));
                    }
                }
                if let Some(t) = object(e, s, &srcp, "serviceAccountToken") {
                    let tp = srcp.child("serviceAccountToken");
                    if string(e, t, &tp, "path").is_empty() {
                        e.push(required(&tp.child("path"), ""));
                    }
                    if let Some(secs) = int(e, t, &tp, "expirationSeconds") {
                        if secs < 600 {
                            e.push(invalid(
                                &tp.child("expirationSeconds"),
                                secs,
                                "may not specify a duration less than 10 minutes",
                            ));
                        } else if secs > 1 << 32 {
                            e.push(invalid(
                                &tp.child("expirationSeconds"),
                                secs,
                                "may not specify a duration larger than 2^32 seconds",
                            ));
                        }
                    }
                }
            }
        }
        "csi" => require_str(e, src, &p, "driver"),
        _ => {}
    }
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// A downward API volume item takes exactly one of fieldRef and
/// resourceFieldRef (upstream's `validateDownwardAPIVolumeFile`).
fn downward_item_source(e: &mut Errs, item: &Value, ip: &Path) {
    let field_ref = object(e, item, ip, "fieldRef");
    let resource_ref = object(e, item, ip, "resourceFieldRef");
    if let Some(f) = field_ref {
        validate_field_ref(e, f, &ip.child("fieldRef"), VOLUME_FIELD_PATHS);
        if resource_ref.is_some() {
            e.push(invalid(
                ip,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if let Some(r) = resource_ref {
        let rp = ip.child("resourceFieldRef");
        if string(e, r, &rp, "containerName").is_empty() {
            e.push(required(&rp.child("containerName"), ""));
        } else if string(e, r, &rp, "resource").is_empty() {
            e.push(required(&rp.child("resource"), ""));
        }
    } else {
        e.push(required(
            ip,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
}

fn file_mode(e: &mut Errs, v: &Value, p: &Path, key: &str) {
    if let Some(m) = int(e, v, p, key) {
        if !(0..=0o777).contains(&m) {
            e.push(invalid(&p.child(key), m, FILE_MODE_ERR));
        }
    }
}

fn key_to_paths(e: &mut Errs, src: &Value, p: &Path) {
    for (i, item) in objects(e, src, p, "items") {
        let ip = p.child("items").index(i);
        if string(e, item, &ip, "key").is_empty() {
            e.push(required(&ip.child("key"), ""));
        }
        let path = string(e, item, &ip, "path");
        if path.is_empty() {
            e.push(required(&ip.child("path"), ""));
        }
        local_non_reserved_path(e, path, &ip.child("path"));
        file_mode(e, item, &ip, "mode");
    }
}

fn local_non_reserved_path(e: &mut Errs, path: &str, p: &Path) {
    local_descending_path(e, path, p);
    if path.starts_with("..") && !path.starts_with("../") {
        e.push(invalid(p, path, "must not start with '..'"));
    }
}
