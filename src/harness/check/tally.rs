//! The last step of the judgement: every message sent against what
//! arrived, exactly once, with the losses a fault explains set apart.

use std::collections::BTreeSet;

use super::receives::Received;
use super::sends::{FaultsSeen, Sent};
use super::{Accounting, MsgRef, Violation};
use crate::harness::channel::Promises;

/// Losses a fault explains, up to a budget: a message may have been in a
/// killed consumer's hands (a bounded number per consumer), and once no
/// consumer is left (or the only one is gone) everything not yet received
/// died with the channel.
struct Losses {
    excusable: u64,
}

impl Losses {
    fn new(promises: &Promises, faults: &FaultsSeen) -> Losses {
        let excusable = if faults.no_consumer_left
            || promises.max_consumers == 1 && faults.consumers_removed > 0
        {
            u64::MAX
        } else {
            faults
                .consumers_killed
                .saturating_mul(promises.lost_per_dead_consumer as u64)
        };
        Losses { excusable }
    }

    /// Counts `msg` lost: to a fault while the budget lasts, else `Lost`.
    fn lose(&mut self, msg: MsgRef, len: usize, acc: &mut Accounting, v: &mut Vec<Violation>) {
        acc.lost += 1;
        if self.excusable > 0 {
            self.excusable -= 1;
            acc.lost_to_faults += 1;
        } else {
            v.push(Violation::Lost { msg, len });
        }
    }
}

/// Decides, for every message sent, whether it arrived exactly once: a
/// sure one must (`Lost` unless a fault explains it), an indeterminate one
/// may or may not; none may arrive twice (`Duplicated`). Short messages
/// are judged as a multiset of lengths.
pub(super) fn exactly_once(
    promises: &Promises,
    faults: &FaultsSeen,
    sent: &Sent,
    received: &Received,
    acc: &mut Accounting,
    violations: &mut Vec<Violation>,
) {
    let mut losses = Losses::new(promises, faults);
    let times = |id| received.ids.get(id).copied().unwrap_or(0);
    for (id, &len) in &sent.sure {
        match times(id) {
            0 => losses.lose(MsgRef::Id(*id), len, acc, violations),
            1 => acc.ok += 1,
            times => {
                acc.duplicated += 1;
                violations.push(Violation::Duplicated {
                    msg: MsgRef::Id(*id),
                    times,
                })
            }
        }
    }
    for id in sent.maybe.keys() {
        match times(id) {
            0 => acc.indeterminate_lost += 1,
            1 => acc.recovered += 1,
            times => {
                acc.duplicated += 1;
                violations.push(Violation::Duplicated {
                    msg: MsgRef::Id(*id),
                    times,
                })
            }
        }
    }
    small_messages(sent, received, &mut losses, acc, violations);
}

/// Decides the fate of the short messages, length by length: fewer arrived
/// than surely sent are lost, more than sent at all are duplicated, and
/// those in between are indeterminate ones recovered.
fn small_messages(
    sent: &Sent,
    received: &Received,
    losses: &mut Losses,
    acc: &mut Accounting,
    violations: &mut Vec<Violation>,
) {
    let lens: BTreeSet<usize> = sent
        .small_sure
        .keys()
        .chain(received.small.keys())
        .chain(sent.small_maybe.keys())
        .copied()
        .collect();
    let count =
        |map: &std::collections::BTreeMap<usize, usize>, len| map.get(&len).copied().unwrap_or(0);
    for len in lens {
        let s = count(&sent.small_sure, len);
        let m = count(&sent.small_maybe, len);
        let r = count(&received.small, len);
        let msg = MsgRef::Small { len };
        if r < s {
            acc.ok += r as u64;
            for _ in r..s {
                losses.lose(msg, len, acc, violations);
            }
            acc.indeterminate_lost += m as u64;
        } else if r > s + m {
            acc.ok += s as u64;
            acc.recovered += m as u64;
            acc.duplicated += (r - s - m) as u64;
            violations.push(Violation::Duplicated { msg, times: r - m });
        } else {
            acc.ok += s as u64;
            acc.recovered += (r - s) as u64;
            acc.indeterminate_lost += (s + m - r) as u64;
        }
    }
}
