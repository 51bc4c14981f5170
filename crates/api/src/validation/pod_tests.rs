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
            "spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
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

#[test]
fn downward_api_dns_and_host_network() {
    let mut s = spec_with(vec![ctr("a", "nginx ")]);
    s["hostNetwork"] = json!(true);
    s["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 81, "protocol": "TCP"}]);
    s["containers"][0]["env"] = json!([
        {"name": "A", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.phase"}}},
        {"name": "B", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.bogus"}}},
        {"name": "C", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['a/b/c']"}}}
    ]);
    s["dnsPolicy"] = json!("None");
    s["dnsConfig"] =
        json!({"nameservers": ["1.1.1.1"], "searches": [".", "_srv.example.com", "Bad.example"]});
    let e = errs(&pod(s));
    assert_eq!(e[0], "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"status.phase\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"");
    assert_eq!(e[1], "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Invalid value: \"spec.bogus\": error converting fieldPath: field label not supported: spec.bogus");
    assert!(e[2].starts_with("spec.containers[0].env[2].valueFrom.fieldRef: Invalid value: \"a/b/c\": a qualified name must consist of"), "{e:?}");
    assert_eq!(e[3], "spec.containers[0].ports[0].hostPort: Invalid value: 81: must match `containerPort` when `hostNetwork` is true");
    assert!(e[4].starts_with("spec.dnsConfig.searches[2]: Invalid value: \"Bad.example\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.'"), "{e:?}");
    assert_eq!(e[5], "spec.containers[0].image: Invalid value: \"nginx \": must not have leading or trailing whitespace");
    assert_eq!(e.len(), 6, "{e:?}");
}

#[test]
fn init_containers_and_probes() {
    let mut s = spec_with(vec![ctr("app", "nginx")]);
    s["containers"][0]["readinessProbe"] = json!({"httpGet": {"path": "/", "port": "web", "scheme": "FTP"}, "terminationGracePeriodSeconds": 5,
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3});
    s["containers"][0]["livenessProbe"] =
        json!({"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}, "successThreshold": 2});
    s["initContainers"] = json!([ctr("app", "busybox"), ctr("sidecar", "envoy")]);
    s["initContainers"][0]["livenessProbe"] = json!({"exec": {"command": ["true"]}});
    s["initContainers"][1]["restartPolicy"] = json!("OnFailure");
    assert_eq!(
        errs(&pod(s)),
        vec![
            "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
            "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes",
            "spec.initContainers[0].name: Duplicate value: \"app\"",
            "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            "spec.initContainers[1].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        ]
    );
}

/// A gated pod's spec with a required node affinity of `terms`.
fn gated_with_terms(terms: Value) -> Value {
    let mut s = spec_with(vec![ctr("a", "nginx")]);
    s["schedulingGates"] = json!([{"name": "g1"}]);
    s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
    s
}

#[test]
fn gated_pods_may_only_extend_node_selector() {
    let mut s = spec_with(vec![ctr("a", "nginx")]);
    s["schedulingGates"] = json!([{"name": "g1"}]);
    s["nodeSelector"] = json!({"a": "b"});
    let old = pod(s);
    let mut new = old.clone();
    new["spec"]["nodeSelector"] = json!({"a": "b", "c": "d"});
    assert_eq!(update_errs(&new, &old), Vec::<String>::new());
    new["spec"]["nodeSelector"] = json!({"a": "z", "c": "d"});
    assert_eq!(
        update_errs(&new, &old),
        vec![
            r#"spec.nodeSelector: Invalid value: map[string]string{"a":"z", "c":"d"}: only additions to spec.nodeSelector are allowed (no mutations or deletions)"#
        ]
    );
    // Ungated pods may not change their node selector at all.
    let mut ungated = old.clone();
    ungated["spec"]["schedulingGates"] = json!([]);
    let mut new = ungated.clone();
    new["spec"]["nodeSelector"] = json!({"a": "b", "c": "d"});
    let e = update_errs(&new, &ungated);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("spec: Forbidden: pod updates may not change fields other than"),
        "{e:?}"
    );
}

#[test]
fn gated_pods_may_only_narrow_required_node_affinity() {
    let a = json!({"key": "a", "operator": "In", "values": ["x"]});
    let b = json!({"key": "b", "operator": "Exists"});
    let old = pod(gated_with_terms(json!([{"matchExpressions": [a]}])));

    // An expression added to an existing term narrows it: allowed.
    let new = pod(gated_with_terms(json!([{"matchExpressions": [a, b]}])));
    assert_eq!(update_errs(&new, &old), Vec::<String>::new());

    // Replacing an expression is a mutation.
    let new = pod(gated_with_terms(json!([{"matchExpressions": [b]}])));
    assert_eq!(
        update_errs(&new, &old),
        vec![
            r#"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]: Invalid value: core.NodeSelectorTerm{MatchExpressions:[]core.NodeSelectorRequirement{core.NodeSelectorRequirement{Key:"b", Operator:"Exists", Values:[]string(nil)}}, MatchFields:[]core.NodeSelectorRequirement(nil)}: only additions are allowed (no mutations or deletions)"#
        ]
    );

    // Adding a term widens the selection (terms are ORed).
    let new = pod(gated_with_terms(
        json!([{"matchExpressions": [a]}, {"matchExpressions": [b]}]),
    ));
    let e = update_errs(&new, &old);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with(r#"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Invalid value: []core.NodeSelectorTerm{core.NodeSelectorTerm{MatchExpressions:[]core.NodeSelectorRequirement{core.NodeSelectorRequirement{Key:"a", Operator:"In", Values:[]string{"x"}}}"#), "{e:?}");
    assert!(
        e[0].ends_with(": no additions/deletions to non-empty NodeSelectorTerms list are allowed"),
        "{e:?}"
    );

    // Dropping the required affinity altogether is a deletion.
    let mut new = old.clone();
    new["spec"].as_object_mut().unwrap().remove("affinity");
    assert_eq!(
        update_errs(&new, &old),
        vec!["spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Invalid value: []core.NodeSelectorTerm(nil): no additions/deletions to non-empty NodeSelectorTerms list are allowed"]
    );

    // A gated pod without node affinity may get one.
    let mut plain = spec_with(vec![ctr("a", "nginx")]);
    plain["schedulingGates"] = json!([{"name": "g1"}]);
    let old = pod(plain);
    let new = pod(gated_with_terms(json!([{"matchExpressions": [a]}])));
    assert_eq!(update_errs(&new, &old), Vec::<String>::new());

    // Pod affinity stays immutable, gated or not.
    let mut new = new.clone();
    new["spec"]["affinity"]["podAffinity"] = json!({"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}]});
    let e = update_errs(&new, &old);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("spec: Forbidden: pod updates may not change fields other than"),
        "{e:?}"
    );
}
