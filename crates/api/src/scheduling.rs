//! Pure scheduling predicates shared by the scheduler's plugins and the
//! controllers (DaemonSet placement, taint eviction), with upstream's
//! semantics (`k8s.io/component-helpers/scheduling/corev1`):
//! taints against tolerations (`ToleratesTaint`), node selector terms and
//! required node affinity (`component-helpers/scheduling/corev1/nodeaffinity`),
//! typed label selectors (`metav1.LabelSelectorAsSelector`, also parsed once
//! into a [`Selector`] for matching many pods).
//!
//! Selectors that upstream fails to *parse* (wrong number of values for an
//! operator, unknown operator, non-integer `Gt`/`Lt` operand) never match
//! here; [`check_node_selector_term`] reports why, for callers that must
//! reject them (plugin args, preferred terms).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PreferredSchedulingTerm,
    Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The only field a node selector's `matchFields` can usefully name.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// Why a selector requirement cannot be parsed (upstream rejects it; here it
/// never matches).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requirement {key:?} {operator:?}: {problem}")]
pub struct SelectorError {
    pub key: String,
    pub operator: String,
    pub problem: &'static str,
}

// ---------------------------------------------------------------- taints

/// Whether `toleration` tolerates `taint` (upstream `Toleration.ToleratesTaint`):
/// an empty effect matches every effect; an empty key matches every key;
/// operator `Exists` matches any value, `Equal` (or empty) compares values,
/// any other operator matches nothing.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerations_tolerate_taint(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first taint selected by `filter` that no toleration tolerates
/// (upstream `FindMatchingUntoleratedTaint`).
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations_tolerate_taint(tolerations, t))
}

/// Taints that keep pods off a node: `NoSchedule` and `NoExecute`
/// (upstream `DoNotScheduleTaintsFilterFunc`).
pub fn is_do_not_schedule_taint(taint: &Taint) -> bool {
    taint.effect == "NoSchedule" || taint.effect == "NoExecute"
}

/// A node's taints (empty if none).
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// A pod's tolerations (empty if none).
pub fn pod_tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

// -------------------------------------------------------- node selectors

fn values(r: &NodeSelectorRequirement) -> &[String] {
    r.values.as_deref().unwrap_or_default()
}

fn invalid(r: &NodeSelectorRequirement, problem: &'static str) -> Result<(), SelectorError> {
    let (key, operator) = (r.key.clone(), r.operator.clone());
    Err(SelectorError {
        key,
        operator,
        problem,
    })
}

/// Parses a `matchExpressions` requirement like upstream's
/// `labels.NewRequirement`: `In`/`NotIn` need values, `Exists`/
/// `DoesNotExist` none, `Gt`/`Lt` exactly one integer.
fn check_label_requirement(r: &NodeSelectorRequirement) -> Result<(), SelectorError> {
    let vals = values(r);
    match r.operator.as_str() {
        "In" | "NotIn" if vals.is_empty() => invalid(r, "needs at least one value"),
        "Exists" | "DoesNotExist" if !vals.is_empty() => invalid(r, "takes no values"),
        "Gt" | "Lt" if vals.len() != 1 => invalid(r, "needs exactly one value"),
        "Gt" | "Lt" if vals[0].parse::<i64>().is_err() => invalid(r, "needs an integer"),
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => Ok(()),
        _ => invalid(r, "unsupported operator"),
    }
}

/// Parses a `matchFields` requirement: only `In`/`NotIn` with exactly one
/// value (upstream `nodeSelectorRequirementsAsFieldSelector`).
fn check_field_requirement(r: &NodeSelectorRequirement) -> Result<(), SelectorError> {
    match r.operator.as_str() {
        "In" | "NotIn" if values(r).len() != 1 => invalid(r, "needs exactly one value"),
        "In" | "NotIn" => Ok(()),
        _ => invalid(r, "unsupported field operator"),
    }
}

/// Checks that a term parses (its requirements have valid operators and
/// values). Empty terms are valid (they just match nothing).
pub fn check_node_selector_term(term: &NodeSelectorTerm) -> Result<(), SelectorError> {
    for r in term.match_expressions.iter().flatten() {
        check_label_requirement(r)?;
    }
    for r in term.match_fields.iter().flatten() {
        check_field_requirement(r)?;
    }
    Ok(())
}

/// Whether one label requirement holds for `labels` (assumes it parsed).
fn label_requirement_matches(
    r: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let (got, vals) = (labels.get(&r.key), values(r));
    let int = |v: Option<&String>| v.and_then(|v| v.parse::<i64>().ok());
    match r.operator.as_str() {
        "In" => got.is_some_and(|v| vals.contains(v)),
        "NotIn" => got.is_none_or(|v| !vals.contains(v)),
        "Exists" => got.is_some(),
        "DoesNotExist" => got.is_none(),
        "Gt" => matches!((int(got), int(vals.first())), (Some(h), Some(w)) if h > w),
        "Lt" => matches!((int(got), int(vals.first())), (Some(h), Some(w)) if h < w),
        _ => false,
    }
}

