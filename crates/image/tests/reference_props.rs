//! Property tests for reference parsing: no input panics, normalisation is
//! idempotent, and generated valid names parse to their parts.

use proptest::prelude::*;
use rkube_image::Reference;

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,5}([._-][a-z0-9]{1,5}){0,2}"
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9]{0,6}\\.[a-z]{2,4}",
        "[a-z][a-z0-9]{0,6}\\.[a-z]{2,4}:[0-9]{2,5}",
        Just("localhost".to_string()),
        "localhost:[0-9]{2,5}",
        "127\\.0\\.0\\.[0-9]{1,2}:[0-9]{2,5}",
    ]
}

proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,80}") {
        let _ = Reference::parse(&s);
    }

    #[test]
    fn never_panics_on_reference_alphabet(s in "[a-zA-Z0-9:@/._-]{0,80}") {
        if let Ok(r) = Reference::parse(&s) {
            // Whatever parses normalises to a fixed point.
            let again = Reference::parse(&r.to_string()).unwrap();
            prop_assert_eq!(&again, &r);
            prop_assert!(r.tag().is_some() || r.digest().is_some());
        }
    }

    #[test]
    fn generated_names_parse(
        domain in proptest::option::of(domain()),
        path in proptest::collection::vec(component(), 1..4),
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        digest in proptest::option::of("[0-9a-f]{64}"),
    ) {
        // Without a registry, a first component with a dot would be one.
        prop_assume!(domain.is_some() || !path[0].contains('.'));
        let path = path.join("/");
        let mut s = match &domain { Some(d) => format!("{d}/{path}"), None => path.clone() };
        if let Some(t) = &tag { s.push(':'); s.push_str(t); }
        if let Some(d) = &digest { s.push_str("@sha256:"); s.push_str(d); }
        let r = Reference::parse(&s).unwrap();
        match &domain {
            Some(d) => {
                prop_assert_eq!(r.registry(), d.as_str());
                prop_assert_eq!(r.repository(), path.as_str());
            }
            None => {
                prop_assert_eq!(r.registry(), "docker.io");
                if path.contains('/') {
                    prop_assert_eq!(r.repository(), path.as_str());
                } else {
                    prop_assert_eq!(r.repository(), format!("library/{path}"));
                }
            }
        }
        let want_tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag.clone(),
        };
        prop_assert_eq!(r.tag().map(str::to_string), want_tag);
        prop_assert_eq!(r.digest().map(str::to_string), digest.map(|d| format!("sha256:{d}")));
        prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn uppercase_repositories_are_rejected(path in "[a-z]{1,5}[A-Z][a-z]{0,5}") {
        let err = Reference::parse(&format!("docker.io/{path}")).unwrap_err();
        prop_assert!(err.to_string().contains("must be lowercase"));
    }
}
