//! The on-disk result cache (as libcni keeps under `/var/lib/cni/results`):
//! one JSON file per attachment holding the config list and the ADD result,
//! so DEL and CHECK get the right `prevResult` and config even after the
//! agent restarts or the node's config changes.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Errors reading or writing the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A cache file could not be written or removed.
    #[error("CNI result cache {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// One cached attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    /// Format marker (`cniCacheV1`, libcni's name for the same content).
    pub kind: String,
    /// The sandbox id (`CNI_CONTAINERID`).
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// The network name.
    pub network_name: String,
    /// `CNI_ARGS` as passed to ADD.
    pub cni_args: String,
    /// Capability arguments (`runtimeConfig` source) as passed to ADD.
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// The config list ADD ran (a `.conflist` document).
    pub config: Value,
    /// The final ADD result.
    #[serde(default)]
    pub result: Option<Value>,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        // Ids, network names and ifnames never hold '/', but do not trust it.
        let clean = |s: &str| s.replace('/', "_");
        self.dir.join(format!(
            "{}-{}-{}",
            clean(network),
            clean(container_id),
            clean(ifname)
        ))
    }

    /// Writes an entry atomically (temp file + rename).
    pub fn store(&self, entry: &CacheEntry) -> Result<(), CacheError> {
        let path = self.path(&entry.network_name, &entry.container_id, &entry.if_name);
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(entry).expect("cache entry serializes");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Reads an entry; `None` when absent or unreadable (a corrupt file is
    /// treated as missing: DEL must still proceed).
    pub fn load(&self, network: &str, container_id: &str, ifname: &str) -> Option<CacheEntry> {
        let path = self.path(network, container_id, ifname);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(entry) => Some(entry),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring corrupt CNI cache entry");
                None
            }
        }
    }

    /// Finds any entry for `container_id`/`ifname`, whatever its network
    /// (used when the configured network changed since ADD).
    pub fn find(&self, container_id: &str, ifname: &str) -> Option<CacheEntry> {
        let suffix = format!("-{container_id}-{ifname}");
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
            .filter_map(|e| {
                serde_json::from_slice::<CacheEntry>(&std::fs::read(e.path()).ok()?).ok()
            })
            .find(|e| e.container_id == container_id && e.if_name == ifname)
    }

    /// Removes an entry; succeeds if absent.
    pub fn remove(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<(), CacheError> {
        let path = self.path(network, container_id, ifname);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CacheError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(id: &str) -> CacheEntry {
        CacheEntry {
            kind: "cniCacheV1".into(),
            container_id: id.into(),
            if_name: "eth0".into(),
            network_name: "rkube".into(),
            cni_args: "IgnoreUnknown=1".into(),
            capability_args: Map::new(),
            config: json!({"name": "rkube", "plugins": [{"type": "bridge"}]}),
            result: Some(json!({"cniVersion": "1.0.0"})),
        }
    }

    #[test]
    fn store_load_find_remove() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path().join("results"));
        assert!(cache.load("rkube", "a", "eth0").is_none());
        cache.remove("rkube", "a", "eth0").unwrap();
        cache.store(&entry("a")).unwrap();
        cache.store(&entry("ab")).unwrap();
        assert_eq!(cache.load("rkube", "a", "eth0"), Some(entry("a")));
        assert_eq!(cache.find("a", "eth0"), Some(entry("a")));
        assert_eq!(cache.find("b", "eth0"), None);
        cache.remove("rkube", "a", "eth0").unwrap();
        assert!(cache.load("rkube", "a", "eth0").is_none());
        assert_eq!(cache.find("ab", "eth0"), Some(entry("ab")));
    }

    #[test]
    fn corrupt_entries_read_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        std::fs::write(dir.path().join("rkube-x-eth0"), "{").unwrap();
        assert!(cache.load("rkube", "x", "eth0").is_none());
        assert!(cache.find("x", "eth0").is_none());
    }
}
