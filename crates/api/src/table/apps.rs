//! Printers of workload controllers: Deployments, ReplicaSets,
//! DaemonSets, StatefulSets (apps/v1), Jobs and CronJobs (batch/v1).

use jiff::Timestamp;
use serde_json::Value;

use super::docs;
use super::duration::{human_duration, parse_time, since, translate_timestamp_since};
use super::util::{
    age, arr_at, container_cells, format_label_selector, format_labels, get, int_at, is_deleting,
    label_selector_string, len_at, name, opt_int, print_bool, str_at, SelectorString,
};
use super::Col;

const fn containers() -> Col {
    Col::new("Containers", "string", docs::CONTAINERS).wide()
}

const fn images() -> Col {
    Col::new("Images", "string", docs::IMAGES).wide()
}

/// `spec.replicas`; upstream defaults a missing value to 1 on read.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// Names and images of the pod template's containers at `template`.
fn template_cells(obj: &Value, template: &[&str]) -> (Value, Value) {
    let mut path = template.to_vec();
    path.extend(["spec", "containers"]);
    container_cells(arr_at(obj, &path))
}

pub(crate) const DEPLOYMENT_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Ready", "string", docs::READY_PODS),
    Col::new("Up-to-date", "string", docs::EXT_DEPLOY_UPDATED),
    Col::new("Available", "string", docs::EXT_DEPLOY_AVAILABLE),
    Col::age(),
    containers(),
    images(),
    Col::new("Selector", "string", docs::EXT_DEPLOY_SELECTOR).wide(),
];

pub(crate) fn deployment(d: &Value, now: Timestamp) -> Vec<Value> {
    let ready = format!(
        "{}/{}",
        int_at(d, &["status", "readyReplicas"]),
        desired_replicas(d)
    );
    let selector = match label_selector_string(get(d, &["spec", "selector"])) {
        SelectorString::Ok(s) => s,
        SelectorString::Invalid => "<invalid>".to_string(),
    };
    let (names, images) = template_cells(d, &["spec", "template"]);
    vec![
        name(d),
        Value::from(ready),
        Value::from(int_at(d, &["status", "updatedReplicas"])),
        Value::from(int_at(d, &["status", "availableReplicas"])),
        age(d, now),
        names,
        images,
        Value::from(selector),
    ]
}

pub(crate) const REPLICASET_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Desired", "integer", docs::EXT_RS_REPLICAS),
    Col::new("Current", "integer", docs::EXT_RS_STATUS_REPLICAS),
    Col::new("Ready", "integer", docs::EXT_RS_READY),
    Col::age(),
    containers(),
    images(),
    Col::new("Selector", "string", docs::EXT_RS_SELECTOR).wide(),
];

pub(crate) fn replicaset(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = template_cells(rs, &["spec", "template"]);
    vec![
        name(rs),
        Value::from(desired_replicas(rs)),
        Value::from(int_at(rs, &["status", "replicas"])),
        Value::from(int_at(rs, &["status", "readyReplicas"])),
        age(rs, now),
        names,
        images,
        Value::from(format_label_selector(get(rs, &["spec", "selector"]))),
    ]
}

pub(crate) const DAEMONSET_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Desired", "integer", docs::EXT_DS_DESIRED),
    Col::new("Current", "integer", docs::EXT_DS_CURRENT),
    Col::new("Ready", "integer", docs::EXT_DS_READY),
    Col::new("Up-to-date", "integer", docs::EXT_DS_UPDATED),
    Col::new("Available", "integer", docs::EXT_DS_AVAILABLE),
    Col::new("Node Selector", "string", docs::POD_NODE_SELECTOR),
    Col::age(),
    containers(),
    images(),
    Col::new("Selector", "string", docs::EXT_DS_SELECTOR).wide(),
];

