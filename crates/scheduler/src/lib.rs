//! The rkube scheduler: upstream kube-scheduler's scheduling framework
//! (extension points, plugins one per file behind a central registry), its
//! queue (active, backoff, unschedulable), its cache of nodes and assumed
//! pods, and asynchronous binding. It talks to the API server only through
//! the Kubernetes API (the `kube` crate).

pub mod cache;
pub mod core;
pub mod framework;
pub mod listers;
pub mod plugins;
pub mod profile;
pub mod queue;
pub mod resources;
pub mod scheduler;

pub use profile::Profile;
pub use scheduler::{Scheduler, SchedulerError};

#[cfg(test)]
pub(crate) mod testing;
