//! NodeUnschedulable (Filter): nodes with `spec.unschedulable` (cordoned)
//! take no pods, unless the pod tolerates the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use std::sync::Arc;

use serde_json::Value;

use super::{Extensions, Handle, PluginError};
use crate::framework::{CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeUnschedulable";
/// The reason upstream reports.
pub const REASON: &str = "node(s) were unschedulable";
const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Status::success();
        }
        let tolerated = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_ref())
            .is_some_and(|ts| {
                ts.iter().any(|t| {
                    let key_ok = match t.key.as_deref() {
                        None | Some("") => t.operator.as_deref() == Some("Exists"),
                        Some(k) => k == TAINT_KEY,
                    };
                    let effect_ok =
                        matches!(t.effect.as_deref(), None | Some("") | Some("NoSchedule"));
                    let op_ok = match t.operator.as_deref() {
                        Some("Exists") => true,
                        _ => t.value.as_deref().unwrap_or_default().is_empty(),
                    };
                    key_ok && effect_ok && op_ok
                })
            });
        if tolerated {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

pub fn new(_args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    Ok(Extensions {
        filter: Some(Arc::new(NodeUnschedulable)),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{info, node, pod};
    use k8s_openapi::api::core::v1::Toleration;

    #[test]
    fn cordoned_nodes_reject_unless_tolerated() {
        let st = CycleState::default();
        let mut n = node("n").build();
        let p = info(pod("p").build());
        assert!(NodeUnschedulable
            .filter(&st, &p, &NodeInfo::new(Arc::new(n.clone())))
            .is_success());
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
        let ni = NodeInfo::new(Arc::new(n));
        let s = NodeUnschedulable.filter(&st, &p, &ni);
        assert_eq!(s, Status::unresolvable(REASON));
        let mut tp = pod("t").build();
        tp.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some(TAINT_KEY.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert!(NodeUnschedulable.filter(&st, &info(tp), &ni).is_success());
    }
}
