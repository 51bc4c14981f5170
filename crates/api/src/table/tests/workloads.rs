//! Deployment, ReplicaSet, DaemonSet, StatefulSet, Job and CronJob tests.

use serde_json::{json, Value};

use super::*;

fn workload(kind_spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "web", "creationTimestamp": ago(86400 * 10)}, "spec": kind_spec, "status": status})
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
}

#[test]
fn deployment_cells() {
    assert_eq!(
        names("apps", "deployments"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let d = workload(
        json!({"replicas": 3, "selector": {"matchLabels": {"app": "web"},
               "matchExpressions": [{"key": "env", "operator": "In", "values": ["staging", "prod"]},
                                    {"key": "canary", "operator": "DoesNotExist"}]},
               "template": template()}),
        json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}),
    );
    assert_eq!(
        cells("apps", "deployments", d),
        json!([
            "web",
            "2/3",
            3,
            2,
            "10d",
            "nginx,log",
            "nginx:1.27,busybox",
            "app=web,!canary,env in (prod,staging)"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let fresh = workload(json!({"selector": {}}), json!({}));
    assert_eq!(
        cells("apps", "deployments", fresh)[1..4],
        [json!("0/1"), json!(0), json!(0)]
    );
    let bad = workload(
        json!({"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
        json!({}),
    );
    assert_eq!(cells("apps", "deployments", bad)[7], "<invalid>");
}

#[test]
fn replicaset_daemonset_statefulset_cells() {
    let rs = workload(
        json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template()}),
        json!({"replicas": 2, "readyReplicas": 1}),
    );
    assert_eq!(
        cells("apps", "replicasets", rs)[..5],
        [json!("web"), json!(2), json!(2), json!(1), json!("10d")]
    );
    let mut tpl = template();
    tpl["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    let ds = workload(
        json!({"selector": {"matchLabels": {"app": "web"}}, "template": tpl}),
        json!({"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3,
               "numberAvailable": 2}),
    );
    assert_eq!(
        cells("apps", "daemonsets", ds),
        json!([
            "web",
            3,
            3,
            2,
            3,
            2,
            "kubernetes.io/os=linux",
            "10d",
            "nginx,log",
            "nginx:1.27,busybox",
            "app=web"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let sts = workload(
        json!({"replicas": 3, "template": template()}),
        json!({"readyReplicas": 3}),
    );
    assert_eq!(
        cells("apps", "statefulsets", sts),
        json!(["web", "3/3", "10d", "nginx,log", "nginx:1.27,busybox"])
            .as_array()
            .unwrap()
            .clone()
    );
    let empty = workload(json!({}), json!({}));
    assert_eq!(cells("apps", "replicasets", empty)[7], "<none>");
}

fn job(spec: Value, status: Value) -> Value {
    let mut spec = spec;
    spec["template"] = template();
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}});
    json!({"metadata": {"name": "pi", "creationTimestamp": ago(600)}, "spec": spec, "status": status})
}

#[test]
fn job_cells() {
    assert_eq!(
        names("batch", "jobs"),
        [
            ("Name", 0),
            ("Status", 0),
            ("Completions", 0),
            ("Duration", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let done = job(
        json!({"completions": 1, "parallelism": 1}),
        json!({"succeeded": 1, "startTime": ago(590), "completionTime": ago(545),
               "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
    );
    assert_eq!(
        cells("batch", "jobs", done),
        json!([
            "pi",
            "Complete",
            "1/1",
            "45s",
            "10m",
            "nginx,log",
            "nginx:1.27,busybox",
            "batch.kubernetes.io/controller-uid=abc"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let running = job(
        json!({"parallelism": 3}),
        json!({"active": 3, "startTime": ago(200)}),
    );
    assert_eq!(
        cells("batch", "jobs", running)[1..4],
        [json!("Running"), json!("0/1 of 3"), json!("3m20s")]
    );
    let queued = job(
        json!({"completions": 5, "suspend": true}),
        json!({"succeeded": 2, "conditions": [{"type": "Suspended", "status": "True"}]}),
    );
    assert_eq!(
        cells("batch", "jobs", queued)[1..4],
        [json!("Suspended"), json!("2/5"), json!("")]
    );
    let failed = job(
        json!({}),
        json!({"startTime": ago(100), "conditions": [
        {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}),
    );
    assert_eq!(
        cells("batch", "jobs", failed)[1..3],
        [json!("Failed"), json!("0/1")]
    );
    let mut deleting = job(
        json!({}),
        json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
    );
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("batch", "jobs", deleting)[1], "Terminating");
}

#[test]
fn cronjob_cells() {
    let cj = json!({"metadata": {"name": "nightly", "creationTimestamp": ago(86400 * 30)},
        "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "suspend": false,
                 "jobTemplate": {"spec": {"template": template()}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(3 * 3600 + 300)}});
    assert_eq!(
        cells("batch", "cronjobs", cj),
        json!([
            "nightly",
            "0 3 * * *",
            "Europe/Berlin",
            "False",
            1,
            "3h5m",
            "30d",
            "nginx,log",
            "nginx:1.27,busybox",
            "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let bare = json!({"metadata": {"name": "c"}, "spec": {"schedule": "@hourly", "suspend": true}});
    assert_eq!(
        cells("batch", "cronjobs", bare)[2..6],
        [json!("<none>"), json!("True"), json!(0), json!("<none>")]
    );
}

#[test]
fn controllerrevision_cells() {
    assert_eq!(
        names("apps", "controllerrevisions"),
        [("Name", 0), ("Controller", 0), ("Revision", 0), ("Age", 0)]
            .map(|(n, p)| (n.to_string(), p))
    );
    let cr = json!({"metadata": {"name": "web-5d8f7c", "creationTimestamp": ago(86400 * 10),
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Pod", "name": "other", "uid": "1"},
                        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "2", "controller": true}]},
                    "data": {}, "revision": 3});
    assert_eq!(
        cells("apps", "controllerrevisions", cr),
        [
            json!("web-5d8f7c"),
            json!("statefulset.apps/web"),
            json!(3),
            json!("10d")
        ]
    );
    let orphan =
        json!({"metadata": {"name": "x", "creationTimestamp": ago(60)}, "data": {}, "revision": 1});
    assert_eq!(cells("apps", "controllerrevisions", orphan)[1], "<none>");
}
