//! `ipc-harness fifo listen|send`: the father/son FIFO example (Python's
//! `os.mkfifo`) as separate processes, end to end, through the same code
//! the binary runs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ipc_harness::fifo::{Fifo, FifoOptions, FifoWriter, Wait};
use ipc_harness::harness::fork;
use ipc_harness::{Error, sys};
use ipc_harness_cli::fifo_cli::{self, FifoCommand, ListenOptions};

/// How long any child may run.
const CHILD_DEADLINE: Duration = Duration::from_secs(20);
/// A generous open timeout for peers that are known to be coming.
const PEER: Wait = Wait::Timeout(Duration::from_secs(10));

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// No child of this process is left, running or unreaped (call holding
/// `fork::serial()`, so no other test has children).
fn assert_no_children() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let r = waitpid(None, Some(WaitPidFlag::WNOHANG));
    assert_eq!(r, Err(nix::errno::Errno::ECHILD), "a child was left behind");
}

// ---------------------------------------------------------------------------
// The father/son FIFO example, end to end
// ---------------------------------------------------------------------------

/// `ipc-harness fifo ARGS...` as the binary will parse it.
fn cli(args: &[String]) -> FifoCommand {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        fifo: FifoCommand,
    }
    use clap::Parser;
    let argv = std::iter::once("fifo".to_string()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).unwrap().fifo
}

/// Runs `fifo send ARGS...` (stdin: `input`), retrying while the listener
/// has not made the directory or the FIFO yet. Returns the count sent.
fn son(args: Vec<String>, input: &'static [u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cli(&args).run(&mut std::io::sink(), input) {
            Ok(n) => return vec![n as u8],
            Err(Error::NotFound { .. } | Error::NoSuchDirectory { .. })
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn father_and_sons_as_separate_processes_end_to_end() {
    let _serial = fork::serial();
    let dir = tempdir();
    let path = dir.path().join("sub").join("seed-fifo");
    let path_arg = path.display().to_string();
    for lines in [true, false] {
        let mut flags: Vec<String> = Vec::new();
        if lines {
            flags.push("--lines".into());
        }
        // The father and the sons are siblings: none forked another.
        let mut args: Vec<String> = ["listen", &path_arg, "--parents", "--keep-listening"]
            .map(String::from)
            .to_vec();
        args.extend(["--count".into(), "4".into()]);
        args.extend(flags.clone());
        let father = fork::spawn(move || {
            let mut out = Vec::new();
            match cli(&args).run(&mut out, std::io::empty()) {
                Ok(4) => out,
                other => panic!("{other:?}"),
            }
        })
        .unwrap();
        let father_pid = father.pid();
        // One son names his messages; the other reads them from stdin.
        let mut first: Vec<String> = ["send", &path_arg, "--timeout", "10", "Spam 000", "Spam 001"]
            .map(String::from)
            .to_vec();
        first.extend(flags.clone());
        let mut second: Vec<String> = ["send", &path_arg].map(String::from).to_vec();
        second.extend(flags);
        let sons = vec![
            fork::spawn(move || son(first, b"")).unwrap(),
            fork::spawn(move || son(second, b"Spam 100\nSpam 101\n")).unwrap(),
        ];
        let mut all = vec![father];
        all.extend(sons);
        let mut reports = fork::wait_all(all, CHILD_DEADLINE).unwrap();
        // The sons first: a son that failed explains a father still waiting.
        for r in reports.split_off(1) {
            assert_eq!(r.expect_success(), [2]);
        }
        let out = reports.pop().unwrap().expect_success();
        assert_no_children();
        let out = String::from_utf8(out).unwrap();
        let mut got: Vec<&str> = Vec::new();
        for line in out.lines() {
            let prefix = format!("Father ({father_pid}) received: ");
            let rest = line
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{line}"));
            let (msg, time) = rest.rsplit_once(" at ").unwrap();
            assert!(time.len() == 27 && time.ends_with('Z'), "{time}");
            got.push(msg);
        }
        got.sort_unstable();
        assert_eq!(
            got,
            ["Spam 000", "Spam 001", "Spam 100", "Spam 101"],
            "lines: {lines}"
        );
        assert!(!path.exists(), "the father removes the FIFO it created");
    }

    // Without --parents, a missing directory is the clear error.
    let opts = ListenOptions::default();
    let e =
        fifo_cli::listen(&dir.path().join("nope").join("f"), &opts, &mut Vec::new()).unwrap_err();
    assert!(matches!(e, Error::NoSuchDirectory { .. }), "{e:?}");
    // And a son with --nonblock and no father is told there is no reader.
    let fifo = Fifo::create(dir.path().join("lonely")).unwrap();
    let args = [
        "send",
        &fifo.path().display().to_string(),
        "--nonblock",
        "hi",
    ]
    .map(String::from);
    let e = cli(&args)
        .run(&mut std::io::sink(), std::io::empty())
        .unwrap_err();
    assert!(matches!(e, Error::NoReader { .. }), "{e:?}");
}

#[test]
fn listener_returns_when_the_last_son_closes_and_reports_a_partial_line() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let path = fifo.path().to_path_buf();
    let child = fork::spawn(move || {
        let w = FifoWriter::open(&path, PEER).unwrap();
        w.send_line("whole").unwrap();
        let fd = w.into_fd();
        use std::os::fd::AsFd;
        sys::write(fd.as_fd(), b"no newline").unwrap();
        Vec::new()
    })
    .unwrap();
    let opts = ListenOptions {
        lines: true,
        ..ListenOptions::default()
    };
    let mut out = Vec::new();
    let n = fifo_cli::listen(fifo.path(), &opts, &mut out).unwrap();
    child.wait(CHILD_DEADLINE).unwrap().expect_success();
    assert_eq!(n, 2);
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("received: whole at "), "{out}");
    assert!(lines[1].contains("received: no newline at "), "{out}");
    assert!(
        lines[1].ends_with("(partial line: no newline before the end)"),
        "{out}"
    );
    assert!(
        fifo.path().exists(),
        "an existing FIFO is not the listener's to remove"
    );
}

