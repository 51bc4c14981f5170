use super::*;

fn state(cidr: &str, mask: u8) -> State {
    State::new(CidrSet::new(cidr, mask).unwrap())
}

fn node(name: &str, uid: &str, cidr: Option<&str>) -> NodeView {
    NodeView {
        name: name.into(),
        uid: uid.into(),
        resource_version: "1".into(),
        pod_cidr: cidr.map(str::to_string),
    }
}

/// Lists `nodes` as a first sync would.
fn synced(s: &mut State, nodes: &[NodeView]) {
    s.on_init();
    for n in nodes {
        s.on_apply(n.clone());
    }
    s.on_init_done();
}

fn drain(s: &mut State, now: Instant) -> Vec<PatchRequest> {
    std::iter::from_fn(|| s.next_patch(now)).collect()
}

fn cidrs(ps: &[PatchRequest]) -> Vec<(&str, &str)> {
    ps.iter()
        .map(|p| (p.node.as_str(), p.cidr.as_str()))
        .collect()
}

/// The patch succeeded and the watch showed it.
fn land(s: &mut State, p: &PatchRequest, now: Instant) {
    s.on_patch_done(&p.node, p.attempt, PatchOutcome::Patched, now);
    s.on_apply(node(&p.node, &p.uid, Some(&p.cidr)));
}

#[test]
fn waits_for_the_initial_list_and_occupies_existing_cidrs_first() {
    let mut s = state("10.128.0.0/11", 24);
    let now = Instant::now();
    s.on_init();
    s.on_apply(node("a", "ua", Some("10.128.1.0/24")));
    s.on_apply(node("b", "ub", None));
    assert_eq!(
        s.next_patch(now),
        None,
        "nothing before the list is complete"
    );
    s.on_apply(node("c", "uc", Some("10.128.0.0/24")));
    s.on_apply(node("d", "ud", None));
    assert_eq!(s.next_patch(now), None);
    s.on_init_done();
    assert!(s.synced());
    let ps = drain(&mut s, now);
    assert_eq!(cidrs(&ps), [("b", "10.128.2.0/24"), ("d", "10.128.3.0/24")]);
    assert_eq!(ps[0].uid, "ub");
    // Nothing is handed out twice while patches are in flight.
    s.on_apply(node("e", "ue", None));
    assert_eq!(cidrs(&drain(&mut s, now)), [("e", "10.128.4.0/24")]);
    assert_eq!(s.set().used(), 5);
    s.check();
}

#[test]
fn patch_result_and_watch_event_in_either_order() {
    let mut s = state("10.128.0.0/11", 24);
    let now = Instant::now();
    synced(&mut s, &[node("a", "ua", None), node("b", "ub", None)]);
    let ps = drain(&mut s, now);
    // a: result first, then the event.
    land(&mut s, &ps[0], now);
    // b: event first, then the result.
    s.on_apply(node("b", "ub", Some(&ps[1].cidr)));
    s.on_patch_done("b", ps[1].attempt, PatchOutcome::Patched, now);
    assert_eq!(s.set().used(), 2);
    s.check();
    // Later updates (heartbeats) change nothing.
    s.on_apply(node("a", "ua", Some(&ps[0].cidr)));
    assert_eq!(s.next_patch(now), None);
    assert_eq!(s.set().used(), 2);
}

#[test]
fn delete_releases_for_reuse() {
    let mut s = state("10.128.0.0/11", 24);
    let now = Instant::now();
    synced(
        &mut s,
        &[
            node("a", "ua", Some("10.128.0.0/24")),
            node("b", "ub", Some("10.128.1.0/24")),
        ],
    );
    s.on_delete("a");
    assert_eq!(s.set().used(), 1);
    s.on_apply(node("c", "uc", None));
    assert_eq!(cidrs(&drain(&mut s, now)), [("c", "10.128.0.0/24")]);
    s.check();
}

