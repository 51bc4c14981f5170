//! Tests of Pod create and update validation against upstream's messages.

use serde_json::{json, Value};

use super::pod::validate_pod;
use super::pod_update::validate_pod_update;

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "3"},
        "spec": spec})
}

/// A defaulted, valid container.
fn ctr(name: &str, image: &str) -> Value {
    json!({"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}})
}

fn spec_with(containers: Vec<Value>) -> Value {
    json!({"containers": containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
        "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler", "securityContext": {}})
}

fn errs(obj: &Value) -> Vec<String> {
    let mut e = Vec::new();
    validate_pod(&mut e, obj);
    e.iter().map(|x| x.to_string()).collect()
}

fn update_errs(new: &Value, old: &Value) -> Vec<String> {
    let mut e = Vec::new();
    validate_pod_update(&mut e, new, old);
    e.iter().map(|x| x.to_string()).collect()
}

#[test]
fn valid_pod_passes() {
    let mut s = spec_with(vec![ctr("nginx", "nginx:1.25")]);
    s["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    s["containers"][0]["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    s["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}]);
    s["containers"][0]["resources"] = json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}});
    s["tolerations"] = json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]);
    assert_eq!(errs(&pod(s)), Vec::<String>::new());
}

#[test]
fn containers_required_and_basic_container_errors() {
    assert_eq!(
        errs(&pod(spec_with(vec![]))),
        vec!["spec.containers: Required value"]
    );
    let e = errs(&pod(spec_with(vec![ctr("a", ""), ctr("a", "busybox")])));
    assert_eq!(
        e,
        vec![
            "spec.containers[0].image: Required value",
            "spec.containers[1].name: Duplicate value: \"a\""
        ]
    );
    let e = errs(&pod(spec_with(vec![ctr("Web_1", "nginx")])));
    assert!(e[0].starts_with("spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of"), "{e:?}");
}

#[test]
fn ports_protocols_and_policies() {
    let mut s = spec_with(vec![ctr("a", "nginx")]);
    s["containers"][0]["ports"] = json!([{"containerPort": 70000, "protocol": "HTTP"}, {"containerPort": 0, "protocol": "TCP"}]);
    s["restartPolicy"] = json!("Sometimes");
    s["dnsPolicy"] = json!("Weird");
    assert_eq!(
        errs(&pod(s)),
        vec![
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[1].containerPort: Required value",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsPolicy: Unsupported value: \"Weird\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
        ]
    );
}

