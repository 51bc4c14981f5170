//! `kubectl attach` and `kubectl run -i/-it` against real (runc) containers
//! of the embedded agent: stdin with stdinOnce, a terminal shell, output of
//! a running container, and kubectl's errors for missing pods/containers.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::common::{eventually, KillOnDrop};
use crate::containers::{real_server, registry, run_sh, wait_phase};

#[test]
fn run_interactive_feeds_stdin_and_removes_the_pod() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    let image_flag = format!("--image={image}");
    let out = s.ok_stdin(
        &[
            "run",
            "-i",
            "--rm",
            "--restart=Never",
            &image_flag,
            "reader",
            "--",
            "sh",
            "-c",
            "read x; echo got:$x",
        ],
        "hello-attach\n",
    );
    assert!(out.contains("got:hello-attach"), "{out}");
    eventually(Duration::from_secs(60), || {
        let o = s.kubectl(&["get", "pod", "reader"]);
        let err = String::from_utf8_lossy(&o.stderr);
        (!o.status.success() && err.contains("not found")).then_some(())
    });
}

#[test]
fn run_with_a_terminal_drives_a_shell() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    let image_flag = format!("--image={image}");
    let o = s.kubectl_on_terminal(
        &[
            "run",
            "-it",
            "--rm",
            "--restart=Never",
            &image_flag,
            "shell",
            "--",
            "sh",
        ],
        "echo hi-$((1+2))\nexit\n",
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("hi-3"), "{text}");
    assert!(o.status.success(), "{text}");
}

/// The index of the newest `tick-N` line in `text`.
fn last_tick(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("tick-")?.parse().ok())
        .max()
}

#[test]
fn attach_shows_new_output_and_errors_like_kubectl() {
    let (_reg, image) = registry();
    let s = real_server(&[]);
    run_sh(
        &s,
        "ticker",
        &image,
        "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done",
    );
    wait_phase(&s, "ticker", "Running", 90);
    let logged = eventually(Duration::from_secs(30), || {
        last_tick(&String::from_utf8_lossy(
            &s.kubectl(&["logs", "ticker"]).stdout,
        ))
    });

    let mut cmd = s.kubectl_cmd();
    cmd.args(["attach", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut attach = KillOnDrop(cmd.spawn().expect("kubectl attach"));
    let mut lines = BufReader::new(attach.0.stdout.take().expect("stdout")).lines();
    let mut next_tick = || {
        let line = lines
            .next()
            .expect("attach output ended")
            .expect("read attach output");
        last_tick(&line).unwrap_or_else(|| panic!("unexpected output {line:?}"))
    };
    // Everything before the logged tick was sent before attaching: what
    // comes is that one or newer, in order.
    let first = next_tick();
    assert!(first >= logged, "{first} < {logged}");
    assert_eq!(next_tick(), first + 1);
    drop(attach);

    let err = s.fails(&["attach", "nope"]);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    let err = s.fails(&["attach", "ticker", "-c", "nope"]);
    assert!(
        err.contains("cannot attach to the container: container nope not found in pod ticker"),
        "{err}"
    );
}
