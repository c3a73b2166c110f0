//! [`Accounting`]: what became of every message, as figures.

use std::fmt;

/// What became of every message of one run (or of many, added up), and
/// what the faults did: Jepsen's `total-queue` figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accounting {
    /// Sends started.
    pub attempted: u64,
    /// Sends that returned `Ok` and arrived exactly once.
    pub ok: u64,
    /// Sends that returned `Ok` and never arrived (violations unless
    /// counted in [`lost_to_faults`](Self::lost_to_faults)).
    pub lost: u64,
    /// The part of [`lost`](Self::lost) that a fault explains: in a killed
    /// consumer's hands, or in a channel whose every consumer was gone.
    pub lost_to_faults: u64,
    /// Indeterminate sends (cut by a kill, refused, or failed) that
    /// arrived once.
    pub recovered: u64,
    /// Indeterminate sends that never arrived: allowed.
    pub indeterminate_lost: u64,
    /// Messages that arrived more than once.
    pub duplicated: u64,
    /// Messages that arrived but were never sent.
    pub unexpected: u64,
    /// Sends refused with `Closed` because no consumer was left. They are
    /// indeterminate too (a large message may have been partly written),
    /// so they are also counted in [`recovered`](Self::recovered) or
    /// [`indeterminate_lost`](Self::indeterminate_lost).
    pub refused: u64,
    /// Processes killed by faults.
    pub killed: u64,
    /// Times a process was stopped and continued by a fault.
    pub stopped: u64,
    /// Processes that closed their end early.
    pub closed_early: u64,
    /// Signals of a signal storm handled (by processes that lived to say).
    pub storm_signals: u64,
}

impl Accounting {
    /// Adds `other`'s figures to these.
    pub fn add(&mut self, other: &Accounting) {
        self.attempted += other.attempted;
        self.ok += other.ok;
        self.lost += other.lost;
        self.lost_to_faults += other.lost_to_faults;
        self.recovered += other.recovered;
        self.indeterminate_lost += other.indeterminate_lost;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
        self.refused += other.refused;
        self.killed += other.killed;
        self.stopped += other.stopped;
        self.closed_early += other.closed_early;
        self.storm_signals += other.storm_signals;
    }

    /// Signals the faults sent: a `SIGKILL` per kill, a `SIGSTOP` and a
    /// `SIGCONT` per stop, plus the storm's.
    pub fn signals(&self) -> u64 {
        self.killed + 2 * self.stopped + self.storm_signals
    }

    /// `n` as a fraction of the sends attempted.
    pub fn fraction(&self, n: u64) -> f64 {
        if self.attempted == 0 {
            0.0
        } else {
            n as f64 / self.attempted as f64
        }
    }
}

impl fmt::Display for Accounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |n| 100.0 * self.fraction(n);
        write!(
            f,
            "sends {}: ok {} ({:.1}%), lost {} ({:.1}%, {} to faults), recovered {} ({:.1}%), \
             indeterminate and lost {} ({:.1}%, {} refused), duplicated {}, unexpected {}; \
             faults: {} killed, {} stopped, {} closed early, {} storm signals",
            self.attempted,
            self.ok,
            pct(self.ok),
            self.lost,
            pct(self.lost),
            self.lost_to_faults,
            self.recovered,
            pct(self.recovered),
            self.indeterminate_lost,
            pct(self.indeterminate_lost),
            self.refused,
            self.duplicated,
            self.unexpected,
            self.killed,
            self.stopped,
            self.closed_early,
            self.storm_signals,
        )
    }
}
