//! The framed pipe and duplex connection across forked processes: boundary
//! sizes, random size plans, disconnection, timeouts, and the proof that
//! the same checks fail on an unframed pipe.

mod common;

use std::time::{Duration, Instant};

use common::{DEADLINE, WAYS, Way, check_plan, send_plan};
use ipc_harness::harness::fork::{self, serial};
use ipc_harness::harness::payload;
use ipc_harness::harness::proptest_config;
use ipc_harness::harness::sizes::size_plan;
use ipc_harness::raw::RawPipe;
use ipc_harness::{Error, duplex, pipe};
use proptest::prelude::*;
use rstest::rstest;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The child sends `plan`; the parent checks what arrives. The child's own
/// copy of the receiving end is dropped in the child, so the parent sees
/// end of stream exactly when the child is done.
fn run_plan(way: Way, plan: &[usize]) -> Result<(), String> {
    let (tx, mut rx) = way.open();
    let plan_c = plan.to_vec();
    let child = fork::spawn(move || {
        send_plan(tx.as_ref(), &plan_c).unwrap();
        Vec::new()
    })
    .unwrap();
    let verdict = check_plan(|| rx.recv(Duration::from_secs(30)), plan);
    let report = child.wait(DEADLINE).unwrap();
    if !report.is_success() {
        return Err(format!("sender {}", report.outcome));
    }
    verdict
}

#[rstest]
fn one_boundary_size_crosses_a_fork_whole(
    #[values(Way::Pipe, Way::DuplexAB, Way::DuplexBA)] way: Way,
    #[values(0, 1, 3, 4, 5, 4095, 4096, 4097, 65535, 65536, 65537, MIB, 16 * MIB)] size: usize,
) {
    let _serial = serial();
    // A one-byte message after the big one: a merge or split would show.
    run_plan(way, &[size, 1, size]).unwrap();
}

proptest! {
    #![proptest_config(proptest_config("proptest-regressions/pipe.txt", 24))]

    /// Any sequence of boundary-biased sizes arrives one message per
    /// receive, in order, byte-identical, then `Closed`.
    #[test]
    fn every_plan_arrives_whole_in_order_then_closed(
        plan in size_plan(2 * MIB, 24, 8 * MIB),
        way in proptest::sample::select(WAYS.to_vec()),
    ) {
        let _serial = serial();
        if let Err(why) = run_plan(way, &plan) {
            prop_assert!(false, "{:?} broke the contract: {}", way, why);
        }
    }

    /// Both directions of a duplex connection at once: each process sends
    /// from a thread while it receives, so large messages cannot deadlock.
    #[test]
    fn duplex_carries_both_directions_at_once(
        to_child in size_plan(MIB, 12, 4 * MIB),
        to_parent in size_plan(MIB, 12, 4 * MIB),
    ) {
        let _serial = serial();
        let (a, b) = duplex().unwrap();
        let (plan_in, plan_out) = (to_child.clone(), to_parent.clone());
        let child = fork::spawn(move || {
            let (tx, mut rx) = b.split().unwrap();
            let sender = std::thread::spawn(move || send_plan(&tx, &plan_out).map_err(|e| e.to_string()));
            // Both sides keep their halves open until done: count, not EOF.
            let got = common::check_messages(|| rx.recv_bytes_timeout(Duration::from_secs(30)), &plan_in);
            let sent = sender.join().unwrap();
            match (got, sent) {
                (Ok(()), Ok(())) => Vec::new(),
                (got, sent) => format!("child: received {got:?}, sent {sent:?}").into_bytes(),
            }
        })
        .unwrap();
        let (tx, mut rx) = a.split().unwrap();
        let sender = std::thread::spawn(move || send_plan(&tx, &to_child));
        let got = common::check_messages(|| rx.recv_bytes_timeout(Duration::from_secs(30)), &to_parent);
        sender.join().unwrap().unwrap();
        // The child exits once it has everything: then our stream ends.
        let end = rx.recv_bytes_timeout(Duration::from_secs(30));
        prop_assert!(matches!(end, Err(Error::Closed)), "after the last message: {:?}", end);
        let out = child.wait(DEADLINE).unwrap().expect_success();
        prop_assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        prop_assert!(got.is_ok(), "parent: {:?}", got);
    }
}

