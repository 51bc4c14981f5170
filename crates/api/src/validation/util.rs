//! Helpers shared by the validators: defensive accessors over
//! `serde_json::Value` (a wrong JSON type becomes an Invalid field error,
//! never a panic), error constructors shaped like upstream's `field.*`
//! functions, and renderers for the Go-syntax values (`map[string]string{…}`)
//! that upstream prints in some messages.

use serde_json::{Map, Value};

use crate::field::{FieldError, FieldErrorType, Path};

/// The error list every validator appends to.
pub(crate) type Errs = Vec<FieldError>;

/// The member `key` of `v` when `v` is an object and the member is not null.
pub(crate) fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?.get(key).filter(|x| !x.is_null())
}

fn type_error(e: &mut Errs, path: Path, v: &Value, what: &str) {
    e.push(FieldError::invalid(
        path,
        v.clone(),
        format!("must be {what}"),
    ));
}

/// The string at `v[key]`; `""` when absent. A non-string is reported.
pub(crate) fn string<'a>(e: &mut Errs, v: &'a Value, p: &Path, key: &str) -> &'a str {
    opt_string(e, v, p, key).unwrap_or("")
}

/// The string at `v[key]`, `None` when absent. A non-string is reported.
pub(crate) fn opt_string<'a>(e: &mut Errs, v: &'a Value, p: &Path, key: &str) -> Option<&'a str> {
    match get(v, key)? {
        Value::String(s) => Some(s),
        other => {
            type_error(e, p.child(key), other, "a string");
            None
        }
    }
}

/// The integer at `v[key]`. A non-integer is reported.
pub(crate) fn int(e: &mut Errs, v: &Value, p: &Path, key: &str) -> Option<i64> {
    let x = get(v, key)?;
    match x.as_i64() {
        Some(n) => Some(n),
        None => {
            type_error(e, p.child(key), x, "an integer");
            None
        }
    }
}

/// The boolean at `v[key]`. A non-boolean is reported.
pub(crate) fn boolean(e: &mut Errs, v: &Value, p: &Path, key: &str) -> Option<bool> {
    let x = get(v, key)?;
    match x.as_bool() {
        Some(b) => Some(b),
        None => {
            type_error(e, p.child(key), x, "a boolean");
            None
        }
    }
}

/// Pushes `Required value` at `p.key` when the string `v[key]` is empty.
pub(crate) fn require_str(e: &mut Errs, v: &Value, p: &Path, key: &str) {
    if string(e, v, p, key).is_empty() {
        e.push(required(&p.child(key), ""));
    }
}

/// Pushes `Required value` at `p` when `missing`.
pub(crate) fn require_nonempty(e: &mut Errs, missing: bool, p: &Path) {
    if missing {
        e.push(required(p, ""));
    }
}

/// The array at `v[key]`; empty when absent. A non-array is reported.
pub(crate) fn array<'a>(e: &mut Errs, v: &'a Value, p: &Path, key: &str) -> &'a [Value] {
    match get(v, key) {
        None => &[],
        Some(Value::Array(a)) => a,
        Some(other) => {
            type_error(e, p.child(key), other, "an array");
            &[]
        }
    }
}

/// The object at `v[key]` (as the `Value`), `None` when absent. A
/// non-object is reported.
pub(crate) fn object<'a>(e: &mut Errs, v: &'a Value, p: &Path, key: &str) -> Option<&'a Value> {
    match get(v, key)? {
        x @ Value::Object(_) => Some(x),
        other => {
            type_error(e, p.child(key), other, "an object");
            None
        }
    }
}

/// The items of the array at `v[key]` that are objects, with their index;
/// other items are reported.
pub(crate) fn objects<'a>(
    e: &mut Errs,
    v: &'a Value,
    p: &Path,
    key: &str,
) -> Vec<(usize, &'a Value)> {
    let mut out = Vec::new();
    for (i, item) in array(e, v, p, key).iter().enumerate() {
        if item.is_object() {
            out.push((i, item));
        } else {
            type_error(e, p.child(key).index(i), item, "an object");
        }
    }
    out
}

/// The string items of the array at `v[key]`; other items are reported.
pub(crate) fn strings<'a>(e: &mut Errs, v: &'a Value, p: &Path, key: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for (i, item) in array(e, v, p, key).iter().enumerate() {
        match item.as_str() {
            Some(s) => out.push(s),
            None => type_error(e, p.child(key).index(i), item, "a string"),
        }
    }
    out
}

/// The string-to-string map at `v[key]`, `None` when absent; non-string
/// values are reported and skipped.
pub(crate) fn string_map<'a>(
    e: &mut Errs,
    v: &'a Value,
    p: &Path,
    key: &str,
) -> Option<Vec<(&'a str, &'a str)>> {
    let m = object(e, v, p, key)?.as_object()?;
    let mut out = Vec::with_capacity(m.len());
    for (k, val) in m {
        match val.as_str() {
            Some(s) => out.push((k.as_str(), s)),
            None => type_error(e, p.child(key).key(k), val, "a string"),
        }
    }
    Some(out)
}

