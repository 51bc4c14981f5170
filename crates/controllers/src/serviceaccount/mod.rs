//! The ServiceAccount controller (upstream's `serviceaccount-controller`,
//! `--controllers` name `serviceaccount`): every Active namespace gets a
//! `default` ServiceAccount, created again if it is deleted.
//!
//! As upstream (`pkg/controller/serviceaccount`): namespaces are queued
//! when added or updated and when a ServiceAccount is deleted; a namespace
//! that is not Active (Terminating) or being deleted is skipped, and
//! AlreadyExists or a "namespace is being terminated" refusal is not an
//! error.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::informers::Change;
use crate::manager::{self, Context, Running};

/// The ServiceAccounts every namespace gets (upstream's
/// `serviceAccountsToEnsure` default).
pub const ENSURED: &[&str] = &["default"];

#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    #[error("creating serviceaccount {0}/{1}: {2}")]
    Create(String, String, #[source] kube::Error),
}

/// Whether the namespace should have its ServiceAccounts: it is Active
/// and not being deleted.
pub fn namespace_wants_accounts(ns: &Namespace) -> bool {
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
    ns.metadata.deletion_timestamp.is_none() && phase == Some("Active")
}

/// The ensured ServiceAccounts for which `exists` says no.
pub fn missing(exists: impl Fn(&str) -> bool) -> Vec<&'static str> {
    ENSURED.iter().copied().filter(|n| !exists(n)).collect()
}

pub fn start(ctx: &Context) -> Running {
    let namespaces = ctx.informers.get::<Namespace>();
    let accounts = ctx.informers.get::<ServiceAccount>();
    let queue = ctx.queue("serviceaccount");
    {
        let q = queue.clone();
        namespaces.on_change(move |c: &Change<Namespace>| {
            if let Change::Applied { new, .. } = c {
                q.add(new.name_any());
            }
        });
    }
    {
        let q = queue.clone();
        accounts.on_change(move |c: &Change<ServiceAccount>| {
            if let Change::Deleted(sa) = c {
                if let Some(ns) = sa.namespace() {
                    q.add(ns);
                }
            }
        });
    }
    let client = ctx.client.clone();
    let (ns_store, sa_store) = (namespaces.store(), accounts.store());
    let workers = ctx.config.workers;
    Box::pin(async move {
        let _ = ns_store.wait_until_ready().await;
        let _ = sa_store.wait_until_ready().await;
        let ctl = Arc::new(Controller {
            client,
            ns_store,
            sa_store,
        });
        manager::run_workers(queue, workers, move |ns| {
            let ctl = ctl.clone();
            async move { ctl.sync(&ns).await }
        })
        .await;
        Ok(())
    })
}

struct Controller {
    client: Client,
    ns_store: Store<Namespace>,
    sa_store: Store<ServiceAccount>,
}

impl Controller {
    async fn sync(&self, ns: &str) -> Result<Option<Duration>, ServiceAccountError> {
        let Some(namespace) = self.ns_store.get(&ObjectRef::new(ns)) else {
            return Ok(None);
        };
        if !namespace_wants_accounts(&namespace) {
            return Ok(None);
        }
        let exists = |n: &str| self.sa_store.get(&ObjectRef::new(n).within(ns)).is_some();
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        for name in missing(exists) {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(ns.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &sa).await {
                Ok(_) => tracing::info!(namespace = ns, name, "created serviceaccount"),
                Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                Err(kube::Error::Api(s)) if terminating(&s) => {}
                Err(e) => {
                    return Err(ServiceAccountError::Create(ns.into(), name.into(), e));
                }
            }
        }
        Ok(None)
    }
}

/// The API server refused because the namespace is being terminated
/// (cause `NamespaceTerminating`).
fn terminating(s: &kube::core::Status) -> bool {
    s.details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
        || s.message.contains("being terminated")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(phase: Option<&str>, deleting: bool) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("x".into()),
                deletion_timestamp: deleting
                    .then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            status: phase.map(|p| NamespaceStatus {
                phase: Some(p.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_active_namespaces_get_accounts() {
        assert!(namespace_wants_accounts(&ns(Some("Active"), false)));
        assert!(!namespace_wants_accounts(&ns(Some("Terminating"), false)));
        assert!(!namespace_wants_accounts(&ns(Some("Active"), true)));
        assert!(!namespace_wants_accounts(&ns(None, false)));
    }

    #[test]
    fn creates_only_what_is_missing() {
        assert_eq!(missing(|_| false), vec!["default"]);
        assert!(missing(|n| n == "default").is_empty());
    }
}
