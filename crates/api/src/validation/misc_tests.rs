//! Tests of the remaining kinds against upstream's messages.

use serde_json::{json, Value};

use super::{validate_create, validate_status_update, validate_update};
use crate::resources::lookup_kind;

fn errs(group: &str, kind: &str, obj: &Value) -> Vec<String> {
    let res = lookup_kind(group, kind).expect("known kind");
    validate_create(res, obj)
        .iter()
        .map(|x| x.to_string())
        .collect()
}

fn update_errs(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<String> {
    let res = lookup_kind(group, kind).expect("known kind");
    validate_update(res, new, old)
        .iter()
        .map(|x| x.to_string())
        .collect()
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "uid": "u", "resourceVersion": "1"})
}

fn service(spec: Value) -> Value {
    json!({"metadata": meta("web"), "spec": spec})
}

#[test]
fn service_rules() {
    let ok = service(
        json!({"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}], "selector": {"app": "web"}}),
    );
    assert_eq!(errs("", "Service", &ok), Vec::<String>::new());

    let mut bad = ok.clone();
    bad["metadata"]["name"] = json!("1web");
    bad["spec"]["ports"] = json!([{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
        {"name": "b", "port": 70000, "targetPort": "http", "protocol": "ICMP"}]);
    bad["spec"]["type"] = json!("Magic");
    bad["spec"]["clusterIP"] = json!("10.0.0.300");
    assert_eq!(
        errs("", "Service", &bad),
        vec![
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            "spec.ports[0].name: Required value",
            "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.clusterIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ]
    );
    let mut cip = ok.clone();
    cip["spec"]["ports"][0]["nodePort"] = json!(30080);
    assert_eq!(
        errs("", "Service", &cip),
        vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
    let mut np = ok.clone();
    np["spec"]["type"] = json!("NodePort");
    np["spec"]["externalTrafficPolicy"] = json!("Cluster");
    np["spec"]["ports"][0]["nodePort"] = json!(80);
    assert_eq!(
        errs("", "Service", &np),
        vec!["spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"]
    );
    let mut none = ok.clone();
    none["spec"]["ports"] = json!([]);
    assert_eq!(
        errs("", "Service", &none),
        vec!["spec.ports: Required value"]
    );
    none["spec"]["clusterIP"] = json!("None");
    assert_eq!(errs("", "Service", &none), Vec::<String>::new());
}

#[test]
fn service_cluster_ip_is_immutable() {
    let mut old = service(
        json!({"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}),
    );
    old["spec"]["clusterIP"] = json!("10.96.0.10");
    old["spec"]["clusterIPs"] = json!(["10.96.0.10"]);
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.96.0.11");
    new["spec"]["clusterIPs"] = json!(["10.96.0.11"]);
    assert_eq!(
        update_errs("", "Service", &new, &old),
        vec![
            "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"
        ]
    );
    let mut omitted = old.clone();
    omitted["spec"].as_object_mut().unwrap().remove("clusterIP");
    omitted["spec"]
        .as_object_mut()
        .unwrap()
        .remove("clusterIPs");
    assert_eq!(
        update_errs("", "Service", &omitted, &old),
        Vec::<String>::new()
    );
}

#[test]
fn configmap_and_secret() {
    let cm = json!({"metadata": meta("cfg"), "data": {"good.key": "v", "bad key": "v"}, "binaryData": {"good.key": "AA=="}});
    assert_eq!(
        errs("", "ConfigMap", &cm),
        vec![
            "data[good.key]: Invalid value: \"good.key\": duplicate of key present in binaryData",
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ]
    );
    let big = json!({"metadata": meta("cfg"), "data": {"k": "x".repeat(1024 * 1024 + 1)}});
    assert_eq!(
        errs("", "ConfigMap", &big),
        vec![": Too long: must have at most 1048576 bytes"]
    );

    let old = json!({"metadata": meta("cfg"), "immutable": true, "data": {"a": "1"}});
    let new = json!({"metadata": meta("cfg"), "immutable": true, "data": {"a": "2"}});
    assert_eq!(
        update_errs("", "ConfigMap", &new, &old),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );

    let tls =
        json!({"metadata": meta("cert"), "type": "kubernetes.io/tls", "data": {"tls.crt": "QQ=="}});
    assert_eq!(
        errs("", "Secret", &tls),
        vec!["data[tls.key]: Required value"]
    );
    let docker = json!({"metadata": meta("pull"), "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "bm90IGpzb24="}});
    let e = errs("", "Secret", &docker);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": "
        ),
        "{e:?}"
    );
    let mut retyped = tls.clone();
    retyped["type"] = json!("Opaque");
    assert_eq!(
        update_errs("", "Secret", &retyped, &tls),
        vec!["type: Invalid value: \"Opaque\": field is immutable"]
    );
}

#[test]
fn namespace_node_and_cluster_scoped_meta() {
    let ns =
        json!({"metadata": {"name": "team.a"}, "spec": {"finalizers": ["kubernetes", "custom"]}});
    assert_eq!(
        errs("", "Namespace", &ns),
        vec![
            "metadata.name: Invalid value: \"team.a\": must not contain dots",
            "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
        ]
    );
    let ok_ns = json!({"metadata": {"name": "team-a"}, "status": {"phase": "Active"}});
    let mut term = ok_ns.clone();
    term["status"]["phase"] = json!("Terminating");
    let res = lookup_kind("", "Namespace").unwrap();
    let e: Vec<String> = validate_status_update(res, &term, &ok_ns)
        .iter()
        .map(|x| x.to_string())
        .collect();
    assert_eq!(e, vec!["status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty"]);

    let node = json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.0.0/33",
        "taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}, {"key": "x", "effect": "Bad"}]}});
    assert_eq!(
        errs("", "Node", &node),
        vec![
            "metadata.taints[1]: Duplicate value: core.Taint{Key:\"k\", Value:\"\", Effect:\"NoSchedule\", TimeAdded:<nil>}: taints must be unique by key and effect pair",
            "metadata.taints[2].effect: Unsupported value: \"Bad\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            "spec.podCIDRs[0]: Invalid value: \"10.244.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ]
    );
    let old = json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.0.0/24"}});
    let new = json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}});
    assert_eq!(
        update_errs("", "Node", &new, &old),
        vec!["spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"]
    );
    assert_eq!(
        errs(
            "storage.k8s.io",
            "StorageClass",
            &json!({"metadata": {"name": "fast", "namespace": "x"}, "provisioner": "", "volumeBindingMode": "Immediate"})
        ),
        vec![
            "metadata.namespace: Forbidden: not allowed on this type",
            "provisioner: Required value"
        ]
    );
}

#[test]
fn storage_kinds() {
    let pvc = json!({"metadata": meta("data"), "spec": {"accessModes": [], "resources": {"requests": {}}, "volumeMode": "Filesystem"}});
    assert_eq!(
        errs("", "PersistentVolumeClaim", &pvc),
        vec![
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value"
        ]
    );
    let pv = json!({"metadata": {"name": "pv1"}, "spec": {"accessModes": ["ReadWriteSometimes"], "capacity": {"storage": "0"},
        "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}});
    assert_eq!(
        errs("", "PersistentVolume", &pv),
        vec![
            "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            "spec.capacity[storage]: Invalid value: \"0\": must be greater than zero",
            "spec: Required value: must specify a volume type",
        ]
    );
    let old = json!({"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}});
    let mut grown = old.clone();
    grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(
        update_errs("", "PersistentVolumeClaim", &grown, &old),
        Vec::<String>::new()
    );
    let mut changed = old.clone();
    changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    let e = update_errs("", "PersistentVolumeClaim", &changed, &old);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n  core.PersistentVolumeClaimSpec{\n- \tAccessModes: [\"ReadWriteOnce\"],"),
        "{e:?}"
    );
    let mut shrunk = old.clone();
    shrunk["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
    assert_eq!(
        update_errs("", "PersistentVolumeClaim", &shrunk, &old),
        vec!["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
    );
}

#[test]
fn networking_kinds() {
    let ing = json!({"metadata": meta("web"), "spec": {"rules": [{"host": "1.2.3.4", "http": {"paths": [
        {"path": "/a", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
        {"path": "a//b", "pathType": "Prefix", "backend": {"service": {"name": "web"}}}]}}]}});
    assert_eq!(
        errs("networking.k8s.io", "Ingress", &ing),
        vec![
            "spec.rules[0].host: Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
            "spec.rules[0].http.paths[1].path: Invalid value: \"a//b\": must be an absolute path",
            "spec.rules[0].http.paths[1].path: Invalid value: \"a//b\": must not contain '//'",
            "spec.rules[0].http.paths[1].backend: Required value: port name or number is required",
        ]
    );
    let np = json!({"metadata": meta("deny"), "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Sideways"],
        "ingress": [{"from": [{}], "ports": [{"port": 80, "endPort": 70}]}]}});
    assert_eq!(
        errs("networking.k8s.io", "NetworkPolicy", &np),
        vec![
            "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`",
            "spec.ingress[0].from[0]: Required value: must specify a peer",
            "spec.policyTypes[1]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\"",
        ]
    );
    let ic = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "nginx"}});
    assert_eq!(
        errs("networking.k8s.io", "IngressClass", &ic),
        vec!["spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"]
    );
}

#[test]
fn rbac_and_scheduling_and_policy() {
    let role = json!({"metadata": {"name": "system:reader", "namespace": "default"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
    assert_eq!(
        errs("rbac.authorization.k8s.io", "Role", &role),
        vec![
            "rules[0].verbs: Required value: verbs must contain at least one value",
            "rules[1].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
        ]
    );
    let crb = json!({"metadata": {"name": "a/b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}, {"kind": "Robot", "name": "x"}]});
    assert_eq!(
        errs("rbac.authorization.k8s.io", "ClusterRoleBinding", &crb),
        vec![
            "metadata.name: Invalid value: \"a/b\": may not contain '/'",
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
            "subjects[0].namespace: Required value",
            "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
        ]
    );
    let rb = json!({"metadata": meta("rb"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}});
    let mut rb2 = rb.clone();
    rb2["roleRef"]["name"] = json!("other");
    assert_eq!(
        update_errs("rbac.authorization.k8s.io", "RoleBinding", &rb2, &rb),
        vec!["roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other\"}: cannot change roleRef"]
    );
    let pc = json!({"metadata": {"name": "huge"}, "value": 2_000_000_000i64, "preemptionPolicy": "PreemptLowerPriority"});
    assert_eq!(
        errs("scheduling.k8s.io", "PriorityClass", &pc),
        vec!["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    );
    let sys = json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000i64, "globalDefault": true});
    assert_eq!(
        errs("scheduling.k8s.io", "PriorityClass", &sys),
        vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: globalDefault of system-node-critical PriorityClass must be false"]
    );
    let mut pc2 = pc.clone();
    pc2["value"] = json!(5);
    assert_eq!(
        update_errs("scheduling.k8s.io", "PriorityClass", &pc2, &pc),
        vec!["value: Forbidden: may not be changed in an update."]
    );
    let pdb = json!({"metadata": meta("pdb"), "spec": {"minAvailable": 1, "maxUnavailable": "150%", "selector": {"matchLabels": {"app": "web"}}}});
    let e = errs("policy", "PodDisruptionBudget", &pdb);
    assert!(
        e[0].starts_with("spec: Invalid value: ")
            && e[0].ends_with("minAvailable and maxUnavailable cannot be both set"),
        "{e:?}"
    );
    assert_eq!(e[1], "spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%");
    let rc = json!({"metadata": {"name": "gvisor"}, "handler": "run.sc"});
    assert_eq!(
        errs("node.k8s.io", "RuntimeClass", &rc),
        vec!["handler: Invalid value: \"run.sc\": must not contain dots"]
    );
    let lease =
        json!({"metadata": meta("l"), "spec": {"leaseDurationSeconds": 0, "holderIdentity": "me"}});
    assert_eq!(
        errs("coordination.k8s.io", "Lease", &lease),
        vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    );
}

#[test]
fn endpoints_quota_limits() {
    let ep = json!({"metadata": meta("web"), "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80, "protocol": "TCP"}]}, {}]});
    assert_eq!(
        errs("", "Endpoints", &ep),
        vec![
            "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
        ]
    );
    let slice = json!({"metadata": meta("web-abc"), "addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}],
        "ports": [{"name": "http", "protocol": "TCP", "port": 80}]});
    assert_eq!(
        errs("discovery.k8s.io", "EndpointSlice", &slice),
        vec!["endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address"]
    );
    let mut slice2 = slice.clone();
    slice2["addressType"] = json!("IPv6");
    assert_eq!(
        update_errs("discovery.k8s.io", "EndpointSlice", &slice2, &slice),
        vec!["addressType: Invalid value: \"IPv6\": field is immutable"]
    );
    let quota = json!({"metadata": meta("q"), "spec": {"hard": {"pods": "10", "cpu": "-1", "widgets": "1"}}});
    assert_eq!(
        errs("", "ResourceQuota", &quota),
        vec![
            "spec.hard[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource type or fully qualified",
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource for quota",
        ]
    );
    let lr = json!({"metadata": meta("lr"), "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}});
    assert_eq!(
        errs("", "LimitRange", &lr),
        vec!["spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"]
    );
}
