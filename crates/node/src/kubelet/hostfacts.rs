//! What the node agent measures on its host, behind [`HostFacts`]: memory
//! from `/proc/meminfo`, cumulative CPU time from `/proc/stat`, and file
//! system space and inodes by `statvfs`. [`ProcHost`] reads the real files;
//! tests use fixed numbers.

use std::path::{Path, PathBuf};

/// A host measurement that failed.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no {field}")]
    Missing { path: PathBuf, field: &'static str },
}

/// The host's memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub free: u64,
    /// `Inactive(file)`: page cache the kernel reclaims first.
    pub inactive_file: u64,
    /// `AnonPages`: anonymous memory (the node's RSS).
    pub anon: u64,
}

impl MemInfo {
    /// Memory in use (`MemTotal − MemFree`), as the root cgroup counts it.
    pub fn usage(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }

    /// Upstream's working set: usage minus inactive file cache.
    pub fn working_set(&self) -> u64 {
        self.usage().saturating_sub(self.inactive_file)
    }

    /// Upstream's `memory.available`: capacity minus the working set.
    pub fn available(&self) -> u64 {
        self.total.saturating_sub(self.working_set())
    }
}

/// Space and inodes of a file system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsInfo {
    pub capacity: u64,
    /// Bytes available to unprivileged users.
    pub available: u64,
    pub used: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// The measurements the agent takes of its host.
pub trait HostFacts: Send + Sync {
    fn meminfo(&self) -> Result<MemInfo, FactsError>;
    /// Cumulative CPU time of all CPUs, in nanoseconds.
    fn cpu_usage_ns(&self) -> Result<u64, FactsError>;
    /// Space and inodes of the file system holding `path`.
    fn fs(&self, path: &Path) -> Result<FsInfo, FactsError>;
}

/// The real host: `/proc` and `statvfs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcHost;

const MEMINFO: &str = "/proc/meminfo";
const STAT: &str = "/proc/stat";

fn read(path: &str) -> Result<String, FactsError> {
    std::fs::read_to_string(path).map_err(|source| FactsError::Read {
        path: path.into(),
        source,
    })
}

/// Parses `/proc/meminfo` (values in KiB).
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(MemInfo {
        total: field("MemTotal")? * 1024,
        free: field("MemFree")? * 1024,
        inactive_file: field("Inactive(file)").unwrap_or(0) * 1024,
        anon: field("AnonPages").unwrap_or(0) * 1024,
    })
}

/// Clock ticks per second of `/proc/stat` (USER_HZ, 100 on Linux).
const USER_HZ: u64 = 100;

/// Busy CPU time in nanoseconds from the `cpu` line of `/proc/stat`:
/// user, nice, system, irq, softirq and steal (idle and iowait excluded).
pub fn parse_proc_stat(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let ticks = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    Some(ticks * (1_000_000_000 / USER_HZ))
}

impl HostFacts for ProcHost {
    fn meminfo(&self) -> Result<MemInfo, FactsError> {
        parse_meminfo(&read(MEMINFO)?).ok_or(FactsError::Missing {
            path: MEMINFO.into(),
            field: "MemTotal/MemFree",
        })
    }

    fn cpu_usage_ns(&self) -> Result<u64, FactsError> {
        parse_proc_stat(&read(STAT)?).ok_or(FactsError::Missing {
            path: STAT.into(),
            field: "cpu line",
        })
    }

    fn fs(&self, path: &Path) -> Result<FsInfo, FactsError> {
        let s = rustix::fs::statvfs(path).map_err(|e| FactsError::Read {
            path: path.into(),
            source: e.into(),
        })?;
        Ok(FsInfo {
            capacity: s.f_blocks * s.f_frsize,
            available: s.f_bavail * s.f_frsize,
            used: s.f_blocks.saturating_sub(s.f_bfree) * s.f_frsize,
            inodes: s.f_files,
            inodes_free: s.f_ffree,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_stat_parse() {
        let m = parse_meminfo(
            "MemTotal:       16000 kB\nMemFree:         4000 kB\nMemAvailable:   9000 kB\n\
             Inactive(file):  3000 kB\nAnonPages:       2000 kB\n",
        )
        .unwrap();
        assert_eq!(m.total, 16000 * 1024);
        assert_eq!(m.usage(), 12000 * 1024);
        assert_eq!(m.working_set(), 9000 * 1024);
        assert_eq!(m.available(), 7000 * 1024);
        assert_eq!(m.anon, 2000 * 1024);
        assert!(parse_meminfo("MemFree: 1 kB\n").is_none());
        let ns = parse_proc_stat("cpu  10 1 5 1000 7 2 3 4 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(ns, (10 + 1 + 5 + 2 + 3 + 4) * 10_000_000);
    }

    #[test]
    fn real_host_is_readable() {
        let h = ProcHost;
        assert!(h.meminfo().unwrap().total > 0);
        assert!(h.cpu_usage_ns().is_ok());
        let fs = h.fs(Path::new("/")).unwrap();
        assert!(fs.capacity >= fs.available);
    }
}
