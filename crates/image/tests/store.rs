//! Store operations: OCI archive import, removal, garbage collection and
//! crash safety of the index and of unpacking.

use anyhow::Result;
use rkube_image::testing::{write_oci_archive, ImageBuilder, LayerBuilder, TestRegistry};
use rkube_image::{GcPolicy, ImageError, ImageStore, PullOptions};
use std::collections::HashSet;

fn store() -> Result<(tempfile::TempDir, ImageStore)> {
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(&dir.path().join("images"))?;
    Ok((dir, store))
}

fn none() -> HashSet<String> {
    HashSet::new()
}

#[tokio::test]
async fn import_oci_archive() -> Result<()> {
    let a = ImageBuilder::busybox()?.cmd(&["echo", "a"]).build();
    let b = ImageBuilder::busybox()?
        .layer(LayerBuilder::new().file("b", "b", 0o644))
        .build();
    let (dir, store) = store()?;
    let archive = dir.path().join("images.tar");
    write_oci_archive(
        &archive,
        &[("busybox:1.36", &a), ("example.com/team/b:v2", &b)],
    )?;
    let imported = store.import_oci_archive(&archive).await?;
    assert_eq!(imported.len(), 2);
    let ia = store.get("busybox:1.36").unwrap();
    assert_eq!(ia.id, a.config_digest);
    assert_eq!(ia.repo_tags, vec!["docker.io/library/busybox:1.36"]);
    assert_eq!(ia.config.cmd, vec!["echo", "a"]);
    let ib = store.get("example.com/team/b:v2").unwrap();
    assert_eq!(ib.id, b.config_digest);
    assert!(ib.layer_dirs[1].join("b").is_file());
    assert_eq!(ia.layer_dirs[0], ib.layer_dirs[0], "shared base layer");

    // Not an OCI layout.
    let bogus = dir.path().join("bogus.tar");
    std::fs::write(&bogus, vec![0u8; 1024])?;
    let err = store.import_oci_archive(&bogus).await.unwrap_err();
    assert!(matches!(err, ImageError::Invalid(_)), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn remove_untags_then_deletes_and_respects_in_use() -> Result<()> {
    let img = ImageBuilder::busybox()?.build();
    let (dir, store) = store()?;
    let archive = dir.path().join("i.tar");
    write_oci_archive(&archive, &[("app:1", &img), ("app:2", &img)])?;
    store.import_oci_archive(&archive).await?;
    assert_eq!(store.get("app:1").unwrap().repo_tags.len(), 2);

    assert_eq!(store.remove("app:1", &none())?, None, "only untagged");
    assert!(store.get("app:1").is_none());
    assert!(store.get("app:2").is_some());

    let in_use: HashSet<String> = [img.config_digest.clone()].into();
    let err = store.remove("app:2", &in_use).unwrap_err();
    assert!(matches!(err, ImageError::InUse(_)), "{err:?}");
    let by_ref: HashSet<String> = ["app:2".to_string()].into();
    assert!(matches!(
        store.remove(&img.config_digest, &by_ref),
        Err(ImageError::InUse(_))
    ));

    assert_eq!(
        store.remove("app:2", &none())?,
        Some(img.config_digest.clone())
    );
    assert!(store.get(&img.config_digest).is_none());
    assert!(matches!(
        store.remove("app:2", &none()),
        Err(ImageError::NotPresent(_))
    ));
    // Content stays until gc.
    assert!(store.blobs().contains(&img.layers[0].digest));
    let report = store.gc(&none(), GcPolicy::AllUnused).await?;
    assert!(report.removed_images.is_empty());
    assert_eq!(report.removed_layers, 1);
    assert_eq!(report.removed_blobs, 3);
    assert!(!store.blobs().contains(&img.layers[0].digest));
    Ok(())
}

#[tokio::test]
async fn gc_removes_least_recently_used_unused_images() -> Result<()> {
    let registry = TestRegistry::start()?;
    let mut images = Vec::new();
    for n in 0..3 {
        let img = ImageBuilder::busybox()?
            .layer(LayerBuilder::new().file("n", format!("{n}"), 0o644))
            .build();
        registry.push(&format!("img{n}"), "latest", &img).await?;
        images.push(img);
    }
    let (_dir, store) = store()?;
    for n in 0..3 {
        store
            .pull(
                &registry.reference(&format!("img{n}")),
                &PullOptions::default(),
            )
            .await?;
    }
    // Make img0 the most recently used, img1 the least.
    for (n, t) in [(1, 100), (2, 200), (0, 300)] {
        set_last_used(&store, &images[n].config_digest, t)?;
    }
    let in_use: HashSet<String> = [registry.reference("img2")].into();
    // Freeing one byte removes exactly the LRU unused image.
    let report = store.gc(&in_use, GcPolicy::FreeBytes(1)).await?;
    assert_eq!(report.removed_images, vec![images[1].config_digest.clone()]);
    assert_eq!(
        report.removed_layers, 1,
        "only img1's own layer; the base is shared"
    );
    assert!(store.layer_dir(&images[0].layers[0].digest)?.is_dir());

    // Thresholds that are not reached remove nothing.
    let report = store
        .gc(
            &in_use,
            GcPolicy::Thresholds {
                high_percent: 100,
                low_percent: 99,
            },
        )
        .await?;
    assert!(report.removed_images.is_empty());
    // Thresholds that are always reached remove every unused image.
    let report = store
        .gc(
            &in_use,
            GcPolicy::Thresholds {
                high_percent: 0,
                low_percent: 0,
            },
        )
        .await?;
    assert_eq!(report.removed_images, vec![images[0].config_digest.clone()]);
    let left: Vec<String> = store.list()?.into_iter().map(|i| i.id).collect();
    assert_eq!(left, vec![images[2].config_digest.clone()]);
    let usage = store.disk_usage()?;
    assert_eq!(usage.images, 1);
    assert_eq!(usage.blob_bytes, {
        let i = &images[2];
        i.size() + i.manifest.len() as u64
    });
    assert!(usage.layer_bytes > 1_000_000, "busybox is unpacked");
    Ok(())
}

/// Sets an image's last-used time by rewriting the index (as another
/// process would), which the store must notice.
fn set_last_used(store: &ImageStore, id: &str, t: u64) -> Result<()> {
    let path = store.root().join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    for img in index["images"].as_array_mut().unwrap() {
        if img["id"] == id {
            img["last_used"] = t.into();
        }
    }
    std::fs::write(&path, serde_json::to_vec(&index)?)?;
    store.list()?; // reload
    assert_eq!(store.get(id).unwrap().last_used, t);
    Ok(())
}

#[tokio::test]
async fn crash_leftovers_are_cleaned_and_partial_images_not_indexed() -> Result<()> {
    let img = ImageBuilder::busybox()?.build();
    let (dir, store) = store()?;
    let archive = dir.path().join("i.tar");
    write_oci_archive(&archive, &[("app:1", &img)])?;
    store.import_oci_archive(&archive).await?;
    let root = store.root().to_path_buf();
    drop(store);

    // A crash mid-unpack and mid-download (pid 0 is never a live writer),
    // a half-written index temp file, and a layer lost from under an image.
    let tmp = root.join("tmp");
    std::fs::create_dir_all(tmp.join("layer-0-7/etc"))?;
    std::fs::write(tmp.join("layer-0-7/etc/partial"), "x")?;
    std::fs::write(tmp.join("download-0-8"), "partial blob")?;
    std::fs::write(root.join("index.json.tmp"), "{ truncated")?;
    let store = ImageStore::open(&root)?;
    assert_eq!(std::fs::read_dir(&tmp)?.count(), 0);
    assert!(
        store.get("app:1").is_some(),
        "index intact despite the temp file"
    );

    let layer = store.layer_dir(&img.layers[0].digest)?;
    std::fs::remove_dir_all(&layer)?;
    drop(store);
    let store = ImageStore::open(&root)?;
    assert!(
        store.get("app:1").is_none(),
        "an image with a missing layer is dropped"
    );
    // Importing again restores it, reusing the stored blob.
    store.import_oci_archive(&archive).await?;
    assert!(store.get("app:1").is_some());
    assert!(layer.is_dir());
    Ok(())
}

#[tokio::test]
async fn corrupt_blob_is_rejected_on_import() -> Result<()> {
    let img = ImageBuilder::busybox()?.build();
    let (dir, store) = store()?;
    // An archive whose config blob content does not match its name.
    let mut bad = img.clone();
    bad.config = b"{\"tampered\":true}".to_vec();
    let archive = dir.path().join("bad.tar");
    write_oci_archive(&archive, &[("app:1", &bad)])?;
    let err = store.import_oci_archive(&archive).await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    assert!(store.get("app:1").is_none());
    assert!(store.list()?.is_empty());
    Ok(())
}

#[tokio::test]
async fn gc_min_age_keeps_images_pulled_or_used_recently() -> Result<()> {
    let img = ImageBuilder::busybox()?.build();
    let (dir, store) = store()?;
    let archive = dir.path().join("i.tar");
    write_oci_archive(&archive, &[("app:1", &img)])?;
    store.import_oci_archive(&archive).await?;
    let hour = std::time::Duration::from_secs(3600);
    let report = store.gc_min_age(&none(), GcPolicy::AllUnused, hour).await?;
    assert!(report.removed_images.is_empty(), "imported just now");
    assert!(store.get("app:1").is_some());
    store.mark_used(&img.config_digest)?;
    let report = store.gc_min_age(&none(), GcPolicy::AllUnused, hour).await?;
    assert!(report.removed_images.is_empty(), "used just now");
    let report = store
        .gc_min_age(&none(), GcPolicy::AllUnused, std::time::Duration::ZERO)
        .await?;
    assert_eq!(report.removed_images, vec![img.config_digest.clone()]);
    assert!(store.get("app:1").is_none());
    Ok(())
}
