//! Small OCI images built in memory, as pure functions: layers are
//! deterministic tar.gz bytes (fixed mtimes and owners), so building the same
//! layer twice gives the same digest and images can share layers.
//!
//! [`busybox_layer`] makes a base layer from Debian's `busybox-static`
//! (`/usr/bin/busybox` plus applet symlinks, `/etc/passwd`, `/tmp`, ...).

use crate::blobs::sha256_digest;
use crate::manifest::{OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, REF_NAME_ANNOTATION};
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::Path;
use std::sync::OnceLock;

/// Where Debian's `busybox-static` installs the binary.
pub const BUSYBOX_PATH: &str = "/usr/bin/busybox";
/// Applets linked in `/bin` of the busybox layer.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ash",
    "echo",
    "cat",
    "ls",
    "sleep",
    "tar",
    "wget",
    "nc",
    "httpd",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "touch",
    "true",
    "false",
    "env",
    "id",
    "ps",
    "kill",
    "grep",
    "head",
    "tail",
    "test",
    "printf",
    "pwd",
    "hostname",
    "date",
    "ip",
    "ifconfig",
    "mount",
    "umount",
    "chmod",
    "chown",
    "ln",
    "stat",
    "sed",
    "awk",
    "wc",
    "sort",
    "uname",
    "whoami",
    "dd",
    "df",
    "du",
    "find",
    "nslookup",
    "ping",
    "seq",
    "sync",
    "tee",
    "timeout",
    "trap",
    "vi",
    "xargs",
    "yes",
    "top",
    "free",
    "stty",
    "base64",
    "md5sum",
    "sha256sum",
    "readlink",
    "dirname",
    "basename",
    "expr",
];
const MTIME: u64 = 1_700_000_000;

/// Why a test image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading the busybox binary or writing an archive failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
        owner: (u64, u64),
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    Node {
        path: String,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    },
}

/// A layer under construction.
#[derive(Default)]
pub struct LayerBuilder {
    entries: Vec<Entry>,
}

/// A finished layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    /// The gzip-compressed tar.
    pub tar_gz: Vec<u8>,
    /// Digest of `tar_gz`.
    pub digest: String,
    /// Digest of the uncompressed tar (the config's diff ID).
    pub diff_id: String,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A regular file (parent directories are implied).
    pub fn file(self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    /// A regular file owned by `uid`:`gid`.
    pub fn file_owned(
        mut self,
        path: &str,
        data: impl Into<Vec<u8>>,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Self {
        self.entries.push(Entry::File {
            path: path.into(),
            data: data.into(),
            mode,
            owner: (uid, gid),
        });
        self
    }

    /// A directory.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir {
            path: path.into(),
            mode,
        });
        self
    }

    /// A symbolic link.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// A hard link to `target` (a path in the same layer).
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Hardlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// A character device node.
    pub fn char_device(mut self, path: &str, major: u32, minor: u32, mode: u32) -> Self {
        self.entries.push(Entry::Node {
            path: path.into(),
            kind: tar::EntryType::Char,
            major,
            minor,
            mode,
        });
        self
    }

    /// A named pipe.
    pub fn fifo(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Node {
            path: path.into(),
            kind: tar::EntryType::Fifo,
            major: 0,
            minor: 0,
            mode,
        });
        self
    }

    /// An OCI whiteout deleting `path` of a lower layer.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, Vec::new(), 0o644)
    }

    /// Marks directory `dir` opaque: lower layers' contents are hidden.
    pub fn opaque(self, dir: &str) -> Self {
        self.dir(dir, 0o755)
            .file(&format!("{dir}/.wh..wh..opq"), Vec::new(), 0o644)
    }

    /// The tar (uncompressed).
    pub fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            let mut h = tar::Header::new_ustar();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(MTIME);
            let res = match e {
                Entry::File {
                    path,
                    data,
                    mode,
                    owner,
                } => {
                    h.set_uid(owner.0);
                    h.set_gid(owner.1);
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, &data[..])
                }
                Entry::Dir { path, mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(
                        &mut h,
                        format!("{}/", path.trim_end_matches('/')),
                        io::empty(),
                    )
                }
                Entry::Symlink { path, target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                }
                Entry::Hardlink { path, target } => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_mode(0o644);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                }
                Entry::Node {
                    path,
                    kind,
                    major,
                    minor,
                    mode,
                } => {
                    h.set_entry_type(*kind);
                    h.set_mode(*mode);
                    h.set_size(0);
                    h.set_device_major(*major).expect("ustar header");
                    h.set_device_minor(*minor).expect("ustar header");
                    b.append_data(&mut h, path, io::empty())
                }
            };
            res.expect("writing a tar into memory cannot fail");
        }
        b.into_inner().expect("in-memory tar")
    }

    /// Compresses the layer.
    pub fn build(&self) -> BuiltLayer {
        let tar = self.tar();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("in-memory gzip");
        let tar_gz = gz.finish().expect("in-memory gzip");
        BuiltLayer {
            digest: sha256_digest(&tar_gz),
            diff_id: sha256_digest(&tar),
            tar_gz,
        }
    }
}

