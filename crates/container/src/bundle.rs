//! OCI bundle generation: turns a [`ContainerSpec`] into an OCI runtime
//! `config.json` with `oci-spec`.
//!
//! Defaults follow what containerd gives Kubernetes containers: private pid,
//! ipc, uts and mount namespaces, the network namespace joined by path (or the
//! host's), Docker's default capability set, the usual `/proc`, `/dev`,
//! `/dev/pts`, `/dev/shm`, `/dev/mqueue`, read-only `/sys` and cgroup mounts,
//! masked and read-only kernel paths (none when privileged) and
//! `RLIMIT_NOFILE`. No AppArmor profile and no seccomp filter are applied
//! (Kubernetes' `Unconfined`; the node has no profile loader yet).

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::spec::{ContainerSpec, Mount};

/// Errors building a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A capability name that is not known.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// The process has no arguments.
    #[error("container {0}: no command given")]
    NoArgs(String),
    /// A mount destination that is not absolute.
    #[error("mount destination {0:?} is not an absolute path")]
    RelativeDestination(String),
    /// oci-spec refused a value.
    #[error("building the OCI spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
    /// Writing `config.json` failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Docker's (and containerd's) default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The default cgroup parent when the spec gives none.
pub const DEFAULT_CGROUP_PARENT: &str = "/rkube";

/// Parses `NET_ADMIN` or `CAP_NET_ADMIN` (any case).
pub fn parse_capability(name: &str) -> Result<Capability, BundleError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| BundleError::UnknownCapability(name.to_string()))
}

fn all_capabilities() -> Capabilities {
    // Every capability the enum knows: parse all names the kernel has had.
    const ALL: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    ALL.iter()
        .filter_map(|n| Capability::from_str(n).ok())
        .collect()
}

/// The capability set for a container: Docker's defaults, minus drops, plus adds
/// (`ALL` is understood in both lists; privileged gets everything).
pub fn capabilities(spec: &ContainerSpec) -> Result<Capabilities, BundleError> {
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    if spec.privileged || spec.cap_add.iter().any(is_all) {
        return Ok(all_capabilities());
    }
    let mut caps: Capabilities = if spec.cap_drop.iter().any(is_all) {
        HashSet::new()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| parse_capability(c))
            .collect::<Result<_, _>>()?
    };
    for drop in spec.cap_drop.iter().filter(|c| !is_all(c)) {
        caps.remove(&parse_capability(drop)?);
    }
    for add in &spec.cap_add {
        caps.insert(parse_capability(add)?);
    }
    Ok(caps)
}

fn mount(
    dest: &str,
    typ: &str,
    source: &str,
    opts: &[&str],
) -> Result<oci_spec::runtime::Mount, BundleError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

fn default_mounts(privileged: bool) -> Result<Vec<oci_spec::runtime::Mount>, BundleError> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        )?,
    ])
}

fn extra_mount(m: &Mount) -> Result<oci_spec::runtime::Mount, BundleError> {
    match m {
        Mount::Bind {
            source,
            destination,
            readonly,
        } => {
            check_dest(destination)?;
            let mode = if *readonly { "ro" } else { "rw" };
            Ok(MountBuilder::default()
                .destination(destination)
                .typ("bind")
                .source(source)
                .options(vec![
                    "rbind".to_string(),
                    "rprivate".to_string(),
                    mode.to_string(),
                ])
                .build()?)
        }
        Mount::Tmpfs {
            destination,
            size,
            readonly,
        } => {
            check_dest(destination)?;
            let mut opts = vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "mode=1777".to_string(),
            ];
            if let Some(size) = size {
                opts.push(format!("size={size}"));
            }
            if *readonly {
                opts.push("ro".to_string());
            }
            Ok(MountBuilder::default()
                .destination(destination)
                .typ("tmpfs")
                .source("tmpfs")
                .options(opts)
                .build()?)
        }
    }
}

fn check_dest(dest: &str) -> Result<(), BundleError> {
    if dest.starts_with('/') {
        Ok(())
    } else {
        Err(BundleError::RelativeDestination(dest.to_string()))
    }
}

