//! Property tests for request-body decoding: arbitrary bytes and arbitrary
//! JSON shaped like objects never panic the decoder, and every unknown field
//! it reports is absent from the object it keeps.

use proptest::prelude::*;
use rkube_api::decode::{decode_typed, parse_body};
use rkube_api::resources::RESOURCES;
use serde_json::{json, Map, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9:./-]{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("containers".to_string()),
                    Just("name".to_string()),
                    Just("image".to_string()),
                    Just("replicas".to_string()),
                    Just("labels".to_string()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn paths_present(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(p.clone());
            paths_present(child, &p, out);
        }
    }
}

proptest! {
    #[test]
    fn parse_body_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_body(&bytes);
    }

    #[test]
    fn parse_body_never_panics_on_yamlish_text(s in "[a-z:{}\\[\\], \\n\\-'\"&*!|>#0-9]{0,120}") {
        let _ = parse_body(s.as_bytes());
    }

    #[test]
    fn typed_decoding_never_panics_and_drops_what_it_reports(idx in 0..RESOURCES.len(), body in value()) {
        let r = &RESOURCES[idx];
        let mut obj = body;
        if let Value::Object(m) = &mut obj {
            m.insert("apiVersion".into(), json!(r.api_version()));
            m.insert("kind".into(), json!(r.kind));
        }
        if let Ok(d) = decode_typed(r.group, r.kind, obj) {
            let mut kept = Vec::new();
            paths_present(&d.value, "", &mut kept);
            for unknown in &d.unknown_fields {
                if !unknown.contains('[') {
                    prop_assert!(!kept.contains(unknown), "{unknown} reported unknown but kept");
                }
            }
        }
    }
}