/// The busybox base layer (built once per process).
pub fn busybox_layer() -> Result<BuiltLayer, BuildError> {
    static LAYER: OnceLock<BuiltLayer> = OnceLock::new();
    if let Some(l) = LAYER.get() {
        return Ok(l.clone());
    }
    let busybox = std::fs::read(BUSYBOX_PATH)?;
    let mut b = LayerBuilder::new();
    for (d, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("var", 0o755),
    ] {
        b = b.dir(d, mode);
    }
    b = b.file("bin/busybox", busybox, 0o755);
    for applet in BUSYBOX_APPLETS {
        b = b.symlink(&format!("bin/{applet}"), "busybox");
    }
    b = b
        .file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        )
        .file("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644);
    Ok(LAYER.get_or_init(|| b.build()).clone())
}

/// An image under construction.
#[derive(Default)]
pub struct ImageBuilder {
    layers: Vec<BuiltLayer>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    working_dir: Option<String>,
    user: Option<String>,
    exposed_ports: Vec<String>,
    architecture: Option<String>,
}

/// A finished image: its blobs and JSON documents.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Layers, bottom first.
    pub layers: Vec<BuiltLayer>,
    /// The config JSON.
    pub config: Vec<u8>,
    /// Its digest (the image ID).
    pub config_digest: String,
    /// The OCI manifest JSON.
    pub manifest: Vec<u8>,
    /// Its digest.
    pub manifest_digest: String,
    /// The architecture in the config.
    pub architecture: String,
}

