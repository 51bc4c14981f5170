//! The container's root filesystem: an overlay of the image layers with the
//! container's own upper and work directories, behind the [`Mounter`] trait.

use std::path::{Path, PathBuf};

use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

/// Errors mounting or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The overlay options do not fit in one page.
    #[error("overlay mount options too long ({0} bytes): too many or too deep layer paths")]
    TooLong(usize),
    /// A layer path that overlayfs cannot take (`:` or `,` in it).
    #[error("layer path {0:?} contains ':' or ','")]
    BadPath(PathBuf),
    /// No layers given.
    #[error("no image layers given")]
    NoLayers,
    /// The mount system call failed.
    #[error("{what} {target}: {source}")]
    Sys {
        /// mount or unmount.
        what: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Mounts and unmounts root filesystems.
pub trait Mounter: Send + Sync + std::fmt::Debug {
    /// Mounts an overlay of `lower` (top-most first) with `upper`/`work` at `target`.
    fn mount_overlay(
        &self,
        lower: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<(), RootfsError>;
    /// Unmounts `target` (lazily); not mounted is not an error.
    fn unmount(&self, target: &Path) -> Result<(), RootfsError>;
}

/// The overlayfs option string.
pub fn overlay_options(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<String, RootfsError> {
    if lower.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    for p in lower.iter().map(PathBuf::as_path).chain([upper, work]) {
        let s = p.to_string_lossy();
        if s.contains(':') || s.contains(',') {
            return Err(RootfsError::BadPath(p.to_path_buf()));
        }
    }
    let lowers: Vec<_> = lower
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    // The kernel copies at most one page of mount data.
    if opts.len() >= 4096 {
        return Err(RootfsError::TooLong(opts.len()));
    }
    Ok(opts)
}

/// The real thing: mount(2) and umount2(2).
#[derive(Clone, Copy, Debug, Default)]
pub struct SysMounter;

impl Mounter for SysMounter {
    fn mount_overlay(
        &self,
        lower: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<(), RootfsError> {
        let opts = overlay_options(lower, upper, work)?;
        let data = std::ffi::CString::new(opts).map_err(|_| RootfsError::BadPath(target.into()))?;
        mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            Some(data.as_c_str()),
        )
        .map_err(|e| RootfsError::Sys {
            what: "mount overlay at",
            target: target.into(),
            source: e.into(),
        })
    }

    fn unmount(&self, target: &Path) -> Result<(), RootfsError> {
        match unmount(target, UnmountFlags::DETACH) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(RootfsError::Sys {
                what: "unmount",
                target: target.into(),
                source: e.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = overlay_options(
            &["/a".into(), "/b".into()],
            Path::new("/u"),
            Path::new("/w"),
        )
        .unwrap();
        assert_eq!(o, "lowerdir=/a:/b,upperdir=/u,workdir=/w");
        assert!(matches!(
            overlay_options(&[], Path::new("/u"), Path::new("/w")),
            Err(RootfsError::NoLayers)
        ));
        assert!(matches!(
            overlay_options(&["/a:b".into()], Path::new("/u"), Path::new("/w")),
            Err(RootfsError::BadPath(_))
        ));
        let many: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/var/lib/rkube/layers/{i:064}")))
            .collect();
        assert!(matches!(
            overlay_options(&many, Path::new("/u"), Path::new("/w")),
            Err(RootfsError::TooLong(_))
        ));
    }
}
