//! Shrinking a non-linearizable history to a minimal counterexample.
//!
//! Removing an operation outright can make a history fail for a new
//! reason (drop a `put(7)` and the `get() -> 7` becomes impossible), so
//! shrinking first *relaxes* operations: a relaxed operation keeps its call
//! time but its answer is ignored and it may have taken effect at any point
//! after its call, or never (as if its process had been killed inside it).
//! That only ever makes a history easier to linearize, so what still fails
//! fails because of the answers left. The steps:
//!
//! 1. the shortest failing prefix in time (operations called after an
//!    instant dropped, those still running then relaxed);
//! 2. relax answers, halves first, then one at a time, while it fails;
//! 3. drop relaxed operations while it fails *and* every answer left is
//!    still needed (so a drop cannot have changed the reason).

use std::fmt;

use super::search::{Outcome, items, search};
use super::{History, Model, Operation};

/// A minimal non-linearizable sub-history, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample<I, O> {
    /// Indices (in the checked history) of the operations whose answers
    /// cannot all be true; relaxing any one of them makes the rest
    /// linearizable.
    pub fixed: Vec<usize>,
    /// Indices of the other operations the counterexample needs invoked
    /// (answers ignored: each may have taken effect after its call, or not
    /// at all).
    pub context: Vec<usize>,
    /// The counterexample as a history: the fixed operations as they were,
    /// the context ones pending. Still not linearizable.
    pub history: History<I, O>,
    /// Which answers cannot all be true, and why, in words.
    pub explanation: String,
}

impl<I, O> fmt::Display for Counterexample<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explanation)
    }
}

struct Shrinker<'a, M: Model> {
    model: &'a M,
    history: &'a History<M::Input, M::Output>,
    budget: u64,
    /// Searches left before shrinking stops where it is.
    searches: std::cell::Cell<u32>,
}

impl<M: Model> Shrinker<'_, M> {
    /// `kept` (sorted) with `relaxed` (sorted) pending: definitely not
    /// linearizable?
    fn fails(&self, kept: &[usize], relaxed: &[usize]) -> bool {
        if self.searches.get() == 0 {
            return false;
        }
        self.searches.set(self.searches.get() - 1);
        matches!(
            search(self.model, &items(self.history, kept, relaxed), self.budget),
            Outcome::NotFound
        )
    }

    fn witness(&self, kept: &[usize], relaxed: &[usize]) -> Option<Vec<usize>> {
        if self.searches.get() == 0 {
            return None;
        }
        self.searches.set(self.searches.get() - 1);
        match search(self.model, &items(self.history, kept, relaxed), self.budget) {
            Outcome::Found(order) => Some(order.into_iter().map(|k| kept[k]).collect()),
            _ => None,
        }
    }

    fn minimal(&self, kept: &[usize], relaxed: &[usize], fixed: &[usize]) -> bool {
        fixed
            .iter()
            .all(|&f| !self.fails(kept, &merge(relaxed, &[f])))
    }
}

