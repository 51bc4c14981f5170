//! Test support for this and other crates (feature `testing`): a real
//! `docker-registry` on loopback ([`TestRegistry`]) and small OCI images
//! built in memory from Debian's `busybox-static` ([`ImageBuilder`],
//! [`LayerBuilder`]), pushable to the registry or written as an OCI archive.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use rkube_image::testing::{ImageBuilder, TestRegistry};
//! let registry = TestRegistry::start()?;
//! let image = ImageBuilder::busybox()?.cmd(&["sh", "-c", "echo hi"]).build();
//! registry.push("busybox", "latest", &image).await?;
//! let reference = registry.reference("busybox:latest");
//! # Ok(()) }
//! ```

mod build;
mod registry;

pub use build::{
    build_index, busybox_layer, write_oci_archive, BuildError, BuiltImage, BuiltIndex, BuiltLayer,
    ImageBuilder, LayerBuilder, BUSYBOX_APPLETS, BUSYBOX_PATH,
};
pub use registry::{RegistryError, TestRegistry, REGISTRY_BIN};
