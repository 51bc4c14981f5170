//! A real registry for tests: Debian's `docker-registry` (distribution 2.8)
//! serving a temporary directory on a free loopback port, optionally behind
//! htpasswd basic auth (bcrypt entries made with the `bcrypt` crate) and
//! optionally over TLS (a throwaway CA and a `localhost`/`127.0.0.1`
//! certificate made with `rcgen`). The process is killed when the handle
//! drops. Pushing uses `oci-client`.

use super::build::{BuiltImage, BuiltIndex};
use crate::manifest::{OCI_INDEX, OCI_MANIFEST};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The registry binary installed by Debian's `docker-registry` package.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Why the test registry could not start or take a push.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Spawning, files, sockets.
    #[error("test registry: {0}")]
    Io(#[from] std::io::Error),
    /// The registry never listened.
    #[error("test registry did not start: {0}")]
    Start(String),
    /// A push failed.
    #[error("push to test registry: {0}")]
    Push(String),
}

/// A running `docker-registry`.
pub struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    credentials: Option<(String, String)>,
    ca_pem: Option<String>,
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TestRegistry {
    /// Starts an open registry.
    pub fn start() -> Result<Self, RegistryError> {
        Self::start_inner(None, false)
    }

    /// Starts a registry that requires `username`/`password`.
    pub fn start_with_auth(username: &str, password: &str) -> Result<Self, RegistryError> {
        Self::start_inner(Some((username.to_string(), password.to_string())), false)
    }

    /// Starts an open registry serving HTTPS with a certificate for
    /// `localhost` and `127.0.0.1` signed by a throwaway CA
    /// ([`TestRegistry::ca_pem`]).
    pub fn start_tls() -> Result<Self, RegistryError> {
        Self::start_inner(None, true)
    }

    fn start_inner(
        credentials: Option<(String, String)>,
        tls: bool,
    ) -> Result<Self, RegistryError> {
        let mut last = String::new();
        // The free port may be taken between probing and binding: retry.
        for _ in 0..5 {
            match Self::try_start(credentials.clone(), tls) {
                Ok(r) => return Ok(r),
                Err(RegistryError::Start(e)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Start(last))
    }

    fn try_start(credentials: Option<(String, String)>, tls: bool) -> Result<Self, RegistryError> {
        let dir = tempfile::Builder::new()
            .prefix("rkube-registry-")
            .tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  secret: rkube-test\n",
            storage.display()
        );
        let mut auth_section = String::new();
        if let Some((user, pass)) = &credentials {
            let hash = bcrypt::hash(pass, 4).map_err(|e| RegistryError::Start(e.to_string()))?;
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
            auth_section = format!(
                "auth:\n  htpasswd:\n    realm: rkube-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        let ca_pem = if tls {
            let (ca, cert, key) =
                make_certs().map_err(|e| RegistryError::Start(format!("certificates: {e}")))?;
            let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
            std::fs::write(&cert_path, cert)?;
            std::fs::write(&key_path, key)?;
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert_path.display(),
                key_path.display()
            ));
            Some(ca)
        } else {
            None
        };
        config.push_str(&auth_section);
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let mut child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        for _ in 0..200 {
            if let Some(status) = child.try_wait()? {
                let log =
                    std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
                return Err(RegistryError::Start(format!("exited with {status}: {log}")));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(TestRegistry {
                    child,
                    dir,
                    addr,
                    credentials,
                    ca_pem,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(RegistryError::Start("not listening after 10 s".into()))
    }

    /// `127.0.0.1:<port>`, the registry part of references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `127.0.0.1:<port>/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// The PEM of the CA that signed a TLS registry's certificate.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref().map(str::as_bytes)
    }

    /// The registry's storage directory.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn auth(&self) -> RegistryAuth {
        match &self.credentials {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    async fn client(
        &self,
        repo: &str,
    ) -> Result<(oci_client::Client, oci_client::Reference), RegistryError> {
        crate::pull::ensure_crypto_provider();
        let tls = self.ca_pem.is_some();
        let client = oci_client::Client::try_from(ClientConfig {
            protocol: if tls {
                ClientProtocol::Https
            } else {
                ClientProtocol::Http
            },
            accept_invalid_certificates: tls,
            ..Default::default()
        })
        .map_err(|e| RegistryError::Push(e.to_string()))?;
        let r = oci_client::Reference::with_tag(self.host(), repo.to_string(), "latest".into());
        client
            .auth(&r, &self.auth(), RegistryOperation::Push)
            .await
            .map_err(|e| RegistryError::Push(e.to_string()))?;
        Ok((client, r))
    }

    async fn push_blobs(
        client: &oci_client::Client,
        r: &oci_client::Reference,
        image: &BuiltImage,
    ) -> Result<(), RegistryError> {
        let err = |e: oci_client::errors::OciDistributionError| RegistryError::Push(e.to_string());
        for l in &image.layers {
            if !client.blob_exists(r, &l.digest).await.map_err(err)? {
                client
                    .push_blob(r, l.tar_gz.clone(), &l.digest)
                    .await
                    .map_err(err)?;
            }
        }
        client
            .push_blob(r, image.config.clone(), &image.config_digest)
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Pushes `image` as `repo:tag`; returns the manifest digest.
    pub async fn push(
        &self,
        repo: &str,
        tag: &str,
        image: &BuiltImage,
    ) -> Result<String, RegistryError> {
        let (client, r) = self.client(repo).await?;
        Self::push_blobs(&client, &r, image).await?;
        let tagged =
            oci_client::Reference::with_tag(self.host(), repo.to_string(), tag.to_string());
        client
            .push_manifest_raw(
                &tagged,
                image.manifest.clone(),
                OCI_MANIFEST.parse().expect("header"),
            )
            .await
            .map_err(|e| RegistryError::Push(e.to_string()))?;
        Ok(image.manifest_digest.clone())
    }

    /// Pushes each image by digest and then `index` as `repo:tag`; returns
    /// the index digest.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        index: &BuiltIndex,
        images: &[&BuiltImage],
    ) -> Result<String, RegistryError> {
        let (client, r) = self.client(repo).await?;
        let err = |e: oci_client::errors::OciDistributionError| RegistryError::Push(e.to_string());
        for image in images {
            Self::push_blobs(&client, &r, image).await?;
            let by_digest = oci_client::Reference::with_digest(
                self.host(),
                repo.to_string(),
                image.manifest_digest.clone(),
            );
            client
                .push_manifest_raw(
                    &by_digest,
                    image.manifest.clone(),
                    OCI_MANIFEST.parse().expect("header"),
                )
                .await
                .map_err(err)?;
        }
        let tagged =
            oci_client::Reference::with_tag(self.host(), repo.to_string(), tag.to_string());
        client
            .push_manifest_raw(
                &tagged,
                index.bytes.clone(),
                OCI_INDEX.parse().expect("header"),
            )
            .await
            .map_err(err)?;
        Ok(index.digest.clone())
    }
}

/// `(ca_pem, cert_pem, key_pem)` for `localhost` and `127.0.0.1`.
fn make_certs() -> Result<(String, String, String), rcgen::Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rkube test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
