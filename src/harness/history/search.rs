//! The search for a linearization (Wing & Gong, with Lowe's memoisation).

use std::collections::HashSet;

use super::shrink;
use super::{History, Model, Verdict};

/// How much the checker may explore before answering
/// [`Verdict::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Configurations (linearized set, state) the search of the whole
    /// history (or of one part) may visit.
    pub configurations: u64,
    /// The same for each of the many small searches that shrink a
    /// counterexample; a search that runs out counts as "linearizable",
    /// which can only leave the counterexample larger, never wrong.
    pub shrink_configurations: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            configurations: 20_000_000,
            shrink_configurations: 20_000,
        }
    }
}

/// Checks `history` against `model` with the default [`Budget`].
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
) -> Verdict<M::Input, M::Output> {
    check_with(model, history, Budget::default())
}

/// Checks `history` against `model`: a linearization per part of the
/// model, or a minimal counterexample from the first part that has none.
pub fn check_with<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    budget: Budget,
) -> Verdict<M::Input, M::Output> {
    let parts = model
        .partition(history)
        .unwrap_or_else(|| vec![(0..history.len()).collect()]);
    let mut orders = Vec::with_capacity(parts.len());
    for part in parts {
        let items = items(history, &part, &[]);
        match search(model, &items, budget.configurations) {
            Outcome::Found(order) => orders.push(order.into_iter().map(|k| part[k]).collect()),
            Outcome::OutOfBudget(explored) => return Verdict::Unknown { explored },
            Outcome::NotFound(longest) => {
                let linearized = longest.into_iter().map(|k| part[k]).collect();
                return Verdict::Violation(shrink::shrink(
                    model,
                    history,
                    &part,
                    budget.shrink_configurations,
                    linearized,
                ));
            }
        }
    }
    Verdict::Linearizable(orders)
}

/// One operation as the search sees it.
pub(super) struct Item<'h, I, O> {
    pub call: u64,
    /// `u64::MAX` if pending (or relaxed to pending).
    pub ret: u64,
    pub input: &'h I,
    /// `None` if pending.
    pub output: Option<&'h O>,
}

/// The operations `indices` of `history`, those in `relaxed` (a sorted
/// list of history indices) treated as pending.
pub(super) fn items<'h, I, O>(
    history: &'h History<I, O>,
    indices: &[usize],
    relaxed: &[usize],
) -> Vec<Item<'h, I, O>> {
    indices
        .iter()
        .map(|&i| {
            let op = &history.ops[i];
            let pending = op.ret.is_none() || relaxed.binary_search(&i).is_ok();
            Item {
                call: op.call,
                ret: if pending {
                    u64::MAX
                } else {
                    op.ret.unwrap_or(u64::MAX)
                },
                input: &op.input,
                output: if pending { None } else { op.output.as_ref() },
            }
        })
        .collect()
}

pub(super) enum Outcome {
    /// Positions in the item list, in linearization order.
    Found(Vec<usize>),
    /// No order exists; the longest order of positions the search built
    /// before it got stuck (a partial linearization, its last answer the
    /// furthest the history could be explained).
    NotFound(Vec<usize>),
    OutOfBudget(u64),
}

struct Frame<S> {
    /// (item, state after it), to try in turn.
    choices: Vec<(usize, S)>,
    next: usize,
    /// The first position, in call order, not yet linearized.
    lo_call: usize,
    /// The first position, in return order, not yet linearized.
    lo_ret: usize,
    /// Completed operations linearized so far.
    done: usize,
}

/// Searches for an order of `items` that respects real time and that
/// `model` accepts; pending items may be left out.
pub(super) fn search<M: Model>(
    model: &M,
    items: &[Item<'_, M::Input, M::Output>],
    budget: u64,
) -> Outcome {
    let n = items.len();
    let mut by_call: Vec<usize> = (0..n).collect();
    by_call.sort_by_key(|&k| (items[k].call, k));
    let mut by_ret: Vec<usize> = (0..n).filter(|&k| items[k].output.is_some()).collect();
    by_ret.sort_by_key(|&k| (items[k].ret, k));
    let complete = by_ret.len();
    if complete == 0 {
        return Outcome::Found(Vec::new());
    }

    let mut bits = vec![0u64; n.div_ceil(64)];
    let is_set = |bits: &[u64], k: usize| bits[k / 64] >> (k % 64) & 1 == 1;
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut explored = 0u64;

    let expand = |bits: &[u64], state: &M::State, lo_call: usize, lo_ret: usize, done: usize| {
        // The earliest return among the completed operations not yet
        // linearized: whatever is linearized next was called by then.
        let min_ret = by_ret.get(lo_ret).map_or(u64::MAX, |&k| items[k].ret);
        let mut choices = Vec::new();
        for &k in &by_call[lo_call..] {
            let item = &items[k];
            if item.call > min_ret {
                break;
            }
            if is_set(bits, k) {
                continue;
            }
            match item.output {
                Some(out) => {
                    if let Some(next) = model.step(state, item.input, out) {
                        choices.push((k, next));
                    }
                }
                None => {
                    for next in model.step_pending(state, item.input) {
                        choices.push((k, next));
                    }
                }
            }
        }
        Frame {
            choices,
            next: 0,
            lo_call,
            lo_ret,
            done,
        }
    };

    let mut path: Vec<usize> = Vec::new();
    // The longest path so far, and how many of its first positions `path`
    // still shares (so a new longest path copies only what changed).
    let mut longest: Vec<usize> = Vec::new();
    let mut shared = 0usize;
    let mut stack = vec![expand(&bits, &model.init(), 0, 0, 0)];
    while let Some(top) = stack.last_mut() {
        if top.next == top.choices.len() {
            stack.pop();
            if let Some(k) = path.pop() {
                bits[k / 64] &= !(1 << (k % 64));
            }
            shared = shared.min(path.len());
            continue;
        }
        let (k, state) = top.choices[top.next].clone();
        top.next += 1;
        bits[k / 64] |= 1 << (k % 64);
        if !cache.insert((bits.clone(), state.clone())) {
            bits[k / 64] &= !(1 << (k % 64));
            continue;
        }
        explored += 1;
        if explored > budget {
            return Outcome::OutOfBudget(explored);
        }
        let done = top.done + usize::from(items[k].output.is_some());
        path.push(k);
        if done == complete {
            return Outcome::Found(path);
        }
        if path.len() > longest.len() {
            longest.truncate(shared);
            longest.extend_from_slice(&path[shared..]);
            shared = path.len();
        }
        let mut lo_call = top.lo_call;
        while lo_call < n && is_set(&bits, by_call[lo_call]) {
            lo_call += 1;
        }
        let mut lo_ret = top.lo_ret;
        while lo_ret < complete && is_set(&bits, by_ret[lo_ret]) {
            lo_ret += 1;
        }
        let frame = expand(&bits, &state, lo_call, lo_ret, done);
        stack.push(frame);
    }
    Outcome::NotFound(longest)
}
