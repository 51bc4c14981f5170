//! Field selectors: `field=value`, `field==value`, `field!=value`, joined
//! by commas (AND), with upstream's escaping of `\`, `,` and `=` in values.

use std::fmt;
use std::str::FromStr;

use super::SelectorError;

/// A field requirement's operator. `==` parses as `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    Eq,
    NotEq,
}

/// One `field op value` term; `value` is unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

impl FieldRequirement {
    /// Whether `actual` (the object's value of the field; `None` reads as
    /// "", as upstream's `fields.Set.Get` does) satisfies the term.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let equal = actual.unwrap_or("") == self.value;
        match self.op {
            FieldOp::Eq => equal,
            FieldOp::NotEq => !equal,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOp::Eq => "=",
            FieldOp::NotEq => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector: the AND of its terms, in upstream's order
/// (terms sorted as strings). Empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    reqs: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Matches everything.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses upstream's field selector syntax (`fields.ParseSelector`).
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut reqs = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(SelectorError::Field(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(rhs)?;
            reqs.push(FieldRequirement {
                field: lhs.to_string(),
                op,
                value,
            });
        }
        Ok(FieldSelector { reqs })
    }

    /// A selector from terms built by the caller (kept in the given order).
    pub fn from_requirements(reqs: Vec<FieldRequirement>) -> Self {
        FieldSelector { reqs }
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.reqs
    }

    /// Whether every term holds, reading field values through `get`
    /// (`None` reads as "").
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.reqs
            .iter()
            .all(|r| r.matches(get(&r.field).as_deref()))
    }

    /// The value the selector pins `field` to with an `=` term, if any
    /// (upstream's `RequiresExactMatch`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.reqs
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Eq)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reqs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

/// Escapes `\`, `,` and `=` in a value (upstream's `EscapeValue`).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas that are not backslash-escaped; escapes stay in place.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, `==`, `=`; left side is
/// never unescaped).
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOp::NotEq),
            ("==", FieldOp::Eq),
            ("=", FieldOp::Eq),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

/// Undoes `escape_value`; unescaped `,`/`=` and unknown escapes are errors.
fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )))
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::Field(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operators_and_sorts_terms() {
        let s = FieldSelector::parse("status.phase!=Running,metadata.name==web,spec.nodeName=n1")
            .unwrap();
        assert_eq!(
            s.to_string(),
            "metadata.name=web,spec.nodeName=n1,status.phase!=Running"
        );
        assert_eq!(
            s.requirements()[2],
            FieldRequirement {
                field: "status.phase".into(),
                op: FieldOp::NotEq,
                value: "Running".into()
            }
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert_eq!(
            FieldSelector::parse("a=b,").unwrap().requirements().len(),
            1
        );
        assert_eq!(
            FieldSelector::parse("a=").unwrap().requirements()[0].value,
            ""
        );
        assert_eq!(s.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(s.requires_exact_match("status.phase"), None);
    }

    #[test]
    fn escapes_round_trip() {
        let s = FieldSelector::parse(r"a=x\,y\=z\\w,b!=q").unwrap();
        assert_eq!(s.requirements()[0].value, r"x,y=z\w");
        assert_eq!(s.to_string(), r"a=x\,y\=z\\w,b!=q");
        assert_eq!(FieldSelector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn errors_match_upstream() {
        let e = |s: &str| FieldSelector::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("field,"),
            "invalid selector: 'field,'; can't understand 'field'"
        );
        assert_eq!(
            e("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            e("a=b,c"),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            e(r"a=\q"),
            r"invalid field selector: invalid escape sequence: \q"
        );
        assert_eq!(
            e(r"a=b\"),
            r"invalid field selector: invalid escape sequence: \"
        );
    }

    #[test]
    fn matching_treats_missing_as_empty() {
        let s = FieldSelector::parse("spec.nodeName=,status.phase!=Failed").unwrap();
        assert!(s.matches(|_| None));
        assert!(!s.matches(|f| (f == "spec.nodeName").then(|| "n1".to_string())));
        assert!(!s.matches(|f| (f == "status.phase").then(|| "Failed".to_string())));
    }
}
