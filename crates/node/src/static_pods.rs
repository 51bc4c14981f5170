//! Static pods: pod manifests in a directory (`--pod-manifest-path`), run
//! by the agent through mirror pods in the API, as upstream's kubelet
//! does. A mirror pod is named `<name>-<node>`, bound to the node, owned by
//! the Node, and annotated `kubernetes.io/config.mirror` with a hash of the
//! manifest. The directory is read again every check period: a new or
//! changed manifest (re)creates its mirror pod, a removed one deletes it,
//! and a mirror pod deleted through the API comes back.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Client;

/// Annotation holding the manifest hash on a mirror pod.
pub const ANN_MIRROR: &str = "kubernetes.io/config.mirror";
/// Annotation holding the manifest hash (also on the static pod).
pub const ANN_HASH: &str = "kubernetes.io/config.hash";
/// Annotation naming where the pod came from (`file`).
pub const ANN_SOURCE: &str = "kubernetes.io/config.source";

/// Errors of reading one manifest.
#[derive(Debug, thiserror::Error)]
pub enum StaticPodError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("parsing {0}: {1}")]
    Parse(PathBuf, serde_yaml::Error),
    #[error("{0}: a static pod needs metadata.name")]
    NoName(PathBuf),
}

/// Reads the manifests of `dir` (`*.yaml`, `*.yml`, `*.json`; others and
/// dot-files are skipped). Unreadable ones are returned as errors.
pub fn read_manifests(dir: &Path) -> (Vec<(PathBuf, Pod)>, Vec<StaticPodError>) {
    let mut pods = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(StaticPodError::Read(dir.to_path_buf(), e));
            return (pods, errors);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.')
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
        })
        .collect();
    paths.sort();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(StaticPodError::Read(path, e));
                continue;
            }
        };
        match serde_yaml::from_str::<Pod>(&text) {
            Ok(p) if p.metadata.name.as_deref().is_some_and(|n| !n.is_empty()) => {
                pods.push((path, p))
            }
            Ok(_) => errors.push(StaticPodError::NoName(path)),
            Err(e) => errors.push(StaticPodError::Parse(path, e)),
        }
    }
    (pods, errors)
}

/// A hash of the manifest, for change detection.
fn manifest_hash(pod: &Pod) -> String {
    let text = serde_json::to_string(pod).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The mirror pod of a static pod on `node`.
pub fn mirror_pod(pod: &Pod, node: &Node) -> Pod {
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let hash = manifest_hash(pod);
    let mut m = pod.clone();
    let name = pod.metadata.name.clone().unwrap_or_default();
    m.metadata.name = Some(format!("{name}-{node_name}"));
    m.metadata.namespace = Some(
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    );
    let ann = m.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(ANN_MIRROR.into(), hash.clone());
    ann.insert(ANN_HASH.into(), hash);
    ann.insert(ANN_SOURCE.into(), "file".into());
    m.metadata.owner_references = node.metadata.uid.clone().map(|uid| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.clone(),
            uid,
            controller: Some(true),
            ..Default::default()
        }]
    });
    m.metadata.resource_version = None;
    m.metadata.uid = None;
    let spec = m.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name);
    m.status = None;
    m
}

fn mirror_hash(p: &Pod) -> Option<&str> {
    p.metadata
        .annotations
        .as_ref()?
        .get(ANN_MIRROR)
        .map(String::as_str)
}

/// Keeps the mirror pods of `dir`'s manifests in step, every `period`.
pub async fn run(client: Client, node_name: String, dir: PathBuf, period: Duration) {
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        if let Err(e) = sync_once(&client, &node_name, &dir).await {
            tracing::warn!(error = %e, "static pod sync failed");
        }
    }
}

/// One pass: create missing or changed mirror pods, delete orphaned ones.
#[tracing::instrument(skip_all, fields(node = node_name))]
pub async fn sync_once(client: &Client, node_name: &str, dir: &Path) -> Result<(), kube::Error> {
    let node = match Api::<Node>::all(client.clone()).get(node_name).await {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    let (manifests, errors) = read_manifests(dir);
    for e in errors {
        tracing::warn!(error = %e, "static pod manifest skipped");
    }
    let pods: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node_name}"));
    let existing: HashMap<(String, String), Pod> = pods
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|p| mirror_hash(p).is_some())
        .map(|p| {
            let key = (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
            (key, p)
        })
        .collect();
    let mut wanted = HashMap::new();
    for (path, pod) in &manifests {
        let mirror = mirror_pod(pod, &node);
        let key = (
            mirror.metadata.namespace.clone().unwrap_or_default(),
            mirror.metadata.name.clone().unwrap_or_default(),
        );
        let api: Api<Pod> = Api::namespaced(client.clone(), &key.0);
        match existing.get(&key) {
            Some(p) if mirror_hash(p) == mirror_hash(&mirror) => {}
            Some(p) => {
                if p.metadata.deletion_timestamp.is_none() {
                    tracing::info!(pod = key.1, "static pod changed; recreating");
                    delete_now(&api, &key.1).await?;
                }
            }
            None => {
                tracing::info!(pod = key.1, path = %path.display(), "creating mirror pod");
                match api.create(&PostParams::default(), &mirror).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
                        tracing::warn!(path = %path.display(), reason = %s.message, "invalid static pod");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        wanted.insert(key, ());
    }
    for (key, p) in &existing {
        if !wanted.contains_key(key) && p.metadata.deletion_timestamp.is_none() {
            tracing::info!(
                pod = key.1,
                "static pod manifest removed; deleting mirror pod"
            );
            delete_now(&Api::namespaced(client.clone(), &key.0), &key.1).await?;
        }
    }
    Ok(())
}

async fn delete_now(api: &Api<Pod>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    #[test]
    fn reads_manifests_and_builds_mirror_pods() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: kube-system\n\
             spec:\n  containers:\n  - name: app\n    image: nginx\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("bad.yaml"),
            "apiVersion: v1\nkind: Pod\nspec: [",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("noname.json"),
            r#"{"apiVersion":"v1","kind":"Pod"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a pod").unwrap();
        std::fs::write(dir.path().join(".web.yaml.swp"), "junk").unwrap();
        let (pods, errors) = read_manifests(dir.path());
        assert_eq!(pods.len(), 1);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                uid: Some("node-uid".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let m = mirror_pod(&pods[0].1, &node);
        assert_eq!(m.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(m.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(m.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        let owner = &m.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Node", "node-uid")
        );
        let hash = mirror_hash(&m).unwrap().to_string();
        // A changed manifest has another hash; the same one the same hash.
        assert_eq!(
            mirror_hash(&mirror_pod(&pods[0].1, &node)),
            Some(hash.as_str())
        );
        let mut changed = pods[0].1.clone();
        changed.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_ne!(
            mirror_hash(&mirror_pod(&changed, &node)),
            Some(hash.as_str())
        );
    }
}
