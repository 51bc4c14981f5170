//! Pure matching helpers shared by plugins, with upstream's semantics:
//! taints against tolerations (`ToleratesTaint`), node selector terms and
//! required node affinity (`component-helpers/scheduling/corev1/nodeaffinity`),
//! typed label selectors (`metav1.LabelSelectorAsSelector`, also parsed once
//! into a [`Selector`] for matching many pods), and
//! `helper.DefaultNormalizeScore`.
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

use crate::framework::NodeScore;

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

// ------------------------------------------------------------- scoring

/// Scales scores from `0..=max(scores)` to `0..=max_priority`, and with
/// `reverse` subtracts them from `max_priority` (upstream
/// `helper.DefaultNormalizeScore`). When every score is 0 (or less), they
/// all become `max_priority` if reversed and stay as they are otherwise.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max = scores.iter().map(|s| s.score).fold(0, i64::max);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| s.score = max_priority);
        }
        return;
    }
    for s in scores {
        s.score = max_priority.saturating_mul(s.score) / max;
        if reverse {
            s.score = max_priority - s.score;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod};
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn opt(s: &str) -> Option<String> {
        (!s.is_empty()).then(|| s.to_string())
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let (key, operator, value, effect) = (opt(key), opt(op), opt(value), opt(effect));
        Toleration {
            key,
            operator,
            value,
            effect,
            toleration_seconds: None,
        }
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: opt(value),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn strings(vals: &[&str]) -> Option<Vec<String>> {
        (!vals.is_empty()).then(|| vals.iter().map(|v| v.to_string()).collect())
    }

    fn req(key: &str, op: &str, vals: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: strings(vals),
        }
    }

    fn exprs(rs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(rs),
            match_fields: None,
        }
    }

    fn fields(rs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(rs),
        }
    }

    #[test]
    fn toleration_matching() {
        let kv = taint("k", "v", "NoSchedule");
        // "key operator value effect" against k=v:NoSchedule, "-" for unset;
        // a leading "!" means not tolerated.
        let cases = "k Equal v NoSchedule; k - v -; !k Equal w NoSchedule; \
            !k Equal v NoExecute; !other Exists - -; k Exists - NoSchedule; - Exists - -; \
            !- Exists - NoExecute; !k Gt v -";
        for c in cases.split("; ") {
            let (want, c) = c.strip_prefix('!').map_or((true, c), |c| (false, c));
            let f: Vec<&str> = c
                .split(' ')
                .map(|f| if f == "-" { "" } else { f })
                .collect();
            assert_eq!(tolerates(&tol(f[0], f[1], f[2], f[3]), &kv), want, "{c}");
        }
        let empty_values = tol("k", "Equal", "", "");
        assert!(tolerates(&empty_values, &taint("k", "", "NoExecute")));
    }

    #[test]
    fn untolerated_taint_respects_filter() {
        let taints = vec![
            taint("soft", "", "PreferNoSchedule"),
            taint("a", "1", "NoSchedule"),
            taint("b", "2", "NoExecute"),
        ];
        let tols = vec![tol("a", "Equal", "1", "")];
        let found = find_untolerated_taint(&taints, &tols, is_do_not_schedule_taint);
        assert_eq!(found.map(|t| t.key.as_str()), Some("b"));
        let all = vec![tol("", "Exists", "", "")];
        assert!(find_untolerated_taint(&taints, &all, |_| true).is_none());
        assert!(find_untolerated_taint(&taints, &[], |t| t.effect == "Nope").is_none());
    }

    /// Parses `"key Op v1,v2"`; a leading `!` means "expect no match".
    fn case(c: &str) -> (String, String, Vec<&str>, bool) {
        let (want, c) = c.strip_prefix('!').map_or((true, c), |c| (false, c));
        let mut it = c.split_whitespace();
        let (k, op) = (it.next().unwrap(), it.next().unwrap());
        let vals = it.next().map_or(vec![], |v| v.split(',').collect());
        (k.into(), op.into(), vals, want)
    }

    #[test]
    fn label_expression_operators() {
        let n = node("n")
            .label("zone", "a")
            .label("gen", "5")
            .label("txt", "x")
            .build();
        // A "!" means no match; the last six do not parse, so match nothing.
        let cases = "zone In a,b; !zone In b; !missing In a; zone NotIn b; !zone NotIn a; \
            missing NotIn a; zone Exists; !missing Exists; missing DoesNotExist; \
            !zone DoesNotExist; gen Gt 4; !gen Gt 5; gen Lt 6; !gen Lt 5; gen Gt -1; \
            !txt Gt 1; !missing Lt 9; !gen Gt x; !gen Gt 1,2; !zone In; !missing NotIn; \
            !zone Exists a; !zone Equals a";
        for c in cases.split("; ") {
            let (k, op, vals, want) = case(c);
            let term = exprs(vec![req(&k, &op, &vals)]);
            assert_eq!(node_selector_term_matches(&term, &n), want, "{c}");
        }
        assert!(check_node_selector_term(&exprs(vec![req("g", "Lt", &["z"])])).is_err());
    }

    #[test]
    fn term_and_selector_combination() {
        let n = node("n1").label("zone", "a").label("disk", "ssd").build();
        let both = exprs(vec![req("zone", "In", &["a"]), req("disk", "In", &["ssd"])]);
        let one_off = exprs(vec![req("zone", "In", &["a"]), req("disk", "In", &["hdd"])]);
        assert!(node_selector_term_matches(&both, &n));
        assert!(!node_selector_term_matches(&one_off, &n), "ANDed");
        let empty = NodeSelectorTerm::default();
        assert!(
            !node_selector_term_matches(&empty, &n),
            "empty term: nothing"
        );
        let sel = |node_selector_terms| NodeSelector {
            node_selector_terms,
        };
        assert!(node_selector_matches(&sel(vec![one_off.clone(), both]), &n));
        assert!(!node_selector_matches(&sel(vec![one_off, empty]), &n));
        assert!(!node_selector_matches(&sel(vec![]), &n));
    }

    #[test]
    fn match_fields_on_node_name() {
        let n = node("n1").label("zone", "a").build();
        let m = |t: NodeSelectorTerm| node_selector_term_matches(&t, &n);
        // Exactly one value, only In/NotIn.
        let cases = "metadata.name In n1; !metadata.name In n2; metadata.name NotIn n2; \
            !metadata.name NotIn n1; !metadata.name In n1,n2; !metadata.name Exists";
        for c in cases.split("; ") {
            let (k, op, vals, want) = case(c);
            assert_eq!(m(fields(vec![req(&k, &op, &vals)])), want, "{c}");
        }
        // Fields and expressions are ANDed.
        let mut t = fields(vec![req(NODE_NAME_FIELD, "In", &["n1"])]);
        t.match_expressions = Some(vec![req("zone", "In", &["b"])]);
        assert!(!m(t.clone()));
        t.match_expressions = Some(vec![req("zone", "In", &["a"])]);
        assert!(m(t));
    }

    #[test]
    fn pod_selector_and_required_affinity() {
        let n = node("n1").label("zone", "a").build();
        let mut p = pod("p").build();
        let m = |p: &Pod| pod_matches_node_selector_and_affinity(p, &n);
        assert!(m(&p));
        let zone = |v: &str| Some(BTreeMap::from([("zone".to_string(), v.to_string())]));
        p.spec.as_mut().unwrap().node_selector = zone("a");
        assert!(m(&p));
        let set_required = |p: &mut Pod, node_selector_terms| {
            let required = Some(NodeSelector {
                node_selector_terms,
            });
            p.spec.as_mut().unwrap().affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: required,
                    ..Default::default()
                }),
                ..Default::default()
            });
        };
        set_required(&mut p, vec![exprs(vec![req("zone", "NotIn", &["a"])])]);
        assert!(!m(&p));
        set_required(&mut p, vec![exprs(vec![req("zone", "Exists", &[])])]);
        assert!(m(&p));
        set_required(&mut p, vec![]);
        assert!(!m(&p), "no terms: nothing");
        set_required(&mut p, vec![exprs(vec![req("zone", "Exists", &[])])]);
        p.spec.as_mut().unwrap().node_selector = zone("b");
        assert!(!m(&p), "selector ANDed");
    }

    #[test]
    fn preferred_scores_sum_weights() {
        let n = node("n1").label("zone", "a").label("disk", "ssd").build();
        let pref = |weight, preference| PreferredSchedulingTerm { weight, preference };
        let terms = vec![
            pref(5, exprs(vec![req("zone", "In", &["a"])])),
            pref(7, exprs(vec![req("disk", "In", &["ssd"])])),
            pref(11, exprs(vec![req("disk", "In", &["hdd"])])),
            pref(13, NodeSelectorTerm::default()),
        ];
        assert_eq!(preferred_terms_score(&terms, &n), 12);
        assert!(check_preferred_terms(&terms).is_ok());
        let bad = vec![pref(1, exprs(vec![req("x", "Gt", &[])]))];
        assert!(check_preferred_terms(&bad).is_err());
        let ignored = vec![pref(0, exprs(vec![req("x", "Gt", &[])]))];
        assert!(check_preferred_terms(&ignored).is_ok());
    }

    #[test]
    fn label_selectors() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let sel = |ml: &[(&str, &str)], me: &[(&str, &str, &[&str])]| LabelSelector {
            match_labels: (!ml.is_empty()).then(|| {
                ml.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            match_expressions: (!me.is_empty()).then(|| {
                me.iter()
                    .map(|(k, op, vals)| LabelSelectorRequirement {
                        key: k.to_string(),
                        operator: op.to_string(),
                        values: strings(vals),
                    })
                    .collect()
            }),
        };
        let empty = LabelSelector::default();
        assert!(label_selector_matches(&empty, &labels));
        assert!(label_selector_matches(&empty, &BTreeMap::new()));
        assert!(!label_selector_opt_matches(None, &labels));
        assert!(label_selector_opt_matches(
            Some(&sel(&[("app", "web")], &[])),
            &labels
        ));
        assert!(!label_selector_matches(
            &sel(&[("app", "db")], &[]),
            &labels
        ));
        assert!(!label_selector_matches(
            &sel(&[("tier", "web")], &[]),
            &labels
        ));
        // A "!" means no match; the last three are invalid, so match nothing.
        let cases = "app In web,db; !app In db; app NotIn db; !app NotIn web; tier NotIn web; \
            app Exists; !tier Exists; tier DoesNotExist; !app DoesNotExist; !app In; \
            !tier DoesNotExist x; !app Gt 1";
        for c in cases.split("; ") {
            let (k, op, vals, want) = case(c);
            let s = sel(&[], &[(&k, &op, &vals)]);
            assert_eq!(label_selector_matches(&s, &labels), want, "{c}");
        }
        // matchLabels and matchExpressions are ANDed.
        let both = sel(&[("app", "web")], &[("tier", "Exists", &[])]);
        assert!(!label_selector_matches(&both, &labels));
    }

    #[test]
    fn parsed_selectors_match_like_typed_ones() {
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "front".to_string()),
        ]);
        let expr = |k: &str, op: &str, vals: &[&str]| LabelSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: strings(vals),
        };
        let typed = |me: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            match_expressions: Some(me),
        };
        for (me, want) in [
            (vec![expr("tier", "In", &["front", "back"])], true),
            (vec![expr("tier", "NotIn", &["front"])], false),
            (vec![expr("zone", "NotIn", &["a"])], true),
            (vec![expr("tier", "Exists", &[])], true),
            (vec![expr("zone", "DoesNotExist", &[])], true),
            (vec![expr("tier", "DoesNotExist", &[])], false),
        ] {
            let sel = typed(me);
            let parsed = Selector::parse(Some(&sel)).unwrap();
            assert_eq!(parsed.matches(&labels), want, "{sel:?}");
            assert_eq!(label_selector_matches(&sel, &labels), want);
            assert!(!parsed.is_empty());
        }
        for bad in [
            expr("a", "In", &[]),
            expr("a", "Exists", &["x"]),
            expr("a", "Gt", &["1"]),
        ] {
            assert!(Selector::parse(Some(&typed(vec![bad]))).is_err());
        }
        // Null: nothing, also after adding; empty: everything.
        let mut nothing = Selector::parse(None).unwrap();
        assert!(!nothing.matches(&labels) && !nothing.is_empty());
        nothing.add(LabelRequirement::equals("app", "web"));
        assert_eq!(nothing, Selector::Nothing);
        let mut all = Selector::parse(Some(&LabelSelector::default())).unwrap();
        assert!(all.is_empty() && all.matches(&BTreeMap::new()));
        all.add_all(&Selector::from_set(&BTreeMap::from([(
            "app".to_string(),
            "db".to_string(),
        )])));
        assert!(!all.matches(&labels) && !all.is_empty());
        assert!(Selector::from_set(&BTreeMap::new()).is_empty());
    }

    fn normalized(v: &[i64], reverse: bool) -> Vec<i64> {
        let mut s: Vec<NodeScore> = v
            .iter()
            .map(|&score| NodeScore {
                name: "n".into(),
                score,
            })
            .collect();
        default_normalize_score(100, reverse, &mut s);
        s.iter().map(|s| s.score).collect()
    }

    #[test]
    fn normalize_scores() {
        assert_eq!(normalized(&[0, 1, 2, 4], false), vec![0, 25, 50, 100]);
        assert_eq!(normalized(&[0, 1, 3], true), vec![100, 67, 0]);
        assert_eq!(normalized(&[0, 0], true), vec![100, 100]);
        assert_eq!(normalized(&[0, 0], false), vec![0, 0]);
        assert!(normalized(&[], true).is_empty());
    }
}
