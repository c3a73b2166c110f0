//! Pitfall 8, `fifo-missing-directory`: `mkfifo` in a directory that does not
//! exist fails with a bare "No such file"; the fix, `Fifo`, names the
//! missing directory and can create it.

use std::io::Write;
use std::path::Path;

use ipc_harness::error::{Error, Result};
use ipc_harness::fifo::{Fifo, FifoReader, FifoWriter, Wait};
use ipc_harness::sys;

use super::kit::{Scratch, WAIT, quote, say, spawn, story, success};

pub(super) fn fifo_missing_directory(out: &mut dyn Write) -> Result<(bool, bool)> {
    let scratch = Scratch::new()?;
    let path = scratch.path("missing").join("spam.fifo");
    let shown = Path::new("$TMP").join("missing").join("spam.fifo");
    say(
        out,
        &format!(
            "The naive code: the father calls mkfifo({}), as Python's os.mkfifo example does,",
            shown.display()
        ),
    )?;
    story(out, &["in a directory that does not exist.", ""])?;
    let p = path.clone();
    let father = spawn(move || {
        Ok(match sys::fifo::mkfifo(&p, 0o600) {
            Ok(()) => b"created".to_vec(),
            Err(e) => e.to_string().into_bytes(),
        })
    })?;
    let said = String::from_utf8_lossy(&success(father.wait(WAIT)?, "the father")?).into_owned();
    say(out, &format!("  mkfifo failed: {said}"))?;
    story(
        out,
        &[
            "  (Python's example dies here with FileNotFoundError: [Errno 2] No such file or directory.)",
            "  It does not say that the missing thing is the directory, not the FIFO it was",
            "  asked to create.",
        ],
    )?;
    let naive_failed = said.contains("No such file") && !path.exists();
    story(
        out,
        &[
            "",
            "Why: mkfifo(3) creates one directory entry; like open(2) with O_CREAT it fails with",
            "ENOENT when a directory on the way is missing, and it never creates directories.",
            "",
        ],
    )?;

    say(
        out,
        "The fix: ipc_harness::Fifo names the missing directory, and can create it:",
    )?;
    let clear = Fifo::create(&path);
    let text = match &clear {
        Err(e) => ipc_harness::error::chain(e).replace(&scratch.dir.display().to_string(), "$TMP"),
        Ok(_) => "it was created (unexpected)".into(),
    };
    say(out, &format!("  Fifo::create: {text}"))?;
    let clear_ok = matches!(clear, Err(Error::NoSuchDirectory { .. }));
    drop(clear);
    let fifo = Fifo::create_all(&path)?;
    say(
        out,
        "  Fifo::create_all made the directory (mode 0700) and the FIFO (mode 0600).",
    )?;
    let p = path.clone();
    let son = spawn(move || {
        FifoWriter::open(&p, Wait::Timeout(WAIT))?.send_bytes(b"Spam 000")?;
        Ok(Vec::new())
    })?;
    let mut father = FifoReader::open(&path, Wait::Timeout(WAIT))?;
    let got = father.recv_bytes_timeout(WAIT)?;
    success(son.wait(WAIT)?, "the son")?;
    say(
        out,
        &format!("  The son's message came through it: {}", quote(&got)),
    )?;
    drop(father);
    drop(fifo);
    let fixed_ok = clear_ok && got == b"Spam 000";
    Ok((naive_failed, fixed_ok))
}
