//! Pitfall 10, `task-done-too-many-times`: `task_done()` called more times than
//! items were put drives a plain counter below zero; the fix, `JoinableQueue`,
//! refuses the extra call.

use std::io::Write;
use std::time::Duration;

use ipc_harness::error::{Error, Result};
use ipc_harness::harness::fork::{self};

use super::kit::{say, story};

/// The naive counter runs as plain arithmetic (it is the missing check, not
/// an IPC effect); the fix runs for real across a fork.
pub(super) fn task_done_too_many_times(out: &mut dyn Write) -> Result<(bool, bool)> {
    story(
        out,
        &[
            "The naive code: a counter of unfinished tasks with no check. The parent puts",
            "item 1; a worker finishes it and, by a bug, calls task_done() twice; then the",
            "parent puts item 2 and joins.",
        ],
    )?;
    let mut unchecked: i64 = 0;
    unchecked += 1; // put item 1
    unchecked -= 1; // task_done
    unchecked -= 1; // the extra task_done: -1, and nobody notices
    say(
        out,
        &format!("  after the two task_done() calls the counter says {unchecked}"),
    )?;
    unchecked += 1; // put item 2
    say(
        out,
        &format!("  after item 2 is put it says {unchecked}: nothing unfinished"),
    )?;
    let naive_failed = unchecked == 0;
    if naive_failed {
        say(
            out,
            "  so join() returns at once, while item 2 has not even been taken.",
        )?;
    }
    story(
        out,
        &[
            "",
            "Why: join() trusts the counter, and the extra call pushed it below zero.",
            "Python refuses the extra call: ValueError: task_done() called too many times.",
            "",
            "The fix: ipc_harness::JoinableQueue, shared with a forked worker that takes",
            "item 1 and calls task_done() twice:",
        ],
    )?;
    let jq = ipc_harness::JoinableQueue::new()?;
    jq.put_bytes(b"item 1")?;
    let worker = {
        let jq = jq.clone();
        fork::spawn(move || {
            jq.close_producer();
            let got = jq
                .get_bytes()
                .map(|m| String::from_utf8_lossy(&m).into_owned());
            let show = |r: Result<()>| match r {
                Ok(()) => "accepted".to_string(),
                Err(e) => format!("refused: {e}"),
            };
            let first = show(jq.task_done());
            let second = show(jq.task_done());
            format!("{got:?}|{first}|{second}").into_bytes()
        })?
    };
    let report = worker.wait(Duration::from_secs(10))?;
    let text = String::from_utf8_lossy(&report.output).into_owned();
    let parts: Vec<&str> = text.split('|').collect();
    let first = parts.get(1).copied().unwrap_or("?");
    let second = parts.get(2).copied().unwrap_or("?");
    say(out, &format!("  first task_done():  {first}"))?;
    say(out, &format!("  second task_done(): {second}"))?;
    let refused =
        first == "accepted" && second == format!("refused: {}", Error::TaskDoneTooManyTimes);
    jq.put_bytes(b"item 2")?;
    jq.close_producer();
    let join = jq.join_timeout(Duration::from_millis(200));
    let waited = matches!(&join, Err(Error::JoinTimeout { unfinished: 1, .. }));
    match &join {
        Err(e) => say(
            out,
            &format!("  after item 2 is put, join_timeout(200 ms): {e}"),
        )?,
        Ok(()) => say(
            out,
            "  after item 2 is put, join_timeout(200 ms) returned: WRONG",
        )?,
    }
    say(
        out,
        "The extra call changed nothing: join() waits for item 2, as it must.",
    )?;
    Ok((naive_failed, report.is_success() && refused && waited))
}
