//! Pulls from a real `docker-registry` on loopback (needs Debian's
//! `docker-registry` and `busybox-static`, and root for the layer unpack).

use anyhow::Result;
use rkube_image::testing::{build_index, ImageBuilder, LayerBuilder, TestRegistry};
use rkube_image::{Credentials, ImageStore, PullOptions, RegistrySettings};
use std::os::unix::fs::MetadataExt;

fn store() -> Result<(tempfile::TempDir, ImageStore)> {
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(&dir.path().join("images"))?;
    Ok((dir, store))
}

#[tokio::test]
async fn pull_by_tag_then_already_present() -> Result<()> {
    let registry = TestRegistry::start()?;
    let image = ImageBuilder::busybox()?
        .layer(LayerBuilder::new().file("app/hello.txt", "hello", 0o640))
        .entrypoint(&["/bin/sh", "-c"])
        .cmd(&["cat /app/hello.txt"])
        .env("GREETING=hi")
        .working_dir("/app")
        .user("1000:1000")
        .expose("8080/tcp")
        .build();
    registry.push("demo/app", "v1", &image).await?;
    let (_dir, store) = store()?;

    let reference = registry.reference("demo/app:v1");
    let pulled = store.pull(&reference, &PullOptions::default()).await?;
    assert!(!pulled.already_present);
    assert_eq!(pulled.size, image.size());
    let img = &pulled.image;
    assert_eq!(img.id, image.config_digest);
    assert_eq!(img.manifest_digest, image.manifest_digest);
    assert_eq!(img.repo_tags, vec![reference.clone()]);
    assert_eq!(
        img.repo_digests,
        vec![format!(
            "{}/demo/app@{}",
            registry.host(),
            image.manifest_digest
        )]
    );
    assert_eq!(img.config.entrypoint, vec!["/bin/sh", "-c"]);
    assert_eq!(img.config.cmd, vec!["cat /app/hello.txt"]);
    assert!(img.config.env.contains(&"GREETING=hi".to_string()));
    assert_eq!(img.config.working_dir, "/app");
    assert_eq!(img.config.user, "1000:1000");
    assert_eq!(img.config.exposed_ports, vec!["8080/tcp"]);
    assert_eq!(img.layer_dirs.len(), 2);
    let top = &img.layer_dirs[1];
    let meta = std::fs::metadata(top.join("app/hello.txt"))?;
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(std::fs::read_to_string(top.join("app/hello.txt"))?, "hello");
    let bottom = &img.layer_dirs[0];
    assert!(std::fs::symlink_metadata(bottom.join("bin/sh"))?
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_link(bottom.join("bin/sh"))?.to_str(),
        Some("busybox")
    );
    assert_eq!(
        std::fs::metadata(bottom.join("tmp"))?.mode() & 0o7777,
        0o1777
    );

    // The store finds it by every name, and a second pull fetches nothing.
    assert_eq!(store.get(&reference).unwrap().id, img.id);
    assert_eq!(store.get(&img.repo_digests[0]).unwrap().id, img.id);
    assert_eq!(store.get(&img.id).unwrap().id, img.id);
    assert_eq!(store.get(&img.id[7..19]).unwrap().id, img.id);
    let again = store.pull(&reference, &PullOptions::default()).await?;
    assert!(again.already_present);

    // A reopened store sees the same.
    let reopened = ImageStore::open(store.root())?;
    assert_eq!(
        reopened.get(&reference).unwrap(),
        store.get(&reference).unwrap()
    );
    Ok(())
}

