//! Printers of the remaining built-in groups: Leases, EndpointSlices,
//! Ingresses, IngressClasses, NetworkPolicies, RuntimeClasses,
//! PodDisruptionBudgets, (Cluster)RoleBindings, PriorityClasses and
//! StorageClasses.

use jiff::Timestamp;
use serde_json::Value;

use super::core::load_balancer_ingress;
use super::docs;
use super::util::{
    age, arr_at, format_label_selector, get, int_at, int_or_string, list_with_more, name, obj_at,
    opt_int, opt_str, str_at,
};
use super::Col;

pub(crate) const LEASE_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Holder", "string", docs::LEASE_HOLDER),
    Col::age(),
];

pub(crate) fn lease(l: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(l),
        Value::from(str_at(l, &["spec", "holderIdentity"])),
        age(l, now),
    ]
}

pub(crate) const ENDPOINTSLICE_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("AddressType", "string", docs::ES_ADDRESS_TYPE),
    Col::new("Ports", "string", docs::ES_PORTS),
    Col::new("Endpoints", "string", docs::ES_ENDPOINTS),
    Col::age(),
];

const LIST_MAX: usize = 3;

pub(crate) fn endpointslice(es: &Value, now: Timestamp) -> Vec<Value> {
    let ports = arr_at(es, &["ports"]);
    let port_list: Vec<String> = ports
        .iter()
        .take(LIST_MAX)
        .map(|p| match (opt_int(p, &["port"]), opt_str(p, &["name"])) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<&str> = arr_at(es, &["endpoints"])
        .iter()
        .flat_map(|e| arr_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or(""))
        .collect();
    let addr_list: Vec<String> = addresses
        .iter()
        .take(LIST_MAX)
        .map(|a| a.to_string())
        .collect();
    vec![
        name(es),
        Value::from(str_at(es, &["addressType"])),
        Value::from(list_with_more(
            &port_list,
            ports.len() > LIST_MAX,
            ports.len(),
            LIST_MAX,
        )),
        Value::from(list_with_more(
            &addr_list,
            addresses.len() > LIST_MAX,
            addresses.len(),
            LIST_MAX,
        )),
        age(es, now),
    ]
}

pub(crate) const INGRESS_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    Col::new(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    Col::new(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    Col::new("Ports", "string", "Ports of TLS configurations that open"),
    Col::age(),
];

/// Up to three rule hosts, "*" when none (upstream's `formatHosts`).
fn ingress_hosts(rules: &[Value]) -> String {
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == LIST_MAX {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", rules.len().saturating_sub(LIST_MAX));
    }
    ret
}

pub(crate) fn ingress(ing: &Value, now: Timestamp) -> Vec<Value> {
    let class = opt_str(ing, &["spec", "ingressClassName"]).unwrap_or("<none>");
    let ports = if arr_at(ing, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(ing),
        Value::from(class),
        Value::from(ingress_hosts(arr_at(ing, &["spec", "rules"]))),
        Value::from(load_balancer_ingress(get(ing, &["status", "loadBalancer"]))),
        Value::from(ports),
        age(ing, now),
    ]
}

pub(crate) const INGRESSCLASS_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    Col::new(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    Col::age(),
];

pub(crate) fn ingressclass(ic: &Value, now: Timestamp) -> Vec<Value> {
    let params = match obj_at(ic, &["spec", "parameters"]) {
        None => "<none>".to_string(),
        Some(_) => {
            let p = |f: &str| str_at(ic, &["spec", "parameters", f]);
            let mut s = p("kind").to_string();
            if let Some(group) = opt_str(ic, &["spec", "parameters", "apiGroup"]) {
                s = format!("{s}.{group}");
            }
            format!("{s}/{}", p("name"))
        }
    };
    vec![
        name(ic),
        Value::from(str_at(ic, &["spec", "controller"])),
        Value::from(params),
        age(ic, now),
    ]
}

pub(crate) const NETWORKPOLICY_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Pod-Selector", "string", docs::EXT_NETPOL_POD_SELECTOR),
    Col::age(),
];

pub(crate) fn networkpolicy(np: &Value, now: Timestamp) -> Vec<Value> {
    // `spec.podSelector` is a struct, never nil: absent reads as empty.
    let selector = get(np, &["spec", "podSelector"])
        .filter(|s| !s.is_null())
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    vec![
        name(np),
        Value::from(format_label_selector(Some(&selector))),
        age(np, now),
    ]
}

pub(crate) const RUNTIMECLASS_COLUMNS: &[Col] =
    &[Col::name(), Col::new("Handler", "string", ""), Col::age()];

pub(crate) fn runtimeclass(rc: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(rc),
        Value::from(str_at(rc, &["handler"])),
        age(rc, now),
    ]
}

