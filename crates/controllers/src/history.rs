//! Controller history (upstream `pkg/controller/history` plus the
//! revision helpers of the DaemonSet and StatefulSet controllers): the
//! ControllerRevisions that snapshot a workload's pod template, so that
//! `kubectl rollout history` lists them and `kubectl rollout undo` patches
//! a workload back with a revision's `data`.
//!
//! A revision's `data` is upstream's "template patch": the strategic merge
//! patch `{"spec": {"template": {..., "$patch": "replace"}}}` that puts the
//! snapshotted template back. Revision names are `<owner>-<hash>`, the hash
//! being FNV over the data (or template) and the collision count, encoded
//! with upstream's `rand.SafeEncodeString` alphabet. The exact hash values
//! differ from upstream's (Go hashes its own in-memory encoding); their
//! shape and their use are the same.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};

use crate::util::controller_ref_to;

/// The alphabet of upstream's `rand.SafeEncodeString` (no vowels, no
/// look-alike characters).
const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Upstream `rand.SafeEncodeString`: each byte mapped into the alphabet.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHANUMS[usize::from(b) % SAFE_ALPHANUMS.len()] as char)
        .collect()
}

/// 32-bit FNV-1 (Go's `fnv.New32`).
pub fn fnv32(data: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for chunk in data {
        for b in *chunk {
            h = h.wrapping_mul(0x0100_0193);
            h ^= u32::from(*b);
        }
    }
    h
}

