//! Random interleavings of node churn, status updates, watch delivery and
//! patch results (including lost answers and patches the server applies
//! late) against a model API server: no two nodes ever carry the same
//! podCIDR, the bookkeeping stays consistent, and once things settle every
//! node has one and no subnet is left over.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Delete(u8),
    /// A status update (new resourceVersion).
    Touch(u8),
    Deliver,
    Dispatch,
    /// Complete the n-th (mod len) in-flight patch.
    Complete(usize, Fate),
    /// The server applies the n-th (mod len) delayed patch now.
    Land(usize),
    Tick,
    Relist,
}

#[derive(Debug, Clone, Copy)]
enum Fate {
    /// The server answers (re-patching on conflicts).
    Ok,
    /// The server keeps refusing; the re-read works.
    Rejected,
    /// No answer, the re-read fails; applied, not applied, or applied
    /// later if the node is still at the patch's resourceVersion.
    LostApplied,
    LostNotApplied,
    LostDelayed,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..7).prop_map(Op::Create),
        2 => (0u8..7).prop_map(Op::Delete),
        1 => (0u8..7).prop_map(Op::Touch),
        5 => Just(Op::Deliver),
        3 => Just(Op::Dispatch),
        4 => (any::<usize>(), fate()).prop_map(|(i, f)| Op::Complete(i, f)),
        1 => any::<usize>().prop_map(Op::Land),
        1 => Just(Op::Tick),
        1 => Just(Op::Relist),
    ]
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        12 => Just(Fate::Ok),
        2 => Just(Fate::Rejected),
        1 => Just(Fate::LostApplied),
        1 => Just(Fate::LostNotApplied),
        1 => Just(Fate::LostDelayed),
    ]
}

enum Ev {
    Apply(NodeView),
    Delete(String),
}

struct Server {
    uid: String,
    rv: u64,
    cidr: Option<String>,
}

#[derive(Default)]
struct Model {
    nodes: BTreeMap<String, Server>,
    events: VecDeque<Ev>,
    inflight: Vec<PatchRequest>,
    delayed: Vec<PatchRequest>,
    rv: u64,
}

impl Model {
    fn view(&self, name: &str) -> NodeView {
        let n = &self.nodes[name];
        NodeView {
            name: name.into(),
            uid: n.uid.clone(),
            resource_version: n.rv.to_string(),
            pod_cidr: n.cidr.clone(),
        }
    }

    fn write(&mut self, name: &str, cidr: Option<String>) {
        self.rv += 1;
        let n = self.nodes.get_mut(name).unwrap();
        n.rv = self.rv;
        if cidr.is_some() {
            n.cidr = cidr;
        }
        let v = self.view(name);
        self.events.push_back(Ev::Apply(v));
    }

    /// What the controller's re-read concludes.
    fn reread(&self, p: &PatchRequest) -> PatchOutcome {
        match self.nodes.get(&p.node) {
            None => PatchOutcome::NotFound,
            Some(n) if n.uid != p.uid => PatchOutcome::Failed,
            Some(n) => match &n.cidr {
                Some(c) if *c == p.cidr => PatchOutcome::Patched,
                Some(_) => PatchOutcome::Taken,
                None => PatchOutcome::Failed,
            },
        }
    }

    /// The API server applying the patch at resourceVersion `rv` (None:
    /// the reconcile re-patches at the current one).
    fn apply(&mut self, p: &PatchRequest, rv: Option<u64>) -> bool {
        let ok = self.nodes.get(&p.node).is_some_and(|n| {
            rv.is_none_or(|rv| rv == n.rv)
                && n.uid == p.uid
                && n.cidr.as_ref().is_none_or(|c| *c == p.cidr)
        });
        if ok {
            self.write(&p.node, Some(p.cidr.clone()));
        }
        ok
    }

    fn complete(&mut self, p: PatchRequest, fate: Fate) -> PatchOutcome {
        match fate {
            Fate::Ok if self.apply(&p, None) => PatchOutcome::Patched,
            Fate::Ok | Fate::Rejected => self.reread(&p),
            Fate::LostApplied => {
                self.apply(&p, None);
                PatchOutcome::Unknown
            }
            Fate::LostNotApplied => PatchOutcome::Unknown,
            Fate::LostDelayed => {
                self.delayed.push(p);
                PatchOutcome::Unknown
            }
        }
    }

    fn land(&mut self, p: PatchRequest) {
        let rv = p.resource_version.parse().unwrap();
        self.apply(&p, Some(rv));
    }

