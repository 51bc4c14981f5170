//! Node, Service, Event, Endpoints, volume, networking, RBAC, scheduling
//! and storage printer tests.

use serde_json::{json, Value};

use super::*;

#[test]
fn node_status_roles_and_wide_cells() {
    let node = json!({
        "metadata": {"name": "cp-1", "creationTimestamp": ago(3 * 86400 + 4 * 3600),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "master",
                       "node-role.kubernetes.io/": "x", "kubernetes.io/hostname": "cp-1"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "cp-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"}}
    });
    assert_eq!(
        cells("", "nodes", node),
        json!([
            "cp-1",
            "Ready,SchedulingDisabled",
            "control-plane,master",
            "3d4h",
            "v1.33.1",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0-18-amd64",
            "containerd://1.7.13"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let not_ready = json!({"metadata": {"name": "w"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let c = cells("", "nodes", not_ready);
    assert_eq!(
        c[1..5],
        [
            json!("NotReady"),
            json!("<none>"),
            json!("<unknown>"),
            json!("")
        ]
    );
    assert_eq!(c[7], "<unknown>");
    assert_eq!(
        cells("", "nodes", json!({"metadata": {"name": "x"}}))[1],
        "Unknown"
    );
}

#[test]
fn service_ports_and_external_ips() {
    let svc = |spec: Value, status: Value| json!({"metadata": {"name": "web", "creationTimestamp": ago(7200)}, "spec": spec, "status": status});
    let c = cells(
        "",
        "services",
        svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
               "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "nodePort": 30001, "protocol": "TCP"},
                         {"port": 53, "protocol": "UDP"}],
               "selector": {"tier": "fe", "app": "web"}}),
            json!({}),
        ),
    );
    assert_eq!(
        c,
        json!([
            "web",
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80/TCP,443:30001/TCP,53/UDP",
            "120m",
            "app=web,tier=fe"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let lb = svc(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}),
        json!({}),
    );
    assert_eq!(cells("", "services", lb)[3], "<pending>");
    let lb = svc(
        json!({"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]}),
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.2"}]}}),
    );
    let c = cells("", "services", lb);
    assert_eq!(
        c[2..5],
        [
            json!("<none>"),
            json!("203.0.113.2,203.0.113.9,lb.example.com,1.2.3.4"),
            json!("<none>")
        ]
    );
    assert_eq!(c[6], "<none>");
    let ext = svc(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    assert_eq!(cells("", "services", ext)[3], "db.example.com");
    let headless = svc(
        json!({"type": "ClusterIP", "clusterIP": "None", "externalIPs": ["5.6.7.8", "5.6.7.9"]}),
        json!({}),
    );
    assert_eq!(
        cells("", "services", headless)[2..4],
        [json!("None"), json!("5.6.7.8,5.6.7.9")]
    );
}

#[test]
fn event_columns_and_cells() {
    assert_eq!(
        names("", "events"),
        [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    assert_eq!(
        column_definitions(res("events.k8s.io", "events")),
        column_definitions(res("", "events"))
    );
    let ev = json!({"metadata": {"name": "web.17c0f1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{nginx}"},
        "reason": "BackOff", "message": "Back-off restarting failed container\n", "type": "Warning",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(3600), "lastTimestamp": ago(30), "count": 12});
    assert_eq!(
        cells("", "events", ev),
        json!([
            "30s",
            "Warning",
            "BackOff",
            "pod/web",
            "spec.containers{nginx}",
            "kubelet, node-1",
            "Back-off restarting failed container",
            "60m",
            12,
            "web.17c0f1"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let singleton = json!({"metadata": {"name": "n.1"}, "involvedObject": {"kind": "Node"}, "type": "Normal",
        "reason": "Starting", "eventTime": "2024-05-01T11:58:00.000000Z", "reportingComponent": "kube-proxy",
        "reportingController": "kube-proxy", "reportingInstance": ""});
    let c = cells("", "events", singleton);
    assert_eq!(c[0], "2m");
    assert_eq!(c[3], "node");
    assert_eq!(c[5], "kube-proxy");
    assert_eq!(c[7..9], [json!("2m"), json!(1)]);
}

#[test]
fn events_k8s_io_event_cells() {
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.abc", "namespace": "default"},
        "eventTime": "2024-05-01T11:00:00.000000Z", "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:00.000000Z"},
        "reportingController": "kubelet", "reportingInstance": "node-1", "action": "Pulling",
        "reason": "Pulling", "regarding": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "note": "Pulling image \"nginx\"", "type": "Normal"});
    assert_eq!(
        cells("events.k8s.io", "events", ev),
        json!([
            "60s",
            "Normal",
            "Pulling",
            "pod/web",
            "spec.containers{app}",
            "kubelet, node-1",
            "Pulling image \"nginx\"",
            "60m",
            4,
            "web.abc"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn endpoints_and_endpointslices() {
    let ep = json!({"metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "ports": [{"port": 80}, {"port": 443}]}]});
    assert_eq!(
        cells("", "endpoints", ep)[1],
        "10.0.0.1:80,[fd00::1]:80,10.0.0.1:443 + 1 more..."
    );
    assert_eq!(
        cells("", "endpoints", json!({"metadata": {"name": "x"}}))[1],
        "<none>"
    );
    let headless =
        json!({"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "10.0.0.7"}]}]});
    assert_eq!(cells("", "endpoints", headless)[1], "10.0.0.7");
    let es = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
    let c = cells("discovery.k8s.io", "endpointslices", es);
    assert_eq!(
        c[1..4],
        [
            json!("IPv4"),
            json!("80,named,*"),
            json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")
        ]
    );
    let empty = cells(
        "discovery.k8s.io",
        "endpointslices",
        json!({"metadata": {"name": "e"}}),
    );
    assert_eq!(empty[2..4], [json!("<unset>"), json!("<unset>")]);
}

#[test]
fn volumes_and_quotas() {
    let pv = json!({"metadata": {"name": "pv1", "creationTimestamp": ago(60)},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                 "claimRef": {"namespace": "default", "name": "data"}},
        "status": {"phase": "Bound"}});
    assert_eq!(
        cells("", "persistentvolumes", pv),
        json!([
            "pv1",
            "10Gi",
            "RWO,RWX",
            "Retain",
            "Bound",
            "default/data",
            "fast",
            "<unset>",
            "",
            "60s",
            "Filesystem"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let pvc = json!({"metadata": {"name": "data", "creationTimestamp": ago(60), "deletionTimestamp": ago(1)},
        "spec": {"volumeName": "pv1", "storageClassName": "fast", "volumeMode": "Block"},
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        cells("", "persistentvolumeclaims", pvc),
        json!([
            "data",
            "Terminating",
            "pv1",
            "10Gi",
            "RWO",
            "fast",
            "<unset>",
            "60s",
            "Block"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let pending = json!({"metadata": {"name": "p", "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
        "spec": {"storageClassName": "new"}, "status": {"phase": "Pending"}});
    assert_eq!(
        cells("", "persistentvolumeclaims", pending)[1..6],
        [
            json!("Pending"),
            json!(""),
            json!(""),
            json!(""),
            json!("old")
        ]
    );
    let rq = json!({"metadata": {"name": "q"}, "status": {
        "hard": {"requests.cpu": "1", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "2"},
        "used": {"requests.cpu": "500m", "pods": "3", "limits.cpu": "1"}}});
    assert_eq!(
        cells("", "resourcequotas", rq)[1..3],
        [
            json!("pods: 3/10, requests.cpu: 500m/1"),
            json!("limits.cpu: 1/2, limits.memory: 0/2Gi")
        ]
    );
}

#[test]
fn networking_policy_rbac_scheduling_storage() {
    let ing = json!({"metadata": {"name": "web"}, "spec": {"ingressClassName": "nginx",
        "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}, {"host": "c.example.com"}, {"host": "d.example.com"}],
        "tls": [{"hosts": ["a.example.com"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}});
    let c = cells("networking.k8s.io", "ingresses", ing);
    assert_eq!(
        c[1..5],
        [
            json!("nginx"),
            json!("a.example.com,b.example.com,c.example.com + 2 more..."),
            json!("198.51.100.7"),
            json!("80, 443")
        ]
    );
    let bare = cells(
        "networking.k8s.io",
        "ingresses",
        json!({"metadata": {"name": "x"}}),
    );
    assert_eq!(
        bare[1..5],
        [json!("<none>"), json!("*"), json!(""), json!("80")]
    );
    let ic = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
    assert_eq!(
        cells("networking.k8s.io", "ingressclasses", ic)[1..3],
        [
            json!("k8s.io/ingress-nginx"),
            json!("IngressParameters.k8s.example.com/external-lb")
        ]
    );
    let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
    assert_eq!(
        cells("networking.k8s.io", "networkpolicies", np)[1],
        "<none>"
    );
    let np = json!({"metadata": {"name": "db"}, "spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
    assert_eq!(
        cells("networking.k8s.io", "networkpolicies", np)[1],
        "role=db"
    );
    let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells("policy", "poddisruptionbudgets", pdb)[1..4],
        [json!("50%"), json!("N/A"), json!(1)]
    );
    let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                     {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"}, {"kind": "User", "name": "bob"}]});
    let c = cells("rbac.authorization.k8s.io", "rolebindings", rb.clone());
    assert_eq!(
        c,
        json!([
            "rb",
            "ClusterRole/view",
            "<unknown>",
            "alice, bob",
            "devs",
            "ci/bot"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    assert_eq!(
        cells("rbac.authorization.k8s.io", "clusterrolebindings", rb),
        c
    );
    let pc = json!({"metadata": {"name": "high"}, "value": 1000000, "globalDefault": false});
    assert_eq!(
        cells("scheduling.k8s.io", "priorityclasses", pc)[1..5],
        [
            json!(1000000),
            json!(false),
            json!("<unknown>"),
            json!("PreemptLowerPriority")
        ]
    );
    let sc = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
    assert_eq!(
        cells("storage.k8s.io", "storageclasses", sc)[..5],
        [
            json!("standard (default)"),
            json!("rancher.io/local-path"),
            json!("Delete"),
            json!("WaitForFirstConsumer"),
            json!(false)
        ]
    );
    let rc = json!({"metadata": {"name": "gvisor"}, "handler": "runsc"});
    assert_eq!(cells("node.k8s.io", "runtimeclasses", rc)[1], "runsc");
}
