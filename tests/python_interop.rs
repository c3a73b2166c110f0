//! Interop with a real CPython peer: `python3` holding
//! `multiprocessing.connection.Connection` objects on fds it inherited from
//! this process, exchanging messages of every boundary size both ways over
//! `pipe()`, `duplex()` and `duplex_pipes()` (two one-way `Connection`s on the
//! Python side), byte-identical, with end of stream seen on both
//! sides, and the long (> 2^31-1 bytes) header compared with the one
//! CPython's own `Connection._send_bytes` builds.
//!
//! Each test holds [`serial()`] for its whole body: the fds handed to Python
//! are made inheritable (close-on-exec cleared) for a moment, and no other
//! test's child may be spawned while they are. If `python3` (with
//! `multiprocessing.connection`) is missing, each test prints why it is
//! skipped and passes.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ipc_harness::frame::{LONG_HEADER_LEN, encode_header};
use ipc_harness::harness::fork::{self, serial};
use ipc_harness::harness::payload::{self, MsgId};
use ipc_harness::sys;
use ipc_harness::{Connection, Error, duplex, duplex_pipes, pipe};
use rstest::rstest;

const MIB: usize = 1 << 20;

/// The boundary sizes of issue 2, each crossing in both directions.
const SIZES: [usize; 13] = [
    0,
    1,
    3,
    4,
    5,
    4095,
    4096,
    4097,
    65535,
    65536,
    65537,
    MIB,
    16 * MIB,
];

