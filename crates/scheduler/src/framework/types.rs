//! What plugins look at: a pod with its precomputed requests
//! ([`PodInfo`]), a node with the pods on it and their summed requests
//! ([`NodeInfo`]), and the cycle's [`Snapshot`] of all nodes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Upstream's default CPU request assumed for scoring a container that
/// requests none (`DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Upstream's default memory request assumed for scoring
/// (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources: CPU in millicores, the rest in units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Pod count (only meaningful for allocatable).
    pub pods: i64,
    /// Extended and other scalar resources (e.g. `nvidia.com/gpu`,
    /// `hugepages-2Mi`), by name.
    pub scalar: BTreeMap<String, i64>,
}

/// Parses a quantity the way the API server accepted it; an unparsable
/// one counts as zero.
fn parse(q: &Quantity, milli: bool) -> i64 {
    match rkube_api::quantity::Quantity::parse(&q.0) {
        Ok(v) => {
            let n = if milli {
                v.try_milli_value()
            } else {
                v.try_value()
            };
            n.map(|n| n.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
                .unwrap_or(i64::MAX)
        }
        Err(_) => 0,
    }
}

impl Resources {
    /// From a resource list (`requests`, `allocatable`, `overhead`).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = parse(q, true),
                "memory" => r.memory = parse(q, false),
                "ephemeral-storage" => r.ephemeral_storage = parse(q, false),
                "pods" => r.pods = parse(q, false),
                other => {
                    r.scalar.insert(other.to_string(), parse(q, false));
                }
            }
        }
        r
    }

    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        self.pods = self.pods.saturating_add(o.pods);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts `o` from `self`.
    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        self.pods = self.pods.saturating_sub(o.pods);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_sub(*v);
        }
    }

    /// Each resource the larger of the two.
    pub fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        self.pods = self.pods.max(o.pods);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// A pod with what the scheduler derives from it once.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub uid: String,
    /// Effective requests (containers, init containers by upstream's
    /// max/sum rule, plus overhead), as NodeResourcesFit filters on.
    pub requests: Resources,
    /// The same with upstream's non-zero defaults for containers without a
    /// CPU/memory request, as scoring uses.
    pub non_zero_requests: Resources,
}

/// Effective requests of a pod; `non_zero` substitutes upstream's defaults
/// for containers that request no CPU or memory.
pub type RequestsFn = fn(&Pod, bool) -> Resources;

impl PodInfo {
    /// Builds the info with `requests` computing the effective requests.
    pub fn with(pod: Arc<Pod>, requests: RequestsFn) -> PodInfo {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        PodInfo {
            key: format!("{ns}/{name}"),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            requests: requests(&pod, false),
            non_zero_requests: requests(&pod, true),
            pod,
        }
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// The pod's labels (empty if none).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    /// `spec.priority` (0 if unset).
    pub fn priority(&self) -> i32 {
        self.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
    }
}

/// A host port in use: protocol, host IP (`0.0.0.0` for any), port.
pub type HostPort = (String, String, i32);

/// A node and the pods on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub allocatable: Resources,
    pub pods: Vec<Arc<PodInfo>>,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Sum of the pods' non-zero requests (for scoring).
    pub non_zero_requested: Resources,
    /// Host ports taken by the pods.
    pub used_ports: Vec<HostPort>,
    /// Pods on the node with required pod affinity or anti-affinity terms.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
    /// Bumped on every change, so snapshots copy only changed nodes.
    pub generation: u64,
}

/// The host ports a pod asks for.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut out = Vec::new();
    let Some(spec) = &pod.spec else { return out };
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                let ip = p
                    .host_ip
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into());
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                out.push((proto, ip, hp));
            }
        }
    }
    out
}

fn affinity_flags(pod: &Pod) -> (bool, bool) {
    let aff = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let has_aff = aff.and_then(|a| a.pod_affinity.as_ref()).is_some_and(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
            .is_some_and(|t| !t.is_empty())
            || a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
                .is_some_and(|t| !t.is_empty())
    });
    let anti = aff.and_then(|a| a.pod_anti_affinity.as_ref());
    let has_anti = anti.is_some_and(|a| {
        a.preferred_during_scheduling_ignored_during_execution
            .as_ref()
            .is_some_and(|t| !t.is_empty())
            || a.required_during_scheduling_ignored_during_execution
                .as_ref()
                .is_some_and(|t| !t.is_empty())
    });
    let required_anti = anti.is_some_and(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    });
    (has_aff || has_anti, required_anti)
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .map(Resources::from_list)
            .unwrap_or_default();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            node,
            allocatable,
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            generation: 0,
        }
    }

    /// Replaces the Node object (pods stay).
    pub fn set_node(&mut self, node: Arc<Node>) {
        let fresh = NodeInfo::new(node);
        self.node = fresh.node;
        self.allocatable = fresh.allocatable;
        self.generation += 1;
    }

    /// The node's labels (empty if none).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.requested.pods += 1;
        self.non_zero_requested.add(&p.non_zero_requests);
        self.used_ports.extend(host_ports(&p.pod));
        let (aff, anti) = affinity_flags(&p.pod);
        self.pods_with_affinity += aff as usize;
        self.pods_with_required_anti_affinity += anti as usize;
        self.pods.push(p);
        self.generation += 1;
    }

    /// Removes the pod with this uid; false if it is not here.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.uid == uid) else {
            return false;
        };
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.requested.pods -= 1;
        self.non_zero_requested.sub(&p.non_zero_requests);
        for hp in host_ports(&p.pod) {
            if let Some(j) = self.used_ports.iter().position(|x| *x == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        let (aff, anti) = affinity_flags(&p.pod);
        self.pods_with_affinity -= aff as usize;
        self.pods_with_required_anti_affinity -= anti as usize;
        self.generation += 1;
        true
    }
}

/// All nodes as one scheduling cycle sees them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    pub index: HashMap<String, usize>,
    /// Nodes that have pods with (anti-)affinity terms, for InterPodAffinity.
    pub have_pods_with_affinity: Vec<usize>,
    pub have_pods_with_required_anti_affinity: Vec<usize>,
}

impl Snapshot {
    /// A snapshot of these nodes.
    pub fn new(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        let mut s = Snapshot {
            index: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), i))
                .collect(),
            nodes,
            ..Default::default()
        };
        s.refresh_affinity_lists();
        s
    }

    /// Recomputes which nodes have pods with (anti-)affinity terms (no
    /// string hashing: cheap enough to run after every such pod).
    pub fn refresh_affinity_lists(&mut self) {
        self.have_pods_with_affinity.clear();
        self.have_pods_with_required_anti_affinity.clear();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.pods_with_affinity > 0 {
                self.have_pods_with_affinity.push(i);
            }
            if n.pods_with_required_anti_affinity > 0 {
                self.have_pods_with_required_anti_affinity.push(i);
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }
}
