//! Self-checking messages: from its bytes alone a receiver can tell which
//! send a message is (producer, sequence number), and whether it is whole,
//! a prefix of one, several glued together, or corrupt.
//!
//! Layout of a message of `len >= ID_LEN` bytes:
//!
//! ```text
//! [ b"ih" ][ producer: u16 LE ][ seq: u32 LE ][ len: u64 LE ][ content ... ]
//! ```
//!
//! Content byte `i` (counting from the start of the message) is
//! `(i % 251) as u8 ^ key(producer, seq)`: 251 is prime, so a byte shifted
//! by any amount shows, and the key makes two messages of the same length
//! differ. Messages shorter than [`ID_LEN`] cannot carry an id; their bytes
//! are derived from their length alone, so they can be checked only as a
//! multiset (which lengths arrived how often).

use std::fmt;

/// Bytes of the id at the start of a message.
pub const ID_LEN: usize = 16;
const MAGIC: [u8; 2] = *b"ih";

/// Which send a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId {
    /// The producing process (or thread) number.
    pub producer: u16,
    /// Its sequence number within the producer, from 0.
    pub seq: u32,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}#{}", self.producer, self.seq)
    }
}

fn key(producer: u16, seq: u32) -> u8 {
    let h = (u64::from(producer) << 32 | u64::from(seq)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 56) as u8
}

/// The content pattern's length: byte `i` is `(i % PERIOD) as u8 ^ key`.
const PERIOD: usize = 251;

/// One period of the content pattern for `key`.
fn period(key: u8) -> [u8; PERIOD] {
    let mut p = [0u8; PERIOD];
    for (j, b) in p.iter_mut().enumerate() {
        *b = j as u8 ^ key;
    }
    p
}

/// Calls `f` on consecutive runs of `len` bytes of the pattern for `key`,
/// starting at content offset `start`, with the offset of each run from
/// the first: a copy per run instead of a division per byte. Stops early
/// if `f` returns false, and says whether it did not.
fn pattern_runs(
    len: usize,
    start: usize,
    key: u8,
    mut f: impl FnMut(usize, &[u8]) -> bool,
) -> bool {
    let p = period(key);
    let mut phase = start % PERIOD;
    let mut done = 0;
    while done < len {
        let n = (PERIOD - phase).min(len - done);
        if !f(done, &p[phase..phase + n]) {
            return false;
        }
        done += n;
        phase = 0;
    }
    true
}

fn fill_content(out: &mut [u8], start: usize, key: u8) {
    pattern_runs(out.len(), start, key, |at, run| {
        out[at..at + run.len()].copy_from_slice(run);
        true
    });
}

/// The message `id` of `len` bytes.
pub fn make(id: MsgId, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    if len < ID_LEN {
        fill_content(&mut out, 0, small_key(len));
        return out;
    }
    out[..2].copy_from_slice(&MAGIC);
    out[2..4].copy_from_slice(&id.producer.to_le_bytes());
    out[4..8].copy_from_slice(&id.seq.to_le_bytes());
    out[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    fill_content(&mut out[ID_LEN..], ID_LEN, key(id.producer, id.seq));
    out
}

fn small_key(len: usize) -> u8 {
    0xA0 ^ len as u8
}

/// What a received message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly the message `id`.
    Whole(MsgId),
    /// A message too short to carry an id, intact: its length is all we know.
    Small(usize),
    /// The message `id` followed by `extra` more bytes: two or more sends
    /// glued together (or garbage appended).
    Merged {
        /// The first message.
        id: MsgId,
        /// Bytes past its end.
        extra: usize,
    },
    /// The first `got` bytes of the message `id` of `len` bytes.
    Split {
        /// The message it is a part of.
        id: MsgId,
        /// Bytes received.
        got: usize,
        /// Bytes the message has.
        len: usize,
    },
    /// Bytes that are not (a prefix of) any message: `why` says what is off.
    Corrupt {
        /// What did not check out.
        why: String,
    },
}

