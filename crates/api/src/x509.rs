//! Who a client certificate names: the user is the subject's CommonName and
//! the groups are its Organizations, as upstream's x509 authenticator maps
//! them. Used by the API server and by the node agent's HTTPS API. With the
//! `tls` feature, also the verifier of the places that accept any server
//! certificate as upstream does.

/// User (CN) and groups (O) of a DER certificate; `None` if it does not
/// parse or has no CN.
pub fn identity(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((user, groups))
}

/// A rustls server-certificate verifier that accepts any certificate, still
/// checking that the handshake is signed by the key of the certificate
/// presented. Upstream skips verification in exactly two places rkube has
/// too: the API server towards kubelets without
/// `--kubelet-certificate-authority`, and the kubelet's HTTPS probes and
/// lifecycle hooks (`InsecureSkipVerify`).
#[cfg(feature = "tls")]
#[derive(Debug)]
pub struct AnyServerCert(pub std::sync::Arc<rustls::crypto::CryptoProvider>);

#[cfg(feature = "tls")]
mod any_server_cert {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::DigitallySignedStruct;

    use super::AnyServerCert;

    impl ServerCertVerifier for AnyServerCert {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
