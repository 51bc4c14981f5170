//! The image store: blobs, unpacked layers and the index under one root.
//!
//! ```text
//! ROOT/blobs/sha256/<hex>   verified content (manifests, configs, layer blobs)
//! ROOT/layers/<hex>         one layer unpacked (overlayfs lower dir), named by its blob digest
//! ROOT/tmp/                 downloads and unpacks in progress (name carries the writer's pid)
//! ROOT/index.json           images (see the index module)
//! ```
//!
//! A layer is unpacked into `tmp/` and renamed into `layers/` when complete,
//! and an image is indexed only once all its layers are there; so after a
//! crash `open` only has to delete leftovers in `tmp/` of processes that are
//! gone, and drop index entries whose layers went missing.

use crate::blobs::{digest_hex, sync_dir, tmp_path, BlobStore};
use crate::error::ImageError;
use crate::index::{self, Image, Images, IndexFiles};
use crate::reference::Reference;
use crate::unpack::unpack_layer;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Per-key async locks (one download or unpack per layer, one pull per
/// reference at a time).
#[derive(Default)]
pub(crate) struct KeyedLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl KeyedLocks {
    /// Locks `key`; the guard's `bool` says whether someone else held it
    /// when we asked (so the caller may reuse their result).
    pub(crate) async fn lock(&self, key: &str) -> (tokio::sync::OwnedMutexGuard<()>, bool) {
        let m = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, v| Arc::strong_count(v) > 1);
            map.entry(key.to_string()).or_default().clone()
        };
        match m.clone().try_lock_owned() {
            Ok(g) => (g, false),
            Err(_) => (m.lock_owned().await, true),
        }
    }
}

struct Cache {
    images: Images,
    stamp: Option<(SystemTime, u64)>,
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) blobs: BlobStore,
    pub(crate) layers: PathBuf,
    pub(crate) tmp: PathBuf,
    index: IndexFiles,
    cache: Mutex<Cache>,
    pub(crate) ref_locks: KeyedLocks,
    pub(crate) layer_locks: KeyedLocks,
    /// Pulls and imports hold it shared, gc exclusively.
    pub(crate) gc_lock: tokio::sync::RwLock<()>,
}

