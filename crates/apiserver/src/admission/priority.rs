//! Upstream's `Priority` admission plugin (plugin/pkg/admission/priority)
//! and the PriorityClass storage rules around it: a new pod's
//! `spec.priorityClassName` resolves to `spec.priority` and
//! `spec.preemptionPolicy` (the globalDefault class, else priority 0 and
//! PreemptLowerPriority, when no name is given); an update keeps what
//! create resolved; only one PriorityClass may be the global default; the
//! two system classes exist from the start and may not be deleted.

use serde_json::{json, Value};

use super::{get_cluster_object, select_cluster_objects, spec_field, spec_mut};
use super::{Attributes, Operation};
use crate::error::{ApiError, ApiResult};
use crate::rest::{name_of, Rest, Target};

const GROUP: &str = "scheduling.k8s.io";
const PLURAL: &str = "priorityclasses";

/// The priority of a pod when no class is named and none is the default.
const DEFAULT_PRIORITY: i64 = 0;
const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";

/// Upstream's system classes: (name, value, description).
const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// The system PriorityClasses the API server creates at startup (upstream's
/// `scheduling/bootstrap-system-priority-classes` post-start hook).
pub fn system_priority_classes() -> Vec<Value> {
    SYSTEM_CLASSES
        .iter()
        .map(|(name, value, description)| {
            json!({
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
                "description": description,
                "preemptionPolicy": PREEMPT_LOWER_PRIORITY,
            })
        })
        .collect()
}

/// Why the plugin refuses a request (each a 403 Forbidden upstream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriorityError {
    #[error("no PriorityClass with name {0} was found")]
    NotFound(String),
    #[error("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name")]
    PriorityMismatch { given: i64, computed: i64 },
    #[error("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name")]
    PreemptionPolicyMismatch { given: String, computed: String },
    #[error("PriorityClass {0} is already marked as default. Only one default can exist")]
    SecondDefault(String),
    #[error("this is a system priority class and cannot be deleted")]
    SystemClassDeletion,
}

/// What a pod's priority resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The class name to record (empty when no class applies).
    pub class_name: String,
    pub value: i64,
    pub preemption_policy: Option<String>,
}

impl Resolved {
    /// From a PriorityClass object.
    fn of_class(pc: &Value) -> Resolved {
        Resolved {
            class_name: name_of(pc).to_string(),
            value: pc.get("value").and_then(Value::as_i64).unwrap_or(0),
            preemption_policy: pc
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }

    /// Upstream's `getDefaultPriority`: the default class, else priority 0
    /// with PreemptLowerPriority.
    pub fn default_from(default: Option<&Value>) -> Resolved {
        match default {
            Some(pc) => Resolved::of_class(pc),
            None => Resolved {
                class_name: String::new(),
                value: DEFAULT_PRIORITY,
                preemption_policy: Some(PREEMPT_LOWER_PRIORITY.to_string()),
            },
        }
    }
}

fn is_global_default(pc: &Value) -> bool {
    pc.get("globalDefault").and_then(Value::as_bool) == Some(true)
}

/// Upstream's `getDefaultPriorityClass`: of the classes marked
/// globalDefault (more than one only after a race), the lowest value.
pub fn default_class<'a>(classes: impl IntoIterator<Item = &'a Value>) -> Option<&'a Value> {
    classes
        .into_iter()
        .filter(|pc| is_global_default(pc))
        .min_by_key(|pc| pc.get("value").and_then(Value::as_i64).unwrap_or(0))
}

