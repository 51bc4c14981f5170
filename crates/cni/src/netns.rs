//! Named, persistent network namespaces (like `ip netns add`), and running
//! code inside one.
//!
//! A namespace is created on a short-lived dedicated thread: the thread
//! `unshare(CLONE_NEWNET)`s itself into a fresh namespace and bind-mounts
//! `/proc/thread-self/ns/net` onto an empty file (e.g.
//! `/run/netns/rkube-<id>`). The bind mount keeps the namespace alive after
//! the thread exits; deleting it is a lazy unmount plus removing the file.
//! As iproute2 does, the directory is made a shared mount so the namespace
//! mounts propagate to mount namespaces cloned from the host's.
//!
//! [`in_netns`] runs a closure on a dedicated thread that has `setns`'d into
//! a namespace, so sockets it creates (listeners, connections) belong to that
//! namespace and keep working from any thread afterwards. The thread exits
//! when the closure returns, so no pooled thread is ever left in a pod's
//! namespace. All syscalls go through `nix`'s safe wrappers: no `unsafe`.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

/// Errors from network namespace operations.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A filesystem operation on the namespace file or its directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A namespace syscall (unshare, setns, mount, umount) failed.
    #[error("{op} {path}: {source}")]
    Sys {
        /// The syscall.
        op: &'static str,
        /// The namespace file involved.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// The namespace file already exists.
    #[error("network namespace {0} already exists")]
    Exists(PathBuf),
    /// The path is not a network namespace (not an nsfs bind mount).
    #[error("{0} is not a network namespace")]
    NotNetns(PathBuf),
    /// The dedicated namespace thread could not be spawned or panicked.
    #[error("network namespace thread failed: {0}")]
    Thread(String),
}

/// Creating, deleting and checking named network namespaces; a trait so the
/// callers' logic is unit-testable without root.
pub trait NetnsOps: Send + Sync {
    /// Creates the namespace file at `path` holding a fresh network
    /// namespace. Fails with [`NetnsError::Exists`] if the file exists.
    fn create(&self, path: &Path) -> Result<(), NetnsError>;
    /// Unmounts and removes the namespace file. Succeeds if it is absent.
    fn delete(&self, path: &Path) -> Result<(), NetnsError>;
    /// Whether `path` is a live network namespace bind mount.
    fn exists(&self, path: &Path) -> bool;
}

/// The real [`NetnsOps`]: bind-mounted namespace files, as `ip netns` makes.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostNetns;

/// The conventional path for a named namespace: `/run/netns/<name>`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

impl NetnsOps for HostNetns {
    fn create(&self, path: &Path) -> Result<(), NetnsError> {
        if let Some(dir) = path.parent() {
            ensure_shared_dir(dir)?;
        }
        // O_EXCL: never bind over somebody else's namespace.
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(NetnsError::Exists(path.to_path_buf()))
            }
            Err(source) => {
                return Err(NetnsError::Io {
                    op: "create",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        let target = path.to_path_buf();
        let result = on_thread(move || -> Result<(), NetnsError> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Sys {
                op: "unshare(CLONE_NEWNET)",
                path: target.clone(),
                source,
            })?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|source| NetnsError::Sys {
                op: "bind-mount netns onto",
                path: target.clone(),
                source,
            })
        })
        .and_then(|r| r);
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    fn delete(&self, path: &Path) -> Result<(), NetnsError> {
        match umount2(path, MntFlags::MNT_DETACH) {
            // EINVAL: not a mount point (half-created); ENOENT: gone already.
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(source) => {
                return Err(NetnsError::Sys {
                    op: "umount",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetnsError::Io {
                op: "remove",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
    }
}

/// Makes `dir` exist and be a shared mount point, as `ip netns add` does, so
/// namespace mounts below it propagate to mount namespaces cloned later.
fn ensure_shared_dir(dir: &Path) -> Result<(), NetnsError> {
    std::fs::create_dir_all(dir).map_err(|source| NetnsError::Io {
        op: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let make_shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself first.
        Err(nix::Error::EINVAL) => mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| make_shared())
        .map_err(|source| NetnsError::Sys {
            op: "make shared mount",
            path: dir.to_path_buf(),
            source,
        }),
        Err(source) => Err(NetnsError::Sys {
            op: "make shared mount",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Runs `f` on a fresh thread and waits for it; the thread exits afterwards,
/// taking any namespace it entered with it.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetnsError> {
    std::thread::Builder::new()
        .name("rkube-netns".into())
        .spawn(f)
        .map_err(|e| NetnsError::Thread(e.to_string()))?
        .join()
        .map_err(|_| NetnsError::Thread("panicked".into()))
}

/// Runs `f` inside the network namespace at `netns_path`, on a dedicated
/// thread that exits afterwards. Sockets `f` creates belong to that
/// namespace and may be used from any thread once returned.
pub fn in_netns<T: Send + 'static>(
    netns_path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let path = netns_path.to_path_buf();
    let file = File::open(&path).map_err(|source| NetnsError::Io {
        op: "open",
        path: path.clone(),
        source,
    })?;
    on_thread(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Sys {
            op: "setns",
            path,
            source,
        })?;
        drop(file);
        Ok(f())
    })?
}

/// Opens a TCP connection to `addr` from inside the network namespace at
/// `netns_path` (so `127.0.0.1` means the pod's loopback). The returned
/// socket stays in the pod's namespace; used by port-forward.
pub fn connect_tcp_in_netns(netns_path: &Path, addr: SocketAddr) -> Result<TcpStream, NetnsError> {
    let path = netns_path.to_path_buf();
    in_netns(netns_path, move || TcpStream::connect(addr))?.map_err(|source| NetnsError::Io {
        op: "connect",
        path: PathBuf::from(format!("{addr} in {}", path.display())),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_path_is_under_run_netns() {
        assert_eq!(
            netns_path("rkube-abc"),
            PathBuf::from("/run/netns/rkube-abc")
        );
    }

    #[test]
    fn in_netns_on_missing_file_is_an_io_error() {
        let err = in_netns(Path::new("/nonexistent/netns"), || ()).unwrap_err();
        assert!(matches!(err, NetnsError::Io { op: "open", .. }), "{err}");
    }

    #[test]
    fn a_plain_file_is_not_a_netns() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"").unwrap();
        assert!(!HostNetns.exists(&f));
        assert!(!HostNetns.exists(&dir.path().join("missing")));
    }
}
