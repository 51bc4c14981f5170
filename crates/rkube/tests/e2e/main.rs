//! End-to-end tests: one test binary that starts the real `rkube` binary and
//! drives it with the real kubectl and the kube crate (one binary links once).

mod admission;
mod api_semantics;
mod attach;
mod common;
mod containers;
mod controller_manager;
mod deployment;
mod etcd_backend;
mod garbage_collector;
mod kube_client;
mod kubectl_crud;
mod kubectl_list_manifests;
mod node_agent;
mod node_facts;
mod node_housekeeping;
mod node_lifecycle;
mod pod_env;
mod scheduler;
mod scheduler_config;
mod scheduler_more_rules;
mod scheduler_rules;
mod services_jobs;
mod sets;
mod simulated_nodes;
mod streaming;
