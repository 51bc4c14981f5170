//! Pod printer tests: status reasons, readiness, restarts, wide cells.

use serde_json::{json, Value};

use super::*;

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(300)},
        "spec": spec,
        "status": status,
    })
}

fn running(name: &str, ready: bool, restarts: i64) -> Value {
    json!({"name": name, "ready": ready, "restartCount": restarts, "started": true,
           "state": {"running": {"startedAt": ago(290)}}})
}

#[test]
fn pod_columns_match_upstream() {
    let cols = column_definitions(res("", "pods"));
    assert_eq!(
        cols[0],
        json!({"name": "Name", "type": "string", "format": "name",
        "description": crate::table::docs::META_NAME, "priority": 0})
    );
    assert_eq!(
        names("", "pods"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
}

#[test]
fn pod_running() {
    let p = pod(
        json!({"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]}),
        json!({"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [running("a", true, 0), running("b", true, 0)]}),
    );
    assert_eq!(
        cells("", "pods", p),
        json!(["web", "2/2", "Running", "0", "5m", "10.0.0.5", "node-1", "<none>", "<none>"])
            .as_array()
            .unwrap()
            .clone()
    );
}

#[test]
fn pod_pending_container_creating() {
    let p = pod(
        json!({"nodeName": "node-1", "containers": [{"name": "a"}]}),
        json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    let c = cells("", "pods", p);
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], "ContainerCreating");
    assert_eq!(c[3], "0");
    assert_eq!(c[5], "<none>");
}

#[test]
fn pod_pending_unscheduled_prints_phase() {
    let p = pod(
        json!({"containers": [{"name": "a"}]}),
        json!({"phase": "Pending"}),
    );
    let c = cells("", "pods", p);
    assert_eq!(c[1..4], [json!("0/1"), json!("Pending"), json!("0")]);
    assert_eq!(c[6], "<none>");
}

#[test]
fn pod_completed_has_row_condition() {
    let p = pod(
        json!({"containers": [{"name": "job"}]}),
        json!({"phase": "Succeeded", "containerStatuses": [{"name": "job", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(60)}}}]}),
    );
    let c = cells("", "pods", p.clone());
    assert_eq!(c[1..3], [json!("0/1"), json!("Completed")]);
    let conds = row_conditions(res("", "pods"), &p).unwrap();
    assert_eq!(conds[0]["type"], "Completed");
    assert_eq!(conds[0]["reason"], "Succeeded");
    let failed = pod(json!({}), json!({"phase": "Failed"}));
    assert_eq!(
        row_conditions(res("", "pods"), &failed).unwrap()[0]["message"],
        "The pod failed."
    );
    assert!(row_conditions(
        res("", "pods"),
        &pod(json!({}), json!({"phase": "Running"}))
    )
    .is_none());
}

#[test]
fn pod_terminating_and_node_lost() {
    let mut p = pod(
        json!({"containers": [{"name": "a"}]}),
        json!({"phase": "Running", "containerStatuses": [running("a", true, 0)]}),
    );
    p["metadata"]["deletionTimestamp"] = json!(ago(10));
    assert_eq!(cells("", "pods", p.clone())[2], "Terminating");
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("", "pods", p.clone())[2], "Unknown");
    // Finished pods keep their status while being deleted.
    let mut done = pod(
        json!({"containers": [{"name": "a"}]}),
        json!({"phase": "Succeeded"}),
    );
    done["metadata"]["deletionTimestamp"] = json!(ago(10));
    assert_eq!(cells("", "pods", done)[2], "Succeeded");
}

#[test]
fn pod_crashloop_with_restarts() {
    let p = pod(
        json!({"containers": [{"name": "a"}, {"name": "b"}]}),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(125)}}},
            {"name": "b", "ready": true, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 137, "finishedAt": ago(3600)}}}]}),
    );
    let c = cells("", "pods", p);
    assert_eq!(
        c[1..4],
        [
            json!("1/2"),
            json!("CrashLoopBackOff"),
            json!("5 (2m5s ago)")
        ]
    );
}

