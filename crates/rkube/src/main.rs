//! The `rkube` binary: `rkube server` runs the control plane (API server on
//! embedded or etcd storage); later subcommands add the node agent,
//! scheduler and controllers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use rkube_store::Store;

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
    about = "A Kubernetes-compatible container orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum StoreKind {
    Embedded,
    Etcd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the control plane.
    Server {
        /// Where certificates, the kubeconfig and the embedded database live.
        #[arg(long, default_value = "/var/lib/rkube")]
        data_dir: PathBuf,
        /// HTTPS listen address.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Storage backend.
        #[arg(long, value_enum, default_value = "embedded")]
        store: StoreKind,
        /// etcd client URLs, comma-separated (with --store etcd).
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
        etcd_endpoints: Vec<String>,
        /// Interval of watch bookmarks, in seconds.
        #[arg(long, default_value_t = 60)]
        bookmark_interval_seconds: u64,
        /// Interval of storage compaction, in seconds.
        #[arg(long, default_value_t = 300)]
        compaction_interval_seconds: u64,
    },
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RKUBE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Server { data_dir, listen, store, etcd_endpoints, bookmark_interval_seconds, compaction_interval_seconds } => {
                std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
                let store: Arc<dyn Store> = match store {
                    StoreKind::Embedded => Arc::new(
                        rkube_store::embedded::EmbeddedStore::open(&data_dir.join("state.redb"))
                            .context("opening the embedded store")?,
                    ),
                    StoreKind::Etcd => Arc::new(
                        rkube_store::etcd::EtcdStore::connect(&etcd_endpoints).await.context("connecting to etcd")?,
                    ),
                };
                let mut config = rkube_apiserver::Config::new(data_dir, listen, store);
                config.bookmark_interval = Duration::from_secs(bookmark_interval_seconds.max(1));
                config.compaction_interval = Duration::from_secs(compaction_interval_seconds.max(1));
                rkube_apiserver::run(
                    config,
                    |s| {
                        eprintln!("rkube API server listening on https://{}", s.addr);
                        println!("Cluster is up. Point kubectl at it with:\n  export KUBECONFIG={}\n  kubectl get ns", s.kubeconfig.display());
                    },
                    shutdown_signal(),
                )
                .await?;
                Ok(())
            }
        }
    })
}
