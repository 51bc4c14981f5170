//! Property tests of the network-facing parsers and patchers: label and
//! field selectors, quantities, strategic merge / JSON patches. They must
//! never panic on arbitrary input, and printed forms must parse back to
//! the same value.

use proptest::prelude::*;
use rkube_api::quantity::Quantity;
use rkube_api::selector::{FieldOp, FieldRequirement, FieldSelector, LabelSelector};
use rkube_api::smp::{json_merge_patch, json_patch, strategic_merge};
use serde_json::{json, Map, Value};

/// Strings drawn from the selector alphabet, so the parser's branches get
/// exercised, plus arbitrary unicode.
fn selector_like() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "b", "x.io/k", "in", "notin", "=", "==", "!=", "!", "(", ")", ",", " ", ">",
                "<", "1", "-", "\\", "\u{0}", "é",
            ]),
            0..12
        )
        .prop_map(|parts| parts.concat()),
        any::<String>(),
    ]
}

fn label_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?"
}

fn label_key() -> impl Strategy<Value = String> {
    (
        prop::option::of("[a-z0-9]{1,6}(\\.[a-z0-9]{1,6}){0,2}"),
        label_name(),
    )
        .prop_map(|(prefix, name)| match prefix {
            Some(p) => format!("{p}/{name}"),
            None => name,
        })
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), label_name()]
}

/// One requirement in selector syntax.
fn requirement() -> impl Strategy<Value = String> {
    // Label values cannot start with '-', so `gt`/`lt` bounds are non-negative.
    (
        label_key(),
        0..8u8,
        prop::collection::vec(label_value(), 1..4),
        any::<u32>(),
    )
        .prop_map(|(k, op, vals, n)| match op {
            0 => format!("{k}={}", vals[0]),
            1 => format!("{k} == {}", vals[0]),
            2 => format!("{k}!={}", vals[0]),
            3 => format!("{k} in ({})", vals.join(",")),
            4 => format!("{k} notin ({})", vals.join(", ")),
            5 => k,
            6 => format!("!{k}"),
            _ => format!("{k}{}{n}", if n % 2 == 0 { ">" } else { "<" }),
        })
}

fn quantity_like() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "+", "-"]),
        "[0-9]{0,24}",
        prop::option::of("[0-9]{0,14}"),
        prop::sample::select(vec![
            "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
            "e3", "E-7", "e+12", "e-20", "e40",
        ]),
    )
        .prop_map(|(sign, num, frac, suffix)| match frac {
            Some(f) => format!("{sign}{num}.{f}{suffix}"),
            None => format!("{sign}{num}{suffix}"),
        })
}

const KEYS: &[&str] = &[
    "metadata",
    "spec",
    "template",
    "containers",
    "initContainers",
    "name",
    "image",
    "env",
    "value",
    "finalizers",
    "labels",
    "ports",
    "containerPort",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$deleteFromPrimitiveList/finalizers",
    "$deleteFromPrimitiveList/env",
    "status",
    "conditions",
    "type",
    "op",
    "path",
    "from",
];

const WORDS: &[&str] = &[
    "delete", "replace", "merge", "a", "b", "name", "add", "remove", "test", "move", "copy",
    "/spec", "/a/0", "/-", "",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|s| Value::String(s.to_string())),
        ".{0,6}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value().prop_map(|v| match v {
            Value::Object(m) => Value::Object(m),
            other => Value::Object(Map::from_iter([("spec".to_string(), other)])),
        }),
        json_value().prop_map(|v| json!({"spec": {"template": {"spec": {"containers": v}}}})),
        json_value().prop_map(|v| json!({"metadata": {"finalizers": v}})),
    ]
}

fn kind() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(vec![
        ("apps", "Deployment"),
        ("", "Pod"),
        ("", "Node"),
        ("", "Service"),
        ("batch", "CronJob"),
        ("", "ConfigMap"),
    ])
}