    fn assert_distinct(&self) -> Result<(), TestCaseError> {
        let mut seen = HashSet::new();
        for (name, n) in &self.nodes {
            if let Some(c) = &n.cidr {
                prop_assert!(seen.insert(c.clone()), "{} given twice (to {})", c, name);
            }
        }
        Ok(())
    }
}

fn state(cidr: &str, mask: u8) -> State {
    State::new(CidrSet::new(cidr, mask).unwrap())
}

fn deliver(s: &mut State, ev: Ev) {
    match ev {
        Ev::Apply(v) => s.on_apply(v),
        Ev::Delete(n) => s.on_delete(&n),
    }
}

/// The watch restarts: pending events give way to a list of the
/// current state.
fn relist(s: &mut State, m: &mut Model) {
    m.events.clear();
    s.on_init();
    for n in m.nodes.keys() {
        s.on_apply(m.view(n));
    }
    s.on_init_done();
}

/// Lands or drops delayed patches, delivers every event, lets every
/// patch succeed, runs every retry, until nothing moves.
fn settle(s: &mut State, m: &mut Model, now: Instant, far: Instant) -> Result<(), TestCaseError> {
    for p in std::mem::take(&mut m.delayed) {
        m.land(p);
        m.assert_distinct()?;
    }
    for _ in 0..100 {
        while let Some(ev) = m.events.pop_front() {
            deliver(s, ev);
        }
        for p in std::mem::take(&mut m.inflight) {
            let (node, attempt) = (p.node.clone(), p.attempt);
            let out = m.complete(p, Fate::Ok);
            s.on_patch_done(&node, attempt, out, now);
        }
        s.pop_due(far);
        while let Some(p) = s.next_patch(now) {
            m.inflight.push(p);
        }
        m.assert_distinct()?;
        s.check();
        if m.events.is_empty() && m.inflight.is_empty() {
            return Ok(());
        }
    }
    prop_assert!(false, "did not settle");
    Ok(())
}

proptest! {
    #[test]
    fn never_duplicates_and_settles(ops in proptest::collection::vec(op(), 1..200)) {
        let now = Instant::now();
        let far = now + Duration::from_secs(86_400);
        let mut s = state("10.0.0.0/27", 30);
        let mut m = Model::default();
        s.on_init();
        s.on_init_done();
        for op in ops {
            match op {
                Op::Create(i) => {
                    let name = format!("n{i}");
                    if !m.nodes.contains_key(&name) {
                        m.rv += 1;
                        let uid = format!("u{}", m.rv);
                        m.nodes.insert(name.clone(), Server { uid, rv: 0, cidr: None });
                        m.write(&name, None);
                    }
                }
                Op::Delete(i) => {
                    let name = format!("n{i}");
                    if m.nodes.remove(&name).is_some() {
                        m.events.push_back(Ev::Delete(name));
                    }
                }
                Op::Touch(i) => {
                    let name = format!("n{i}");
                    if m.nodes.contains_key(&name) {
                        m.write(&name, None);
                    }
                }
                Op::Deliver => {
                    if let Some(ev) = m.events.pop_front() {
                        deliver(&mut s, ev);
                    }
                }
                Op::Dispatch => {
                    if let Some(p) = s.next_patch(now) {
                        m.inflight.push(p);
                    }
                }
                Op::Complete(i, fate) => {
                    if !m.inflight.is_empty() {
                        let p = m.inflight.swap_remove(i % m.inflight.len());
                        let (node, attempt) = (p.node.clone(), p.attempt);
                        let out = m.complete(p, fate);
                        s.on_patch_done(&node, attempt, out, now);
                    }
                }
                Op::Land(i) => {
                    if !m.delayed.is_empty() {
                        let p = m.delayed.swap_remove(i % m.delayed.len());
                        m.land(p);
                    }
                }
                Op::Tick => s.pop_due(far),
                Op::Relist => relist(&mut s, &mut m),
            }
            m.assert_distinct()?;
            s.check();
        }
        // Settled, every node has a subnet and none is left over; a
        // relist then finds the same.
        for round in 0..2 {
            if round == 1 {
                relist(&mut s, &mut m);
            }
            settle(&mut s, &mut m, now, far)?;
            for (name, n) in &m.nodes {
                prop_assert!(n.cidr.is_some(), "{} never got a podCIDR", name);
            }
            prop_assert_eq!(s.set().used() as usize, m.nodes.len());
        }
    }
}
