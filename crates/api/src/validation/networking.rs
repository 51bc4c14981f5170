//! networking.k8s.io/v1 validation: Ingress, IngressClass and NetworkPolicy.

use serde_json::Value;

use super::meta::{validate_label_selector, validate_object_meta};
use super::util::*;
use crate::field::Path;
use crate::names::*;

pub(crate) fn validate_ingress(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, name_is_dns_subdomain);
    ingress_spec(e, obj);
}

pub(crate) fn ingress_spec(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    let rules = objects(e, spec, &sp, "rules");
    let default_backend = object(e, spec, &sp, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        e.push(invalid_raw(
            &sp,
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        backend(e, b, &sp.child("defaultBackend"));
    }
    for (i, rule) in rules {
        let rp = sp.child("rules").index(i);
        let host = string(e, rule, &rp, "host");
        if !host.is_empty() {
            if parse_ip_sloppy(host).is_some() {
                e.push(invalid(
                    &rp.child("host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            let msgs = if host.contains('*') {
                is_wildcard_dns1123_subdomain(host)
            } else {
                is_dns1123_subdomain(host)
            };
            for m in msgs {
                e.push(invalid(&rp.child("host"), host, m));
            }
        }
        let Some(http) = object(e, rule, &rp, "http") else {
            continue;
        };
        let hp = rp.child("http");
        for (j, path) in objects(e, http, &hp, "paths") {
            http_path(e, path, &hp.child("paths").index(j));
        }
    }
    let tp = sp.child("tls");
    for (i, tls) in objects(e, spec, &sp, "tls") {
        let ip = tp.index(i);
        for (j, host) in strings(e, tls, &ip, "hosts").into_iter().enumerate() {
            let msgs = if host.contains('*') {
                is_wildcard_dns1123_subdomain(host)
            } else {
                is_dns1123_subdomain(host)
            };
            for m in msgs {
                e.push(invalid(&ip.child("hosts").index(j), host, m));
            }
        }
        let secret = string(e, tls, &ip, "secretName");
        if !secret.is_empty() {
            for m in name_is_dns_subdomain(secret, false) {
                e.push(invalid(&ip.child("secretName"), secret, m));
            }
        }
    }
    if let Some(c) = opt_string(e, spec, &sp, "ingressClassName") {
        for m in name_is_dns_subdomain(c, false) {
            e.push(invalid(&sp.child("ingressClassName"), c, m));
        }
    }
}

fn http_path(e: &mut Errs, path: &Value, p: &Path) {
    let Some(pt) = opt_string(e, path, p, "pathType") else {
        e.push(required(&p.child("pathType"), "pathType must be specified"));
        return;
    };
    let value = string(e, path, p, "path");
    match pt {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                e.push(invalid(&p.child("path"), value, "must be an absolute path"));
            }
            if !value.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if value.contains(seq) {
                        e.push(invalid(
                            &p.child("path"),
                            value,
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in ["/..", "/."] {
                    if value.ends_with(suffix) {
                        e.push(invalid(
                            &p.child("path"),
                            value,
                            format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                e.push(invalid(&p.child("path"), value, "must be an absolute path"));
            }
        }
        other => e.push(not_supported(
            &p.child("pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    let b = object(e, path, p, "backend").unwrap_or(&Value::Null);
    backend(e, b, &p.child("backend"));
}

fn backend(e: &mut Errs, b: &Value, p: &Path) {
    let resource = object(e, b, p, "resource");
    let service = object(e, b, p, "service");
    match (resource, service) {
        (Some(_), Some(_)) => e.push(invalid(
            p,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let rp = p.child("resource");
            for key in ["kind", "name"] {
                if string(e, r, &rp, key).is_empty() {
                    e.push(required(&rp.child(key), ""));
                }
            }
        }
        (None, Some(s)) => {
            let sp = p.child("service");
            let name = string(e, s, &sp, "name");
            if name.is_empty() {
                e.push(required(&sp.child("name"), ""));
            } else {
                for m in name_is_dns1035_label(name, false) {
                    e.push(invalid(&sp.child("name"), name, m));
                }
            }
            let port = get(s, "port").unwrap_or(&Value::Null);
            let pp = sp.child("port");
            let port_name = string(e, port, &pp, "name");
            let number = int(e, port, &pp, "number").unwrap_or(0);
            match (port_name.is_empty(), number == 0) {
                (false, false) => e.push(invalid(p, "", "cannot set both port name & port number")),
                (false, true) => {
                    for m in is_valid_port_name(port_name) {
                        e.push(invalid(&pp.child("name"), port_name, m));
                    }
                }
                (true, false) => {
                    for m in is_valid_port_num(number) {
                        e.push(invalid(&pp.child("number"), number, m));
                    }
                }
                (true, true) => e.push(required(p, "port name or number is required")),
            }
        }
        (None, None) => e.push(invalid(p, "", "resource or service backend is required")),
    }
}

pub(crate) fn validate_ingress_class(e: &mut Errs, obj: &Value, with_meta: bool) {
    if with_meta {
        validate_object_meta(e, obj, false, name_is_dns_subdomain);
    }
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    let cp = sp.child("controller");
    let controller = string(e, spec, &sp, "controller");
    if controller.len() > 250 {
        e.push(too_long(&cp, 250));
    }
    match controller.split_once('/') {
        _ if controller.is_empty() => e.push(required(&cp, "")),
        Some((host, path)) if !host.is_empty() && !path.is_empty() => {
            for m in is_dns1123_subdomain(host) {
                e.push(invalid(&cp, host, m));
            }
            let ok = path
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c));
            if !ok {
                e.push(invalid(
                    &cp,
                    path,
                    regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[]),
                ));
            }
        }
        _ => e.push(invalid(
            &cp,
            controller,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
    if let Some(params) = object(e, spec, &sp, "parameters") {
        let pp = sp.child("parameters");
        for key in ["kind", "name"] {
            if string(e, params, &pp, key).is_empty() {
                e.push(required(&pp.child(key), ""));
            }
        }
        match opt_string(e, params, &pp, "scope") {
            Some("Namespace") => {
                if string(e, params, &pp, "namespace").is_empty() {
                    e.push(required(
                        &pp.child("namespace"),
                        "`parameters.scope` is set to 'Namespace'",
                    ));
                }
            }
            Some("Cluster") => {
                if get(params, "namespace").is_some() {
                    e.push(forbidden(
                        &pp.child("namespace"),
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            Some(other) => e.push(not_supported(
                &pp.child("scope"),
                other,
                &["Cluster", "Namespace"],
            )),
            None => e.push(required(&pp.child("scope"), "")),
        }
    }
}

pub(crate) fn validate_network_policy(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, name_is_dns_subdomain);
    network_policy_spec(e, obj);
}

pub(crate) fn network_policy_spec(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    match object(e, spec, &sp, "podSelector") {
        Some(s) => validate_label_selector(e, Some(s), &sp.child("podSelector")),
        None => e.push(required(&sp.child("podSelector"), "")),
    }
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in objects(e, spec, &sp, dir) {
            let rp = sp.child(dir).index(i);
            let check_ports = |e: &mut Errs| {
                for (j, port) in objects(e, rule, &rp, "ports") {
                    policy_port(e, port, &rp.child("ports").index(j));
                }
            };
            if dir == "ingress" {
                check_ports(e);
            }
            for (j, peer) in objects(e, rule, &rp, peers) {
                policy_peer(e, peer, &rp.child(peers).index(j));
            }
            if dir == "egress" {
                check_ports(e);
            }
        }
    }
    let types = strings(e, spec, &sp, "policyTypes");
    if types.len() > 2 {
        e.push(invalid(
            &sp.child("policyTypes"),
            get(spec, "policyTypes").cloned().unwrap_or_default(),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, t) in types.iter().enumerate() {
        if *t != "Ingress" && *t != "Egress" {
            e.push(not_supported(
                &sp.child("policyTypes").index(i),
                *t,
                &["Ingress", "Egress"],
            ));
        }
    }
}

fn policy_port(e: &mut Errs, port: &Value, p: &Path) {
    if let Some(proto) = opt_string(e, port, p, "protocol") {
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            e.push(not_supported(
                &p.child("protocol"),
                proto,
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    let end_port = int(e, port, p, "endPort");
    match get(port, "port") {
        Some(Value::String(name)) => {
            if let Some(end) = end_port {
                e.push(invalid(
                    &p.child("endPort"),
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for m in is_valid_port_name(name) {
                e.push(invalid(&p.child("port"), name.as_str(), m));
            }
        }
        Some(v) => {
            let n = v.as_i64().unwrap_or(0);
            for m in is_valid_port_num(n) {
                e.push(invalid(&p.child("port"), n, m));
            }
            if let Some(end) = end_port {
                if end < n {
                    e.push(invalid(
                        &p.child("endPort"),
                        n,
                        "must be greater than or equal to `port`",
                    ));
                }
                for m in is_valid_port_num(end) {
                    e.push(invalid(&p.child("endPort"), end, m));
                }
            }
        }
        None => {
            if let Some(end) = end_port {
                e.push(invalid(
                    &p.child("endPort"),
                    end,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn policy_peer(e: &mut Errs, peer: &Value, p: &Path) {
    let mut count = 0;
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(s) = object(e, peer, p, key) {
            count += 1;
            validate_label_selector(e, Some(s), &p.child(key));
        }
    }
    let ip_block = object(e, peer, p, "ipBlock");
    if let Some(b) = ip_block {
        count += 1;
        let bp = p.child("ipBlock");
        let cidr = string(e, b, &bp, "cidr");
        let parsed = parse_cidr_sloppy(cidr);
        if cidr.is_empty() {
            e.push(required(&bp.child("cidr"), ""));
        } else if parsed.is_none() {
            e.push(invalid(&bp.child("cidr"), cidr, CIDR_ERR));
        }
        for (i, ex) in strings(e, b, &bp, "except").into_iter().enumerate() {
            let xp = bp.child("except").index(i);
            match (parse_cidr_sloppy(ex), parsed) {
                (None, _) => e.push(invalid(&xp, ex, CIDR_ERR)),
                (Some(inner), Some(outer)) if !cidr_strict_subset(inner, outer) => {
                    e.push(invalid(&xp, ex, "must be a strict subset of `cidr`"));
                }
                _ => {}
            }
        }
    }
    if count == 0 {
        e.push(required(p, "must specify a peer"));
    } else if count > 1 && ip_block.is_some() {
        e.push(forbidden(
            p,
            "may not specify both ipBlock and another peer",
        ));
    }
}

fn cidr_strict_subset(inner: (std::net::IpAddr, u8), outer: (std::net::IpAddr, u8)) -> bool {
    use std::net::IpAddr;
    let bits = |ip: IpAddr| -> (u128, u8) {
        match ip {
            IpAddr::V4(a) => (u32::from(a) as u128, 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    };
    let ((a, wa), (b, wb)) = (bits(inner.0), bits(outer.0));
    if wa != wb || inner.1 <= outer.1 {
        return false;
    }
    let shift = u32::from(wa - outer.1);
    let mask = |x: u128| if shift >= 128 { 0 } else { x >> shift };
    mask(a) == mask(b)
}
