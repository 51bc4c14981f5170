//! The rkube controllers: the control loops upstream runs in
//! kube-controller-manager.
//!
//! Each controller lives in its own module and follows the kube-runtime
//! pattern: a watcher lists and watches its objects, a reflector/store (a
//! `kube::runtime::reflector` store, or the controller's own index of what it
//! needs) keeps the current state, and a reconcile step acts on it. Controllers
//! talk to the API server only through the Kubernetes API, with the `kube`
//! crate, so each runs embedded in `rkube server` or alone against any
//! compatible API server.
//!
//! * [`nodeipam`]: gives each Node a pod CIDR from the cluster CIDR.

pub mod nodeipam;
