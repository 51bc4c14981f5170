//! Scenario `scheduler-algorithm`: the scheduling algorithm alone, in
//! process, as the ceiling of what the scheduler can do on this machine.
//! No API server, no watches, no binding: a `rkube_scheduler::cache::Cache`
//! with N NodeInfos (the same node and pod templates as the `scheduler`
//! scenario), upstream's default profile, and for each pod one
//! `Algorithm::schedule` over the cache's snapshot followed by
//! `cache.assume` to the chosen node, as the scheduler's loop does. When
//! preemption nominates a node, the victims are removed from the cache
//! and the pod is scheduled again (the real loop waits for their deletion).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_scheduler::cache::Cache;
use rkube_scheduler::core::{Algorithm, Outcome};
use rkube_scheduler::framework::{CycleState, PodInfo};
use rkube_scheduler::plugins::Handle;
use rkube_scheduler::profile::Profile;
use rkube_scheduler::resources::pod_requests;

use crate::sched_workloads::{self as wl, PodKind, Workload};
use crate::stats::{ms, nanos, thousands, Summary};
use crate::{Row, Verdict};

/// Arguments of `scheduler-algorithm`.
#[derive(Clone, Debug)]
pub struct AlgoArgs {
    pub workload: Workload,
    pub nodes: u64,
    pub pods: u64,
    pub init_pods: u64,
    pub zones: u64,
    pub groups: u64,
}

/// What placing one set of pods did.
#[derive(Default)]
struct Placed {
    scheduled: u64,
    unschedulable: u64,
    victims: u64,
    elapsed: Duration,
    /// Inside `Algorithm::schedule`.
    in_schedule: Duration,
    /// Per pod: every cycle and assume it took, ns.
    per_pod: Vec<u64>,
    evaluated: u64,
    feasible: u64,
}

