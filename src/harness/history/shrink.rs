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
//! 2. a window: the operations that end in the last few answers of that
//!    prefix (those that ended earlier left out), grown fourfold until it
//!    fails and what steps 3 and 4 make of it holds outside it too: its
//!    answers still cannot all be true with every operation that ended
//!    before the window kept with its own answer, and no one operation
//!    left out, added back with its answer ignored, makes the
//!    counterexample linearizable (so a window cannot blame a
//!    `get() -> 7` on a `put(7)` it left out);
//! 3. inside the window, relax answers (delta debugging: halves, then
//!    smaller chunks, then one at a time) while it fails;
//! 4. drop relaxed operations (the same way) while it fails *and* every
//!    answer left is still needed (so a drop cannot have changed the
//!    reason).
//!
//! Each search asked "does this still fail?" leaves out the relaxed
//! operations called after the last kept answer returned: every answer
//! comes before them in any order, and the model may always take them as
//! never having taken effect, so they cannot change the outcome. Answers
//! to the same question are remembered.
//!
//! A search that runs out of its budget is tried again with four, then
//! sixteen times the room, while a reserve shared by the whole shrink (256
//! budgets) lasts; one that still runs out counts as "linearizable", which
//! can leave the counterexample larger than minimal, never wrong; so does
//! running out of [`SEARCHES`] (the explanation then says so).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
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
    /// The linearization found up to the point of failure: the longest
    /// order of operations (indices in the checked history, in order) the
    /// search built before every way on was refused. Its operations
    /// respect real time and the model accepts their answers in this
    /// order (pending ones that appear took effect); whichever operation
    /// comes next cannot be linearized after them.
    pub linearized: Vec<usize>,
}

impl<I, O> fmt::Display for Counterexample<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explanation)
    }
}

/// A shrink search's question: (kept, relaxed), both sorted.
type Question = (Vec<usize>, Vec<usize>);

struct Shrinker<'a, M: Model> {
    model: &'a M,
    history: &'a History<M::Input, M::Output>,
    budget: u64,
    /// Searches left before shrinking stops where it is.
    searches: Cell<u32>,
    /// Configurations left for searches retried with more room.
    extra: Cell<u64>,
    /// Answers already found: (kept, relaxed) after the reduction.
    seen: RefCell<HashMap<Question, Option<bool>>>,
}

