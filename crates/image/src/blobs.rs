//! The content-addressed blob store: `blobs/sha256/<hex>` under the store
//! root. Content is hashed while it is written to a temporary file under
//! `tmp/`, which is fsynced and renamed into place only when the digest
//! matches, so a blob that exists is always complete and verified.

use crate::error::ImageError;
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Why a digest string cannot name a blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported or malformed digest {0:?} (want sha256:<64 hex>)")]
pub struct BadDigest(pub String);

impl From<BadDigest> for ImageError {
    fn from(e: BadDigest) -> Self {
        ImageError::Invalid(e.to_string())
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The hex part of a `sha256:` digest, validated so it is safe as a file name.
pub fn digest_hex(digest: &str) -> Result<&str, BadDigest> {
    match digest.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) =>
        {
            Ok(h)
        }
        _ => Err(BadDigest(digest.to_string())),
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh name under `tmp/` that embeds this process's id, so that a later
/// `open` can tell leftovers of dead processes from live work.
pub(crate) fn tmp_path(tmp_dir: &Path, kind: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp_dir.join(format!("{kind}-{}-{n}", std::process::id()))
}

/// fsync a directory so that a rename into it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ImageError::io("fsync", dir))
}

/// The blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// The store under `root` (`root/blobs/sha256`, temporaries in `root/tmp`).
    pub(crate) fn new(root: &Path) -> Result<Self, ImageError> {
        let dir = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        for d in [&dir, &tmp] {
            fs::create_dir_all(d).map_err(ImageError::io("create", d))?;
        }
        Ok(BlobStore { dir, tmp })
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf, BadDigest> {
        Ok(self.dir.join(digest_hex(digest)?))
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Reads a whole (small) blob.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.path(digest)?;
        fs::read(&p).map_err(ImageError::io("read", p))
    }

    /// Stores `data`, checking that it hashes to `digest`.
    pub fn write_bytes(&self, digest: &str, data: &[u8]) -> Result<(), ImageError> {
        self.write_from(digest, data).map(|_| ())
    }

    /// Stores what `reader` yields, checking the digest; returns the size.
    pub fn write_from(&self, digest: &str, mut reader: impl Read) -> Result<u64, ImageError> {
        let dst = self.path(digest)?;
        if dst.is_file() {
            return fs::metadata(&dst)
                .map(|m| m.len())
                .map_err(ImageError::io("stat", dst));
        }
        let tmp = tmp_path(&self.tmp, "blob");
        let result = (|| {
            let mut f = File::create(&tmp).map_err(ImageError::io("create", &tmp))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut size = 0u64;
            loop {
                let n = reader
                    .read(&mut buf)
                    .map_err(ImageError::io("read blob for", &dst))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                f.write_all(&buf[..n])
                    .map_err(ImageError::io("write", &tmp))?;
                size += n as u64;
            }
            let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
            if actual != digest {
                return Err(ImageError::DigestMismatch {
                    expected: digest.to_string(),
                    actual,
                });
            }
            f.sync_all().map_err(ImageError::io("fsync", &tmp))?;
            self.commit(&tmp, &dst)?;
            Ok(size)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// A temporary file for a streamed download of `digest`; call
    /// [`BlobStore::commit_download`] once it is complete.
    pub(crate) async fn start_download(
        &self,
        digest: &str,
    ) -> Result<HashingWriter<tokio::fs::File>, ImageError> {
        digest_hex(digest)?;
        let tmp = tmp_path(&self.tmp, "download");
        let f = tokio::fs::File::create(&tmp)
            .await
            .map_err(ImageError::io("create", &tmp))?;
        Ok(HashingWriter {
            inner: f,
            hasher: Sha256::new(),
            path: tmp,
            size: 0,
        })
    }

    /// Verifies, fsyncs and renames a finished download into place.
    pub(crate) async fn commit_download(
        &self,
        digest: &str,
        w: HashingWriter<tokio::fs::File>,
    ) -> Result<u64, ImageError> {
        let dst = self.path(digest)?;
        let HashingWriter {
            inner,
            hasher,
            path,
            size,
        } = w;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        let result = async {
            if actual != digest {
                return Err(ImageError::DigestMismatch {
                    expected: digest.to_string(),
                    actual,
                });
            }
            inner
                .sync_all()
                .await
                .map_err(ImageError::io("fsync", &path))?;
            drop(inner);
            self.commit(&path, &dst)
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&path);
        }
        result.map(|_| size)
    }

    /// Discards an unfinished download.
    pub(crate) fn abort_download(&self, w: HashingWriter<tokio::fs::File>) {
        let _ = fs::remove_file(&w.path);
    }

    fn commit(&self, tmp: &Path, dst: &Path) -> Result<(), ImageError> {
        fs::rename(tmp, dst).map_err(ImageError::io("rename into", dst))?;
        sync_dir(&self.dir)
    }

    /// Removes a blob (absent is fine).
    pub fn remove(&self, digest: &str) -> Result<(), ImageError> {
        let p = self.path(digest)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ImageError::io("remove", p)(e))
            }
            _ => Ok(()),
        }
    }

    /// Every stored blob as `(digest, size)`.
    pub fn list(&self) -> Result<Vec<(String, u64)>, ImageError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(ImageError::io("list", &self.dir))? {
            let entry = entry.map_err(ImageError::io("list", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if digest_hex(&digest).is_ok() {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((digest, len));
            }
        }
        Ok(out)
    }
}

/// An `AsyncWrite` that hashes what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    path: PathBuf,
    size: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for HashingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.size += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_write_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path()).unwrap();
        let data = b"hello";
        let d = sha256_digest(data);
        store.write_bytes(&d, data).unwrap();
        assert!(store.contains(&d));
        assert_eq!(store.read(&d).unwrap(), data);
        let wrong = sha256_digest(b"other");
        let err = store.write_bytes(&wrong, data).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }));
        assert!(!store.contains(&wrong));
        // No temporaries are left behind.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(store.list().unwrap(), vec![(d, 5)]);
    }

    #[test]
    fn digests_are_validated() {
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex("sha512:00").is_err());
        assert!(digest_hex(&sha256_digest(b"")).is_ok());
    }
}