pub(crate) const PDB_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    Col::new(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    Col::new(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    Col::age(),
];

pub(crate) fn pdb(pdb: &Value, now: Timestamp) -> Vec<Value> {
    let bound = |f: &str| match get(pdb, &["spec", f]) {
        None | Some(Value::Null) => "N/A".to_string(),
        Some(v) => int_or_string(v),
    };
    vec![
        name(pdb),
        Value::from(bound("minAvailable")),
        Value::from(bound("maxUnavailable")),
        Value::from(int_at(pdb, &["status", "disruptionsAllowed"])),
        age(pdb, now),
    ]
}

pub(crate) const ROLEBINDING_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Role", "string", docs::RB_ROLE_REF),
    Col::age(),
    Col::new("Users", "string", "Users in the roleBinding").wide(),
    Col::new("Groups", "string", "Groups in the roleBinding").wide(),
    Col::new(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    )
    .wide(),
];

pub(crate) const CLUSTERROLEBINDING_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Role", "string", docs::CRB_ROLE_REF),
    Col::age(),
    Col::new("Users", "string", "Users in the clusterRoleBinding").wide(),
    Col::new("Groups", "string", "Groups in the clusterRoleBinding").wide(),
    Col::new(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    )
    .wide(),
];

/// Role and subjects of a RoleBinding or ClusterRoleBinding.
pub(crate) fn rolebinding(rb: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(rb, &["roleRef", "kind"]),
        str_at(rb, &["roleRef", "name"])
    );
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in arr_at(rb, &["subjects"]) {
        let subject_name = str_at(s, &["name"]);
        match str_at(s, &["kind"]) {
            "ServiceAccount" => sas.push(format!("{}/{subject_name}", str_at(s, &["namespace"]))),
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    vec![
        name(rb),
        Value::from(role),
        age(rb, now),
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(sas.join(", ")),
    ]
}

pub(crate) const PRIORITYCLASS_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Value", "integer", docs::PC_VALUE),
    Col::new("Global-Default", "boolean", docs::PC_GLOBAL_DEFAULT),
    Col::age(),
    Col::new("PreemptionPolicy", "string", docs::PC_PREEMPTION),
];

pub(crate) fn priorityclass(pc: &Value, now: Timestamp) -> Vec<Value> {
    let global_default = get(pc, &["globalDefault"])
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Upstream defaults a missing preemptionPolicy on read.
    let preemption = match get(pc, &["preemptionPolicy"]) {
        None | Some(Value::Null) => "PreemptLowerPriority",
        Some(v) => v.as_str().unwrap_or(""),
    };
    vec![
        name(pc),
        Value::from(int_at(pc, &["value"])),
        Value::from(global_default),
        age(pc, now),
        Value::from(preemption),
    ]
}

pub(crate) const STORAGECLASS_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Provisioner", "string", docs::SC_PROVISIONER),
    Col::new("ReclaimPolicy", "string", docs::SC_RECLAIM),
    Col::new("VolumeBindingMode", "string", docs::SC_BINDING_MODE),
    Col::new("AllowVolumeExpansion", "string", docs::SC_EXPANSION),
    Col::age(),
];

const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

pub(crate) fn storageclass(sc: &Value, now: Timestamp) -> Vec<Value> {
    let mut sc_name = str_at(sc, &["metadata", "name"]).to_string();
    if DEFAULT_CLASS_ANNOTATIONS
        .iter()
        .any(|a| str_at(sc, &["metadata", "annotations", a]) == "true")
    {
        sc_name.push_str(" (default)");
    }
    let reclaim = opt_str(sc, &["reclaimPolicy"]).unwrap_or("Delete");
    let binding = opt_str(sc, &["volumeBindingMode"]).unwrap_or("Immediate");
    let expansion = get(sc, &["allowVolumeExpansion"])
        .and_then(Value::as_bool)
        .unwrap_or(false);
    vec![
        Value::from(sc_name),
        Value::from(str_at(sc, &["provisioner"])),
        Value::from(reclaim),
        Value::from(binding),
        Value::from(expansion),
        age(sc, now),
    ]
}
