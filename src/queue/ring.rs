//! The ring's records, and the commits that move each side's state.

// One anonymous shared mapping (`mmap(MAP_SHARED | MAP_ANONYMOUS)`, made by
// `QueueBuilder::build` before any fork) holds the header (`layout.rs`) and
// then a byte ring of records:
//
//     ... [rec hdr: seq u64, total u64, len u32, flags u32][len bytes] [rec hdr][bytes] ...
//
// - A message is one or more records; flags mark the `FIRST` and `LAST`
//   record of a message; every record carries the message's sequence number
//   `seq` (unique, never reused) and total length. Records are at most a
//   quarter of the ring, so a message of any size streams through the ring
//   while its producer writes and a consumer reads.
// - `head` (bytes ever written) and `tail` (bytes ever taken) are monotonic
//   `u64` stream positions; the ring is empty when they are equal. A
//   producer writes a record's bytes past `head`, then publishes them with a
//   release store of `head`; a consumer copies a record out, then frees it
//   with a release store of `tail`. Each process keeps its last reading of
//   the other side's position (`Inner::tail_seen`, `Inner::head_seen`).
// - A producer holds the producer lock for a whole message, a consumer the
//   consumer lock for a whole message (and while it waits for one). So the
//   ring is single-producer single-consumer between the two lock holders,
//   records of one message are contiguous in the stream, and a message's
//   records all go to one consumer (`locks.rs` has what a holder's death
//   leaves behind).
//
// Commits. Each side changes its shared state (`head`, `published`,
// `cur_seq` for producers; `tail`, `taken`, `cur_seq`, `discard`,
// `delivering` for consumers) only by a commit: write the new values into a
// `pending` copy (the `p_` fields), set `phase = 1`, apply them, set
// `phase = 0`. A locker that gets `EOWNERDEAD` first rolls a commit with
// `phase == 1` forward (the values are complete), so a death never leaves
// half a commit.
//
// The `LAST`-record commits are the linearisation points: a put takes effect
// when the producer commits its message's `LAST` record, a get when the
// consumer commits it. Counters that must agree with the queue belong in
// those two commits' pending sets, so a death can never apply half of them:
// a `JoinableQueue`'s tasks put are `published` itself, and the consumer's
// `LAST` commit carries the "taken, not done" charge of its process
// (`tasks.rs`).
//
// Invariants (kept under the lock of the side that owns each field):
// 1. `tail <= head <= tail + ring_len`; bytes in `[tail, head)` are whole
//    committed records; a producer never writes below `tail + ring_len`.
// 2. `published` counts messages whose `LAST` record is committed, `taken`
//    those whose `LAST` record a consumer has committed; `len()` is
//    `published - taken`, and `published - taken <= max_items` when bounded.
// 3. Records of one `seq` are contiguous in the stream: `FIRST`, middles,
//    `LAST`, or a prefix of that followed by nothing of that `seq` again
//    (abandoned).
// 4. Sequence numbers increase and are never reused, so `abandoned_seq >=
//    cur_seq` with an empty ring proves the message being taken is dead.
// 5. A consumer returns a message only after committing its `LAST` record,
//    with exactly `total` bytes gathered from records of its own `seq`
//    starting at `FIRST`.

use std::sync::atomic::Ordering::{Relaxed, Release};

use super::hooks::{KillPoint, kill_point};
use super::layout::ProducerState;
use super::{Inner, RECORD_HEADER_LEN};
use crate::error::{Error, Result};

pub(super) const FIRST: u32 = 1;
pub(super) const LAST: u32 = 2;

/// One record's header in the ring.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    pub(super) seq: u64,
    pub(super) total: u64,
    pub(super) len: u32,
    pub(super) flags: u32,
}

impl Record {
    pub(super) fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.total.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    fn decode(b: &[u8; RECORD_HEADER_LEN]) -> Self {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Record {
            seq: u64_at(0),
            total: u64_at(8),
            len: u32_at(16),
            flags: u32_at(20),
        }
    }

    pub(super) fn size(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.len)
    }
}

