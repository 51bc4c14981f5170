//! Layer unpacking checked through a real overlayfs mount (run as root):
//! whiteouts delete lower files, opaque directories hide lower contents,
//! and ownership, modes, hard links, symlinks and device nodes survive.

use anyhow::{ensure, Result};
use rkube_image::testing::{ImageBuilder, LayerBuilder, TestRegistry};
use rkube_image::unpack::OPAQUE_XATTR;
use rkube_image::{ImageStore, PullOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_overlay(lowerdir: &str, target: &Path) -> Result<Mount> {
    std::fs::create_dir_all(target)?;
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={lowerdir}"))
        .arg(target)
        .status()?;
    ensure!(status.success(), "mount overlay failed: {status}");
    Ok(Mount(target.to_path_buf()))
}

#[tokio::test]
async fn whiteouts_and_metadata_through_overlay() -> Result<()> {
    let registry = TestRegistry::start()?;
    let lower = LayerBuilder::new()
        .file("etc/doomed", "bye", 0o644)
        .file("etc/kept", "stay", 0o644)
        .file("data/old1", "1", 0o644)
        .file("data/sub/old2", "2", 0o644)
        .file_owned("home/user/owned", "mine", 0o600, 1000, 1001)
        .file("bin/tool", "#!/bin/sh\n", 0o4755)
        .hardlink("bin/tool-link", "bin/tool")
        .symlink("etc/alias", "kept")
        .char_device("dev/null-ish", 1, 3, 0o666)
        .fifo("run/pipe", 0o600);
    let upper = LayerBuilder::new()
        .whiteout("etc/doomed")
        .opaque("data")
        .file("data/new", "fresh", 0o644);
    let image = ImageBuilder::busybox()?.layer(lower).layer(upper).build();
    registry.push("layers", "v1", &image).await?;
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(&dir.path().join("images"))?;
    let pulled = store
        .pull(&registry.reference("layers:v1"), &PullOptions::default())
        .await?;
    let dirs = &pulled.image.layer_dirs;
    assert_eq!(dirs.len(), 3);

    // Raw layer format: a 0:0 char device and the opaque xattr.
    let wh = std::fs::symlink_metadata(dirs[2].join("etc/doomed"))?;
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let mut buf = [0u8; 8];
    let n = rustix::fs::lgetxattr(dirs[2].join("data"), OPAQUE_XATTR, &mut buf[..])?;
    assert_eq!(&buf[..n], b"y");

    // Metadata in the lower layer.
    let l = &dirs[1];
    let owned = std::fs::metadata(l.join("home/user/owned"))?;
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1000, 1001, 0o600)
    );
    let tool = std::fs::metadata(l.join("bin/tool"))?;
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(
        tool.ino(),
        std::fs::metadata(l.join("bin/tool-link"))?.ino()
    );
    assert_eq!(
        std::fs::read_link(l.join("etc/alias"))?.to_str(),
        Some("kept")
    );
    let dev = std::fs::symlink_metadata(l.join("dev/null-ish"))?;
    assert!(dev.file_type().is_char_device());
    assert_eq!(dev.rdev(), rustix::fs::makedev(1, 3));
    assert!(std::fs::symlink_metadata(l.join("run/pipe"))?
        .file_type()
        .is_fifo());

    // Through overlayfs.
    let mnt = dir.path().join("mnt");
    let _mount = mount_overlay(&pulled.image.overlay_lowerdir(), &mnt)?;
    assert!(!mnt.join("etc/doomed").exists(), "whited-out file is gone");
    assert_eq!(std::fs::read_to_string(mnt.join("etc/kept"))?, "stay");
    assert_eq!(std::fs::read_to_string(mnt.join("etc/alias"))?, "stay");
    let mut data: Vec<String> = std::fs::read_dir(mnt.join("data"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    data.sort();
    assert_eq!(data, vec!["new"], "opaque dir hides lower contents");
    assert!(mnt.join("bin/busybox").is_file());
    let out = Command::new("chroot")
        .arg(&mnt)
        .args(["/bin/sh", "-c", "echo ok"])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    Ok(())
}

#[tokio::test]
async fn path_traversal_is_rejected() -> Result<()> {
    // A tar with "../escape" cannot be built with tar::Builder's checked
    // paths, so write the header name by hand.
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[b'x'; 512]);
    tar.extend_from_slice(&[0; 1024]);
    let dir = tempfile::tempdir()?;
    let dest = dir.path().join("layer");
    std::fs::create_dir(&dest)?;
    let err = rkube_image::unpack::unpack_layer(&tar[..], &dest).unwrap_err();
    assert!(
        matches!(err, rkube_image::unpack::UnpackError::Escape(_)),
        "{err:?}"
    );
    assert!(!dir.path().join("escape").exists());
    Ok(())
}