/// 32-bit FNV-1a (Go's `fnv.New32a`).
pub fn fnv32a(data: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for chunk in data {
        for b in *chunk {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// A JSON encoding with object keys sorted at every level, so that equal
/// values hash equally whatever order their keys arrived in.
pub fn canonical_bytes(v: &Value) -> Vec<u8> {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let b: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
                let mut out = serde_json::Map::new();
                for (k, v) in b {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sorted(v)).unwrap_or_default()
}

/// Upstream `controller.ComputeHash` (DaemonSets, pod-template-hash):
/// FNV-1a over the template and the collision count.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let t = serde_json::to_value(template).unwrap_or(Value::Null);
    let bytes = canonical_bytes(&t);
    let h = match collision_count {
        Some(c) => fnv32a(&[&bytes, &(c as u32).to_le_bytes()]),
        None => fnv32a(&[&bytes]),
    };
    safe_encode(&h.to_string())
}

/// Upstream `history.HashControllerRevision` (StatefulSets): FNV-1 over
/// the revision's data and the collision count in decimal.
pub fn data_hash(data: &Value, collision_count: Option<i32>) -> String {
    let bytes = canonical_bytes(data);
    let h = match collision_count {
        Some(c) => fnv32(&[&bytes, c.to_string().as_bytes()]),
        None => fnv32(&[&bytes]),
    };
    safe_encode(&h.to_string())
}

/// Upstream `getPatch`: the patch that replaces the owner's
/// `spec.template` with `template`.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision's data puts back (the inverse of
/// [`template_patch`]), if the data has that shape.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// Whether a revision's data equals `data` (upstream compares the bytes;
/// JSON values compare equal whatever their key order).
pub fn data_matches(rev: &ControllerRevision, data: &Value) -> bool {
    rev.data.as_ref().is_some_and(|d| &d.0 == data)
}

/// Upstream `ControllerRevisionName`: `<prefix>-<hash>`, the prefix cut to
/// 223 characters so the name stays a valid subdomain.
pub fn revision_name(owner: &str, hash: &str) -> String {
    let prefix: String = owner.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// A new ControllerRevision of `owner` (not yet named: the caller names and
/// labels it with its hash), with the template labels and the owner's
/// annotations, as upstream's `NewControllerRevision` and the DaemonSet's
/// `snapshot` make them.
pub fn new_revision<K: Resource<DynamicType = ()>>(
    owner: &K,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
) -> ControllerRevision {
    let annotations = owner.annotations().clone();
    ControllerRevision {
        metadata: ObjectMeta {
            namespace: owner.meta().namespace.clone(),
            labels: Some(template_labels.cloned().unwrap_or_default()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![controller_ref_to(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// The next revision number: one past the highest (upstream
/// `nextRevision`).
pub fn next_revision(revs: &[&ControllerRevision]) -> i64 {
    revs.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// Which revisions to delete to keep at most `limit` of those no pod and
/// no status refers to (`live`), oldest first (upstream `cleanupHistory` /
/// `truncateHistory`).
pub fn revisions_to_prune<'a>(
    revs: &[&'a ControllerRevision],
    live: &dyn Fn(&ControllerRevision) -> bool,
    limit: i32,
) -> Vec<&'a ControllerRevision> {
    let mut dead: Vec<&ControllerRevision> = revs.iter().copied().filter(|r| !live(r)).collect();
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    if dead.len() <= limit {
        return Vec::new();
    }
    dead.sort_by_key(|r| {
        (
            r.revision,
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    let excess = dead.len() - limit;
    dead.truncate(excess);
    dead
}

/// What [`create`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The revision exists now (created, or already there with the same
    /// data and owner).
    Ok,
    /// Another object holds the name: the owner's `status.collisionCount`
    /// was bumped, so the next sync hashes differently (upstream's
    /// collision handling).
    Collision,
}

/// Creates `rev` (named and labelled by the caller) for `owner`; on a name
/// collision with a revision that is not `owner`'s own copy of `data`,
/// bumps the owner's `status.collisionCount` from `collisions`.
pub async fn create<K>(
    client: &kube::Client,
    owner: &K,
    rev: &ControllerRevision,
    data: &Value,
    collisions: Option<i32>,
) -> Result<Created, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let ns = owner.namespace().unwrap_or_default();
    let api: kube::Api<ControllerRevision> = kube::Api::namespaced(client.clone(), &ns);
    match api.create(&kube::api::PostParams::default(), rev).await {
        Ok(_) => Ok(Created::Ok),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&rev.name_any()).await?;
            if crate::util::is_controlled_by(&existing, owner.meta().uid.as_deref().unwrap_or(""))
                && data_matches(&existing, data)
            {
                return Ok(Created::Ok);
            }
            let owners: kube::Api<K> = kube::Api::namespaced(client.clone(), &ns);
            owners
                .patch_status(
                    &owner.name_any(),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(
                        json!({"status": {"collisionCount": collisions.unwrap_or(0) + 1}}),
                    ),
                )
                .await?;
            Ok(Created::Collision)
        }
        Err(e) => Err(e),
    }
}

/// Deletes the revisions [`revisions_to_prune`] picks. Failures are only
/// logged: the next sync tries again.
pub async fn prune(
    client: &kube::Client,
    namespace: &str,
    revs: &[std::sync::Arc<ControllerRevision>],
    live: &(dyn Fn(&ControllerRevision) -> bool + Sync),
    limit: i32,
) {
    let refs: Vec<&ControllerRevision> = revs.iter().map(|r| &**r).collect();
    let api: kube::Api<ControllerRevision> = kube::Api::namespaced(client.clone(), namespace);
    for r in revisions_to_prune(&refs, live, limit) {
        if let Err(e) = api
            .delete(&r.name_any(), &kube::api::DeleteParams::default())
            .await
        {
            tracing::debug!(revision = %r.name_any(), error = %e, "deleting an old revision failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_go() {
        // Reference values of Go's hash/fnv.
        assert_eq!(fnv32(&[b""]), 0x811c_9dc5);
        assert_eq!(fnv32a(&[b"a"]), 0xe40c_292c);
        assert_eq!(fnv32(&[b"a"]), 0x050c_5d7e);
        assert_eq!(fnv32a(&[b"foo", b"bar"]), fnv32a(&[b"foobar"]));
    }

    #[test]
    fn safe_encoding_uses_upstreams_alphabet() {
        // '0' is byte 48; 48 % 27 = 21 -> '4'.
        assert_eq!(safe_encode("0"), "4");
        let h = data_hash(&json!({"a": 1}), None);
        assert!(h.chars().all(|c| SAFE_ALPHANUMS.contains(&(c as u8))));
    }

    #[test]
    fn hashes_ignore_key_order_and_follow_the_collision_count() {
        let a: Value = serde_json::from_str(r#"{"x": 1, "y": {"b": 2, "a": 3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y": {"a": 3, "b": 2}, "x": 1}"#).unwrap();
        assert_eq!(data_hash(&a, None), data_hash(&b, None));
        assert_ne!(data_hash(&a, None), data_hash(&a, Some(1)));
        assert_ne!(data_hash(&a, Some(1)), data_hash(&a, Some(2)));
        let mut t = PodTemplateSpec::default();
        let h1 = template_hash(&t, None);
        t.metadata = Some(ObjectMeta {
            labels: Some([("app".to_string(), "x".to_string())].into()),
            ..Default::default()
        });
        assert_ne!(h1, template_hash(&t, None));
        // A collision count of 0 is hashed, unlike none (as upstream).
        assert_ne!(template_hash(&t, None), template_hash(&t, Some(0)));
    }

    #[test]
    fn the_patch_round_trips_to_the_template() {
        let t = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "x".to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        };
        let data = template_patch(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: Some(RawExtension(data.clone())),
            ..Default::default()
        };
        assert_eq!(template_of(&rev), Some(t));
        assert!(data_matches(&rev, &data));
        assert_eq!(revision_name("web", "abc"), "web-abc");
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }

    #[test]
    fn pruning_keeps_the_newest_dead_revisions() {
        let rev = |n: i64| ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("r{n}")),
                ..Default::default()
            },
            revision: n,
            ..Default::default()
        };
        let revs: Vec<ControllerRevision> = (1..=5).map(rev).collect();
        let refs: Vec<&ControllerRevision> = revs.iter().collect();
        assert_eq!(next_revision(&refs), 6);
        let live = |r: &ControllerRevision| r.revision == 5 || r.revision == 1;
        let pruned: Vec<i64> = revisions_to_prune(&refs, &live, 1)
            .iter()
            .map(|r| r.revision)
            .collect();
        assert_eq!(pruned, vec![2, 3]);
        assert!(revisions_to_prune(&refs, &live, 10).is_empty());
    }
}
