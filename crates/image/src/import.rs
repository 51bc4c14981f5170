//! Importing an OCI image-layout archive (`oci-layout`, `index.json`,
//! `blobs/sha256/...` in a tar, optionally gzip-compressed), as `rkube image
//! import` does for air-gapped hosts.
//!
//! Blobs are streamed straight into the blob store, each verified against
//! its name. Each `index.json` entry becomes an image (a nested index
//! resolves to this platform's manifest), named by its
//! `io.containerd.image.name` or `org.opencontainers.image.ref.name`
//! annotation parsed as a full reference and normalised (`busybox:1` is
//! `docker.io/library/busybox:1`); entries without a name are imported
//! untagged.

use crate::blobs::digest_hex;
use crate::error::ImageError;
use crate::index::{now_secs, Image};
use crate::manifest::{self, Descriptor, Document, REF_NAME_ANNOTATION};
use crate::pull::spawn_blocking;
use crate::reference::Reference;
use crate::store::ImageStore;
use crate::unpack::compression_for_media_type;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// Why an archive is not an importable OCI layout.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A required file is missing from the archive.
    #[error("not an OCI image layout archive: missing {0}")]
    Missing(&'static str),
    /// A blob a manifest refers to is not in the archive.
    #[error("blob {0} referenced by the archive's index is missing")]
    MissingBlob(String),
}

impl From<ImportError> for ImageError {
    fn from(e: ImportError) -> Self {
        ImageError::Invalid(e.to_string())
    }
}

impl ImageStore {
    /// Imports every image of the OCI archive at `path`.
    #[tracing::instrument(skip(self), fields(path = %path.display()))]
    pub async fn import_oci_archive(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        let _gc = self.inner.gc_lock.read().await;
        let store = self.clone();
        let path: PathBuf = path.to_path_buf();
        spawn_blocking(move || store.import_blocking(&path)).await
    }

    fn import_blocking(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        let file = std::fs::File::open(path).map_err(ImageError::io("open", path))?;
        let mut reader = BufReader::new(file);
        let gz = reader
            .fill_buf()
            .map_err(ImageError::io("read", path))?
            .starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = if gz {
            Box::new(flate2::read::GzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let mut archive = tar::Archive::new(reader);
        let (mut layout, mut index) = (None, None);
        let io = |e| ImageError::io("read archive", path)(e);
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let name = entry.path().map_err(io)?.to_string_lossy().into_owned();
            let name = name.trim_start_matches("./");
            if name == "oci-layout" {
                layout = Some(read_all(&mut entry).map_err(io)?);
            } else if name == "index.json" {
                index = Some(read_all(&mut entry).map_err(io)?);
            } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                let digest = format!("sha256:{hex}");
                if digest_hex(&digest).is_ok() && entry.header().entry_type().is_file() {
                    self.blobs().write_from(&digest, &mut entry)?;
                }
            }
        }
        layout.ok_or(ImportError::Missing("oci-layout"))?;
        let index = index.ok_or(ImportError::Missing("index.json"))?;
        let Document::Index(index) = manifest::parse_document(&index)? else {
            return Err(ImageError::Invalid(
                "index.json is not an image index".into(),
            ));
        };
        let mut out = Vec::new();
        for desc in &index.manifests {
            let name = desc.annotations.as_ref().and_then(|a| {
                a.get(CONTAINERD_NAME_ANNOTATION)
                    .or_else(|| a.get(REF_NAME_ANNOTATION))
            });
            let reference = match name.map(|n| Reference::parse(n)) {
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    tracing::warn!(name = ?name, error = %e, "ignoring unparsable image name");
                    None
                }
                None => None,
            };
            out.push(self.import_entry(desc, reference.as_ref())?);
        }
        Ok(out)
    }

    fn import_entry(&self, desc: &Descriptor, r: Option<&Reference>) -> Result<Image, ImageError> {
        let read = |d: &str| -> Result<Vec<u8>, ImageError> {
            if !self.blobs().contains(d) {
                return Err(ImportError::MissingBlob(d.to_string()).into());
            }
            self.blobs().read(d)
        };
        let (manifest, manifest_digest) = match manifest::parse_document(&read(&desc.digest)?)? {
            Document::Image(m) => (m, desc.digest.clone()),
            Document::Index(idx) => {
                let (arch, variant) = manifest::host_platform();
                let entry = manifest::select_platform(&idx, arch, variant).ok_or_else(|| {
                    ImageError::NoMatchingPlatform {
                        reference: r.map(|r| r.to_string()).unwrap_or_default(),
                        arch: arch.to_string(),
                    }
                })?;
                match manifest::parse_document(&read(&entry.digest)?)? {
                    Document::Image(m) => (m, entry.digest.clone()),
                    Document::Index(_) => {
                        return Err(ImageError::Invalid("nested image index".into()))
                    }
                }
            }
        };
        let config = manifest::parse_config(&read(&manifest.config.digest)?)?;
        for l in &manifest.layers {
            compression_for_media_type(&l.media_type)?;
            if !self.blobs().contains(&l.digest) {
                return Err(ImportError::MissingBlob(l.digest.clone()).into());
            }
            self.unpack_blob(&l.digest)?;
        }
        let layers = manifest.index_layers();
        let image = Image {
            id: manifest.config.digest.clone(),
            manifest_digest,
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            size: manifest.config.size + layers.iter().map(|l| l.size).sum::<u64>(),
            layers,
            config,
            last_used: now_secs(),
            layer_dirs: Vec::new(),
        };
        let tag = r.and_then(|r| r.tagged());
        let repo_digest = r.map(|r| r.with_digest(&desc.digest));
        let image = self.index_image(image, tag.as_deref(), repo_digest.as_deref())?;
        tracing::info!(id = %image.id, tags = ?image.repo_tags, "image imported");
        Ok(image)
    }
}

fn read_all(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}
