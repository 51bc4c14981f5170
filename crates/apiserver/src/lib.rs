//! rkube's Kubernetes-compatible API server.
//!
//! HTTPS only (rustls), x509 client-certificate authentication against the
//! cluster CA, the Kubernetes REST API for the resources of `rkube-api`
//! over a `rkube-store` backend, a watch cache serving lists and watches,
//! discovery (legacy and aggregated), OpenAPI v2/v3, Prometheus metrics, and
//! the admission plugins scheduling depends on.

pub mod admission;
pub mod cache;
pub mod certs;
pub mod discovery;
pub mod error;
pub mod eviction;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod negotiate;
pub mod proxy;
pub mod request;
pub mod rest;
pub mod server;
pub mod subresources;

pub use server::{run, Config};
