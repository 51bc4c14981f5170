//! Tests of protobuf body decoding: whole objects as upstream marshals them
//! (zero scalars included), special types, malformed input, and a property
//! test that decoding never panics.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

/// A protobuf message builder for the tests.
#[derive(Clone, Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn new() -> Self {
        Enc(Vec::new())
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, n: u32, wire: u8) {
        self.raw_varint((u64::from(n) << 3) | u64::from(wire));
    }

    fn int(mut self, n: u32, v: i64) -> Self {
        self.key(n, 0);
        self.raw_varint(v as u64);
        self
    }

    fn bytes(mut self, n: u32, b: &[u8]) -> Self {
        self.key(n, 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn str(self, n: u32, s: &str) -> Self {
        self.bytes(n, s.as_bytes())
    }

    fn msg(self, n: u32, m: Enc) -> Self {
        self.bytes(n, &m.0)
    }

    fn entry(self, n: u32, k: &str, v: &str) -> Self {
        self.msg(n, Enc::new().str(1, k).str(2, v))
    }
}

/// The envelope: magic, then runtime.Unknown as upstream writes it.
fn body(api_version: &str, kind: &str, raw: Enc) -> Vec<u8> {
    let unknown = Enc::new()
        .msg(1, Enc::new().str(1, api_version).str(2, kind))
        .msg(2, raw)
        .str(3, "")
        .str(4, "");
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&unknown.0);
    out
}

/// ObjectMeta as gogo-protobuf writes it: every non-pointer field, zero or
/// not, and an empty creationTimestamp.
fn meta(name: &str, namespace: &str) -> Enc {
    Enc::new()
        .str(1, name)
        .str(2, "")
        .str(3, namespace)
        .str(4, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, Enc::new())
}

fn quantity(s: &str) -> Enc {
    Enc::new().str(1, s)
}

fn int_or_string_int(i: i64) -> Enc {
    Enc::new().int(1, 0).int(2, i).str(3, "")
}

fn int_or_string_str(s: &str) -> Enc {
    Enc::new().int(1, 1).int(2, 0).str(3, s)
}

#[test]
fn media_type() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "application/vnd.kubernetes.protobuf; charset=utf-8"
    ));
    assert!(is_protobuf("Application/VND.Kubernetes.Protobuf"));
    assert!(!is_protobuf("application/vnd.kubernetes.protobufx"));
    assert!(!is_protobuf("application/json"));
    assert!(!is_protobuf(""));
}

#[test]
fn config_map() {
    let raw = Enc::new()
        .msg(1, meta("c", "default"))
        .entry(2, "a", "b")
        .entry(2, "c", "")
        .msg(3, Enc::new().str(1, "bin").bytes(2, &[0, 1, 2, 0xff]));
    let v = decode(&body("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(
        v,
        json!({
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "default"},
            "data": {"a": "b", "c": ""},
            "binaryData": {"bin": "AAEC/w=="}
        })
    );
    // Key order as the JSON encoding writes it.
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["kind", "apiVersion", "metadata", "data", "binaryData"]
    );
}

#[test]
fn secret_bytes_are_base64() {
    let raw = Enc::new()
        .msg(1, meta("s", ""))
        .msg(2, Enc::new().str(1, "p").bytes(2, b"q"))
        .msg(2, Enc::new().str(1, "empty"))
        .str(3, "Opaque")
        .int(5, 0);
    let v = decode(&body("v1", "Secret", raw)).unwrap();
    assert_eq!(
        v,
        json!({
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "s"},
            "data": {"p": "cQ==", "empty": ""},
            "type": "Opaque",
            // A pointer field: an explicit false is kept.
            "immutable": false
        })
    );
}

fn container(name: &str, image: &str) -> Enc {
    let port = Enc::new()
        .str(1, "")
        .int(2, 0)
        .int(3, 80)
        .str(4, "TCP")
        .str(5, "");
    let resources = Enc::new()
        .msg(1, Enc::new().str(1, "cpu").msg(2, quantity("500m")))
        .msg(1, Enc::new().str(1, "memory").msg(2, quantity("128Mi")))
        .msg(2, Enc::new().str(1, "cpu").msg(2, quantity("250m")));
    Enc::new()
        .str(1, name)
        .str(2, image)
        .str(5, "")
        .msg(6, port)
        .msg(8, resources)
        .str(13, "")
        .str(14, "")
        .int(16, 0)
        .int(17, 0)
        .int(18, 0)
        .str(20, "")
}

