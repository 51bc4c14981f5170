//! Pod spec defaulting (upstream's `SetDefaults_PodSpec`, `SetDefaults_Pod`,
//! `SetDefaults_Container`, volume-source and probe defaults), used for Pods
//! and for every pod template.

use serde_json::{json, Map, Value};

use super::{members, set_default, slot};

/// Defaults of a Pod object: pod-only rules, then the spec.
pub(crate) fn default_pod(obj: &mut Value) {
    let Some(spec) = slot(obj, "spec") else {
        return;
    };
    for key in ["containers", "initContainers"] {
        for c in members(spec, key) {
            requests_from_limits(c);
        }
    }
    set_default(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for key in ["containers", "initContainers"] {
            for c in members(spec, key) {
                for port in members(c, "ports") {
                    if port.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                        if let Some(cp) = port.get("containerPort").cloned() {
                            port.insert("hostPort".into(), cp);
                        }
                    }
                }
            }
        }
    }
    default_pod_spec(spec);
}

/// Defaults of a pod template (`template.spec`).
pub(crate) fn default_template(template: &mut Value) {
    if let Some(spec) = slot(template, "spec") {
        default_pod_spec(spec);
    }
}

/// When limits are set but requests are not, requests default to limits.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(Value::Object(res)) = c.get_mut("resources") else {
        return;
    };
    let Some(Value::Object(limits)) = res.get("limits").cloned() else {
        return;
    };
    let requests = res.entry("requests").or_insert_with(|| json!({}));
    if requests.is_null() {
        *requests = json!({});
    }
    if let Value::Object(req) = requests {
        for (k, v) in limits {
            req.entry(k).or_insert(v);
        }
    }
}

pub(crate) fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for vol in members(spec, "volumes") {
        default_volume(vol);
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in members(spec, key) {
            default_container(c);
        }
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// `SetDefaults_Volume` and the per-source defaults.
fn default_volume(vol: &mut Map<String, Value>) {
    if !VOLUME_SOURCES
        .iter()
        .any(|k| vol.get(*k).is_some_and(|v| !v.is_null()))
    {
        vol.insert("emptyDir".into(), json!({}));
    }
    default_volume_sources(vol);
}

/// Source defaults shared by pod volumes and PersistentVolumes.
pub(crate) fn default_volume_sources(src: &mut Map<String, Value>) {
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(Value::Object(s)) = src.get_mut(key) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(Value::Object(h)) = src.get_mut("hostPath") {
        set_default(h, "type", json!(""));
    }
    if let Some(Value::Object(i)) = src.get_mut("iscsi") {
        set_default(i, "iscsiInterface", json!("default"));
    }
    if let Some(Value::Object(r)) = src.get_mut("rbd") {
        set_default(r, "pool", json!("rbd"));
        set_default(r, "user", json!("admin"));
        set_default(r, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(Value::Object(a)) = src.get_mut("azureDisk") {
        set_default(a, "cachingMode", json!("ReadWrite"));
        set_default(a, "fsType", json!("ext4"));
        set_default(a, "readOnly", json!(false));
        set_default(a, "kind", json!("Shared"));
    }
    if let Some(Value::Object(s)) = src.get_mut("scaleIO") {
        set_default(s, "storageMode", json!("ThinProvisioned"));
        set_default(s, "fsType", json!("xfs"));
    }
    if let Some(Value::Object(p)) = src.get_mut("projected") {
        for s in members(p, "sources") {
            if let Some(Value::Object(t)) = s.get_mut("serviceAccountToken") {
                set_default(t, "expirationSeconds", json!(3600));
            }
            if let Some(Value::Object(d)) = s.get_mut("downwardAPI") {
                for item in members(d, "items") {
                    field_ref_api_version(item);
                }
            }
        }
    }
    if let Some(Value::Object(d)) = src.get_mut("downwardAPI") {
        for item in members(d, "items") {
            field_ref_api_version(item);
        }
    }
    if let Some(Value::Object(eph)) = src.get_mut("ephemeral") {
        if let Some(Value::Object(t)) = eph.get_mut("volumeClaimTemplate") {
            if let Some(Value::Object(s)) = t.get_mut("spec") {
                set_default(s, "volumeMode", json!("Filesystem"));
            }
        }
    }
}

fn field_ref_api_version(holder: &mut Map<String, Value>) {
    if let Some(Value::Object(f)) = holder.get_mut("fieldRef") {
        set_default(f, "apiVersion", json!("v1"));
    }
}

/// `SetDefaults_Container` plus ports, env, probes and lifecycle handlers.
fn default_container(c: &mut Map<String, Value>) {
    if c.get("imagePullPolicy")
        .is_none_or(|v| v.is_null() || v == "")
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        c.insert("imagePullPolicy".into(), json!(default_pull_policy(image)));
    }
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    for port in members(c, "ports") {
        set_default(port, "protocol", json!("TCP"));
    }
    for env in members(c, "env") {
        if let Some(Value::Object(vf)) = env.get_mut("valueFrom") {
            field_ref_api_version(vf);
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(Value::Object(p)) = c.get_mut(key) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            default_http_get(p);
        }
    }
    if let Some(Value::Object(l)) = c.get_mut("lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(Value::Object(h)) = l.get_mut(hook) {
                default_http_get(h);
            }
        }
    }
}

fn default_http_get(handler: &mut Map<String, Value>) {
    if let Some(Value::Object(h)) = handler.get_mut("httpGet") {
        set_default(h, "path", json!("/"));
        set_default(h, "scheme", json!("HTTP"));
    }
}

/// The tag upstream's `ParseImageName` reports: the explicit tag, "latest"
/// when neither tag nor digest is given, and `None` for a digest-only or
/// unparsable reference.
/// Upstream's default `imagePullPolicy` for `image`: `Always` for the
/// `latest` tag (also implied by no tag), else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image_tag(image).as_deref() == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn image_tag(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if !valid_repository(repo) {
        return None;
    }
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty() && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            return None;
        }
    }
    match tag {
        Some(t) => {
            let b = t.as_bytes();
            let ok = !b.is_empty()
                && b.len() <= 128
                && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
            ok.then(|| t.to_string())
        }
        None if digest.is_some() => None,
        None => Some("latest".to_string()),
    }
}

/// A docker reference name: optional domain, then lowercase path
/// components separated by `/`.
fn valid_repository(repo: &str) -> bool {
    if repo.is_empty() {
        return false;
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    let first = parts[0];
    let is_domain = parts.len() > 1
        && (first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.bytes().any(|c| c.is_ascii_uppercase()));
    if is_domain {
        let domain_ok = first
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c));
        if !domain_ok {
            return false;
        }
        parts.remove(0);
    }
    parts.iter().all(|p| {
        let b = p.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
            && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn image_tags_follow_parse_image_name() {
        assert_eq!(image_tag("nginx").as_deref(), Some("latest"));
        assert_eq!(image_tag("nginx:latest").as_deref(), Some("latest"));
        assert_eq!(image_tag("nginx:1.25").as_deref(), Some("1.25"));
        assert_eq!(image_tag("localhost:5000/app").as_deref(), Some("latest"));
        assert_eq!(
            image_tag("registry.k8s.io/pause:3.10").as_deref(),
            Some("3.10")
        );
        assert_eq!(
            image_tag(&format!("busybox@sha256:{}", "a".repeat(64))),
            None
        );
        assert_eq!(image_tag("Nginx"), None);
        assert_eq!(image_tag(""), None);
    }
}
