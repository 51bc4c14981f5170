//! The resource quantity as validation uses it: a thin adapter over the
//! shared `crate::quantity::Quantity` (upstream's grammar, order and
//! printing), adding the sign/integer checks and parse error text that
//! the validators need.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed quantity.
#[derive(Debug, Clone)]
pub(crate) struct Quantity(crate::quantity::Quantity);

/// Upstream's message for a string that is not a quantity.
pub(crate) const QUANTITY_ERR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

impl Quantity {
    /// Parses quantity text; `None` when it is not a quantity.
    pub(crate) fn parse(s: &str) -> Option<Quantity> {
        crate::quantity::Quantity::parse(s).ok().map(Quantity)
    }

    /// Parses a quantity sent as a JSON string or number.
    pub(crate) fn from_json(v: &Value) -> Option<Quantity> {
        match v {
            Value::String(_) | Value::Number(_) => {
                crate::quantity::Quantity::from_json(v).ok().map(Quantity)
            }
            _ => None,
        }
    }

    pub(crate) fn is_negative(&self) -> bool {
        self.0.signum() < 0
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Upstream's integer check: `MilliValue() % 1000 == 0`.
    pub(crate) fn is_integer(&self) -> bool {
        self.0.try_milli_value().is_none_or(|m| m % 1000 == 0)
    }

    pub(crate) fn cmp(&self, other: &Quantity) -> Ordering {
        self.0.cmp(&other.0)
    }

    /// Upstream's `String()`, as its messages print quantities.
    pub(crate) fn canonical(&self) -> String {
        self.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adapter_checks() {
        let q = |s| Quantity::parse(s).expect("valid quantity");
        assert!(q("-1").is_negative());
        assert!(q("0").is_zero());
        assert!(!q("1500m").is_integer());
        assert!(q("2k").is_integer());
        assert_eq!(q("1").cmp(&q("1000m")), Ordering::Equal);
        assert_eq!(q("1Gi").cmp(&q("1G")), Ordering::Greater);
        assert_eq!(q("500m").canonical(), "500m");
        assert!(Quantity::parse("lots").is_none());
        assert!(Quantity::from_json(&json!(2)).is_some_and(|x| x.canonical() == "2"));
        assert!(Quantity::from_json(&json!([1])).is_none());
    }
}