#[test]
fn deployment() {
    let labels = || Enc::new().entry(11, "app", "web");
    let pod_spec = Enc::new()
        .msg(2, container("nginx", "nginx"))
        .str(3, "")
        .str(6, "");
    let strategy = Enc::new().str(1, "RollingUpdate").msg(
        2,
        Enc::new()
            .msg(1, int_or_string_int(0))
            .msg(2, int_or_string_str("25%")),
    );
    let spec = Enc::new()
        .int(1, 2)
        .msg(2, Enc::new().entry(1, "app", "web"))
        .msg(3, Enc::new().msg(1, labels()).msg(2, pod_spec))
        .msg(4, strategy)
        .int(5, 0)
        .int(6, 0)
        .int(7, 0);
    let mut m = meta("web", "default");
    m.0.extend_from_slice(&labels().0);
    let raw = Enc::new().msg(1, m).msg(2, spec).msg(3, Enc::new());
    let v = decode(&body("apps/v1", "Deployment", raw)).unwrap();
    assert_eq!(
        v,
        json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "250m"}
                            }
                        }]
                    }
                },
                "strategy": {
                    "type": "RollingUpdate",
                    // Pointer IntOrStrings: an explicit 0 stays.
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}
                },
                // A pointer: explicit 0 kept; minReadySeconds / paused dropped.
                "revisionHistoryLimit": 0
            },
            "status": {}
        })
    );
}

#[test]
fn service_zero_target_port_is_dropped() {
    let port = Enc::new()
        .str(1, "")
        .str(2, "TCP")
        .int(3, 80)
        .msg(4, int_or_string_int(0))
        .int(5, 0);
    let named = Enc::new().int(3, 443).msg(4, int_or_string_str("https"));
    let spec = Enc::new()
        .msg(1, port)
        .msg(1, named)
        .str(3, "")
        .str(4, "ClusterIP")
        .int(13, 0);
    let raw = Enc::new().msg(1, meta("svc", "")).msg(2, spec);
    let v = decode(&body("v1", "Service", raw)).unwrap();
    assert_eq!(
        v["spec"],
        json!({
            "ports": [
                {"protocol": "TCP", "port": 80},
                {"port": 443, "targetPort": "https"}
            ],
            "type": "ClusterIP"
        })
    );
}

#[test]
fn inline_structs_are_flattened() {
    // Volume{name, VolumeSource{configMap{LocalObjectReference{name}}}} and
    // EnvVar{valueFrom{configMapKeyRef{LocalObjectReference{name}, key}}}.
    let cm_source = Enc::new().msg(1, Enc::new().str(1, "cfg")).int(3, 420);
    let volume = Enc::new()
        .str(1, "config")
        .msg(2, Enc::new().msg(19, cm_source));
    let env = Enc::new().str(1, "A").str(2, "").msg(
        3,
        Enc::new().msg(3, Enc::new().msg(1, Enc::new().str(1, "cfg")).str(2, "k")),
    );
    let c = Enc::new().str(1, "c").msg(7, env);
    let spec = Enc::new().msg(1, volume).msg(2, c);
    let raw = Enc::new().msg(1, meta("p", "")).msg(2, spec);
    let v = decode(&body("v1", "Pod", raw)).unwrap();
    assert_eq!(
        v["spec"],
        json!({
            "volumes": [{"name": "config", "configMap": {"name": "cfg", "defaultMode": 420}}],
            "containers": [{
                "name": "c",
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]
            }]
        })
    );
}

#[test]
fn times_and_managed_fields() {
    let ts = Enc::new().int(1, 1_700_000_000).int(2, 5);
    let mf = Enc::new()
        .str(1, "kubectl")
        .str(2, "Update")
        .str(3, "v1")
        .msg(4, ts.clone())
        .str(6, "FieldsV1")
        .msg(7, Enc::new().bytes(1, br#"{"f:data":{".":{}}}"#));
    let m = meta("e", "").msg(9, ts.clone()).msg(17, mf);
    let raw = Enc::new()
        .msg(1, m)
        .msg(6, ts.clone())
        .msg(7, Enc::new())
        .int(8, 3)
        .msg(10, Enc::new().int(1, 1_700_000_000).int(2, 123_456_789));
    let v = decode(&body("v1", "Event", raw)).unwrap();
    assert_eq!(
        v,
        json!({
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {
                "name": "e",
                "deletionTimestamp": "2023-11-14T22:13:20Z",
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2023-11-14T22:13:20Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {".": {}}}
                }]
            },
            "firstTimestamp": "2023-11-14T22:13:20Z",
            "count": 3,
            "eventTime": "2023-11-14T22:13:20.123456Z"
        })
    );
}

