//! NodeName (Filter): a pod that names a node in `spec.nodeName` fits only
//! that node. (The API server's pods normally arrive here unbound; this
//! matters for pods whose nodeName a PreFilter or an admission set.)

use std::sync::Arc;

use serde_json::Value;

use super::{Extensions, Handle, PluginError};
use crate::framework::{CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeName";
/// The reason upstream reports.
pub const REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(n) if !n.is_empty() && n != node.name => Status::unresolvable(REASON),
            _ => Status::success(),
        }
    }
}

pub fn new(_args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    Ok(Extensions {
        filter: Some(Arc::new(NodeName)),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{info, node, pod};

    #[test]
    fn only_the_named_node() {
        let st = CycleState::default();
        let a = NodeInfo::new(Arc::new(node("a").build()));
        let b = NodeInfo::new(Arc::new(node("b").build()));
        let mut p = pod("p").build();
        assert!(NodeName.filter(&st, &info(p.clone()), &a).is_success());
        p.spec.as_mut().unwrap().node_name = Some("b".into());
        let p = info(p);
        assert_eq!(NodeName.filter(&st, &p, &a), Status::unresolvable(REASON));
        assert!(NodeName.filter(&st, &p, &b).is_success());
    }
}
