//! Container validation (upstream's `validateContainers`,
//! `validateInitContainers` and `validateContainerCommon`): names, image,
//! ports, env, volume mounts, pull policy, resources, probes and lifecycle.

use std::collections::HashSet;

use serde_json::Value;

use super::probes::{validate_lifecycle, validate_probe};
use super::resources::validate_resource_requirements;
use super::util::*;
use crate::field::Path;
use crate::names::*;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Validates `spec.containers` (regular containers) against the pod's
/// valid volume names.
pub(crate) fn validate_containers(
    e: &mut Errs,
    spec: &Value,
    sp: &Path,
    vols: &HashSet<String>,
    grace: Option<i64>,
) {
    let p = sp.child("containers");
    let containers = objects(e, spec, sp, "containers");
    if containers.is_empty() {
        e.push(required(&p, ""));
        return;
    }
    let mut names = HashSet::new();
    for (i, c) in &containers {
        let cp = p.index(*i);
        validate_container_common(e, c, &cp, vols);
        let name = str_at(c, &["name"]);
        if !names.insert(name) {
            e.push(duplicate(&cp.child("name"), name));
        }
        if let Some(l) = object(e, c, &cp, "lifecycle") {
            validate_lifecycle(e, l, &cp.child("lifecycle"), grace);
        }
        validate_probe(e, c, &cp, "livenessProbe", true);
        validate_probe(e, c, &cp, "readinessProbe", false);
        validate_probe(e, c, &cp, "startupProbe", true);
        if get(c, "restartPolicy").is_some() {
            e.push(forbidden(
                &cp.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    let mut host_ports = HashSet::new();
    accumulate_host_ports(e, &containers, &p, &mut host_ports);
}

/// Validates `spec.initContainers`; names must be unique across regular
/// and init containers.
pub(crate) fn validate_init_containers(
    e: &mut Errs,
    spec: &Value,
    sp: &Path,
    vols: &HashSet<String>,
    grace: Option<i64>,
) {
    let p = sp.child("initContainers");
    let mut names: HashSet<String> = get(spec, "containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|c| str_at(c, &["name"]).to_string()).collect())
        .unwrap_or_default();
    let inits = objects(e, spec, sp, "initContainers");
    for (i, c) in &inits {
        let cp = p.index(*i);
        validate_container_common(e, c, &cp, vols);
        let restartable = match opt_string(e, c, &cp, "restartPolicy") {
            None => false,
            Some("Always") => true,
            Some(other) => {
                e.push(not_supported(
                    &cp.child("restartPolicy"),
                    other,
                    &["Always"],
                ));
                false
            }
        };
        let name = str_at(c, &["name"]);
        if names.contains(name) {
            e.push(duplicate(&cp.child("name"), name));
        } else if !name.is_empty() {
            names.insert(name.to_string());
        }
        // Init containers run one by one: host ports conflict only within one.
        accumulate_host_ports(e, &[(*i, *c)], &p, &mut HashSet::new());
        if restartable {
            if let Some(l) = object(e, c, &cp, "lifecycle") {
                validate_lifecycle(e, l, &cp.child("lifecycle"), grace);
            }
            validate_probe(e, c, &cp, "livenessProbe", true);
            validate_probe(e, c, &cp, "readinessProbe", false);
            validate_probe(e, c, &cp, "startupProbe", true);
        } else {
            for f in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if get(c, f).is_some() {
                    e.push(forbidden(
                        &cp.child(f),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

fn accumulate_host_ports(
    e: &mut Errs,
    containers: &[(usize, &Value)],
    p: &Path,
    seen: &mut HashSet<String>,
) {
    for (i, c) in containers {
        for (j, port) in get(c, "ports")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let host_port = get(port, "hostPort").and_then(Value::as_i64).unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{}",
                str_at(port, &["protocol"]),
                str_at(port, &["hostIP"]),
                host_port
            );
            if !seen.insert(key.clone()) {
                e.push(duplicate(
                    &p.index(*i).child("ports").index(j).child("hostPort"),
                    key,
                ));
            }
        }
    }
}

fn validate_container_common(e: &mut Errs, c: &Value, cp: &Path, vols: &HashSet<String>) {
    let name = string(e, c, cp, "name");
    if name.is_empty() {
        e.push(required(&cp.child("name"), ""));
    } else {
        dns_label(e, name, &cp.child("name"));
    }
    if string(e, c, cp, "image").is_empty() {
        e.push(required(&cp.child("image"), ""));
    }
    match string(e, c, cp, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => e.push(required(&cp.child("terminationMessagePolicy"), "")),
        other => e.push(not_supported(
            &cp.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    validate_container_ports(e, c, cp);
    validate_env(e, c, cp);
    validate_env_from(e, c, cp);
    validate_volume_mounts(e, c, cp, vols);
    match string(e, c, cp, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => e.push(required(&cp.child("imagePullPolicy"), "")),
        other => e.push(not_supported(
            &cp.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    if let Some(r) = object(e, c, cp, "resources") {
        validate_resource_requirements(e, r, &cp.child("resources"));
    }
}

/// `ValidateDNS1123Label`: one Invalid error per message.
pub(crate) fn dns_label(e: &mut Errs, v: &str, p: &Path) {
    for msg in is_dns1123_label(v) {
        e.push(invalid(p, v, msg));
    }
}

fn validate_container_ports(e: &mut Errs, c: &Value, cp: &Path) {
    let p = cp.child("ports");
    let mut names = HashSet::new();
    for (i, port) in objects(e, c, cp, "ports") {
        let ip = p.index(i);
        let name = string(e, port, &ip, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    e.push(invalid(&ip.child("name"), name, m));
                }
            } else if !names.insert(name) {
                e.push(duplicate(&ip.child("name"), name));
            }
        }
        match int(e, port, &ip, "containerPort").unwrap_or(0) {
            0 => e.push(required(&ip.child("containerPort"), "")),
            n => {
                for m in is_valid_port_num(n) {
                    e.push(invalid(&ip.child("containerPort"), n, m));
                }
            }
        }
        let host_port = int(e, port, &ip, "hostPort").unwrap_or(0);
        if host_port != 0 {
            for m in is_valid_port_num(host_port) {
                e.push(invalid(&ip.child("hostPort"), host_port, m));
            }
        }
        protocol(e, port, &ip);
    }
}

/// `protocol` is Required and one of SCTP, TCP, UDP.
pub(crate) fn protocol(e: &mut Errs, v: &Value, p: &Path) {
    match string(e, v, p, "protocol") {
        "" => e.push(required(&p.child("protocol"), "")),
        x if PROTOCOLS.contains(&x) => {}
        x => e.push(not_supported(&p.child("protocol"), x, PROTOCOLS)),
    }
}

fn validate_env(e: &mut Errs, c: &Value, cp: &Path) {
    let p = cp.child("env");
    for (i, ev) in objects(e, c, cp, "env") {
        let ip = p.index(i);
        let name = string(e, ev, &ip, "name");
        if name.is_empty() {
            e.push(required(&ip.child("name"), ""));
        } else {
            for m in is_env_var_name(name) {
                e.push(invalid(&ip.child("name"), name, m));
            }
        }
        let Some(vf) = object(e, ev, &ip, "valueFrom") else {
            continue;
        };
        let vp = ip.child("valueFrom");
        let mut sources = 0;
        if let Some(f) = object(e, vf, &vp, "fieldRef") {
            sources += 1;
            validate_field_ref(e, f, &vp.child("fieldRef"), ENV_FIELD_PATHS);
        }
        if let Some(r) = object(e, vf, &vp, "resourceFieldRef") {
            sources += 1;
            let rp = vp.child("resourceFieldRef");
            match string(e, r, &rp, "resource") {
                "" => e.push(required(&rp.child("resource"), "")),
                x if RESOURCE_FIELD_REFS.contains(&x)
                    || x.starts_with("limits.hugepages-")
                    || x.starts_with("requests.hugepages-") => {}
                x => e.push(not_supported(&rp.child("resource"), x, RESOURCE_FIELD_REFS)),
            }
        }
        for key in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(r) = object(e, vf, &vp, key) {
                sources += 1;
                let rp = vp.child(key);
                let n = string(e, r, &rp, "name");
                for m in name_is_dns_subdomain(n, false) {
                    e.push(invalid(&rp.child("name"), n, m));
                }
                let k = string(e, r, &rp, "key");
                if k.is_empty() {
                    e.push(required(&rp.child("key"), ""));
                } else {
                    for m in is_config_map_key(k) {
                        e.push(invalid(&rp.child("key"), k, m));
                    }
                }
            }
        }
        if sources == 0 {
            e.push(invalid(&vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if !str_at(ev, &["value"]).is_empty() {
            e.push(invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            e.push(invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

const RESOURCE_FIELD_REFS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Field labels the downward API converts (upstream's
/// `ConvertDownwardAPIFieldLabel`).
const DOWNWARD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// `metadata.labels['key']` → `("metadata.labels", "key")`.
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (base, sub) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, sub))
}

/// Downward API `fieldRef` (upstream's `validateObjectFieldSelector`).
pub(crate) fn validate_field_ref(e: &mut Errs, f: &Value, p: &Path, expressions: &[&str]) {
    let api_version = string(e, f, p, "apiVersion");
    if api_version.is_empty() {
        e.push(required(&p.child("apiVersion"), ""));
        return;
    }
    let field_path = string(e, f, p, "fieldPath");
    if field_path.is_empty() {
        e.push(required(&p.child("fieldPath"), ""));
        return;
    }
    let fp = p.child("fieldPath");
    let conversion_error = if api_version != "v1" {
        Some(format!("unsupported pod version: {api_version}"))
    } else {
        match split_subscript(field_path) {
            Some(("metadata.annotations" | "metadata.labels", _)) => None,
            Some(_) => Some(format!(
                "field label does not support subscript: {field_path}"
            )),
            None if DOWNWARD_LABELS.contains(&field_path) || field_path == "spec.host" => None,
            None => Some(format!("field label not supported: {field_path}")),
        }
    };
    if let Some(err) = conversion_error {
        e.push(invalid(
            &fp,
            field_path,
            format!("error converting fieldPath: {err}"),
        ));
        return;
    }
    let path = if field_path == "spec.host" {
        "spec.nodeName"
    } else {
        field_path
    };
    match split_subscript(path) {
        Some(("metadata.annotations", key)) => {
            for m in is_qualified_name(&key.to_lowercase()) {
                e.push(invalid(p, key.to_lowercase(), m));
            }
        }
        Some((_, key)) => {
            for m in is_qualified_name(key) {
                e.push(invalid(p, key, m));
            }
        }
        None if !expressions.contains(&path) => e.push(not_supported(&fp, path, expressions)),
        None => {}
    }
}

fn validate_env_from(e: &mut Errs, c: &Value, cp: &Path) {
    let p = cp.child("envFrom");
    for (i, src) in objects(e, c, cp, "envFrom") {
        let ip = p.index(i);
        let prefix = string(e, src, &ip, "prefix");
        if !prefix.is_empty() {
            for m in is_env_var_name(prefix) {
                e.push(invalid(&ip.child("prefix"), prefix, m));
            }
        }
        let mut sources = 0;
        for key in ["configMapRef", "secretRef"] {
            if let Some(r) = object(e, src, &ip, key) {
                sources += 1;
                let rp = ip.child(key);
                let n = string(e, r, &rp, "name");
                if n.is_empty() {
                    e.push(required(&rp.child("name"), ""));
                } else {
                    for m in name_is_dns_subdomain(n, true) {
                        e.push(invalid(&rp.child("name"), n, m));
                    }
                }
            }
        }
        if sources == 0 {
            e.push(invalid(
                &p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            e.push(invalid(
                &p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn validate_volume_mounts(e: &mut Errs, c: &Value, cp: &Path, vols: &HashSet<String>) {
    let p = cp.child("volumeMounts");
    let mut mount_points = HashSet::new();
    for (i, m) in objects(e, c, cp, "volumeMounts") {
        let ip = p.index(i);
        let name = string(e, m, &ip, "name");
        if name.is_empty() {
            e.push(required(&ip.child("name"), ""));
        }
        if !vols.contains(name) {
            e.push(not_found(&ip.child("name"), name));
        }
        let mount_path = string(e, m, &ip, "mountPath");
        if mount_path.is_empty() {
            e.push(required(&ip.child("mountPath"), ""));
        }
        if !mount_points.insert(mount_path) {
            e.push(invalid(
                &ip.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        let sub_path = string(e, m, &ip, "subPath");
        if !sub_path.is_empty() {
            local_descending_path(e, sub_path, &p.child("subPath"));
        }
        let expr = string(e, m, &ip, "subPathExpr");
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                e.push(invalid(
                    &ip.child("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(e, expr, &p.child("subPathExpr"));
        }
        if let Some(mp) = opt_string(e, m, &ip, "mountPropagation") {
            if !["None", "HostToContainer", "Bidirectional"].contains(&mp) {
                e.push(not_supported(
                    &ip.child("mountPropagation"),
                    mp,
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            }
        }
    }
}

/// Upstream's `validateLocalDescendingPath`.
pub(crate) fn local_descending_path(e: &mut Errs, path: &str, p: &Path) {
    if path.starts_with('/') {
        e.push(invalid(p, path, "must be a relative path"));
    }
    if path.split(['/', '\\']).any(|seg| seg == "..") {
        e.push(invalid(p, path, "must not contain '..'"));
    }
}
