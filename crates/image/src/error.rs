//! The crate's public error type. Its variants let the node agent tell
//! apart a missing image (`ErrImagePull` with "not found"), a refused login
//! and other failures; each message reads well after
//! `Failed to pull image "x": `.

use crate::reference::ReferenceError;
use crate::unpack::UnpackError;
use std::path::PathBuf;

/// Everything that can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image name does not parse (Kubernetes: `InvalidImageName`).
    #[error("couldn't parse image name {name:?}: {source}")]
    InvalidReference {
        /// The name as given.
        name: String,
        /// Why it is invalid.
        source: ReferenceError,
    },
    /// The registry has no such manifest or repository.
    #[error("failed to resolve reference \"{reference}\": {reference}: not found")]
    NotFound {
        /// The normalised reference.
        reference: String,
    },
    /// The registry refused the credentials (or asked for some).
    #[error("failed to authorize \"{reference}\": pull access denied, repository does not exist or may require authorization: {message}")]
    Unauthorized {
        /// The normalised reference.
        reference: String,
        /// The registry's answer.
        message: String,
    },
    /// Any other registry or network failure.
    #[error("failed to pull and unpack image \"{reference}\": {message}")]
    Registry {
        /// The normalised reference.
        reference: String,
        /// What went wrong.
        message: String,
    },
    /// A multi-arch index has no manifest for this platform.
    #[error("no match for platform linux/{arch} in manifest list of \"{reference}\"")]
    NoMatchingPlatform {
        /// The normalised reference.
        reference: String,
        /// This host's architecture, in OCI spelling.
        arch: String,
    },
    /// A manifest, config, index or archive is malformed or unsupported.
    #[error("invalid image content: {0}")]
    Invalid(String),
    /// Content did not hash to its digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the content was announced with.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// No image in the store matches the reference or ID.
    #[error("image \"{0}\" not present in the store")]
    NotPresent(String),
    /// The image is in use by a container and cannot be removed.
    #[error("image \"{0}\" is in use by a container")]
    InUse(String),
    /// A layer could not be unpacked.
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ImageError {
    /// Whether the registry said the image does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::NotFound { .. })
    }

    /// Whether the registry refused access.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ImageError::Unauthorized { .. })
    }

    /// Whether the name itself is invalid.
    pub fn is_invalid_reference(&self) -> bool {
        matches!(self, ImageError::InvalidReference { .. })
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { op, path, source }
    }
}
