//! The real node agent's pod logic (rkube's kubelet proper): what upstream's
//! kubelet derives from a pod spec before and while it runs containers —
//! environments, volume files, hosts/DNS files, probes — kept pure or behind
//! small traits so it is testable without root.

pub mod backend;
pub mod env;
pub mod hosts;
pub mod payload;
pub mod probe;
pub mod spec;
pub mod volumes;
