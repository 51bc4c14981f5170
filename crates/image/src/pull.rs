//! Pulling images from OCI/Docker registries with `oci-client`.
//!
//! A pull resolves the reference to a manifest (choosing linux and this
//! host's architecture in a multi-arch index), stores manifest and config,
//! downloads the layer blobs that are not yet present (digest-verified) and
//! unpacks each layer once; then it indexes the image. Pulls of one
//! reference are serialised and a waiter reuses the result of the pull it
//! waited for; one layer is downloaded and unpacked by one task at a time.
//!
//! Registries on a loopback address are "insecure" as in Docker: HTTPS
//! without certificate checks is tried first and plain HTTP after it, with
//! no setting needed; others are reached over verified HTTPS unless their
//! [`RegistrySettings`] say otherwise.

use crate::blobs::sha256_digest;
use crate::credentials::Credentials;
use crate::error::ImageError;
use crate::index::{now_secs, Image};
use crate::manifest::{self, Document, ACCEPTED_MANIFESTS};
use crate::reference::Reference;
use crate::store::ImageStore;
use crate::unpack::compression_for_media_type;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use std::collections::HashMap;
use std::sync::Once;
use std::time::Duration;

/// How to reach one registry. A registry with settings is reached exactly
/// as they say (so settings for a loopback registry replace the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Use plain HTTP.
    pub plain_http: bool,
    /// Accept any TLS certificate (self-signed registries).
    pub skip_verify: bool,
    /// Extra CA certificates (PEM) to trust for this registry.
    pub ca_pem: Option<Vec<u8>>,
}

/// Options for one pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Credentials for the image's registry (from an imagePullSecret).
    pub credentials: Option<Credentials>,
    /// Settings by registry host (`host` or `host:port`, as in a reference).
    pub registries: HashMap<String, RegistrySettings>,
}

/// The outcome of a pull.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The image as indexed.
    pub image: Image,
    /// Its size in bytes (config and layer blobs).
    pub size: u64,
    /// Whether the image was already in the store (nothing was fetched but
    /// the manifest).
    pub already_present: bool,
}

/// Why an `oci-client` call failed, classified (kept internal).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Other(String),
}