#[tokio::test]
async fn pull_by_digest_and_tag_moves() -> Result<()> {
    let registry = TestRegistry::start()?;
    let v1 = ImageBuilder::busybox()?.cmd(&["echo", "one"]).build();
    let v2 = ImageBuilder::busybox()?.cmd(&["echo", "two"]).build();
    registry.push("app", "latest", &v1).await?;
    let (_dir, store) = store()?;
    store
        .pull(&registry.reference("app"), &PullOptions::default())
        .await?;
    registry.push("app", "latest", &v2).await?;

    let by_digest = format!("{}@{}", registry.reference("app"), v1.manifest_digest);
    let pulled = store.pull(&by_digest, &PullOptions::default()).await?;
    assert_eq!(pulled.image.id, v1.config_digest);
    assert!(pulled.already_present);

    let pulled = store
        .pull(&registry.reference("app:latest"), &PullOptions::default())
        .await?;
    assert_eq!(pulled.image.id, v2.config_digest);
    assert!(!pulled.already_present);
    // The tag moved to v2; v1 keeps its repo digest.
    let old = store.get(&v1.config_digest).unwrap();
    assert!(old.repo_tags.is_empty());
    assert_eq!(
        store.get(&registry.reference("app")).unwrap().id,
        v2.config_digest
    );
    assert_eq!(store.get(&by_digest).unwrap().id, v1.config_digest);
    Ok(())
}

#[tokio::test]
async fn auth_required_and_checked() -> Result<()> {
    let registry = TestRegistry::start_with_auth("alice", "s3cret")?;
    let image = ImageBuilder::busybox()?.build();
    registry.push("private/app", "v1", &image).await?;
    let (_dir, store) = store()?;
    let reference = registry.reference("private/app:v1");

    let err = store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");

    let wrong = PullOptions {
        credentials: Some(Credentials::new("alice", "wrong")),
        ..Default::default()
    };
    let err = store.pull(&reference, &wrong).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert!(
        !err.to_string().contains("wrong"),
        "no secrets in messages: {err}"
    );

    let right = PullOptions {
        credentials: Some(Credentials::new("alice", "s3cret")),
        ..Default::default()
    };
    let pulled = store.pull(&reference, &right).await?;
    assert_eq!(pulled.image.id, image.config_digest);
    Ok(())
}

