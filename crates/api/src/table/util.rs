//! Tolerant accessors over `serde_json::Value` and the small formatting
//! helpers upstream's printers share (labels, label selectors, container
//! cells, booleans). Nothing here panics: a missing or oddly typed field
//! reads as its Go zero value.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::duration::translate_timestamp_since;

/// Follows `path` through nested objects.
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    Some(cur)
}

/// The string at `path`, or "" (Go's zero value).
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` when present and a string (a Go `*string`).
pub(crate) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// The integer at `path`, or 0.
pub(crate) fn int_at(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(as_int).unwrap_or(0)
}

/// The integer at `path` when present (a Go `*int32`).
pub(crate) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(as_int)
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
}

/// The boolean at `path`, or false.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(crate) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at `path` when present and an object (a non-nil Go pointer).
pub(crate) fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    get(v, path).and_then(Value::as_object)
}

/// Number of entries of the map (or array) at `path`.
pub(crate) fn len_at(v: &Value, path: &[&str]) -> i64 {
    let n = match get(v, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn name(obj: &Value) -> Value {
    Value::from(str_at(obj, &["metadata", "name"]))
}

/// The Age cell: time since `metadata.creationTimestamp`.
pub(crate) fn age(obj: &Value, now: Timestamp) -> Value {
    Value::from(translate_timestamp_since(
        get(obj, &["metadata", "creationTimestamp"]),
        now,
    ))
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    matches!(get(obj, &["metadata", "deletionTimestamp"]), Some(Value::String(s)) if !s.is_empty())
}

/// Upstream's `labels.FormatLabels`: sorted `k=v` pairs joined by ",", or
/// "<none>".
pub(crate) fn format_labels(v: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = match v.and_then(Value::as_object) {
        Some(m) => m
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
            .collect(),
        None => Vec::new(),
    };
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Outcome of `metav1.LabelSelectorAsSelector(sel).String()`.
pub(crate) enum SelectorString {
    /// The rendered selector ("" for nil/empty selectors).
    Ok(String),
    /// The selector cannot be converted (bad operator or values).
    Invalid,
}

/// Renders a `metav1.LabelSelector` the way `labels.Selector.String()`
/// does: requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a)`,
/// `k`, `!k`.
pub(crate) fn label_selector_string(sel: Option<&Value>) -> SelectorString {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return SelectorString::Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = obj_at(sel, &["matchLabels"]) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in arr_at(sel, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let mut values: Vec<&str> = arr_at(expr, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let rendered = match str_at(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return SelectorString::Invalid,
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return SelectorString::Invalid,
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return SelectorString::Invalid,
        };
        reqs.push((key.to_string(), rendered));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    SelectorString::Ok(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Upstream's `metav1.FormatLabelSelector`: "<none>" when empty, "<error>"
/// when invalid.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match label_selector_string(sel) {
        SelectorString::Ok(s) if s.is_empty() => "<none>".to_string(),
        SelectorString::Ok(s) => s,
        SelectorString::Invalid => "<error>".to_string(),
    }
}

/// Upstream's `layoutContainerCells`: container names and images, each
/// joined by ",".
pub(crate) fn container_cells(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

/// Upstream's `printBool`.
pub(crate) fn print_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Renders an IntOrString the way `intstr.IntOrString.String()` does.
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_i64()
            .map(|i| i.to_string())
            .unwrap_or_else(|| n.to_string()),
        _ => String::new(),
    }
}

/// Upstream's `listWithMoreString`.
pub(crate) fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count.saturating_sub(max));
    }
    if ret.is_empty() {
        return "<unset>".to_string();
    }
    ret
}

/// A resource quantity as printed: its string form, "0" when absent.
pub(crate) fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}