/// How long one receive may wait for the peer.
const RECV_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the Python peer may live before the watchdog SIGKILLs it (which
/// closes its fds, so a Rust side blocked on it fails instead of hanging).
const PEER_DEADLINE: Duration = Duration::from_secs(60);

/// The Python peer. `argv[1]` is the mode; fds and sizes follow.
const SCRIPT: &str = r#"
import os, sys
from multiprocessing.connection import Connection

def pattern(n):
    # bytes((i % 251) for i in range(n)), without a 16 Mi-step loop
    return (bytes(range(251)) * (n // 251 + 1))[:n]

def conn(fd, kind, readable, writable):
    # A socket is one two-way Connection, as multiprocessing.Pipe() gives.
    if kind == "socket":
        return Connection(fd)
    return Connection(fd, readable=readable, writable=writable)

class Fake:
    """A buffer that claims to be n bytes long and holds none."""
    def __init__(self, n):
        self.n = n
    def __len__(self):
        return self.n

class Capture(Connection):
    """A Connection whose low-level _send records instead of writing, so
    CPython's own _send_bytes can be run on a length nobody can allocate."""
    def __init__(self):
        r, w = os.pipe()
        os.close(r)
        super().__init__(w, readable=False)
        self.sent = []
    def _send(self, buf, write=None):
        self.sent.append(buf)

def cpython_header(n):
    c = Capture()
    if n <= 16384:
        buf = bytes(n)
        c._send_bytes(buf)   # sends header + buf in one piece
        out = b"".join(bytes(x) for x in c.sent)
        assert out.endswith(buf)
        head = out[:len(out) - n]
    else:
        fake = Fake(n)
        c._send_bytes(fake)  # sends the header piece(s), then the buffer
        assert c.sent[-1] is fake
        head = b"".join(bytes(x) for x in c.sent[:-1])
    c.close()
    return head

mode = sys.argv[1]
if mode == "echo":
    kind, r, w = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rc = conn(r, kind, True, kind == "socket")
    wc = rc if kind == "socket" else conn(w, kind, False, True)
    n = 0
    while True:
        try:
            m = rc.recv_bytes()
        except EOFError:
            break
        wc.send_bytes(m)
        n += 1
    print("EOFError after", n)
elif mode == "check":
    kind, r = sys.argv[2], int(sys.argv[3])
    sizes = [int(s) for s in sys.argv[4:]]
    rc = conn(r, kind, True, False)
    for i, s in enumerate(sizes):
        m = rc.recv_bytes()
        if m != pattern(s):
            print("mismatch at", i, "expected", s, "bytes, got", len(m))
            sys.exit(3)
    try:
        m = rc.recv_bytes()
        print("an extra message of", len(m), "bytes")
        sys.exit(4)
    except EOFError:
        print("checked", len(sizes), "then EOFError")
elif mode == "send":
    kind, w = sys.argv[2], int(sys.argv[3])
    sizes = [int(s) for s in sys.argv[4:]]
    wc = conn(w, kind, False, True)
    for s in sizes:
        wc.send_bytes(pattern(s))
    wc.close()
    print("sent", len(sizes))
elif mode == "headers":
    for s in sys.argv[2:]:
        print(cpython_header(int(s)).hex())
elif mode == "long-then-exit":
    # CPython's real _send_bytes and _send for a message of n bytes, except
    # that the payload is replaced by 3 bytes: a frame cut short.
    w, n = int(sys.argv[2]), int(sys.argv[3])
    class Short(Connection):
        def _send(self, buf, write=os.write):
            if isinstance(buf, Fake):
                buf = b"abc"
            super()._send(buf)
    c = Short(w, readable=False)
    c._send_bytes(Fake(n))
    c.close()
    print("sent a header for", n, "bytes and 3 of them")
else:
    sys.exit(2)
"#;

/// True if `python3` with `multiprocessing.connection` can be run.
fn have_python() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import multiprocessing.connection"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

macro_rules! require_python {
    () => {
        if !have_python() {
            eprintln!("skipped: python3 with multiprocessing.connection is not available");
            return;
        }
    };
}

/// A running `python3` peer. Dropping it kills and reaps it.
struct Peer {
    child: Option<std::process::Child>,
    done: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
}

/// What the peer said and how it ended.
#[derive(Debug)]
struct PeerEnd {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl PeerEnd {
    #[track_caller]
    fn expect_stdout(&self, want: &str) {
        assert_eq!(
            (self.code, self.stdout.trim_end()),
            (Some(0), want),
            "python3 peer: exit code and stdout (left) are not what was expected (right); its stderr:\n{}",
            self.stderr
        );
    }
}

/// Starts `python3 -c SCRIPT args...` with the fds in `give` inherited
/// under their own numbers. The parent's copies are closed once the peer
/// has its own, so each end of each channel is held by one process only and
/// end of stream works.
fn spawn_python(args: &[String], give: Vec<OwnedFd>) -> Peer {
    // Only now, under serial(), just before the spawn: clear close-on-exec.
    for fd in &give {
        sys::set_inheritable(fd.as_fd()).unwrap();
    }
    let spawned = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    drop(give);
    let child = spawned.expect("spawn python3");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(PEER_DEADLINE) {
            // Not reaped yet: `finish`/drop join this thread before waiting.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    Peer {
        child: Some(child),
        done: Some(done),
        watchdog: Some(watchdog),
    }
}

impl Peer {
    fn stop_watchdog(&mut self) {
        drop(self.done.take());
        if let Some(w) = self.watchdog.take() {
            w.join().unwrap();
        }
    }

    /// Waits for the peer to exit (the watchdog still bounds the wait) and
    /// collects its output.
    fn finish(mut self) -> PeerEnd {
        let mut child = self.child.take().expect("not finished yet");
        let mut stdout = String::new();
        let mut stderr = String::new();
        // The peer writes a line or a traceback at most: reading one pipe
        // to its end before the other cannot fill the other and block.
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        self.stop_watchdog();
        let status = child.wait().unwrap();
        PeerEnd {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop_watchdog();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The channel under test.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Pipe,
    Duplex,
    /// `duplex_pipes()`: Python holds the other end's two fds as two
    /// one-way `Connection`s.
    DuplexPipes,
}

fn id(seq: usize) -> MsgId {
    MsgId {
        producer: 0,
        seq: seq as u32,
    }
}

/// What Python's `pattern(n)` makes: byte i is `i % 251`.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn sizes_argv() -> impl Iterator<Item = String> {
    SIZES.iter().map(|s| s.to_string())
}

/// Checks that nothing this test opened or started is left behind.
struct Hygiene(Vec<i32>);

impl Hygiene {
    fn start() -> Self {
        Hygiene(sys::open_fds().unwrap())
    }

    #[track_caller]
    fn check(self) {
        assert_eq!(sys::open_fds().unwrap(), self.0, "fds leaked");
        assert_eq!(
            fork::unreaped_children(),
            Vec::<i32>::new(),
            "children left"
        );
    }
}

/// Shuts down the sending direction of a duplex end, so the peer's next
/// receive sees end of stream while we can still receive from it.
fn shutdown_write(conn: &Connection) {
    nix::sys::socket::shutdown(conn.as_raw_fd(), nix::sys::socket::Shutdown::Write).unwrap();
}

#[track_caller]
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, expected {} (first difference at {at:?}; judged {:?})",
            got.len(),
            want.len(),
            payload::verify(got)
        );
    }
}

/// Rust sends each size, Python receives it with `recv_bytes` and sends it
/// back with `send_bytes`; Rust checks the echo is byte-identical. Then Rust
/// closes its sending side: Python must see `EOFError` (it prints how many
/// it echoed and exits), and Rust must then see `Closed`.
#[rstest]
fn rust_to_python_and_back(#[values(Kind::Pipe, Kind::Duplex, Kind::DuplexPipes)] kind: Kind) {
    let _serial = serial();
    require_python!();
    let hygiene = Hygiene::start();
    // One message at a time: Rust sends one message and only then waits for
    // its echo; Python reads the whole message before it writes the echo.
    // Neither side ever waits for room while the other waits for data, so
    // nothing can deadlock even at 16 MiB, far past the pipe's capacity.
    match kind {
        Kind::Pipe => {
            let (to_py, py_in) = pipe().unwrap();
            let (py_out, mut from_py) = pipe().unwrap();
            let args = vec![
                "echo".into(),
                "pipe".into(),
                py_in.as_raw_fd().to_string(),
                py_out.as_raw_fd().to_string(),
            ];
            let peer = spawn_python(&args, vec![py_in.into_fd(), py_out.into_fd()]);
            for (seq, &size) in SIZES.iter().enumerate() {
                let msg = payload::make(id(seq), size);
                to_py.send_bytes(&msg).unwrap();
                let echo = from_py.recv_bytes_timeout(RECV_TIMEOUT).unwrap();
                assert_same(&echo, &msg, &format!("echo of {size} bytes"));
            }
            drop(to_py);
            let end = from_py.recv_bytes_timeout(RECV_TIMEOUT);
            assert!(
                matches!(end, Err(Error::Closed)),
                "after the echoes: {end:?}"
            );
            peer.finish()
                .expect_stdout(&format!("EOFError after {}", SIZES.len()));
        }
        Kind::Duplex => {
            let (mut ours, theirs) = duplex().unwrap();
            let fd = theirs.as_raw_fd().to_string();
            let args = vec!["echo".into(), "socket".into(), fd.clone(), fd];
            let peer = spawn_python(&args, vec![theirs.into_fd()]);
            for (seq, &size) in SIZES.iter().enumerate() {
                let msg = payload::make(id(seq), size);
                ours.send_bytes(&msg).unwrap();
                let echo = ours.recv_bytes_timeout(RECV_TIMEOUT).unwrap();
                assert_same(&echo, &msg, &format!("echo of {size} bytes"));
            }
            shutdown_write(&ours);
            let end = ours.recv_bytes_timeout(RECV_TIMEOUT);
            assert!(
                matches!(end, Err(Error::Closed)),
                "after the echoes: {end:?}"
            );
            peer.finish()
                .expect_stdout(&format!("EOFError after {}", SIZES.len()));
        }
        Kind::DuplexPipes => {
            let (ours, theirs) = duplex_pipes().unwrap();
            let (py_in, py_out) = theirs.into_fds();
            let args = vec![
                "echo".into(),
                "pipe".into(),
                py_in.as_raw_fd().to_string(),
                py_out.as_raw_fd().to_string(),
            ];
            let peer = spawn_python(&args, vec![py_in, py_out]);
            let (to_py, mut from_py) = ours.split();
            for (seq, &size) in SIZES.iter().enumerate() {
                let msg = payload::make(id(seq), size);
                to_py.send_bytes(&msg).unwrap();
                let echo = from_py.recv_bytes_timeout(RECV_TIMEOUT).unwrap();
                assert_same(&echo, &msg, &format!("echo of {size} bytes"));
            }
            // Dropping the sending half alone ends Python's input.
            drop(to_py);
            let end = from_py.recv_bytes_timeout(RECV_TIMEOUT);
            assert!(
                matches!(end, Err(Error::Closed)),
                "after the echoes: {end:?}"
            );
            peer.finish()
                .expect_stdout(&format!("EOFError after {}", SIZES.len()));
        }
    }
    hygiene.check();
}

/// Sends `pattern(n)` for each size. A peer that found a mismatch exits
/// and closes its end, so a failed send ends the loop: the peer's own
/// report (checked next) says what was wrong.
fn send_all(send: impl Fn(&[u8]) -> ipc_harness::Result<()>) {
    for &size in &SIZES {
        if let Err(e) = send(&pattern(size)) {
            eprintln!("sending {size} bytes to python failed: {e}");
            break;
        }
    }
}

/// Rust sends `pattern(n)` for each size; Python compares every message
/// with the bytes it computes itself, then must get `EOFError` once Rust
/// drops its end.
#[rstest]
fn python_checks_what_rust_sends(
    #[values(Kind::Pipe, Kind::Duplex, Kind::DuplexPipes)] kind: Kind,
) {
    let _serial = serial();
    require_python!();
    let hygiene = Hygiene::start();
    // Python only reads until it has checked everything, and Rust only
    // writes: no cycle of waits.
    let peer = match kind {
        Kind::Pipe => {
            let (tx, py_in) = pipe().unwrap();
            let mut args = vec!["check".into(), "pipe".into(), py_in.as_raw_fd().to_string()];
            args.extend(sizes_argv());
            let peer = spawn_python(&args, vec![py_in.into_fd()]);
            send_all(|m| tx.send_bytes(m));
            peer
        }
        Kind::Duplex => {
            let (ours, theirs) = duplex().unwrap();
            let mut args = vec![
                "check".into(),
                "socket".into(),
                theirs.as_raw_fd().to_string(),
            ];
            args.extend(sizes_argv());
            let peer = spawn_python(&args, vec![theirs.into_fd()]);
            send_all(|m| ours.send_bytes(m));
            peer
        }
        Kind::DuplexPipes => {
            let (ours, theirs) = duplex_pipes().unwrap();
            // Python only receives: it gets the read fd, the write fd goes.
            let (py_in, _unused) = theirs.into_fds();
            let mut args = vec!["check".into(), "pipe".into(), py_in.as_raw_fd().to_string()];
            args.extend(sizes_argv());
            let peer = spawn_python(&args, vec![py_in]);
            send_all(|m| ours.send_bytes(m));
            peer
        }
    };
    // Our sending end was dropped with the match arm above.
    peer.finish()
        .expect_stdout(&format!("checked {} then EOFError", SIZES.len()));
    hygiene.check();
}

/// Python makes and sends a message of each size itself, then closes its
/// end and exits; Rust checks each one, then must get `Closed`.
#[rstest]
fn rust_checks_what_python_sends(
    #[values(Kind::Pipe, Kind::Duplex, Kind::DuplexPipes)] kind: Kind,
) {
    let _serial = serial();
    require_python!();
    let hygiene = Hygiene::start();
    let mut recv: Box<dyn FnMut() -> ipc_harness::Result<Vec<u8>>>;
    let peer = match kind {
        Kind::Pipe => {
            let (py_out, mut rx) = pipe().unwrap();
            let mut args = vec!["send".into(), "pipe".into(), py_out.as_raw_fd().to_string()];
            args.extend(sizes_argv());
            let peer = spawn_python(&args, vec![py_out.into_fd()]);
            recv = Box::new(move || rx.recv_bytes_timeout(RECV_TIMEOUT));
            peer
        }
        Kind::Duplex => {
            let (mut ours, theirs) = duplex().unwrap();
            let mut args = vec![
                "send".into(),
                "socket".into(),
                theirs.as_raw_fd().to_string(),
            ];
            args.extend(sizes_argv());
            let peer = spawn_python(&args, vec![theirs.into_fd()]);
            recv = Box::new(move || ours.recv_bytes_timeout(RECV_TIMEOUT));
            peer
        }
        Kind::DuplexPipes => {
            let (mut ours, theirs) = duplex_pipes().unwrap();
            // Python only sends: it gets the write fd, the read fd goes.
            let (_unused, py_out) = theirs.into_fds();
            let mut args = vec!["send".into(), "pipe".into(), py_out.as_raw_fd().to_string()];
            args.extend(sizes_argv());
            let peer = spawn_python(&args, vec![py_out]);
            recv = Box::new(move || ours.recv_bytes_timeout(RECV_TIMEOUT));
            peer
        }
    };
    for &size in &SIZES {
        let got = recv().unwrap_or_else(|e| panic!("receiving {size} bytes from python: {e}"));
        assert_same(
            &got,
            &pattern(size),
            &format!("python's {size}-byte message"),
        );
    }
    let end = recv();
    assert!(
        matches!(end, Err(Error::Closed)),
        "after python closed: {end:?}"
    );
    drop(recv);
    peer.finish()
        .expect_stdout(&format!("sent {}", SIZES.len()));
    hygiene.check();
}

/// Our header for each length is byte for byte the one CPython's
/// `Connection._send_bytes` sends, including the long form (`-1` then an
/// 8-byte length) past 2^31-1 bytes. Python runs its own `_send_bytes` on a
/// buffer that only claims its length, with `_send` recording the pieces,
/// so no 2 GiB message is ever made.
#[test]
fn headers_match_cpython_send_bytes() {
    let _serial = serial();
    require_python!();
    let hygiene = Hygiene::start();
    let lens: [u64; 14] = [
        0,
        1,
        4,
        16384,
        16385,
        65536,
        (1 << 31) - 2,
        (1 << 31) - 1,
        1 << 31,
        (1 << 31) + 1,
        4 << 30,
        (4 << 30) + 5,
        1 << 40,
        i64::MAX as u64,
    ];
    let mut args = vec!["headers".to_string()];
    args.extend(lens.iter().map(|n| n.to_string()));
    let end = spawn_python(&args, Vec::new()).finish();
    let ours: Vec<String> = lens
        .iter()
        .map(|&n| {
            let mut h = [0u8; LONG_HEADER_LEN];
            let used = encode_header(n, &mut h);
            h[..used].iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect();
    end.expect_stdout(&ours.join("\n"));
    // The cut between the forms is where CPython puts it.
    assert_eq!(ours[7], "7fffffff");
    assert_eq!(ours[8], "ffffffff0000000080000000");
    hygiene.check();
}

/// CPython's own long header for a 4 GiB message, followed by 3 bytes and
/// the peer's exit, is `Truncated { expected: 4 GiB, got: 3 }` here: we
/// parse the long form CPython writes, and trust it with no memory.
#[test]
fn cpython_long_header_cut_short_is_truncated() {
    let _serial = serial();
    require_python!();
    let hygiene = Hygiene::start();
    let (py_out, mut rx) = pipe().unwrap();
    let claim: u64 = 4 << 30;
    let args = vec![
        "long-then-exit".into(),
        py_out.as_raw_fd().to_string(),
        claim.to_string(),
    ];
    let peer = spawn_python(&args, vec![py_out.into_fd()]);
    let got = rx.recv_bytes_timeout(RECV_TIMEOUT);
    assert!(
        matches!(got, Err(Error::Truncated { expected, got: 3 }) if expected == claim),
        "{got:?}"
    );
    peer.finish()
        .expect_stdout(&format!("sent a header for {claim} bytes and 3 of them"));
    drop(rx);
    hygiene.check();
}

/// The peer gets exactly the fds it was handed: one we kept stays
/// close-on-exec and never reaches Python. Were it leaked, Python would
/// hold a copy of our write end and the end-of-stream checks above could
/// hang instead of passing or failing; here it would show as a `Timeout`
/// where `Closed` is expected.
#[test]
fn only_the_fds_handed_over_reach_python() {
    let _serial = serial();
    require_python!();
    let hygiene = Hygiene::start();
    let (kept_tx, mut kept_rx) = pipe().unwrap();
    let (tx, py_in) = pipe().unwrap();
    let args = vec![
        "check".into(),
        "pipe".into(),
        py_in.as_raw_fd().to_string(),
        "5".into(),
    ];
    let peer = spawn_python(&args, vec![py_in.into_fd()]);
    // Python is alive now, blocked waiting for our message. If it had
    // inherited `kept_tx`, dropping ours would not end that stream.
    drop(kept_tx);
    let end = kept_rx.recv_bytes_timeout(Duration::from_secs(2));
    assert!(
        matches!(end, Err(Error::Closed)),
        "a write end we kept reached python: {end:?}"
    );
    tx.send_bytes(&pattern(5)).unwrap();
    drop(tx);
    peer.finish().expect_stdout("checked 1 then EOFError");
    drop(kept_rx);
    hygiene.check();
}