/// A FIFO open to other users: `send` refuses it by default and sends with
/// `--allow-shared`.
#[test]
fn send_refuses_a_shared_fifo_unless_allowed() {
    let _serial = fork::serial();
    let dir = tempdir();
    let fifo = Fifo::create(dir.path().join("f")).unwrap();
    let path = fifo.path().to_path_buf();
    let mut reader = FifoOptions::new()
        .wait(Wait::NonBlocking)
        .allow_shared(true)
        .reader(&path)
        .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    let mut sopts = fifo_cli::SendOptions {
        wait: Wait::NonBlocking,
        ..fifo_cli::SendOptions::default()
    };
    let e = fifo_cli::send(&path, &sopts, ["Spam 000"]).unwrap_err();
    assert!(matches!(e, Error::SharedFifo { mode: 0o666, .. }), "{e:?}");
    sopts.allow_shared = true;
    assert_eq!(fifo_cli::send(&path, &sopts, ["Spam 000"]).unwrap(), 1);
    assert_eq!(reader.recv_bytes().unwrap(), b"Spam 000");
}

// ---------------------------------------------------------------------------
// What the binary says when a FIFO command fails: what to do next
// ---------------------------------------------------------------------------

fn binary() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_ipc-harness"))
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Starts `ipc-harness fifo listen ARGS PATH` with its output captured,
/// and waits (at most 10 s) until it has made the FIFO.
fn start_listener(path: &std::path::Path, args: &[&str]) -> std::process::Child {
    let child = binary()
        .args(["fifo", "listen"])
        .args(args)
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "the listener made no FIFO");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