#[test]
fn pod_terminated_without_reason_prints_exit_code_or_signal() {
    let status = |term: Value| {
        pod(
            json!({"containers": [{"name": "a"}]}),
            json!({"phase": "Running", "containerStatuses": [{"name": "a", "state": {"terminated": term}}]}),
        )
    };
    assert_eq!(
        cells("", "pods", status(json!({"exitCode": 2})))[2],
        "ExitCode:2"
    );
    assert_eq!(
        cells("", "pods", status(json!({"exitCode": 137, "signal": 9})))[2],
        "Signal:9"
    );
    assert_eq!(
        cells(
            "",
            "pods",
            status(json!({"exitCode": 1, "reason": "Error"}))
        )[2],
        "Error"
    );
}

#[test]
fn pod_init_containers() {
    let spec =
        json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]});
    let with_init = |statuses: Value| {
        pod(
            spec.clone(),
            json!({"phase": "Pending", "initContainerStatuses": statuses,
            "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        )
    };
    let done =
        json!({"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let c = cells(
        "",
        "pods",
        with_init(json!([{"name": "i1", "state": {"running": {}}}, {"name": "i2"}])),
    );
    assert_eq!(c[1..4], [json!("0/1"), json!("Init:0/2"), json!("0")]);
    let c = cells(
        "",
        "pods",
        with_init(json!([done, {"name": "i2", "state": {"running": {}}}])),
    );
    assert_eq!(c[2], "Init:1/2");
    let c = cells(
        "",
        "pods",
        with_init(json!([done, {"name": "i2", "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}])),
    );
    assert_eq!(
        c[2..4],
        [json!("Init:CrashLoopBackOff"), json!("3 (30s ago)")]
    );
    let c = cells(
        "",
        "pods",
        with_init(json!([{"name": "i1", "state": {"terminated": {"exitCode": 1}}}])),
    );
    assert_eq!(c[2], "Init:ExitCode:1");
    let c = cells(
        "",
        "pods",
        with_init(
            json!([{"name": "i1", "state": {"terminated": {"exitCode": 0, "signal": 9}}},
        {"name": "i2", "state": {"terminated": {"exitCode": 143, "signal": 15}}}]),
        ),
    );
    assert_eq!(c[2], "Init:Signal:15");
    let c = cells(
        "",
        "pods",
        with_init(
            json!([{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "OOMKilled"}}}]),
        ),
    );
    assert_eq!(c[2], "Init:OOMKilled");
}

#[test]
fn pod_sidecar_counts_toward_ready() {
    let p = pod(
        json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}]}),
        json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
               "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 2,
                   "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}}],
               "containerStatuses": [running("a", true, 0)]}),
    );
    let c = cells("", "pods", p);
    assert_eq!(
        c[1..4],
        [json!("2/2"), json!("Running"), json!("2 (10m ago)")]
    );
}

#[test]
fn pod_completed_with_running_container() {
    let status = |ready: &str| {
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
               "containerStatuses": [
                   running("b", true, 0),
                   {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
    };
    let spec = json!({"containers": [{"name": "a"}, {"name": "b"}]});
    assert_eq!(
        cells("", "pods", pod(spec.clone(), status("True")))[1..3],
        [json!("1/2"), json!("Running")]
    );
    assert_eq!(cells("", "pods", pod(spec, status("False")))[2], "NotReady");
}

#[test]
fn pod_scheduling_gated_and_wide_cells() {
    let gated_cond = pod(
        json!({"containers": [{"name": "a"}]}),
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
    );
    assert_eq!(cells("", "pods", gated_cond)[2], "SchedulingGated");
    let gated_spec = pod(
        json!({"schedulingGates": [{"name": "example.com/wait"}], "containers": [{"name": "a"}]}),
        json!({}),
    );
    assert_eq!(cells("", "pods", gated_spec)[2], "SchedulingGated");
    let p = pod(
        json!({"nodeName": "n2", "containers": [{"name": "a"}],
               "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]}),
        json!({"phase": "Running", "podIP": "10.1.2.3", "nominatedNodeName": "n3",
               "conditions": [{"type": "example.com/lb", "status": "True"}, {"type": "example.com/dns", "status": "False"}],
               "containerStatuses": [running("a", true, 0)]}),
    );
    let c = cells("", "pods", p);
    assert_eq!(
        c[5..],
        [json!("10.1.2.3"), json!("n2"), json!("n3"), json!("1/2")]
    );
}
