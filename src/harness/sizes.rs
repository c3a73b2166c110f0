//! Message sizes biased toward the boundaries where IPC code breaks: empty,
//! one byte, the frame header ±1, `PIPE_BUF` ±1 (as a payload and as a whole
//! frame), the default pipe capacity ±1, and multi-MiB.

use proptest::prelude::*;

use crate::frame::HEADER_LEN;
use crate::sys::PIPE_BUF;

/// The default capacity of a Linux pipe.
pub const PIPE_CAPACITY: usize = 65536;

/// Every size that matters, in increasing order, up to `max` inclusive.
pub fn boundary_sizes(max: usize) -> Vec<usize> {
    let mut v = vec![
        0,
        1,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 1,
        PIPE_BUF - HEADER_LEN - 1,
        PIPE_BUF - HEADER_LEN,
        PIPE_BUF - HEADER_LEN + 1,
        PIPE_BUF - 1,
        PIPE_BUF,
        PIPE_BUF + 1,
        PIPE_CAPACITY - HEADER_LEN,
        PIPE_CAPACITY - 1,
        PIPE_CAPACITY,
        PIPE_CAPACITY + 1,
        1 << 20,
        (1 << 20) + 1,
        4 << 20,
        16 << 20,
    ];
    v.retain(|&s| s <= max);
    v.sort_unstable();
    v.dedup();
    v
}

/// A size in `0..=max`: usually a boundary size or one a few bytes off it,
/// sometimes any size at all. Shrinks toward small sizes.
pub fn size(max: usize) -> impl Strategy<Value = usize> + Clone {
    let boundaries = boundary_sizes(max);
    prop_oneof![
        4 => proptest::sample::select(boundaries.clone()),
        2 => (proptest::sample::select(boundaries), -3i64..=3).prop_map(move |(b, d)| {
            (b as i64 + d).clamp(0, max as i64) as usize
        }),
        1 => 0..=max.min(2 * PIPE_CAPACITY),
        1 => 0..=max,
    ]
}

/// A list of `1..=max_len` sizes from [`size`], whose total stays within
/// `max_total` bytes (sizes past the budget are cut to fit).
pub fn size_plan(
    max_size: usize,
    max_len: usize,
    max_total: usize,
) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(size(max_size), 1..=max_len).prop_map(move |mut v| {
        let mut left = max_total;
        for s in &mut v {
            *s = (*s).min(left);
            left -= *s;
        }
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_sorted_and_capped() {
        let b = boundary_sizes(PIPE_BUF + 1);
        assert_eq!(b.first(), Some(&0));
        assert_eq!(b.last(), Some(&(PIPE_BUF + 1)));
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert!(
            b.contains(&(PIPE_BUF - HEADER_LEN)),
            "a frame of exactly PIPE_BUF"
        );
    }
}
