//! A pod's volumes on the node: each volume becomes a host directory under
//! the pod's directory (emptyDir, with `medium: Memory` as a tmpfs sized by
//! `sizeLimit`; configMap, secret, downwardAPI and projected filled by the
//! atomic writer and refreshed when their sources change; hostPath checked
//! against its `type`), and each `volumeMount` a bind mount of it.

use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use rkube_api::quantity::Quantity;

use super::backend::MountSpec;
use super::env::EnvSources;
use super::payload::{self, Payload, PayloadError, DEFAULT_MODE};

/// Why a volume cannot be set up (`FailedMount`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    Payload(#[from] PayloadError),
    #[error("hostPath type check failed: {path} is not a {kind}")]
    HostPathType { path: String, kind: &'static str },
    #[error("unsupported volume type of volume {0:?}")]
    Unsupported(String),
    #[error("volume {0:?}: {1}")]
    Io(String, String),
    #[error("unable to find volume {0:?} for a volumeMount")]
    NoVolume(String),
}

/// Mounting a tmpfs (behind a trait: needs root).
pub trait Mounter: Send + Sync {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> std::io::Result<()>;
    fn unmount(&self, target: &Path) -> std::io::Result<()>;
    fn is_mount_point(&self, target: &Path) -> bool;
}

/// The host's mount table through the mount syscall.
pub struct HostMounter;

impl Mounter for HostMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> std::io::Result<()> {
        let data = match size_bytes {
            Some(s) => format!("mode=0777,size={s}"),
            None => "mode=0777".to_string(),
        };
        let data = std::ffi::CString::new(data).map_err(std::io::Error::other)?;
        rustix::mount::mount(
            "tmpfs",
            target,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            Some(data.as_c_str()),
        )
        .map_err(std::io::Error::from)
    }

    fn unmount(&self, target: &Path) -> std::io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)
            .map_err(std::io::Error::from)
    }

    fn is_mount_point(&self, target: &Path) -> bool {
        let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return false;
        };
        let t = target.to_string_lossy();
        text.lines()
            .any(|l| l.split_whitespace().nth(4) == Some(t.as_ref()))
    }
}

/// The pod's volumes.
pub fn pod_volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
}

/// Whether a volume's files come from API objects (refreshed).
pub fn is_projected(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
}

fn io_err(name: &str, e: std::io::Error) -> VolumeError {
    VolumeError::Io(name.into(), e.to_string())
}

fn check_host_path(path: &Path, type_: &str) -> Result<(), VolumeError> {
    type Check = fn(&std::fs::FileType) -> bool;
    // (what the path must be, its check, whether a missing one is created).
    let (kind, check, create): (&'static str, Check, Option<bool>) = match type_ {
        "" => return Ok(()),
        "DirectoryOrCreate" => ("directory", |t| t.is_dir(), Some(true)),
        "Directory" => ("directory", |t| t.is_dir(), None),
        "FileOrCreate" => ("file", |t| t.is_file(), Some(false)),
        "File" => ("file", |t| t.is_file(), None),
        "Socket" => ("socket", |t| t.is_socket(), None),
        "CharDevice" => ("character device", |t| t.is_char_device(), None),
        "BlockDevice" => ("block device", |t| t.is_block_device(), None),
        _ => ("known hostPath type", |_| false, None),
    };
    let fail = || VolumeError::HostPathType {
        path: path.display().to_string(),
        kind,
    };
    match (std::fs::metadata(path), create) {
        (Ok(m), _) if check(&m.file_type()) => Ok(()),
        (Ok(_), _) | (Err(_), None) => Err(fail()),
        (Err(_), Some(dir)) => {
            let made = if dir {
                std::fs::create_dir_all(path)
            } else {
                std::fs::File::create(path).map(|_| ())
            };
            made.map_err(|e| io_err("hostPath", e))
        }
    }
}

