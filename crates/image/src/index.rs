//! The persisted image index (`index.json` under the store root): for each
//! image (keyed by its ID, the config digest) the manifest digest, the
//! normalised tags and repo digests that point at it, its layers and parsed
//! config, and when it was last used.
//!
//! Every change happens under an exclusive `flock` on `index.lock`, re-reads
//! the file first (so an agent and a concurrent `rkube image` command do not
//! lose each other's changes) and writes atomically: a temporary file,
//! fsync, rename, fsync of the directory. Readers keep a cached copy and
//! reload it when the file's modification time or size changes.

use crate::blobs::{digest_hex, sync_dir};
use crate::error::ImageError;
use crate::manifest::ImageConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const INDEX_VERSION: u32 = 1;

/// Why the index could not be loaded (kept as one variant: the store turns
/// it into [`ImageError::Invalid`]).
#[derive(Debug, thiserror::Error)]
#[error("image index {}: {source}", path.display())]
pub struct IndexError {
    path: PathBuf,
    source: serde_json::Error,
}

impl From<IndexError> for ImageError {
    fn from(e: IndexError) -> Self {
        ImageError::Invalid(e.to_string())
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The (compressed) blob digest; also names the unpacked directory.
    pub digest: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The image ID: the config digest (`sha256:<hex>`).
    pub id: String,
    /// The digest of the platform-specific manifest.
    pub manifest_digest: String,
    /// Normalised `registry/repo:tag` names pointing at this image.
    pub repo_tags: Vec<String>,
    /// Normalised `registry/repo@sha256:...` names (the digest pulled by:
    /// the index's for a multi-arch image).
    pub repo_digests: Vec<String>,
    /// Size in bytes: config plus layer blobs.
    pub size: u64,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// The parsed image config.
    pub config: ImageConfig,
    /// Seconds since the Unix epoch at the last pull or use.
    pub last_used: u64,
    /// Unpacked layer directories, bottom first (filled in by the store,
    /// not persisted).
    #[serde(skip)]
    pub layer_dirs: Vec<PathBuf>,
}

impl Image {
    /// The overlayfs `lowerdir=` value: layer directories top first,
    /// joined with `:`.
    pub fn overlay_lowerdir(&self) -> String {
        let dirs: Vec<String> = self
            .layer_dirs
            .iter()
            .rev()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(":")
    }

    /// Whether `reference` (normalised) or `id` names this image.
    pub(crate) fn matches(&self, key: &str) -> bool {
        self.id == key
            || self.repo_tags.iter().any(|t| t == key)
            || self.repo_digests.iter().any(|d| d == key)
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Serialize, Deserialize, Default)]
struct IndexFile {
    version: u32,
    images: Vec<Image>,
}

/// The images, by ID.
pub(crate) type Images = BTreeMap<String, Image>;

/// The on-disk index.
#[derive(Debug)]
pub(crate) struct IndexFiles {
    path: PathBuf,
    lock: PathBuf,
    dir: PathBuf,
}

/// A held exclusive lock on the index.
pub(crate) struct IndexLock(#[allow(dead_code)] File);

impl IndexFiles {
    pub(crate) fn new(root: &Path) -> Self {
        IndexFiles {
            path: root.join("index.json"),
            lock: root.join("index.lock"),
            dir: root.to_path_buf(),
        }
    }

    /// `(mtime, len)` of the index file, to detect changes.
    pub(crate) fn stamp(&self) -> Option<(SystemTime, u64)> {
        let m = fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// Takes the exclusive lock (blocking).
    pub(crate) fn lock(&self) -> Result<IndexLock, ImageError> {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(ImageError::io("open", &self.lock))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| ImageError::io("lock", &self.lock)(e.into()))?;
        Ok(IndexLock(f))
    }

    /// Reads the index (empty if absent).
    pub(crate) fn load(&self) -> Result<Images, ImageError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Images::new()),
            Err(e) => return Err(ImageError::io("read", &self.path)(e)),
        };
        let file: IndexFile = serde_json::from_slice(&bytes).map_err(|source| IndexError {
            path: self.path.clone(),
            source,
        })?;
        Ok(file
            .images
            .into_iter()
            .filter(|i| digest_hex(&i.id).is_ok())
            .map(|i| (i.id.clone(), i))
            .collect())
    }

    /// Writes the index atomically.
    pub(crate) fn save(&self, images: &Images, _lock: &IndexLock) -> Result<(), ImageError> {
        let file = IndexFile {
            version: INDEX_VERSION,
            images: images.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| ImageError::Invalid(format!("serialising index: {e}")))?;
        let tmp = self.dir.join("index.json.tmp");
        let mut f = File::create(&tmp).map_err(ImageError::io("create", &tmp))?;
        f.write_all(&bytes).map_err(ImageError::io("write", &tmp))?;
        f.sync_all().map_err(ImageError::io("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(ImageError::io("rename", &self.path))?;
        sync_dir(&self.dir)
    }
}

/// Adds (or merges) `image` into `images`, moving `tag` away from any
/// other image. An image left with no tag keeps its repo digests and shows
/// as `<none>`.
pub(crate) fn insert(
    images: &mut Images,
    image: Image,
    tag: Option<&str>,
    repo_digest: Option<&str>,
) {
    if let Some(tag) = tag {
        for other in images.values_mut() {
            if other.id != image.id {
                other.repo_tags.retain(|t| t != tag);
            }
        }
    }
    let entry = images.entry(image.id.clone()).or_insert_with(|| Image {
        repo_tags: Vec::new(),
        repo_digests: Vec::new(),
        ..image.clone()
    });
    entry.manifest_digest = image.manifest_digest;
    entry.last_used = image.last_used.max(entry.last_used);
    for t in image.repo_tags.iter().map(String::as_str).chain(tag) {
        if !entry.repo_tags.iter().any(|x| x == t) {
            entry.repo_tags.push(t.to_string());
        }
    }
    for d in image
        .repo_digests
        .iter()
        .map(String::as_str)
        .chain(repo_digest)
    {
        if !entry.repo_digests.iter().any(|x| x == d) {
            entry.repo_digests.push(d.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str) -> Image {
        Image {
            id: id.into(),
            manifest_digest: "m".into(),
            repo_tags: vec![],
            repo_digests: vec![],
            size: 1,
            layers: vec![],
            config: ImageConfig::default(),
            last_used: 1,
            layer_dirs: vec![],
        }
    }

    #[test]
    fn tags_move_between_images() {
        let mut images = Images::new();
        insert(&mut images, img("a"), Some("r:1"), Some("r@a"));
        insert(&mut images, img("b"), Some("r:1"), Some("r@b"));
        assert!(images["a"].repo_tags.is_empty());
        assert_eq!(images["a"].repo_digests, vec!["r@a"]);
        assert_eq!(images["b"].repo_tags, vec!["r:1"]);
        insert(&mut images, img("b"), Some("r:2"), None);
        assert_eq!(images["b"].repo_tags, vec!["r:1", "r:2"]);
        assert!(images["b"].matches("r@b") && images["b"].matches("b"));
    }

    #[test]
    fn lowerdir_is_top_first() {
        let mut i = img("a");
        i.layer_dirs = vec!["/l/1".into(), "/l/2".into()];
        assert_eq!(i.overlay_lowerdir(), "/l/2:/l/1");
    }
}