#[test]
fn send_into_a_missing_directory_says_to_start_listen_with_parents() {
    // Other tests here reap every child: hold off while ours run.
    let _serial = fork::serial();
    let dir = tempdir();
    let path = dir.path().join("no").join("such").join("fifo");
    let o = binary()
        .args(["fifo", "send", path.to_str().unwrap(), "Spam 000"])
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "start `ipc-harness fifo listen {} --parents` first",
            path.display()
        )),
        "{err}"
    );
    // Not advice `send` cannot follow.
    assert!(!err.contains("ask for missing parents"), "{err}");
}

#[test]
fn send_to_a_path_with_nothing_there_says_that_listen_creates_it() {
    // Other tests here reap every child: hold off while ours run.
    let _serial = fork::serial();
    let dir = tempdir();
    let path = dir.path().join("spam");
    let o = binary()
        .args([
            "fifo",
            "send",
            "--lines",
            path.to_str().unwrap(),
            "Spam 000",
        ])
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        err.contains(&format!(
            "`ipc-harness fifo listen {} --lines` does: start it first",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn lines_sent_to_a_framed_listener_get_a_hint_to_use_lines_on_both_sides() {
    // Other tests here reap every child: hold off while ours run.
    let _serial = fork::serial();
    let dir = tempdir();
    let path = dir.path().join("spam");
    let p = path.to_str().unwrap();
    let listener = start_listener(&path, &[]);
    let sent = binary()
        .args([
            "fifo",
            "send",
            "--lines",
            "--timeout",
            "10",
            p,
            "not a frame",
        ])
        .output()
        .unwrap();
    assert_eq!(sent.status.code(), Some(0), "{}", stderr_of(&sent));
    let heard = listener.wait_with_output().unwrap();
    let err = stderr_of(&heard);
    assert_eq!(heard.status.code(), Some(1), "{err}");
    assert!(err.contains("of 1852797984 bytes"), "{err}");
    assert!(err.contains(r#"reads as text ("not ")"#), "{err}");
    assert!(
        err.contains(&format!(
            "use --lines on both sides (`ipc-harness fifo listen --lines {p}` and `ipc-harness fifo send --lines {p} ...`)"
        )),
        "{err}"
    );
}

#[test]
fn chunked_listen_hears_chunked_senders_and_refuses_a_framed_one() {
    // Other tests here reap every child: hold off while ours run.
    let _serial = fork::serial();
    let dir = tempdir();
    let path = dir.path().join("spam");
    let p = path.to_str().unwrap();
    let send = |chunked: bool, msg: &str| {
        let mut args = vec!["fifo", "send", "--timeout", "10"];
        if chunked {
            args.push("--chunked");
        }
        args.extend([p, msg]);
        binary().args(&args).output().unwrap()
    };
    // Two chunked senders, one after the other: both heard, in order.
    let listener = start_listener(&path, &["--chunked", "--keep-listening", "--count", "2"]);
    let long = "x".repeat(10_000); // three chunks
    for msg in ["Spam 000", &long] {
        let sent = send(true, msg);
        assert_eq!(sent.status.code(), Some(0), "{}", stderr_of(&sent));
    }
    let heard = listener.wait_with_output().unwrap();
    assert_eq!(heard.status.code(), Some(0), "{}", stderr_of(&heard));
    let out = String::from_utf8(heard.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("received: Spam 000 at "), "{out}");
    assert!(lines[1].contains(&format!("received: {long} at ")), "{out}");
    // A framed sender: the chunked listener refuses, naming the modes.
    let listener = start_listener(&path, &["--chunked"]);
    let sent = send(false, "Spam 001");
    assert_eq!(sent.status.code(), Some(0), "{}", stderr_of(&sent));
    let heard = listener.wait_with_output().unwrap();
    let err = stderr_of(&heard);
    assert_eq!(heard.status.code(), Some(1), "{err}");
    assert!(err.contains("this reader reads chunked mode"), "{err}");
    // --chunked and --lines do not go together.
    let o = binary()
        .args(["fifo", "send", "--chunked", "--lines", p, "Spam"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr_of(&o));
}
