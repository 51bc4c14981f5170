//! A pod's effective resource requests, as upstream computes them
//! (`resourcehelper.PodRequests`): the sum over containers, against the
//! largest init container (sidecars, init containers with restartPolicy
//! Always, add up), plus the pod overhead.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::types::{DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST};
use crate::framework::Resources;

/// Effective requests; with `non_zero`, a container without a CPU or
/// memory request counts upstream's defaults (100m, 200Mi), as scoring does.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = &pod.spec else {
        return Resources::default();
    };
    let container = |c: &k8s_openapi::api::core::v1::Container| {
        let mut r = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .map(Resources::from_list)
            .unwrap_or_default();
        if non_zero {
            let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            if req.is_none_or(|m| !m.contains_key("cpu")) {
                r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
            }
            if req.is_none_or(|m| !m.contains_key("memory")) {
                r.memory = DEFAULT_MEMORY_REQUEST;
            }
        }
        r
    };
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(&container(c));
    }
    // Init containers run one at a time, sidecars keep running.
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut at_start = r;
            at_start.add(&sidecars);
            init_max.max_with(&at_start);
        }
    }
    sum.add(&sidecars);
    sum.max_with(&init_max);
    if let Some(overhead) = &spec.overhead {
        sum.add(&Resources::from_list(overhead));
    }
    sum
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
