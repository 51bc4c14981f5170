//! Protobuf bodies as the real kubectl (1.33) sends them for `kubectl create
//! ...` (tests/fixtures/kubectl-protobuf/NAME.pb, captured from the wire)
//! must decode to the JSON kubectl renders for the same object with
//! `--dry-run=client -o json` (NAME.json; `creationTimestamp: null` removed,
//! as the decoder omits zero times).

use std::path::Path;

use serde_json::Value;

#[test]
fn kubectl_bodies_decode_to_kubectls_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl-protobuf");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for pb in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
    {
        let body = std::fs::read(pb).unwrap();
        let want: Value =
            serde_json::from_slice(&std::fs::read(pb.with_extension("json")).unwrap()).unwrap();
        let got =
            rkube_api::protobuf::decode(&body).unwrap_or_else(|e| panic!("{}: {e}", pb.display()));
        assert_eq!(got, want, "{}", pb.display());
        // And the kind's typed schema takes it with no unknown field.
        let api_version = got["apiVersion"].as_str().unwrap();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = got["kind"].as_str().unwrap();
        let typed = rkube_api::decode::decode_typed(group, kind, got.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", pb.display()));
        assert!(
            typed.unknown_fields.is_empty(),
            "{}: {:?}",
            pb.display(),
            typed.unknown_fields
        );
        checked += 1;
    }
    assert!(
        checked >= 15,
        "only {checked} fixtures found in {}",
        dir.display()
    );
}