/// A multi-arch index over built images.
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    /// The OCI index JSON.
    pub bytes: Vec<u8>,
    /// Its digest.
    pub digest: String,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl ImageBuilder {
    /// An image with no layers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An image on the busybox base layer.
    pub fn busybox() -> Result<Self, BuildError> {
        Ok(Self::new().built_layer(busybox_layer()?))
    }

    /// Adds a layer on top.
    pub fn layer(self, layer: LayerBuilder) -> Self {
        self.built_layer(layer.build())
    }

    /// Adds an already built layer on top.
    pub fn built_layer(mut self, layer: BuiltLayer) -> Self {
        self.layers.push(layer);
        self
    }

    /// Sets `Entrypoint`.
    pub fn entrypoint(mut self, v: &[&str]) -> Self {
        self.entrypoint = Some(strings(v));
        self
    }

    /// Sets `Cmd`.
    pub fn cmd(mut self, v: &[&str]) -> Self {
        self.cmd = Some(strings(v));
        self
    }

    /// Adds an `Env` entry (`NAME=value`).
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.into());
        self
    }

    /// Sets `WorkingDir`.
    pub fn working_dir(mut self, d: &str) -> Self {
        self.working_dir = Some(d.into());
        self
    }

    /// Sets `User`.
    pub fn user(mut self, u: &str) -> Self {
        self.user = Some(u.into());
        self
    }

    /// Adds an exposed port (`80/tcp`).
    pub fn expose(mut self, port: &str) -> Self {
        self.exposed_ports.push(port.into());
        self
    }

    /// Sets the config's architecture (default: this host's).
    pub fn architecture(mut self, arch: &str) -> Self {
        self.architecture = Some(arch.into());
        self
    }

    /// Builds config and manifest.
    pub fn build(self) -> BuiltImage {
        let arch = self
            .architecture
            .unwrap_or_else(|| crate::manifest::host_platform().0.to_string());
        let mut env =
            vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
        env.extend(self.env);
        let mut cfg = serde_json::Map::new();
        cfg.insert("Env".into(), json!(env));
        if let Some(e) = self.entrypoint {
            cfg.insert("Entrypoint".into(), json!(e));
        }
        if let Some(c) = self.cmd {
            cfg.insert("Cmd".into(), json!(c));
        }
        if let Some(w) = self.working_dir {
            cfg.insert("WorkingDir".into(), json!(w));
        }
        if let Some(u) = self.user {
            cfg.insert("User".into(), json!(u));
        }
        if !self.exposed_ports.is_empty() {
            let ports: serde_json::Map<String, Value> = self
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            cfg.insert("ExposedPorts".into(), Value::Object(ports));
        }
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": self.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
        });
        let config = serde_json::to_vec(&config).expect("json");
        let config_digest = sha256_digest(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": self.layers.iter().map(|l| json!({
                "mediaType": OCI_LAYER_GZIP, "digest": l.digest, "size": l.tar_gz.len()
            })).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).expect("json");
        BuiltImage {
            manifest_digest: sha256_digest(&manifest),
            layers: self.layers,
            config,
            config_digest,
            manifest,
            architecture: arch,
        }
    }
}

impl BuiltImage {
    /// Size as the store reports it: config plus compressed layers.
    pub fn size(&self) -> u64 {
        (self.config.len() + self.layers.iter().map(|l| l.tar_gz.len()).sum::<usize>()) as u64
    }
}

/// An OCI index over `images`, each entry labelled linux/its architecture.
pub fn build_index(images: &[&BuiltImage]) -> BuiltIndex {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": images.iter().map(|i| json!({
            "mediaType": OCI_MANIFEST,
            "digest": i.manifest_digest,
            "size": i.manifest.len(),
            "platform": {"architecture": i.architecture, "os": "linux"},
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&index).expect("json");
    BuiltIndex {
        digest: sha256_digest(&bytes),
        bytes,
    }
}

/// Writes an OCI image-layout tar holding `images`, each named in
/// `index.json` by the `org.opencontainers.image.ref.name` annotation.
pub fn write_oci_archive(path: &Path, images: &[(&str, &BuiltImage)]) -> Result<(), BuildError> {
    let file = std::fs::File::create(path)?;
    let mut b = tar::Builder::new(file);
    let mut add = |name: &str, data: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data)
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": images.iter().map(|(name, i)| json!({
            "mediaType": OCI_MANIFEST,
            "digest": i.manifest_digest,
            "size": i.manifest.len(),
            "annotations": {REF_NAME_ANNOTATION: name},
        })).collect::<Vec<_>>(),
    });
    add("index.json", &serde_json::to_vec(&index).expect("json"))?;
    let mut seen = std::collections::HashSet::new();
    for (_, img) in images {
        let blobs = [
            (&img.manifest_digest, &img.manifest),
            (&img.config_digest, &img.config),
        ]
        .into_iter()
        .chain(img.layers.iter().map(|l| (&l.digest, &l.tar_gz)));
        for (digest, data) in blobs {
            if seen.insert(digest.clone()) {
                let hex = digest.trim_start_matches("sha256:");
                add(&format!("blobs/sha256/{hex}"), data)?;
            }
        }
    }
    b.into_inner()?.sync_all()?;
    Ok(())
}