/// Whether one field requirement holds for a node named `name` (assumes it
/// parsed). Fields other than `metadata.name` read as empty, as upstream's
/// `fields.Set` lookup does.
fn field_requirement_matches(r: &NodeSelectorRequirement, name: &str) -> bool {
    let have = if r.key == NODE_NAME_FIELD { name } else { "" };
    let want = values(r).first().map(String::as_str).unwrap_or_default();
    match r.operator.as_str() {
        "In" => have == want,
        "NotIn" => have != want,
        _ => false,
    }
}

/// Whether a node selector term matches the node: all `matchExpressions`
/// (on labels) and all `matchFields` (`metadata.name` In/NotIn) hold. A term
/// with neither matches nothing; a term that does not parse matches
/// nothing.
pub fn node_selector_term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    if check_node_selector_term(term).is_err() {
        return false;
    }
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY);
    if !exprs.iter().all(|r| label_requirement_matches(r, labels)) {
        return false;
    }
    // Upstream skips field requirements for a node without a name.
    let name = node.metadata.name.as_deref().unwrap_or_default();
    name.is_empty() || fields.iter().all(|r| field_requirement_matches(r, name))
}

/// Whether any term of the selector matches (terms are ORed; no terms
/// matches nothing).
pub fn node_selector_matches(sel: &NodeSelector, node: &Node) -> bool {
    sel.node_selector_terms
        .iter()
        .any(|t| node_selector_term_matches(t, node))
}

/// Whether the node satisfies the pod's `spec.nodeSelector` and its
/// required node affinity (upstream `RequiredNodeAffinity.Match`). A
/// required affinity with no terms matches no node.
pub fn pod_matches_node_selector_and_affinity(pod: &Pod, node: &Node) -> bool {
    let selector = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
    let labels = node.metadata.labels.as_ref();
    let has = |(k, v): (&String, &String)| labels.and_then(|l| l.get(k)) == Some(v);
    selector.is_none_or(|sel| sel.iter().all(has))
        && required_node_affinity(pod).is_none_or(|r| node_selector_matches(r, node))
}

/// The pod's `requiredDuringSchedulingIgnoredDuringExecution` node affinity.
pub fn required_node_affinity(pod: &Pod) -> Option<&NodeSelector> {
    let na = pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?;
    na.required_during_scheduling_ignored_during_execution
        .as_ref()
}

/// Checks preferred terms like upstream's `NewPreferredSchedulingTerms`:
/// terms with weight 0 or no requirements are ignored, the others must
/// parse.
pub fn check_preferred_terms(terms: &[PreferredSchedulingTerm]) -> Result<(), SelectorError> {
    terms
        .iter()
        .filter(|t| t.weight != 0)
        .try_for_each(|t| check_node_selector_term(&t.preference))
}

/// Sum of the weights of the preferred terms the node matches (upstream
/// `PreferredSchedulingTerms.Score`).
pub fn preferred_terms_score(terms: &[PreferredSchedulingTerm], node: &Node) -> i64 {
    terms
        .iter()
        .filter(|t| t.weight != 0 && node_selector_term_matches(&t.preference, node))
        .map(|t| i64::from(t.weight))
        .sum()
}

// ------------------------------------------------------- label selectors

/// Whether a typed label selector matches `labels`, as upstream's
/// `LabelSelectorAsSelector(sel).Matches(labels)`: `matchLabels` entries
/// must be present and equal, and every `matchExpressions` requirement
/// (`In`, `NotIn`, `Exists`, `DoesNotExist`) must hold. An empty selector
/// matches everything. A selector that does not parse (unknown operator,
/// `In`/`NotIn` without values, `Exists`/`DoesNotExist` with values)
/// matches nothing. For an optional selector see
/// [`label_selector_opt_matches`].
pub fn label_selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let mut match_labels = sel.match_labels.iter().flatten();
    if !match_labels.all(|(k, v)| labels.get(k) == Some(v)) {
        return false;
    }
    sel.match_expressions.iter().flatten().all(|r| {
        let vals = r.values.as_deref().unwrap_or_default();
        let got = labels.get(&r.key);
        match r.operator.as_str() {
            "In" => !vals.is_empty() && got.is_some_and(|v| vals.contains(v)),
            "NotIn" => !vals.is_empty() && got.is_none_or(|v| !vals.contains(v)),
            "Exists" => vals.is_empty() && got.is_some(),
            "DoesNotExist" => vals.is_empty() && got.is_none(),
            _ => false,
        }
    })
}