#[test]
fn failed_patch_releases_and_retries_with_backoff() {
    let mut s = state("10.128.0.0/11", 24);
    let t0 = Instant::now();
    synced(&mut s, &[node("a", "ua", None)]);
    let p = drain(&mut s, t0).pop().unwrap();
    s.on_patch_done("a", p.attempt, PatchOutcome::Failed, t0);
    assert_eq!(s.set().used(), 0, "the subnet is freed");
    assert_eq!(s.next_patch(t0), None, "not retried at once");
    assert_eq!(s.next_wakeup(), Some(t0 + RETRY_BASE));
    s.pop_due(t0 + RETRY_BASE - Duration::from_millis(1));
    assert_eq!(s.next_patch(t0), None);
    let t1 = t0 + RETRY_BASE;
    s.pop_due(t1);
    let p2 = s.next_patch(t1).unwrap();
    assert_eq!(p2.cidr, "10.128.0.0/24");
    assert!(p2.attempt > p.attempt);
    // A second failure waits twice as long.
    s.on_patch_done("a", p2.attempt, PatchOutcome::Failed, t1);
    assert_eq!(s.next_wakeup(), Some(t1 + RETRY_BASE * 2));
    // A stale result for the first attempt is ignored.
    s.on_patch_done("a", p.attempt, PatchOutcome::NotFound, t1);
    s.check();
}

#[test]
fn conflict_rereads_and_adopts_the_other_writer() {
    let mut s = state("10.128.0.0/11", 24);
    let now = Instant::now();
    synced(&mut s, &[node("a", "ua", None)]);
    let p = s.next_patch(now).unwrap();
    s.on_patch_done("a", p.attempt, PatchOutcome::Taken, now);
    assert_eq!(s.set().used(), 0);
    assert_eq!(s.next_wakeup(), None, "no retry: the node has a CIDR");
    s.on_apply(node("a", "ua", Some("10.128.9.0/24")));
    assert_eq!(s.set().used(), 1);
    // Someone else set it while our patch was in flight: our subnet is freed.
    s.on_apply(node("b", "ub", None));
    let p = s.next_patch(now).unwrap();
    assert_eq!(p.cidr, "10.128.0.0/24");
    s.on_apply(node("b", "ub", Some("10.128.7.0/24")));
    assert!(!s.set().is_used("10.128.0.0/24").unwrap());
    s.on_patch_done("b", p.attempt, PatchOutcome::Taken, now);
    assert_eq!(s.set().used(), 2);
    s.check();
}

#[test]
fn deleted_while_in_flight_frees_at_once_and_ignores_the_late_result() {
    let mut s = state("10.128.0.0/11", 24);
    let now = Instant::now();
    synced(&mut s, &[node("a", "u1", None)]);
    let p = s.next_patch(now).unwrap();
    assert_eq!((p.uid.as_str(), p.resource_version.as_str()), ("u1", "1"));
    // The patch is conditional on u1's resourceVersion: it cannot land on
    // anything once u1 is gone.
    s.on_delete("a");
    assert_eq!(s.set().used(), 0);
    s.on_apply(node("a", "u2", None));
    let p2 = s.next_patch(now).unwrap();
    assert_eq!((p2.uid.as_str(), p2.cidr.as_str()), ("u2", "10.128.0.0/24"));
    s.on_patch_done("a", p.attempt, PatchOutcome::NotFound, now);
    assert_eq!(s.set().used(), 1, "a stale result changes nothing");
    s.check();
}

#[test]
fn unknown_outcome_keeps_and_resends_the_same_subnet() {
    let mut s = state("10.128.0.0/11", 24);
    let t0 = Instant::now();
    synced(&mut s, &[node("a", "ua", None)]);
    let p = s.next_patch(t0).unwrap();
    s.on_patch_done("a", p.attempt, PatchOutcome::Unknown, t0);
    assert!(s.set().is_used(&p.cidr).unwrap(), "it may have landed");
    s.on_apply(node("b", "ub", None));
    assert_eq!(s.next_patch(t0).unwrap().cidr, "10.128.1.0/24");
    let t1 = t0 + RETRY_BASE;
    s.pop_due(t1);
    let again = s.next_patch(t1).unwrap();
    assert_eq!(
        (again.node.as_str(), again.cidr.as_str()),
        ("a", p.cidr.as_str())
    );
    // Even a definite failure now keeps it: the first patch may land late.
    s.on_patch_done("a", again.attempt, PatchOutcome::Failed, t1);
    assert!(s.set().is_used(&p.cidr).unwrap());
    // The watch shows it landed after all.
    s.on_apply(node("a", "ua", Some(&p.cidr)));
    assert_eq!(s.set().used(), 2);
    s.pop_due(t1 + RETRY_MAX);
    assert_eq!(s.next_patch(t1 + RETRY_MAX), None);
    s.check();
}

