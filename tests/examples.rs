//! Every program in `examples/` runs and says what it must.
//!
//! How: each example keeps its logic in `pub fn`s that write to any
//! `io::Write`, and its `main` only calls them with stdout. This file
//! includes each example's source as a module (`#[path]`), so the test runs
//! the very code `cargo run --example NAME` runs, in-process, in
//! milliseconds. Running the built example binaries instead would need
//! `cargo run` from inside `cargo test` (which waits on the build lock that
//! `cargo test` holds) or binaries that `cargo test --test examples` does
//! not build. CI also runs each example binary once (`cargo run --example`).
//!
//! The examples fork; every test holds `fork::serial()`.

use std::time::Duration;

use ipc_harness::harness::fork;

#[allow(dead_code)] // its `main` is for `cargo run --example`
#[path = "../examples/ping_pong_pipe.rs"]
mod ping_pong_pipe;

#[allow(dead_code)]
#[path = "../examples/ping_pong_queue.rs"]
mod ping_pong_queue;

#[allow(dead_code)]
#[path = "../examples/father_son_pipe.rs"]
mod father_son_pipe;

#[allow(dead_code)]
#[path = "../examples/father_son_fifo.rs"]
mod father_son_fifo;

fn plain(out: Vec<u8>) -> String {
    let text = String::from_utf8(out).expect("UTF-8 output");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in:\n{text}"
    );
    text
}

fn assert_no_children() {
    assert_eq!(fork::unreaped_children(), Vec::<i32>::new());
}

#[test]
fn ping_pong_pipe_carries_geek_university_both_ways() {
    let _g = fork::serial();
    let mut out = Vec::new();
    ping_pong_pipe::run(&mut out).unwrap();
    let text = plain(out);
    assert!(text.contains(") received: Geek University.\n"), "{text}");
    assert!(
        text.contains(") got the answer: Geek University. received\n"),
        "{text}"
    );
    assert_no_children();
}

#[test]
fn ping_pong_queue_delivers_then_reports_closed() {
    let _g = fork::serial();
    let mut out = Vec::new();
    ping_pong_queue::run(&mut out).unwrap();
    let text = plain(out);
    assert!(text.contains(") Geek University. received\n"), "{text}");
    assert!(text.contains(") then: the queue is closed"), "{text}");
    assert_no_children();
}

#[test]
fn father_son_pipe_shows_glued_reads_then_framed_messages() {
    let _g = fork::serial();
    let mut out = Vec::new();
    let reads = father_son_pipe::naive(&mut out).unwrap();
    // The son wrote everything before the father read: one read took all.
    assert_eq!(
        reads,
        [b"Spam 000Spam 001Spam 002Spam 003Spam 004Spam 000".to_vec()]
    );
    let received = father_son_pipe::framed(&mut out).unwrap();
    assert_eq!(received, father_son_pipe::messages());
    let text = plain(out);
    assert!(text.contains("6 writes, 1 read(s)"), "{text}");
    assert!(text.contains("6 sends, 6 receives"), "{text}");

    let mut out = Vec::new();
    father_son_pipe::run(&mut out).unwrap();
    let all = plain(out);
    assert!(
        all.contains("\"Spam 000Spam 001Spam 002Spam 003Spam 004Spam 000\""),
        "{all}"
    );
    assert_no_children();
}

#[test]
fn father_son_fifo_with_no_argument_plays_both_roles() {
    let _g = fork::serial();
    let mut out = Vec::new();
    let n = father_son_fifo::run(&[], &mut out).unwrap();
    assert_eq!(n, 5);
    let text = plain(out);
    for i in 0..5 {
        assert!(
            text.contains(&format!(") received: Spam {i:03}\n")),
            "{text}"
        );
        assert!(text.contains(&format!(") sent: Spam {i:03}\n")), "{text}");
    }
    assert!(text.contains("the last son has closed"), "{text}");
    assert_no_children();
}

#[test]
fn father_son_fifo_roles_by_argument_in_two_processes() {
    let _g = fork::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.fifo");
    let args = |role: &str| vec![role.to_string(), path.display().to_string()];
    // The son starts first and waits for the father to create the FIFO.
    let son_args = args("son");
    let son = fork::spawn(move || {
        let mut out = Vec::new();
        father_son_fifo::run(&son_args, &mut out).unwrap();
        out
    })
    .unwrap();
    let mut out = Vec::new();
    let n = father_son_fifo::run(&args("father"), &mut out).unwrap();
    let said = son.wait(Duration::from_secs(10)).unwrap().expect_success();
    assert_eq!(n, 5);
    let father = plain(out);
    let son = plain(said);
    assert_eq!(father.lines().count(), 6, "{father}");
    assert_eq!(son.lines().count(), 5, "{son}");
    assert!(!path.exists(), "the father removes the FIFO he created");
    assert_no_children();
}

#[test]
fn father_son_fifo_refuses_bad_arguments() {
    let mut out = Vec::new();
    let e = father_son_fifo::run(&["mother".into()], &mut out).unwrap_err();
    assert!(e.to_string().starts_with("usage:"), "{e}");
}
