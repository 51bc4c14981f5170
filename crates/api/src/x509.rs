//! Who a client certificate names: the user is the subject's CommonName and
//! the groups are its Organizations, as upstream's x509 authenticator maps
//! them. Used by the API server and by the node agent's HTTPS API.

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