impl Placed {
    fn rate(&self) -> f64 {
        self.scheduled as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn describe(&self, what: &str) -> String {
        let mut per_pod = self.per_pod.clone();
        let s = Summary::of(&mut per_pod);
        let cycles = (self.scheduled + self.unschedulable).max(1);
        format!(
            "{what}: {} scheduled, {} unschedulable{} in {:.2} s ({} pods/s; {:.0} % inside \
             Algorithm::schedule, the rest snapshot + assume); per pod p50 {}, p99 {}, max {}; \
             nodes filtered per cycle {:.0}, feasible {:.0}",
            thousands(self.scheduled),
            thousands(self.unschedulable),
            if self.victims > 0 {
                format!(", {} victims removed", thousands(self.victims))
            } else {
                String::new()
            },
            self.elapsed.as_secs_f64(),
            thousands(self.rate().round() as u64),
            100.0 * self.in_schedule.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            self.evaluated as f64 / cycles as f64,
            self.feasible as f64 / cycles as f64,
        )
    }
}

/// PodInfos `{prefix}0..count` of `kind` (uids `{prefix}k`, priorities set
/// directly: there is no admission here).
fn infos(prefix: &str, kind: PodKind, count: u64, groups: u64) -> anyhow::Result<Vec<PodInfo>> {
    (0..count)
        .map(|k| {
            let name = format!("{prefix}{k}");
            let mut pod: Pod = serde_json::from_value(wl::pod(&name, kind, k, groups, true))
                .context("pod template")?;
            pod.metadata.uid = Some(name);
            Ok(PodInfo::with(Arc::new(pod), pod_requests))
        })
        .collect()
}

/// Schedules and assumes each pod in turn.
fn place(
    cache: &mut Cache,
    alg: &mut Algorithm,
    profile: &Profile,
    pods: &[PodInfo],
) -> anyhow::Result<Placed> {
    let mut p = Placed {
        per_pod: Vec::with_capacity(pods.len()),
        ..Placed::default()
    };
    let t0 = Instant::now();
    for info in pods {
        let started = Instant::now();
        for attempt in 0..2 {
            let mut state = CycleState::default();
            let snapshot = cache.snapshot();
            let t = Instant::now();
            let outcome = alg.schedule(profile, &mut state, info, snapshot, None);
            p.in_schedule += t.elapsed();
            match outcome {
                Outcome::Scheduled {
                    node,
                    evaluated,
                    feasible,
                } => {
                    p.evaluated += evaluated as u64;
                    p.feasible += feasible as u64;
                    cache.assume(info, &node);
                    p.scheduled += 1;
                    break;
                }
                Outcome::Unschedulable(fit) => {
                    p.evaluated += fit.node_statuses.len() as u64;
                    match fit.nominated.filter(|r| !r.nominated_node.is_empty()) {
                        Some(r) if attempt == 0 => {
                            for v in &r.victims {
                                cache.remove_pod(&v.uid);
                            }
                            p.victims += r.victims.len() as u64;
                        }
                        _ => {
                            p.unschedulable += 1;
                            break;
                        }
                    }
                }
                Outcome::Error(e) => bail!("scheduling {} failed: {e}", info.key),
            }
        }
        p.per_pod.push(nanos(started.elapsed()));
    }
    p.elapsed = t0.elapsed();
    Ok(p)
}

/// Runs the scenario.
pub fn run(a: &AlgoArgs) -> anyhow::Result<Row> {
    let w = a.workload;
    let t_setup = Instant::now();
    let mut cache = Cache::new();
    for i in 0..a.nodes {
        let node: Node = serde_json::from_value(wl::node(&format!("node-{i}"), i, a.zones, false))
            .context("node template")?;
        cache.upsert_node(node);
    }
    let profile = Profile::default_profile(&Handle::default())?;
    let mut alg = Algorithm::default();
    let init = infos("i-", w.init_kind(), a.init_pods, a.groups)?;
    let measured = infos("m-", w.measured_kind(), a.pods, a.groups)?;
    let setup = t_setup.elapsed();
    eprintln!(
        "rkube-bench: {} nodes and {} + {} pods built in {:.2} s; placing the init pods",
        a.nodes,
        a.init_pods,
        a.pods,
        setup.as_secs_f64()
    );
    let ip = place(&mut cache, &mut alg, &profile, &init)?;
    eprintln!("rkube-bench: {}", ip.describe("init pods"));
    eprintln!("rkube-bench: placing the measured pods");
    let mp = place(&mut cache, &mut alg, &profile, &measured)?;
    eprintln!("rkube-bench: {}", mp.describe("measured pods"));
    let expect_init_fit = w.init_kind() != PodKind::LargeCpu;
    let ok = mp.scheduled == a.pods
        && if expect_init_fit {
            ip.scheduled == a.init_pods
        } else {
            ip.scheduled == 0
        };
    let mut result = format!(
        "**{} pods/s** ({}); {}",
        thousands(mp.rate().round() as u64),
        mp.describe("measured pods"),
        ip.describe("init pods")
    );
    if !expect_init_fit && ip.unschedulable > 0 {
        result.push_str(&format!(
            "; one attempt of a pod that fits nowhere (Filter over every node, then \
             DefaultPreemption's dry run) costs {:.1} ms",
            ip.elapsed.as_secs_f64() * 1000.0 / ip.unschedulable as f64
        ));
    }
    let spec = w.spec();
    Ok(Row {
        scenario: format!("scheduler-algorithm {}", w.name()),
        setup: format!(
            "in process, one thread: {} NodeInfos, {} init + {} measured pods, default profile; {}",
            thousands(a.nodes),
            thousands(a.init_pods),
            thousands(a.pods),
            w.describe(a.groups, a.zones)
        ),
        result,
        target: format!(
            "— (ceiling for the API-server target of {} pods/s)",
            thousands(spec.target as u64)
        ),
        verdict: if ok {
            Verdict::NoTarget
        } else {
            Verdict::Failed
        },
    })
}
