use super::*;
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIProjection, ObjectFieldSelector, VolumeProjection,
};
use k8s_openapi::ByteString;

fn cm(pairs: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: path.into(),
        mode,
    }
}

#[test]
fn config_map_all_keys_or_items() {
    let c = cm(&[("a", "1"), ("b", "2")]);
    let mut p = Payload::new();
    config_map(&mut p, "c", Some(&c), None, 0o600, false).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p["a"].data, b"1");
    assert_eq!(p["a"].mode, 0o600);
    let mut p = Payload::new();
    let items = vec![item("b", "sub/dir/b.txt", Some(0o400))];
    config_map(&mut p, "c", Some(&c), Some(&items), 0o644, false).unwrap();
    assert_eq!(p.keys().collect::<Vec<_>>(), ["sub/dir/b.txt"]);
    assert_eq!(p["sub/dir/b.txt"].mode, 0o400);
    let items = vec![item("zzz", "z", None)];
    assert_eq!(
        config_map(
            &mut Payload::new(),
            "c",
            Some(&c),
            Some(&items),
            0o644,
            false
        )
        .unwrap_err()
        .to_string(),
        "configmap references non-existent config key: zzz"
    );
    assert!(config_map(
        &mut Payload::new(),
        "c",
        Some(&c),
        Some(&items),
        0o644,
        true
    )
    .is_ok());
    assert_eq!(
        config_map(&mut Payload::new(), "gone", None, None, 0o644, false).unwrap_err(),
        PayloadError::ConfigMapNotFound("gone".into())
    );
    let items = vec![item("a", "../escape", None)];
    assert!(matches!(
        config_map(
            &mut Payload::new(),
            "c",
            Some(&c),
            Some(&items),
            0o644,
            false
        ),
        Err(PayloadError::Path(_))
    ));
}

#[test]
fn secrets_and_projected_sources() {
    let s = Secret {
        data: Some([("tls.key".to_string(), ByteString(vec![0, 1, 2]))].into()),
        ..Default::default()
    };
    let mut p = Payload::new();
    secret(&mut p, "s", Some(&s), None, 0o400, false).unwrap();
    assert_eq!(p["tls.key"].data, vec![0, 1, 2]);
    let mut pod = Pod::default();
    pod.metadata.namespace = Some("team".into());
    let src = EnvSources {
        config_maps: [("cfg".to_string(), cm(&[("k", "v")]))].into(),
        ..Default::default()
    };
    let vol = ProjectedVolumeSource {
        default_mode: Some(0o640),
        sources: Some(vec![
            VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: "cfg".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(DownwardAPIProjection {
                    items: Some(vec![DownwardAPIVolumeFile {
                        path: "ns".into(),
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.namespace".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
        ]),
    };
    let mut p = Payload::new();
    projected(&mut p, &pod, &vol, &src).unwrap();
    assert_eq!(p["k"].data, b"v");
    assert_eq!(p["ns"].data, b"team");
    assert_eq!(p["ns"].mode, 0o640);
}

#[test]
fn atomic_writer_swaps_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut p = Payload::new();
    p.insert(
        "a".into(),
        FileEntry {
            data: b"1".to_vec(),
            mode: 0o644,
        },
    );
    p.insert(
        "sub/b".into(),
        FileEntry {
            data: b"2".to_vec(),
            mode: 0o600,
        },
    );
    assert!(write_atomic(d, &p).unwrap());
    assert_eq!(std::fs::read(d.join("a")).unwrap(), b"1");
    assert_eq!(std::fs::read(d.join("sub/b")).unwrap(), b"2");
    assert!(std::fs::symlink_metadata(d.join("a"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!write_atomic(d, &p).unwrap(), "unchanged payload: no write");
    let first = std::fs::read_link(d.join("..data")).unwrap();
    p.remove("sub/b");
    p.get_mut("a").unwrap().data = b"changed".to_vec();
    assert!(write_atomic(d, &p).unwrap());
    assert_eq!(std::fs::read(d.join("a")).unwrap(), b"changed");
    assert!(std::fs::symlink_metadata(d.join("sub")).is_err(), "pruned");
    assert!(!d.join(first).exists(), "old generation removed");
    let mode = std::fs::metadata(d.join("a")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}