impl ImageStore {
    /// Pulls `reference` (any form [`Reference::parse`] accepts).
    #[tracing::instrument(skip(self, opts), fields(image = %reference))]
    pub async fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
    ) -> Result<PulledImage, ImageError> {
        let r = Reference::parse(reference).map_err(|source| ImageError::InvalidReference {
            name: reference.to_string(),
            source,
        })?;
        let key = r.to_string();
        let (_guard, waited) = self.inner.ref_locks.lock(&key).await;
        if waited {
            // Someone pulled this very reference while we waited: share it.
            if let Some(image) = self.get(&key) {
                return Ok(PulledImage {
                    size: image.size,
                    image,
                    already_present: true,
                });
            }
        }
        self.pull_locked(&r, opts).await
    }

    async fn pull_locked(
        &self,
        r: &Reference,
        opts: &PullOptions,
    ) -> Result<PulledImage, ImageError> {
        let _gc = self.inner.gc_lock.read().await;
        let name = r.to_string();
        let fail = |f: Failure| to_image_error(f, &name);
        let auth = match &opts.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let oref = oci_ref(r, r.digest());
        let candidates = endpoints(r.registry(), r.is_loopback_registry(), opts);
        let mut found = None;
        for (i, endpoint) in candidates.iter().enumerate() {
            let client = client_for_endpoint(endpoint).map_err(|m| fail(Failure::Other(m)))?;
            match client
                .pull_manifest_raw(&oref, &auth, ACCEPTED_MANIFESTS)
                .await
            {
                Ok(got) => {
                    found = Some((client, got));
                    break;
                }
                Err(OciDistributionError::RequestError(e))
                    if e.is_connect() && i + 1 < candidates.len() =>
                {
                    tracing::debug!(error = %e, "registry endpoint unreachable, trying the next");
                }
                Err(e) => return Err(fail(classify(e))),
            }
        }
        let (client, (bytes, digest)) =
            found.ok_or_else(|| fail(Failure::Other("no registry endpoint".into())))?;
        check_digest(&bytes, &digest)?;
        let mut blobs_to_save = vec![(digest.clone(), bytes.to_vec())];
        let pulled_digest = digest.clone();
        let (manifest, manifest_digest) = match manifest::parse_document(&bytes)? {
            Document::Image(m) => (m, digest),
            Document::Index(index) => {
                let (arch, variant) = manifest::host_platform();
                let entry = manifest::select_platform(&index, arch, variant).ok_or_else(|| {
                    ImageError::NoMatchingPlatform {
                        reference: name.clone(),
                        arch: arch.to_string(),
                    }
                })?;
                let pref = oci_ref(r, Some(&entry.digest));
                let (bytes, digest) = client
                    .pull_manifest_raw(&pref, &auth, ACCEPTED_MANIFESTS)
                    .await
                    .map_err(|e| fail(classify(e)))?;
                check_digest(&bytes, &digest)?;
                if digest != entry.digest {
                    return Err(ImageError::DigestMismatch {
                        expected: entry.digest.clone(),
                        actual: digest,
                    });
                }
                blobs_to_save.push((digest.clone(), bytes.to_vec()));
                match manifest::parse_document(&bytes)? {
                    Document::Image(m) => (m, digest),
                    Document::Index(_) => {
                        return Err(ImageError::Invalid("nested image index".into()));
                    }
                }
            }
        };
        for l in &manifest.layers {
            compression_for_media_type(&l.media_type)?;
        }
        let id = manifest.config.digest.clone();
        let already_present = self.get(&id).is_some();
        // Config: small, fetched into memory and verified.
        let config_bytes = if self.blobs().contains(&id) {
            self.blobs().read(&id)?
        } else {
            let mut buf = Vec::new();
            client
                .pull_blob(&oref, id.as_str(), &mut buf)
                .await
                .map_err(|e| fail(classify(e)))?;
            check_digest(&buf, &id)?;
            blobs_to_save.push((id.clone(), buf.clone()));
            buf
        };
        let config = manifest::parse_config(&config_bytes)?;
        let store = self.clone();
        spawn_blocking(move || {
            for (d, b) in &blobs_to_save {
                store.blobs().write_bytes(d, b)?;
            }
            Ok(())
        })
        .await?;
        let fetches = manifest
            .layers
            .iter()
            .map(|l| self.ensure_layer(&client, &oref, &l.digest, &name));
        futures::future::try_join_all(fetches).await?;
        let layers = manifest.index_layers();
        let size = manifest.config.size + layers.iter().map(|l| l.size).sum::<u64>();
        let image = Image {
            id,
            manifest_digest,
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            size,
            layers,
            config,
            last_used: now_secs(),
            layer_dirs: Vec::new(),
        };
        let tag = r.tagged();
        let repo_digest = r.with_digest(&pulled_digest);
        let store = self.clone();
        let image =
            spawn_blocking(move || store.index_image(image, tag.as_deref(), Some(&repo_digest)))
                .await?;
        tracing::info!(id = %image.id, size, already_present, "image pulled");
        Ok(PulledImage {
            image,
            size,
            already_present,
        })
    }

    /// Downloads (if absent) and unpacks (if not yet) one layer.
    async fn ensure_layer(
        &self,
        client: &oci_client::Client,
        oref: &oci_client::Reference,
        digest: &str,
        name: &str,
    ) -> Result<(), ImageError> {
        let (_guard, _) = self.inner.layer_locks.lock(digest).await;
        if self.layer_complete(digest) {
            return Ok(());
        }
        if !self.blobs().contains(digest) {
            let mut w = self.blobs().start_download(digest).await?;
            if let Err(e) = client.pull_blob(oref, digest, &mut w).await {
                self.blobs().abort_download(w);
                return Err(to_image_error(classify(e), name));
            }
            self.blobs().commit_download(digest, w).await?;
        }
        let store = self.clone();
        let digest = digest.to_string();
        spawn_blocking(move || store.unpack_blob(&digest)).await
    }
}

pub(crate) async fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::Invalid(format!("blocking task failed: {e}")))?
}

fn check_digest(bytes: &[u8], digest: &str) -> Result<(), ImageError> {
    let actual = sha256_digest(bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(())
}

fn oci_ref(r: &Reference, digest: Option<&str>) -> oci_client::Reference {
    let (reg, repo) = (r.registry().to_string(), r.repository().to_string());
    match (digest, r.tag()) {
        (Some(d), _) => oci_client::Reference::with_digest(reg, repo, d.to_string()),
        (None, Some(t)) => oci_client::Reference::with_tag(reg, repo, t.to_string()),
        (None, None) => oci_client::Reference::with_tag(reg, repo, "latest".into()),
    }
}

/// Installs rustls' ring provider as the process default (once); reqwest
/// is built without a provider of its own.
pub(crate) fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One way to reach a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) plain_http: bool,
    pub(crate) skip_verify: bool,
    pub(crate) ca_pem: Option<Vec<u8>>,
}