/// [`label_selector_matches`] for an optional selector: `None` (a null
/// selector) matches nothing, as upstream's `labels.Nothing()`.
pub fn label_selector_opt_matches(
    sel: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    sel.is_some_and(|s| label_selector_matches(s, labels))
}

// ---------------------------------------------- parsed label selectors

/// The operator of a parsed label requirement (`matchLabels` entries are
/// `In` with one value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One requirement of a [`Selector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub op: LabelOp,
    pub values: Vec<String>,
}

impl LabelRequirement {
    /// A requirement that `key` has exactly `value`.
    pub fn equals(key: &str, value: &str) -> LabelRequirement {
        LabelRequirement {
            key: key.to_string(),
            op: LabelOp::In,
            values: vec![value.to_string()],
        }
    }

    /// Whether the requirement holds for `labels`: `NotIn` and
    /// `DoesNotExist` hold when the key is missing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let got = labels.get(&self.key);
        match self.op {
            LabelOp::In => got.is_some_and(|v| self.values.contains(v)),
            LabelOp::NotIn => got.is_none_or(|v| !self.values.contains(v)),
            LabelOp::Exists => got.is_some(),
            LabelOp::DoesNotExist => got.is_none(),
        }
    }
}

/// A label selector parsed once for matching many label sets (upstream's
/// `labels.Selector` from `metav1.LabelSelectorAsSelector`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A null selector: matches nothing (`labels.Nothing()`), and adding
    /// requirements to it leaves it matching nothing.
    Nothing,
    /// All requirements must hold; none matches everything.
    Requirements(Vec<LabelRequirement>),
}

impl Selector {
    /// Matches every label set.
    pub fn everything() -> Selector {
        Selector::Requirements(Vec::new())
    }

    /// Parses an optional typed selector: `None` is [`Selector::Nothing`], an
    /// empty one matches everything. Fails like upstream on an unknown
    /// operator, `In`/`NotIn` without values, or `Exists`/`DoesNotExist`
    /// with values.
    pub fn parse(sel: Option<&LabelSelector>) -> Result<Selector, SelectorError> {
        let Some(sel) = sel else {
            return Ok(Selector::Nothing);
        };
        let mut reqs: Vec<LabelRequirement> = sel
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| LabelRequirement::equals(k, v))
            .collect();
        for r in sel.match_expressions.iter().flatten() {
            let values = r.values.clone().unwrap_or_default();
            let fail = |problem| SelectorError {
                key: r.key.clone(),
                operator: r.operator.clone(),
                problem,
            };
            let op = match r.operator.as_str() {
                "In" => LabelOp::In,
                "NotIn" => LabelOp::NotIn,
                "Exists" => LabelOp::Exists,
                "DoesNotExist" => LabelOp::DoesNotExist,
                _ => return Err(fail("unsupported operator")),
            };
            match op {
                LabelOp::In | LabelOp::NotIn if values.is_empty() => {
                    return Err(fail("needs at least one value"))
                }
                LabelOp::Exists | LabelOp::DoesNotExist if !values.is_empty() => {
                    return Err(fail("takes no values"))
                }
                _ => {}
            }
            reqs.push(LabelRequirement {
                key: r.key.clone(),
                op,
                values,
            });
        }
        Ok(Selector::Requirements(reqs))
    }

    /// A selector requiring every `key=value` of the set (upstream
    /// `labels.SelectorFromSet`); an empty set matches everything.
    pub fn from_set(set: &BTreeMap<String, String>) -> Selector {
        Selector::Requirements(
            set.iter()
                .map(|(k, v)| LabelRequirement::equals(k, v))
                .collect(),
        )
    }

    /// Upstream's `Selector.Empty()`: true only for a selector without
    /// requirements (matching everything), false for [`Selector::Nothing`].
    pub fn is_empty(&self) -> bool {
        matches!(self, Selector::Requirements(r) if r.is_empty())
    }

    /// Adds a requirement (ANDed); [`Selector::Nothing`] stays as it is.
    pub fn add(&mut self, req: LabelRequirement) {
        if let Selector::Requirements(reqs) = self {
            reqs.push(req);
        }
    }

    /// Adds the requirements of `other` (upstream
    /// `s.Add(other.Requirements()...)`); nothing when `other` is
    /// [`Selector::Nothing`].
    pub fn add_all(&mut self, other: &Selector) {
        if let Selector::Requirements(more) = other {
            for r in more {
                self.add(r.clone());
            }
        }
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::Requirements(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }
}