/// Sets a new pod's priority, preemption policy and (for the default
/// class) class name from `r`, refusing a pod that gave other values.
pub fn admit_pod_create(pod: &mut Value, r: &Resolved) -> Result<(), PriorityError> {
    if let Some(given) = spec_field(pod, "priority").and_then(Value::as_i64) {
        if given != r.value {
            return Err(PriorityError::PriorityMismatch {
                given,
                computed: r.value,
            });
        }
    }
    if let Some(computed) = &r.preemption_policy {
        if let Some(given) = spec_field(pod, "preemptionPolicy").and_then(Value::as_str) {
            if given != computed {
                return Err(PriorityError::PreemptionPolicyMismatch {
                    given: given.to_string(),
                    computed: computed.clone(),
                });
            }
        }
    }
    let Some(spec) = spec_mut(pod) else {
        return Ok(());
    };
    if !r.class_name.is_empty() {
        spec.insert("priorityClassName".into(), json!(r.class_name));
    }
    spec.insert("priority".into(), json!(r.value));
    if let Some(p) = &r.preemption_policy {
        spec.insert("preemptionPolicy".into(), json!(p));
    }
    Ok(())
}

/// On update, keeps the priority and preemption policy create resolved
/// when the new object omits them (validation refuses other changes).
pub fn admit_pod_update(pod: &mut Value, old: &Value) {
    for key in ["priority", "preemptionPolicy"] {
        if spec_field(pod, key).is_some() {
            continue;
        }
        if let (Some(v), Some(spec)) = (spec_field(old, key).cloned(), spec_mut(pod)) {
            spec.insert(key.into(), v);
        }
    }
}

/// Upstream's `validatePriorityClass`: a class may become the global
/// default only while no other class is.
pub fn validate_class(
    op: Operation,
    pc: &Value,
    default: Option<&Value>,
) -> Result<(), PriorityError> {
    if !is_global_default(pc) {
        return Ok(());
    }
    match default {
        Some(d) if op == Operation::Create || name_of(d) != name_of(pc) => {
            Err(PriorityError::SecondDefault(name_of(d).to_string()))
        }
        _ => Ok(()),
    }
}

/// The mutating half: pods on create and update.
pub(super) async fn admit(
    rest: &Rest,
    a: &Attributes<'_>,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    if !a.is_pod() {
        return Ok(());
    }
    match (a.operation, old) {
        (Operation::Update, Some(old)) => {
            admit_pod_update(obj, old);
            Ok(())
        }
        (Operation::Update, None) => Ok(()),
        (Operation::Create, _) => {
            let name = spec_field(obj, "priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let resolved = if name.is_empty() {
                let classes = select_cluster_objects(rest, GROUP, PLURAL, is_global_default)?;
                Resolved::default_from(default_class(classes.iter().map(|c| &**c)))
            } else {
                match get_cluster_object(rest, GROUP, PLURAL, &name).await {
                    Ok(Some(pc)) => Resolved::of_class(&pc),
                    Ok(None) => return Err(a.forbidden(PriorityError::NotFound(name))),
                    Err(e) => {
                        return Err(ApiError::internal(format!(
                            "failed to get PriorityClass with name {name}: {}",
                            e.message
                        )))
                    }
                }
            };
            admit_pod_create(obj, &resolved).map_err(|e| a.forbidden(e))
        }
    }
}

/// The validating half: PriorityClasses on create and update.
pub(super) fn validate(rest: &Rest, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    if !a.is(GROUP, PLURAL) || !is_global_default(obj) {
        return Ok(());
    }
    let classes = select_cluster_objects(rest, GROUP, PLURAL, is_global_default)?;
    validate_class(
        a.operation,
        obj,
        default_class(classes.iter().map(|c| &**c)),
    )
    .map_err(|e| a.forbidden(e))
}

