//! `rkube-image`: container images for the rkube node agent, independent of
//! Kubernetes objects.
//!
//! - [`Reference`]: image names parsed and normalised as Docker does.
//! - [`ImageStore`]: a content-addressed blob store with each layer unpacked
//!   once in overlayfs lower-dir format (whiteouts converted), a persisted
//!   index of images, registry pulls ([`ImageStore::pull`]), OCI archive
//!   import, removal and LRU garbage collection.
//! - [`credentials_from_dockerconfigjson`]: credentials from an
//!   imagePullSecret.
//! - `testing` (feature `testing`): a real `docker-registry` on loopback
//!   and busybox-based test images, for this and other crates' tests.

mod blobs;
mod credentials;
mod error;
mod gc;
mod import;
mod index;
pub mod manifest;
mod pull;
mod reference;
mod store;
pub mod unpack;

#[cfg(feature = "testing")]
pub mod testing;

pub use blobs::{sha256_digest, BadDigest, BlobStore};
pub use credentials::{credentials_from_dockerconfigjson, Credentials};
pub use error::ImageError;
pub use gc::{fs_space, DiskUsage, GcPolicy, GcReport};
pub use import::ImportError;
pub use index::{Image, Layer};
pub use manifest::ImageConfig;
pub use pull::{PullOptions, PulledImage, RegistrySettings};
pub use reference::{is_loopback_host, Reference, ReferenceError, DEFAULT_REGISTRY, DEFAULT_TAG};
pub use store::ImageStore;

/// The default store root of the node agent and `rkube image`.
pub const DEFAULT_ROOT: &str = "/var/lib/rkube/images";
