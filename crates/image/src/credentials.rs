//! Registry credentials, and their lookup in the `.dockerconfigjson` payload
//! of a `kubernetes.io/dockerconfigjson` secret.
//!
//! Keys of `auths` may carry a scheme and a path (`https://index.docker.io/v1/`)
//! and match on the host (with port); Docker Hub's aliases all mean
//! `docker.io`; a key may use a leading `*.` wildcard label as the kubelet
//! allows. An entry gives either `auth` (base64 of `user:password`, which
//! wins) or `username` and `password`. Secrets are never logged: the
//! `Debug` form of [`Credentials`] redacts the password.

use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A user name and password for a registry's basic or token auth.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a docker config could not be read (kept internal: lookups return `None`).
#[derive(Debug, thiserror::Error)]
enum ConfigError {
    #[error("invalid docker config json: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct DockerConfig {
    auths: Option<BTreeMap<String, AuthEntry>>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials that a `.dockerconfigjson` (or legacy `.dockercfg`)
/// payload holds for `registry_host` (as in a [`crate::Reference`]'s
/// registry, e.g. `docker.io` or `127.0.0.1:5000`), if any.
pub fn credentials_from_dockerconfigjson(
    json_bytes: &[u8],
    registry_host: &str,
) -> Option<Credentials> {
    let auths = match parse(json_bytes) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(error = %e, "ignoring unreadable docker config");
            return None;
        }
    };
    let want = normalise_host(registry_host);
    // Exact keys win over wildcard keys.
    let exact = auths.iter().find(|(k, _)| normalise_host(k) == want);
    let entry = exact.or_else(|| {
        auths
            .iter()
            .find(|(k, _)| wildcard_match(&normalise_host(k), &want))
    })?;
    entry_credentials(entry.1)
}

fn parse(json: &[u8]) -> Result<BTreeMap<String, AuthEntry>, ConfigError> {
    let value: serde_json::Value = serde_json::from_slice(json)?;
    if value.get("auths").is_some() {
        let cfg: DockerConfig = serde_json::from_value(value)?;
        Ok(cfg.auths.unwrap_or_default())
    } else {
        Ok(serde_json::from_value(value)?)
    }
}

fn entry_credentials(entry: &AuthEntry) -> Option<Credentials> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        return Some(Credentials::new(user, pass));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Some(Credentials::new(u, p)),
        _ => None,
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/x` → `host:5000`.
fn normalise_host(key: &str) -> String {
    let key = key.trim();
    let no_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = no_scheme
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// `*.example.com` matches `a.example.com` (one label per `*`), ports equal.
fn wildcard_match(pattern: &str, host: &str) -> bool {
    if !pattern.contains('*') {
        return false;
    }
    let split = |s: &str| -> (String, String) {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (s.to_string(), String::new()),
        }
    };
    let (ph, pp) = split(pattern);
    let (hh, hp) = split(host);
    if pp != hp {
        return false;
    }
    let pl: Vec<&str> = ph.split('.').collect();
    let hl: Vec<&str> = hh.split('.').collect();
    pl.len() == hl.len()
        && pl
            .iter()
            .zip(&hl)
            .all(|(p, h)| *p == "*" || p.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn auth_field_and_aliases() {
        let json = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},
                "127.0.0.1:5000":{{"username":"u","password":"p:w"}}}}}}"#,
            b64("alice:s3cr:et")
        );
        let c = credentials_from_dockerconfigjson(json.as_bytes(), "docker.io").unwrap();
        assert_eq!(c, Credentials::new("alice", "s3cr:et"));
        let c = credentials_from_dockerconfigjson(json.as_bytes(), "127.0.0.1:5000").unwrap();
        assert_eq!(c, Credentials::new("u", "p:w"));
        assert!(credentials_from_dockerconfigjson(json.as_bytes(), "quay.io").is_none());
        assert!(credentials_from_dockerconfigjson(json.as_bytes(), "127.0.0.1:5001").is_none());
    }

    #[test]
    fn keys_with_scheme_and_path() {
        for key in [
            "index.docker.io",
            "registry-1.docker.io",
            "docker.io",
            "https://docker.io/v2/",
        ] {
            let json = format!(r#"{{"auths":{{"{key}":{{"username":"a","password":"b"}}}}}}"#);
            assert!(
                credentials_from_dockerconfigjson(json.as_bytes(), "docker.io").is_some(),
                "{key}"
            );
        }
        let json =
            r#"{"auths":{"http://reg.local:5000/some/path":{"username":"a","password":"b"}}}"#;
        assert!(credentials_from_dockerconfigjson(json.as_bytes(), "reg.local:5000").is_some());
    }

    #[test]
    fn wildcard_and_legacy_format() {
        let json = r#"{"*.example.com":{"username":"w","password":"x"}}"#;
        let c = credentials_from_dockerconfigjson(json.as_bytes(), "r.example.com").unwrap();
        assert_eq!(c.username, "w");
        assert!(credentials_from_dockerconfigjson(json.as_bytes(), "a.b.example.com").is_none());
    }

    #[test]
    fn bad_input_is_none_and_debug_redacts() {
        assert!(credentials_from_dockerconfigjson(b"not json", "docker.io").is_none());
        let json = r#"{"auths":{"docker.io":{"auth":"%%%"}}}"#;
        assert!(credentials_from_dockerconfigjson(json.as_bytes(), "docker.io").is_none());
        let dbg = format!("{:?}", Credentials::new("u", "hunter2"));
        assert!(!dbg.contains("hunter2"));
    }
}