/// Identifies `bytes` as one of [`Verdict`]'s cases.
pub fn verify(bytes: &[u8]) -> Verdict {
    if bytes.len() < ID_LEN || bytes[..2] != MAGIC {
        if bytes.len() < ID_LEN && content_ok(bytes, 0, small_key(bytes.len())) {
            return Verdict::Small(bytes.len());
        }
        return Verdict::Corrupt {
            why: format!(
                "{} bytes that are neither a short message nor start with an id",
                bytes.len()
            ),
        };
    }
    let producer = u16::from_le_bytes([bytes[2], bytes[3]]);
    let seq = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let id = MsgId { producer, seq };
    let k = key(producer, seq);
    let own = bytes.len().min(len);
    if !content_ok(&bytes[ID_LEN.min(own)..own], ID_LEN, k) {
        return Verdict::Corrupt {
            why: format!("content of {id} (len {len}) does not match its id"),
        };
    }
    match bytes.len().cmp(&len) {
        std::cmp::Ordering::Equal => Verdict::Whole(id),
        std::cmp::Ordering::Less => Verdict::Split {
            id,
            got: bytes.len(),
            len,
        },
        std::cmp::Ordering::Greater => Verdict::Merged {
            id,
            extra: bytes.len() - len,
        },
    }
}

/// True if `bytes` are exactly the bytes of message `id` (of `len` bytes)
/// starting at `offset`: the rest of a message cut by an earlier read.
pub fn matches_at(id: MsgId, len: usize, offset: usize, bytes: &[u8]) -> bool {
    if offset + bytes.len() > len {
        return false;
    }
    if len < ID_LEN {
        let key = small_key(len);
        return bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((offset + i) % 251) as u8 ^ key);
    }
    let mut head = make(id, ID_LEN);
    head[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    let key = key(id.producer, id.seq);
    bytes.iter().enumerate().all(|(i, &b)| {
        let at = offset + i;
        if at < ID_LEN {
            b == head[at]
        } else {
            b == (at % 251) as u8 ^ key
        }
    })
}

/// True if `bytes` are the first bytes of a longer message too short to
/// carry an id.
pub fn is_small_prefix(bytes: &[u8]) -> bool {
    (bytes.len() + 1..ID_LEN).any(|len| content_ok(bytes, 0, small_key(len)))
}