/// The files a projected-kind volume should hold now.
pub fn payload_of(v: &Volume, pod: &Pod, src: &EnvSources) -> Result<Payload, VolumeError> {
    let mut out = Payload::new();
    if let Some(c) = &v.config_map {
        payload::config_map(
            &mut out,
            &c.name,
            src.config_maps.get(&c.name),
            c.items.as_ref(),
            c.default_mode.unwrap_or(DEFAULT_MODE),
            c.optional == Some(true),
        )?;
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        payload::secret(
            &mut out,
            &name,
            src.secrets.get(&name),
            s.items.as_ref(),
            s.default_mode.unwrap_or(DEFAULT_MODE),
            s.optional == Some(true),
        )?;
    } else if let Some(d) = &v.downward_api {
        payload::downward(
            &mut out,
            pod,
            d.items.as_deref().unwrap_or(&[]),
            d.default_mode.unwrap_or(DEFAULT_MODE),
            src,
        )?;
    } else if let Some(p) = &v.projected {
        payload::projected(&mut out, pod, p, src)?;
    }
    Ok(out)
}

/// Sets up every volume of `pod` under `pod_dir/volumes`; returns each
/// volume's host directory (or file, for hostPath) by name.
pub fn setup(
    pod: &Pod,
    pod_dir: &Path,
    src: &EnvSources,
    mounter: &dyn Mounter,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let mut out = HashMap::new();
    for v in pod_volumes(pod) {
        let dir = pod_dir.join("volumes").join(&v.name);
        if let Some(hp) = &v.host_path {
            let path = PathBuf::from(&hp.path);
            check_host_path(&path, hp.type_.as_deref().unwrap_or(""))?;
            out.insert(v.name.clone(), path);
            continue;
        }
        if let Some(ed) = &v.empty_dir {
            std::fs::create_dir_all(&dir).map_err(|e| io_err(&v.name, e))?;
            if ed.medium.as_deref() == Some("Memory") && !mounter.is_mount_point(&dir) {
                let size = ed
                    .size_limit
                    .as_ref()
                    .and_then(|q| Quantity::parse(&q.0).ok())
                    .map(|q| q.value().max(0) as u64);
                mounter
                    .mount_tmpfs(&dir, size)
                    .map_err(|e| io_err(&v.name, e))?;
            }
            let _ =
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777));
            out.insert(v.name.clone(), dir);
            continue;
        }
        if is_projected(v) {
            let files = payload_of(v, pod, src)?;
            payload::write_atomic(&dir, &files).map_err(|e| io_err(&v.name, e))?;
            out.insert(v.name.clone(), dir);
            continue;
        }
        return Err(VolumeError::Unsupported(v.name.clone()));
    }
    Ok(out)
}

/// Rewrites the projected-kind volumes whose sources changed; returns the
/// names of those rewritten.
pub fn refresh(pod: &Pod, pod_dir: &Path, src: &EnvSources) -> Vec<String> {
    let mut changed = Vec::new();
    for v in pod_volumes(pod) {
        if !is_projected(v) {
            continue;
        }
        let dir = pod_dir.join("volumes").join(&v.name);
        if let Ok(files) = payload_of(v, pod, src) {
            if payload::write_atomic(&dir, &files).unwrap_or(false) {
                changed.push(v.name.clone());
            }
        }
    }
    changed
}

/// Unmounts the pod's memory-backed emptyDirs.
pub fn teardown(pod: &Pod, pod_dir: &Path, mounter: &dyn Mounter) {
    for v in pod_volumes(pod) {
        let dir = pod_dir.join("volumes").join(&v.name);
        if mounter.is_mount_point(&dir) {
            if let Err(e) = mounter.unmount(&dir) {
                tracing::warn!(volume = %v.name, error = %e, "unmount failed");
            }
        }
    }
}