/// The map at `v[key]` (any value type), `None` when absent.
pub(crate) fn map<'a>(
    e: &mut Errs,
    v: &'a Value,
    p: &Path,
    key: &str,
) -> Option<&'a Map<String, Value>> {
    object(e, v, p, key)?.as_object()
}

/// The value at a dotted path of object members, e.g. `["spec", "template"]`.
pub(crate) fn at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |cur, k| get(cur, k))
}

/// Shorthand for a string at a dotted path, without error reporting (used
/// where the value was already checked, or for comparisons).
pub(crate) fn str_at<'a>(v: &'a Value, keys: &[&str]) -> &'a str {
    at(v, keys).and_then(Value::as_str).unwrap_or("")
}

// ---------------------------------------------------------------------------
// Error constructors, named after upstream's field.* functions.

pub(crate) fn required(p: &Path, detail: &str) -> FieldError {
    FieldError::required(p, detail)
}

pub(crate) fn invalid(p: &Path, value: impl Into<Value>, detail: impl Into<String>) -> FieldError {
    FieldError::invalid(p, value, detail)
}

/// An Invalid error whose value is printed verbatim (Go-syntax rendering),
/// e.g. `Invalid value: map[string]string{"a":"b"}: …`.
pub(crate) fn invalid_raw(p: &Path, rendered: &str, detail: &str) -> FieldError {
    let d = if detail.is_empty() {
        rendered.to_string()
    } else {
        format!("{rendered}: {detail}")
    };
    FieldError::new(FieldErrorType::Invalid, p, None, d)
}

pub(crate) fn forbidden(p: &Path, detail: impl Into<String>) -> FieldError {
    FieldError::forbidden(p, detail)
}

pub(crate) fn duplicate(p: &Path, value: impl Into<Value>) -> FieldError {
    FieldError::duplicate(p, value)
}

/// A Duplicate error whose value is printed verbatim, with a detail.
pub(crate) fn duplicate_raw(p: &Path, rendered: &str, detail: &str) -> FieldError {
    let d = if detail.is_empty() {
        rendered.to_string()
    } else {
        format!("{rendered}: {detail}")
    };
    FieldError::new(FieldErrorType::Duplicate, p, None, d)
}

pub(crate) fn not_found(p: &Path, value: impl Into<Value>) -> FieldError {
    FieldError::not_found(p, value)
}

pub(crate) fn not_supported(p: &Path, value: impl Into<Value>, supported: &[&str]) -> FieldError {
    FieldError::not_supported(p, value, supported)
}

/// A NotSupported error whose value is printed verbatim.
pub(crate) fn not_supported_raw(p: &Path, rendered: &str, supported: &[&str]) -> FieldError {
    let list = supported
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    FieldError::new(
        FieldErrorType::NotSupported,
        p,
        None,
        format!("{rendered}: supported values: {list}"),
    )
}

/// `Too long: must have at most N bytes` (upstream's `field.TooLong`).
pub(crate) fn too_long(p: &Path, max: usize) -> FieldError {
    FieldError::too_long(p, max)
}

/// `Too many: 5: must have at most 3 items` (upstream's `field.TooMany`).
pub(crate) fn too_many(p: &Path, actual: usize, max: usize) -> FieldError {
    FieldError::new(
        FieldErrorType::TooMany,
        p,
        None,
        format!("{actual}: must have at most {max} items"),
    )
}

/// `must be greater than or equal to 0` when `n` is negative.
pub(crate) fn nonnegative(e: &mut Errs, n: Option<i64>, p: &Path) {
    if let Some(n) = n {
        if n < 0 {
            e.push(invalid(p, n, IS_NEGATIVE));
        }
    }
}

/// Reads the integer at `v[key]` and checks it is not negative.
pub(crate) fn nonneg_at(e: &mut Errs, v: &Value, p: &Path, key: &str) -> Option<i64> {
    let n = int(e, v, p, key);
    nonnegative(e, n, &p.child(key));
    n
}

pub(crate) const IS_NEGATIVE: &str = "must be greater than or equal to 0";
pub(crate) const IMMUTABLE: &str = "field is immutable";

/// Upstream's `ValidateImmutableField` for JSON values: absent and null are
/// the same; the new value is printed.
pub(crate) fn immutable(e: &mut Errs, new: Option<&Value>, old: Option<&Value>, p: &Path) {
    if !same(new, old) {
        e.push(invalid(p, new.cloned().unwrap_or(Value::Null), IMMUTABLE));
    }
}

/// Semantic equality of optional JSON values: absent, null, empty object
/// and empty array are all "unset".
pub(crate) fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn unset(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        }
    }
    if unset(a) && unset(b) {
        return true;
    }
    match (a, b) {
        (Some(x), Some(y)) => semantic_eq(x, y),
        _ => false,
    }
}

