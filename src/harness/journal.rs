//! A forked process's journal: what it did, written as it goes into an
//! anonymous in-memory file (`memfd_create`) that the parent made before the
//! fork and reads after the child is gone. A child killed at any point has
//! still reported everything it journalled before; a record cut short by
//! the kill is dropped whole, so the parent never reads half an event.
//!
//! Each record is `[tag: u8][len: u64 LE][len bytes]`; what the tags mean
//! is up to the writer (see [`scenario`](super::scenario)).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::memfd::{MFdFlags, memfd_create};

/// One process's journal. Made in the parent, written by one child.
#[derive(Debug)]
pub struct Journal {
    fd: OwnedFd,
}

/// The length of a record's header.
const HEADER: usize = 9;

impl Journal {
    /// A new, empty journal (close-on-exec).
    pub fn new() -> io::Result<Journal> {
        let fd = memfd_create(c"ipc-harness-journal", MFdFlags::MFD_CLOEXEC)?;
        Ok(Journal { fd })
    }

    /// Appends one record made of `parts`. Retries short writes (a signal
    /// storm interrupts large ones); panics if the journal cannot be
    /// written at all (out of memory), which the fork runner reports as
    /// the child failing.
    pub fn record(&self, tag: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut header = [0u8; HEADER];
        header[0] = tag;
        header[1..].copy_from_slice(&(len as u64).to_le_bytes());
        for part in std::iter::once(&header[..]).chain(parts.iter().copied()) {
            let mut rest = part;
            while !rest.is_empty() {
                match nix::unistd::write(self.fd.as_fd(), rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => panic!("cannot write the harness journal: {e}"),
                }
            }
        }
    }

    /// How many bytes have been journalled so far: it grows whenever the
    /// writer records anything.
    pub fn len(&self) -> io::Result<u64> {
        Ok(nix::sys::stat::fstat(self.fd.as_fd())?.st_size as u64)
    }

    /// Whether nothing has been journalled yet.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every whole record, in order, as `(tag, body)`.
    pub fn records(&self) -> io::Result<Vec<(u8, Vec<u8>)>> {
        let size = nix::sys::stat::fstat(self.fd.as_fd())?.st_size as usize;
        let mut bytes = vec![0u8; size];
        let mut got = 0;
        while got < size {
            match nix::sys::uio::pread(self.fd.as_fd(), &mut bytes[got..], got as i64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        bytes.truncate(got);
        Ok(parse(&bytes))
    }
}

/// The whole records at the start of `bytes`; a torn last one is dropped.
fn parse(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut records = Vec::new();
    while bytes.len() >= HEADER {
        let len = u64::from_le_bytes(bytes[1..HEADER].try_into().expect("8 bytes"));
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(HEADER))
            .filter(|&e| e <= bytes.len())
        else {
            break;
        };
        records.push((bytes[0], bytes[HEADER..end].to_vec()));
        bytes = &bytes[end..];
    }
    records
}

/// The tag of an operation's invocation record, written by
/// [`history::Recorder`](super::history::Recorder): `[id: u64 LE][call time
/// in ns: u64 LE][the input's bytes]`.
pub const OP_CALL: u8 = 0xC0;
/// The tag of an operation's response record: `[id: u64 LE][return time in
/// ns: u64 LE][the output's bytes]`. An invocation without one is an
/// operation still pending when the process stopped (or was killed).
pub const OP_RETURN: u8 = 0xC1;

impl Journal {
    /// Records that operation `id` was invoked at `call_ns` with `input`.
    pub fn record_call(&self, id: u64, call_ns: u64, input: &[u8]) {
        self.record(OP_CALL, &[&id.to_le_bytes(), &call_ns.to_le_bytes(), input]);
    }

