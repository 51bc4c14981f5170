//! Patches of the three kinds the API server accepts: strategic merge patch
//! (`application/strategic-merge-patch+json`, what `kubectl apply`/`patch`
//! send), JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

mod merge;
mod schema;

use serde_json::Value;

/// The most operations a JSON patch may hold (upstream's limit).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied. Messages are upstream's; see
/// `status_code` for the HTTP status upstream answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The original or the patch is not a JSON object.
    #[error("invalid JSON document")]
    BadJsonDoc,
    #[error("lists of lists are not supported")]
    NoListOfLists,
    #[error("invalid patch format of primitive list")]
    BadPrimitiveListFormat,
    #[error("invalid patch format of retainKeys")]
    BadRetainKeysFormat,
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrderFormat,
    /// A list item lacks the list's merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    /// A value of the wrong JSON type where a directive or list item
    /// requires a particular one.
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        expected: &'static str,
        actual: &'static str,
    },
    /// `$patch` with a value other than `replace`/`delete` (or `merge` in a
    /// list, see `MergeDirectiveInList`).
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownPatchType { directive: String, map: String },
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// Items that are maps in a merge list with no declared merge key.
    #[error("cannot merge lists without merge key for {field}")]
    NoMergeKeyDeclared { field: String },
    #[error("list element types are not identical: {0}")]
    MixedElementTypes(String),
    /// A list item in the patch that `$setElementOrder` does not name.
    #[error("the order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}")]
    OrderMismatch { patch: String, order: String },
    /// A JSON patch document that does not decode.
    #[error("{0}")]
    InvalidJsonPatch(String),
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations { max: usize, got: usize },
    /// A JSON patch operation that fails (bad path, failed `test`).
    #[error("{0}")]
    JsonPatchFailed(String),
}

impl PatchError {
    /// The HTTP status upstream's API server answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadJsonDoc
            | PatchError::BadPrimitiveListFormat
            | PatchError::BadRetainKeysFormat
            | PatchError::BadSetElementOrderFormat
            | PatchError::InvalidJsonPatch(_) => 400,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::NoListOfLists | PatchError::JsonPatchFailed(_) => 422,
            // Upstream passes the remaining strategic-merge errors through
            // as plain errors, which become 500s.
            _ => 500,
        }
    }
}

/// Applies a strategic merge patch to `original`, a `group`/`kind` object,
/// with the list semantics of that kind's fields. Both must be JSON
/// objects. Directive keys (`$patch`, `$retainKeys`, `$setElementOrder/…`,
/// `$deleteFromPrimitiveList/…`) never reach the result.
pub fn strategic_merge(
    res_kind: (&str, &str),
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let (Value::Object(o), Value::Object(p)) = (original, patch) else {
        return Err(PatchError::BadJsonDoc);
    };
    let ty = schema::root(res_kind.0, res_kind.1);
    merge::merge_map(o.clone(), p.clone(), ty).map(Value::Object)
}

/// Applies an RFC 7386 JSON merge patch: objects merge, `null` deletes, any
/// other value replaces.
pub fn json_merge_patch(original: &Value, patch: &Value) -> Value {
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// Applies an RFC 6902 JSON patch (`patch_body` must be the array of
/// operations). Operations apply in order; on failure nothing is changed.
pub fn json_patch(original: &Value, patch_body: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch_body.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    if ops.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: ops.0.len(),
        });
    }
    // Work on a copy: a failure leaves the original untouched.
    let mut out = original.clone();
    json_patch::patch_unsafe(&mut out, &ops)
        .map_err(|e| PatchError::JsonPatchFailed(e.to_string()))?;
    Ok(out)
}

/// Go's `%v` rendering of a decoded JSON value (`map[k:v ...]`, `[a b]`).
pub(crate) fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_fmt(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// The Go type a decoded JSON value has.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests;
