//! `rkube image`: inspect and manage the node's image store — `import` an
//! OCI archive (air-gapped hosts), `ls` in `crictl images` columns, `rm`,
//! and `pull`.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rkube_image::{Image, ImageStore, PullOptions, Reference};
use std::collections::HashSet;
use std::path::PathBuf;

/// `rkube image ...`
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The image store's root directory.
    #[arg(long, global = true, default_value = rkube_image::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// The `rkube image` subcommands.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import the images of an OCI image-layout archive (tar or tar.gz),
    /// named by their org.opencontainers.image.ref.name annotations.
    Import {
        /// The archive.
        file: PathBuf,
    },
    /// List images (IMAGE, TAG, IMAGE ID, SIZE).
    #[command(alias = "list")]
    Ls {
        /// Print image IDs only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove images by reference or ID. A reference to one of several tags
    /// only untags. Content is reclaimed by the agent's image GC.
    Rm {
        /// References or IDs.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Pull an image from its registry (anonymous; loopback registries over
    /// plain HTTP).
    Pull {
        /// The image reference.
        image: String,
    },
}

/// Runs `rkube image`.
pub async fn run(args: ImageArgs) -> anyhow::Result<()> {
    let root = args.root.clone();
    let store = tokio::task::spawn_blocking(move || ImageStore::open(&root))
        .await?
        .with_context(|| format!("opening image store {}", args.root.display()))?;
    match args.command {
        ImageCommand::Import { file } => {
            let images = store
                .import_oci_archive(&file)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            for img in images {
                let names = if img.repo_tags.is_empty() {
                    "<none>".to_string()
                } else {
                    img.repo_tags.join(", ")
                };
                println!("Imported {names} ({})", short_id(&img.id));
            }
        }
        ImageCommand::Ls { quiet } => {
            let images = store.list()?;
            if quiet {
                for img in &images {
                    println!("{}", img.id);
                }
            } else {
                print!("{}", format_table(&images));
            }
        }
        ImageCommand::Rm { images } => {
            let mut failed = false;
            for name in images {
                let store = store.clone();
                let n = name.clone();
                let result =
                    tokio::task::spawn_blocking(move || store.remove(&n, &HashSet::new())).await?;
                match result {
                    Ok(Some(id)) => println!("Deleted: {id}"),
                    Ok(None) => println!("Untagged: {name}"),
                    Err(e) => {
                        eprintln!("error: removing {name}: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                anyhow::bail!("some images could not be removed");
            }
        }
        ImageCommand::Pull { image } => {
            let pulled = store.pull(&image, &PullOptions::default()).await?;
            let what = if pulled.already_present {
                "Already present"
            } else {
                "Pulled"
            };
            println!(
                "{what}: {image} {} ({})",
                short_id(&pulled.image.id),
                human_size(pulled.size)
            );
        }
    }
    Ok(())
}

/// One row per repo tag (or per repo digest for untagged images), like
/// `crictl images`.
fn format_table(images: &[Image]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "TAG".to_string(),
        "IMAGE ID".to_string(),
        "SIZE".to_string(),
    ]];
    for img in images {
        let id = short_id(&img.id);
        let size = human_size(img.size);
        let mut names: Vec<(String, String)> = img
            .repo_tags
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .map(|r| (r.name(), r.tag().unwrap_or("<none>").to_string()))
            .collect();
        if names.is_empty() {
            names = img
                .repo_digests
                .iter()
                .filter_map(|d| Reference::parse(d).ok())
                .map(|r| (r.name(), "<none>".to_string()))
                .take(1)
                .collect();
        }
        if names.is_empty() {
            names.push(("<none>".into(), "<none>".into()));
        }
        for (name, tag) in names {
            rows.push([name, tag, id.clone(), size.clone()]);
        }
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        for c in 0..3 {
            out.push_str(&format!("{:<w$}   ", r[c], w = widths[c]));
        }
        out.push_str(&r[3]);
        out.push('\n');
    }
    out
}

/// The first 13 hex digits of an image ID, as crictl shows them.
fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(13).collect()
}

/// Decimal units with three significant digits (`1.98MB`), as crictl prints.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 999.5 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let decimals = if v < 9.995 {
        2
    } else if v < 99.95 {
        1
    } else {
        0
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(123), "123B");
        assert_eq!(human_size(12_345), "12.3kB");
        assert_eq!(human_size(1_982_256), "1.98MB");
        assert_eq!(human_size(4_000_000), "4MB");
        assert_eq!(human_size(999_999), "1MB");
    }

    #[test]
    fn table() {
        let img = Image {
            id: format!("sha256:{}", "ab".repeat(32)),
            manifest_digest: String::new(),
            repo_tags: vec!["docker.io/library/busybox:1.36".into()],
            repo_digests: vec![],
            size: 2_000_000,
            layers: vec![],
            config: Default::default(),
            last_used: 0,
            layer_dirs: vec![],
        };
        let mut untagged = img.clone();
        untagged.repo_tags.clear();
        untagged.repo_digests = vec![format!("127.0.0.1:5000/app@sha256:{}", "cd".repeat(32))];
        let t = format_table(&[img, untagged]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("IMAGE "), "{t}");
        assert!(
            lines[0].contains("TAG") && lines[0].contains("IMAGE ID") && lines[0].ends_with("SIZE")
        );
        assert!(
            lines[1].starts_with("docker.io/library/busybox   1.36     ababababababa   2MB"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("127.0.0.1:5000/app          <none>   ababababababa"),
            "{t}"
        );
    }
}
