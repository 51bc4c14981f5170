//! Service, Endpoints and EndpointSlice validation (upstream's
//! `ValidateService`, `ValidateEndpoints`, discovery's
//! `ValidateEndpointSlice`), with the Service update rules for clusterIPs.

use std::collections::HashSet;

use serde_json::Value;

use super::container::{dns_label, protocol};
use super::meta::{
    validate_labels, validate_object_meta, validate_object_meta_update, validate_qualified_name,
};
use super::probes::port_num_or_name;
use super::util::*;
use crate::field::Path;
use crate::names::*;

const NODE_PORT_RANGE: (i64, i64) = (30000, 32767);

/// The clusterIPs the strategy would hold: `clusterIPs`, or `[clusterIP]`.
fn cluster_ips(spec: &Value) -> Vec<String> {
    let ips: Vec<String> = get(spec, "clusterIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if ips.is_empty() {
        let ip = str_at(spec, &["clusterIP"]);
        if !ip.is_empty() {
            return vec![ip.to_string()];
        }
    }
    ips
}

pub(crate) fn validate_service(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, name_is_dns1035_label);
    service_spec(e, obj);
}

pub(crate) fn validate_service_update(e: &mut Errs, new: &Value, old: &Value) {
    validate_object_meta_update(e, new, old);
    let (ns, os) = (
        get(new, "spec").unwrap_or(&Value::Null),
        get(old, "spec").unwrap_or(&Value::Null),
    );
    let external = |s: &Value| str_at(s, &["type"]) == "ExternalName";
    if !external(ns) && !external(os) {
        let old_ips = cluster_ips(os);
        let mut new_ips = cluster_ips(ns);
        if new_ips.is_empty() {
            // The strategy keeps the allocated IPs when the update omits them.
            new_ips = old_ips.clone();
        }
        let p = Path::new("spec").child("clusterIPs");
        let rendered = go_string_slice(Some(&Value::from(new_ips.clone())));
        if old_ips.len() == new_ips.len() {
            for (i, ip) in old_ips.iter().enumerate() {
                if *ip != new_ips[i] {
                    e.push(invalid_raw(
                        &p.index(i),
                        &rendered,
                        "may not change once set",
                    ));
                }
            }
        } else if !old_ips.is_empty() && !new_ips.is_empty() && old_ips[0] != new_ips[0] {
            e.push(invalid_raw(
                &p.index(0),
                &rendered,
                "may not change once set",
            ));
        }
    }
    service_spec(e, new);
}

