//! Label selectors: upstream's string syntax (`a=b`, `a!=b`, `a in (x,y)`,
//! `a notin (x)`, `a`, `!a`, `a>1`, comma-separated AND), the
//! `metav1.LabelSelector` object form, canonical printing and matching.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::validate::{label_value_errors, qualified_name_errors};
use super::{go_quote, SelectorError};

/// A requirement's operator (upstream's `selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One `key op values` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

/// Where a requirement's errors point (upstream's optional field path).
fn child(path: Option<&str>, name: &str) -> String {
    match path {
        Some(p) => format!("{p}.{name}"),
        None => name.to_string(),
    }
}

/// Go's `%#v` of a `[]string`.
fn go_string_slice(v: &[String]) -> String {
    format!(
        "[]string{{{}}}",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")
    )
}

fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}

/// Upstream's `validateLabelKey`.
pub(super) fn key_error(key: &str, path: &str) -> Option<String> {
    let errs = qualified_name_errors(key);
    (!errs.is_empty()).then(|| invalid(path, key, &errs.join("; ")))
}

/// Upstream's `field.ErrorList.ToAggregate()` message (duplicates dropped).
fn aggregate(errs: Vec<String>) -> Option<String> {
    let mut uniq: Vec<String> = Vec::new();
    for e in errs {
        if !uniq.contains(&e) {
            uniq.push(e);
        }
    }
    match uniq.len() {
        0 => None,
        1 => uniq.pop(),
        _ => Some(format!("[{}]", uniq.join(", "))),
    }
}

impl Requirement {
    /// Builds a validated requirement (upstream's `NewRequirement`). The
    /// error is the bare aggregated message, without any prefix.
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Requirement, String> {
        Self::new_at(key, op, values, None)
    }

    fn new_at(
        key: &str,
        op: Operator,
        values: Vec<String>,
        path: Option<&str>,
    ) -> Result<Requirement, String> {
        let mut errs = Vec::new();
        if let Some(e) = key_error(key, &child(path, "key")) {
            errs.push(e);
        }
        let vpath = child(path, "values");
        let slice_err = |detail: &str| {
            format!(
                "{vpath}: Invalid value: {}: {detail}",
                go_string_slice(&values)
            )
        };
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(slice_err(
                "for 'in', 'notin' operators, values set can't be empty",
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(slice_err(
                    "exact-match compatibility requires one single value",
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(
                slice_err("values set must be empty for exists and does not exist"),
            ),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(slice_err(
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("{vpath}[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let verrs = label_value_errors(v);
            if !verrs.is_empty() {
                errs.push(invalid(
                    &format!("{vpath}[{i}][{key}]"),
                    v,
                    &verrs.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(msg) => Err(msg),
            None => Ok(Requirement {
                key: key.to_string(),
                op,
                values,
            }),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn operator(&self) -> Operator {
        self.op
    }
    /// The values as given (parsing yields them sorted and de-duplicated).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Upstream's `Requirement.Matches`. A label whose value is not a JSON
    /// string is present but never equal to any value; a `null` label is
    /// absent.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let found = labels
            .and_then(|l| l.get(&self.key))
            .filter(|v| !v.is_null());
        let text = found.and_then(Value::as_str);
        match self.op {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                text.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => !text.is_some_and(|v| self.has_value(v)),
            Operator::Exists => found.is_some(),
            Operator::DoesNotExist => found.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = text.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.op, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        let mut vals: Vec<&str> = self.values.iter().map(String::as_str).collect();
        vals.sort_unstable();
        f.write_str(&vals.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, sorted by key.
/// `LabelSelector::nothing()` (a nil `metav1.LabelSelector`) matches no
/// object; an empty selector matches every object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// Matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// Matches no object (prints as "").
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses upstream's string syntax (upstream's `labels.Parse`).
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut p = super::label_parse::Parser::new(s);
        let mut reqs = p.parse().map_err(SelectorError::Label)?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` JSON object (upstream's
    /// `LabelSelectorAsSelector`): `null` matches nothing, `{}` everything.
    pub fn from_api(v: &Value) -> Result<LabelSelector, SelectorError> {
        let bad = |m: &str| SelectorError::InvalidLabelSelector(m.to_string());
        let obj = match v {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(o) => o,
            _ => return Err(bad("a label selector must be an object")),
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(ml)) => {
                let mut pairs: Vec<(&String, &Value)> = ml.iter().collect();
                pairs.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in pairs {
                    let Some(v) = v.as_str() else {
                        return Err(bad("matchLabels values must be strings"));
                    };
                    let r = Requirement::new(k, Operator::Equals, vec![v.to_string()])
                        .map_err(SelectorError::InvalidLabelSelector)?;
                    reqs.push(r);
                }
            }
            Some(_) => return Err(bad("matchLabels must be an object")),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for e in exprs {
                    reqs.push(expression(e)?);
                }
            }
            Some(_) => return Err(bad("matchExpressions must be a list")),
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// A selector requiring exactly the given labels (`SelectorFromSet`),
    /// validated like `ValidatedSelectorFromSet`.
    pub fn from_labels(labels: &Map<String, Value>) -> Result<LabelSelector, SelectorError> {
        LabelSelector::from_api(&Value::Object(Map::from_iter([(
            "matchLabels".to_string(),
            Value::Object(labels.clone()),
        )])))
    }

    /// True when the selector does not restrict anything (upstream's `Empty`).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for `LabelSelector::nothing()`.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// `matches` applied to an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }

    /// The single value the selector requires for `key`, if it pins one
    /// (upstream's `RequiresExactMatch`).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.op, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

fn expression(e: &Value) -> Result<Requirement, SelectorError> {
    let bad = |m: &str| SelectorError::InvalidLabelSelector(m.to_string());
    let Some(e) = e.as_object() else {
        return Err(bad("matchExpressions items must be objects"));
    };
    let key = match e.get("key") {
        Some(Value::String(k)) => k.as_str(),
        None | Some(Value::Null) => "",
        Some(_) => return Err(bad("matchExpressions key must be a string")),
    };
    let op_name = match e.get("operator") {
        Some(Value::String(o)) => o.as_str(),
        None | Some(Value::Null) => "",
        Some(_) => return Err(bad("matchExpressions operator must be a string")),
    };
    let op = match op_name {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError::InvalidLabelSelector(format!(
                "{} is not a valid label selector operator",
                go_quote(other)
            )))
        }
    };
    let values = match e.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => {
            let mut out = Vec::with_capacity(vs.len());
            for v in vs {
                let Some(s) = v.as_str() else {
                    return Err(bad("matchExpressions values must be strings"));
                };
                out.push(s.to_string());
            }
            out
        }
        Some(_) => return Err(bad("matchExpressions values must be a list")),
    };
    Requirement::new(key, op, values).map_err(SelectorError::InvalidLabelSelector)
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

#[cfg(test)]
#[path = "label_tests.rs"]
mod tests;