proptest! {
    #[test]
    fn label_parse_never_panics(s in selector_like()) {
        let _ = LabelSelector::parse(&s);
    }

    #[test]
    fn label_selectors_round_trip(reqs in prop::collection::vec(requirement(), 0..5)) {
        let text = reqs.join(",");
        let first = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let printed = first.to_string();
        let second = LabelSelector::parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(second.to_string(), printed);
    }

    #[test]
    fn field_parse_never_panics(s in selector_like()) {
        let _ = FieldSelector::parse(&s);
    }

    #[test]
    fn field_selectors_round_trip(
        terms in prop::collection::vec(("[a-zA-Z][a-zA-Z0-9.]{0,12}", any::<bool>(), any::<String>()), 0..5)
    ) {
        let reqs: Vec<FieldRequirement> = terms
            .into_iter()
            .map(|(field, eq, value)| FieldRequirement { field, op: if eq { FieldOp::Eq } else { FieldOp::NotEq }, value })
            .collect();
        let built = FieldSelector::from_requirements(reqs.clone());
        let parsed = FieldSelector::parse(&built.to_string())
            .map_err(|e| TestCaseError::fail(format!("{built}: {e}")))?;
        let mut want = reqs;
        let mut got = parsed.requirements().to_vec();
        want.sort_by(|a, b| (&a.field, &a.value).cmp(&(&b.field, &b.value)));
        got.sort_by(|a, b| (&a.field, &a.value).cmp(&(&b.field, &b.value)));
        prop_assert_eq!(want, got);
        prop_assert_eq!(FieldSelector::parse(&parsed.to_string()).ok(), Some(parsed));
    }

    #[test]
    fn quantity_parse_never_panics(s in prop_oneof![quantity_like(), any::<String>()]) {
        if let Ok(q) = Quantity::parse(&s) {
            let _ = (q.value(), q.milli_value(), q.canonical(), q.to_string());
        }
    }

    #[test]
    fn quantity_canonical_form_reparses_equal(s in quantity_like()) {
        // Upstream keeps larger values exact only until printed: their text
        // re-parses capped at 2^63-1, so the property holds within range.
        let max = Quantity::parse("9223372036854775807").unwrap();
        let min = Quantity::parse("-9223372036854775807").unwrap();
        if let Ok(q) = Quantity::parse(&s) {
            prop_assert!(Quantity::parse(&q.canonical()).is_ok());
            if q > max || q < min {
                return Ok(());
            }
            let canon = q.canonical();
            let again = Quantity::parse(&canon).map_err(|e| TestCaseError::fail(format!("{s:?} -> {canon:?}: {e}")))?;
            prop_assert_eq!(&again, &q, "{:?} -> {:?}", s, canon);
            prop_assert_eq!(again.canonical(), canon);
            let shown = Quantity::parse(&q.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(shown, q);
        }
    }

    #[test]
    fn quantity_order_agrees_with_millis(a in quantity_like(), b in quantity_like()) {
        if let (Ok(qa), Ok(qb)) = (Quantity::parse(&a), Quantity::parse(&b)) {
            if let (Some(ma), Some(mb)) = (qa.try_milli_value(), qb.try_milli_value()) {
                // Milli values round away from zero, so strict order survives only as <=.
                if qa < qb { prop_assert!(ma <= mb, "{} < {} but {} > {}", a, b, ma, mb); }
            }
        }
    }

    #[test]
    fn strategic_merge_never_panics(k in kind(), original in json_object(), patch in json_object()) {
        let _ = strategic_merge(k, &original, &patch);
    }

    #[test]
    fn strategic_merge_with_empty_patch_is_identity(k in kind(), original in json_object()) {
        prop_assert_eq!(strategic_merge(k, &original, &json!({})).ok(), Some(original));
    }

    #[test]
    fn strategic_merge_results_carry_no_directives(k in kind(), original in json_object(), patch in json_object()) {
        // Originals never hold directives; whatever the patch says, none may leak.
        let clean_original = strip_directives(original);
        if let Ok(out) = strategic_merge(k, &clean_original, &patch) {
            prop_assert!(!has_directive(&out), "{}", out);
        }
    }

    #[test]
    fn json_patches_never_panic(original in json_value(), body in json_value(), ops in prop::collection::vec(json_op(), 0..4)) {
        let _ = json_patch(&original, &body);
        let _ = json_patch(&original, &Value::Array(ops));
        let _ = json_merge_patch(&original, &body);
    }
}

fn json_op() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "add", "remove", "replace", "move", "copy", "test", "bogus",
        ]),
        prop::sample::select(vec![
            "",
            "/",
            "/spec",
            "/spec/0",
            "/a/-",
            "/metadata/labels/x",
            "~1",
            "/0",
        ]),
        prop::sample::select(vec!["", "/spec", "/a", "/0"]),
        json_leaf(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        )
}

fn is_directive(k: &str) -> bool {
    k.starts_with('$')
}

fn strip_directives(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !is_directive(k))
                .map(|(k, v)| (k, strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_directives).collect()),
        other => other,
    }
}

fn has_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| is_directive(k) || has_directive(v)),
        Value::Array(a) => a.iter().any(has_directive),
        _ => false,
    }
}
