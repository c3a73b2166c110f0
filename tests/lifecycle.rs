//! A queue's lifecycle across forked processes: exact `len` on a busy
//! bounded queue (and the two-load pitfall caught).
//!
//! Every test holds `fork::serial()` for its whole body; children never
//! print, they return bytes.

use std::time::Duration;

use ipc_harness::harness::fork;
use ipc_harness::queue::{Queue, set_len_pause};

const WAIT: Duration = Duration::from_secs(30);

/// Observers of `len()` on a `bounded` queue that one producer and one
/// consumer keep busy; each observer sleeps `pause` inside every `len()`,
/// between its first loads. Returns, over all observers, how many answers
/// were each value `0..=bound + 2` (the last bucket: `bound + 2` or more),
/// stopping an observer early at its first answer above the bound if
/// `stop_at_first_bad`.
fn observe_len(
    two_load_pitfall: bool,
    bound: usize,
    observers: usize,
    samples: usize,
    pause: Duration,
    stop_at_first_bad: bool,
) -> Vec<u64> {
    let _g = fork::serial();
    let q = Queue::builder()
        .max_items(bound)
        .two_load_len_pitfall(two_load_pitfall)
        .build()
        .unwrap();
    // One message in `stop` tells the producer and the consumer to stop.
    let stop = Queue::new().unwrap();
    let busy = |put: bool| {
        let (q, stop) = (q.clone(), stop.clone());
        fork::spawn(move || {
            let mut n = 0u64;
            while stop.is_empty() {
                let ok = if put {
                    q.put_bytes_timeout(b"x", Duration::from_millis(5)).is_ok()
                } else {
                    q.get_bytes_timeout(Duration::from_millis(5)).is_ok()
                };
                n += u64::from(ok);
            }
            n.to_le_bytes().to_vec()
        })
        .unwrap()
    };
    let producer = busy(true);
    let consumer = busy(false);
    let watchers: Vec<_> = (0..observers)
        .map(|_| {
            let q = q.clone();
            fork::spawn(move || {
                set_len_pause(pause);
                let mut hist = vec![0u64; bound + 3];
                for _ in 0..samples {
                    let n = q.len().min(bound + 2);
                    hist[n] += 1;
                    if stop_at_first_bad && n > bound {
                        break;
                    }
                }
                hist.iter().flat_map(|c| c.to_le_bytes()).collect()
            })
            .unwrap()
        })
        .collect();
    let mut hist = vec![0u64; bound + 3];
    for report in fork::wait_all(watchers, WAIT).unwrap() {
        let bytes = report.expect_success();
        for (i, c) in bytes.chunks(8).enumerate() {
            hist[i] += u64::from_le_bytes(c.try_into().unwrap());
        }
    }
    stop.put_bytes(b"stop").unwrap();
    let moved: Vec<u64> = fork::wait_all(vec![producer, consumer], WAIT)
        .unwrap()
        .into_iter()
        .map(|r| u64::from_le_bytes(r.expect_success().try_into().unwrap()))
        .collect();
    // The queue was busy while it was observed (else the test proves nothing).
    assert!(moved[0] > 0 && moved[1] > 0, "puts and gets: {moved:?}");
    hist
}

/// The case: observers descheduled inside `len()` (a 300 us pause
/// between its loads) on a queue bounded to 1 that others fill and empty.
/// Every answer is 0 or 1; with the old two loads, answers of 2 and more
/// came (see `two_load_len_pitfall_is_caught`).
#[test]
fn len_is_never_above_the_bound() {
    for bound in [1, 2] {
        let hist = observe_len(false, bound, 2, 150, Duration::from_micros(300), false);
        assert_eq!(hist.iter().sum::<u64>(), 300, "bound {bound}: {hist:?}");
        assert_eq!(
            hist[bound + 1..].iter().sum::<u64>(),
            0,
            "bound {bound}: answers per value {hist:?}"
        );
    }
}

/// The pitfall switch reproduces the old two-load `len`, and the same
/// observation catches it: an answer above the bound.
#[test]
fn two_load_len_pitfall_is_caught() {
    let hist = observe_len(true, 1, 1, 2000, Duration::from_millis(1), true);
    assert_eq!(
        hist[2..].iter().sum::<u64>(),
        1,
        "answers per value {hist:?}"
    );
}
