//! `duplex_pipes()` across forked processes: boundary sizes in each
//! direction, both directions at once, split halves and end of stream,
//! limits, `poll`, typed messages, and fd hygiene (four fds, all
//! close-on-exec, all closed again). The property battery
//! (`cli/tests/properties.rs`), the fault campaigns and the linearizability
//! histories cover it too.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{DEADLINE, Tx, check_messages, check_plan, send_plan};
use ipc_harness::harness::fork::{self, serial};
use ipc_harness::harness::proptest_config;
use ipc_harness::harness::sizes::size_plan;
use ipc_harness::sys;
use ipc_harness::{Error, PipeConnection, Result, duplex_pipes};
use proptest::prelude::*;
use rstest::rstest;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const RECV_TIMEOUT: Duration = Duration::from_secs(30);

impl Tx for PipeConnection {
    fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_bytes(msg)
    }
}

/// Opens a connection and returns (sending end, receiving end).
fn open(reversed: bool) -> (PipeConnection, PipeConnection) {
    let (a, b) = duplex_pipes().unwrap();
    if reversed { (b, a) } else { (a, b) }
}

/// The child sends `plan` on one end and exits; the parent checks it on
/// the other, then end of stream.
fn run_plan(reversed: bool, plan: &[usize]) -> std::result::Result<(), String> {
    let (tx, mut rx) = open(reversed);
    let plan_c = plan.to_vec();
    let child = fork::spawn(move || {
        send_plan(&tx, &plan_c).unwrap();
        Vec::new()
    })
    .unwrap();
    let verdict = check_plan(|| rx.recv_bytes_timeout(RECV_TIMEOUT), plan);
    let report = child.wait(DEADLINE).unwrap();
    if !report.is_success() {
        return Err(format!("sender {}", report.outcome));
    }
    verdict
}

#[rstest]
fn one_boundary_size_crosses_a_fork_whole_each_way(
    #[values(false, true)] reversed: bool,
    #[values(0, 1, 3, 4, 5, 4095, 4096, 4097, 65535, 65536, 65537, MIB, 16 * MIB)] size: usize,
) {
    let _serial = serial();
    // A one-byte message between two big ones: a merge or split would show.
    run_plan(reversed, &[size, 1, size]).unwrap();
}

proptest! {
    #![proptest_config(proptest_config("proptest-regressions/duplex_pipes.txt", 16))]

    /// Both directions at once: each process sends from a thread while it
    /// receives, so large messages in both directions cannot deadlock.
    #[test]
    fn both_directions_at_once(
        to_child in size_plan(MIB, 12, 4 * MIB),
        to_parent in size_plan(MIB, 12, 4 * MIB),
    ) {
        let _serial = serial();
        let (a, b) = duplex_pipes().unwrap();
        let (plan_in, plan_out) = (to_child.clone(), to_parent.clone());
        let child = fork::spawn(move || {
            let (tx, mut rx) = b.split();
            let sender = std::thread::spawn(move || send_plan(&tx, &plan_out).map_err(|e| e.to_string()));
            let got = check_messages(|| rx.recv_bytes_timeout(RECV_TIMEOUT), &plan_in);
            let sent = sender.join().unwrap();
            match (got, sent) {
                (Ok(()), Ok(())) => Vec::new(),
                (got, sent) => format!("child: received {got:?}, sent {sent:?}").into_bytes(),
            }
        })
        .unwrap();
        let (tx, mut rx) = a.split();
        let sender = std::thread::spawn(move || send_plan(&tx, &to_child));
        let got = check_messages(|| rx.recv_bytes_timeout(RECV_TIMEOUT), &to_parent);
        sender.join().unwrap().unwrap();
        let end = rx.recv_bytes_timeout(RECV_TIMEOUT);
        prop_assert!(matches!(end, Err(Error::Closed)), "after the last message: {:?}", end);
        let out = child.wait(DEADLINE).unwrap().expect_success();
        prop_assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        prop_assert!(got.is_ok(), "parent: {:?}", got);
    }
}

