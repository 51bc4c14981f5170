//! The `pods/eviction` subresource (upstream
//! `pkg/registry/core/pod/storage/eviction.go`): a pod is deleted only if
//! its PodDisruptionBudget allows it.
//!
//! * A pod that is Pending, Succeeded, Failed or already being deleted is
//!   deleted without looking at budgets (a live one conditionally on the
//!   resourceVersion read, so it cannot turn Ready unnoticed).
//! * Otherwise the budgets of the pod's namespace whose (non-empty)
//!   selector matches it are consulted: none → delete; more than one → 500
//!   "This pod has more than one PodDisruptionBudget, which the eviction
//!   subresource does not support."; one → if the pod is not Ready and the
//!   budget is healthy (`currentHealthy >= desiredHealthy > 0`, the
//!   `IfHealthyBudget` default) or its `unhealthyPodEvictionPolicy` is
//!   `AlwaysAllow`, the pod is deleted without spending the budget (and
//!   conditionally on its resourceVersion; a conflict answers 429);
//!   otherwise the budget must be processed for its current generation
//!   and allow a disruption (else 429 TooManyRequests "Cannot evict pod as
//!   it would violate the pod's disruption budget." with a
//!   `DisruptionBudget` cause), and `disruptionsAllowed` is decremented and
//!   the pod recorded in `disruptedPods` through a compare-and-swap status
//!   update (retried on conflict) before the pod is deleted.
//!
//! `deleteOptions` (grace period, preconditions, dry run) apply to the
//! deletion; a dry run changes no budget.

use std::collections::BTreeMap;
use std::collections::HashMap;

use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rkube_api::resources;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::rest::read::{self, ListOptions};
use crate::rest::write::{self, DeleteOptions};
use crate::rest::{meta_str, name_of, FieldValidation, Rest, Target, WriteOptions};

/// How often a conflicting read-modify-write is tried (upstream
/// `EvictionsRetry.Steps`).
const RETRIES: usize = 20;
/// The most evictions a budget may have unconfirmed by its controller.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;