fn content_ok(bytes: &[u8], start: usize, key: u8) -> bool {
    pattern_runs(bytes.len(), start, key, |at, run| {
        bytes[at..at + run.len()] == *run
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MsgId = MsgId {
        producer: 1,
        seq: 7,
    };

    #[test]
    fn the_pattern_is_byte_i_mod_251_xor_key_from_any_start() {
        for start in [0, 1, 16, 250, 251, 252, 1000] {
            for len in [0, 1, 250, 251, 252, 600] {
                let key = (start + len) as u8;
                let want: Vec<u8> = (0..len).map(|i| ((start + i) % 251) as u8 ^ key).collect();
                let mut got = vec![0u8; len];
                fill_content(&mut got, start, key);
                assert_eq!(got, want, "start {start} len {len}");
                assert!(content_ok(&want, start, key));
                if len > 0 {
                    let mut bad = want.clone();
                    bad[len - 1] ^= 1;
                    assert!(!content_ok(&bad, start, key));
                }
            }
        }
    }

    #[test]
    fn whole_small_split_merged_corrupt() {
        for len in [ID_LEN, ID_LEN + 1, 5000] {
            assert_eq!(verify(&make(A, len)), Verdict::Whole(A));
        }
        for len in 0..ID_LEN {
            assert_eq!(verify(&make(A, len)), Verdict::Small(len));
        }
        let m = make(A, 100);
        assert_eq!(
            verify(&m[..40]),
            Verdict::Split {
                id: A,
                got: 40,
                len: 100
            }
        );
        let mut glued = m.clone();
        glued.extend(make(
            MsgId {
                producer: 2,
                seq: 0,
            },
            30,
        ));
        assert_eq!(verify(&glued), Verdict::Merged { id: A, extra: 30 });
        let mut flipped = m.clone();
        flipped[60] ^= 1;
        assert!(matches!(verify(&flipped), Verdict::Corrupt { .. }));
        let mut shifted = m.clone();
        shifted.remove(50);
        shifted.push(0);
        assert!(matches!(verify(&shifted), Verdict::Corrupt { .. }));
        assert!(
            matches!(verify(&m[5..]), Verdict::Corrupt { .. }),
            "a suffix is no message"
        );
    }

    #[test]
    fn matches_at_agrees_with_make() {
        for len in [0, 5, 15, 16, 17, 300] {
            let m = make(A, len);
            for offset in 0..len {
                for end in offset..=len {
                    assert!(
                        matches_at(A, len, offset, &m[offset..end]),
                        "{len} {offset} {end}"
                    );
                }
                let mut wrong = m[offset..].to_vec();
                wrong[0] ^= 1;
                assert!(!matches_at(A, len, offset, &wrong));
            }
            assert!(!matches_at(A, len, len, &[0]), "past the end");
        }
    }

    #[test]
    fn same_length_messages_differ() {
        let b = MsgId {
            producer: 1,
            seq: 8,
        };
        assert_ne!(make(A, 64)[ID_LEN..], make(b, 64)[ID_LEN..]);
    }

    #[test]
    fn the_layout_byte_by_byte() {
        assert_eq!(A.to_string(), "p1#7");
        // The id: magic, producer (2 bytes LE), seq (4), length (8).
        let m = make(A, 300);
        assert_eq!(
            m[..ID_LEN],
            [b'i', b'h', 1, 0, 7, 0, 0, 0, 44, 1, 0, 0, 0, 0, 0, 0]
        );
        // The content: byte i is (i mod 251) xor the id's key.
        assert_eq!(
            (key(1, 7), key(0, 0), key(2, 0), key(1, 8)),
            (210, 0, 254, 113)
        );
        let want: Vec<u8> = (ID_LEN..300).map(|i| (i % 251) as u8 ^ 210).collect();
        assert_eq!(m[ID_LEN..], want[..]);
        // A short message: the same pattern from 0, keyed by its length.
        assert_eq!(small_key(5), 0xA5);
        assert_eq!(make(A, 5), [0xA5, 0xA4, 0xA7, 0xA6, 0xA1]);
        assert_eq!(make(A, 0), Vec::<u8>::new());
    }

    #[test]
    fn corrupt_verdicts_say_why() {
        let why = |v: Verdict| match v {
            Verdict::Corrupt { why } => why,
            other => panic!("not corrupt: {other:?}"),
        };
        assert_eq!(
            why(verify(b"ih\x01")),
            "3 bytes that are neither a short message nor start with an id"
        );
        let mut bad = make(A, 40);
        bad[0] = b'x';
        assert_eq!(
            why(verify(&bad)),
            "40 bytes that are neither a short message nor start with an id"
        );
        let mut flipped = make(A, 40);
        flipped[39] ^= 0x80;
        assert_eq!(
            why(verify(&flipped)),
            "content of p1#7 (len 40) does not match its id"
        );
        // The last byte of a message glued to another is still checked.
        let mut glued = make(A, 40);
        glued[39] ^= 1;
        glued.extend(make(A, 20));
        assert!(matches!(verify(&glued), Verdict::Corrupt { .. }));
        // A split message is checked as far as it goes.
        assert_eq!(
            verify(&make(A, 40)[..ID_LEN]),
            Verdict::Split {
                id: A,
                got: ID_LEN,
                len: 40
            }
        );
        // Bytes in a short message's pattern, but as long as an id: no
        // short message.
        for len in [ID_LEN, 40] {
            let fake: Vec<u8> = (0..len).map(|i| i as u8 ^ small_key(len)).collect();
            assert!(matches!(verify(&fake), Verdict::Corrupt { .. }), "{len}");
        }
        let mut head = make(A, 40)[..20].to_vec();
        head[19] ^= 1;
        assert!(matches!(verify(&head), Verdict::Corrupt { .. }));
    }

    #[test]
    fn a_short_prefix_is_the_start_of_some_short_message() {
        for len in 1..ID_LEN {
            let m = make(A, len);
            for cut in 0..len {
                assert!(is_small_prefix(&m[..cut]), "{cut} of {len}");
            }
            assert!(!is_small_prefix(&m), "a whole {len}-byte message");
        }
        assert!(!is_small_prefix(&make(A, 40)[..4]));
        assert!(!is_small_prefix(&[0u8; ID_LEN]));
    }

    #[test]
    fn matches_at_checks_the_length_in_the_id() {
        let m = make(A, 40);
        assert!(matches_at(A, 40, 0, &m[..ID_LEN]));
        assert!(!matches_at(A, 41, 0, &m[..ID_LEN]), "another length");
        assert!(!matches_at(
            MsgId {
                producer: 1,
                seq: 8
            },
            40,
            0,
            &m[..8]
        ));
        assert!(matches_at(A, 40, 39, &m[39..]));
        assert!(!matches_at(A, 40, 39, &[m[39], 0]), "one past the end");
        // Even if the pattern goes on past it.
        let mut on = m[1..].to_vec();
        on.push(40 ^ key(1, 7));
        assert!(!matches_at(A, 40, 1, &on), "one past the end, in pattern");
        let short = make(A, 5);
        assert!(matches_at(A, 5, 2, &short[2..]));
        assert!(!matches_at(A, 6, 2, &short[2..]), "keyed by its length");
    }
}
