//! Image references, parsed and normalised the way Docker and the Kubernetes
//! CRI do: `nginx` is `docker.io/library/nginx:latest`, `user/app` is
//! `docker.io/user/app:latest`, and the first path component is a registry
//! only when it contains `.` or `:`, is `localhost`, or has upper-case letters.
//!
//! A reference may carry a tag, a digest, or both (`name:tag@sha256:...`);
//! with neither, the tag defaults to `latest`.

use std::fmt;
use std::str::FromStr;

/// The registry assumed when a name has no registry component.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag assumed when a name has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_MAX: usize = 255;

/// Why a string is not a valid image reference. The messages follow the
/// Docker reference library's wording (`invalid reference format`), which is
/// what Kubernetes shows in `InvalidImageName` events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string is empty.
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    /// The syntax is wrong somewhere.
    #[error("invalid reference format")]
    Format,
    /// A repository path component has upper-case letters.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// The registry plus repository name is longer than 255 characters.
    #[error("invalid reference format: repository name must not be more than 255 characters")]
    NameTooLong,
    /// The digest is malformed or uses an unsupported algorithm.
    #[error("invalid reference format: invalid digest {0:?}")]
    Digest(String),
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `s`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest)?;
                (name, Some(digest.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if !is_tag(tag) {
                    return Err(ReferenceError::Format);
                }
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        let (registry, repository) = split_registry(name)?;
        if registry.len() + 1 + repository.len() > NAME_TOTAL_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with its port if any (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:<hex>`), if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, with neither tag nor digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag` when the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `registry/repository@digest` for the given digest.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }

    /// Whether the registry is on a loopback address (`localhost`,
    /// 127.0.0.0/8, `::1`), which Docker reaches over plain HTTP.
    pub fn is_loopback_registry(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether `host` (optionally with `:port`, IPv6 in brackets) names this
/// machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn split_registry(name: &str) -> Result<(String, String), ReferenceError> {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            if !is_domain(first) {
                return Err(ReferenceError::Format);
            }
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    let registry = if registry == LEGACY_DEFAULT_REGISTRY {
        DEFAULT_REGISTRY.to_string()
    } else {
        registry
    };
    let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    validate_path(&path)?;
    Ok((registry, path))
}

fn validate_path(path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(ReferenceError::Empty);
    }
    for component in path.split('/') {
        if !is_path_component(&component.to_ascii_lowercase()) {
            return Err(ReferenceError::Format);
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(path.to_string()));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// A host name or IP with an optional port: `host(.host)*(:port)?` or `[v6](:port)?`.
fn is_domain(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::Digest(d.to_string());
    let (alg, hex) = d.split_once(':').ok_or_else(bad)?;
    let want = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_normalisation() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            norm("index.docker.io/library/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("a/b/c:v1"), "docker.io/a/b/c:v1");
    }

    #[test]
    fn registry_detection() {
        let r = Reference::parse("host:5000/x").unwrap();
        assert_eq!(r.registry(), "host:5000");
        assert_eq!(r.repository(), "x");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("quay.io/coreos/etcd:v3"), "quay.io/coreos/etcd:v3");
        assert_eq!(norm("127.0.0.1:5000/busybox:1"), "127.0.0.1:5000/busybox:1");
        assert_eq!(norm("[::1]:5000/a"), "[::1]:5000/a:latest");
        assert_eq!(norm("Registry/a"), "Registry/a:latest");
        // A port-like suffix on a single component is a tag.
        assert_eq!(norm("host:5000"), "docker.io/library/host:5000");
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = Reference::parse(&format!("busybox:1.36@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.tagged().unwrap(), "docker.io/library/busybox:1.36");
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1.36@{D}"));
        assert_eq!(r.with_digest(D), format!("docker.io/library/busybox@{D}"));
    }

    #[test]
    fn invalid_names() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            ":tag",
            "nginx@sha256:abc",
            "nginx@md5:0123456789abcdef0123456789abcdef",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "nginx:-x",
            "host:port/a",
            "ho_st.com/a",
            "/a",
            "a/",
            "a b",
            "docker.io/Library/x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be invalid");
        }
        assert_eq!(
            Reference::parse("Nginx").unwrap_err().to_string(),
            "invalid reference format: repository name (library/Nginx) must be lowercase"
        );
        let long = "a".repeat(260);
        assert_eq!(
            Reference::parse(&long).unwrap_err(),
            ReferenceError::NameTooLong
        );
    }

    #[test]
    fn separators() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2_c3"] {
            assert!(Reference::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn loopback() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:80",
            "::1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "[::2]:80",
            "localhost.example.com",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
