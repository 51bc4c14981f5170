//! Unit tests of the printers: realistic objects and the cells upstream
//! prints for them, plus robustness against odd objects.

mod others;
mod pods;
mod workloads;

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::{column_definitions, row_cells, row_conditions};
use crate::resources::{lookup, ResourceInfo, RESOURCES};

pub(super) fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().unwrap()
}

/// RFC 3339 timestamp `secs` seconds before [`now`].
pub(super) fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

pub(super) fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    lookup(group, "v1", plural).unwrap()
}

pub(super) fn cells(group: &str, plural: &str, obj: Value) -> Vec<Value> {
    row_cells(res(group, plural), &obj, now())
}

pub(super) fn names(group: &str, plural: &str) -> Vec<(String, i64)> {
    column_definitions(res(group, plural))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn odd_objects_never_panic() {
    let odd = [
        json!(null),
        json!(42),
        json!({"metadata": 5, "spec": [], "status": "x"}),
        json!({"metadata": {"name": 7, "creationTimestamp": true, "labels": [], "deletionTimestamp": 1},
               "spec": {"containers": {"a": 1}, "replicas": "3", "ports": [1, null, {"port": "x"}],
                        "selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}},
               "status": {"conditions": [null, 1, {"type": 5}], "containerStatuses": [{"state": {"terminated": null}}],
                          "initContainerStatuses": [7], "hard": {"cpu": 1}}}),
    ];
    for r in RESOURCES {
        let ncols = column_definitions(r).len();
        for o in &odd {
            assert_eq!(row_cells(r, o, now()).len(), ncols, "{}", r.plural);
        }
    }
    let c = cells("", "pods", odd[2].clone());
    assert_eq!(
        c,
        json!([
            "",
            "0/0",
            "",
            "0",
            "<unknown>",
            "<none>",
            "<none>",
            "<none>",
            "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn every_table_has_one_name_column() {
    for r in RESOURCES {
        let cols = column_definitions(r);
        let name_cols: Vec<&Value> = cols.iter().filter(|c| c["format"] == "name").collect();
        assert_eq!(name_cols.len(), 1, "{}", r.plural);
        assert_eq!(name_cols[0]["name"], "Name");
        for c in &cols {
            let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, ["name", "type", "format", "description", "priority"]);
        }
    }
}

#[test]
fn default_printer_for_roles_and_limitranges() {
    for (group, plural) in [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("", "limitranges"),
    ] {
        let cols = column_definitions(res(group, plural));
        assert_eq!(cols.len(), 2);
        assert_eq!(cols[1]["name"], "Created At");
        assert_eq!(cols[1]["type"], "date");
        assert_eq!(cols[1]["description"], crate::table::docs::META_CREATION);
    }
    let role =
        json!({"metadata": {"name": "reader", "creationTimestamp": "2024-05-01T13:55:00+02:00"}});
    assert_eq!(
        cells("rbac.authorization.k8s.io", "roles", role),
        [json!("reader"), json!("2024-05-01T11:55:00Z")]
    );
    let bare = json!({"metadata": {"name": "x"}});
    assert_eq!(
        cells("", "limitranges", bare),
        [json!("x"), json!("0001-01-01T00:00:00Z")]
    );
}

#[test]
fn simple_core_printers() {
    let meta = json!({"name": "cfg", "creationTimestamp": ago(45)});
    let cm = json!({"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells("", "configmaps", cm),
        [json!("cfg"), json!(3), json!("45s")]
    );
    let secret = json!({"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("", "secrets", secret),
        [
            json!("cfg"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("45s")
        ]
    );
    let sa = json!({"metadata": meta});
    assert_eq!(
        cells("", "serviceaccounts", sa),
        [json!("cfg"), json!(0), json!("45s")]
    );
    let ns = json!({"metadata": meta, "status": {"phase": "Active"}});
    assert_eq!(
        cells("", "namespaces", ns),
        [json!("cfg"), json!("Active"), json!("45s")]
    );
    let lease = json!({"metadata": meta, "spec": {"holderIdentity": "node-1"}});
    assert_eq!(
        cells("coordination.k8s.io", "leases", lease),
        [json!("cfg"), json!("node-1"), json!("45s")]
    );
}