/// A handle on the image store; cheap to clone and shareable across tasks.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`, cleaning what a crash
    /// left behind. Blocking.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        fs::create_dir_all(root).map_err(ImageError::io("create", root))?;
        let root = root
            .canonicalize()
            .map_err(ImageError::io("resolve", root))?;
        let blobs = BlobStore::new(&root)?;
        let layers = root.join("layers");
        let tmp = root.join("tmp");
        fs::create_dir_all(&layers).map_err(ImageError::io("create", &layers))?;
        clean_tmp(&tmp)?;
        let index = IndexFiles::new(&root);
        let store = ImageStore {
            inner: Arc::new(Inner {
                root,
                blobs,
                layers,
                tmp,
                index,
                cache: Mutex::new(Cache {
                    images: Images::new(),
                    stamp: None,
                }),
                ref_locks: KeyedLocks::default(),
                layer_locks: KeyedLocks::default(),
                gc_lock: tokio::sync::RwLock::new(()),
            }),
        };
        // Drop images whose layers or config went missing.
        store.update_index(|images| {
            let before = images.len();
            images.retain(|_, img| {
                store.inner.blobs.contains(&img.id)
                    && img.layers.iter().all(|l| store.layer_complete(&l.digest))
            });
            before != images.len()
        })?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// The directory a layer blob unpacks into.
    pub fn layer_dir(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.inner.layers.join(digest_hex(digest)?))
    }

    pub(crate) fn layer_complete(&self, digest: &str) -> bool {
        self.layer_dir(digest).map(|d| d.is_dir()).unwrap_or(false)
    }

    /// The image a reference (`nginx`, `host:5000/a:tag`, `name@sha256:...`)
    /// or an image ID (`sha256:<hex>`, or a unique hex prefix of at least
    /// 12 characters) names.
    pub fn get(&self, reference_or_id: &str) -> Option<Image> {
        let images = self.snapshot().ok()?;
        find(&images, reference_or_id).map(|img| self.with_dirs(img.clone()))
    }

    /// Every image, most recently used first.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let images = self.snapshot()?;
        let mut out: Vec<Image> = images.values().map(|i| self.with_dirs(i.clone())).collect();
        out.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Records that a container started from the image (for LRU gc).
    pub fn mark_used(&self, id: &str) -> Result<(), ImageError> {
        let now = index::now_secs();
        self.update_index(|images| match images.get_mut(id) {
            Some(img) => {
                img.last_used = now;
                true
            }
            None => false,
        })
    }

    /// Removes an image by reference or ID. Removing a tag that other tags
    /// share only untags it; the image goes once nothing names it. Refused
    /// while `in_use` (image IDs or references) holds it. Its blobs and
    /// layers stay until [`ImageStore::gc`] finds them unreferenced.
    /// Returns the removed image's ID when the image itself went.
    pub fn remove(
        &self,
        reference_or_id: &str,
        in_use: &HashSet<String>,
    ) -> Result<Option<String>, ImageError> {
        let in_use = self.resolve_in_use(in_use)?;
        let mut result = Err(ImageError::NotPresent(reference_or_id.to_string()));
        let by_ref = Reference::parse(reference_or_id).ok();
        self.update_index(|images| {
            let Some(id) = find(images, reference_or_id).map(|i| i.id.clone()) else {
                return false;
            };
            let img = images.get_mut(&id).expect("found above");
            // A tag of an image with several tags only untags.
            let tag = by_ref
                .as_ref()
                .filter(|r| r.digest().is_none())
                .and_then(|r| r.tagged());
            if let Some(tag) = tag.filter(|t| img.repo_tags.contains(t)) {
                if img.repo_tags.len() > 1 {
                    img.repo_tags.retain(|t| *t != tag);
                    result = Ok(None);
                    return true;
                }
            }
            if in_use.contains(&id) {
                result = Err(ImageError::InUse(reference_or_id.to_string()));
                return false;
            }
            images.remove(&id);
            result = Ok(Some(id));
            true
        })?;
        result
    }

    /// Resolves references in `in_use` to image IDs.
    pub(crate) fn resolve_in_use(
        &self,
        in_use: &HashSet<String>,
    ) -> Result<HashSet<String>, ImageError> {
        let images = self.snapshot()?;
        Ok(in_use
            .iter()
            .filter_map(|k| find(&images, k).map(|i| i.id.clone()))
            .collect())
    }

    /// Unpacks a stored layer blob into `layers/<hex>` unless already there.
    /// Blocking.
    pub(crate) fn unpack_blob(&self, digest: &str) -> Result<(), ImageError> {
        let dst = self.layer_dir(digest)?;
        if dst.is_dir() {
            return Ok(());
        }
        let blob = self.inner.blobs.path(digest)?;
        let work = tmp_path(&self.inner.tmp, "layer");
        fs::create_dir(&work).map_err(ImageError::io("create", &work))?;
        let result = (|| {
            let f = fs::File::open(&blob).map_err(ImageError::io("open", &blob))?;
            let stats = unpack_layer(f, &work)?;
            let dir = fs::File::open(&work).map_err(ImageError::io("open", &work))?;
            rustix::fs::syncfs(&dir).map_err(|e| ImageError::io("syncfs", &work)(e.into()))?;
            fs::rename(&work, &dst).map_err(ImageError::io("rename into", &dst))?;
            sync_dir(&self.inner.layers)?;
            tracing::debug!(%digest, entries = stats.entries, bytes = stats.bytes, "layer unpacked");
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&work);
        }
        result
    }

    /// The index, reloaded if the file changed.
    pub(crate) fn snapshot(&self) -> Result<Images, ImageError> {
        let stamp = self.inner.index.stamp();
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.stamp.is_none() || cache.stamp != stamp {
            cache.images = self.inner.index.load()?;
            cache.stamp = stamp;
        }
        Ok(cache.images.clone())
    }

    /// Applies `change` to the freshly loaded index under the lock and
    /// saves it when `change` says it changed something. Blocking.
    pub(crate) fn update_index(
        &self,
        change: impl FnOnce(&mut Images) -> bool,
    ) -> Result<(), ImageError> {
        let lock = self.inner.index.lock()?;
        let mut images = self.inner.index.load()?;
        if change(&mut images) {
            self.inner.index.save(&images, &lock)?;
        }
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.images = images;
        cache.stamp = self.inner.index.stamp();
        Ok(())
    }

    /// Indexes a fully unpacked image under `tag` and `repo_digest`.
    pub(crate) fn index_image(
        &self,
        image: Image,
        tag: Option<&str>,
        repo_digest: Option<&str>,
    ) -> Result<Image, ImageError> {
        for l in &image.layers {
            if !self.layer_complete(&l.digest) {
                return Err(ImageError::Invalid(format!(
                    "layer {} is not unpacked",
                    l.digest
                )));
            }
        }
        let id = image.id.clone();
        let mut out = None;
        self.update_index(|images| {
            index::insert(images, image, tag, repo_digest);
            out = images.get(&id).cloned();
            true
        })?;
        Ok(self.with_dirs(out.expect("just inserted")))
    }

    pub(crate) fn with_dirs(&self, mut img: Image) -> Image {
        img.layer_dirs = img
            .layers
            .iter()
            .filter_map(|l| self.layer_dir(&l.digest).ok())
            .collect();
        img
    }
}

/// The image `key` names: an ID, a hex prefix of one, or a reference.
pub(crate) fn find<'a>(images: &'a Images, key: &str) -> Option<&'a Image> {
    if let Some(img) = images.get(key) {
        return Some(img);
    }
    let hex = key.strip_prefix("sha256:").unwrap_or(key);
    if hex.len() >= 12 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        let mut hits = images.values().filter(|i| i.id[7..].starts_with(hex));
        if let (Some(one), None) = (hits.next(), hits.next()) {
            return Some(one);
        }
    }
    let r = Reference::parse(key).ok()?;
    let candidates = [r.tagged(), r.digest().map(|d| r.with_digest(d))];
    // A digest is the stronger name: try it first.
    candidates
        .iter()
        .rev()
        .flatten()
        .find_map(|name| images.values().find(|i| i.matches(name)))
}

/// Removes leftovers of dead processes from `tmp/`.
fn clean_tmp(tmp: &Path) -> Result<(), ImageError> {
    fs::create_dir_all(tmp).map_err(ImageError::io("create", tmp))?;
    for entry in fs::read_dir(tmp).map_err(ImageError::io("list", tmp))? {
        let entry = entry.map_err(ImageError::io("list", tmp))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let p = entry.path();
            tracing::info!(path = %p.display(), "removing leftover of an interrupted pull");
            let r = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(ImageError::io("remove", p))?;
        }
    }
    Ok(())
}