/// Deep equality treating null members, empty maps and empty lists as
/// absent (upstream's semantic DeepEqual after decoding into Go structs,
/// where `omitempty` erases that difference).
pub(crate) fn semantic_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys = x.keys().chain(y.keys());
            for k in keys {
                if !same(x.get(k), y.get(k)) {
                    return false;
                }
            }
            true
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| semantic_eq(p, q))
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p == q,
            _ => x == y,
        },
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------
// Go-syntax renderers for values upstream prints with `%#v`.

/// Go's `%q` of a string (close enough: Rust's debug quoting).
pub(crate) fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// `map[string]string{"a":"b", "c":"d"}` (keys sorted, as Go prints maps);
/// `map[string]string(nil)` when absent.
pub(crate) fn go_string_map(m: Option<&Value>) -> String {
    let Some(obj) = m.and_then(Value::as_object) else {
        return "map[string]string(nil)".to_string();
    };
    let mut pairs: Vec<(&String, String)> = obj
        .iter()
        .map(|(k, v)| (k, v.as_str().map(go_quote).unwrap_or_else(|| v.to_string())))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", go_quote(k), v))
        .collect::<Vec<_>>()
        .join(", ");
    format!("map[string]string{{{body}}}")
}

/// `[]string{"a", "b"}`, or `[]string(nil)` when absent.
pub(crate) fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".to_string(),
        Some(a) => {
            let items = a
                .iter()
                .map(|x| x.as_str().map(go_quote).unwrap_or_else(|| x.to_string()));
            format!("[]string{{{}}}", items.collect::<Vec<_>>().join(", "))
        }
    }
}

/// `v1.LabelSelector{MatchLabels:…, MatchExpressions:…}` as upstream prints
/// a `*metav1.LabelSelector` bad value.
pub(crate) fn go_label_selector(sel: Option<&Value>) -> String {
    let sel = sel.unwrap_or(&Value::Null);
    let exprs = match get(sel, "matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(items) => {
            let rendered: Vec<String> = items
                .iter()
                .map(|r| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_at(r, &["key"])),
                        go_quote(str_at(r, &["operator"])),
                        go_string_slice(get(r, "values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", rendered.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        go_string_map(get(sel, "matchLabels")),
        exprs
    )
}

/// `intstr.IntOrString{Type:1, IntVal:0, StrVal:"5%"}` as upstream prints an
/// IntOrString bad value.
pub(crate) fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_quote(s)
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

/// A short diff of two specs, in the spirit of upstream's `cmp.Diff`.
pub(crate) fn spec_diff(type_name: &str, old: &Value, new: &Value) -> String {
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = o.keys().collect();
    keys.extend(n.keys().filter(|k| !o.contains_key(*k)));
    let mut out = format!("  {type_name}{{\n");
    for k in keys {
        if same(o.get(k), n.get(k)) {
            continue;
        }
        let field = go_field_name(k);
        let render = |v: Option<&Value>| v.map(Value::to_string).unwrap_or_else(|| "nil".into());
        out.push_str(&format!(
            "- \t{field}: {},\n+ \t{field}: {},\n",
            render(o.get(k)),
            render(n.get(k))
        ));
    }
    out.push_str("  }\n");
    out
}

fn go_field_name(k: &str) -> String {
    let mut c = k.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_report_wrong_types_instead_of_panicking() {
        let v = json!({"a": 1, "b": "x", "c": [1, "y"], "d": {"k": 2}});
        let p = Path::new("spec");
        let mut e = Vec::new();
        assert_eq!(string(&mut e, &v, &p, "a"), "");
        assert_eq!(
            e[0].to_string(),
            "spec.a: Invalid value: 1: must be a string"
        );
        assert_eq!(int(&mut e, &v, &p, "b"), None);
        assert_eq!(strings(&mut e, &v, &p, "c"), vec!["y"]);
        assert_eq!(e[2].field, "spec.c[0]");
        let m = string_map(&mut e, &v, &p, "d").unwrap();
        assert!(m.is_empty());
        assert_eq!(e[3].field, "spec.d[k]");
        assert_eq!(array(&mut e, &json!("scalar"), &p, "x").len(), 0);
        assert_eq!(e.len(), 4);
    }

    #[test]
    fn go_renderings() {
        assert_eq!(
            go_string_map(Some(&json!({"b": "2", "a": "1"}))),
            r#"map[string]string{"a":"1", "b":"2"}"#
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
        assert_eq!(
            go_label_selector(Some(&json!({}))),
            "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            go_int_or_string(&json!("5%")),
            r#"intstr.IntOrString{Type:1, IntVal:0, StrVal:"5%"}"#
        );
    }

    #[test]
    fn semantic_equality_ignores_empty_and_null() {
        assert!(semantic_eq(
            &json!({"a": [], "b": null, "c": 1}),
            &json!({"c": 1.0, "d": {}})
        ));
        assert!(!semantic_eq(&json!({"a": [1]}), &json!({})));
    }
}