#[test]
fn delete_options_under_any_group_version() {
    let raw = Enc::new()
        .int(1, 0)
        .msg(2, Enc::new().str(1, "uid-1"))
        .str(4, "Background")
        .str(5, "All");
    for gv in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let v = decode(&body(gv, "DeleteOptions", raw.clone())).unwrap();
        assert_eq!(
            v,
            json!({
                "kind": "DeleteOptions",
                "apiVersion": gv,
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "uid-1"},
                "propagationPolicy": "Background",
                "dryRun": ["All"]
            })
        );
    }
}

#[test]
fn subresource_bodies() {
    let scale = Enc::new()
        .msg(1, meta("web", "default"))
        .msg(2, Enc::new().int(1, 0));
    let v = decode(&body("autoscaling/v1", "Scale", scale)).unwrap();
    // ScaleSpec.replicas is not a pointer: 0 is omitted, as in JSON.
    assert_eq!(v["spec"], json!({}));
    let binding = Enc::new()
        .msg(1, meta("p", "default"))
        .msg(2, Enc::new().str(1, "Node").str(3, "node-1"));
    let v = decode(&body("v1", "Binding", binding)).unwrap();
    assert_eq!(v["target"], json!({"kind": "Node", "name": "node-1"}));
    let eviction = Enc::new()
        .msg(1, meta("p", "default"))
        .msg(2, Enc::new().int(1, 30));
    let v = decode(&body("policy/v1", "Eviction", eviction)).unwrap();
    assert_eq!(v["deleteOptions"], json!({"gracePeriodSeconds": 30}));
}

#[test]
fn repeated_numbers_packed_or_not() {
    let sc = |e: Enc| {
        Enc::new()
            .msg(1, meta("p", ""))
            .msg(2, Enc::new().msg(14, e))
    };
    let unpacked = Enc::new().int(4, 1).int(4, -2).int(4, 3);
    let mut packed_payload = Enc::new();
    for v in [1i64, -2, 3] {
        packed_payload.raw_varint(v as u64);
    }
    let packed = Enc::new().bytes(4, &packed_payload.0);
    for e in [unpacked, packed] {
        let v = decode(&body("v1", "Pod", sc(e))).unwrap();
        assert_eq!(
            v["spec"]["securityContext"]["supplementalGroups"],
            json!([1, -2, 3])
        );
    }
}

