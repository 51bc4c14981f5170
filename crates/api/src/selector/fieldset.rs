//! The fields each resource can be selected by, as upstream splits it: the
//! field labels a kind's conversion function accepts (anything else is a 400
//! with that kind's message), and the values its `ToSelectableFields` /
//! `GetAttrs` computes from an object. A label that is accepted but never
//! computed (pods' `status.podIPs`) reads as "".

use serde_json::Value;

use super::{go_quote, FieldSelector, SelectorError};
use crate::resources::ResourceInfo;

/// How a kind rejects a field label it does not accept.
#[derive(Clone, Copy)]
enum Reject {
    /// `field label not supported: <label>` (the core/v1 and events funcs).
    NotSupported,
    /// batch/v1 Job: `field label "<label>" not supported for Job`.
    Job,
    /// `runtime.DefaultMetaV1FieldSelectorConversion`, used by every kind
    /// without its own function.
    Default,
}

struct Rules {
    accepted: &'static [&'static str],
    reject: Reject,
}

const DEFAULT_RULES: Rules = Rules {
    accepted: &["metadata.name", "metadata.namespace"],
    reject: Reject::Default,
};

fn rules(group: &str, plural: &str) -> Rules {
    let (accepted, reject): (&'static [&'static str], Reject) = match (group, plural) {
        ("", "pods") => (
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
                "spec.host",
            ],
            Reject::NotSupported,
        ),
        ("", "nodes") => (
            &["metadata.name", "spec.unschedulable"],
            Reject::NotSupported,
        ),
        ("", "replicationcontrollers") => (
            &["metadata.name", "metadata.namespace", "status.replicas"],
            Reject::NotSupported,
        ),
        ("", "events") => (
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
                "metadata.namespace",
                "metadata.name",
            ],
            Reject::NotSupported,
        ),
        ("events.k8s.io", "events") => (
            &[
                "reason",
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reportingController",
                "source",
                "type",
                "metadata.namespace",
                "metadata.name",
            ],
            Reject::NotSupported,
        ),
        ("", "namespaces") => (&["status.phase", "metadata.name"], Reject::NotSupported),
        ("", "secrets") => (
            &["type", "metadata.namespace", "metadata.name"],
            Reject::NotSupported,
        ),
        ("", "services") => (
            &[
                "metadata.namespace",
                "metadata.name",
                "spec.clusterIP",
                "spec.type",
            ],
            Reject::NotSupported,
        ),
        ("batch", "jobs") => (
            &["metadata.name", "metadata.namespace", "status.successful"],
            Reject::Job,
        ),
        _ => return DEFAULT_RULES,
    };
    Rules { accepted, reject }
}

fn reject_message(reject: Reject, label: &str) -> String {
    match reject {
        Reject::NotSupported => format!("field label not supported: {label}"),
        Reject::Job => format!("field label {} not supported for Job", go_quote(label)),
        Reject::Default => format!(
            "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            go_quote(label)
        ),
    }
}

/// Checks every term's field against the resource's accepted field labels;
/// the first unaccepted one yields upstream's 400 message.
pub fn check_supported(res: &ResourceInfo, sel: &FieldSelector) -> Result<(), SelectorError> {
    let r = rules(res.group, res.plural);
    for req in sel.requirements() {
        if !r.accepted.contains(&req.field.as_str()) {
            return Err(SelectorError::UnsupportedField {
                field: req.field.clone(),
                message: reject_message(r.reject, &req.field),
            });
        }
    }
    Ok(())
}