/// The system classes may not be deleted one by one (a deletecollection
/// goes through the generic store upstream, which does not check).
pub(super) fn check_delete(t: &Target) -> ApiResult<()> {
    let res = t.res;
    if res.group == GROUP
        && res.plural == PLURAL
        && t.subresource.is_none()
        && SYSTEM_CLASSES.iter().any(|(n, _, _)| *n == t.name())
    {
        return Err(ApiError::forbidden(
            res,
            t.name(),
            &PriorityError::SystemClassDeletion.to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc(name: &str, value: i64, default: bool) -> Value {
        json!({"metadata": {"name": name}, "value": value, "globalDefault": default,
            "preemptionPolicy": "Never"})
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn a_named_class_sets_priority_and_policy() {
        let mut p = pod(json!({"priorityClassName": "high"}));
        admit_pod_create(&mut p, &Resolved::of_class(&pc("high", 1000, false))).unwrap();
        assert_eq!(p["spec"]["priority"], 1000);
        assert_eq!(p["spec"]["preemptionPolicy"], "Never");
        assert_eq!(p["spec"]["priorityClassName"], "high");
    }

    #[test]
    fn without_a_name_the_default_class_applies_and_is_recorded() {
        let classes = [pc("b", 50, true), pc("a", 10, true), pc("c", 1, false)];
        let d = default_class(classes.iter());
        assert_eq!(name_of(d.unwrap()), "a", "the lowest default wins");
        let mut p = pod(json!({}));
        admit_pod_create(&mut p, &Resolved::default_from(d)).unwrap();
        assert_eq!(p["spec"]["priority"], 10);
        assert_eq!(p["spec"]["priorityClassName"], "a");

        let mut p = pod(json!({}));
        admit_pod_create(&mut p, &Resolved::default_from(None)).unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        assert!(p["spec"].get("priorityClassName").is_none());
    }

    #[test]
    fn a_given_priority_must_match_the_class() {
        let r = Resolved::of_class(&pc("high", 1000, false));
        let mut same = pod(json!({"priorityClassName": "high", "priority": 1000}));
        assert_eq!(admit_pod_create(&mut same, &r), Ok(()));
        let mut other = pod(json!({"priorityClassName": "high", "priority": 7}));
        assert_eq!(
            admit_pod_create(&mut other, &r).unwrap_err().to_string(),
            "the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"
        );
        let mut policy =
            pod(json!({"priorityClassName": "high", "preemptionPolicy": "PreemptLowerPriority"}));
        assert_eq!(
            admit_pod_create(&mut policy, &r).unwrap_err().to_string(),
            "the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"
        );
        assert_eq!(
            PriorityError::NotFound("foo".into()).to_string(),
            "no PriorityClass with name foo was found"
        );
    }

    #[test]
    fn an_update_keeps_the_resolved_priority() {
        let old = pod(json!({"priority": 5, "preemptionPolicy": "Never"}));
        let mut new = pod(json!({}));
        admit_pod_update(&mut new, &old);
        assert_eq!(
            new["spec"],
            json!({"priority": 5, "preemptionPolicy": "Never"})
        );
        let mut changed = pod(json!({"priority": 6}));
        admit_pod_update(&mut changed, &old);
        assert_eq!(changed["spec"]["priority"], 6, "validation refuses it");
    }

    #[test]
    fn only_one_default_class() {
        let existing = pc("first", 1, true);
        let second = pc("second", 2, true);
        assert_eq!(
            validate_class(Operation::Create, &second, Some(&existing))
                .unwrap_err()
                .to_string(),
            "PriorityClass first is already marked as default. Only one default can exist"
        );
        assert!(validate_class(Operation::Update, &second, Some(&existing)).is_err());
        assert!(validate_class(Operation::Update, &existing, Some(&existing)).is_ok());
        assert!(validate_class(Operation::Create, &pc("x", 1, false), Some(&existing)).is_ok());
        assert!(validate_class(Operation::Create, &second, None).is_ok());
    }

    #[test]
    fn system_classes() {
        let classes = system_priority_classes();
        assert_eq!(classes.len(), 2);
        assert_eq!(classes[0]["metadata"]["name"], "system-node-critical");
        assert_eq!(classes[0]["value"], 2_000_001_000);
        assert_eq!(classes[1]["metadata"]["name"], "system-cluster-critical");
        assert_eq!(classes[1]["value"], 2_000_000_000);
    }
}