/// Dropping one end's sending half closes the other end's input only: the
/// other end can still send, and this end still receives.
#[test]
fn a_dropped_sending_half_ends_one_direction_only() {
    let _serial = serial();
    let (a, mut b) = duplex_pipes().unwrap();
    let (a_tx, mut a_rx) = a.split();
    a_tx.send_bytes(b"last").unwrap();
    drop(a_tx);
    assert_eq!(b.recv_bytes_timeout(RECV_TIMEOUT).unwrap(), b"last");
    let end = b.recv_bytes_timeout(RECV_TIMEOUT);
    assert!(matches!(end, Err(Error::Closed)), "{end:?}");
    b.send_bytes(b"still open").unwrap();
    assert_eq!(
        a_rx.recv_bytes_timeout(RECV_TIMEOUT).unwrap(),
        b"still open"
    );
    // And the other way: once b is gone, a's receiver sees the end and a
    // send to b is Closed, not SIGPIPE.
    drop(b);
    let end = a_rx.recv_bytes_timeout(RECV_TIMEOUT);
    assert!(matches!(end, Err(Error::Closed)), "{end:?}");
}

#[test]
fn a_send_to_a_peer_that_is_gone_is_closed() {
    let (a, b) = duplex_pipes().unwrap();
    drop(b);
    let e = a.send_bytes(b"anyone?").unwrap_err();
    assert!(matches!(e, Error::Closed), "{e:?}");
}

/// The limit applies to both directions: a send over it writes nothing, a
/// header over it is refused on receive.
#[test]
fn the_message_limit_holds_both_ways() {
    let (mut a, mut b) = duplex_pipes().unwrap();
    a.set_max_message_size(8);
    match a.send_bytes(&[7u8; 9]) {
        Err(Error::TooLarge { len: 9, max: 8 }) => {}
        other => panic!("{other:?}"),
    }
    // Nothing was written: b has nothing to receive.
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    a.send_bytes(&[7u8; 8]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), [7u8; 8]);
    // b has no limit, a refuses what b sends over its limit.
    b.send_bytes(&[1u8; 9]).unwrap();
    match a.recv_bytes_timeout(RECV_TIMEOUT) {
        Err(Error::TooLarge { len: 9, max: 8 }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn poll_recv_into_and_a_too_small_buffer() {
    let (a, mut b) = duplex_pipes().unwrap();
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    a.send_bytes(b"twelve bytes").unwrap();
    a.send_bytes(b"ok").unwrap();
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    let mut small = [0u8; 4];
    match b.recv_bytes_into(&mut small) {
        Err(Error::BufferTooSmall { message }) => assert_eq!(message, b"twelve bytes"),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.recv_bytes_into(&mut small).unwrap(), 2);
    assert_eq!(&small[..2], b"ok");
    let e = b.recv_bytes_timeout(Duration::from_millis(20)).unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
}

#[cfg(feature = "serde")]
#[test]
fn typed_messages_go_both_ways() {
    let (mut a, mut b) = duplex_pipes().unwrap();
    a.send(&(1u32, "one")).unwrap();
    let got: (u32, String) = b.recv().unwrap();
    assert_eq!(got, (1, "one".to_string()));
    b.send(&vec![2u8, 3]).unwrap();
    assert_eq!(a.recv::<Vec<u8>>().unwrap(), [2, 3]);
}

/// Four new fds, each close-on-exec; `into_fds` and `from_fds` give back
/// and take the same fds; dropping both ends closes all four.
#[test]
fn four_cloexec_fds_all_closed_on_drop() {
    let _serial = serial();
    let before = sys::open_fds().unwrap();
    let (a, b) = duplex_pipes().unwrap();
    let mut new: Vec<i32> = sys::open_fds()
        .unwrap()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    new.sort_unstable();
    let mut ours = vec![
        a.read_fd().as_raw_fd(),
        a.write_fd().as_raw_fd(),
        b.read_fd().as_raw_fd(),
        b.write_fd().as_raw_fd(),
    ];
    ours.sort_unstable();
    assert_eq!(new, ours);
    for fd in [a.read_fd(), a.write_fd(), b.read_fd(), b.write_fd()] {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC, "{fd:?}");
    }
    let (r, w) = a.into_fds();
    let (r_no, w_no) = (r.as_raw_fd(), w.as_raw_fd());
    let a = PipeConnection::from_fds(r, w);
    assert_eq!(
        (a.read_fd().as_raw_fd(), a.write_fd().as_raw_fd()),
        (r_no, w_no)
    );
    a.send_bytes(b"after from_fds").unwrap();
    let mut b = b;
    assert_eq!(b.recv_bytes().unwrap(), b"after from_fds");
    drop((a, b));
    assert_eq!(sys::open_fds().unwrap(), before);
}
