//! One shared inotify instance that wakes waiters when a file is renamed into
//! (or created in) a watched state directory — how `wait` learns that the
//! monitor wrote `exited.json` without polling. (inotify instances are scarce:
//! 128 per user by default, so there is one per [`DirWatcher`], not per wait.)

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// Errors watching directories.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify failed.
    #[error("inotify {what}: {source}")]
    Inotify {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

#[derive(Debug, Default)]
struct Table {
    by_wd: HashMap<i32, (PathBuf, Arc<Notify>, usize)>,
    by_path: HashMap<PathBuf, i32>,
}

/// Watches directories for new entries; cheap to clone.
#[derive(Clone, Debug)]
pub struct DirWatcher {
    fd: Arc<AsyncFd<OwnedFd>>,
    table: Arc<Mutex<Table>>,
}

/// Keeps a directory watched; dropping it releases the watch.
#[derive(Debug)]
pub struct WatchGuard {
    watcher: DirWatcher,
    wd: i32,
    notify: Arc<Notify>,
}

impl WatchGuard {
    /// Woken on every new entry in the directory.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut t = self.watcher.table.lock().unwrap_or_else(|e| e.into_inner());
        let remove = match t.by_wd.get_mut(&self.wd) {
            Some(entry) => {
                entry.2 -= 1;
                entry.2 == 0
            }
            None => false,
        };
        if remove {
            if let Some((path, _, _)) = t.by_wd.remove(&self.wd) {
                t.by_path.remove(&path);
            }
            let _ = inotify::remove_watch(self.watcher.fd.get_ref(), self.wd);
        }
    }
}

impl DirWatcher {
    /// Creates the inotify instance and its reader task (needs a tokio runtime).
    pub fn new() -> Result<Self, WatchError> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).map_err(|e| {
            WatchError::Inotify {
                what: "init",
                source: e.into(),
            }
        })?;
        // `AsyncFd::new` is deprecated for fds it does not own; an `OwnedFd` is owned.
        #[allow(deprecated)]
        let fd = Arc::new(AsyncFd::new(fd).map_err(|source| WatchError::Inotify {
            what: "register",
            source,
        })?);
        let table = Arc::new(Mutex::new(Table::default()));
        let w = DirWatcher { fd, table };
        let weak_fd = Arc::downgrade(&w.fd);
        let table = Arc::downgrade(&w.table);
        tokio::spawn(async move {
            let mut buf = [MaybeUninit::uninit(); 4096];
            loop {
                let Some(fd) = weak_fd.upgrade() else { return };
                let Ok(mut guard) = fd.readable().await else {
                    return;
                };
                let mut woken = Vec::new();
                let mut reader = inotify::Reader::new(fd.get_ref(), &mut buf);
                loop {
                    match reader.next() {
                        Ok(ev) => woken.push(ev.wd()),
                        Err(rustix::io::Errno::AGAIN) => {
                            guard.clear_ready();
                            break;
                        }
                        Err(_) => return,
                    }
                }
                let Some(table) = table.upgrade() else { return };
                let t = table.lock().unwrap_or_else(|e| e.into_inner());
                for wd in woken {
                    if let Some((_, n, _)) = t.by_wd.get(&wd) {
                        n.notify_waiters();
                    }
                }
            }
        });
        Ok(w)
    }

    /// Starts (or shares) a watch on `dir`.
    pub fn watch(&self, dir: &Path) -> Result<WatchGuard, WatchError> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wd) = t.by_path.get(dir).copied() {
            let entry = t.by_wd.get_mut(&wd).expect("tables agree");
            entry.2 += 1;
            return Ok(WatchGuard {
                watcher: self.clone(),
                wd,
                notify: entry.1.clone(),
            });
        }
        let wd = inotify::add_watch(
            self.fd.get_ref(),
            dir,
            WatchFlags::MOVED_TO | WatchFlags::CREATE | WatchFlags::DELETE_SELF,
        )
        .map_err(|e| WatchError::Inotify {
            what: "add_watch",
            source: e.into(),
        })?;
        let notify = Arc::new(Notify::new());
        t.by_wd.insert(wd, (dir.to_path_buf(), notify.clone(), 1));
        t.by_path.insert(dir.to_path_buf(), wd);
        Ok(WatchGuard {
            watcher: self.clone(),
            wd,
            notify,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_on_rename_into_dir() {
        let d = tempfile::tempdir().unwrap();
        let w = DirWatcher::new().unwrap();
        let g1 = w.watch(d.path()).unwrap();
        let g2 = w.watch(d.path()).unwrap();
        {
            let notified = g1.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            std::fs::write(d.path().join(".x.tmp"), "1").unwrap();
            std::fs::rename(d.path().join(".x.tmp"), d.path().join("x")).unwrap();
            tokio::time::timeout(Duration::from_secs(10), notified)
                .await
                .unwrap();
        }
        drop(g2);
        drop(g1);
        assert!(w.table.lock().unwrap().by_wd.is_empty());
    }
}