/// The message of a refused eviction.
pub const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn success() -> (StatusCode, Value) {
    (
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// A 429 with a `DisruptionBudget` cause.
pub fn too_many_requests(cause: String, retry_after: i64) -> ApiError {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", VIOLATION)
    }
}

fn still_processing(pdb: &str) -> ApiError {
    too_many_requests(
        format!("The disruption budget {pdb} is still being processed by the server."),
        10,
    )
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn deleting(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Pods whose eviction needs no budget: terminal, pending, or being deleted.
pub fn can_ignore_pdb(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || deleting(pod)
}

fn should_enforce_resource_version(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !deleting(pod)
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Whether the budget's selector (non-empty, valid) matches the pod.
pub fn pdb_selects(pdb: &Value, pod: &Value) -> bool {
    let Some(sel) = pdb
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
    else {
        return false;
    };
    let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
    if empty {
        return false;
    }
    let labels: BTreeMap<String, String> = pod
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    rkube_api::scheduling::label_selector_matches(&sel, &labels)
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// What the budget says about one more eviction.
#[derive(Debug)]
pub enum BudgetCheck {
    /// Allowed: the budget's status with the eviction taken off.
    Decrement(Value),
    /// Refused.
    Refuse(ApiError),
}

/// Upstream `checkAndDecrement` over the budget as JSON: the new status
/// (disruptionsAllowed − 1, the condition turned False at 0, and, unless
/// `dry_run`, the pod in disruptedPods at `now`).
pub fn check_and_decrement(pdb: &Value, pod_name: &str, dry_run: bool, now: &str) -> BudgetCheck {
    let name = name_of(pdb);
    let generation = int(pdb, "/metadata/generation");
    if int(pdb, "/status/observedGeneration") < generation || pdb.get("status").is_none() {
        return BudgetCheck::Refuse(still_processing(name));
    }
    let allowed = int(pdb, "/status/disruptionsAllowed");
    let res = resources::lookup("policy", "v1", "poddisruptionbudgets");
    let forbidden = |why: &str| match res {
        Some(r) => ApiError::forbidden(r, name, why),
        None => ApiError::internal(why.to_string()),
    };
    if allowed < 0 {
        return BudgetCheck::Refuse(forbidden("pdb disruptions allowed is negative"));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_POD_SIZE {
        return BudgetCheck::Refuse(forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return BudgetCheck::Refuse(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                int(pdb, "/status/desiredHealthy"),
                int(pdb, "/status/currentHealthy")
            ),
            0,
        ));
    }
    let mut status = pdb.get("status").cloned().unwrap_or_else(|| json!({}));
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        let mut conds: Vec<Value> = status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let new = json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods", "message": ""});
        match conds
            .iter_mut()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed"))
        {
            Some(c) => {
                if c.get("status").and_then(Value::as_str) != Some("False") {
                    c["lastTransitionTime"] = json!(now);
                }
                c["status"] = json!("False");
                c["reason"] = json!("InsufficientPods");
                c["message"] = json!("");
            }
            None => {
                let mut n = new;
                n["lastTransitionTime"] = json!(now);
                conds.push(n);
            }
        }
        status["conditions"] = json!(conds);
    }
    if !dry_run {
        if !status.get("disruptedPods").is_some_and(Value::is_object) {
            status["disruptedPods"] = json!({});
        }
        status["disruptedPods"][pod_name] = json!(now);
    }
    BudgetCheck::Decrement(status)
}

async fn delete_pod(
    rest: &Rest,
    pod_t: &Target,
    opts: &DeleteOptions,
) -> ApiResult<(StatusCode, Value)> {
    write::delete(rest, pod_t, opts).await?;
    Ok(success())
}

/// Evicts the pod `pod_t` names; `body` is the Eviction object.
pub async fn evict(
    rest: &Rest,
    pod_t: &Target,
    body: &Value,
    q: &HashMap<String, String>,
) -> ApiResult<(StatusCode, Value)> {
    let body_name = name_of(body);
    if !body_name.is_empty() && body_name != pod_t.name() {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let mut opts = DeleteOptions::from_body(body.get("deleteOptions"))?;
    opts.dry_run |= q.get("dryRun").is_some_and(|d| d == "All");
    let caller_rv = opts.precondition_rv.is_some();

    // Pods that need no budget.
    let mut pod = Value::Null;
    for attempt in 0..RETRIES {
        pod = read::get(rest, pod_t, None).await?;
        if !can_ignore_pdb(&pod) {
            break;
        }
        let mut o = opts.clone();
        if should_enforce_resource_version(&pod) && !caller_rv {
            o.precondition_rv = meta_str(&pod, "resourceVersion").map(str::to_string);
        }
        match write::delete(rest, pod_t, &o).await {
            Ok(_) => return Ok(success()),
            Err(e) if e.code == StatusCode::CONFLICT && !caller_rv && attempt + 1 < RETRIES => {
                continue
            }
            Err(e) => return Err(e),
        }
    }

    let Some(pdb_res) = resources::lookup("policy", "v1", "poddisruptionbudgets") else {
        return delete_pod(rest, pod_t, &opts).await;
    };
    let ns = pod_t.namespace.clone();
    let list_t = Target {
        res: pdb_res,
        namespace: ns.clone(),
        name: None,
        subresource: None,
    };
    let pdbs: Vec<Value> = read::list(rest, &list_t, &ListOptions::default())
        .await?
        .items
        .into_iter()
        .map(|v| (*v).clone())
        .filter(|b| pdb_selects(b, &pod))
        .collect();
    if pdbs.len() > 1 {
        return Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                   "code": 500}),
        ));
    }
    let Some(mut pdb) = pdbs.into_iter().next() else {
        return delete_pod(rest, pod_t, &opts).await;
    };
    let pdb_name = name_of(&pdb).to_string();

    let unhealthy_ok = !pod_ready(&pod) && {
        let policy = pdb
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str);
        let (cur, want) = (
            int(&pdb, "/status/currentHealthy"),
            int(&pdb, "/status/desiredHealthy"),
        );
        policy == Some("AlwaysAllow") || (cur >= want && want > 0)
    };
    if !unhealthy_ok {
        let status_t = Target {
            res: pdb_res,
            namespace: ns.clone(),
            name: Some(pdb_name.clone()),
            subresource: Some("status".into()),
        };
        let mut done = false;
        for _ in 0..RETRIES {
            let now = crate::rest::now_rfc3339();
            match check_and_decrement(&pdb, pod_t.name(), opts.dry_run, &now) {
                BudgetCheck::Refuse(e) => return Err(e),
                BudgetCheck::Decrement(_) if opts.dry_run => {
                    done = true;
                    break;
                }
                BudgetCheck::Decrement(status) => {
                    let mut updated = pdb.clone();
                    updated["status"] = status;
                    let w = WriteOptions {
                        dry_run: false,
                        field_validation: FieldValidation::Ignore,
                        field_manager: None,
                    };
                    match write::update(rest, &status_t, updated, &w).await {
                        Ok(_) => {
                            done = true;
                            break;
                        }
                        Err(e) if e.code == StatusCode::CONFLICT => {
                            let by_name = Target {
                                subresource: None,
                                ..status_t.clone()
                            };
                            pdb = read::get(rest, &by_name, None).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if !done {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!("couldn't update PodDisruptionBudget {pdb_name:?} due to conflicts"),
            ));
        }
        return delete_pod(rest, pod_t, &opts).await;
    }

    // An unready pod under a healthy budget: delete it only as read.
    let mut o = opts.clone();
    if !caller_rv {
        o.precondition_rv = meta_str(&pod, "resourceVersion").map(str::to_string);
    }
    match write::delete(rest, pod_t, &o).await {
        Ok(_) => Ok(success()),
        Err(e) if e.code == StatusCode::CONFLICT && !caller_rv => Err(still_processing(&pdb_name)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 2}, "spec": {"selector": {"matchLabels": {"app": "web"}}}, "status": status})
    }

    #[test]
    fn budgets_refuse_or_decrement_like_upstream() {
        // Not processed for this generation yet.
        let stale = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 3}));
        let BudgetCheck::Refuse(e) = check_and_decrement(&stale, "p", false, "t") else {
            panic!("stale budget allowed eviction");
        };
        assert_eq!(e.code, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            e.details.unwrap()["causes"][0]["message"],
            "The disruption budget web is still being processed by the server."
        );
        // No disruption left.
        let none = pdb(
            json!({"observedGeneration": 2, "disruptionsAllowed": 0, "desiredHealthy": 3, "currentHealthy": 3}),
        );
        let BudgetCheck::Refuse(e) = check_and_decrement(&none, "p", false, "t") else {
            panic!("exhausted budget allowed eviction");
        };
        assert_eq!(e.message, VIOLATION);
        assert_eq!(e.reason, "TooManyRequests");
        let d = e.details.unwrap();
        assert_eq!(d["causes"][0]["reason"], "DisruptionBudget");
        assert_eq!(
            d["causes"][0]["message"],
            "The disruption budget web needs 3 healthy pods and has 3 currently"
        );
        // Negative: forbidden.
        let neg = pdb(json!({"observedGeneration": 2, "disruptionsAllowed": -1}));
        assert!(matches!(
            check_and_decrement(&neg, "p", false, "t"),
            BudgetCheck::Refuse(e) if e.code == StatusCode::FORBIDDEN
        ));
        // One left: decremented, condition False, pod recorded.
        let one = pdb(json!({"observedGeneration": 2, "disruptionsAllowed": 1,
            "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": "", "lastTransitionTime": "old"}]}));
        let BudgetCheck::Decrement(st) = check_and_decrement(&one, "p", false, "now") else {
            panic!("budget with one disruption refused");
        };
        assert_eq!(st["disruptionsAllowed"], 0);
        assert_eq!(st["disruptedPods"]["p"], "now");
        assert_eq!(st["conditions"][0]["status"], "False");
        assert_eq!(st["conditions"][0]["reason"], "InsufficientPods");
        assert_eq!(st["conditions"][0]["lastTransitionTime"], "now");
        // Dry run: no disruptedPods entry.
        let BudgetCheck::Decrement(st) = check_and_decrement(&one, "p", true, "now") else {
            panic!("dry run refused");
        };
        assert!(st.get("disruptedPods").is_none());
    }

    #[test]
    fn which_pods_and_budgets() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "status": {"phase": "Running"}});
        assert!(!can_ignore_pdb(&pod));
        assert!(can_ignore_pdb(&json!({"status": {"phase": "Pending"}})));
        assert!(can_ignore_pdb(&json!({"status": {"phase": "Failed"}})));
        assert!(can_ignore_pdb(
            &json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}})
        ));
        assert!(pdb_selects(&pdb(json!({})), &pod));
        let other = json!({"spec": {"selector": {"matchLabels": {"app": "db"}}}});
        assert!(!pdb_selects(&other, &pod));
        // Empty and missing selectors select nothing here.
        assert!(!pdb_selects(&json!({"spec": {"selector": {}}}), &pod));
        assert!(!pdb_selects(&json!({"spec": {}}), &pod));
    }
}
