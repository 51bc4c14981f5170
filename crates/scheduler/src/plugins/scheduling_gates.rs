//! SchedulingGates (PreEnqueue): a pod with `spec.schedulingGates` stays
//! out of the active queue until every gate is removed.

use std::sync::Arc;

use serde_json::Value;

use super::{Extensions, Handle, PluginError};
use crate::framework::{Code, Plugin, PodInfo, PreEnqueuePlugin, Status};

pub const NAME: &str = "SchedulingGates";

pub struct SchedulingGates;

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreEnqueuePlugin for SchedulingGates {
    fn pre_enqueue(&self, pod: &PodInfo) -> Status {
        let gates: Vec<&str> = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .map(|g| g.iter().map(|g| g.name.as_str()).collect())
            .unwrap_or_default();
        if gates.is_empty() {
            return Status::success();
        }
        Status::new(
            Code::Pending,
            format!("waiting for scheduling gates: [{}]", gates.join(" ")),
        )
    }
}

pub fn new(_args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    Ok(Extensions {
        pre_enqueue: Some(Arc::new(SchedulingGates)),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{info, pod};
    use k8s_openapi::api::core::v1::PodSchedulingGate;

    #[test]
    fn gated_pods_wait() {
        let mut p = pod("p").build();
        assert!(SchedulingGates.pre_enqueue(&info(p.clone())).is_success());
        p.spec.as_mut().unwrap().scheduling_gates = Some(vec![PodSchedulingGate {
            name: "example.com/quota".into(),
        }]);
        let s = SchedulingGates.pre_enqueue(&info(p));
        assert_eq!(s.code, Code::Pending);
        assert_eq!(
            s.reasons,
            ["waiting for scheduling gates: [example.com/quota]"]
        );
    }
}