#[tokio::test]
async fn missing_image_is_not_found() -> Result<()> {
    let registry = TestRegistry::start()?;
    let image = ImageBuilder::busybox()?.build();
    registry.push("exists", "v1", &image).await?;
    let (_dir, store) = store()?;
    for missing in ["exists:nope", "nothere:latest"] {
        let err = store
            .pull(&registry.reference(missing), &PullOptions::default())
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{missing}: {err:?}");
        assert!(err.to_string().contains("not found"), "{err}");
    }
    let err = store
        .pull("Invalid/Name", &PullOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_invalid_reference());
    // Nothing reachable there: a network error, neither of the above.
    let err = store
        .pull("127.0.0.1:1/none:latest", &PullOptions::default())
        .await
        .unwrap_err();
    assert!(!err.is_not_found() && !err.is_unauthorized(), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn multi_arch_index_picks_this_platform() -> Result<()> {
    let registry = TestRegistry::start()?;
    let (arch, other) = if std::env::consts::ARCH == "x86_64" {
        ("amd64", "s390x")
    } else {
        ("arm64", "amd64")
    };
    let native = ImageBuilder::busybox()?
        .layer(LayerBuilder::new().file("arch", arch, 0o644))
        .architecture(arch)
        .build();
    let foreign = ImageBuilder::new()
        .layer(LayerBuilder::new().file("arch", other, 0o644))
        .architecture(other)
        .build();
    let index = build_index(&[&foreign, &native]);
    registry
        .push_index("multi", "latest", &index, &[&foreign, &native])
        .await?;
    let (_dir, store) = store()?;
    let pulled = store
        .pull(&registry.reference("multi"), &PullOptions::default())
        .await?;
    assert_eq!(pulled.image.id, native.config_digest);
    assert_eq!(pulled.image.manifest_digest, native.manifest_digest);
    assert_eq!(
        pulled.image.repo_digests,
        vec![format!("{}/multi@{}", registry.host(), index.digest)]
    );
    assert!(!store.blobs().contains(&foreign.layers[0].digest));
    // The index digest pulls the same image.
    let by_index = format!("{}@{}", registry.reference("multi"), index.digest);
    assert_eq!(
        store
            .pull(&by_index, &PullOptions::default())
            .await?
            .image
            .id,
        native.config_digest
    );
    Ok(())
}

#[tokio::test]
async fn shared_layers_unpack_once_and_concurrent_pulls_share() -> Result<()> {
    let registry = TestRegistry::start()?;
    let a = ImageBuilder::busybox()?
        .layer(LayerBuilder::new().file("a", "a", 0o644))
        .build();
    let b = ImageBuilder::busybox()?
        .layer(LayerBuilder::new().file("b", "b", 0o644))
        .build();
    registry.push("a", "1", &a).await?;
    registry.push("b", "1", &b).await?;
    let (_dir, store) = store()?;
    let opts = PullOptions::default();

    let ra = registry.reference("a:1");
    let (x, y, z) = tokio::join!(
        store.pull(&ra, &opts),
        store.pull(&ra, &opts),
        store.pull(&ra, &opts)
    );
    let results = [x?, y?, z?];
    assert!(results.iter().all(|p| p.image.id == a.config_digest));
    assert_eq!(results.iter().filter(|p| !p.already_present).count(), 1);

    let base = store.layer_dir(&a.layers[0].digest)?;
    let before = std::fs::metadata(&base)?;
    let pb = store.pull(&registry.reference("b:1"), &opts).await?;
    assert_eq!(pb.image.layer_dirs[0], base);
    let after = std::fs::metadata(&base)?;
    assert_eq!((before.ino(), before.mtime()), (after.ino(), after.mtime()));
    // Three layers on disk: the shared base and one per image.
    assert_eq!(std::fs::read_dir(store.root().join("layers"))?.count(), 3);
    Ok(())
}

#[tokio::test]
async fn tls_registry_settings() -> Result<()> {
    let registry = TestRegistry::start_tls()?;
    let image = ImageBuilder::busybox()?.build();
    registry.push("secure", "v1", &image).await?;
    let host = registry.host();
    let reference = registry.reference("secure:v1");

    // Loopback without settings: HTTPS without verification, as Docker.
    let (_d1, s1) = store()?;
    assert_eq!(
        s1.pull(&reference, &PullOptions::default()).await?.image.id,
        image.config_digest
    );

    // Explicit settings replace the loopback default: verified against a CA.
    let with = |settings: RegistrySettings| PullOptions {
        registries: [(host.clone(), settings)].into(),
        ..Default::default()
    };
    let (_d2, s2) = store()?;
    let strict = s2
        .pull(&reference, &with(RegistrySettings::default()))
        .await
        .unwrap_err();
    assert!(
        !strict.is_not_found() && !strict.is_unauthorized(),
        "{strict:?}"
    );
    assert!(strict.to_string().contains("certificate"), "{strict}");
    let ca = RegistrySettings {
        ca_pem: Some(registry.ca_pem().unwrap().to_vec()),
        ..Default::default()
    };
    assert_eq!(
        s2.pull(&reference, &with(ca)).await?.image.id,
        image.config_digest
    );
    let (_d3, s3) = store()?;
    let skip = RegistrySettings {
        skip_verify: true,
        ..Default::default()
    };
    assert_eq!(
        s3.pull(&reference, &with(skip)).await?.image.id,
        image.config_digest
    );

    // Plain HTTP against a TLS registry fails; against a plain one it works.
    let (_d4, s4) = store()?;
    let plain = RegistrySettings {
        plain_http: true,
        ..Default::default()
    };
    assert!(s4.pull(&reference, &with(plain.clone())).await.is_err());
    let open = TestRegistry::start()?;
    open.push("plain", "v1", &image).await?;
    let opts = PullOptions {
        registries: [(open.host(), plain)].into(),
        ..Default::default()
    };
    assert!(s4.pull(&open.reference("plain:v1"), &opts).await.is_ok());
    Ok(())
}
