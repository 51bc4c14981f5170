//! Plain-HTTP `/metrics` and `/healthz` for the standalone scheduler and
//! controller manager (`--metrics-bind-address`), on loopback only: the
//! listener has no TLS, so it must not cross a host.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

/// Serves `render()` at `/metrics` on `addr` until the future is dropped.
pub async fn serve(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "--metrics-bind-address {addr}: plain-HTTP metrics are served on loopback addresses only"
        );
    }
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let r = render.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        r(),
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}
