//! Fetches the ConfigMaps and Secrets a pod refers to (env, envFrom,
//! volumes, projected sources, imagePullSecrets) from the API server, and
//! keeps every Service in memory (one watch for the node, as upstream's
//! service lister) for the pods' service environment variables.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tracing::Instrument;

use super::backend::DockerConfig;
use super::env::EnvSources;

/// Names of ConfigMaps and Secrets a pod refers to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refs {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

fn container_refs(c: &Container, r: &mut Refs) {
    for f in c.env_from.iter().flatten() {
        if let Some(cm) = &f.config_map_ref {
            r.config_maps.insert(cm.name.clone());
        }
        if let Some(s) = &f.secret_ref {
            r.secrets.insert(s.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(k) = &from.config_map_key_ref {
            r.config_maps.insert(k.name.clone());
        }
        if let Some(k) = &from.secret_key_ref {
            r.secrets.insert(k.name.clone());
        }
    }
}

/// What `pod` refers to.
pub fn refs(pod: &Pod) -> Refs {
    let mut r = Refs::default();
    let Some(spec) = pod.spec.as_ref() else {
        return r;
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        container_refs(c, &mut r);
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            r.config_maps.insert(c.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            r.secrets.insert(s);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &p.config_map {
                r.config_maps.insert(c.name.clone());
            }
            if let Some(s) = &p.secret {
                r.secrets.insert(s.name.clone());
            }
        }
    }
    r
}

/// Fills `src` with the objects `pod` refers to (absent ones stay absent).
pub async fn fetch(client: &Client, pod: &Pod, src: &mut EnvSources) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let r = refs(pod);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    src.config_maps.clear();
    for name in &r.config_maps {
        if let Some(cm) = cms.get_opt(name).await? {
            src.config_maps.insert(name.clone(), cm);
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    src.secrets.clear();
    for name in &r.secrets {
        if let Some(s) = secrets.get_opt(name).await? {
            src.secrets.insert(name.clone(), s);
        }
    }
    Ok(())
}

/// The `.dockerconfigjson` of each imagePullSecret that exists.
pub async fn pull_secrets(client: &Client, pod: &Pod) -> Vec<DockerConfig> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    let names = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    for r in names {
        match api.get_opt(&r.name).await {
            Ok(Some(s)) => {
                let data = s.data.unwrap_or_default();
                if let Some(b) = data
                    .get(".dockerconfigjson")
                    .or_else(|| data.get(".dockercfg"))
                {
                    out.push(DockerConfig(b.0.clone()));
                }
            }
            Ok(None) => tracing::warn!(secret = %r.name, "image pull secret not found"),
            Err(e) => tracing::warn!(secret = %r.name, error = %e, "image pull secret"),
        }
    }
    out
}

/// Aborts the watch task when the last [`Services`] goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every Service of the cluster, kept by a watch.
#[derive(Clone)]
pub struct Services {
    store: Store<Service>,
    _task: Option<Arc<AbortOnDrop>>,
}

impl Services {
    /// Starts watching all Services (needs a tokio runtime).
    pub fn watch(client: Client) -> Self {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher::watcher(Api::<Service>::all(client), watcher::Config::default()),
        )
        .default_backoff()
        .touched_objects();
        let task = tokio::spawn(
            async move {
                futures::pin_mut!(stream);
                while let Some(ev) = stream.next().await {
                    if let Err(e) = ev {
                        tracing::warn!(error = %e, "service watch");
                    }
                }
            }
            .instrument(tracing::info_span!("service_source")),
        );
        Services {
            store,
            _task: Some(Arc::new(AbortOnDrop(task))),
        }
    }

    /// Services from a store fed by someone else (tests).
    pub fn from_store(store: Store<Service>) -> Self {
        Services { store, _task: None }
    }

    /// Whether the first list has arrived.
    pub fn synced(&self) -> bool {
        use futures::FutureExt;
        self.store.wait_until_ready().now_or_never().is_some()
    }

    /// The service environment variables of a pod in `ns`.
    pub fn env_for(&self, ns: &str, enable_service_links: bool) -> BTreeMap<String, String> {
        let all = self.store.state();
        super::service_env::for_namespace(all.iter().map(|s| s.as_ref()), ns, enable_service_links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, EnvFromSource, PodSpec, SecretVolumeSource, Volume,
    };

    #[test]
    fn collects_references() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    env_from: Some(vec![EnvFromSource {
                        config_map_ref: Some(ConfigMapEnvSource {
                            name: "a".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                volumes: Some(vec![Volume {
                    name: "v".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some("s".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = refs(&pod);
        assert_eq!(r.config_maps.into_iter().collect::<Vec<_>>(), ["a"]);
        assert_eq!(r.secrets.into_iter().collect::<Vec<_>>(), ["s"]);
    }

    #[test]
    fn services_from_a_store() {
        use k8s_openapi::api::core::v1::ServiceSpec;
        let (store, mut writer) = reflector::store::<Service>();
        let services = Services::from_store(store);
        assert!(!services.synced(), "nothing listed yet");
        let mut s = Service::default();
        s.metadata.name = Some("kubernetes".into());
        s.metadata.namespace = Some("default".into());
        s.spec = Some(ServiceSpec {
            cluster_ip: Some("10.96.0.1".into()),
            ports: Some(vec![Default::default()]),
            ..Default::default()
        });
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(s));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert!(services.synced());
        let env = services.env_for("app", false);
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
    }
}
