//! Strategic merge, JSON merge and JSON patch tests, modelled on the
//! patches `kubectl apply` / `kubectl patch` send and upstream's results.

use super::*;
use serde_json::json;

const DEPLOY: (&str, &str) = ("apps", "Deployment");

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a", "b"]},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": containers, "tolerations": [{"key": "k1"}]}}}
    })
}

fn containers(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("?"))
        .collect()
}

fn smp(kind: (&str, &str), original: &Value, patch: Value) -> Value {
    strategic_merge(kind, original, &patch).unwrap_or_else(|e| panic!("patch failed: {e}"))
}

#[test]
fn apply_changes_one_container_image_only() {
    let orig = deployment(
        json!([{"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "z"}]),
    );
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"image": "y", "name": "a"}]}}}}),
    );
    assert_eq!(
        containers(&out),
        &json!([{"name": "a", "image": "y", "args": ["1"]}, {"name": "b", "image": "z"}])
    );
    assert_eq!(out["spec"]["replicas"], 2);
    assert!(!out.to_string().contains('$'), "directives leaked: {out}");
}

#[test]
fn delete_directive_removes_a_container() {
    let orig = deployment(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"$patch": "delete", "name": "b"}]}}}}),
    );
    assert_eq!(containers(&out), &json!([{"name": "a", "image": "x"}]));
}

#[test]
fn new_items_come_first_without_an_order_directive() {
    // The `kubectl patch` documentation example: the added container is listed first.
    let orig = deployment(json!([{"name": "patch-demo-ctr", "image": "nginx"}]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}}),
    );
    assert_eq!(
        names(containers(&out)),
        ["patch-demo-ctr-2", "patch-demo-ctr"]
    );
    // Lists without a strategy (tolerations) are replaced whole.
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {"tolerations": [{"key": "k2", "effect": "NoSchedule"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "k2", "effect": "NoSchedule"}])
    );
}

#[test]
fn server_only_items_keep_their_place() {
    let orig = deployment(
        json!([{"name": "a", "image": "1"}, {"name": "sidecar", "image": "s"}, {"name": "b", "image": "2"}]),
    );
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "b", "image": "3"}]}}}}),
    );
    // Upstream interleaves by live position: the sidecar (live index 1)
    // precedes b (live index 2), then the directive's order continues.
    assert_eq!(names(containers(&out)), ["sidecar", "b", "a"]);
    assert_eq!(containers(&out)[1]["image"], "3");
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "9"}]}}}}),
    );
    assert_eq!(names(containers(&out)), ["a", "sidecar", "b"]);
    assert_eq!(containers(&out)[0]["image"], "9");
}

#[test]
fn nested_lists_merge_by_their_keys() {
    let orig = deployment(json!([{"name": "a", "image": "x",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "volumeMounts": [{"mountPath": "/data", "name": "d"}]}]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a",
            "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
            "ports": [{"containerPort": 80, "name": "http"}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}]}}}}),
    );
    let c = &containers(&out)[0];
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"mountPath": "/data", "name": "d", "readOnly": true}])
    );
}

#[test]
fn null_deletes_and_maps_merge() {
    let orig = deployment(json!([{"name": "a"}]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"metadata": {"labels": {"tier": null, "new": "x"}, "annotations": {"a": "b", "gone": null}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "web", "new": "x"}));
    // A null for a key the original lacks is dropped, also inside new maps.
    assert_eq!(out["metadata"]["annotations"], json!({"a": "b"}));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd", "zone": null}}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["nodeSelector"],
        json!({"disk": "ssd"})
    );
}

#[test]
fn finalizers_are_a_set() {
    let orig = deployment(json!([]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"metadata": {"finalizers": ["c", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"metadata": {"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"metadata": {"$setElementOrder/finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    // A deletion list for a list the original lacks adds nothing.
    let out = smp(
        ("", "ConfigMap"),
        &json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn replace_and_delete_directives() {
    let orig = deployment(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "q"}]}}}}),
    );
    assert_eq!(containers(&out), &json!([{"name": "c", "image": "q"}]));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    let out = smp(
        DEPLOY,
        &orig,
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({}));
    assert_eq!(smp(DEPLOY, &orig, json!({"$patch": "delete"})), json!({}));
}

#[test]
fn retain_keys_clears_unlisted_fields() {
    let orig =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    let err = strategic_merge(
        DEPLOY,
        &orig,
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}}),
    );
    assert_eq!(err, Err(PatchError::BadRetainKeysFormat));
    let err = strategic_merge(
        DEPLOY,
        &orig,
        &json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    );
    assert_eq!(err.map_err(|e| e.status_code()), Err(400));
}

