//! Unpacks one layer (a tar, plain or gzip-compressed) into a directory in
//! overlayfs lower-dir format.
//!
//! OCI whiteouts become overlayfs ones: `.wh.<name>` turns into a character
//! device 0:0 named `<name>`, and `.wh..wh..opq` into the
//! `trusted.overlay.opaque=y` xattr on its directory. Ownership (as root),
//! modes, mtimes, symlinks, hard links and device nodes are kept. Paths that
//! would escape the layer directory are rejected.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer is compressed with something not supported.
    #[error("unsupported layer compression {0}")]
    UnsupportedCompression(String),
    /// An entry's path leaves the layer directory.
    #[error("layer entry {0:?} escapes the layer directory")]
    Escape(String),
    /// Reading the archive or writing the files failed.
    #[error("unpacking layer into {}: {source}", dir.display())]
    Io {
        /// The layer directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
}

/// What unpacking produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Number of entries.
    pub entries: u64,
}

/// The compression a layer media type announces; zstd is refused.
pub fn compression_for_media_type(media_type: &str) -> Result<Compression, UnpackError> {
    if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
        Err(UnpackError::UnsupportedCompression(media_type.to_string()))
    } else if media_type.ends_with("gzip") {
        Ok(Compression::Gzip)
    } else {
        Ok(Compression::None)
    }
}

/// Unpacks the layer read from `reader` into `dest` (which must exist).
/// The compression is sniffed from the first bytes (gzip magic), so a
/// mislabelled media type still works.
pub fn unpack_layer(reader: impl Read, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let io_err = |source| UnpackError::Io {
        dir: dest.to_path_buf(),
        source,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = reader.fill_buf().map_err(io_err)?;
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(UnpackError::UnsupportedCompression("zstd".into()));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        unpack_tar(flate2::read::GzDecoder::new(reader), dest)
    } else {
        unpack_tar(reader, dest)
    }
}

fn unpack_tar(reader: impl Read, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let io_err = |source| UnpackError::Io {
        dir: dest.to_path_buf(),
        source,
    };
    let as_root = rustix::process::geteuid().is_root();
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(as_root);
    archive.set_overwrite(true);
    let canon_dest = dest.canonicalize().map_err(io_err)?;
    let mut stats = UnpackStats::default();
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        stats.entries += 1;
        let raw = entry.path().map_err(io_err)?.into_owned();
        let Some(rel) = sanitise(&raw)? else {
            continue;
        };
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = ensure_parent(&canon_dest, parent_rel)?;
            if name == OPAQUE_MARKER {
                rustix::fs::lsetxattr(&parent, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty())
                    .map_err(|e| io_err(e.into()))?;
            } else {
                let target = parent.join(hidden);
                remove_any(&target).map_err(io_err)?;
                mknod(&target, rustix::fs::FileType::CharacterDevice, 0, 0, 0).map_err(io_err)?;
            }
            continue;
        }
        let header = entry.header();
        let kind = header.entry_type();
        let file_type = if kind.is_character_special() {
            Some(rustix::fs::FileType::CharacterDevice)
        } else if kind.is_block_special() {
            Some(rustix::fs::FileType::BlockDevice)
        } else if kind.is_fifo() {
            Some(rustix::fs::FileType::Fifo)
        } else {
            None
        };
        if let Some(ft) = file_type {
            let parent = ensure_parent(&canon_dest, parent_rel)?;
            let target = parent.join(&name);
            let mode = header.mode().map_err(io_err)? & 0o7777;
            let major = header.device_major().map_err(io_err)?.unwrap_or(0);
            let minor = header.device_minor().map_err(io_err)?.unwrap_or(0);
            remove_any(&target).map_err(io_err)?;
            mknod(&target, ft, mode, major, minor).map_err(io_err)?;
            if as_root {
                let (uid, gid) = (header.uid().map_err(io_err)?, header.gid().map_err(io_err)?);
                std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32))
                    .map_err(io_err)?;
            }
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err)?;
            continue;
        }
        if kind.is_file() || kind == tar::EntryType::Continuous {
            stats.bytes += entry.size();
        }
        // A regular file or symlink replacing a directory of a lower entry in
        // the same tar would fail; replace it explicitly.
        if !kind.is_dir() {
            let target = canon_dest.join(&rel);
            if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                fs::remove_dir_all(&target).map_err(io_err)?;
            }
        }
        entry.unpack_in(&canon_dest).map_err(io_err)?;
    }
    Ok(stats)
}

/// The entry path relative to the layer root; `None` for the root itself.
fn sanitise(raw: &Path) -> Result<Option<PathBuf>, UnpackError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(UnpackError::Escape(raw.display().to_string()));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Creates the parent directory if needed and checks that, symlinks
/// resolved, it is inside the layer directory.
fn ensure_parent(dest: &Path, parent_rel: &Path) -> Result<PathBuf, UnpackError> {
    let parent = dest.join(parent_rel);
    let io_err = |source| UnpackError::Io {
        dir: dest.to_path_buf(),
        source,
    };
    fs::create_dir_all(&parent).map_err(io_err)?;
    let canon = parent.canonicalize().map_err(io_err)?;
    if !canon.starts_with(dest) {
        return Err(UnpackError::Escape(parent_rel.display().to_string()));
    }
    Ok(canon)
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn mknod(
    path: &Path,
    ft: rustix::fs::FileType,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        ft,
        rustix::fs::Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            compression_for_media_type("application/vnd.oci.image.layer.v1.tar+gzip").unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            compression_for_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip")
                .unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            compression_for_media_type("application/vnd.oci.image.layer.v1.tar").unwrap(),
            Compression::None
        );
        assert!(compression_for_media_type("application/vnd.oci.image.layer.v1.tar+zstd").is_err());
    }

    #[test]
    fn sanitise_paths() {
        assert_eq!(
            sanitise(Path::new("./a/b")).unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(sanitise(Path::new("/a")).unwrap(), Some(PathBuf::from("a")));
        assert_eq!(sanitise(Path::new("./")).unwrap(), None);
        assert!(sanitise(Path::new("a/../../etc")).is_err());
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn plain_and_gzip_files() {
        let tar = tar_of(&[("etc/hello", b"hi"), ("./x/y", b"z")]);
        let dir = tempfile::tempdir().unwrap();
        let stats = unpack_layer(&tar[..], dir.path()).unwrap();
        assert_eq!(stats.bytes, 3);
        assert_eq!(fs::read(dir.path().join("etc/hello")).unwrap(), b"hi");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        unpack_layer(&gz.finish().unwrap()[..], dir2.path()).unwrap();
        assert_eq!(fs::read(dir2.path().join("x/y")).unwrap(), b"z");
    }

    #[test]
    fn zstd_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = unpack_layer(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..], dir.path()).unwrap_err();
        assert!(matches!(err, UnpackError::UnsupportedCompression(_)));
    }
}