    /// Records that operation `id` returned `output` at `ret_ns`.
    pub fn record_return(&self, id: u64, ret_ns: u64, output: &[u8]) {
        self.record(
            OP_RETURN,
            &[&id.to_le_bytes(), &ret_ns.to_le_bytes(), output],
        );
    }
}

/// Splits an [`OP_CALL`] or [`OP_RETURN`] record's body into `(id, time in
/// ns, the input's or output's bytes)`; `None` if it is too short.
pub fn split_op_record(body: &[u8]) -> Option<(u64, u64, &[u8])> {
    let id = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let at = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
    Some((id, at, &body[16..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_torn_one_is_dropped() {
        let j = Journal::new().unwrap();
        j.record(b'A', &[b"one", b"+two"]);
        j.record(b'B', &[]);
        let records = j.records().unwrap();
        assert_eq!(
            records,
            vec![(b'A', b"one+two".to_vec()), (b'B', Vec::new())]
        );
        // A record cut short by a kill: its header promises more than came.
        let mut bytes = vec![b'C'];
        bytes.extend_from_slice(&100u64.to_le_bytes());
        bytes.extend_from_slice(b"only some");
        assert_eq!(parse(&bytes), vec![]);
        assert_eq!(parse(&bytes[..4]), vec![]);
    }

    #[test]
    fn len_counts_every_byte_journalled() {
        let j = Journal::new().unwrap();
        assert_eq!((j.len().unwrap(), j.is_empty().unwrap()), (0, true));
        j.record(b'A', &[b"one", b"+two"]);
        assert_eq!((j.len().unwrap(), j.is_empty().unwrap()), (16, false));
        j.record(b'B', &[]);
        assert_eq!(j.len().unwrap(), 25);
        // The header: the tag, then the body's length in 8 bytes LE.
        let mut raw = vec![0u8; 25];
        let n = nix::sys::uio::pread(j.fd.as_fd(), &mut raw, 0).unwrap();
        assert_eq!(n, 25);
        assert_eq!(&raw[..9], b"A\x07\0\0\0\0\0\0\0");
        assert_eq!(&raw[9..16], b"one+two");
        assert_eq!(&raw[16..], b"B\0\0\0\0\0\0\0\0");
    }

    #[test]
    fn a_large_record_is_read_back_whole() {
        let j = Journal::new().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        j.record(b'M', &[&big[..100_000], &big[100_000..]]);
        j.record(b'E', &[b"x"]);
        assert_eq!(
            j.records().unwrap(),
            vec![(b'M', big), (b'E', b"x".to_vec())]
        );
    }

    #[test]
    fn parse_keeps_a_record_that_ends_exactly_at_the_end() {
        let record = |tag: u8, body: &[u8]| {
            let mut r = vec![tag];
            r.extend_from_slice(&(body.len() as u64).to_le_bytes());
            r.extend_from_slice(body);
            r
        };
        let mut bytes = record(b'A', b"abc");
        bytes.extend(record(b'B', b""));
        assert_eq!(bytes.len(), 21);
        let both = vec![(b'A', b"abc".to_vec()), (b'B', Vec::new())];
        assert_eq!(parse(&bytes), both);
        // One byte short of the second header: only the first.
        assert_eq!(parse(&bytes[..20]), vec![(b'A', b"abc".to_vec())]);
        assert_eq!(parse(&bytes[..12]), vec![(b'A', b"abc".to_vec())]);
        assert_eq!(parse(&bytes[..11]), vec![]);
        // A length too large for memory is torn, not a panic.
        let mut huge = vec![b'C'];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&huge), vec![]);
    }

    #[test]
    fn operation_records_round_trip() {
        let j = Journal::new().unwrap();
        j.record_call(7, 1_000, b"in");
        j.record_return(7, 2_500, b"");
        let records = j.records().unwrap();
        assert_eq!(
            records.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![OP_CALL, OP_RETURN]
        );
        assert_eq!(split_op_record(&records[0].1), Some((7, 1_000, &b"in"[..])));
        assert_eq!(split_op_record(&records[1].1), Some((7, 2_500, &b""[..])));
        assert_eq!(split_op_record(&records[0].1[..15]), None);
        assert_eq!(split_op_record(&records[0].1[..7]), None);
    }
}