/// The ways to try, in order. Explicit settings win; a loopback registry
/// without settings is "insecure" as in Docker: HTTPS without certificate
/// checks, then plain HTTP.
pub(crate) fn endpoints(registry: &str, loopback: bool, opts: &PullOptions) -> Vec<Endpoint> {
    match opts.registries.get(registry) {
        Some(s) => vec![Endpoint {
            plain_http: s.plain_http,
            skip_verify: s.skip_verify,
            ca_pem: s.ca_pem.clone(),
        }],
        None if loopback => vec![
            Endpoint {
                plain_http: false,
                skip_verify: true,
                ca_pem: None,
            },
            Endpoint {
                plain_http: true,
                skip_verify: false,
                ca_pem: None,
            },
        ],
        None => vec![Endpoint {
            plain_http: false,
            skip_verify: false,
            ca_pem: None,
        }],
    }
}

/// A client for one endpoint.
pub(crate) fn client_for_endpoint(e: &Endpoint) -> Result<oci_client::Client, String> {
    ensure_crypto_provider();
    let config = ClientConfig {
        protocol: if e.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: e.skip_verify,
        extra_root_certificates: e
            .ca_pem
            .iter()
            .map(|data| Certificate {
                encoding: CertificateEncoding::Pem,
                data: data.clone(),
            })
            .collect(),
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(120)),
        platform_resolver: None,
        ..Default::default()
    };
    oci_client::Client::try_from(config).map_err(|e| format!("creating registry client: {e}"))
}

fn to_image_error(f: Failure, reference: &str) -> ImageError {
    let reference = reference.to_string();
    match f {
        Failure::NotFound => ImageError::NotFound { reference },
        Failure::Unauthorized(message) => ImageError::Unauthorized { reference, message },
        Failure::Other(message) => ImageError::Registry { reference, message },
    }
}

fn classify(e: OciDistributionError) -> Failure {
    use OciDistributionError as E;
    match &e {
        E::ImageManifestNotFoundError(_) => Failure::NotFound,
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => {
            Failure::Unauthorized(e.to_string())
        }
        E::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                Failure::NotFound
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                Failure::Unauthorized(envelope.to_string())
            } else {
                Failure::Other(e.to_string())
            }
        }
        E::ServerError { code: 404, .. } => Failure::NotFound,
        E::ServerError {
            code: 401 | 403,
            message,
            ..
        } => Failure::Unauthorized(message.clone()),
        E::RequestError(re) => {
            // Include the source chain: "error sending request" alone says little.
            let mut msg = re.to_string();
            let mut src = std::error::Error::source(re);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            Failure::Other(msg)
        }
        _ => Failure::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "m".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "u".into(),
        }
    }

    #[test]
    fn endpoint_choice() {
        let none = PullOptions::default();
        let e = endpoints("docker.io", false, &none);
        assert_eq!(e.len(), 1);
        assert!(!e[0].plain_http && !e[0].skip_verify);
        let e = endpoints("127.0.0.1:5000", true, &none);
        assert_eq!(e.len(), 2);
        assert!(!e[0].plain_http && e[0].skip_verify && e[1].plain_http);
        let mut opts = PullOptions::default();
        opts.registries.insert(
            "127.0.0.1:5000".into(),
            RegistrySettings {
                ca_pem: Some(b"pem".to_vec()),
                ..Default::default()
            },
        );
        let e = endpoints("127.0.0.1:5000", true, &opts);
        assert_eq!(e.len(), 1);
        assert!(!e[0].skip_verify && e[0].ca_pem.is_some());
    }

    #[test]
    fn error_classification() {
        assert!(matches!(
            classify(envelope(OciErrorCode::ManifestUnknown)),
            Failure::NotFound
        ));
        assert!(matches!(
            classify(envelope(OciErrorCode::NameUnknown)),
            Failure::NotFound
        ));
        assert!(matches!(
            classify(envelope(OciErrorCode::Denied)),
            Failure::Unauthorized(_)
        ));
        assert!(matches!(
            classify(OciDistributionError::UnauthorizedError { url: "u".into() }),
            Failure::Unauthorized(_)
        ));
        assert!(matches!(
            classify(OciDistributionError::ServerError {
                code: 500,
                url: "u".into(),
                message: "boom".into()
            }),
            Failure::Other(_)
        ));
        let e = to_image_error(Failure::NotFound, "docker.io/library/x:latest");
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "failed to resolve reference \"docker.io/library/x:latest\": docker.io/library/x:latest: not found"
        );
    }
}