fn depth(dest: &Path) -> usize {
    dest.components().count()
}

/// The container's cgroup path (`<parent>/<id>`).
pub fn cgroup_path(spec: &ContainerSpec) -> String {
    let parent = spec
        .cgroup_parent
        .as_deref()
        .unwrap_or(DEFAULT_CGROUP_PARENT);
    format!("{}/{}", parent.trim_end_matches('/'), spec.id)
}

/// `RLIMIT_NOFILE` for containers: 1048576, or the agent's own hard limit if
/// lower (raising it needs `CAP_SYS_RESOURCE`, which a sandboxed agent may lack).
fn nofile_limit() -> u64 {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    hard.map_or(1_048_576, |h| h.min(1_048_576))
}

/// Builds the OCI runtime spec with the root filesystem at `rootfs`.
pub fn build(spec: &ContainerSpec, rootfs: &Path) -> Result<Spec, BundleError> {
    if spec.args.is_empty() {
        return Err(BundleError::NoArgs(spec.id.clone()));
    }
    let caps = capabilities(spec)?;
    let linux_caps = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()?;
    let user = UserBuilder::default()
        .uid(spec.user.uid)
        .gid(spec.user.gid)
        .additional_gids(spec.user.additional_gids.clone())
        .build()?;
    let nofile_max = nofile_limit();
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(nofile_max)
        .soft(nofile_max)
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(user)
        .args(spec.args.clone())
        .env(spec.env.clone())
        .cwd(
            spec.cwd
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "/".to_string()),
        )
        .capabilities(linux_caps)
        .rlimits(vec![nofile])
        .no_new_privileges(spec.no_new_privileges)
        .build()?;

    // Default mounts, then the extra ones parents-first; an extra mount on a
    // default destination (e.g. /dev/shm) replaces the default.
    let mut extra = spec
        .mounts
        .iter()
        .map(extra_mount)
        .collect::<Result<Vec<_>, _>>()?;
    extra.sort_by_key(|m| depth(m.destination()));
    let mut mounts: Vec<_> = default_mounts(spec.privileged)?
        .into_iter()
        .filter(|d| !extra.iter().any(|e| e.destination() == d.destination()))
        .collect();
    mounts.extend(extra);

    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build()?);
    }
    if let Some(netns) = &spec.netns {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(netns)
                .build()?,
        );
    }

    let mut resources = LinuxResourcesBuilder::default();
    let device_rule = LinuxDeviceCgroupBuilder::default()
        .allow(spec.privileged)
        .access("rwm")
        .build()?;
    resources = resources.devices(vec![device_rule]);
    let r = &spec.resources;
    if let Some(limit) = r.memory_limit {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if r.cpu_quota.is_some() || r.cpu_period.is_some() || r.cpu_shares.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(q) = r.cpu_quota {
            cpu = cpu.quota(q);
        }
        if let Some(p) = r.cpu_period {
            cpu = cpu.period(p);
        }
        if let Some(s) = r.cpu_shares {
            cpu = cpu.shares(s);
        }
        resources = resources.cpu(cpu.build()?);
    }
    if let Some(limit) = r.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .cgroups_path(cgroup_path(spec));
    // Set explicitly: oci-spec's builders fall back to its own defaults.
    let (masked, readonly): (&[&str], &[&str]) = if spec.privileged {
        (&[], &[])
    } else {
        (MASKED_PATHS, READONLY_PATHS)
    };
    linux = linux
        .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>());

    let builder = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(spec.readonly_rootfs)
                .build()?,
        )
        .process(process)
        .mounts(mounts)
        .linux(linux.build()?);
    let mut oci = builder.build()?;
    // Set explicitly: the builder would fall back to oci-spec's defaults.
    oci.set_hostname(spec.hostname.clone());
    oci.set_annotations(None);
    Ok(oci)
}

/// Writes `config.json` into `bundle_dir`.
pub fn write(spec: &Spec, bundle_dir: &Path) -> Result<(), BundleError> {
    let path = bundle_dir.join("config.json");
    let json = serde_json::to_vec(spec).map_err(|e| BundleError::Write {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, json).map_err(|source| BundleError::Write {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
