//! Container resource requirements and resource names/quantities
//! (upstream's `ValidateResourceRequirements`, `validateContainerResourceName`,
//! `ValidateResourceQuantityValue`), shared with quotas and limit ranges.

use serde_json::Value;

use super::quantity::{Quantity, QUANTITY_ERR};
use super::util::*;
use crate::field::Path;
use crate::names::is_qualified_name;

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// Upstream's `IsStandardResourceName`.
pub(crate) fn is_standard_resource_name(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name)
        || is_hugepages(name)
        || name.starts_with("requests.hugepages-")
}

pub(crate) fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

pub(crate) fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Upstream's `ValidateResourceRequirements` for a container.
pub(crate) fn validate_resource_requirements(e: &mut Errs, r: &Value, p: &Path) {
    let lim_path = p.child("limits");
    let req_path = p.child("requests");
    let limits = map(e, r, p, "limits");
    for (name, q) in limits.into_iter().flatten() {
        let fp = lim_path.key(name);
        container_resource_name(e, name, &fp);
        resource_quantity(e, name, q, &fp);
    }
    for (name, q) in map(e, r, p, "requests").into_iter().flatten() {
        let fp = req_path.key(name);
        container_resource_name(e, name, &fp);
        let Some(req) = resource_quantity(e, name, q, &fp) else {
            continue;
        };
        let overcommit = is_native_resource(name) && !is_hugepages(name);
        match limits.and_then(|l| l.get(name)) {
            Some(lim_value) => {
                let Some(lim) = Quantity::from_json(lim_value) else {
                    continue;
                };
                if req.cmp(&lim).is_ne() && !overcommit {
                    e.push(invalid(
                        &req_path,
                        req.canonical(),
                        format!("must be equal to {name} limit of {}", lim.canonical()),
                    ));
                } else if req.cmp(&lim).is_gt() {
                    e.push(invalid(
                        &req_path,
                        req.canonical(),
                        format!(
                            "must be less than or equal to {name} limit of {}",
                            lim.canonical()
                        ),
                    ));
                }
            }
            None if !overcommit => e.push(required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
    }
}

/// Upstream's `validateResourceName`.
pub(crate) fn resource_name(e: &mut Errs, name: &str, p: &Path) {
    let msgs = is_qualified_name(name);
    if !msgs.is_empty() {
        e.extend(msgs.into_iter().map(|m| invalid(p, name, m)));
        return;
    }
    if !name.contains('/') && !is_standard_resource_name(name) {
        e.push(invalid(
            p,
            name,
            "must be a standard resource type or fully qualified",
        ));
    }
}

/// Upstream's `validateContainerResourceName`.
pub(crate) fn container_resource_name(e: &mut Errs, name: &str, p: &Path) {
    resource_name(e, name, p);
    if !name.contains('/') {
        if !STANDARD_CONTAINER_RESOURCES.contains(&name) && !is_hugepages(name) {
            e.push(invalid(
                p,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name)
        && (name.starts_with("requests.")
            || !is_qualified_name(&format!("requests.{name}")).is_empty())
    {
        e.push(invalid(
            p,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// Upstream's `ValidateResourceQuotaResourceName`.
pub(crate) fn quota_resource_name(e: &mut Errs, name: &str, p: &Path) {
    resource_name(e, name, p);
    if !name.contains('/') && !is_standard_resource_name(name) {
        e.push(invalid(p, name, "must be a standard resource for quota"));
    }
}

/// Parses a quantity and checks it is not negative; `None` when invalid.
pub(crate) fn resource_quantity(e: &mut Errs, name: &str, v: &Value, p: &Path) -> Option<Quantity> {
    let Some(q) = Quantity::from_json(v) else {
        e.push(invalid(p, v.clone(), QUANTITY_ERR));
        return None;
    };
    if q.is_negative() {
        e.push(invalid(p, q.canonical(), IS_NEGATIVE));
    }
    let integer_resource =
        name == "pods" || name.starts_with("count/") || !is_native_resource(name);
    if integer_resource && !q.is_integer() {
        e.push(invalid(p, q.canonical(), "must be an integer"));
    }
    Some(q)
}