#[test]
fn last_occurrence_wins_and_messages_merge() {
    let raw = Enc::new()
        .msg(1, Enc::new().str(1, "a").str(3, "ns"))
        .msg(1, Enc::new().str(1, "b").str(3, ""))
        .int(4, 1)
        .int(4, 0);
    let v = decode(&body("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(v["metadata"], json!({"name": "b"}));
    assert_eq!(v["immutable"], json!(false));
}

#[test]
fn unknown_fields_are_skipped() {
    let raw = Enc::new()
        .msg(1, meta("c", ""))
        .int(99, 7)
        .str(100, "x")
        .msg(1, Enc::new().int(15, 1));
    let v = decode(&body("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(v["metadata"], json!({"name": "c"}));
}

#[test]
fn negative_int32_and_int64() {
    let raw = Enc::new().msg(1, meta("pc", "")).int(2, -5).int(3, 0);
    let v = decode(&body("scheduling.k8s.io/v1", "PriorityClass", raw)).unwrap();
    assert_eq!(v["value"], json!(-5));
    // Required (non-omitempty) zero stays.
    let raw = Enc::new().msg(1, meta("pc", "")).int(2, 0);
    let v = decode(&body("scheduling.k8s.io/v1", "PriorityClass", raw)).unwrap();
    assert_eq!(v["value"], json!(0));
}

fn err(b: &[u8]) -> ProtobufError {
    decode(b).unwrap_err()
}

#[test]
fn envelope_errors() {
    assert_eq!(err(b"{\"kind\":\"Pod\"}"), ProtobufError::MissingMagic);
    assert_eq!(err(b"k8s"), ProtobufError::MissingMagic);
    assert_eq!(err(b"k8s\0"), ProtobufError::MissingTypeMeta);
    assert!(matches!(
        err(&body("v1", "Widget", Enc::new())),
        ProtobufError::UnknownKind { .. }
    ));
    assert!(matches!(
        err(&body("apps/v1beta1", "Deployment", Enc::new())),
        ProtobufError::UnknownKind { .. }
    ));
    let mut gz = body("v1", "ConfigMap", Enc::new());
    gz.extend_from_slice(&Enc::new().str(3, "gzip").0);
    assert!(matches!(err(&gz), ProtobufError::Unsupported(_)));
    let mut json_ct = body("v1", "ConfigMap", Enc::new());
    json_ct.extend_from_slice(&Enc::new().str(4, "application/json").0);
    assert!(matches!(err(&json_ct), ProtobufError::Unsupported(_)));
    // Truncated anywhere inside the TypeMeta or the raw object.
    let b = body("v1", "ConfigMap", Enc::new().msg(1, meta("c", "")));
    let type_meta_end = MAGIC.len() + 2 + Enc::new().str(1, "v1").str(2, "ConfigMap").0.len();
    for cut in (MAGIC.len() + 1..type_meta_end).chain(type_meta_end + 1..b.len() - 4) {
        assert!(decode(&b[..cut]).is_err(), "cut at {cut} accepted");
    }
}

#[test]
fn errors_carry_the_field_path() {
    // containers[1].name sent as a varint.
    let spec = Enc::new()
        .msg(2, Enc::new().str(1, "ok"))
        .msg(2, Enc::new().int(1, 5));
    let raw = Enc::new().msg(1, meta("p", "")).msg(2, spec);
    match err(&body("v1", "Pod", raw)) {
        ProtobufError::Malformed { path, reason } => {
            assert_eq!(path, "spec.containers[1].name");
            assert!(reason.contains("varint"), "{reason}");
        }
        e => panic!("unexpected {e:?}"),
    }
    // Invalid UTF-8 in a map key.
    let raw = Enc::new().msg(2, Enc::new().bytes(1, &[0xff]).str(2, "v"));
    let e = err(&body("v1", "ConfigMap", raw));
    assert!(e.to_string().contains("data[key]"), "{e}");
    // Bad IntOrString type.
    let spec = Enc::new().msg(1, Enc::new().int(3, 80).msg(4, Enc::new().int(1, 7)));
    let e = err(&body("v1", "Service", Enc::new().msg(2, spec)));
    assert!(e.to_string().contains("spec.ports[0].targetPort"), "{e}");
}

#[test]
fn depth_is_bounded() {
    let msg = schema::root("", "v1", "ConfigMap").unwrap();
    let mut out = serde_json::Map::new();
    assert_eq!(
        convert::decode_into(msg, &[], convert::MAX_DEPTH + 1, &mut out),
        Err(ProtobufError::TooDeep(convert::MAX_DEPTH))
    );
}

/// Wire-valid protobuf with random field numbers, wire types and nesting.
fn arb_message() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        (1u32..40, any::<u64>()).prop_map(|(n, v)| Enc::new().int(n, v as i64).0),
        (1u32..40, proptest::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(n, b)| Enc::new().bytes(n, &b).0),
        (1u32..40, any::<[u8; 8]>()).prop_map(|(n, b)| {
            let mut e = Enc::new();
            e.key(n, 1);
            e.0.extend_from_slice(&b);
            e.0
        }),
    ];
    leaf.prop_recursive(6, 256, 8, |inner| {
        (1u32..40, proptest::collection::vec(inner, 0..8)).prop_map(|(n, parts)| {
            let payload: Vec<u8> = parts.concat();
            Enc::new().bytes(n, &payload).0
        })
    })
}

fn any_root() -> impl Strategy<Value = (String, &'static str)> {
    proptest::sample::select(
        table::ROOTS
            .iter()
            .map(|(g, v, k, _)| {
                let gv = if g.is_empty() {
                    v.to_string()
                } else {
                    format!("{g}/{v}")
                };
                (gv, *k)
            })
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&b);
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&b);
        let _ = decode(&with_magic);
    }

    #[test]
    fn never_panics_on_arbitrary_objects(
        (gv, kind) in any_root(),
        raw in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut e = Enc::new();
        e.0 = raw;
        let _ = decode(&body(&gv, kind, e));
    }

    #[test]
    fn never_panics_on_wire_valid_objects(
        (gv, kind) in any_root(),
        parts in proptest::collection::vec(arb_message(), 0..12),
    ) {
        let mut e = Enc::new();
        e.0 = parts.concat();
        if let Ok(v) = decode(&body(&gv, kind, e)) {
            prop_assert_eq!(&v["kind"], &Value::String(kind.to_string()));
        }
    }
}
