//! Robustness: defaulting and validation never panic, whatever JSON shape
//! arrives, for every served kind.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{validate_create, validate_status_update, validate_update};
use crate::defaults::apply_defaults;
use crate::resources::RESOURCES;

const KEYS: &[&str] = &[
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "spec",
    "status",
    "containers",
    "initContainers",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "volumes",
    "volumeMounts",
    "resources",
    "limits",
    "requests",
    "cpu",
    "selector",
    "matchLabels",
    "matchExpressions",
    "template",
    "strategy",
    "rollingUpdate",
    "maxSurge",
    "maxUnavailable",
    "replicas",
    "schedule",
    "jobTemplate",
    "data",
    "type",
    "clusterIP",
    "clusterIPs",
    "rules",
    "http",
    "paths",
    "backend",
    "service",
    "port",
    "subjects",
    "roleRef",
    "tolerations",
    "env",
    "valueFrom",
    "fieldRef",
    "fieldPath",
    "updateStrategy",
    "taints",
    "podCIDR",
    "capacity",
    "hard",
    "accessModes",
    "storage",
    "completions",
    "parallelism",
    "restartPolicy",
    "value",
    "ownerReferences",
    "finalizers",
    "schedulingGates",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9./%:@_-]{0,12}".prop_map(Value::from),
        Just(json!("-1")),
        Just(json!("1Gi")),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn exercise(v: &Value) {
    for res in RESOURCES {
        let mut d = v.clone();
        apply_defaults(res, &mut d);
        let _ = validate_create(res, &d);
        let _ = validate_update(res, &d, v);
        let _ = validate_update(res, v, &d);
        let _ = validate_status_update(res, &d, v);
    }
}

#[test]
fn fixed_odd_shapes_do_not_panic() {
    for v in [
        json!(null),
        json!([]),
        json!("pod"),
        json!({"metadata": 5, "spec": []}),
        json!({"metadata": {"name": ["x"], "labels": "a=b"}, "spec": {"containers": [1, null, {"ports": "80"}]}}),
        json!({"spec": {"template": {"spec": {"containers": [{"resources": {"limits": {"cpu": []}}}]}}, "selector": "app=x"}}),
        json!({"spec": {"schedule": "TZ=", "jobTemplate": 3}}),
        json!({"spec": {"ports": [{"port": "x", "targetPort": null, "nodePort": -5}], "clusterIPs": [1]}}),
        json!({"data": {"k": 1}, "binaryData": {"k": "!!"}, "type": "kubernetes.io/tls"}),
    ] {
        exercise(&v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_json_does_not_panic(v in arb_json()) {
        exercise(&v);
    }
}
