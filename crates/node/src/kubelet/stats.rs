//! The Summary API (`GET /stats/summary`, upstream's `stats/v1alpha1`
//! Summary): node CPU, memory and file systems, and per pod the running
//! containers' CPU and memory with pod totals. CPU rates
//! (`usageNanoCores`) come from the previous sample of the same container,
//! pod or node, which the housekeeping loop refreshes every round.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rkube_container::Usage;
use serde::Serialize;

use super::hostfacts::{FsInfo, HostFacts};

/// The pod a container belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// A running container and its usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSample {
    pub id: String,
    pub pod: PodReference,
    pub name: String,
    pub started_at: Timestamp,
    pub usage: Usage,
}

/// Where container and pod usage comes from (cgroups).
pub trait ContainerStats: Send + Sync {
    /// The running containers with their usage.
    fn running(&self) -> Vec<ContainerSample>;
    /// The usage of a pod's cgroup, if it can be read.
    fn pod_usage(&self, uid: &str) -> Option<Usage>;
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    pub usage_core_nano_seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: Time,
    pub available_bytes: u64,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub inodes_free: u64,
    pub inodes: u64,
    pub inodes_used: u64,
}

impl FsStats {
    fn new(time: Timestamp, f: &FsInfo) -> Self {
        FsStats {
            time: Time(time),
            available_bytes: f.available,
            capacity_bytes: f.capacity,
            used_bytes: f.used,
            inodes_free: f.inodes_free,
            inodes: f.inodes,
            inodes_used: f.inodes.saturating_sub(f.inodes_free),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    pub image_fs: FsStats,
    pub container_fs: FsStats,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatsOut {
    pub name: String,
    pub start_time: Time,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: Time,
    pub containers: Vec<ContainerStatsOut>,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
}

/// Upstream's Summary document.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Timestamp,
    cpu_ns: u64,
    rate: Option<u64>,
}

/// Builds summaries, keeping the previous CPU sample of everything it saw.
pub struct StatsCollector {
    pub node_name: String,
    /// The agent's root dir (nodefs).
    pub root_dir: PathBuf,
    /// The image store (imagefs).
    pub image_dir: PathBuf,
    pub host: Arc<dyn HostFacts>,
    pub containers: Arc<dyn ContainerStats>,
    pub start_time: Timestamp,
    prev: Mutex<HashMap<String, Sample>>,
}

impl StatsCollector {
    pub fn new(
        node_name: String,
        root_dir: PathBuf,
        image_dir: PathBuf,
        host: Arc<dyn HostFacts>,
        containers: Arc<dyn ContainerStats>,
    ) -> Self {
        StatsCollector {
            node_name,
            root_dir,
            image_dir,
            host,
            containers,
            start_time: Timestamp::now(),
            prev: Mutex::new(HashMap::new()),
        }
    }

    /// CPU stats of `key` at `now`, with the rate since its last sample.
    fn cpu(
        prev: &mut HashMap<String, Sample>,
        seen: &mut Vec<String>,
        key: String,
        cpu_ns: u64,
        now: Timestamp,
    ) -> CpuStats {
        let mut rate = None;
        if let Some(p) = prev.get(&key) {
            let dt = now.duration_since(p.at).as_nanos();
            rate = if dt > 0 && cpu_ns >= p.cpu_ns {
                let r = u128::from(cpu_ns - p.cpu_ns) * 1_000_000_000 / dt.unsigned_abs();
                Some(u64::try_from(r).unwrap_or(u64::MAX))
            } else {
                p.rate
            };
        }
        prev.insert(
            key.clone(),
            Sample {
                at: now,
                cpu_ns,
                rate,
            },
        );
        seen.push(key);
        CpuStats {
            time: Time(now),
            usage_nano_cores: rate,
            usage_core_nano_seconds: cpu_ns,
        }
    }

    fn memory(now: Timestamp, u: &Usage) -> MemoryStats {
        MemoryStats {
            time: Time(now),
            available_bytes: None,
            usage_bytes: u.memory_usage_bytes,
            working_set_bytes: u.memory_working_set_bytes,
            rss_bytes: u.memory_rss_bytes,
        }
    }

    /// The summary at `now` (also refreshes the CPU samples).
    #[tracing::instrument(skip_all)]
    pub fn summary(&self, now: Timestamp) -> Summary {
        let mut prev = self.prev.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = Vec::new();
        let cpu = self
            .host
            .cpu_usage_ns()
            .ok()
            .map(|ns| Self::cpu(&mut prev, &mut seen, "node".into(), ns, now));
        let memory = self.host.meminfo().ok().map(|m| MemoryStats {
            time: Time(now),
            available_bytes: Some(m.available()),
            usage_bytes: m.usage(),
            working_set_bytes: m.working_set(),
            rss_bytes: m.anon,
        });
        let nodefs = self.host.fs(&self.root_dir).ok();
        let imagefs = self.host.fs(&self.image_dir).ok();
        let runtime = imagefs.map(|f| RuntimeStats {
            image_fs: FsStats::new(now, &f),
            container_fs: FsStats::new(now, &f),
        });
        let mut by_pod: std::collections::BTreeMap<PodReference, Vec<ContainerSample>> =
            Default::default();
        for c in self.containers.running() {
            by_pod.entry(c.pod.clone()).or_default().push(c);
        }
        let mut pods = Vec::new();
        for (pod_ref, mut ctrs) in by_pod {
            ctrs.sort_by(|a, b| a.name.cmp(&b.name));
            let total = self
                .containers
                .pod_usage(&pod_ref.uid)
                .unwrap_or_else(|| sum(&ctrs));
            let containers = ctrs
                .iter()
                .map(|c| ContainerStatsOut {
                    name: c.name.clone(),
                    start_time: Time(c.started_at),
                    cpu: Self::cpu(
                        &mut prev,
                        &mut seen,
                        format!("ctr/{}", c.id),
                        c.usage.cpu_usage_ns,
                        now,
                    ),
                    memory: Self::memory(now, &c.usage),
                })
                .collect();
            let start = ctrs.iter().map(|c| c.started_at).min().unwrap_or(now);
            pods.push(PodStats {
                cpu: Self::cpu(
                    &mut prev,
                    &mut seen,
                    format!("pod/{}", pod_ref.uid),
                    total.cpu_usage_ns,
                    now,
                ),
                memory: Self::memory(now, &total),
                pod_ref,
                start_time: Time(start),
                containers,
            });
        }
        prev.retain(|k, _| seen.contains(k));
        Summary {
            node: NodeStats {
                node_name: self.node_name.clone(),
                start_time: Time(self.start_time),
                cpu,
                memory,
                fs: nodefs.map(|f| FsStats::new(now, &f)),
                runtime,
            },
            pods,
        }
    }
}

impl crate::server::SummarySource for StatsCollector {
    fn summary_json(&self) -> serde_json::Value {
        serde_json::to_value(self.summary(Timestamp::now())).unwrap_or_default()
    }
}

fn sum(ctrs: &[ContainerSample]) -> Usage {
    ctrs.iter().fold(Usage::default(), |a, c| Usage {
        cpu_usage_ns: a.cpu_usage_ns + c.usage.cpu_usage_ns,
        memory_usage_bytes: a.memory_usage_bytes + c.usage.memory_usage_bytes,
        memory_working_set_bytes: a.memory_working_set_bytes + c.usage.memory_working_set_bytes,
        memory_rss_bytes: a.memory_rss_bytes + c.usage.memory_rss_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::hostfacts::{FactsError, MemInfo};
    use std::path::Path;

    struct FakeHost {
        cpu: Mutex<u64>,
    }

    impl HostFacts for FakeHost {
        fn meminfo(&self) -> Result<MemInfo, FactsError> {
            Ok(MemInfo {
                total: 1000,
                free: 300,
                inactive_file: 100,
                anon: 400,
            })
        }
        fn cpu_usage_ns(&self) -> Result<u64, FactsError> {
            Ok(*self.cpu.lock().unwrap())
        }
        fn fs(&self, path: &Path) -> Result<FsInfo, FactsError> {
            let cap = if path == Path::new("/images") {
                50
            } else {
                100
            };
            Ok(FsInfo {
                capacity: cap,
                available: 40,
                used: cap - 40,
                inodes: 10,
                inodes_free: 4,
            })
        }
    }

    struct FakeContainers {
        samples: Mutex<Vec<ContainerSample>>,
    }

    impl ContainerStats for FakeContainers {
        fn running(&self) -> Vec<ContainerSample> {
            self.samples.lock().unwrap().clone()
        }
        fn pod_usage(&self, _uid: &str) -> Option<Usage> {
            None
        }
    }

    fn pod(name: &str) -> PodReference {
        PodReference {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
        }
    }

    fn sample(id: &str, pod_name: &str, cpu: u64, ws: u64) -> ContainerSample {
        ContainerSample {
            id: id.into(),
            pod: pod(pod_name),
            name: id.into(),
            started_at: Timestamp::from_second(1_700_000_000).unwrap(),
            usage: Usage {
                cpu_usage_ns: cpu,
                memory_usage_bytes: ws + 10,
                memory_working_set_bytes: ws,
                memory_rss_bytes: ws / 2,
            },
        }
    }

    #[test]
    fn summary_groups_containers_by_pod_and_rates_cpu_between_samples() {
        let host = Arc::new(FakeHost {
            cpu: Mutex::new(1_000_000_000),
        });
        let ctrs = Arc::new(FakeContainers {
            samples: Mutex::new(vec![
                sample("b", "web", 100, 2000),
                sample("a", "web", 300, 1000),
                sample("c", "db", 0, 500),
            ]),
        });
        let c = StatsCollector::new(
            "n1".into(),
            "/root".into(),
            "/images".into(),
            host.clone(),
            ctrs.clone(),
        );
        let t0 = Timestamp::from_second(1_700_000_100).unwrap();
        let s = c.summary(t0);
        assert_eq!(s.node.node_name, "n1");
        let mem = s.node.memory.as_ref().unwrap();
        assert_eq!(
            (
                mem.usage_bytes,
                mem.working_set_bytes,
                mem.available_bytes,
                mem.rss_bytes
            ),
            (700, 600, Some(400), 400)
        );
        assert_eq!(s.node.fs.as_ref().unwrap().inodes_used, 6);
        assert_eq!(s.node.runtime.as_ref().unwrap().image_fs.capacity_bytes, 50);
        assert_eq!(s.node.cpu.as_ref().unwrap().usage_nano_cores, None);
        assert_eq!(s.pods.len(), 2);
        let web = s.pods.iter().find(|p| p.pod_ref.name == "web").unwrap();
        let names: Vec<&str> = web.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            web.memory.working_set_bytes, 3000,
            "pod = sum of containers"
        );
        assert_eq!(web.cpu.usage_core_nano_seconds, 400);

        // Two seconds later: 1 s of node CPU, 2 s of container a's.
        *host.cpu.lock().unwrap() = 2_000_000_000;
        ctrs.samples.lock().unwrap()[1].usage.cpu_usage_ns = 300 + 4_000_000_000;
        ctrs.samples.lock().unwrap().pop();
        let s = c.summary(t0 + std::time::Duration::from_secs(2));
        assert_eq!(
            s.node.cpu.as_ref().unwrap().usage_nano_cores,
            Some(500_000_000)
        );
        let web = &s.pods[0];
        let a = &web.containers[0];
        assert_eq!(a.cpu.usage_nano_cores, Some(2_000_000_000));
        assert_eq!(web.containers[1].cpu.usage_nano_cores, Some(0));
        assert_eq!(web.cpu.usage_nano_cores, Some(2_000_000_000));
        assert_eq!(s.pods.len(), 1, "the db pod's container is gone");
        assert!(!c.prev.lock().unwrap().contains_key("ctr/c"));

        // The JSON has upstream's field names.
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["pods"][0]["podRef"]["uid"], "uid-web");
        assert_eq!(
            v["pods"][0]["containers"][0]["memory"]["workingSetBytes"],
            1000
        );
        assert!(v["node"]["cpu"]["usageCoreNanoSeconds"].is_u64());
        assert!(v["node"]["runtime"]["imageFs"]["availableBytes"].is_u64());
        assert!(v["pods"][0]["startTime"].is_string());
    }
}
