//! `FifoWriter`'s `AsFd` and `AsRawFd`: the fd is the write end of the
//! FIFO, blocking and close-on-exec, pollable for writability, and keeps its
//! number (and all of that) across the reopen a locked writer does on its
//! first send after `fork`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use ipc_harness::fifo::{Fifo, FifoOptions, Wait};
use ipc_harness::harness::fork;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// What a test can see of `fd`: its number, access mode and status flags,
/// close-on-exec, the inode it refers to, and whether a poll finds it
/// writable at once.
fn facts(fd: BorrowedFd<'_>) -> (i32, bool, bool, bool, u64, bool) {
    let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).unwrap());
    let fd_flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD).unwrap());
    let inode = nix::sys::stat::fstat(fd).unwrap().st_ino;
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    let ready = poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
        && fds[0].revents().unwrap().contains(PollFlags::POLLOUT);
    (
        fd.as_raw_fd(),
        fl & OFlag::O_ACCMODE == OFlag::O_WRONLY,
        fl.contains(OFlag::O_NONBLOCK),
        fd_flags.contains(FdFlag::FD_CLOEXEC),
        inode,
        ready,
    )
}

#[test]
fn the_writer_fd_is_a_pollable_blocking_write_end_and_keeps_its_number_across_fork() {
    let _serial = fork::serial();
    let dir = tempfile::tempdir().unwrap();
    let fifo = Fifo::create(dir.path().join("spam")).unwrap();
    let mut reader = fifo.reader(Wait::NonBlocking).unwrap();
    for small in [false, true] {
        let writer = FifoOptions::new()
            .wait(Wait::NonBlocking)
            .small_messages(small)
            .writer(fifo.path())
            .unwrap();
        assert_eq!(writer.as_raw_fd(), writer.as_fd().as_raw_fd());
        let before = facts(writer.as_fd());
        let (_, write_only, nonblocking, cloexec, _, writable) = before;
        assert!(
            write_only && !nonblocking && cloexec && writable,
            "{before:?}"
        );
        // A child sends first, so a locked writer gets a description of its
        // own there: the same number, the same facts.
        let child = fork::spawn(|| {
            writer.send_bytes(b"Spam 000").unwrap();
            let after = facts(writer.as_fd());
            vec![u8::from(after == before)]
        })
        .unwrap();
        let ok = child
            .wait(Duration::from_secs(10))
            .unwrap()
            .expect_success();
        assert_eq!(
            ok,
            [1],
            "small_messages {small}: the fd changed in the child"
        );
        assert_eq!(reader.recv_bytes().unwrap(), b"Spam 000");
        // And in the parent, after a send of its own.
        writer.send_bytes(b"Spam 001").unwrap();
        assert_eq!(facts(writer.as_fd()), before);
        assert_eq!(reader.recv_bytes().unwrap(), b"Spam 001");
    }
}
