//! Quantity tests against upstream's known parse results, printed forms,
//! scaled values and ordering.

use super::*;

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn prints_like_upstream() {
    let cases = [
        ("0", "0"),
        ("0n", "0"),
        ("0Ki", "0"),
        ("-0", "0"),
        ("1Ki", "1Ki"),
        ("8Ki", "8Ki"),
        ("7Mi", "7Mi"),
        ("1024Ki", "1Mi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Ki", "512"),
        ("1.5Ki", "1536"),
        ("1.1Ki", "1126400m"),
        ("-1Ki", "-1Ki"),
        ("1000m", "1"),
        ("0.5", "500m"),
        ("0.1", "100m"),
        ("1.5", "1500m"),
        ("100m", "100m"),
        ("0.1m", "100u"),
        ("1n", "1n"),
        ("1.5n", "2n"),
        ("0.5n", "1n"),
        ("1e3", "1e3"),
        ("1e4", "10e3"),
        ("5e-3", "5e-3"),
        ("1e-10", "1e-9"),
        ("1E", "1E"),
        ("2000k", "2M"),
        ("12345678901234567890", "9223372036854775807"),
        ("1.", "1."),
        (".5", "500m"),
        ("-", "0"),
        (".", "0"),
        ("Ki", "0"),
        ("+1", "+1"),
        ("01", "01"),
    ];
    for (input, want) in cases {
        assert_eq!(q(input).to_string(), want, "input {input:?}");
    }
    assert_eq!(q("01").canonical(), "1");
    assert_eq!(q("1.").canonical(), "1");
    assert_eq!(q("+1").canonical(), "1");
    assert_eq!(q("1e3").canonical(), "1e3");
    assert_eq!(q("1000k").canonical(), "1M");
}

#[test]
fn rejects_malformed_input_with_upstream_errors() {
    for s in ["", "1.1.1", "1Q", "1KiB", "1 ", " 1", "abc", "1e3.5"] {
        assert_eq!(Quantity::parse(s), Err(QuantityError::FormatWrong), "{s:?}");
    }
    for s in ["1k2", "1e", "1mi", "1ee3", "1e99999999999999999999"] {
        assert_eq!(Quantity::parse(s), Err(QuantityError::Suffix), "{s:?}");
    }
    for s in ["e-10", "-.e-10"] {
        assert_eq!(Quantity::parse(s), Err(QuantityError::Numeric), "{s:?}");
    }
    assert_eq!(
        QuantityError::FormatWrong.to_string(),
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
}

#[test]
fn scaled_values_round_away_from_zero() {
    assert_eq!(q("1.5").milli_value(), 1500);
    assert_eq!(q("1.5").value(), 2);
    assert_eq!(q("-1.5").value(), -2);
    assert_eq!(q("1m").value(), 1);
    assert_eq!(q("1n").milli_value(), 1);
    assert_eq!(q("-1n").milli_value(), -1);
    assert_eq!(q("100m").milli_value(), 100);
    assert_eq!(q("1Ki").milli_value(), 1_024_000);
    assert_eq!(q("2Gi").value(), 2 * 1024 * 1024 * 1024);
    assert_eq!(q("1e100").try_value(), None);
    assert_eq!(q("1e100").value(), i128::MAX);
    assert_eq!(q("-1e100").milli_value(), i128::MIN);
    assert_eq!(q("1e-100").value(), 1, "rounded up to 1n first");
    assert_eq!(Quantity::from_milli(250).to_string(), "250m");
    assert_eq!(
        Quantity::from_int(2048, Format::BinarySI).to_string(),
        "2Ki"
    );
}

#[test]
fn orders_and_compares_by_value() {
    assert_eq!(q("1Ki"), q("1024"));
    assert_eq!(q("500m"), q("0.5"));
    assert_eq!(q("1"), q("1000m"));
    assert!(q("1") < q("1001m"));
    assert!(q("-1") < q("0"));
    assert!(q("-2") < q("-1"));
    assert!(q("1e100") > q("9223372036854775807"));
    assert!(q("1n") > q("0"));
    assert!(q("999m") < q("1"));
    assert!(q("1Mi") > q("1M"));
    let mut v = [q("2"), q("1Gi"), q("-3"), q("100m")];
    v.sort();
    assert_eq!(
        v.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
        ["-3", "100m", "2", "1Gi"]
    );
}

#[test]
fn decodes_json_forms() {
    assert_eq!(
        Quantity::from_json(&serde_json::json!(" 2Gi "))
            .unwrap()
            .to_string(),
        "2Gi"
    );
    assert_eq!(
        Quantity::from_json(&serde_json::json!(3)).unwrap().value(),
        3
    );
    assert!(Quantity::from_json(&serde_json::Value::Null)
        .unwrap()
        .is_zero());
    assert!(Quantity::from_json(&serde_json::json!([])).is_err());
}
