//! The files of configMap, secret, downwardAPI and projected volumes, as
//! upstream's kubelet computes them (items, modes, optional sources), and
//! the atomic writer that puts them on disk: files live in a timestamped
//! directory, `..data` points at the current one, and each top-level name
//! is a symlink through `..data`, so a container sees an update all at once.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource, Secret,
};

use super::env::{field_value, resource_value, EnvSources};

/// Why a volume's files cannot be made (the pod waits in
/// ContainerCreating with a `FailedMount` event carrying this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKey(String),
    #[error("references non-existent secret key: {0}")]
    SecretKey(String),
    #[error("invalid path {0:?}")]
    Path(String),
    #[error("{0}")]
    Downward(String),
    #[error("projected source {0} is not supported")]
    Unsupported(&'static str),
}

/// One file of a volume: path relative to the volume, contents, mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path.
pub type Payload = BTreeMap<String, FileEntry>;

/// Upstream's default mode of projected files.
pub const DEFAULT_MODE: i32 = 0o644;

fn check_path(p: &str) -> Result<(), PayloadError> {
    let path = Path::new(p);
    let ok = !p.is_empty()
        && !p.starts_with("..")
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(PayloadError::Path(p.into()))
    }
}

fn add(out: &mut Payload, path: &str, data: Vec<u8>, mode: u32) -> Result<(), PayloadError> {
    check_path(path)?;
    out.insert(path.to_string(), FileEntry { data, mode });
    Ok(())
}

/// Keys and values of a source, with items projecting chosen keys.
fn project_keys(
    out: &mut Payload,
    all: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
    missing_key: impl Fn(&str) -> PayloadError,
) -> Result<(), PayloadError> {
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                match all.get(&it.key) {
                    Some(v) => add(
                        out,
                        &it.path,
                        v.clone(),
                        it.mode.unwrap_or(default_mode) as u32,
                    )?,
                    None if optional => {}
                    None => return Err(missing_key(&it.key)),
                }
            }
        }
        _ => {
            for (k, v) in all {
                add(out, &k, v, default_mode as u32)?;
            }
        }
    }
    Ok(())
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut all: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        all.insert(k.clone(), v.0.clone());
    }
    all
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Files of a configMap source (`cm` absent: not found).
pub fn config_map(
    out: &mut Payload,
    name: &str,
    cm: Option<&ConfigMap>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
) -> Result<(), PayloadError> {
    match cm {
        Some(cm) => project_keys(
            out,
            config_map_data(cm),
            items,
            default_mode,
            optional,
            |k| PayloadError::ConfigMapKey(k.into()),
        ),
        None if optional => Ok(()),
        None => Err(PayloadError::ConfigMapNotFound(name.into())),
    }
}

/// Files of a secret source (`s` absent: not found).
pub fn secret(
    out: &mut Payload,
    name: &str,
    s: Option<&Secret>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
) -> Result<(), PayloadError> {
    match s {
        Some(s) => project_keys(out, secret_data(s), items, default_mode, optional, |k| {
            PayloadError::SecretKey(k.into())
        }),
        None if optional => Ok(()),
        None => Err(PayloadError::SecretNotFound(name.into())),
    }
}

/// Files of a downwardAPI source.
pub fn downward(
    out: &mut Payload,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    src: &EnvSources,
) -> Result<(), PayloadError> {
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            field_value(pod, &f.field_path, src)
        } else if let Some(r) = &it.resource_field_ref {
            let spec = pod.spec.as_ref();
            let container = spec
                .and_then(|s| {
                    s.containers
                        .iter()
                        .find(|c| Some(&c.name) == r.container_name.as_ref())
                })
                .or_else(|| spec.and_then(|s| s.containers.first()))
                .cloned()
                .unwrap_or_default();
            let divisor = r.divisor.as_ref().map(|q| q.0.as_str());
            resource_value(&container, &r.resource, divisor, src)
        } else {
            continue;
        }
        .map_err(|e| PayloadError::Downward(e.to_string()))?;
        add(
            out,
            &it.path,
            value.into_bytes(),
            it.mode.unwrap_or(default_mode) as u32,
        )?;
    }
    Ok(())
}

/// Files of a projected volume.
pub fn projected(
    out: &mut Payload,
    pod: &Pod,
    vol: &ProjectedVolumeSource,
    src: &EnvSources,
) -> Result<(), PayloadError> {
    let mode = vol.default_mode.unwrap_or(DEFAULT_MODE);
    for s in vol.sources.iter().flatten() {
        if let Some(c) = &s.config_map {
            config_map(
                out,
                &c.name,
                src.config_maps.get(&c.name),
                c.items.as_ref(),
                mode,
                c.optional == Some(true),
            )?;
        } else if let Some(c) = &s.secret {
            secret(
                out,
                &c.name,
                src.secrets.get(&c.name),
                c.items.as_ref(),
                mode,
                c.optional == Some(true),
            )?;
        } else if let Some(d) = &s.downward_api {
            downward(out, pod, d.items.as_deref().unwrap_or(&[]), mode, src)?;
        } else if s.service_account_token.is_some() {
            return Err(PayloadError::Unsupported("serviceAccountToken"));
        } else if s.cluster_trust_bundle.is_some() {
            return Err(PayloadError::Unsupported("clusterTrustBundle"));
        }
    }
    Ok(())
}

const DATA_LINK: &str = "..data";

/// The payload currently in `dir` (read back through `..data`).
fn current(dir: &Path) -> Option<Payload> {
    let data = dir.join(DATA_LINK);
    let target = std::fs::read_link(&data).ok()?;
    let base = dir.join(target);
    let mut out = Payload::new();
    fn walk(base: &Path, rel: &Path, out: &mut Payload) -> io::Result<()> {
        for e in std::fs::read_dir(base.join(rel))? {
            let e = e?;
            let rel = rel.join(e.file_name());
            let meta = e.metadata()?;
            if meta.is_dir() {
                walk(base, &rel, out)?;
            } else {
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    FileEntry {
                        data: std::fs::read(base.join(&rel))?,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
        Ok(())
    }
    walk(&base, Path::new(""), &mut out).ok()?;
    Some(out)
}

fn top_level(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

/// Writes `payload` into `dir` atomically; returns whether anything
/// changed. Files in `dir` that are not part of a payload are left alone.
pub fn write_atomic(dir: &Path, payload: &Payload) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let old = current(dir);
    if old.as_ref() == Some(payload) {
        return Ok(false);
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let new_dir = dir.join(&stamp);
    std::fs::create_dir(&new_dir)?;
    for (rel, f) in payload {
        let path = new_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
    }
    let old_target = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link)?;
    std::fs::rename(&tmp_link, dir.join(DATA_LINK))?;
    let new_tops: std::collections::BTreeSet<&str> = payload.keys().map(|k| top_level(k)).collect();
    for top in &new_tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(top), &link)?;
        }
    }
    if let Some(old) = &old {
        for top in old.keys().map(|k| top_level(k)) {
            if !new_tops.contains(top) {
                let _ = std::fs::remove_file(dir.join(top));
            }
        }
    }
    if let Some(t) = old_target {
        let _ = std::fs::remove_dir_all(dir.join(t));
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
