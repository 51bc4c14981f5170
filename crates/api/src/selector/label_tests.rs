//! Tests of label selector parsing, printing and matching, with cases and
//! messages taken from upstream's `labels` package behaviour.

use super::*;
use serde_json::json;

fn labels(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn valid_selectors_print_canonically() {
    let cases = [
        ("", ""),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("x!=a,y=b", "x!=a,y=b"),
        ("x=", "x="),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("x= ,z= ", "x=,z="),
        ("!x", "!x"),
        ("x>1", "x>1"),
        ("x>1,z<5", "x>1,z<5"),
        ("x==a", "x==a"),
        ("z=c, y=b ,x=a", "x=a,y=b,z=c"),
        ("x in (b, a)", "x in (a,b)"),
        ("x notin ()", "x notin ()"),
        ("x in (,a)", "x in (,a)"),
        ("x in (a,,)", "x in (,a)"),
        ("x in (in, notin)", "x in (in,notin)"),
        ("in=notin", "in=notin"),
        ("  a ,  !b  ", "a,!b"),
        ("example.com/app=web", "example.com/app=web"),
        ("a=b\u{0}garbage", "a=b"),
    ];
    for (input, want) in cases {
        let s = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(s.to_string(), want, "input {input:?}");
    }
}

#[test]
fn syntax_errors_carry_upstream_messages() {
    let cases = [
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        ("x=a,", "found '', expected: identifier after ','"),
        (",x=a", "found ',', expected: !, identifier, or 'end of string'"),
        ("x in", "unable to parse requirement: found '' expected: '('"),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("x (a)", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
        ("x=(", "unable to parse requirement: found '(', expected: identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        (
            "x<a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ];
    for (input, want) in cases {
        let err = LabelSelector::parse(input).expect_err(input);
        assert_eq!(err.to_string(), want, "input {input:?}");
    }
}

#[test]
fn invalid_keys_and_values_are_reported_with_paths() {
    let e = LabelSelector::parse("app:monolith")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
    let e = LabelSelector::parse("app=demo-{nginx}")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("unable to parse requirement: values[0][app]: Invalid value: \"demo-{nginx}\": a valid label must be an empty string"),
        "{e}"
    );
    let e = LabelSelector::parse("x=a||y=b").unwrap_err().to_string();
    assert!(
        e.starts_with("unable to parse requirement: values[0][x]: Invalid value: \"a||y\""),
        "{e}"
    );
    let long = "v".repeat(64);
    let e = LabelSelector::parse(&format!("a={long}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be no more than 63 characters"), "{e}");
}

#[test]
fn matching_follows_upstream_semantics() {
    let l = labels(json!({"app": "web", "tier": "front", "n": "7", "bad": 3}));
    let m = |sel: &str| LabelSelector::parse(sel).unwrap().matches(Some(&l));
    assert!(m(""));
    assert!(m("app=web"));
    assert!(m("app==web,tier"));
    assert!(!m("app=db"));
    assert!(m("app!=db"));
    assert!(m("missing!=x"));
    assert!(m("app in (db,web)"));
    assert!(!m("app notin (db,web)"));
    assert!(m("missing notin (a)"));
    assert!(m("!missing"));
    assert!(!m("!app"));
    assert!(m("n>6") && !m("n>7") && m("n<8"));
    assert!(!m("app>1"), "non-numeric values never satisfy gt");
    assert!(!m("missing<5"));
    // Non-string values: present, never equal.
    assert!(m("bad") && !m("bad=3") && m("bad!=3"));
    // No labels at all.
    let s = LabelSelector::parse("!a,b notin (x)").unwrap();
    assert!(s.matches(None));
    assert!(!LabelSelector::parse("a").unwrap().matches(None));
    assert!(LabelSelector::parse("a=b")
        .unwrap()
        .matches_object(&json!({"metadata": {"labels": {"a": "b"}}})));
}

#[test]
fn api_selectors_convert_like_upstream() {
    assert!(LabelSelector::from_api(&json!({})).unwrap().is_empty());
    let nothing = LabelSelector::from_api(&Value::Null).unwrap();
    assert!(nothing.matches_nothing() && !nothing.is_empty());
    assert!(!nothing.matches(Some(&labels(json!({"a": "b"})))));

    let s = LabelSelector::from_api(&json!({
        "matchLabels": {"tier": "front", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "canary", "operator": "DoesNotExist"}
        ]
    }))
    .unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,!canary,env in (dev,prod),tier=front"
    );
    assert!(s.matches(Some(&labels(
        json!({"app": "web", "tier": "front", "env": "dev"})
    ))));
    assert!(!s.matches(Some(&labels(
        json!({"app": "web", "tier": "front", "env": "qa"})
    ))));
    assert_eq!(s.requires_exact_match("app"), Some("web"));
    assert_eq!(s.requires_exact_match("env"), None);

    let e =
        LabelSelector::from_api(&json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}))
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"Bogus\" is not a valid label selector operator"
    );
    let e = LabelSelector::from_api(
        &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    );
    let e = LabelSelector::from_api(
        &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist");
    let e = LabelSelector::from_api(&json!({"matchLabels": {"a b": "x"}})).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("key: Invalid value: \"a b\": name part must consist"),
        "{e}"
    );
    assert!(LabelSelector::from_api(&json!({"matchLabels": {"a": 1}})).is_err());
    assert!(LabelSelector::from_api(&json!([1])).is_err());
}

#[test]
fn selectors_from_label_maps() {
    let s = LabelSelector::from_labels(&labels(json!({"b": "2", "a": "1"}))).unwrap();
    assert_eq!(s.to_string(), "a=1,b=2");
    assert!(LabelSelector::from_labels(&Map::new()).unwrap().is_empty());
}