/// The same check, pointed at an unframed pipe read with a 64 KiB buffer,
/// must fail: otherwise it proves nothing about the framed one.
#[test]
fn the_same_check_catches_an_unframed_pipe() {
    let _serial = serial();
    let plan = [20usize, 30, 40];
    let mut raw = RawPipe::new().unwrap();
    let writer = fork::spawn({
        let raw = &mut raw;
        move || {
            raw.close_read();
            for (seq, &len) in plan.iter().enumerate() {
                raw.write(&payload::make(common::id(seq), len)).unwrap();
            }
            Vec::new()
        }
    })
    .unwrap();
    raw.close_write();
    // Let every write land, so the first read returns all of them at once.
    writer.wait(DEADLINE).unwrap().expect_success();
    let mut buf = vec![0u8; 64 * KIB];
    let verdict = check_plan(
        || {
            let n = raw.read(&mut buf)?;
            if n == 0 {
                return Err(Error::Closed);
            }
            Ok(buf[..n].to_vec())
        },
        &plan,
    );
    let why = verdict.expect_err("an unframed pipe must fail the framing check");
    assert!(why.contains("Merged"), "{why}");
}

#[test]
fn a_writer_that_dies_mid_frame_is_truncated_not_closed() {
    let _serial = serial();
    for way in WAYS {
        let (tx, mut rx) = way.open();
        // 1 MiB cannot fit in the pipe (64 KiB) or socket buffers: the child
        // blocks inside the frame until we kill it.
        let child = fork::spawn(move || {
            tx.send(&vec![7u8; MIB]).unwrap();
            Vec::new()
        })
        .unwrap();
        assert!(
            wait_until_blocked_writing(child.pid()),
            "{way:?}: the sender never blocked mid-frame"
        );
        child.signal(libc::SIGKILL).unwrap();
        let report = child.wait(DEADLINE).unwrap();
        assert_eq!(report.outcome, fork::Outcome::Signaled(libc::SIGKILL));
        match rx.recv(Duration::from_secs(10)) {
            Err(Error::Truncated { expected, got }) => {
                assert_eq!(expected, MIB as u64, "{way:?}");
                assert!(got > 0 && got < MIB as u64, "{way:?}: got {got}");
            }
            other => panic!("{way:?}: expected Truncated, got {other:?}"),
        }
    }
}