#[test]
fn exhaustion_waits_and_a_release_wakes_a_waiter() {
    let mut s = state("10.0.0.0/23", 24);
    let now = Instant::now();
    let nodes: Vec<NodeView> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| node(n, &format!("u{n}"), None))
        .collect();
    synced(&mut s, &nodes);
    let ps = drain(&mut s, now);
    assert_eq!(cidrs(&ps), [("a", "10.0.0.0/24"), ("b", "10.0.1.0/24")]);
    for p in &ps {
        land(&mut s, p, now);
    }
    assert_eq!(s.next_wakeup(), Some(now + EXHAUSTED_RETRY));
    // A periodic retry while still full changes nothing.
    s.pop_due(now + EXHAUSTED_RETRY);
    assert_eq!(s.next_patch(now + EXHAUSTED_RETRY), None);
    s.on_delete("a");
    assert_eq!(cidrs(&drain(&mut s, now)), [("c", "10.0.0.0/24")]);
    s.check();
}

#[test]
fn foreign_and_odd_cidrs() {
    let mut s = state("10.128.0.0/11", 24);
    let now = Instant::now();
    synced(
        &mut s,
        &[
            node("outside", "u1", Some("192.168.0.0/24")),
            node("half", "u2", Some("10.128.0.128/25")),
            node("wide", "u3", Some("10.128.4.0/22")),
            node("n", "u4", None),
        ],
    );
    // Outside: left alone, not re-patched; overlapping: kept out.
    assert_eq!(cidrs(&drain(&mut s, now)), [("n", "10.128.1.0/24")]);
    assert_eq!(s.set().used(), 6);
    s.on_delete("wide");
    s.on_delete("outside");
    assert_eq!(s.set().used(), 2);
    s.check();
}

#[test]
fn shared_cidr_stays_used_until_both_nodes_are_gone() {
    let mut s = state("10.128.0.0/11", 24);
    let now = Instant::now();
    synced(
        &mut s,
        &[
            node("a", "ua", Some("10.128.0.0/24")),
            node("b", "ub", Some("10.128.0.0/24")),
        ],
    );
    s.on_delete("a");
    s.on_apply(node("c", "uc", None));
    assert_eq!(cidrs(&drain(&mut s, now)), [("c", "10.128.1.0/24")]);
    s.on_delete("b");
    assert!(!s.set().is_used("10.128.0.0/24").unwrap());
    s.check();
}

#[test]
fn relist_forgets_vanished_nodes_and_waits_for_completion() {
    let mut s = state("10.128.0.0/11", 24);
    let now = Instant::now();
    synced(
        &mut s,
        &[
            node("a", "ua", Some("10.128.0.0/24")),
            node("b", "ub", Some("10.128.1.0/24")),
        ],
    );
    // The watch restarts; "a" was deleted and "c" created meanwhile.
    s.on_init();
    s.on_apply(node("c", "uc", None));
    assert_eq!(s.next_patch(now), None, "not during a relist");
    s.on_apply(node("b", "ub", Some("10.128.1.0/24")));
    s.on_init_done();
    assert_eq!(s.nodes(), 2);
    assert_eq!(cidrs(&drain(&mut s, now)), [("c", "10.128.0.0/24")]);
    s.check();
}

#[test]
fn node_view_reads_pod_cidr_or_the_first_pod_cidrs() {
    use k8s_openapi::api::core::v1::NodeSpec;
    use kube::api::ObjectMeta;
    let mk = |one: Option<&str>, many: Option<Vec<&str>>| Node {
        metadata: ObjectMeta {
            name: Some("n".into()),
            uid: Some("u".into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: one.map(str::to_string),
            pod_cidrs: many.map(|v| v.into_iter().map(str::to_string).collect()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cidr = |n: Node| NodeView::from_node(&n).unwrap().pod_cidr;
    assert_eq!(cidr(mk(None, None)), None);
    assert_eq!(cidr(mk(Some(""), Some(vec![]))), None);
    assert_eq!(
        cidr(mk(Some("10.0.0.0/24"), None)).as_deref(),
        Some("10.0.0.0/24")
    );
    assert_eq!(
        cidr(mk(None, Some(vec!["10.0.1.0/24", "fd00::/64"]))).as_deref(),
        Some("10.0.1.0/24")
    );
    assert_eq!(NodeView::from_node(&Node::default()), None);
}
