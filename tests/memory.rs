//! Memory: receiving a large message costs about the message, not twice it,
//! and streaming many large messages keeps memory flat. Measured in the
//! receiving process, a forked child, two ways: bytes allocated (a counting
//! global allocator in this test binary) and the kernel's own peak resident
//! size (`VmHWM`, which fork resets to the current size).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipc_harness::frame::{CHUNK, READ_AHEAD};
use ipc_harness::harness::fork::{self, serial};
use ipc_harness::pipe;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's own layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's own layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the system does it for large blocks (mremap): old size
        // to new size, never both at once. The kernel's VmHWM below checks
        // that this is true.
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;

fn vm_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Message size for the large test: 1 GiB when the machine has room for
/// the sender's copy, the receiver's and some margin, else 256 MiB.
fn large_size() -> usize {
    let avail_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    if avail_kib * 1024 > 4 * 1024 * MIB {
        1024 * MIB
    } else {
        256 * MIB
    }
}

/// Forks a sender of `count` messages of `size` bytes and a receiver that
/// takes them with `recv_bytes` (or into one reused buffer); returns the
/// receiver's (peak bytes allocated above its start, VmHWM growth in bytes).
fn receive_and_measure(size: usize, count: usize, into: bool) -> (usize, usize) {
    let (tx, mut rx) = pipe().unwrap();
    let sender = fork::spawn(move || {
        let msg = vec![0x5au8; size];
        for _ in 0..count {
            tx.send_bytes(&msg).unwrap();
        }
        Vec::new()
    })
    .unwrap();
    let receiver = fork::spawn(move || {
        let mut buf = if into { vec![0u8; size] } else { Vec::new() };
        if into {
            // Touch every page, so the buffer is resident before we start.
            buf.iter_mut().step_by(4096).for_each(|b| *b = 1);
        }
        let hwm_before = vm_kib("VmRSS:") * 1024;
        let base = CURRENT.load(Ordering::SeqCst);
        PEAK.store(base, Ordering::SeqCst);
        for _ in 0..count {
            if into {
                assert_eq!(rx.recv_bytes_into(&mut buf).unwrap(), size);
            } else {
                let m = rx.recv_bytes().unwrap();
                assert_eq!(m.len(), size);
                assert_eq!(m[size - 1], 0x5a);
            }
        }
        let peak = PEAK.load(Ordering::SeqCst) - base;
        let hwm = (vm_kib("VmHWM:") * 1024).saturating_sub(hwm_before);
        let mut out = (peak as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&(hwm as u64).to_le_bytes());
        out
    })
    .unwrap();
    let reports = fork::wait_all(vec![sender, receiver], Duration::from_secs(120)).unwrap();
    let mut reports = reports.into_iter();
    reports.next().unwrap().expect_success();
    let out = reports.next().unwrap().expect_success();
    let peak = u64::from_le_bytes(out[..8].try_into().unwrap()) as usize;
    let hwm = u64::from_le_bytes(out[8..16].try_into().unwrap()) as usize;
    (peak, hwm)
}

#[test]
fn a_large_message_costs_about_itself_not_twice_and_a_stream_stays_flat() {
    let _serial = serial();
    let slack = CHUNK + READ_AHEAD + 4 * MIB;

    let size = large_size();
    let (peak, hwm) = receive_and_measure(size, 1, false);
    eprintln!("recv_bytes of {size} B: peak allocated {peak} B, VmHWM grew {hwm} B");
    assert!(
        peak <= size + slack,
        "recv_bytes of {size} B allocated a peak of {peak} B"
    );
    assert!(
        hwm <= size + size / 10 + slack,
        "recv_bytes of {size} B grew the peak resident size by {hwm} B"
    );

    // Into a buffer that is already there: nothing allocated at all beyond
    // the read-ahead buffer, and no second copy resident.
    let (peak, hwm) = receive_and_measure(size / 4, 1, true);
    eprintln!(
        "recv_bytes_into of {} B: peak allocated {peak} B, VmHWM grew {hwm} B",
        size / 4
    );
    assert!(peak <= READ_AHEAD, "recv_bytes_into allocated {peak} B");
    assert!(
        hwm <= slack,
        "recv_bytes_into grew the peak resident size by {hwm} B"
    );

    // 1 GiB (or 256 MiB) as 1 MiB messages: memory stays flat.
    let count = size / MIB;
    let (peak, hwm) = receive_and_measure(MIB, count, false);
    eprintln!("{count} x 1 MiB with recv_bytes: peak allocated {peak} B, VmHWM grew {hwm} B");
    assert!(peak <= MIB + slack, "streaming: peak {peak} B allocated");
    assert!(
        hwm <= 2 * MIB + slack,
        "streaming: resident grew by {hwm} B"
    );
}