#[test]
fn resources_requests_must_not_exceed_limits() {
    let mut s = spec_with(vec![ctr("a", "nginx")]);
    s["containers"][0]["resources"] = json!({"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "lots"}});
    assert_eq!(
        errs(&pod(s)),
        vec![
            "spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
            "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ]
    );
    let mut s = spec_with(vec![ctr("a", "nginx")]);
    s["containers"][0]["resources"] = json!({"requests": {"nvidia.com/gpu": "1"}});
    assert_eq!(
        errs(&pod(s)),
        vec!["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"]
    );
}

#[test]
fn volumes_and_mounts() {
    let mut s = spec_with(vec![ctr("a", "nginx")]);
    s["volumes"] = json!([
        {"name": "cfg", "configMap": {"name": ""}},
        {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}},
        {"name": "ok", "emptyDir": {}},
        {"name": "ok", "emptyDir": {}}
    ]);
    s["containers"][0]["volumeMounts"] =
        json!([{"name": "x", "mountPath": "/a"}, {"name": "ok", "mountPath": "/a"}]);
    assert_eq!(
        errs(&pod(s)),
        vec![
            "spec.volumes[0].configMap.name: Required value",
            "spec.volumes[1].emptyDir: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[3].name: Duplicate value: \"ok\"",
            "spec.containers[0].volumeMounts[0].name: Not found: \"x\"",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
        ]
    );
}

#[test]
fn env_tolerations_and_gates() {
    let mut s = spec_with(vec![ctr("a", "nginx")]);
    s["containers"][0]["env"] = json!([{"name": ""}, {"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
    s["tolerations"] = json!([{"key": "k", "operator": "Exists", "value": "v"}, {"key": "k", "operator": "Equal", "effect": "Sometimes"}]);
    s["schedulingGates"] = json!([{"name": "example.com/gate"}, {"name": "example.com/gate"}]);
    s["terminationGracePeriodSeconds"] = json!(30);
    assert_eq!(
        errs(&pod(s)),
        vec![
            "spec.containers[0].env[0].name: Required value",
            "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            "spec.schedulingGates[1]: Duplicate value: \"example.com/gate\"",
            "spec.tolerations[0].operator: Invalid value: core.Toleration{Key:\"k\", Operator:\"Exists\", Value:\"v\", Effect:\"\", TolerationSeconds:(*int64)(nil)}: value must be empty when `operator` is 'Exists'",
            "spec.tolerations[1].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
        ]
    );
}

#[test]
fn wrong_json_types_are_errors_not_panics() {
    let obj = json!({"metadata": {"name": 5, "namespace": "default"}, "spec": {"containers": "nope", "volumes": [1]}});
    let e = errs(&obj);
    assert!(
        e.contains(&"metadata.name: Invalid value: 5: must be a string".to_string()),
        "{e:?}"
    );
    assert!(
        e.contains(&"spec.containers: Invalid value: \"nope\": must be an array".to_string()),
        "{e:?}"
    );
    assert!(
        e.contains(&"spec.volumes[0]: Invalid value: 1: must be an object".to_string()),
        "{e:?}"
    );
    assert!(!errs(&json!(null)).is_empty());
    assert!(!errs(&json!([1, 2])).is_empty());
}

#[test]
fn update_allows_image_and_rejects_other_changes() {
    let old = pod(spec_with(vec![ctr("a", "nginx:1")]));
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:2");
    new["metadata"]["labels"] = json!({"x": "y"});
    assert_eq!(update_errs(&new, &old), Vec::<String>::new());

    new["spec"]["restartPolicy"] = json!("Never");
    let e = update_errs(&new, &old);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{e:?}");
    assert!(
        e[0].contains("- \tRestartPolicy: \"Always\",\n+ \tRestartPolicy: \"Never\","),
        "{e:?}"
    );

    let mut more = old.clone();
    more["spec"]["containers"] = json!([ctr("a", "nginx:1"), ctr("b", "busybox")]);
    assert_eq!(
        update_errs(&more, &old),
        vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );
}

#[test]
fn update_gates_tolerations_and_deadline() {
    let mut s = spec_with(vec![ctr("a", "nginx")]);
    s["schedulingGates"] = json!([{"name": "g1"}]);
    s["tolerations"] =
        json!([{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]);
    s["activeDeadlineSeconds"] = json!(100);
    let old = pod(s);

    let mut new = old.clone();
    new["spec"]["schedulingGates"] = json!([]);
    new["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 9}, {"key": "z", "operator": "Exists"}]);
    new["spec"]["activeDeadlineSeconds"] = json!(50);
    new["spec"]["nodeSelector"] = json!({"zone": "a"});
    assert_eq!(update_errs(&new, &old), Vec::<String>::new());

    let mut new = old.clone();
    new["spec"]["schedulingGates"] = json!([{"name": "g1"}, {"name": "g2"}]);
    assert_eq!(update_errs(&new, &old), vec!["spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found new scheduling gate 'g2'"]);

    let mut new = old.clone();
    new["spec"]["tolerations"] = json!([]);
    assert_eq!(update_errs(&new, &old), vec!["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]);

    let mut new = old.clone();
    new["spec"]["activeDeadlineSeconds"] = json!(200);
    assert_eq!(update_errs(&new, &old), vec!["spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]);
}
