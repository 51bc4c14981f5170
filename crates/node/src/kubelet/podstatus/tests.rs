use super::*;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn c(name: &str, state: CState) -> CStatus {
    CStatus {
        name: name.into(),
        image: "busybox".into(),
        image_id: String::new(),
        container_id: None,
        state,
        last: None,
        restart_count: 0,
        ready: false,
        started: false,
        sidecar: false,
    }
}

fn waiting(reason: &str) -> CState {
    CState::Waiting {
        reason: reason.into(),
        message: String::new(),
    }
}

fn exited(code: i32) -> CState {
    CState::Terminated {
        exit_code: code,
        reason: if code == 0 { "Completed" } else { "Error" }.into(),
        message: String::new(),
        started_at: Some(ts(0)),
        finished_at: ts(1),
    }
}

fn facts<'a>(policy: RestartPolicy, init: &'a [CStatus], cs: &'a [CStatus]) -> PodFacts<'a> {
    PodFacts {
        policy,
        sandbox_ready: true,
        pod_ip: Some("10.0.0.2"),
        host_ip: "192.168.0.1",
        start_time: ts(0),
        init,
        containers: cs,
    }
}

#[test]
fn phases_follow_upstream() {
    use RestartPolicy::*;
    let running = CState::Running { started_at: ts(0) };
    assert_eq!(
        phase(&facts(Always, &[], &[c("a", waiting("ContainerCreating"))])),
        "Pending"
    );
    assert_eq!(
        phase(&facts(Always, &[], &[c("a", running.clone())])),
        "Running"
    );
    assert_eq!(phase(&facts(Never, &[], &[c("a", exited(0))])), "Succeeded");
    assert_eq!(
        phase(&facts(Never, &[], &[c("a", exited(0)), c("b", exited(1))])),
        "Failed"
    );
    assert_eq!(
        phase(&facts(OnFailure, &[], &[c("a", exited(1))])),
        "Running"
    );
    assert_eq!(phase(&facts(Always, &[], &[c("a", exited(0))])), "Running");
    let mut looping = c("a", waiting("CrashLoopBackOff"));
    looping.last = Some(exited(1));
    assert_eq!(phase(&facts(Always, &[], &[looping])), "Running");
    // Init containers: pending until done; a failed one fails a Never pod.
    let init_running = [c("i", running.clone())];
    assert_eq!(
        phase(&facts(
            Always,
            &init_running,
            &[c("a", waiting("PodInitializing"))]
        )),
        "Pending"
    );
    let init_failed = [c("i", exited(2))];
    assert_eq!(
        phase(&facts(
            Never,
            &init_failed,
            &[c("a", waiting("PodInitializing"))]
        )),
        "Failed"
    );
    assert_eq!(
        phase(&facts(
            OnFailure,
            &init_failed,
            &[c("a", waiting("PodInitializing"))]
        )),
        "Pending"
    );
    let mut sidecar = c("s", running);
    sidecar.sidecar = true;
    sidecar.started = true;
    assert_eq!(
        phase(&facts(Never, &[sidecar], &[c("a", exited(0))])),
        "Succeeded"
    );
}

#[test]
fn conditions_and_transitions() {
    let mut tr = Transitions::default();
    let mut a = c("a", CState::Running { started_at: ts(0) });
    let b = c("b", waiting("ContainerCreating"));
    let cs = [a.clone(), b];
    let st = build(&facts(RestartPolicy::Always, &[], &cs), &mut tr, ts(5));
    let conds = st.conditions.unwrap();
    let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [a b]")
    );
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    assert_eq!(st.pod_ip.as_deref(), Some("10.0.0.2"));
    a.ready = true;
    let st = build(
        &facts(RestartPolicy::Always, &[], &[a.clone()]),
        &mut tr,
        ts(9),
    );
    let conds = st.conditions.unwrap();
    let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(ready.last_transition_time, Some(Time(ts(9))));
    let sched = conds.iter().find(|c| c.type_ == "PodScheduled").unwrap();
    assert_eq!(
        sched.last_transition_time,
        Some(Time(ts(5))),
        "unchanged keeps its time"
    );
    let done = [c("a", exited(0))];
    let st = build(&facts(RestartPolicy::Never, &[], &done), &mut tr, ts(12));
    let conds = st.conditions.unwrap();
    let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    let s = &st.container_statuses.unwrap()[0];
    let t = s.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
}
