//! Tests of apps/v1 and batch/v1 validation against upstream's messages.

use serde_json::{json, Value};

use super::{validate_create, validate_update};
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

fn template(labels: Value, restart: &str) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {
        "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File"}],
        "restartPolicy": restart, "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30}})
}

fn deployment(selector: Value, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": selector, "template": template(labels, "Always"),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}})
}

#[test]
fn deployment_valid_and_selector_errors() {
    let ok = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web", "x": "y"}),
    );
    assert_eq!(errs("apps", "Deployment", &ok), Vec::<String>::new());

    let bad = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "api"}),
    );
    assert_eq!(
        errs("apps", "Deployment", &bad),
        vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"]
    );
    let empty = deployment(json!({}), json!({"app": "web"}));
    assert_eq!(
        errs("apps", "Deployment", &empty),
        vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
    );
    let mut missing = ok.clone();
    missing["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(
        errs("apps", "Deployment", &missing)[0],
        "spec.selector: Required value"
    );
}

#[test]
fn deployment_spec_fields() {
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
    d["spec"]["revisionHistoryLimit"] = json!(-2);
    assert_eq!(
        errs("apps", "Deployment", &d),
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
            "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
        ]
    );
    d["spec"]["replicas"] = json!(1);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    d["spec"]["revisionHistoryLimit"] = json!(1);
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
    assert_eq!(
        errs("apps", "Deployment", &d),
        vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    );
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%", "maxSurge": "x"}});
    assert_eq!(
        errs("apps", "Deployment", &d),
        vec![
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
        ]
    );
    // The pod template is validated with paths under spec.template.spec.
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}});
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    assert_eq!(
        errs("apps", "Deployment", &d),
        vec!["spec.template.spec.containers[0].image: Required value"]
    );
}

#[test]
fn workload_selector_is_immutable() {
    let old = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web", "v": "2"}),
    );
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"matchLabels": {"v": "2"}});
    new["spec"]["replicas"] = json!(5);
    assert_eq!(
        update_errs("apps", "Deployment", &new, &old),
        vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
    );
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(3);
    assert_eq!(
        update_errs("apps", "Deployment", &scaled, &old),
        Vec::<String>::new()
    );
}

#[test]
fn daemonset_and_statefulset() {
    let ds = json!({"metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template(json!({"app": "agent"}), "Always"),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}, "revisionHistoryLimit": 10}});
    assert_eq!(
        errs("apps", "DaemonSet", &ds),
        vec!["spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: may not be set when maxUnavailable is non-zero"]
    );
    let sts = json!({"metadata": {"name": "db.primary", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": template(json!({"app": "db"}), "Always"),
            "serviceName": "db", "replicas": 1, "podManagementPolicy": "Sometimes",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}}});
    assert_eq!(
        errs("apps", "StatefulSet", &sts),
        vec![
            "metadata.name: Invalid value: \"db.primary\": must not contain dots",
            "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'",
        ]
    );
    let mut old = sts.clone();
    old["metadata"]["name"] = json!("db");
    old["spec"]["podManagementPolicy"] = json!("OrderedReady");
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(3);
    assert_eq!(
        update_errs("apps", "StatefulSet", &new, &old),
        Vec::<String>::new()
    );
    new["spec"]["serviceName"] = json!("other");
    assert_eq!(
        update_errs("apps", "StatefulSet", &new, &old),
        vec!["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]
    );
}

fn job(restart: &str) -> Value {
    json!({"metadata": {"name": "pi", "namespace": "default"},
        "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": template(json!({"batch.kubernetes.io/controller-uid": "u", "job-name": "pi"}), restart)}})
}

#[test]
fn job_rules() {
    assert_eq!(errs("batch", "Job", &job("Never")), Vec::<String>::new());
    assert_eq!(
        errs("batch", "Job", &job("Always")),
        vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
    );
    let mut j = job("OnFailure");
    j["spec"]["backoffLimit"] = json!(-1);
    j["spec"]["completionMode"] = json!("Indexed");
    j["spec"].as_object_mut().unwrap().remove("completions");
    assert_eq!(
        errs("batch", "Job", &j),
        vec![
            "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
            "spec.completions: Required value: when completion mode is Indexed",
        ]
    );
    let old = job("Never");
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox");
    new["spec"]["completions"] = json!(3);
    let e = update_errs("batch", "Job", &new, &old);
    assert_eq!(
        e[0],
        "spec.completions: Invalid value: 3: field is immutable"
    );
    assert!(
        e[1].starts_with("spec.template: Invalid value: ")
            && e[1].ends_with(": field is immutable"),
        "{e:?}"
    );
}

#[test]
fn cronjob_rules() {
    let cj = |schedule: &str| {
        json!({"metadata": {"name": "tick", "namespace": "default"},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": false,
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"template": template(json!({}), "OnFailure")}}}})
    };
    assert_eq!(
        errs("batch", "CronJob", &cj("*/1 * * * *")),
        Vec::<String>::new()
    );
    assert_eq!(
        errs("batch", "CronJob", &cj("every minute")),
        vec!["spec.schedule: Invalid value: \"every minute\": expected exactly 5 fields, found 2: [every minute]"]
    );
    assert_eq!(
        errs("batch", "CronJob", &cj("")),
        vec!["spec.schedule: Required value"]
    );
    let mut c = cj("@hourly");
    c["spec"]["concurrencyPolicy"] = json!("Sometimes");
    c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    c["metadata"]["name"] = json!("a".repeat(53));
    assert_eq!(
        errs("batch", "CronJob", &c),
        vec![
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
            "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            &format!("metadata.name: Invalid value: \"{}\": must be no more than 52 characters", "a".repeat(53)),
        ]
    );
}

#[test]
fn controller_revision() {
    let cr = json!({"metadata": {"name": "web-7b9c", "namespace": "default"},
        "data": {"spec": {"template": {}}}, "revision": 2});
    assert_eq!(
        errs("apps", "ControllerRevision", &cr),
        Vec::<String>::new()
    );
    let bad = json!({"metadata": {"name": "web-7b9c", "namespace": "default"}, "revision": -1});
    assert_eq!(
        errs("apps", "ControllerRevision", &bad),
        vec![
            "data: Required value: data is mandatory",
            "revision: Invalid value: -1: must be greater than or equal to 0",
        ]
    );
    let mut old = cr.clone();
    old["metadata"]["resourceVersion"] = json!("5");
    let mut new = old.clone();
    new["revision"] = json!(3);
    assert_eq!(
        update_errs("apps", "ControllerRevision", &new, &old),
        Vec::<String>::new()
    );
    new["data"] = json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}});
    let e = update_errs("apps", "ControllerRevision", &new, &old);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("data: Invalid value: "), "{e:?}");
    assert!(e[0].ends_with(": field is immutable"), "{e:?}");
}
