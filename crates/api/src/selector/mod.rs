//! Label and field selectors, as the `labelSelector` / `fieldSelector`
//! query parameters and `metav1.LabelSelector` objects express them:
//! parsing with upstream's grammar and error messages, canonical printing,
//! matching against objects, and the per-resource sets of selectable fields.

mod field;
mod fieldset;
mod label;
mod label_parse;
mod validate;

pub use field::{FieldOp, FieldRequirement, FieldSelector};
pub use fieldset::{check_supported, field_value};
pub use label::{LabelSelector, Operator, Requirement};
pub use validate::{label_value_errors, qualified_name_errors};

/// Why a selector was rejected. The `Display` text is upstream's message,
/// which the API server returns in a 400 `BadRequest` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector string that does not parse or names invalid
    /// keys/values, e.g. `unable to parse requirement: ...`.
    #[error("{0}")]
    Label(String),
    /// A field selector string that does not parse, e.g.
    /// `invalid selector: 'a'; can't understand 'a'`.
    #[error("{0}")]
    Field(String),
    /// A field label the resource does not support, e.g.
    /// `field label not supported: spec.foo`.
    #[error("{message}")]
    UnsupportedField { field: String, message: String },
    /// A `metav1.LabelSelector` object that is malformed or invalid.
    #[error("{0}")]
    InvalidLabelSelector(String),
}

/// Quotes a string the way Go's `%q` does for the common cases.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("x\ny\u{1}"), r#""x\ny\x01""#);
        assert_eq!(go_quote("é"), "\"é\"");
    }
}
