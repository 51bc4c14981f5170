//! PrioritySort (QueueSort): higher `spec.priority` first, then the pod
//! queued earlier.

use std::sync::Arc;

use serde_json::Value;

use super::{Extensions, Handle, PluginError};
use crate::framework::{Plugin, QueueSortPlugin, QueuedPodInfo};

pub const NAME: &str = "PrioritySort";

pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        let (pa, pb) = (a.info.priority(), b.info.priority());
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    }
}

pub fn new(_args: &Value, _h: &Handle) -> Result<Extensions, PluginError> {
    Ok(Extensions {
        queue_sort: Some(Arc::new(PrioritySort)),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pod, queued};

    #[test]
    fn higher_priority_then_older_first() {
        let mut hi = pod("hi").build();
        hi.spec.as_mut().unwrap().priority = Some(10);
        let hi = queued(hi);
        let old = queued(pod("old").build());
        let young = queued(pod("young").build());
        let p = PrioritySort;
        assert!(p.less(&hi, &old));
        assert!(!p.less(&old, &hi));
        assert!(p.less(&old, &young));
        assert!(!p.less(&young, &old));
    }
}
