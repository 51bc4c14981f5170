//! The rkube controllers: the control loops upstream runs in
//! kube-controller-manager.
//!
//! Each controller lives in its own module and follows the informer
//! pattern: shared informers ([`informers`]) list and watch each resource
//! type once per process into `kube` reflector stores, controllers register
//! handlers that turn changes into keys on their own work queue
//! ([`workqueue`], client-go's semantics and metrics), and workers reconcile
//! one key at a time against the stores ([`manager::run_workers`]).
//! Controllers talk to the API server only through the Kubernetes API, with
//! the `kube` crate, so each runs embedded in `rkube server` or alone
//! (`rkube controller-manager`) against any compatible API server.
//!
//! * [`manager`]: the registry of controllers and the manager that runs them.
//! * [`nodeipam`]: gives each Node a pod CIDR from the cluster CIDR.
//! * [`daemonset`]: one pod of a DaemonSet on every eligible node, rolling
//!   updates, ControllerRevision history.
//! * [`statefulset`]: StatefulSets' ordinal pods, their claims, ordered or
//!   parallel scaling, partitioned rolling updates, ControllerRevisions.
//! * [`history`]: ControllerRevision names, hashes and template patches.
//! * [`garbagecollector`]: deletes objects whose owners are gone; carries
//!   out Orphan and Foreground cascading deletion.
//! * [`serviceaccount`]: a `default` ServiceAccount in every namespace.
//! * [`replicaset`]: keeps each ReplicaSet's number of pods.
//! * [`deployment`]: rolls Deployments out through ReplicaSets.
//! * [`nodelifecycle`]: marks silent nodes Unknown, taints nodes by their
//!   conditions (NoExecute taints rate-limited per zone).
//! * [`tainteviction`]: deletes pods that do not tolerate their node's
//!   NoExecute taints (at once or after `tolerationSeconds`).
//! * [`disruption`]: PodDisruptionBudget status (allowed disruptions).
//! * [`endpoints`]: the Endpoints of every Service with a selector.
//! * [`endpointslice`]: the EndpointSlices of every Service with a selector.
//! * [`job`]: runs Jobs' pods to completion.
//! * [`cronjob`]: creates Jobs on CronJobs' schedules.
//! * [`ttlafterfinished`]: deletes finished Jobs after their TTL.
//! * [`events`]: client-go's event recorder (deduplication, aggregation).
//! * [`expectations`]: create/delete expectations against stale caches.
//! * [`util`]: keys, owner references, pod readiness.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod expectations;
pub mod garbagecollector;
pub mod history;
pub mod informers;
pub mod job;
pub mod manager;
pub mod metrics;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod serviceaccount;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;
pub mod util;
pub mod workqueue;

pub use manager::{run, Config, Context, ManagerError};
pub use metrics::ControllerMetrics;
