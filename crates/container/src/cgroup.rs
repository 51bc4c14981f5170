//! Reading a container's cgroup (created by the runtime from
//! `linux.cgroupsPath`, cgroupfs driver): the OOM-kill counter and CPU/memory
//! usage, on cgroup v1 (`<root>/<controller>/<path>`) or v2 (`<root>/<path>`).

use std::path::{Path, PathBuf};

/// Errors reading cgroup files.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A file could not be read or parsed.
    #[error("reading {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// CPU and memory usage of a container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cumulative CPU time in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory usage in bytes.
    pub memory_usage_bytes: u64,
    /// Usage minus inactive file cache (what kubelet calls the working set).
    pub memory_working_set_bytes: u64,
    /// Anonymous memory (`anon` on v2, `total_rss` on v1).
    pub memory_rss_bytes: u64,
}

/// A cgroup filesystem root (`/sys/fs/cgroup`).
#[derive(Clone, Debug)]
pub struct Cgroups {
    root: PathBuf,
    v2: bool,
}

impl Default for Cgroups {
    fn default() -> Self {
        Cgroups::new("/sys/fs/cgroup")
    }
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| CgroupError::Read {
        path: path.into(),
        message: e.to_string(),
    })
}

fn num(path: &Path, s: &str) -> Result<u64, CgroupError> {
    s.trim().parse().map_err(|_| CgroupError::Read {
        path: path.into(),
        message: format!("not a number: {s:?}"),
    })
}

/// The value of `key` in a flat-keyed file (`key value` lines).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

impl Cgroups {
    /// A root; v2 (unified) if it has `cgroup.controllers`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let v2 = root.join("cgroup.controllers").exists();
        Cgroups { root, v2 }
    }

    /// Whether the root is a unified (v2) hierarchy.
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    fn dir(&self, controller: &str, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        if self.v2 {
            self.root.join(rel)
        } else {
            self.root.join(controller).join(rel)
        }
    }

    /// How many processes the kernel OOM-killed in the cgroup.
    pub fn oom_kills(&self, path: &str) -> Result<u64, CgroupError> {
        let file = if self.v2 {
            self.dir("", path).join("memory.events")
        } else {
            self.dir("memory", path).join("memory.oom_control")
        };
        Ok(keyed(&read(&file)?, "oom_kill").unwrap_or(0))
    }

    /// CPU and memory usage.
    pub fn usage(&self, path: &str) -> Result<Usage, CgroupError> {
        if self.v2 {
            let dir = self.dir("", path);
            let cpu_file = dir.join("cpu.stat");
            let cpu = keyed(&read(&cpu_file)?, "usage_usec").unwrap_or(0) * 1000;
            let mem_file = dir.join("memory.current");
            let mem = num(&mem_file, &read(&mem_file)?)?;
            let stat = read(&dir.join("memory.stat"))?;
            let inactive = keyed(&stat, "inactive_file").unwrap_or(0);
            Ok(Usage {
                cpu_usage_ns: cpu,
                memory_usage_bytes: mem,
                memory_working_set_bytes: mem.saturating_sub(inactive),
                memory_rss_bytes: keyed(&stat, "anon").unwrap_or(0),
            })
        } else {
            let cpu_file = self.dir("cpuacct", path).join("cpuacct.usage");
            let cpu = num(&cpu_file, &read(&cpu_file)?)?;
            let mem_dir = self.dir("memory", path);
            let mem_file = mem_dir.join("memory.usage_in_bytes");
            let mem = num(&mem_file, &read(&mem_file)?)?;
            let stat = read(&mem_dir.join("memory.stat"))?;
            let inactive = keyed(&stat, "total_inactive_file").unwrap_or(0);
            Ok(Usage {
                cpu_usage_ns: cpu,
                memory_usage_bytes: mem,
                memory_working_set_bytes: mem.saturating_sub(inactive),
                memory_rss_bytes: keyed(&stat, "total_rss").unwrap_or(0),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_files() {
        let d = tempfile::tempdir().unwrap();
        let v1 = Cgroups::new(d.path());
        assert!(!v1.is_v2());
        let mem = d.path().join("memory/rkube/c1");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(
            mem.join("memory.stat"),
            "cache 5\ntotal_rss 200\ntotal_inactive_file 300\n",
        )
        .unwrap();
        let cpu = d.path().join("cpuacct/rkube/c1");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "12345\n").unwrap();
        assert_eq!(v1.oom_kills("/rkube/c1").unwrap(), 2);
        assert_eq!(
            v1.usage("/rkube/c1").unwrap(),
            Usage {
                cpu_usage_ns: 12345,
                memory_usage_bytes: 1000,
                memory_working_set_bytes: 700,
                memory_rss_bytes: 200,
            }
        );

        let d2 = tempfile::tempdir().unwrap();
        std::fs::write(d2.path().join("cgroup.controllers"), "memory cpu\n").unwrap();
        let v2 = Cgroups::new(d2.path());
        assert!(v2.is_v2());
        let c = d2.path().join("rkube/c1");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(
            c.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(c.join("memory.current"), "2000\n").unwrap();
        std::fs::write(c.join("memory.stat"), "anon 400\ninactive_file 500\n").unwrap();
        std::fs::write(c.join("cpu.stat"), "usage_usec 7\n").unwrap();
        assert_eq!(v2.oom_kills("rkube/c1").unwrap(), 1);
        assert_eq!(
            v2.usage("/rkube/c1").unwrap(),
            Usage {
                cpu_usage_ns: 7000,
                memory_usage_bytes: 2000,
                memory_working_set_bytes: 1500,
                memory_rss_bytes: 400,
            }
        );
        assert!(v2.oom_kills("/nope").is_err());
    }
}