/// Waits (at most 10 s) until `pid` is blocked writing: the pipe or socket
/// is full and the sender is inside its frame.
fn wait_until_blocked_writing(pid: i32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(b) = fork::blocked_in(pid) {
            // A pipe() sender writes large frames with vmsplice.
            if ["write", "sendmsg", "vmsplice"]
                .iter()
                .any(|call| b.starts_with(call))
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn sending_to_a_receiver_that_is_gone_is_closed_even_with_default_sigpipe() {
    let _serial = serial();
    for way in WAYS {
        let (tx, rx) = way.open();
        drop(rx);
        // In a child whose SIGPIPE is back to "terminate": a naive write
        // would kill it; ours must return Closed.
        let report = fork::run(DEADLINE, move || {
            ipc_harness::sys::reset_signal_default(libc::SIGPIPE).unwrap();
            let small = tx.send(b"hello");
            let large = tx.send(&vec![0u8; MIB]);
            format!("{small:?} {large:?}").into_bytes()
        })
        .unwrap();
        assert!(report.is_success(), "{way:?}: child {}", report.outcome);
        assert_eq!(
            String::from_utf8(report.output).unwrap(),
            "Err(Closed) Err(Closed)",
            "{way:?}"
        );
    }
}

#[test]
fn too_large_is_refused_before_anything_is_written() {
    let _serial = serial();
    let (mut tx, mut rx) = pipe().unwrap();
    tx.set_max_message_size(10);
    assert!(matches!(
        tx.send_bytes(&[0; 11]),
        Err(Error::TooLarge { len: 11, max: 10 })
    ));
    tx.send_bytes(&[1; 10]).unwrap();
    drop(tx);
    // Only the message within the limit is in the pipe.
    assert_eq!(rx.recv_bytes().unwrap(), vec![1; 10]);
    assert!(rx.recv_bytes().unwrap_err().is_closed());
}

#[test]
fn poll_and_timeouts_never_return_early_without_data() {
    let _serial = serial();
    let (tx, mut rx) = pipe().unwrap();
    for wait in [
        Duration::ZERO,
        Duration::from_millis(30),
        Duration::from_millis(120),
    ] {
        let start = Instant::now();
        assert!(!rx.poll(Some(wait)).unwrap());
        assert!(
            start.elapsed() >= wait,
            "poll returned after {:?} < {wait:?}",
            start.elapsed()
        );
        let start = Instant::now();
        assert!(rx.recv_bytes_timeout(wait).unwrap_err().is_timeout());
        assert!(start.elapsed() >= wait);
    }
    tx.send_bytes(b"x").unwrap();
    assert!(rx.poll(Some(Duration::ZERO)).unwrap());
    assert!(
        rx.poll(None).unwrap(),
        "poll(None) returns once data is there"
    );
    assert_eq!(rx.recv_bytes().unwrap(), b"x");
    drop(tx);
    assert!(
        rx.poll(Some(Duration::ZERO)).unwrap(),
        "end of stream is ready"
    );
}

#[test]
fn a_timeout_mid_message_loses_nothing() {
    let _serial = serial();
    let (tx, mut rx) = pipe().unwrap();
    let msg = payload::make(common::id(0), 300 * KIB);
    let child = fork::spawn({
        let msg = msg.clone();
        move || {
            // Dribble the frame: header and part of it, a pause, the rest.
            let frame = ipc_harness::frame::encode(&msg);
            let raw = tx.into_fd();
            let (head, tail) = frame.split_at(100 * KIB);
            ipc_harness::sys::write_all_vectored(
                std::os::fd::AsFd::as_fd(&raw),
                ipc_harness::sys::WriteKind::Pipe,
                &[head],
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            ipc_harness::sys::write_all_vectored(
                std::os::fd::AsFd::as_fd(&raw),
                ipc_harness::sys::WriteKind::Pipe,
                &[tail],
            )
            .unwrap();
            Vec::new()
        }
    })
    .unwrap();
    let mut timeouts = 0;
    let got = loop {
        match rx.recv_bytes_timeout(Duration::from_millis(20)) {
            Ok(m) => break m,
            Err(Error::Timeout) => timeouts += 1,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(timeouts > 0, "the receive must have timed out mid-frame");
    assert_eq!(got, msg);
    child.wait(DEADLINE).unwrap().expect_success();
    assert!(rx.recv_bytes().unwrap_err().is_closed());
}

#[test]
fn recv_bytes_into_keeps_the_message_when_the_buffer_is_small() {
    let _serial = serial();
    let (tx, mut rx) = pipe().unwrap();
    let (a, mut b) = duplex().unwrap();
    let big = payload::make(common::id(0), 5000);
    for send in [&|m: &[u8]| tx.send_bytes(m), &|m: &[u8]| a.send_bytes(m)]
        as [&dyn Fn(&[u8]) -> ipc_harness::Result<()>; 2]
    {
        send(&big).unwrap();
        send(b"next").unwrap();
    }
    for recv_into in [
        &mut |buf: &mut [u8]| rx.recv_bytes_into(buf) as ipc_harness::Result<usize>,
        &mut |buf: &mut [u8]| b.recv_bytes_into(buf),
    ] as [&mut dyn FnMut(&mut [u8]) -> ipc_harness::Result<usize>; 2]
    {
        let mut small = [0u8; 100];
        match recv_into(&mut small) {
            Err(Error::BufferTooSmall { message }) => assert_eq!(message, big),
            other => panic!("expected BufferTooSmall, got {other:?}"),
        }
        assert_eq!(recv_into(&mut small).unwrap(), 4);
        assert_eq!(&small[..4], b"next");
    }
}

#[test]
fn typed_values_round_trip() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Job {
        id: u32,
        name: String,
        data: Vec<u8>,
    }
    let _serial = serial();
    let (tx, mut rx) = pipe().unwrap();
    let job = Job {
        id: 7,
        name: "Geek University.".into(),
        data: vec![1, 2, 3],
    };
    tx.send(&job).unwrap();
    assert_eq!(rx.recv::<Job>().unwrap(), job);
    tx.send(&42u8).unwrap();
    assert!(matches!(
        rx.recv::<Job>(),
        Err(Error::Codec {
            action: "decode",
            ..
        })
    ));
}

#[test]
fn endpoints_leak_no_fds_and_forks_leave_no_children() {
    let _serial = serial();
    let before = ipc_harness::sys::open_fds().unwrap();
    for _ in 0..50 {
        let (tx, rx) = pipe().unwrap();
        let (a, b) = duplex().unwrap();
        let (s, r) = a.split().unwrap();
        let raw = RawPipe::packet_mode().unwrap();
        drop((tx, rx, b, s, r, raw));
    }
    run_plan(Way::Pipe, &[1, 2, 3]).unwrap();
    let dropped = fork::spawn(|| {
        std::thread::sleep(Duration::from_secs(30));
        Vec::new()
    })
    .unwrap();
    drop(dropped); // killed and reaped on drop
    assert_eq!(ipc_harness::sys::open_fds().unwrap(), before, "fds leaked");
    assert_eq!(
        fork::unreaped_children(),
        Vec::<i32>::new(),
        "children left unreaped"
    );
}

/// The bytes of message `i` (of `len` bytes) in the tests below: a shifted
/// or reused byte shows.
fn numbered(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| ((i * 7 + j) % 251) as u8).collect()
}

#[test]
fn large_messages_arrive_as_sent_though_the_sender_rewrites_its_buffer_at_once() {
    let _serial = serial();
    // Large messages skip the kernel's copy: the pipe refers to pages, and
    // a page the sender could still write would change a message in flight.
    // The sender rewrites its buffer right after each send and runs ahead
    // of a reader that starts late; every message must arrive as sent.
    const N: usize = 24;
    const LEN: usize = 300 * KIB;
    let (tx, mut rx) = pipe().unwrap();
    let child = fork::spawn(move || {
        let mut buf = vec![0u8; LEN];
        for i in 0..N {
            buf.copy_from_slice(&numbered(i, LEN));
            tx.send_bytes(&buf).unwrap();
            buf.fill(0xFF);
        }
        Vec::new()
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut into = vec![0u8; LEN];
    for i in 0..N {
        // Both receive paths: a new Vec, and straight into a buffer.
        let got = if i % 2 == 0 {
            rx.recv_bytes_timeout(Duration::from_secs(30)).unwrap()
        } else {
            let n = rx.recv_bytes_into(&mut into).unwrap();
            into[..n].to_vec()
        };
        assert!(
            got == numbered(i, LEN),
            "message {i} changed after it was sent"
        );
    }
    assert!(rx.recv_bytes().unwrap_err().is_closed());
    child.wait(DEADLINE).unwrap().expect_success();
}

#[test]
fn large_messages_outlive_the_sender_that_sent_them() {
    let _serial = serial();
    // Three 256 KiB messages fit the 1 MiB pipe the first one raises it to,
    // so the sender exits (its memory unmapped) before anything is read.
    let (tx, mut rx) = pipe().unwrap();
    let child = fork::spawn(move || {
        for i in 0..3 {
            tx.send_bytes(&numbered(i, 256 * KIB)).unwrap();
        }
        Vec::new()
    })
    .unwrap();
    child.wait(DEADLINE).unwrap().expect_success();
    // Memory the parent maps and writes now cannot be the pipe's pages.
    let scribble = vec![0xEEu8; 4 * MIB];
    for i in 0..3 {
        assert!(
            rx.recv_bytes().unwrap() == numbered(i, 256 * KIB),
            "message {i}"
        );
    }
    assert!(rx.recv_bytes().unwrap_err().is_closed());
    drop(scribble);
}

#[test]
fn a_sender_with_zero_copy_off_sends_the_same_bytes() {
    let _serial = serial();
    let (mut tx, mut rx) = pipe().unwrap();
    tx.set_zero_copy(false);
    let child = fork::spawn(move || {
        for i in 0..6 {
            tx.send_bytes(&numbered(i, 200 * KIB)).unwrap();
        }
        Vec::new()
    })
    .unwrap();
    for i in 0..6 {
        assert!(
            rx.recv_bytes().unwrap() == numbered(i, 200 * KIB),
            "message {i}"
        );
    }
    assert!(rx.recv_bytes().unwrap_err().is_closed());
    child.wait(DEADLINE).unwrap().expect_success();
}
