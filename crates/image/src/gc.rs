//! Image garbage collection and disk usage.
//!
//! `gc` removes unused images least recently used first until enough is
//! freed (by the kubelet's rule for thresholds: above `high_percent` of the
//! file system in use, free down to `low_percent`), then deletes blobs and
//! unpacked layers that no remaining image references. It excludes pulls
//! and imports while it runs, so it never deletes their fresh content, and
//! [`ImageStore::gc_min_age`] keeps images pulled or used within a minimum
//! age, judged under that exclusion (an image pulled while the caller was
//! working out what is in use is young, so it stays).

use crate::blobs::digest_hex;
use crate::error::ImageError;
use crate::pull::spawn_blocking;
use crate::store::ImageStore;
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// How much `gc` should free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcPolicy {
    /// Remove every image not in use.
    AllUnused,
    /// Remove unused images (LRU first) until their sizes add up to this.
    FreeBytes(u64),
    /// The kubelet's image GC thresholds on the store's file system.
    Thresholds {
        /// Start when usage is at or above this percentage.
        high_percent: u8,
        /// Free down to this percentage.
        low_percent: u8,
    },
}

/// What `gc` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// IDs of the removed images.
    pub removed_images: Vec<String>,
    /// Sum of the removed images' sizes.
    pub freed_image_bytes: u64,
    /// Unreferenced blobs deleted.
    pub removed_blobs: usize,
    /// Unreferenced layer directories deleted.
    pub removed_layers: usize,
}

/// Space used by the store and on its file system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Number of images.
    pub images: usize,
    /// Bytes of blobs.
    pub blob_bytes: u64,
    /// Bytes of regular files in unpacked layers.
    pub layer_bytes: u64,
    /// Capacity of the file system holding the store.
    pub fs_capacity_bytes: u64,
    /// Space available to unprivileged users on it.
    pub fs_available_bytes: u64,
}

/// Why file system statistics could not be read.
#[derive(Debug, thiserror::Error)]
#[error("statfs {path}: {source}")]
pub struct StatfsError {
    path: String,
    source: std::io::Error,
}

impl From<StatfsError> for ImageError {
    fn from(e: StatfsError) -> Self {
        ImageError::Io {
            op: "statfs",
            path: e.path.into(),
            source: e.source,
        }
    }
}

/// `(capacity, available)` bytes of the file system holding `path`.
pub fn fs_space(path: &Path) -> Result<(u64, u64), StatfsError> {
    let s = rustix::fs::statvfs(path).map_err(|e| StatfsError {
        path: path.display().to_string(),
        source: e.into(),
    })?;
    Ok((s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize))
}

impl ImageStore {
    /// Removes unused images by `policy` and then unreferenced content.
    /// `in_use` holds image IDs or references of images that containers use.
    pub async fn gc(
        &self,
        in_use: &HashSet<String>,
        policy: GcPolicy,
    ) -> Result<GcReport, ImageError> {
        self.gc_min_age(in_use, policy, Duration::ZERO).await
    }

    /// [`ImageStore::gc`], keeping images pulled or used within `min_age`.
    #[tracing::instrument(skip(self, in_use))]
    pub async fn gc_min_age(
        &self,
        in_use: &HashSet<String>,
        policy: GcPolicy,
        min_age: Duration,
    ) -> Result<GcReport, ImageError> {
        let _exclusive = self.inner.gc_lock.write().await;
        let store = self.clone();
        let in_use = in_use.clone();
        spawn_blocking(move || store.gc_blocking(&in_use, policy, min_age)).await
    }

    fn gc_blocking(
        &self,
        in_use: &HashSet<String>,
        policy: GcPolicy,
        min_age: Duration,
    ) -> Result<GcReport, ImageError> {
        let old = |last_used: u64| {
            crate::index::now_secs().saturating_sub(last_used) >= min_age.as_secs()
        };
        let in_use = self.resolve_in_use(in_use)?;
        let to_free = match policy {
            GcPolicy::AllUnused => u64::MAX,
            GcPolicy::FreeBytes(n) => n,
            GcPolicy::Thresholds {
                high_percent,
                low_percent,
            } => {
                let (cap, avail) = fs_space(self.root())?;
                let used = cap.saturating_sub(avail);
                if cap == 0 || used * 100 < cap * u64::from(high_percent) {
                    0
                } else {
                    used.saturating_sub(cap * u64::from(low_percent) / 100)
                }
            }
        };
        let mut report = GcReport::default();
        let mut candidates: Vec<_> = self
            .snapshot()?
            .into_values()
            .filter(|i| !in_use.contains(&i.id) && old(i.last_used))
            .collect();
        candidates.sort_by_key(|i| i.last_used);
        for img in candidates {
            if report.freed_image_bytes >= to_free {
                break;
            }
            let mut removed = false;
            self.update_index(|images| {
                // Not if it was used since the snapshot.
                removed = images.get(&img.id).is_some_and(|i| old(i.last_used))
                    && images.remove(&img.id).is_some();
                removed
            })?;
            if removed {
                tracing::info!(id = %img.id, tags = ?img.repo_tags, size = img.size, "image garbage-collected");
                report.freed_image_bytes += img.size;
                report.removed_images.push(img.id);
            }
        }
        let (blobs, layers) = self.prune()?;
        report.removed_blobs = blobs;
        report.removed_layers = layers;
        Ok(report)
    }

    /// Deletes blobs and layer directories no indexed image references.
    fn prune(&self) -> Result<(usize, usize), ImageError> {
        let images = self.snapshot()?;
        let mut keep: HashSet<String> = HashSet::new();
        for img in images.values() {
            keep.insert(img.id.clone());
            keep.insert(img.manifest_digest.clone());
            keep.extend(img.layers.iter().map(|l| l.digest.clone()));
            keep.extend(
                img.repo_digests
                    .iter()
                    .filter_map(|d| d.rsplit_once('@').map(|(_, d)| d.to_string())),
            );
        }
        let mut blobs = 0;
        for (digest, _) in self.blobs().list()? {
            if !keep.contains(&digest) {
                self.blobs().remove(&digest)?;
                blobs += 1;
            }
        }
        let mut layers = 0;
        let dir = &self.inner.layers;
        for entry in fs::read_dir(dir).map_err(ImageError::io("list", dir))? {
            let entry = entry.map_err(ImageError::io("list", dir))?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if digest_hex(&digest).is_err() || !keep.contains(&digest) {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(ImageError::io("remove", p))?;
                layers += 1;
            }
        }
        Ok((blobs, layers))
    }

    /// What the store holds on disk, and the file system's space. Blocking.
    pub fn disk_usage(&self) -> Result<DiskUsage, ImageError> {
        let blob_bytes = self.blobs().list()?.iter().map(|(_, s)| s).sum();
        let layer_bytes = du(&self.inner.layers)?;
        let (cap, avail) = fs_space(self.root())?;
        Ok(DiskUsage {
            images: self.snapshot()?.len(),
            blob_bytes,
            layer_bytes,
            fs_capacity_bytes: cap,
            fs_available_bytes: avail,
        })
    }
}

/// Sum of regular file sizes under `dir` (symlinks not followed).
fn du(dir: &Path) -> Result<u64, ImageError> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(ImageError::io("list", &d))? {
            let entry = entry.map_err(ImageError::io("list", &d))?;
            let ft = entry
                .file_type()
                .map_err(ImageError::io("stat", entry.path()))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    Ok(total)
}