/// The bind mounts of `container`'s `volumeMounts` (subPaths created).
pub fn mounts(
    container: &Container,
    volumes: &HashMap<String, PathBuf>,
    pod: &Pod,
) -> Result<Vec<MountSpec>, VolumeError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let src = volumes
            .get(&m.name)
            .ok_or_else(|| VolumeError::NoVolume(m.name.clone()))?;
        let projected = pod_volumes(pod).any(|v| v.name == m.name && is_projected(v));
        let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let p = src.join(sub);
                if !projected && std::fs::symlink_metadata(&p).is_err() {
                    std::fs::create_dir_all(&p).map_err(|e| io_err(&m.name, e))?;
                }
                p
            }
            None => src.clone(),
        };
        out.push(MountSpec {
            source,
            destination: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false) || projected,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, PodSpec,
        VolumeMount,
    };
    use std::sync::Mutex;

    #[derive(Default)]
    struct FakeMounter(Mutex<Vec<(PathBuf, Option<u64>)>>);

    impl Mounter for FakeMounter {
        fn mount_tmpfs(&self, t: &Path, s: Option<u64>) -> std::io::Result<()> {
            self.0.lock().unwrap().push((t.to_path_buf(), s));
            Ok(())
        }
        fn unmount(&self, _t: &Path) -> std::io::Result<()> {
            Ok(())
        }
        fn is_mount_point(&self, t: &Path) -> bool {
            self.0.lock().unwrap().iter().any(|(p, _)| p == t)
        }
    }

    fn vol(name: &str) -> Volume {
        Volume {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn sets_up_and_mounts_volumes() {
        let dir = tempfile::tempdir().unwrap();
        let host_file = dir.path().join("host.sock");
        let mut mem = vol("cache");
        mem.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                "1Mi".into(),
            )),
        });
        let mut cfg = vol("cfg");
        cfg.config_map = Some(ConfigMapVolumeSource {
            name: "settings".into(),
            ..Default::default()
        });
        let mut hp = vol("hp");
        hp.host_path = Some(HostPathVolumeSource {
            path: host_file.display().to_string(),
            type_: Some("FileOrCreate".into()),
        });
        let pod = Pod {
            spec: Some(PodSpec {
                volumes: Some(vec![mem, cfg, hp]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut src = EnvSources::default();
        src.config_maps.insert(
            "settings".into(),
            ConfigMap {
                data: Some([("mode".to_string(), "fast".to_string())].into()),
                ..Default::default()
            },
        );
        let m = FakeMounter::default();
        let pod_dir = dir.path().join("pod");
        let vols = setup(&pod, &pod_dir, &src, &m).unwrap();
        assert_eq!(
            m.0.lock().unwrap()[0],
            (pod_dir.join("volumes/cache"), Some(1024 * 1024))
        );
        assert_eq!(
            std::fs::read_to_string(vols["cfg"].join("mode")).unwrap(),
            "fast"
        );
        assert!(host_file.is_file(), "FileOrCreate created the file");
        let c = Container {
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "cfg".into(),
                    mount_path: "/etc/app".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "cache".into(),
                    mount_path: "/data".into(),
                    sub_path: Some("x/y".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let ms = mounts(&c, &vols, &pod).unwrap();
        assert!(ms[0].read_only, "configMap volumes are read-only");
        assert_eq!(ms[1].source, pod_dir.join("volumes/cache/x/y"));
        assert!(ms[1].source.is_dir());
        src.config_maps.get_mut("settings").unwrap().data =
            Some([("mode".to_string(), "slow".to_string())].into());
        assert_eq!(refresh(&pod, &pod_dir, &src), vec!["cfg".to_string()]);
        assert_eq!(
            std::fs::read_to_string(vols["cfg"].join("mode")).unwrap(),
            "slow"
        );
        assert!(refresh(&pod, &pod_dir, &src).is_empty());
        // A missing source and a wrong hostPath type are errors.
        src.config_maps.clear();
        assert_eq!(
            setup(&pod, &pod_dir, &src, &m).unwrap_err().to_string(),
            "configmap \"settings\" not found"
        );
        let mut bad = Pod::default();
        let mut hp = vol("hp");
        hp.host_path = Some(HostPathVolumeSource {
            path: host_file.display().to_string(),
            type_: Some("Directory".into()),
        });
        bad.spec = Some(PodSpec {
            volumes: Some(vec![hp]),
            ..Default::default()
        });
        assert!(matches!(
            setup(&bad, &pod_dir, &src, &m),
            Err(VolumeError::HostPathType { .. })
        ));
    }
}
