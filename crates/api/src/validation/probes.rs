//! Probes, lifecycle hooks and their handlers (upstream's `validateProbe`,
//! `validateLifecycle`, `validateHandler`), and `ValidatePortNumOrName`.

use serde_json::Value;

use super::util::*;
use crate::field::Path;
use crate::names::{is_valid_port_name, is_valid_port_num, regex_error};

pub(crate) fn validate_probe(
    e: &mut Errs,
    c: &Value,
    cp: &Path,
    key: &str,
    success_must_be_one: bool,
) {
    let Some(probe) = object(e, c, cp, key) else {
        return;
    };
    let p = cp.child(key);
    validate_handler(e, probe, &p, &["exec", "httpGet", "tcpSocket", "grpc"]);
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonneg_at(e, probe, &p, f);
    }
    if let Some(t) = int(e, probe, &p, "terminationGracePeriodSeconds") {
        if t <= 0 {
            e.push(invalid(
                &p.child("terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
    if key == "readinessProbe" {
        if let Some(t) = get(probe, "terminationGracePeriodSeconds") {
            e.push(invalid(
                &p.child("terminationGracePeriodSeconds"),
                t.clone(),
                "must not be set for readinessProbes",
            ));
        }
    }
    if success_must_be_one {
        if let Some(s) = int(e, probe, &p, "successThreshold") {
            if s != 1 {
                e.push(invalid(&p.child("successThreshold"), s, "must be 1"));
            }
        }
    }
}

pub(crate) fn validate_lifecycle(e: &mut Errs, l: &Value, p: &Path, grace: Option<i64>) {
    for hook in ["postStart", "preStop"] {
        let Some(h) = object(e, l, p, hook) else {
            continue;
        };
        let hp = p.child(hook);
        validate_handler(e, h, &hp, &["exec", "httpGet", "tcpSocket", "sleep"]);
        if let Some(s) = get(h, "sleep") {
            let secs = int(e, s, &hp.child("sleep"), "seconds").unwrap_or(0);
            if let Some(g) = grace {
                if secs < 0 || secs > g {
                    e.push(invalid(
                        &hp.child("sleep"),
                        secs,
                        format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                    ));
                }
            }
        }
    }
}

fn validate_handler(e: &mut Errs, h: &Value, p: &Path, kinds: &[&str]) {
    let mut count = 0;
    for kind in kinds {
        let Some(a) = object(e, h, p, kind) else {
            continue;
        };
        count += 1;
        let ap = p.child(kind);
        if count > 1 {
            e.push(forbidden(&ap, "may not specify more than 1 handler type"));
            continue;
        }
        match *kind {
            "exec" => {
                let missing = array(e, a, &ap, "command").is_empty();
                require_nonempty(e, missing, &ap.child("command"));
            }
            "httpGet" => {
                if string(e, a, &ap, "path").is_empty() {
                    e.push(required(&ap.child("path"), ""));
                }
                port_num_or_name(e, get(a, "port"), &ap.child("port"));
                let scheme = string(e, a, &ap, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    e.push(not_supported(
                        &ap.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
                for (i, hdr) in objects(e, a, &ap, "httpHeaders") {
                    let n = string(e, hdr, &ap.child("httpHeaders").index(i), "name");
                    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        e.push(invalid(
                            &ap.child("httpHeaders"),
                            n,
                            regex_error("a valid HTTP header must consist of alphanumeric characters or '-'", "[-A-Za-z0-9]+", &["X-Header-Name"]),
                        ));
                    }
                }
            }
            "tcpSocket" => port_num_or_name(e, get(a, "port"), &ap.child("port")),
            "grpc" => {
                let port = int(e, a, &ap, "port").unwrap_or(0);
                for m in is_valid_port_num(port) {
                    e.push(invalid(&ap.child("port"), port, m));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        e.push(required(p, "must specify a handler type"));
    }
}

/// Upstream's `ValidatePortNumOrName` for an IntOrString port.
pub(crate) fn port_num_or_name(e: &mut Errs, port: Option<&Value>, p: &Path) {
    match port {
        Some(Value::String(s)) => {
            for m in is_valid_port_name(s) {
                e.push(invalid(p, s.as_str(), m));
            }
        }
        Some(v) => {
            let n = v.as_i64().unwrap_or(0);
            for m in is_valid_port_num(n) {
                e.push(invalid(p, n, m));
            }
        }
        None => {
            for m in is_valid_port_num(0) {
                e.push(invalid(p, 0, m));
            }
        }
    }
}
