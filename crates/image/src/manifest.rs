//! The OCI (and Docker v2) JSON documents the store reads: image manifests,
//! indexes (manifest lists) with platform selection, and the image config
//! whose `Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User` and `ExposedPorts`
//! a container starts from.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Every manifest media type a pull accepts.
pub const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];
/// The annotation naming an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("malformed {what}: {source}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A media type or schema the store does not handle.
    #[error("unsupported manifest: {0}")]
    Unsupported(String),
}

impl From<ManifestError> for crate::ImageError {
    fn from(e: ManifestError) -> Self {
        crate::ImageError::Invalid(e.to_string())
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A platform in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type, if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
}

impl Manifest {
    /// The image's layers as the store records them.
    pub fn index_layers(&self) -> Vec<crate::index::Layer> {
        self.layers
            .iter()
            .map(|l| crate::index::Layer {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
            })
            .collect()
    }
}

/// An image index or manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type, if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The entries.
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum Document {
    /// A single-platform image manifest.
    Image(Manifest),
    /// A multi-platform index.
    Index(Index),
}

/// Parses a manifest or index, telling them apart by media type or shape.
pub fn parse_document(bytes: &[u8]) -> Result<Document, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let json = |what, source| ManifestError::Json { what, source };
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| json("manifest", e))?;
    if probe.schema_version != Some(2) {
        return Err(ManifestError::Unsupported(format!(
            "schema version {:?}",
            probe.schema_version
        )));
    }
    let is_index = match probe.media_type.as_deref() {
        Some(OCI_INDEX) | Some(DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => false,
        Some(other) => return Err(ManifestError::Unsupported(other.to_string())),
        None => probe.manifests.is_some(),
    };
    if is_index {
        Ok(Document::Index(
            serde_json::from_slice(bytes).map_err(|e| json("image index", e))?,
        ))
    } else {
        Ok(Document::Image(
            serde_json::from_slice(bytes).map_err(|e| json("image manifest", e))?,
        ))
    }
}

/// This host's architecture in OCI spelling, with its variant if relevant.
pub fn host_platform() -> (&'static str, Option<&'static str>) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" => ("ppc64le", None),
        "riscv64" => ("riscv64", None),
        "s390x" => ("s390x", None),
        other => (other, None),
    }
}

/// The entry of `index` for linux on `arch` (an exact variant match is
/// preferred, then any variant). Attestation manifests (platform
/// `unknown/unknown`) never match.
pub fn select_platform<'a>(
    index: &'a Index,
    arch: &str,
    variant: Option<&str>,
) -> Option<&'a Descriptor> {
    let candidates = index.manifests.iter().filter(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    });
    let mut first = None;
    for d in candidates {
        let v = d.platform.as_ref().and_then(|p| p.variant.as_deref());
        if v == variant || v.is_none() {
            return Some(d);
        }
        first.get_or_insert(d);
    }
    first
}

/// The parts of an image config a container runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// `Entrypoint` (empty when unset).
    pub entrypoint: Vec<String>,
    /// `Cmd` (empty when unset).
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir` (empty when unset).
    pub working_dir: String,
    /// `User` (`uid`, `uid:gid`, a name, or empty).
    pub user: String,
    /// `ExposedPorts` keys such as `80/tcp`.
    pub exposed_ports: Vec<String>,
    /// `StopSignal`, if set.
    pub stop_signal: Option<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// The image's OS.
    pub os: String,
    /// The image's architecture.
    pub architecture: String,
}

/// Parses an image config blob.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct Inner {
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        env: Option<Vec<String>>,
        working_dir: Option<String>,
        user: Option<String>,
        exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
        stop_signal: Option<String>,
        labels: Option<BTreeMap<String, String>>,
    }
    #[derive(Deserialize)]
    struct Outer {
        #[serde(default)]
        config: Option<Inner>,
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
    }
    let outer: Outer = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        what: "image config",
        source,
    })?;
    let c = outer.config.unwrap_or_default();
    Ok(ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
        stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
        labels: c.labels.unwrap_or_default(),
        os: outer.os,
        architecture: outer.architecture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: Option<&str>, d: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: d.into(),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
            annotations: None,
        }
    }

    #[test]
    fn platform_selection() {
        let idx = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![
                entry("arm", Some("v6"), "a"),
                entry("arm", Some("v7"), "b"),
                entry("amd64", None, "c"),
                entry("arm64", Some("v8"), "d"),
            ],
        };
        assert_eq!(select_platform(&idx, "amd64", None).unwrap().digest, "c");
        assert_eq!(
            select_platform(&idx, "arm", Some("v7")).unwrap().digest,
            "b"
        );
        assert_eq!(
            select_platform(&idx, "arm64", Some("v8")).unwrap().digest,
            "d"
        );
        assert!(select_platform(&idx, "s390x", None).is_none());
    }

    #[test]
    fn documents_and_config() {
        let m =
            br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"d","size":1},"layers":[]}"#;
        assert!(matches!(parse_document(m).unwrap(), Document::Image(_)));
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse_document(i).unwrap(), Document::Index(_)));
        assert!(parse_document(br#"{"schemaVersion":1}"#).is_err());
        let c = br#"{"os":"linux","architecture":"amd64","config":{"Entrypoint":["/bin/sh"],
            "Cmd":null,"Env":["A=b"],"WorkingDir":"/w","User":"1000:1000",
            "ExposedPorts":{"80/tcp":{}}}}"#;
        let cfg = parse_config(c).unwrap();
        assert_eq!(cfg.entrypoint, vec!["/bin/sh"]);
        assert!(cfg.cmd.is_empty());
        assert_eq!(cfg.exposed_ports, vec!["80/tcp"]);
        assert_eq!(cfg.user, "1000:1000");
        assert_eq!(parse_config(b"{}").unwrap(), ImageConfig::default());
    }
}
