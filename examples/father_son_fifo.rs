//! The father/son FIFO example (Python's `os.mkfifo`), in Rust, the
//! role chosen by a command-line argument:
//!
//! ```text
//! cargo run --example father_son_fifo -- father /tmp/father-son.fifo   # terminal 1
//! cargo run --example father_son_fifo -- son /tmp/father-son.fifo      # terminal 2
//! cargo run --example father_son_fifo                            # both, forked
//! ```
//!
//! The father creates the FIFO if nothing is there (mode 0600, removed
//! again when he is done), opens it for reading (which waits for a son, as
//! the kernel's open does) and prints each line until the last son closes.
//! The son opens it for writing (waiting up to 10 s for a father, and for
//! the FIFO to be created) and sends five lines. Lines, like the Python
//! program's `readline`: whole lines only.
//!
//! With no argument it runs both roles itself: it forks the son, who
//! returns what he did to the father to print (children never print).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ipc_harness::Error;
use ipc_harness::fifo::{Fifo, FifoWriter, LineReader, Wait};
use ipc_harness::harness::fork;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The father: creates the FIFO if absent, prints each line received until
/// the last writer closes. Returns how many lines came.
pub fn father(path: &Path, wait: Wait, out: &mut dyn Write) -> Result<usize> {
    // Keep the handle: dropping it removes the FIFO we created.
    let _created = match Fifo::create(path) {
        Ok(fifo) => Some(fifo),
        Err(Error::AlreadyExists { .. }) => None, // a FIFO someone made: use it
        Err(e) => return Err(e.into()),
    };
    let mut lines = LineReader::open(path, wait)?;
    let mut n = 0;
    loop {
        match lines.recv_line() {
            Ok(line) => {
                n += 1;
                writeln!(
                    out,
                    "Father ({}) received: {}",
                    std::process::id(),
                    String::from_utf8_lossy(&line)
                )?;
            }
            Err(e) if e.is_closed() => break,
            Err(e) => return Err(e.into()),
        }
    }
    writeln!(
        out,
        "Father ({}): the last son has closed.",
        std::process::id()
    )?;
    Ok(n)
}

/// The son: opens the FIFO for writing (waiting up to 10 s for it to exist
/// and for a father to open it) and sends five lines.
pub fn son(path: &Path, out: &mut dyn Write) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let writer = loop {
        match FifoWriter::open(path, Wait::Timeout(Duration::from_secs(10))) {
            Ok(w) => break w,
            // The father has not created it yet.
            Err(Error::NotFound { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    };
    for counter in 0..5 {
        let line = format!("Spam {counter:03}");
        writer.send_line(&line)?;
        writeln!(out, "Son ({}) sent: {line}", std::process::id())?;
    }
    Ok(5)
}

/// Both roles: forks the son, plays the father, then prints what the son did.
pub fn both(out: &mut dyn Write) -> Result<usize> {
    let dir = std::env::temp_dir().join(format!("father_son_fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("father-son.fifo");
    let son_path = path.clone();
    let child = fork::spawn(move || {
        let mut said = Vec::new();
        son(&son_path, &mut said).unwrap();
        said
    })?;
    let got = father(&path, Wait::Timeout(Duration::from_secs(10)), out);
    let said = child.wait(Duration::from_secs(10))?.expect_success();
    let _ = std::fs::remove_dir_all(&dir);
    out.write_all(&said)?;
    got
}

/// Parses the arguments (without the program name) and plays that role.
pub fn run(args: &[String], out: &mut dyn Write) -> Result<usize> {
    match args {
        [] => both(out),
        [role, path] if role == "father" => father(Path::new(path), Wait::Blocking, out),
        [role, path] if role == "son" => son(Path::new(path), out),
        _ => Err("usage: father_son_fifo [father PATH | son PATH]".into()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args, &mut std::io::stdout().lock()) {
        eprintln!("father_son_fifo: {e}");
        std::process::exit(if args.len() == 2 { 1 } else { 2 });
    }
}
