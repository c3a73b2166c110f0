//! Taking a receive apart into the messages (and parts of messages) it
//! holds.

// A receive may hold one message (the contract), several glued together,
// the rest of a message an earlier receive split, or the start of one too
// short to name: `take_apart` returns every piece, in order, and keeps the
// state a byte stream needs between receives (`Pending`, the carry).

use super::MsgRef;
use crate::harness::payload::{self, ID_LEN, MsgId, Verdict};

/// A piece of a receive, once taken apart.
pub(super) enum Piece {
    /// A whole message.
    Whole(MsgRef, usize),
    /// The start of a message of `len` bytes: `got` of them.
    Prefix(MsgId, usize, usize),
    /// The continuation of a message split by an earlier receive.
    Rest(MsgId, usize),
    /// The first bytes of a message, too few to tell which.
    Carried(usize),
    /// Bytes that are no message.
    Garbage(String),
}

impl Piece {
    pub(super) fn describe(&self) -> String {
        match self {
            Piece::Whole(m, len) => format!("{m} ({len} bytes)"),
            Piece::Prefix(id, got, len) => format!("the first {got} of {len} bytes of {id}"),
            Piece::Rest(id, got) => format!("the last {got} bytes of {id}"),
            Piece::Carried(n) => format!("the first {n} bytes of a message"),
            Piece::Garbage(why) => format!("garbage ({why})"),
        }
    }
}

/// A message split across receives, waiting for its rest.
pub(super) struct Pending {
    pub(super) id: MsgId,
    pub(super) len: usize,
    pub(super) got: usize,
}

/// Finds the longest short message at the start of `bytes` after which the
/// rest is empty or starts a message with an id.
fn small_prefix(bytes: &[u8]) -> Option<usize> {
    let max = bytes.len().min(ID_LEN - 1);
    let fits = |n: usize| payload::verify(&bytes[..n]) == Verdict::Small(n);
    let clean = (1..=max)
        .rev()
        .find(|&n| fits(n) && (n == bytes.len() || bytes[n..].starts_with(b"ih")));
    clean.or_else(|| (1..=max).rev().find(|&n| fits(n)))
}

/// Takes one receive apart, continuing `pending` if there is one. A tail
/// too short to identify (the start of a message's id) is left in `carry`
/// and reported as [`Piece::Carried`]; the caller glues it to the front of
/// the next receive.
pub(super) fn take_apart(
    bytes: &[u8],
    pending: &mut Option<Pending>,
    carry: &mut Vec<u8>,
) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut pos = 0;
    if let Some(p) = pending.take() {
        let k = (p.len - p.got).min(bytes.len());
        if payload::matches_at(p.id, p.len, p.got, &bytes[..k]) {
            pieces.push(Piece::Rest(p.id, k));
            pos = k;
            if p.got + k < p.len {
                *pending = Some(Pending {
                    got: p.got + k,
                    ..p
                });
            }
        }
        // A mismatch: the rest went elsewhere (or never came); the message
        // stays incomplete, and the bytes here are judged on their own.
    }
    if bytes.is_empty() {
        pieces.push(Piece::Whole(MsgRef::Small { len: 0 }, 0));
    }
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if !rest.starts_with(b"ih") || rest.len() < ID_LEN {
            if let Some(n) = small_prefix(rest) {
                pieces.push(Piece::Whole(MsgRef::Small { len: n }, n));
                pos += n;
                continue;
            }
            if rest.len() < ID_LEN
                && (b"ih"[..rest.len().min(2)] == rest[..rest.len().min(2)]
                    || payload::is_small_prefix(rest))
            {
                // The start of a message whose id is not all here yet.
                carry.extend_from_slice(rest);
                pieces.push(Piece::Carried(rest.len()));
            } else {
                pieces.push(Piece::Garbage(format!(
                    "{} bytes that are not the start of any message",
                    rest.len()
                )));
            }
            break;
        }
        match payload::verify(rest) {
            Verdict::Whole(id) => {
                pieces.push(Piece::Whole(MsgRef::Id(id), rest.len()));
                pos = bytes.len();
            }
            Verdict::Merged { id, extra } => {
                let len = rest.len() - extra;
                pieces.push(Piece::Whole(MsgRef::Id(id), len));
                pos += len;
            }
            Verdict::Split { id, got, len } => {
                pieces.push(Piece::Prefix(id, got, len));
                *pending = Some(Pending { id, len, got });
                pos = bytes.len();
            }
            Verdict::Small(_) => unreachable!("a message starting with an id is not short"),
            Verdict::Corrupt { why } => {
                pieces.push(Piece::Garbage(why));
                break;
            }
        }
    }
    pieces
}
