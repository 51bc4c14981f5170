//! DefaultBinder (Bind): posts a Binding to the pod's `binding`
//! subresource.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::Value;

use super::{Extensions, Handle, PluginError};
use crate::framework::{BindPlugin, Plugin, PodInfo, Status};

pub const NAME: &str = "DefaultBinder";

pub struct DefaultBinder {
    client: Option<kube::Client>,
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }
}

#[async_trait]
impl BindPlugin for DefaultBinder {
    async fn bind(&self, pod: &PodInfo, node: &str) -> Status {
        let Some(client) = &self.client else {
            return Status::error("no API client");
        };
        let name = pod.pod.metadata.name.clone().unwrap_or_default();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(pod.namespace().to_string()),
                uid: pod.pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                ..Default::default()
            },
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), pod.namespace());
        match api
            .create_subresource::<Binding, Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await
        {
            Ok(_) => Status::success(),
            Err(e) => Status::error(e.to_string()),
        }
    }
}

pub fn new(_args: &Value, h: &Handle) -> Result<Extensions, PluginError> {
    Ok(Extensions {
        bind: Some(Arc::new(DefaultBinder {
            client: h.client.clone(),
        })),
        ..Default::default()
    })
}
