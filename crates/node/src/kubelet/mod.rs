//! The real node agent's pod logic (rkube's kubelet proper): what upstream's
//! kubelet derives from a pod spec before and while it runs containers —
//! environments, volume files, hosts/DNS files, probes — kept pure or behind
//! small traits so it is testable without root.

pub mod backend;
pub mod cni_net;
mod create;
pub mod env;
pub mod events;
pub mod hostfacts;
pub mod hosts;
pub mod housekeeping;
pub mod httpget;
pub mod oci_images;
pub mod orphans;
pub mod payload;
pub mod podstatus;
pub mod pressure;
pub mod probe;
pub mod reserved;
pub mod runc_ctr;
pub mod runtime;
pub mod service_env;
pub mod setup;
pub mod sources;
pub mod spec;
mod start;
pub mod stats;
pub mod streaming;
mod teardown;
pub mod volumes;
pub mod worker;
