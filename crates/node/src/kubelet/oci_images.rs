//! [`ImageService`] over `rkube-image`: pulls with the credentials of the
//! pod's image pull secrets that match the image's registry.

use std::collections::HashMap;

use async_trait::async_trait;
use rkube_image::{credentials_from_dockerconfigjson, Image, ImageStore, PullOptions, Reference};

use super::backend::{DockerConfig, ImageInfo, ImageService, PullError};

/// The node's image store.
pub struct OciImages {
    pub store: ImageStore,
    /// Per-registry settings (plain HTTP, TLS) for every pull.
    pub registries: HashMap<String, rkube_image::RegistrySettings>,
}

fn info(img: &Image) -> ImageInfo {
    ImageInfo {
        id: img.id.clone(),
        repo_digest: img
            .repo_digests
            .first()
            .cloned()
            .unwrap_or_else(|| img.id.clone()),
        layers: img.layer_dirs.clone(),
        entrypoint: img.config.entrypoint.clone(),
        cmd: img.config.cmd.clone(),
        env: img.config.env.clone(),
        working_dir: img.config.working_dir.clone(),
        user: img.config.user.clone(),
        size: img.size,
    }
}

#[async_trait]
impl ImageService for OciImages {
    async fn get(&self, image: &str) -> Option<ImageInfo> {
        let store = self.store.clone();
        let image = image.to_string();
        // Asked for to make a container: mark it used, so image gc's
        // minimum age keeps it until the container holds it; gone if gc
        // removed it before the mark.
        tokio::task::spawn_blocking(move || {
            let id = store.get(&image)?.id;
            store.mark_used(&id).ok()?;
            store.get(&id).map(|i| info(&i))
        })
        .await
        .ok()
        .flatten()
    }

    async fn pull(&self, image: &str, secrets: &[DockerConfig]) -> Result<ImageInfo, PullError> {
        let reference =
            Reference::parse(image).map_err(|e| PullError::InvalidName(e.to_string()))?;
        let credentials = secrets
            .iter()
            .find_map(|s| credentials_from_dockerconfigjson(&s.0, reference.registry()));
        let opts = PullOptions {
            credentials,
            registries: self.registries.clone(),
        };
        match self.store.pull(image, &opts).await {
            Ok(p) => {
                let mut i = info(&p.image);
                i.size = p.size;
                Ok(i)
            }
            Err(e) if e.is_invalid_reference() => Err(PullError::InvalidName(e.to_string())),
            Err(e) if e.is_not_found() => Err(PullError::NotFound(e.to_string())),
            Err(e) if e.is_unauthorized() => Err(PullError::Unauthorized(e.to_string())),
            Err(e) => Err(PullError::Other(e.to_string())),
        }
    }
}
