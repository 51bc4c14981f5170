//! Request-body decoding: JSON or YAML into a `serde_json::Value`, then
//! through the kind's typed schema, reporting type errors (upstream: 400) and
//! the unknown fields that `fieldValidation=Strict` rejects.

use serde_json::Value;

use crate::field::FieldError;
use crate::typed::typed_kind;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The body is not well-formed JSON/YAML, or not an object.
    #[error("{0}")]
    Syntax(String),
    /// A field has the wrong type, e.g. a string where an integer belongs.
    #[error("{path}: {message}")]
    Type { path: String, message: String },
    /// A required field is absent (upstream reports these at validation, 422).
    #[error("{0}")]
    Missing(Box<FieldError>),
    /// No typed schema for the kind.
    #[error("no kind {0} is registered")]
    UnknownKind(String),
}

/// Parses a request body. JSON when it starts with `{` (after white space),
/// YAML otherwise — as upstream, which accepts YAML on `application/yaml`
/// and JSON on `application/json`; sniffing accepts both on either.
pub fn parse_body(body: &[u8]) -> Result<Value, DecodeError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| DecodeError::Syntax(format!("body is not UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    let v: Value = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| {
            DecodeError::Syntax(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    } else {
        let y: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| DecodeError::Syntax(format!("error converting YAML to JSON: {e}")))?;
        serde_json::to_value(y)
            .map_err(|e| DecodeError::Syntax(format!("error converting YAML to JSON: {e}")))?
    };
    Ok(v)
}

/// The result of decoding an object through its typed schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The object with unknown fields dropped.
    pub value: Value,
    /// Paths of fields the schema does not know, e.g. `spec.foo` or
    /// `spec.containers[0].imagePullPolcy`, in document order.
    pub unknown_fields: Vec<String>,
}

/// Decodes `v` as `group`/`kind`.
pub fn decode_typed(group: &str, kind: &str, v: Value) -> Result<Decoded, DecodeError> {
    let typed = typed_kind(group, kind)
        .ok_or_else(|| DecodeError::UnknownKind(format!("{kind}.{group}")))?;
    let out = typed.round_trip(v.clone()).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde's message carries " at line N column M" for text input; a
        // Value has none. "missing field `x`" is upstream's Required value.
        if let Some(rest) = inner.strip_prefix("missing field `") {
            let name = rest.trim_end_matches('`');
            let field = if path == "." || path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            DecodeError::Missing(Box::new(FieldError::required(field, "")))
        } else {
            DecodeError::Type {
                path,
                message: inner,
            }
        }
    })?;
    let mut unknown = Vec::new();
    let mut kept = v;
    diff_unknown(&mut kept, &out, String::new(), &mut unknown);
    Ok(Decoded {
        value: kept,
        unknown_fields: unknown,
    })
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Collects the paths present (and non-null) in `input` but absent from the
/// typed round trip `output`, and removes them — and null fields, which the
/// typed decoding treats as absent — from `input`. The input is kept rather
/// than the round trip, because the round trip fills absent required fields
/// with empty values (e.g. `selector: {}`), which validation must not see.
fn diff_unknown(input: &mut Value, output: &Value, path: String, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            i.retain(|k, iv| {
                if iv.is_null() {
                    return false;
                }
                match o.get(k) {
                    Some(ov) => {
                        diff_unknown(iv, ov, join(&path, k), out);
                        true
                    }
                    None => {
                        out.push(join(&path, k));
                        false
                    }
                }
            });
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter_mut().zip(o.iter()).enumerate() {
                diff_unknown(iv, ov, format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_and_json_bodies_decode_alike() {
        let y =
            parse_body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n")
                .unwrap();
        let j = parse_body(
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(y, j);
        assert!(matches!(
            parse_body(b"{not json"),
            Err(DecodeError::Syntax(_))
        ));
        assert!(matches!(
            parse_body(b"\xff\xfe"),
            Err(DecodeError::Syntax(_))
        ));
    }

    #[test]
    fn unknown_fields_are_reported_with_paths() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolcy": "Always"}]}
        });
        let d = decode_typed("", "Pod", pod).unwrap();
        assert_eq!(
            d.unknown_fields,
            vec!["metadata.bogus", "spec.containers[0].imagePullPolcy"]
        );
        assert!(d.value["spec"]["containers"][0]
            .get("imagePullPolcy")
            .is_none());
        assert_eq!(d.value["spec"]["containers"][0]["image"], "nginx");
    }

    #[test]
    fn type_errors_carry_the_path() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": "three", "selector": {}, "template": {}}});
        match decode_typed("apps", "Deployment", d) {
            Err(DecodeError::Type { path, .. }) => assert_eq!(path, "spec.replicas"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn absent_required_fields_stay_absent() {
        // k8s-openapi fills absent required fields with empty values; the
        // decoded object must not, so that validation reports them.
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": null},
            "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}});
        let out = decode_typed("apps", "Deployment", d).unwrap().value;
        assert!(out["spec"].get("selector").is_none(), "{out}");
        assert!(
            out["spec"]["template"]["spec"]["containers"][0]
                .get("name")
                .is_none(),
            "{out}"
        );
        assert!(
            out["metadata"].get("labels").is_none(),
            "nulls are dropped: {out}"
        );
    }
}