/// The string at a dotted path; non-strings print as JSON scalars, missing
/// or structured values as "".
fn text(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn boolean(obj: &Value, path: &str) -> String {
    (text(obj, path) == "true").to_string()
}

fn integer(obj: &Value, path: &str) -> String {
    text(obj, path).parse::<i64>().unwrap_or(0).to_string()
}

fn first_non_empty(a: String, b: impl FnOnce() -> String) -> String {
    if a.is_empty() {
        b()
    } else {
        a
    }
}

/// The value upstream's field set holds for `field` on `obj`, in its
/// string form (bools as "true"/"false", absent strings as ""). `None`
/// when the field is not in the resource's field set (it then reads as
/// ""). Accepts the aliases the resource's conversion accepts
/// (`spec.host` for pods, `regarding.*` for events.k8s.io events).
pub fn field_value(res: &ResourceInfo, obj: &Value, field: &str) -> Option<String> {
    match field {
        "metadata.name" => return Some(text(obj, "metadata.name")),
        "metadata.namespace" => return res.namespaced.then(|| text(obj, "metadata.namespace")),
        _ => {}
    }
    let v = match (res.group, res.plural, field) {
        ("", "pods", "spec.nodeName" | "spec.host") => text(obj, "spec.nodeName"),
        (
            "",
            "pods",
            "spec.restartPolicy"
            | "spec.schedulerName"
            | "spec.serviceAccountName"
            | "status.phase",
        ) => text(obj, field),
        ("", "pods", "status.nominatedNodeName") => text(obj, field),
        ("", "pods", "spec.hostNetwork") => boolean(obj, field),
        // The v1 `podIP` is authoritative over `podIPs[0]` when both are set.
        ("", "pods", "status.podIP") => first_non_empty(text(obj, "status.podIP"), || {
            obj.pointer("/status/podIPs/0/ip")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        }),
        ("", "nodes", "spec.unschedulable") => boolean(obj, field),
        ("", "namespaces", "status.phase") => text(obj, field),
        ("", "secrets", "type") => text(obj, field),
        ("", "services", "spec.clusterIP" | "spec.type") => text(obj, field),
        ("", "replicationcontrollers", "status.replicas") => integer(obj, field),
        ("batch", "jobs", "status.successful") => integer(obj, "status.succeeded"),
        (
            "",
            "events",
            "involvedObject.kind"
            | "involvedObject.namespace"
            | "involvedObject.name"
            | "involvedObject.uid"
            | "involvedObject.apiVersion"
            | "involvedObject.resourceVersion"
            | "involvedObject.fieldPath"
            | "reason"
            | "reportingComponent"
            | "type",
        ) => text(obj, field),
        ("", "events", "source") => first_non_empty(text(obj, "source.component"), || {
            text(obj, "reportingComponent")
        }),
        (
            "events.k8s.io",
            "events",
            "regarding.kind"
            | "regarding.namespace"
            | "regarding.name"
            | "regarding.uid"
            | "regarding.apiVersion"
            | "regarding.resourceVersion"
            | "regarding.fieldPath"
            | "reason"
            | "reportingController"
            | "type",
        ) => text(obj, field),
        ("events.k8s.io", "events", "source") => {
            first_non_empty(text(obj, "deprecatedSource.component"), || {
                text(obj, "reportingController")
            })
        }
        _ => return None,
    };
    Some(v)
}

impl FieldSelector {
    /// `matches` with the values `field_value` computes for `res`.
    pub fn matches_object(&self, res: &ResourceInfo, obj: &Value) -> bool {
        self.matches(|f| field_value(res, obj, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;
    use serde_json::json;

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, "v1", plural).expect("served resource")
    }

    fn check(group: &str, plural: &str, sel: &str) -> Result<(), String> {
        check_supported(res(group, plural), &FieldSelector::parse(sel).unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn unsupported_labels_use_each_kinds_message() {
        assert_eq!(
            check("", "pods", "status.hostIP=1.2.3.4"),
            Err("field label not supported: status.hostIP".into())
        );
        assert_eq!(
            check("", "pods", "spec.nodeName=n,status.podIPs=x,spec.host=n"),
            Ok(())
        );
        assert_eq!(
            check("", "configmaps", "data.x=1"),
            Err("\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"".into())
        );
        assert_eq!(
            check("", "configmaps", "metadata.namespace=a,metadata.name=b"),
            Ok(())
        );
        assert_eq!(
            check("", "persistentvolumes", "metadata.namespace="),
            Ok(())
        );
        assert_eq!(
            check("", "nodes", "metadata.namespace=x"),
            Err("field label not supported: metadata.namespace".into())
        );
        assert_eq!(check("", "namespaces", "status.phase=Active"), Ok(()));
        assert_eq!(
            check("batch", "jobs", "status.succeeded=1"),
            Err("field label \"status.succeeded\" not supported for Job".into())
        );
        assert!(
            check("apps", "replicasets", "status.replicas=1").is_err(),
            "apps/v1 registers no conversion"
        );
        assert_eq!(
            check(
                "events.k8s.io",
                "events",
                "regarding.kind=Pod,reportingController=x"
            ),
            Ok(())
        );
        assert!(check("events.k8s.io", "events", "involvedObject.kind=Pod").is_err());
        assert_eq!(check("", "services", "spec.type=ClusterIP"), Ok(()));
        assert_eq!(check("", "secrets", "type=Opaque"), Ok(()));
    }

    #[test]
    fn pod_fields_take_upstream_string_forms() {
        let pods = res("", "pods");
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}]}});
        assert_eq!(
            field_value(pods, &pod, "spec.hostNetwork").as_deref(),
            Some("false")
        );
        assert_eq!(
            field_value(pods, &pod, "status.podIP").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(field_value(pods, &pod, "spec.host").as_deref(), Some("n1"));
        assert_eq!(
            field_value(pods, &pod, "spec.schedulerName").as_deref(),
            Some("")
        );
        assert_eq!(field_value(pods, &pod, "status.podIPs"), None);
        assert_eq!(
            field_value(pods, &pod, "metadata.namespace").as_deref(),
            Some("ns")
        );
        let sel =
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed,spec.hostNetwork=false")
                .unwrap();
        assert!(sel.matches_object(pods, &pod));
        assert!(!FieldSelector::parse("status.podIPs=10.0.0.5")
            .unwrap()
            .matches_object(pods, &pod));
    }

    #[test]
    fn other_kinds_compute_their_fields() {
        let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert_eq!(
            field_value(res("", "nodes"), &node, "spec.unschedulable").as_deref(),
            Some("true")
        );
        assert_eq!(
            field_value(res("", "nodes"), &node, "metadata.namespace"),
            None
        );
        let job = json!({"status": {"succeeded": 2}});
        assert_eq!(
            field_value(res("batch", "jobs"), &job, "status.successful").as_deref(),
            Some("2")
        );
        assert_eq!(
            field_value(res("batch", "jobs"), &json!({}), "status.successful").as_deref(),
            Some("0")
        );
        let ev = json!({"involvedObject": {"kind": "Pod"}, "reportingComponent": "kubelet"});
        let core = res("", "events");
        assert_eq!(field_value(core, &ev, "source").as_deref(), Some("kubelet"));
        assert_eq!(
            field_value(core, &ev, "involvedObject.kind").as_deref(),
            Some("Pod")
        );
        let ev2 = json!({"regarding": {"kind": "Node"}, "deprecatedSource": {"component": "x"}});
        let new = res("events.k8s.io", "events");
        assert_eq!(
            field_value(new, &ev2, "regarding.kind").as_deref(),
            Some("Node")
        );
        assert_eq!(field_value(new, &ev2, "source").as_deref(), Some("x"));
        let svc = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.1"}});
        assert_eq!(
            field_value(res("", "services"), &svc, "spec.type").as_deref(),
            Some("NodePort")
        );
        assert_eq!(
            field_value(res("apps", "deployments"), &svc, "spec.type"),
            None
        );
    }
}