impl Inner {
    pub(super) fn commit_producer(&self, head: u64, published: u64, cur_seq: u64) {
        let p = &self.header().prod;
        p.p_head.store(head, Relaxed);
        p.p_published.store(published, Relaxed);
        p.p_cur_seq.store(cur_seq, Relaxed);
        p.phase.store(1, Release);
        kill_point(KillPoint::ProducerMidCommit);
        Self::apply_producer_commit(p);
    }

    /// Applies the pending producer commit (`phase == 1`): by its committer,
    /// or by the repairer of a committer that died.
    pub(super) fn apply_producer_commit(p: &ProducerState) {
        p.head.store(p.p_head.load(Relaxed), Release);
        p.published.store(p.p_published.load(Relaxed), Release);
        p.cur_seq.store(p.p_cur_seq.load(Relaxed), Release);
        p.phase.store(0, Release);
    }

    pub(super) fn commit_consumer(
        &self,
        tail: u64,
        taken: u64,
        cur_seq: u64,
        discard: u64,
        delivering: u64,
    ) {
        self.commit_consumer_charging(tail, taken, cur_seq, discard, delivering, (0, 0));
    }

    /// A consumer commit that also sets the `taken` counter of a holder
    /// table row (`charge = (slot + 1 or UNTRACKED, new taken)`; slot 0: none).
    pub(super) fn commit_consumer_charging(
        &self,
        tail: u64,
        taken: u64,
        cur_seq: u64,
        discard: u64,
        delivering: u64,
        charge: (u64, u64),
    ) {
        let c = &self.header().cons;
        c.p_slot.store(charge.0, Relaxed);
        c.p_slot_taken.store(charge.1, Relaxed);
        c.p_tail.store(tail, Relaxed);
        c.p_taken.store(taken, Relaxed);
        c.p_cur_seq.store(cur_seq, Relaxed);
        c.p_discard.store(discard, Relaxed);
        c.p_delivering.store(delivering, Relaxed);
        c.p_discarded.store(c.discarded.load(Relaxed), Relaxed);
        c.phase.store(1, Release);
        kill_point(KillPoint::ConsumerMidCommit);
        self.apply_consumer_commit();
    }

    /// The commit of an immediate shutdown's drain at a message's `LAST`
    /// record: taken, and counted as discarded, in one commit.
    pub(super) fn commit_consumer_discarding(&self, tail: u64, taken: u64, discarded: u64) {
        let c = &self.header().cons;
        c.p_slot.store(0, Relaxed);
        c.p_slot_taken.store(0, Relaxed);
        c.p_tail.store(tail, Relaxed);
        c.p_taken.store(taken, Relaxed);
        c.p_cur_seq.store(0, Relaxed);
        c.p_discard.store(0, Relaxed);
        c.p_delivering.store(0, Relaxed);
        c.p_discarded.store(discarded, Relaxed);
        c.phase.store(1, Release);
        kill_point(KillPoint::ConsumerMidCommit);
        self.apply_consumer_commit();
    }

    /// Applies the pending consumer commit (`phase == 1`): by its committer,
    /// or by the repairer of a committer that died.
    pub(super) fn apply_consumer_commit(&self) {
        let c = &self.header().cons;
        c.tail.store(c.p_tail.load(Relaxed), Release);
        c.taken.store(c.p_taken.load(Relaxed), Release);
        c.cur_seq.store(c.p_cur_seq.load(Relaxed), Release);
        c.discard.store(c.p_discard.load(Relaxed), Release);
        c.delivering.store(c.p_delivering.load(Relaxed), Release);
        c.discarded.store(c.p_discarded.load(Relaxed), Release);
        self.apply_charge(c.p_slot.load(Relaxed), c.p_slot_taken.load(Relaxed));
        c.phase.store(0, Release);
    }