fn service_spec(e: &mut Errs, obj: &Value) {
    let sp = Path::new("spec");
    let spec = get(obj, "spec").unwrap_or(&Value::Null);
    let ips = cluster_ips(spec);
    let headless = ips.first().is_some_and(|ip| ip == "None");
    let svc_type = string(e, spec, &sp, "type");
    let ports = objects(e, spec, &sp, "ports");
    if ports.is_empty() && !headless && svc_type != "ExternalName" {
        e.push(required(&sp.child("ports"), ""));
    }
    match svc_type {
        "LoadBalancer" | "NodePort" if headless => {
            e.push(invalid(
                &sp.child("clusterIPs").index(0),
                "None",
                format!("may not be set to 'None' for {svc_type} services"),
            ));
        }
        "ExternalName" => {
            if !ips.is_empty() {
                e.push(forbidden(
                    &sp.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !array(e, spec, &sp, "ipFamilies").is_empty() {
                e.push(forbidden(
                    &sp.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if get(spec, "ipFamilyPolicy").is_some() {
                e.push(forbidden(
                    &sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let name = string(e, spec, &sp, "externalName");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                e.push(required(&sp.child("externalName"), ""));
            } else {
                for m in is_dns1123_subdomain(cname) {
                    e.push(invalid(&sp.child("externalName"), cname, m));
                }
            }
        }
        _ => {}
    }
    let mut names = HashSet::new();
    for (i, port) in &ports {
        let pp = sp.child("ports").index(*i);
        let name = string(e, port, &pp, "name");
        if ports.len() > 1 && name.is_empty() {
            e.push(required(&pp.child("name"), ""));
        } else if !name.is_empty() {
            dns_label(e, name, &pp.child("name"));
            if !names.insert(name) {
                e.push(duplicate(&pp.child("name"), name));
            }
        }
        let num = int(e, port, &pp, "port").unwrap_or(0);
        for m in is_valid_port_num(num) {
            e.push(invalid(&pp.child("port"), num, m));
        }
        protocol(e, port, &pp);
        port_num_or_name(e, get(port, "targetPort"), &pp.child("targetPort"));
        if let Some(ap) = opt_string(e, port, &pp, "appProtocol") {
            validate_qualified_name(e, ap, &pp.child("appProtocol"));
        }
    }
    if get(spec, "selector").is_some() {
        let sel = string_map(e, spec, &sp, "selector");
        validate_labels(e, sel.as_deref(), &sp.child("selector"));
    }
    let affinity = string(e, spec, &sp, "sessionAffinity");
    match affinity {
        "" => e.push(required(&sp.child("sessionAffinity"), "")),
        "ClientIP" => {
            const DETAIL: &str = "when session affinity type is ClientIP";
            let cp = sp.child("sessionAffinityConfig");
            let t = at(
                spec,
                &["sessionAffinityConfig", "clientIP", "timeoutSeconds"],
            )
            .and_then(Value::as_i64);
            match t {
                _ if get(spec, "sessionAffinityConfig").is_none() => e.push(required(&cp, DETAIL)),
                _ if at(spec, &["sessionAffinityConfig", "clientIP"]).is_none() => {
                    e.push(required(&cp.child("clientIP"), DETAIL))
                }
                None => e.push(required(
                    &cp.child("clientIP").child("timeoutSeconds"),
                    DETAIL,
                )),
                Some(t) if !(1..=86400).contains(&t) => e.push(invalid(
                    &sp.child("sessionAffinityConfig")
                        .child("clientIP")
                        .child("timeoutSeconds"),
                    t,
                    "must be greater than 0 and less than 86400",
                )),
                Some(_) => {}
            }
        }
        "None" => {
            if get(spec, "sessionAffinityConfig").is_some() {
                e.push(forbidden(
                    &sp.child("sessionAffinityConfig"),
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => e.push(not_supported(
            &sp.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    if svc_type != "ExternalName" {
        cluster_ip_fields(e, spec, &sp, &ips);
    }
    for (i, ip) in strings(e, spec, &sp, "externalIPs").into_iter().enumerate() {
        let ipp = sp.child("externalIPs").index(i);
        match parse_ip_sloppy(ip) {
            None => e.push(invalid(&ipp, ip, IP_ERR)),
            Some(addr) => non_special_ip(e, ip, addr, &ipp),
        }
    }
    match svc_type {
        "" => e.push(required(&sp.child("type"), "")),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => e.push(not_supported(
            &sp.child("type"),
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    let mut node_ports = HashSet::new();
    let mut seen = HashSet::new();
    for (i, port) in &ports {
        let pp = sp.child("ports").index(*i);
        let np = get(port, "nodePort").and_then(Value::as_i64).unwrap_or(0);
        let proto = str_at(port, &["protocol"]);
        if np != 0 {
            if svc_type == "ClusterIP" {
                e.push(forbidden(
                    &pp.child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if !(NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1).contains(&np) {
                e.push(invalid(
                    &pp.child("nodePort"),
                    np,
                    format!("provided port is not in the valid range. The range of valid ports is {}-{}", NODE_PORT_RANGE.0, NODE_PORT_RANGE.1),
                ));
            }
            if !node_ports.insert((proto, np)) {
                e.push(duplicate(&pp.child("nodePort"), np));
            }
        }
        let num = get(port, "port").and_then(Value::as_i64).unwrap_or(0);
        if !seen.insert((proto, num)) {
            let rendered = format!("core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{num}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}", go_quote(proto));
            e.push(duplicate_raw(&pp, &rendered, ""));
        }
    }
    let ranges = strings(e, spec, &sp, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let fp = sp.child("LoadBalancerSourceRanges");
        if svc_type != "LoadBalancer" {
            e.push(forbidden(
                &fp,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.trim();
            if parse_cidr_sloppy(r).is_none() {
                e.push(invalid(&fp.index(i), r, CIDR_ERR));
            }
        }
    }
    if get(spec, "allocateLoadBalancerNodePorts").is_some() && svc_type != "LoadBalancer" {
        e.push(forbidden(
            &sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if svc_type == "LoadBalancer" && get(spec, "allocateLoadBalancerNodePorts").is_none() {
        e.push(required(&Path::new("allocateLoadBalancerNodePorts"), ""));
    }
    traffic_policies(e, spec, &sp, svc_type);
}

fn cluster_ip_fields(e: &mut Errs, spec: &Value, sp: &Path, ips: &[String]) {
    let p = sp.child("clusterIPs");
    let fp = sp.child("ipFamilies");
    let mut seen = HashSet::new();
    for (i, fam) in strings(e, spec, sp, "ipFamilies").into_iter().enumerate() {
        if fam != "IPv4" && fam != "IPv6" {
            e.push(not_supported(&fp.index(i), fam, &["IPv4", "IPv6"]));
        }
        if !seen.insert(fam) {
            e.push(duplicate(&fp.index(i), fam));
        }
    }
    if let Some(pol) = opt_string(e, spec, sp, "ipFamilyPolicy") {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&pol) {
            e.push(not_supported(&sp.child("ipFamilyPolicy"), pol, POLICIES));
        }
    }
    let rendered = go_string_slice(Some(&Value::from(ips.to_vec())));
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                e.push(invalid_raw(
                    &p,
                    &rendered,
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if parse_ip_sloppy(ip).is_none() {
            e.push(invalid(&p.index(i), ip.as_str(), IP_ERR));
        }
    }
    if ips.len() > 2 {
        e.push(invalid_raw(&p, &rendered, "may only hold up to 2 values"));
    }
}

fn traffic_policies(e: &mut Errs, spec: &Value, sp: &Path, svc_type: &str) {
    let externally_accessible = svc_type == "LoadBalancer"
        || svc_type == "NodePort"
        || (svc_type == "ClusterIP"
            && get(spec, "externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()));
    let etp = string(e, spec, sp, "externalTrafficPolicy");
    if !externally_accessible {
        if !etp.is_empty() {
            e.push(invalid(
                &sp.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        e.push(required(&sp.child("externalTrafficPolicy"), ""));
    } else if etp != "Cluster" && etp != "Local" {
        e.push(not_supported(
            &sp.child("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    let hc = int(e, spec, sp, "healthCheckNodePort").unwrap_or(0);
    if svc_type == "LoadBalancer" && etp == "Local" {
        if hc != 0 {
            for m in is_valid_port_num(hc) {
                e.push(invalid(&sp.child("healthCheckNodePort"), hc, m));
            }
        }
    } else if hc != 0 {
        e.push(invalid(
            &sp.child("healthCheckNodePort"),
            hc,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    match opt_string(e, spec, sp, "internalTrafficPolicy") {
        None if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&svc_type) => {
            e.push(required(&sp.child("internalTrafficPolicy"), ""));
        }
        Some(p) if p != "Cluster" && p != "Local" => e.push(not_supported(
            &sp.child("internalTrafficPolicy"),
            p,
            &["Cluster", "Local"],
        )),
        _ => {}
    }
    if let Some(td) = opt_string(e, spec, sp, "trafficDistribution") {
        if td != "PreferClose" {
            e.push(not_supported(
                &sp.child("trafficDistribution"),
                td,
                &["PreferClose"],
            ));
        }
    }
}

/// Upstream's `ValidateNonSpecialIP`.
fn non_special_ip(e: &mut Errs, text: &str, ip: std::net::IpAddr, p: &Path) {
    use std::net::IpAddr;
    let (unspecified, loopback, link_local, ll_multicast) = match ip {
        IpAddr::V4(a) => (
            a.is_unspecified(),
            a.is_loopback(),
            a.is_link_local(),
            a.octets()[..3] == [224, 0, 0],
        ),
        IpAddr::V6(a) => {
            let s = a.segments();
            (
                a.is_unspecified(),
                a.is_loopback(),
                s[0] & 0xffc0 == 0xfe80,
                s[0] & 0xff0f == 0xff02,
            )
        }
    };
    if unspecified {
        e.push(invalid(p, text, format!("may not be unspecified ({text})")));
    }
    if loopback {
        e.push(invalid(
            p,
            text,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if link_local {
        e.push(invalid(
            p,
            text,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if ll_multicast {
        e.push(invalid(
            p,
            text,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

/// Endpoints: metadata on create (`with_meta`), then the subsets.
pub(crate) fn validate_endpoints(e: &mut Errs, obj: &Value, with_meta: bool) {
    if with_meta {
        validate_object_meta(e, obj, true, name_is_dns_subdomain);
    }
    let p = Path::new("subsets");
    for (i, ss) in objects(e, obj, &Path::new(""), "subsets") {
        let sp = p.index(i);
        let addrs = objects(e, ss, &sp, "addresses");
        let not_ready = objects(e, ss, &sp, "notReadyAddresses");
        if addrs.is_empty() && not_ready.is_empty() {
            e.push(required(
                &sp,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (key, list) in [("addresses", addrs), ("notReadyAddresses", not_ready)] {
            for (j, a) in list {
                let ap = sp.child(key).index(j);
                let ip = string(e, a, &ap, "ip");
                let hostname = string(e, a, &ap, "hostname");
                let parsed = parse_ip_sloppy(ip);
                if parsed.is_none() {
                    e.push(invalid(&ap.child("ip"), ip, IP_ERR));
                }
                if !hostname.is_empty() {
                    dns_label(e, hostname, &ap.child("hostname"));
                }
                if let Some(n) = opt_string(e, a, &ap, "nodeName") {
                    for m in name_is_dns_subdomain(n, false) {
                        e.push(invalid(&ap.child("nodeName"), n, m));
                    }
                }
                if let Some(addr) = parsed {
                    non_special_ip(e, ip, addr, &ap.child("ip"));
                }
            }
        }
        let ports = objects(e, ss, &sp, "ports");
        for (j, port) in &ports {
            let pp = sp.child("ports").index(*j);
            let name = string(e, port, &pp, "name");
            if ports.len() > 1 && name.is_empty() {
                e.push(required(&pp.child("name"), ""));
            } else if !name.is_empty() {
                dns_label(e, name, &pp.child("name"));
            }
            let num = int(e, port, &pp, "port").unwrap_or(0);
            for m in is_valid_port_num(num) {
                e.push(invalid(&pp.child("port"), num, m));
            }
            protocol(e, port, &pp);
            if let Some(ap) = opt_string(e, port, &pp, "appProtocol") {
                validate_qualified_name(e, ap, &pp.child("appProtocol"));
            }
        }
    }
}

pub(crate) fn validate_endpoint_slice(e: &mut Errs, obj: &Value) {
    validate_object_meta(e, obj, true, name_is_dns_subdomain);
    endpoint_slice_body(e, obj);
}

/// EndpointSlice fields other than metadata.
pub(crate) fn endpoint_slice_body(e: &mut Errs, obj: &Value) {
    let root = Path::new("");
    let addr_type = string(e, obj, &root, "addressType");
    match addr_type {
        "" => e.push(required(&Path::new("addressType"), "")),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => e.push(not_supported(
            &Path::new("addressType"),
            other,
            &["FQDN", "IPv4", "IPv6"],
        )),
    }
    let ep = Path::new("endpoints");
    let endpoints = objects(e, obj, &root, "endpoints");
    if endpoints.len() > 1000 {
        e.push(too_many(&ep, endpoints.len(), 1000));
    } else {
        for (i, end) in endpoints {
            let ip = ep.index(i);
            let ap = ip.child("addresses");
            let addrs = strings(e, end, &ip, "addresses");
            if addrs.is_empty() {
                e.push(required(&ap, "must contain at least 1 address"));
            } else if addrs.len() > 100 {
                e.push(too_many(&ap, addrs.len(), 100));
            }
            for (j, a) in addrs.iter().enumerate() {
                let parsed = parse_ip_sloppy(a);
                match addr_type {
                    "IPv4" => match parsed {
                        Some(x @ std::net::IpAddr::V4(_)) => non_special_ip(e, a, x, &ap.index(j)),
                        _ => e.push(invalid(&ap.index(j), *a, "must be a valid IPv4 address")),
                    },
                    "IPv6" => match parsed {
                        Some(x @ std::net::IpAddr::V6(_)) => non_special_ip(e, a, x, &ap.index(j)),
                        _ => e.push(invalid(&ap.index(j), *a, "must be a valid IPv6 address")),
                    },
                    "FQDN" => fqdn(e, a, &ap.index(j)),
                    _ => {}
                }
            }
            if let Some(n) = opt_string(e, end, &ip, "nodeName") {
                for m in name_is_dns_subdomain(n, false) {
                    e.push(invalid(&ip.child("nodeName"), n, m));
                }
            }
            if let Some(h) = opt_string(e, end, &ip, "hostname") {
                dns_label(e, h, &ip.child("hostname"));
            }
        }
    }
    let pp = Path::new("ports");
    let mut names = HashSet::new();
    for (i, port) in objects(e, obj, &root, "ports") {
        let ip = pp.index(i);
        let name = string(e, port, &ip, "name");
        if !name.is_empty() {
            dns_label(e, name, &ip.child("name"));
        }
        if !names.insert(name) {
            e.push(duplicate(&ip.child("name"), name));
        }
        protocol(e, port, &ip);
        if let Some(ap) = opt_string(e, port, &ip, "appProtocol") {
            validate_qualified_name(e, ap, &ip.child("appProtocol"));
        }
    }
}

/// Upstream's `IsFullyQualifiedDomainName`.
fn fqdn(e: &mut Errs, name: &str, p: &Path) {
    if name.is_empty() {
        e.push(required(p, ""));
        return;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let msgs = is_dns1123_subdomain(name);
    if !msgs.is_empty() {
        e.push(invalid(p, name, msgs.join(",")));
    } else if name.split('.').count() < 2 {
        e.push(invalid(
            p,
            name,
            "should be a domain with at least two segments separated by dots",
        ));
    }
}
