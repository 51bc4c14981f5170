//! Label key and value checks used by the selector parsers: upstream's
//! `IsQualifiedName` and `IsValidLabelValue`, shared with object validation
//! through [`crate::names`].

pub use crate::names::is_label_value as label_value_errors;
pub use crate::names::is_qualified_name as qualified_name_errors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_like_upstream() {
        assert!(qualified_name_errors("app").is_empty());
        assert!(qualified_name_errors("example.com/My_Name-1").is_empty());
        assert_eq!(
            qualified_name_errors("app:"),
            vec!["name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]
        );
        let e = qualified_name_errors("app.kubernetes_io/name");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("prefix part a lowercase RFC 1123 subdomain"),
            "{e:?}"
        );
        assert!(qualified_name_errors("a/b/c")[0].starts_with("a qualified name must consist"));
        assert_eq!(
            qualified_name_errors("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            qualified_name_errors(&"x".repeat(64))[0],
            "name part must be no more than 63 characters"
        );
        assert_eq!(qualified_name_errors("").len(), 2);
    }

    #[test]
    fn values_are_checked_like_upstream() {
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("v1.2_3-x").is_empty());
        assert_eq!(label_value_errors("-x").len(), 1);
        assert_eq!(
            label_value_errors(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert!(label_value_errors("a b")[0].contains("'MyValue',  or 'my_value',  or '12345'"));
    }
}