    /// Reads and checks the record header at `tail` (with `head` published).
    pub(super) fn read_record(&self, tail: u64, head: u64) -> Result<Record> {
        let avail = head.wrapping_sub(tail);
        if avail < RECORD_HEADER_LEN as u64 || avail > self.ring_len {
            return Err(Error::corrupt(format!(
                "{avail} bytes between tail and head"
            )));
        }
        let mut hb = [0u8; RECORD_HEADER_LEN];
        self.region.ring_read(tail, &mut hb);
        let rec = Record::decode(&hb);
        if rec.size() > avail
            || rec.total > self.max_message
            || rec.flags & !(FIRST | LAST) != 0
            || rec.seq == 0
        {
            return Err(Error::corrupt(format!("a bad record header {rec:?}")));
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Queue;

    fn record(seq: u64, total: u64, len: u32, flags: u32) -> Record {
        Record {
            seq,
            total,
            len,
            flags,
        }
    }

    /// Writes `rec`'s header at `tail` and reads it back with `head` published.
    fn read_at(q: &Queue, rec: Record, tail: u64, head: u64) -> Result<Record> {
        q.inner.region.ring_write(tail, &rec.encode());
        q.inner.read_record(tail, head)
    }

    fn reason(r: Result<Record>) -> String {
        match r {
            Err(Error::Corrupt { reason }) => reason,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn a_record_header_is_its_four_fields_little_endian() {
        let rec = record(0x0102_0304_0506_0708, 0x1112_1314_1516_1718, 0x2122_2324, 3);
        let b = rec.encode();
        assert_eq!(
            b,
            [
                8, 7, 6, 5, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, 0x24, 0x23,
                0x22, 0x21, 3, 0, 0, 0
            ]
        );
        let back = Record::decode(&b);
        assert_eq!(
            (back.seq, back.total, back.len, back.flags),
            (rec.seq, rec.total, rec.len, rec.flags)
        );
        assert_eq!(rec.size(), RECORD_HEADER_LEN as u64 + 0x2122_2324);
        assert_eq!(record(1, 0, 0, 0).size(), 24);
    }

    #[test]
    fn read_record_accepts_every_good_header_and_names_each_bad_one() {
        let q = Queue::builder()
            .ring_bytes(4096)
            .max_message_size(100)
            .build()
            .unwrap();
        let ring = q.inner.ring_len;
        let both = FIRST | LAST;
        // Good: exactly one record's bytes, an empty message's header alone,
        // a whole ring of bytes, a message of the largest size, any flags.
        let ok = |rec: Record, tail: u64, head: u64| {
            let got = read_at(&q, rec, tail, head).unwrap();
            assert_eq!(
                (got.seq, got.total, got.len, got.flags),
                (rec.seq, rec.total, rec.len, rec.flags)
            );
        };
        ok(record(1, 5, 5, both), 0, 29);
        ok(record(2, 0, 0, both), 100, 124);
        ok(record(3, 5, 5, FIRST), 0, ring);
        ok(record(4, 100, 100, both), 7, 7 + 124);
        ok(record(5, 100, 50, 0), 0, 74);
        ok(record(6, 100, 50, LAST), 0, 74);
        // Positions past the ring's length wrap like the stream does.
        ok(record(7, 5, 5, both), 3 * ring + 10, 3 * ring + 39);
        // Bad: too few bytes for a header, more than the ring holds.
        let short = read_at(&q, record(1, 0, 0, both), 0, 23);
        assert_eq!(reason(short), "23 bytes between tail and head");
        let over = read_at(&q, record(1, 5, 5, both), 0, ring + 1);
        assert_eq!(
            reason(over),
            format!("{} bytes between tail and head", ring + 1)
        );
        // A head behind the tail is a huge distance, not a negative one.
        let behind = read_at(&q, record(1, 5, 5, both), 50, 49);
        assert_eq!(
            reason(behind),
            format!("{} bytes between tail and head", u64::MAX)
        );
        // Bad headers: longer than what is published, a message over the
        // limit, an unknown flag, sequence number 0.
        for rec in [
            record(1, 5, 6, both),
            record(1, 101, 5, both),
            record(1, 5, 5, 4),
            record(1, 5, 5, both | 8),
            record(0, 5, 5, both),
        ] {
            assert_eq!(
                reason(read_at(&q, rec, 0, 29)),
                format!("a bad record header {rec:?}")
            );
        }
    }
}