fn merge(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = a.iter().chain(b).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn without(a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter()
        .filter(|x| b.binary_search(x).is_err())
        .copied()
        .collect()
}

/// Delta-debugging: removes chunks of `set` (halves, then smaller) while
/// `ok(the smaller set, the chunk removed)` holds.
fn ddmin(mut set: Vec<usize>, mut ok: impl FnMut(&[usize], &[usize]) -> bool) -> Vec<usize> {
    let mut chunk = set.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        let mut changed = false;
        while start < set.len() {
            let end = (start + chunk).min(set.len());
            let removed: Vec<usize> = set[start..end].to_vec();
            let rest: Vec<usize> = set[..start].iter().chain(&set[end..]).copied().collect();
            if ok(&rest, &removed) {
                set = rest;
                changed = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 {
            if !changed {
                return set;
            }
        } else {
            chunk = chunk.div_ceil(2);
        }
    }
}

/// The most searches one shrink makes; past it, the counterexample is
/// kept as it stands (still failing, perhaps not minimal).
const SEARCHES: u32 = 400;

/// Shrinks the failing part `part` (history indices) of `history`.
pub(super) fn shrink<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    part: &[usize],
    budget: u64,
) -> Counterexample<M::Input, M::Output> {
    let s = Shrinker {
        model,
        history,
        budget,
        searches: std::cell::Cell::new(SEARCHES),
    };
    let mut part = part.to_vec();
    part.sort_unstable();

    // 1. The shortest failing prefix in time.
    let mut cuts: Vec<u64> = part.iter().map(|&i| history.ops[i].call).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.push(u64::MAX);
    let prefix = |t: u64| -> (Vec<usize>, Vec<usize>) {
        let kept: Vec<usize> = part
            .iter()
            .copied()
            .filter(|&i| history.ops[i].call <= t)
            .collect();
        let relaxed = kept
            .iter()
            .copied()
            .filter(|&i| history.ops[i].ret.is_none_or(|r| r > t))
            .collect();
        (kept, relaxed)
    };
    let (mut lo, mut hi) = (0usize, cuts.len() - 1); // cuts[hi] fails
    while lo < hi {
        let mid = (lo + hi) / 2;
        let (kept, relaxed) = prefix(cuts[mid]);
        if s.fails(&kept, &relaxed) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let (mut kept, mut relaxed) = prefix(cuts[hi]);
    if !s.fails(&kept, &relaxed) {
        // The search ran out of budget on every prefix: keep it all.
        (kept, relaxed) = (part.clone(), Vec::new());
    }
    relaxed.extend(
        kept.iter()
            .copied()
            .filter(|&i| history.ops[i].ret.is_none()),
    );
    relaxed.sort_unstable();
    relaxed.dedup();

    // 2. Relax answers while it fails.
    let answers = without(&kept, &relaxed);
    let fixed = ddmin(answers, |rest, _| s.fails(&kept, &without(&kept, rest)));
    relaxed = without(&kept, &fixed);

    // 3. Drop relaxed operations while it fails for the same answers.
    let context = ddmin(relaxed.clone(), |rest, _| {
        let kept = merge(&fixed, rest);
        s.fails(&kept, rest) && s.minimal(&kept, rest, &fixed)
    });
    let kept = merge(&fixed, &context);

    let exhausted = s.searches.get() == 0;
    s.searches.set(2 * fixed.len() as u32 + 2);
    let mut explanation = explain(&s, &kept, &fixed, &context);
    if exhausted {
        explanation.push_str(
            "(Shrinking stopped at its budget: this counterexample fails, but may not be minimal.)\n",
        );
    }
    let ops = kept
        .iter()
        .map(|&i| {
            let op = &history.ops[i];
            if context.binary_search(&i).is_ok() {
                Operation {
                    output: None,
                    ret: None,
                    ..op.clone()
                }
            } else {
                op.clone()
            }
        })
        .collect();
    Counterexample {
        fixed,
        context,
        history: History { ops },
        explanation,
    }
}

fn explain<M: Model>(
    s: &Shrinker<'_, M>,
    kept: &[usize],
    fixed: &[usize],
    context: &[usize],
) -> String {
    use fmt::Write;
    let h = s.history;
    let t0 = kept.iter().map(|&i| h.ops[i].call).min().unwrap_or(0);
    let us = |t: u64| (t - t0) as f64 / 1000.0;
    let line = |i: usize, out: &mut String| {
        let op = &h.ops[i];
        let output = if context.binary_search(&i).is_ok() {
            None
        } else {
            op.output.as_ref()
        };
        let when = match op.ret {
            Some(r) if output.is_some() => format!("{:.3}..{:.3} us", us(op.call), us(r)),
            _ => format!("{:.3} us.. (answer ignored)", us(op.call)),
        };
        let _ = writeln!(
            out,
            "  #{i} process {}, {when}: {}",
            op.process,
            s.model.describe(&op.input, output)
        );
    };
    let mut out = String::new();
    let others = if context.is_empty() {
        String::new()
    } else {
        format!(
            ", even allowing the {} other operation(s) invoked meanwhile to have taken effect at any point after their call, or not at all",
            context.len()
        )
    };
    if fixed.len() == 1 {
        let _ = writeln!(
            out,
            "Not linearizable: this answer cannot be true at any instant between its call and its return{others}:"
        );
    } else {
        let _ = writeln!(
            out,
            "Not linearizable: these {} answers cannot all be true in one order that respects real time{others}:",
            fixed.len()
        );
    }
    for &i in fixed {
        line(i, &mut out);
    }
    if !context.is_empty() {
        let _ = writeln!(out, "The other operations:");
        for &i in context {
            line(i, &mut out);
        }
    }
    if fixed.len() > 1 {
        let _ = writeln!(
            out,
            "Any {} of them can be true; ignoring one answer, an order the model accepts:",
            fixed.len() - 1
        );
        for &f in fixed {
            let relaxed = merge(context, &[f]);
            let order = match s.witness(kept, &relaxed) {
                Some(order) => order
                    .iter()
                    .map(|&i| {
                        let op = &h.ops[i];
                        let output = if relaxed.binary_search(&i).is_ok() {
                            None
                        } else {
                            op.output.as_ref()
                        };
                        format!("#{i} {}", s.model.describe(&op.input, output))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "(not found within the budget)".to_string(),
            };
            let _ = writeln!(out, "  without #{f}'s answer: {order}");
        }
    }
    out
}
