//! Pod spec validation (upstream's `ValidatePodSpec`, `ValidateVolumes`,
//! `ValidateTolerations`, `ValidatePodTemplateSpec`) and Pod create.

use std::collections::HashSet;

use serde_json::Value;

use super::container::{self, validate_containers, validate_init_containers};
use super::meta::{
    validate_annotations, validate_label_name, validate_labels, validate_object_meta,
};
use super::resources::resource_quantity;
use super::util::*;
use super::volumes::validate_volumes;
use crate::field::Path;
use crate::names::*;

/// Pod create: metadata, spec, and no ephemeral containers.
pub(crate) fn validate_pod(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, name_is_dns_subdomain);
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    validate_pod_spec(e, spec, &sp);
    validate_pod_only(e, spec, &sp);
    if !array(e, spec, &sp, "ephemeralContainers").is_empty() {
        e.push(forbidden(
            &sp.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
}

/// Checks upstream applies to Pods but not to pod templates.
pub(crate) fn validate_pod_only(e: &mut Errs, spec: &Value, sp: &Path) {
    if str_at(spec, &["serviceAccountName"]).is_empty() {
        for (i, vol) in get(spec, "volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let sources = at(vol, &["projected", "sources"]).and_then(Value::as_array);
            for (j, src) in sources.into_iter().flatten().enumerate() {
                if get(src, "serviceAccountToken").is_some() {
                    let p = sp
                        .child("volumes")
                        .index(i)
                        .child("projected")
                        .child("sources")
                        .index(j);
                    e.push(forbidden(
                        &p.child("serviceAccountToken"),
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    for key in ["containers", "initContainers"] {
        for (i, c) in get(spec, key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let image = str_at(c, &["image"]);
            if image.trim() != image {
                e.push(invalid(
                    &sp.child(key).index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
}

/// Upstream's `ValidatePodTemplateSpec` for a template at `p`
/// (e.g. `spec.template`): note labels are reported at `p.labels`.
pub(crate) fn validate_pod_template_spec(e: &mut Errs, tmpl: &Value, p: &Path) {
    validate_template_metadata(e, tmpl, p);
    let sp = p.child("spec");
    let spec = get(tmpl, "spec").unwrap_or(&Value::Null);
    validate_pod_spec(e, spec, &sp);
    if !array(e, spec, &sp, "ephemeralContainers").is_empty() {
        e.push(forbidden(
            &sp.child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// Labels and annotations of a template, at `p.labels` and `p.annotations`.
pub(crate) fn validate_template_metadata(e: &mut Errs, tmpl: &Value, p: &Path) {
    let meta = get(tmpl, "metadata").unwrap_or(&Value::Null);
    let mp = p.child("metadata");
    let labels = string_map(e, meta, &mp, "labels");
    validate_labels(e, labels.as_deref(), &p.child("labels"));
    let annotations = string_map(e, meta, &mp, "annotations");
    validate_annotations(e, annotations.as_deref(), &p.child("annotations"));
}

/// Upstream's `ValidatePodSpec`.
pub(crate) fn validate_pod_spec(e: &mut Errs, spec: &Value, sp: &Path) {
    let grace = int(e, spec, sp, "terminationGracePeriodSeconds");
    if grace.is_none() {
        e.push(required(&sp.child("terminationGracePeriodSeconds"), ""));
    }
    let vols = validate_volumes(e, spec, sp);
    validate_containers(e, spec, sp, &vols, grace);
    validate_init_containers(e, spec, sp, &vols, grace);
    host_network_ports(e, spec, sp);
    match string(e, spec, sp, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => e.push(required(&sp.child("restartPolicy"), "")),
        x => e.push(not_supported(
            &sp.child("restartPolicy"),
            x,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns_policy = string(e, spec, sp, "dnsPolicy");
    match dns_policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => e.push(required(&sp.child("dnsPolicy"), "")),
        x => e.push(not_supported(
            &sp.child("dnsPolicy"),
            x,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    let node_selector = string_map(e, spec, sp, "nodeSelector");
    validate_labels(e, node_selector.as_deref(), &sp.child("nodeSelector"));
    validate_pod_security_context(e, spec, sp);
    validate_dns_config(e, spec, sp, dns_policy);
    for (i, g) in objects(e, spec, sp, "readinessGates") {
        let ct = string(e, g, &sp.child("readinessGates").index(i), "conditionType");
        validate_label_name(
            e,
            ct,
            &sp.child("readinessGates").index(i).child("conditionType"),
        );
    }
    validate_scheduling_gates(e, spec, sp);
    validate_topology_spread(e, spec, sp);
    for (key, name_fn) in [
        (
            "serviceAccountName",
            name_is_dns_subdomain as fn(&str, bool) -> Vec<String>,
        ),
        ("nodeName", name_is_dns_subdomain),
    ] {
        let v = string(e, spec, sp, key);
        if !v.is_empty() {
            for m in name_fn(v, false) {
                e.push(invalid(&sp.child(key), v, m));
            }
        }
    }
    if let Some(ads) = int(e, spec, sp, "activeDeadlineSeconds") {
        if !(1..=i32::MAX as i64).contains(&ads) {
            e.push(invalid(
                &sp.child("activeDeadlineSeconds"),
                ads,
                inclusive_range_error(1, i32::MAX as i64),
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = string(e, spec, sp, key);
        if !v.is_empty() {
            container::dns_label(e, v, &sp.child(key));
        }
    }
    validate_tolerations(e, spec, sp, "tolerations");
    for (i, h) in objects(e, spec, sp, "hostAliases") {
        let hp = sp.child("hostAliases").index(i);
        let ip = string(e, h, &hp, "ip");
        if parse_ip_sloppy(ip).is_none() {
            e.push(invalid(&hp.child("ip"), ip, IP_ERR));
        }
        for (j, name) in strings(e, h, &hp, "hostnames").into_iter().enumerate() {
            for m in is_dns1123_subdomain(name) {
                e.push(invalid(&hp.child("hostnames").index(j), name, m));
            }
        }
    }
    for key in ["priorityClassName", "runtimeClassName"] {
        let v = string(e, spec, sp, key);
        if !v.is_empty() || (key == "runtimeClassName" && get(spec, key).is_some()) {
            for m in name_is_dns_subdomain(v, false) {
                e.push(invalid(&sp.child(key), v, m));
            }
        }
    }
    if let Some(pp) = opt_string(e, spec, sp, "preemptionPolicy") {
        preemption_policy(e, pp, &sp.child("preemptionPolicy"));
    }
    for (name, q) in map(e, spec, sp, "overhead").into_iter().flatten() {
        resource_quantity(e, name, q, &sp.child("overhead").key(name));
    }
    if let Some(os) = object(e, spec, sp, "os") {
        let n = string(e, os, &sp.child("os"), "name");
        if n.is_empty() {
            e.push(required(&sp.child("os").child("name"), ""));
        } else if n != "linux" && n != "windows" {
            e.push(not_supported(
                &sp.child("os").child("name"),
                n,
                &["linux", "windows"],
            ));
        }
    }
}

fn validate_pod_security_context(e: &mut Errs, spec: &Value, sp: &Path) {
    let Some(sc) = object(e, spec, sp, "securityContext") else {
        return;
    };
    let p = sp.child("securityContext");
    for key in ["runAsUser", "runAsGroup", "fsGroup"] {
        if let Some(id) = int(e, sc, &p, key) {
            if !(0..=u32::MAX as i64).contains(&id) {
                e.push(invalid(
                    &p.child(key),
                    id,
                    inclusive_range_error(0, u32::MAX as i64),
                ));
            }
        }
    }
    for (i, g) in array(e, sc, &p, "supplementalGroups").iter().enumerate() {
        let id = g.as_i64().unwrap_or(-1);
        if !(0..=u32::MAX as i64).contains(&id) {
            e.push(invalid(
                &p.child("supplementalGroups").index(i),
                g.clone(),
                inclusive_range_error(0, u32::MAX as i64),
            ));
        }
    }
}

fn validate_dns_config(e: &mut Errs, spec: &Value, sp: &Path, dns_policy: &str) {
    let p = sp.child("dnsConfig");
    let cfg = object(e, spec, sp, "dnsConfig");
    if dns_policy == "None" {
        match cfg {
            None => {
                e.push(required(
                    &p,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return;
            }
            Some(c) if array(e, c, &p, "nameservers").is_empty() => {
                e.push(required(
                    &p.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            Some(_) => {}
        }
    }
    let Some(cfg) = cfg else { return };
    let ns = strings(e, cfg, &p, "nameservers");
    if ns.len() > 3 {
        e.push(invalid(
            &p.child("nameservers"),
            get(cfg, "nameservers").cloned().unwrap_or_default(),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        if parse_ip_sloppy(n).is_none() {
            e.push(invalid(&p.child("nameservers").index(i), *n, IP_ERR));
        }
    }
    let searches = strings(e, cfg, &p, "searches");
    if searches.len() > 32 {
        e.push(invalid(
            &p.child("searches"),
            get(cfg, "searches").cloned().unwrap_or_default(),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        e.push(invalid(
            &p.child("searches"),
            get(cfg, "searches").cloned().unwrap_or_default(),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    // RelaxedDNSSearchValidation (on by default): "." and underscores allowed.
    for (i, s) in searches.iter().enumerate() {
        if *s == "." {
            continue;
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        for m in is_dns1123_subdomain_with_underscore(s) {
            e.push(invalid(&p.child("searches").index(i), s, m));
        }
    }
    for (i, o) in objects(e, cfg, &p, "options") {
        if string(e, o, &p.child("options").index(i), "name").is_empty() {
            e.push(required(&p.child("options").index(i), "must not be empty"));
        }
    }
}

fn validate_scheduling_gates(e: &mut Errs, spec: &Value, sp: &Path) {
    let p = sp.child("schedulingGates");
    let mut seen = HashSet::new();
    for (i, g) in objects(e, spec, sp, "schedulingGates") {
        let name = string(e, g, &p.index(i), "name");
        validate_label_name(e, name, &p.index(i));
        if !seen.insert(name) {
            e.push(duplicate(&p.index(i), name));
        }
    }
}

fn validate_topology_spread(e: &mut Errs, spec: &Value, sp: &Path) {
    let p = sp.child("topologySpreadConstraints");
    let mut seen = HashSet::new();
    for (i, c) in objects(e, spec, sp, "topologySpreadConstraints") {
        let cp = p.index(i);
        let skew = int(e, c, &cp, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            e.push(invalid(
                &cp.child("maxSkew"),
                skew,
                "must be greater than zero",
            ));
        }
        let key = string(e, c, &cp, "topologyKey");
        if key.is_empty() {
            e.push(required(&cp.child("topologyKey"), "can not be empty"));
        }
        let when = string(e, c, &cp, "whenUnsatisfiable");
        if when != "DoNotSchedule" && when != "ScheduleAnyway" {
            e.push(not_supported(
                &cp.child("whenUnsatisfiable"),
                when,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if !seen.insert((key, when)) {
            e.push(duplicate(
                &cp.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{key}, {when}}}"),
            ));
        }
    }
}

/// Upstream's `ValidateTolerations` for the list at `v[key]`.
pub(crate) fn validate_tolerations(e: &mut Errs, v: &Value, vp: &Path, key: &str) {
    let p = vp.child(key);
    for (i, t) in objects(e, v, vp, key) {
        let ip = p.index(i);
        let tkey = string(e, t, &ip, "key");
        if !tkey.is_empty() {
            validate_label_name(e, tkey, &ip.child("key"));
        }
        let op = string(e, t, &ip, "operator");
        if tkey.is_empty() && op != "Exists" {
            e.push(invalid(&ip.child("operator"), op, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        let effect = string(e, t, &ip, "effect");
        if get(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            e.push(invalid(
                &ip.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = string(e, t, &ip, "value");
        match op {
            "" | "Equal" => {
                let msgs = is_label_value(value);
                if !msgs.is_empty() {
                    e.push(invalid(&ip.child("operator"), value, msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    e.push(invalid(
                        &ip.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => e.push(not_supported(
                &ip.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            validate_taint_effect(e, effect, true, &ip.child("effect"));
        }
    }
}

/// With hostNetwork, a container's hostPort must equal its containerPort
/// (0 is allowed in templates; Pods get it defaulted).
fn host_network_ports(e: &mut Errs, spec: &Value, sp: &Path) {
    if get(spec, "hostNetwork") != Some(&Value::Bool(true)) {
        return;
    }
    let cp = sp.child("containers");
    for (i, c) in get(spec, "containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, port) in get(c, "ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let hp = get(port, "hostPort").and_then(Value::as_i64).unwrap_or(0);
            let cport = get(port, "containerPort")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if hp != 0 && hp != cport {
                e.push(invalid(
                    &cp.index(i).child("ports").index(j).child("hostPort"),
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
}

/// Upstream's `ValidatePreemptionPolicy`.
pub(crate) fn preemption_policy(e: &mut Errs, pp: &str, p: &Path) {
    match pp {
        "PreemptLowerPriority" | "Never" => {}
        "" => e.push(required(p, "")),
        other => e.push(not_supported(p, other, &["PreemptLowerPriority", "Never"])),
    }
}

/// Upstream's `validateTaintEffect`.
pub(crate) fn validate_taint_effect(e: &mut Errs, effect: &str, allow_empty: bool, p: &Path) {
    if !allow_empty && effect.is_empty() {
        e.push(required(p, ""));
        return;
    }
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        e.push(not_supported(
            p,
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
}
