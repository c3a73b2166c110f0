//! The peers measured with `--peers`: `ipc-channel`, `interprocess` and
//! `iceoryx2` (the `peers` cargo feature; without it, each says so).

#[cfg(feature = "peers")]
mod iceoryx;

#[cfg(feature = "peers")]
use ipc_harness::error::Error;
use ipc_harness::error::Result;

#[cfg(feature = "peers")]
use super::LATENCY_SIZE;
use super::cases::{Case, LatencyCase};
#[cfg(not(feature = "peers"))]
use super::runner::NO_PEERS;
use super::runner::{Job, bench_error};
#[cfg(feature = "peers")]
use super::runner::{WARM_UP, echo_loop, pin, ping_loop};

/// Held by the parent across one peer measurement; when dropped (after its
/// processes are reaped, whether it succeeded or not) it removes the
/// measurement's iceoryx2 domain (its files in `/dev/shm` and its
/// directory), whatever a killed side left there.
#[must_use]
pub(super) struct PeerCleanup {
    #[cfg(feature = "peers")]
    iceoryx2: Option<iceoryx::Domain>,
}

#[cfg(feature = "peers")]
impl Drop for PeerCleanup {
    fn drop(&mut self) {
        if let Some(domain) = &self.iceoryx2 {
            domain.remove();
        }
    }
}

/// Pushes a peer's consumer, then its producer. The channels of
/// `ipc-channel` and `interprocess` are created here, before the fork: both
/// are plain file descriptors (a `SOCK_SEQPACKET` socketpair for
/// `ipc-channel` on Linux, a `pipe` for `interprocess`) that the children
/// inherit, with no thread or global state behind them. iceoryx2's cannot
/// be inherited: each side opens its own after the fork.
#[cfg(feature = "peers")]
pub(super) fn peer_throughput<'a>(
    case: Case,
    size: usize,
    messages: usize,
    jobs: &mut Vec<Job<'a>>,
) -> Result<PeerCleanup> {
    use std::io::{BufReader, Read, Write};
    match case {
        Case::Iceoryx2Poll | Case::Iceoryx2Event => {
            let mode = if case == Case::Iceoryx2Poll {
                iceoryx::Mode::Poll
            } else {
                iceoryx::Mode::Event
            };
            let domain = iceoryx::throughput(mode, size, messages, jobs);
            return Ok(PeerCleanup {
                iceoryx2: Some(domain),
            });
        }
        Case::IpcChannel => {
            let (tx, rx) = ipc_channel::ipc::bytes_channel()
                .map_err(|e| Error::io("ipc-channel bytes_channel", e))?;
            jobs.push(Box::new(move |go| {
                go()?;
                for _ in 0..messages {
                    let m = rx.recv().map_err(|e| peer_error("ipc-channel recv", e))?;
                    std::hint::black_box(m);
                }
                Ok(Vec::new())
            }));
            jobs.push(Box::new(move |go| {
                let msg = vec![0x5au8; size];
                go()?;
                for _ in 0..messages {
                    tx.send(&msg)
                        .map_err(|e| Error::io("ipc-channel send", e))?;
                }
                Ok(Vec::new())
            }));
        }
        Case::Interprocess => {
            let (mut tx, rx) = interprocess::unnamed_pipe::pipe()
                .map_err(|e| Error::io("interprocess pipe", e))?;
            jobs.push(Box::new(move |go| {
                let mut rx = BufReader::with_capacity(64 << 10, rx);
                let mut buf = super::runner::warm_buffer(size);
                go()?;
                for _ in 0..messages {
                    let mut header = [0u8; 4];
                    rx.read_exact(&mut header)
                        .map_err(|e| Error::io("interprocess read", e))?;
                    let len = u32::from_be_bytes(header) as usize;
                    rx.read_exact(&mut buf[..len])
                        .map_err(|e| Error::io("interprocess read", e))?;
                }
                Ok(Vec::new())
            }));
            jobs.push(Box::new(move |go| {
                let msg = vec![0x5au8; size];
                let mut frame = Vec::with_capacity(size + 4);
                go()?;
                for _ in 0..messages {
                    frame.clear();
                    frame.extend_from_slice(&(size as u32).to_be_bytes());
                    frame.extend_from_slice(&msg);
                    tx.write_all(&frame)
                        .map_err(|e| Error::io("interprocess write", e))?;
                }
                Ok(Vec::new())
            }));
        }
        _ => unreachable!("not a peer"),
    }
    Ok(PeerCleanup { iceoryx2: None })
}

/// Pushes a peer's pinger, then its echoer.
#[cfg(feature = "peers")]
pub(super) fn peer_latency<'a>(
    case: LatencyCase,
    n: usize,
    cpu: Option<usize>,
    jobs: &mut Vec<Job<'a>>,
) -> Result<PeerCleanup> {
    match case {
        LatencyCase::Iceoryx2Poll => {
            let domain = iceoryx::latency(iceoryx::Mode::Poll, n, cpu, jobs);
            return Ok(PeerCleanup {
                iceoryx2: Some(domain),
            });
        }
        LatencyCase::Iceoryx2Event => {
            let domain = iceoryx::latency(iceoryx::Mode::Event, n, cpu, jobs);
            return Ok(PeerCleanup {
                iceoryx2: Some(domain),
            });
        }
        LatencyCase::IpcChannel => {}
        _ => unreachable!("not a peer"),
    }
    let chan =
        || ipc_channel::ipc::bytes_channel().map_err(|e| Error::io("ipc-channel bytes_channel", e));
    let (ping_tx, ping_rx) = chan()?;
    let (pong_tx, pong_rx) = chan()?;
    jobs.push(Box::new(move |go| {
        pin(cpu)?;
        let msg = [0x5au8; LATENCY_SIZE];
        ping_loop(go, n, || {
            ping_tx
                .send(&msg)
                .map_err(|e| Error::io("ipc-channel send", e))?;
            pong_rx
                .recv()
                .map(drop)
                .map_err(|e| peer_error("ipc-channel recv", e))
        })
    }));
    jobs.push(Box::new(move |go| {
        pin(cpu)?;
        echo_loop(go, n + WARM_UP, || {
            let m = ping_rx
                .recv()
                .map_err(|e| peer_error("ipc-channel recv", e))?;
            pong_tx
                .send(&m)
                .map_err(|e| Error::io("ipc-channel send", e))
        })
    }));
    Ok(PeerCleanup { iceoryx2: None })
}

#[cfg(feature = "peers")]
fn peer_error(what: &str, e: impl std::fmt::Debug) -> Error {
    bench_error(format!("{what}: {e:?}"))
}

#[cfg(not(feature = "peers"))]
pub(super) fn peer_throughput(
    _: Case,
    _: usize,
    _: usize,
    _: &mut Vec<Job<'_>>,
) -> Result<PeerCleanup> {
    Err(bench_error(NO_PEERS.into()))
}

#[cfg(not(feature = "peers"))]
pub(super) fn peer_latency(
    _: LatencyCase,
    _: usize,
    _: Option<usize>,
    _: &mut Vec<Job<'_>>,
) -> Result<PeerCleanup> {
    Err(bench_error(NO_PEERS.into()))
}
