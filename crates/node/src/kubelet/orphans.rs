//! The orphan sweep at agent start: containers, network sandboxes and pod
//! directories of pods that are neither bound to this node in the API nor
//! run by a pod worker (deleted while the agent was down) are removed —
//! containers with their state, bundle and rootfs mount, sandboxes through
//! CNI DEL, pod directories once no volume is mounted in them. Without it
//! they would linger until some later garbage collection.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::runtime::KubeletRuntime;
use super::worker::{LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

/// What the sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub containers: Vec<String>,
    pub pods: Vec<String>,
}

impl KubeletRuntime {
    /// The sweep against the pods the API binds to `node`; skipped (with a
    /// warning) if they cannot be listed. Meant to run before any worker.
    pub async fn sweep_orphans_of_node(&self, client: &kube::Client, node: &str) -> SweepReport {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(client.clone());
        let lp = kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"));
        match api.list_metadata(&lp).await {
            Ok(list) => {
                let live: HashSet<String> = list
                    .items
                    .into_iter()
                    .filter_map(|p| p.metadata.uid)
                    .collect();
                self.sweep_orphans(&live).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "orphan sweep skipped: listing this node's pods failed");
                SweepReport::default()
            }
        }
    }

    /// Removes what belongs to pods outside `live` (the UIDs of the pods
    /// bound to this node) that no worker runs. `live` must be read before
    /// this is called: a pod created since then has a worker before it
    /// has containers, so it is never swept.
    #[tracing::instrument(skip_all)]
    pub async fn sweep_orphans(&self, live: &HashSet<String>) -> SweepReport {
        let deps = self.deps();
        let orphan = |uid: &str| !live.contains(uid) && !self.has_worker(uid);
        let mut report = SweepReport::default();
        let mut names: HashMap<String, (String, String)> = HashMap::new();
        for (id, labels) in deps.containers.list().await {
            let Some(uid) = labels.get(LABEL_POD_UID) else {
                continue;
            };
            if !orphan(uid) {
                continue;
            }
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            names.insert(
                uid.clone(),
                (label(LABEL_POD_NAMESPACE), label(LABEL_POD_NAME)),
            );
            tracing::info!(id, pod_uid = %uid, "removing container of a pod gone from this node");
            deps.containers.remove(&id).await;
            report.containers.push(id);
        }
        let pods_dir = &deps.cfg.pods_dir;
        let entries = std::fs::read_dir(pods_dir).into_iter().flatten().flatten();
        for entry in entries {
            let Some(uid) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !orphan(&uid) || !entry.path().is_dir() {
                continue;
            }
            let dir = entry.path();
            if dir.join("sandbox.json").exists() {
                let (ns, name) = names.get(&uid).cloned().unwrap_or_default();
                if let Err(e) = deps.network.teardown(&uid, &ns, &name).await {
                    tracing::warn!(pod_uid = %uid, error = %e, "network teardown of an orphan");
                }
            }
            if unmount_volumes(&dir, deps.mounter.as_ref()) {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => report.pods.push(uid),
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "removing an orphan pod dir")
                    }
                }
            } else {
                tracing::warn!(dir = %dir.display(), "orphan pod dir kept: a volume is still mounted");
            }
        }
        if !report.containers.is_empty() || !report.pods.is_empty() {
            tracing::info!(containers = report.containers.len(), pods = ?report.pods, "orphans swept");
        }
        report
    }
}

/// Unmounts every mount point under `dir/volumes`; false if one remains.
fn unmount_volumes(dir: &Path, mounter: &dyn super::volumes::Mounter) -> bool {
    let vols = dir.join("volumes");
    let mut clear = true;
    for e in std::fs::read_dir(&vols).into_iter().flatten().flatten() {
        let p = e.path();
        if mounter.is_mount_point(&p) {
            if let Err(err) = mounter.unmount(&p) {
                tracing::warn!(path = %p.display(), error = %err, "unmount");
            }
            clear &= !mounter.is_mount_point(&p);
        }
    }
    clear
}