#[test]
fn other_kinds_use_their_merge_keys() {
    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let out = smp(
        ("", "Service"),
        &svc,
        json!({"spec": {"ports": [{"port": 443, "name": "https"}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}, {"port": 443, "name": "https"}])
    );

    let node = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
    let out = smp(
        ("", "Node"),
        &node,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(
        out["status"]["conditions"][0],
        json!({"type": "Ready", "status": "True"})
    );
    assert_eq!(out["status"]["conditions"][1]["type"], "DiskPressure");

    let cm =
        json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}, "data": {"k": "v"}});
    let out = smp(
        ("", "ConfigMap"),
        &cm,
        json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}]}}),
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "1", "name": "a", "controller": true}])
    );

    let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}]}}}}}});
    let out = smp(
        ("batch", "CronJob"),
        &cj,
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "2"}]}}}}}}),
    );
    assert_eq!(
        out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
        json!([{"name": "a", "image": "2"}])
    );

    let pod = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    let out = smp(
        ("", "Pod"),
        &pod,
        json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}], "phase": "Running"}}),
    );
    assert_eq!(
        out["status"]["conditions"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn new_values_never_carry_directives() {
    let orig = json!({"spec": {"template": {"spec": {}}}});
    let out = smp(
        DEPLOY,
        &orig,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}],
                "$setElementOrder/env": [{"name": "X"}]}],
            "affinity": {"$retainKeys": ["nodeAffinity"], "nodeAffinity": {"x": 1}}}}}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}],
            "affinity": {"nodeAffinity": {"x": 1}}}}}})
    );
}

#[test]
fn malformed_patches_are_errors() {
    let orig = deployment(json!([{"name": "a", "image": "x"}]));
    let e = |p: Value| strategic_merge(DEPLOY, &orig, &p).unwrap_err();
    let tpl = |spec: Value| json!({"spec": {"template": {"spec": spec}}});
    assert_eq!(
        e(tpl(json!({"containers": [{"image": "y"}]}))).to_string(),
        "map: map[image:y] does not contain declared merge key: name"
    );
    assert_eq!(
        e(tpl(
            json!({"containers": [{"name": "a", "$patch": "bogus"}]})
        ))
        .to_string(),
        "unknown patch type: bogus in map: map[$patch:bogus name:a]"
    );
    assert_eq!(
        e(tpl(
            json!({"containers": [{"name": "a", "$patch": "merge"}]})
        )),
        PatchError::MergeDirectiveInList
    );
    assert_eq!(
        e(json!({"metadata": {"$patch": "merge"}})).to_string(),
        "unknown patch type: merge in map: map[$patch:merge]"
    );
    assert_eq!(
        e(json!({"metadata": {"$setElementOrderfinalizers": ["a"]}})),
        PatchError::BadSetElementOrderFormat
    );
    assert_eq!(
        e(json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}})),
        PatchError::BadPrimitiveListFormat
    );
    assert_eq!(
        e(json!({"metadata": {"$setElementOrder/finalizers": "a"}})),
        PatchError::BadArgType {
            expected: "[]interface {}",
            actual: "string"
        }
    );
    assert!(matches!(
        e(json!({"metadata": {"finalizers": [1]}})),
        PatchError::MixedElementTypes(_)
    ));
    assert_eq!(
        e(json!({"metadata": {"finalizers": [["a"]]}})),
        PatchError::MixedElementTypes("[[a b] [[a]]]".into())
    );
    assert_eq!(
        strategic_merge(
            ("", "ConfigMap"),
            &json!({"metadata": {"finalizers": []}}),
            &json!({"metadata": {"finalizers": [["a"]]}})
        ),
        Err(PatchError::NoListOfLists)
    );
    assert!(matches!(
        e(tpl(
            json!({"$setElementOrder/containers": [{"name": "b"}], "containers": [{"name": "a", "image": "q"}]})
        )),
        PatchError::OrderMismatch { .. }
    ));
    assert!(matches!(
        e(json!({"metadata": {"finalizers": [{"x": 1}]}})),
        PatchError::MixedElementTypes(_)
    ));
    assert_eq!(
        strategic_merge(DEPLOY, &json!([]), &json!({})),
        Err(PatchError::BadJsonDoc)
    );
    assert_eq!(
        strategic_merge(DEPLOY, &orig, &json!([1])),
        Err(PatchError::BadJsonDoc)
    );
    assert_eq!(PatchError::NoListOfLists.status_code(), 422);
}

#[test]
fn empty_patch_is_identity() {
    let orig = deployment(json!([{"name": "a", "image": "x"}]));
    assert_eq!(smp(DEPLOY, &orig, json!({})), orig);
}

#[test]
fn json_merge_patch_follows_rfc7386() {
    let orig = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
    let out = json_merge_patch(&orig, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
    assert_eq!(out, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    assert_eq!(json_merge_patch(&orig, &json!("x")), json!("x"));
}

#[test]
fn json_patch_applies_operations_and_tests() {
    let orig = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}});
    let ops = json!([
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/a"}
    ]);
    let out = json_patch(&orig, &ops).unwrap();
    assert_eq!(
        out,
        json!({"metadata": {"labels": {"b": "2"}}, "spec": {"replicas": 3}})
    );

    let failed = json_patch(
        &orig,
        &json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
    )
    .unwrap_err();
    assert_eq!(failed.status_code(), 422);
    let missing = json_patch(&orig, &json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
    assert_eq!(missing.status_code(), 422);
    let invalid = json_patch(&orig, &json!({"op": "add"})).unwrap_err();
    assert_eq!(invalid.status_code(), 400);
    let bad_op = json_patch(&orig, &json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
    assert_eq!(bad_op.status_code(), 400);
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "", "value": null}))
        .collect();
    assert_eq!(
        json_patch(&orig, &Value::Array(many))
            .unwrap_err()
            .status_code(),
        413
    );
}