pub(crate) fn daemonset(ds: &Value, now: Timestamp) -> Vec<Value> {
    let st = |f: &str| Value::from(int_at(ds, &["status", f]));
    let (names, images) = template_cells(ds, &["spec", "template"]);
    vec![
        name(ds),
        st("desiredNumberScheduled"),
        st("currentNumberScheduled"),
        st("numberReady"),
        st("updatedNumberScheduled"),
        st("numberAvailable"),
        Value::from(format_labels(get(
            ds,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        age(ds, now),
        names,
        images,
        Value::from(format_label_selector(get(ds, &["spec", "selector"]))),
    ]
}

pub(crate) const STATEFULSET_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Ready", "string", docs::READY_PODS),
    Col::age(),
    containers(),
    images(),
];

pub(crate) fn statefulset(sts: &Value, now: Timestamp) -> Vec<Value> {
    let ready = format!(
        "{}/{}",
        int_at(sts, &["status", "readyReplicas"]),
        desired_replicas(sts)
    );
    let (names, images) = template_cells(sts, &["spec", "template"]);
    vec![name(sts), Value::from(ready), age(sts, now), names, images]
}

pub(crate) const CONTROLLERREVISION_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Controller", "string", "Controller of the object"),
    Col::new("Revision", "string", docs::CONTROLLERREVISION_REVISION),
    Col::age(),
];

/// The controller owner as `kind.group/name` in lower case (upstream
/// `formatResourceName` of the owner's GroupKind), or `<none>`.
pub(crate) fn controllerrevision(cr: &Value, now: Timestamp) -> Vec<Value> {
    let owner = arr_at(cr, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| get(r, &["controller"]).and_then(Value::as_bool) == Some(true));
    let controller = match owner {
        None => "<none>".to_string(),
        Some(r) => {
            let kind = str_at(r, &["kind"]);
            let group = match str_at(r, &["apiVersion"]).split_once('/') {
                Some((g, _)) => g,
                None => "",
            };
            let gk = match (group, kind) {
                ("", k) => k.to_string(),
                (g, k) => format!("{k}.{g}"),
            };
            let name = str_at(r, &["name"]);
            if kind.is_empty() && group.is_empty() {
                name.to_string()
            } else {
                format!("{}/{name}", gk.to_lowercase())
            }
        }
    };
    vec![
        name(cr),
        Value::from(controller),
        Value::from(int_at(cr, &["revision"])),
        age(cr, now),
    ]
}

pub(crate) const JOB_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Status", "string", "Status of the job."),
    Col::new("Completions", "string", docs::JOB_SUCCEEDED),
    Col::new("Duration", "string", "Time required to complete the job."),
    Col::age(),
    containers(),
    images(),
    Col::new("Selector", "string", docs::JOB_SELECTOR).wide(),
];

/// Whether the first condition of type `ty` has status True.
fn job_condition(job: &Value, ty: &str) -> bool {
    arr_at(job, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == ty)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn job_status(job: &Value) -> &'static str {
    if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if is_deleting(job) {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

pub(crate) fn job(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(job, &["spec", "parallelism"]).unwrap_or(1) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = parse_time(get(job, &["status", "startTime"]));
    let end = parse_time(get(job, &["status", "completionTime"]));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => since(s, now),
        (Some(s), Some(e)) => human_duration(e.duration_since(s)),
    };
    let (names, images) = template_cells(job, &["spec", "template"]);
    vec![
        name(job),
        Value::from(job_status(job)),
        Value::from(completions),
        Value::from(duration),
        age(job, now),
        names,
        images,
        Value::from(format_label_selector(get(job, &["spec", "selector"]))),
    ]
}

pub(crate) const CRONJOB_COLUMNS: &[Col] = &[
    Col::name(),
    Col::new("Schedule", "string", docs::CJ_SCHEDULE),
    Col::new("Timezone", "string", docs::CJ_TIME_ZONE),
    Col::new("Suspend", "boolean", docs::CJ_SUSPEND),
    Col::new("Active", "integer", docs::CJ_ACTIVE),
    Col::new("Last Schedule", "string", docs::CJ_LAST_SCHEDULE),
    Col::age(),
    containers(),
    images(),
    Col::new("Selector", "string", docs::JOB_SELECTOR).wide(),
];

pub(crate) fn cronjob(cj: &Value, now: Timestamp) -> Vec<Value> {
    let last = match get(cj, &["status", "lastScheduleTime"]) {
        None | Some(Value::Null) => "<none>".to_string(),
        v => translate_timestamp_since(v, now),
    };
    let time_zone = get(cj, &["spec", "timeZone"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    // Upstream defaults a missing `suspend` to false on read.
    let suspend = match get(cj, &["spec", "suspend"]) {
        None | Some(Value::Null) => print_bool(false),
        Some(Value::Bool(b)) => print_bool(*b),
        Some(_) => "<unset>",
    };
    let (names, images) = template_cells(cj, &["spec", "jobTemplate", "spec", "template"]);
    vec![
        name(cj),
        Value::from(str_at(cj, &["spec", "schedule"])),
        Value::from(time_zone),
        Value::from(suspend),
        Value::from(len_at(cj, &["status", "active"])),
        Value::from(last),
        age(cj, now),
        names,
        images,
        Value::from(format_label_selector(get(
            cj,
            &["spec", "jobTemplate", "spec", "selector"],
        ))),
    ]
}
