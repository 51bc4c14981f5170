//! The cluster's PKI: a CA created on first start and reused afterwards, a
//! serving certificate for the API server, an admin client certificate, and
//! the admin kubeconfig that points `kubectl` at the server.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no PEM certificate or key found")]
    Pem(PathBuf),
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// PEM material of the cluster.
pub struct Pki {
    pub ca_cert_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    /// The API server's client identity towards node agents
    /// (`kube-apiserver-kubelet-client`, group `system:masters`).
    pub kubelet_client_cert_pem: String,
    pub kubelet_client_key_pem: String,
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file atomically (temp file + rename), with mode 0600 for keys.
fn write_private(path: &Path, contents: &str) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn ca_params() -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, "rkube-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(p)
}

/// Loads the PKI from `dir/pki`, creating whatever is missing. The serving
/// certificate covers `localhost`, 127.0.0.1, ::1, the host name and
/// `extra_ips`/`extra_names`.
pub fn ensure_pki(
    dir: &Path,
    extra_ips: &[IpAddr],
    extra_names: &[String],
) -> Result<Pki, CertError> {
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).map_err(|source| CertError::Io {
        path: pki.clone(),
        source,
    })?;
    let ca_crt = pki.join("ca.crt");
    let ca_key = pki.join("ca.key");
    let (ca_cert_pem, ca_key_pem) = if ca_crt.exists() && ca_key.exists() {
        (read(&ca_crt)?, read(&ca_key)?)
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        let (c, k) = (cert.pem(), key.serialize_pem());
        write_private(&ca_key, &k)?;
        write_private(&ca_crt, &c)?;
        (c, k)
    };
    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key)?;

    let (serving_cert_pem, serving_key_pem) = load_or_issue(&pki, "serving", |key| {
        let mut names: Vec<String> = vec![
            "localhost".into(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
        ];
        if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
            let h = h.trim();
            if !h.is_empty() {
                names.push(h.to_string());
            }
        }
        names.extend(extra_names.iter().cloned());
        let mut p = CertificateParams::new(names)?;
        for ip in ["127.0.0.1".parse::<IpAddr>(), "::1".parse::<IpAddr>()]
            .into_iter()
            .flatten()
            .chain(extra_ips.iter().copied())
        {
            p.subject_alt_names.push(SanType::IpAddress(ip));
        }
        p.distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.not_after = rcgen::date_time_ymd(2036, 1, 1);
        Ok(p.signed_by(key, &issuer)?.pem())
    })?;
    let (admin_cert_pem, admin_key_pem) = load_or_issue(&pki, "admin", |key| {
        Ok(client_cert_params("system:admin", &["system:masters"])?
            .signed_by(key, &issuer)?
            .pem())
    })?;
    let (kubelet_client_cert_pem, kubelet_client_key_pem) =
        load_or_issue(&pki, "apiserver-kubelet-client", |key| {
            Ok(
                client_cert_params("kube-apiserver-kubelet-client", &["system:masters"])?
                    .signed_by(key, &issuer)?
                    .pem(),
            )
        })?;
    Ok(Pki {
        kubelet_client_cert_pem,
        kubelet_client_key_pem,
        ca_cert_pem,
        serving_cert_pem,
        serving_key_pem,
        admin_cert_pem,
        admin_key_pem,
    })
}

/// Parameters of a client certificate for `user` in `groups`.
pub fn client_cert_params(user: &str, groups: &[&str]) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, user);
    for g in groups {
        p.distinguished_name.push(DnType::OrganizationName, *g);
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(p)
}

/// Issues a client certificate signed by the CA in `dir/pki` (PEM cert, PEM key).
pub fn issue_client_cert(
    dir: &Path,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), CertError> {
    let pki = dir.join("pki");
    let ca_key = KeyPair::from_pem(&read(&pki.join("ca.key"))?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&pki.join("ca.crt"))?, ca_key)?;
    let key = KeyPair::generate()?;
    let cert = client_cert_params(user, groups)?.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn load_or_issue(
    pki: &Path,
    name: &str,
    issue: impl FnOnce(&KeyPair) -> Result<String, CertError>,
) -> Result<(String, String), CertError> {
    let crt = pki.join(format!("{name}.crt"));
    let key_path = pki.join(format!("{name}.key"));
    if crt.exists() && key_path.exists() {
        return Ok((read(&crt)?, read(&key_path)?));
    }
    let key = KeyPair::generate()?;
    let cert = issue(&key)?;
    let key_pem = key.serialize_pem();
    write_private(&key_path, &key_pem)?;
    write_private(&crt, &cert)?;
    Ok((cert, key_pem))
}

/// Renders a kubeconfig with embedded credentials.
pub fn kubeconfig(
    server_url: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    user: &str,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rkube\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {}\ncontexts:\n- name: rkube\n  context:\n    cluster: rkube\n    user: {user}\ncurrent-context: rkube\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// Writes the admin kubeconfig to `dir/kubeconfig` (mode 0600).
pub fn write_admin_kubeconfig(
    dir: &Path,
    server_url: &str,
    pki: &Pki,
) -> Result<PathBuf, CertError> {
    let path = dir.join("kubeconfig");
    write_private(
        &path,
        &kubeconfig(
            server_url,
            &pki.ca_cert_pem,
            &pki.admin_cert_pem,
            &pki.admin_key_pem,
            "admin",
        ),
    )?;
    Ok(path)
}

/// Builds the rustls server configuration: our serving certificate, and
/// optional client certificates verified against the cluster CA (requests
/// without one are anonymous).
pub fn server_tls_config(pki: &Pki) -> Result<rustls::ServerConfig, CertError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let ca: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.ca_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Tls(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c).map_err(|e| CertError::Tls(e.to_string()))?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| CertError::Tls(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.serving_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(pki.serving_key_pem.as_bytes())
        .map_err(|e| CertError::Tls(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| CertError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// User name (CN) and groups (O) of a verified client certificate.
pub use rkube_api::x509::identity as identity_from_cert;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_pki(dir.path(), &[], &[]).unwrap();
        let b = ensure_pki(dir.path(), &[], &[]).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.serving_cert_pem, b.serving_cert_pem);
        server_tls_config(&a).unwrap();
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let der = CertificateDer::from_pem_slice(a.admin_cert_pem.as_bytes()).unwrap();
        let (user, groups) = identity_from_cert(&der).unwrap();
        assert_eq!(user, "system:admin");
        assert_eq!(groups, vec!["system:masters".to_string()]);
        let kc = kubeconfig(
            "https://127.0.0.1:6443",
            &a.ca_cert_pem,
            &a.admin_cert_pem,
            &a.admin_key_pem,
            "admin",
        );
        assert!(kc.contains("server: https://127.0.0.1:6443"));
    }
}