impl<M: Model> Shrinker<'_, M> {
    /// True if operation `i` answers nothing in (kept, `relaxed`).
    fn open(&self, relaxed: &[usize], i: usize) -> bool {
        self.history.ops[i].ret.is_none() || relaxed.binary_search(&i).is_ok()
    }

    /// `kept` (sorted) with `relaxed` (sorted) pending: definitely not
    /// linearizable?
    fn fails(&self, kept: &[usize], relaxed: &[usize]) -> bool {
        self.decide(kept, relaxed) == Some(true)
    }

    /// Whether (kept, relaxed) fails; `None` if the search ran out.
    fn decide(&self, kept: &[usize], relaxed: &[usize]) -> Option<bool> {
        // Relaxed operations called after the last answer returned cannot
        // change the outcome: leave them out.
        let last = kept
            .iter()
            .filter(|&&i| !self.open(relaxed, i))
            .filter_map(|&i| self.history.ops[i].ret)
            .max();
        let Some(last) = last else {
            return Some(false); // nothing answers: the empty order will do
        };
        let kept: Vec<usize> = kept
            .iter()
            .copied()
            .filter(|&i| !self.open(relaxed, i) || self.history.ops[i].call <= last)
            .collect();
        let relaxed: Vec<usize> = relaxed
            .iter()
            .copied()
            .filter(|i| kept.binary_search(i).is_ok())
            .collect();
        let key = (kept, relaxed);
        if let Some(&known) = self.seen.borrow().get(&key) {
            return known;
        }
        if self.searches.get() == 0 {
            return None;
        }
        self.searches.set(self.searches.get() - 1);
        let (kept, relaxed) = &key;
        // A search that runs out is tried again with more room, up to
        // ESCALATION times the budget: many pending operations called
        // before one impossible answer make a search wide but shallow,
        // and giving up on it would keep answers that are not needed.
        // The extra room is shared by the whole shrink, so histories whose
        // searches all run out cost at most ESCALATION budgets more.
        let items = items(self.history, kept, relaxed);
        let mut budget = self.budget;
        let failed = loop {
            match search(self.model, &items, budget) {
                Outcome::NotFound(_) => break Some(true),
                Outcome::Found(_) => break Some(false),
                Outcome::OutOfBudget(_) => {
                    let more = budget.saturating_mul(4);
                    if more > self.extra.get() {
                        break None;
                    }
                    self.extra.set(self.extra.get() - more);
                    budget = more;
                }
            }
        };
        self.seen.borrow_mut().insert(key, failed);
        failed
    }

    fn witness(&self, kept: &[usize], relaxed: &[usize]) -> Option<Vec<usize>> {
        match search(self.model, &items(self.history, kept, relaxed), self.budget) {
            Outcome::Found(order) => Some(order.into_iter().map(|k| kept[k]).collect()),
            _ => None,
        }
    }

    /// Relaxing any one of `fixed` makes (kept, relaxed) linearizable?
    /// (A search that runs out proves nothing: false.)
    fn minimal(&self, kept: &[usize], relaxed: &[usize], fixed: &[usize]) -> bool {
        fixed
            .iter()
            .all(|&f| self.decide(kept, &merge(relaxed, &[f])) == Some(false))
    }

    /// No one of `left_out`, added to (kept, relaxed) pending, makes it
    /// linearizable: the counterexample does not fail only for want of
    /// an operation the window left out (a `put(7)` before a
    /// `get() -> 7`). These searches are small and not remembered.
    fn robust(&self, kept: &[usize], relaxed: &[usize], left_out: &[usize]) -> bool {
        left_out.iter().all(|&x| {
            let kept = merge(kept, &[x]);
            let relaxed = merge(relaxed, &[x]);
            !matches!(
                search(
                    self.model,
                    &items(self.history, &kept, &relaxed),
                    self.budget
                ),
                Outcome::Found(_)
            )
        })
    }

    /// Steps 3 and 4 on `kept` (failing with `relaxed` pending): the
    /// answers that cannot all be true, and the context they need.
    fn minimise(&self, kept: &[usize], relaxed: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let answers: Vec<usize> = kept
            .iter()
            .copied()
            .filter(|&i| !self.open(relaxed, i))
            .collect();
        let fixed = ddmin(answers, |rest| self.fails(kept, &without(kept, rest)));
        let relaxed = without(kept, &fixed);
        let context = ddmin(relaxed, |rest| {
            let kept = merge(&fixed, rest);
            self.fails(&kept, rest) && self.minimal(&kept, rest, &fixed)
        });
        (fixed, context)
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

/// Delta-debugging: removes chunks of `set` (halves, then smaller, then
/// single elements) while `ok(the smaller set)` holds. The result is
/// 1-minimal: removing any one element left makes `ok` false.
fn ddmin(mut set: Vec<usize>, mut ok: impl FnMut(&[usize]) -> bool) -> Vec<usize> {
    let mut chunk = set.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        let mut changed = false;
        while start < set.len() {
            let end = (start + chunk).min(set.len());
            let rest: Vec<usize> = set[..start].iter().chain(&set[end..]).copied().collect();
            if ok(&rest) {
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
pub const SEARCHES: u32 = 5_000;

/// The extra room, in shrink budgets, that searches which ran out share
/// when they are tried again (each time with four times the room).
const ESCALATION: u64 = 256;

/// The answers in the first window tried (step 2).
const WINDOW: usize = 8;

/// Shrinks the failing part `part` (history indices) of `history`;
/// `linearized` is the longest partial linearization its search found.
pub(super) fn shrink<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    part: &[usize],
    budget: u64,
    linearized: Vec<usize>,
) -> Counterexample<M::Input, M::Output> {
    let s = Shrinker {
        model,
        history,
        budget,
        searches: Cell::new(SEARCHES),
        extra: Cell::new(budget.saturating_mul(ESCALATION)),
        seen: RefCell::new(HashMap::new()),
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

    // 2. The smallest window, in answers counted back from the failure,
    // that shows it; 3 and 4 inside it.
    let mut answers: Vec<usize> = without(&kept, &relaxed);
    answers.sort_by_key(|&i| (history.ops[i].ret, i));
    let mut window = WINDOW;
    let (fixed, context) = loop {
        if window >= answers.len() {
            break s.minimise(&kept, &relaxed);
        }
        // Operations that ended before the window's first answer returned
        // are left out of it.
        let start = history.ops[answers[answers.len() - window]].ret;
        let before: Vec<usize> = kept
            .iter()
            .copied()
            .filter(|&i| !s.open(&relaxed, i) && history.ops[i].ret < start)
            .collect();
        let inside = without(&kept, &before);
        window *= 4;
        if !s.fails(&inside, &relaxed) {
            continue;
        }
        let (fixed, context) = s.minimise(&inside, &relaxed);
        // With what ended before the window answered as it did, the
        // answers still cannot all be true: the window left out nothing
        // they needed. (A search too big for its budget cannot say
        // otherwise: the window stands.)
        if s.decide(&kept, &without(&kept, &merge(&fixed, &before))) != Some(false)
            && s.robust(&merge(&fixed, &context), &context, &before)
        {
            break (fixed, context);
        }
    };
    let kept = merge(&fixed, &context);

    // Checked, not assumed: a search that ran out on the way may have kept
    // an answer that is not needed.
    let exhausted = !s.minimal(&kept, &context, &fixed);
    let mut explanation = explain(&s, &kept, &fixed, &context);
    if exhausted {
        explanation.push_str(
            "(Shrinking reached its budget: this counterexample fails, but may not be minimal.)\n",
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
        linearized,
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
