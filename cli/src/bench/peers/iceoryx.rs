//! iceoryx2 (zero-copy shared-memory publish-subscribe) as a peer.
//!
//! Its nodes and ports cannot be inherited across `fork`: every forked side
//! creates its own [`Node`] and opens the services by name after the fork.
//! Each measurement runs in a domain of its own (a file prefix in
//! `/dev/shm` and a directory in `/tmp`, both named after this process's
//! pid and a counter), which the parent removes once
//! the measurement's processes are gone: nothing is left behind, even by a
//! side killed at its deadline, and no other iceoryx2 user on the machine
//! is touched. (The domains of a benchmark process that was killed itself
//! are removed by the next one.)
//!
//! Every message is copied in (`loan_slice_uninit` + `write_from_slice` into
//! the shared-memory sample) and copied out (from the received sample into a
//! reused buffer), as the [`Queue`](ipc_harness::queue::Queue) cases do.
//! Nothing may be dropped: the service has no safe overflow, the publisher
//! retries until every sample is delivered
//! ([`BackpressureStrategy::RetryUntilDelivered`]), and the receiving side
//! counts what it got.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;
use ipc_harness::error::{Error, Result};
use ipc_harness::queue::DEFAULT_RING_BYTES;
use ipc_harness::sys;

use super::super::LATENCY_SIZE;
use super::super::runner::{Job, WARM_UP, bench_error, echoes, pin, ping_loop};

/// How the receiving side learns that a sample is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `Subscriber::receive` in a loop: spinning for [`SPIN_POLLS`] empty
    /// polls, then with a `sched_yield` after each (so that two processes
    /// pinned to one CPU both get to run; alone on its CPU, a yield returns
    /// at once).
    Poll,
    /// An event service beside the data: the publisher calls
    /// `Notifier::notify` after each send, the subscriber drains `receive`
    /// and then sleeps in `Listener::blocking_wait` until the next
    /// notification.
    Event,
}

/// Empty polls that spin before each further one yields, in [`Mode::Poll`].
const SPIN_POLLS: u32 = 64;

/// How long set-up may wait for the other side (its ports, its hello).
const SET_UP_DEADLINE: Duration = Duration::from_secs(30);

/// How many samples a subscriber's buffer holds for messages of `size`
/// bytes: as many as fill a [`Queue`](ipc_harness::queue::Queue)'s default
/// ring ([`DEFAULT_RING_BYTES`]), at least 4 and at most 1024. (A buffer
/// far larger than the caches would make every copy go to memory.)
fn buffer_for(size: usize) -> usize {
    (DEFAULT_RING_BYTES / size.max(1)).clamp(4, 1024)
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The private iceoryx2 domain of one measurement.
#[derive(Debug, Clone)]
pub(super) struct Domain {
    /// The prefix of its files in `/dev/shm`.
    prefix: String,
    /// Its root directory (nodes, services).
    root: PathBuf,
}

impl Domain {
    /// `iox2_ihb_` and 16 hex digits (pid, counter), as the prefix and as
    /// the name of the root directory in `/tmp`. Short, because the
    /// listeners' Unix sockets are named root + prefix + port + suffix and a
    /// socket's path has at most 107 bytes; of a fixed length, because a
    /// name that worked for the first measurement then works for all.
    fn new() -> Domain {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed) as u32;
        if seq == 0 {
            remove_abandoned_domains();
        }
        let id = format!("iox2_ihb_{:08x}{seq:08x}", sys::getpid());
        Domain {
            prefix: format!("{id}_"),
            root: PathBuf::from(format!("/tmp/{id}")),
        }
    }

    /// The domain's iceoryx2 configuration.
    fn config(&self) -> Result<Config> {
        let mut config = Config::default();
        config.global.prefix = FileName::new(self.prefix.as_bytes()).map_err(ice("file prefix"))?;
        let root = format!("{}/", self.root.display());
        config
            .global
            .set_root_path(&Path::new(root.as_bytes()).map_err(ice("root path"))?);
        Ok(config)
    }

    /// Removes every file of the domain. Only once no process uses it.
    pub(super) fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
        remove_shm(|name| name.starts_with(&self.prefix));
    }
}

/// Removes the domains of benchmark processes that are gone (one killed in
/// the middle of a measurement could not remove its own).
fn remove_abandoned_domains() {
    remove_shm(abandoned);
    if let Ok(entries) = std::fs::read_dir("/tmp") {
        for entry in entries.flatten() {
            if abandoned(&entry.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Whether `name` (in `/dev/shm` or `/tmp`) belongs to the domain of a
/// benchmark process that is gone.
fn abandoned(name: &str) -> bool {
    name.strip_prefix("iox2_ihb_")
        .and_then(|rest| rest.get(..8))
        .and_then(|pid| sys::Pid::from_str_radix(pid, 16).ok())
        .is_some_and(|pid| !sys::process_alive(pid))
}

/// Removes the entries of `/dev/shm` whose names `select` picks.
fn remove_shm(select: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in entries.flatten() {
        if select(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn ice<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |e| bench_error(format!("iceoryx2 {what}: {e:?}"))
}

/// Keeps iceoryx2's log out of the benchmark's output: errors only.
fn quiet() {
    set_log_level(LogLevel::Error);
}

fn node(domain: &Domain) -> Result<Node<ipc::Service>> {
    quiet();
    NodeBuilder::new()
        .config(&domain.config()?)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(ice("node"))
}

/// Waits (sleeping) until `ready` holds, at most [`SET_UP_DEADLINE`].
fn wait_until(what: &str, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    while !ready()? {
        if start.elapsed() > SET_UP_DEADLINE {
            return Err(bench_error(format!(
                "iceoryx2: timed out waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// The sending end of one direction: a publisher of `[u8]`, and in
/// [`Mode::Event`] a notifier.
struct Tx {
    publisher: Publisher<ipc::Service, [u8], ()>,
    notifier: Option<Notifier<ipc::Service>>,
    data: PubSub<ipc::Service, [u8], ()>,
    wake: Option<iceoryx2::service::port_factory::event::PortFactory<ipc::Service>>,
}

/// The receiving end of one direction: a subscriber, and in [`Mode::Event`]
/// a listener.
struct Rx {
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    listener: Option<Listener<ipc::Service>>,
}

/// The two service names of one direction (data and, in event mode, wake-ups).
#[derive(Clone)]
struct Names {
    data: String,
    wake: String,
}

impl Names {
    fn new(direction: &str) -> Names {
        Names {
            data: format!("ipc-harness-bench/{direction}/data"),
            wake: format!("ipc-harness-bench/{direction}/wake"),
        }
    }

    /// Opens (or creates: whichever side comes first) the data service; both
    /// sides ask for the same settings.
    fn data(
        &self,
        node: &Node<ipc::Service>,
        buffer: usize,
    ) -> Result<PubSub<ipc::Service, [u8], ()>> {
        let name = ServiceName::new(&self.data).map_err(ice("service name"))?;
        node.service_builder(&name)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .history_size(0)
            .subscriber_max_buffer_size(buffer)
            .subscriber_max_borrowed_samples(1)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
            .map_err(ice("publish-subscribe service"))
    }

    fn wake(
        &self,
        node: &Node<ipc::Service>,
    ) -> Result<iceoryx2::service::port_factory::event::PortFactory<ipc::Service>> {
        let name = ServiceName::new(&self.wake).map_err(ice("service name"))?;
        node.service_builder(&name)
            .event()
            .max_notifiers(1)
            .max_listeners(1)
            .open_or_create()
            .map_err(ice("event service"))
    }
}

impl Tx {
    fn open(
        node: &Node<ipc::Service>,
        names: &Names,
        mode: Mode,
        size: usize,
        buffer: usize,
    ) -> Result<Tx> {
        let data = names.data(node, buffer)?;
        let publisher = data
            .publisher_builder()
            .initial_max_slice_len(size.max(1))
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(ice("publisher"))?;
        let (wake, notifier) = match mode {
            Mode::Poll => (None, None),
            Mode::Event => {
                let wake = names.wake(node)?;
                let notifier = wake.notifier_builder().create().map_err(ice("notifier"))?;
                (Some(wake), Some(notifier))
            }
        };
        Ok(Tx {
            publisher,
            notifier,
            data,
            wake,
        })
    }

    /// Set-up: waits until the other side's subscriber (and listener)
    /// exist: a sample sent before that would reach nobody.
    fn wait_for_receiver(&self) -> Result<()> {
        wait_until("the subscriber", || {
            Ok(self.data.dynamic_config().number_of_subscribers() > 0
                && self
                    .wake
                    .as_ref()
                    .is_none_or(|w| w.dynamic_config().number_of_listeners() > 0))
        })
    }

    /// Set-up: sends `msg` until one copy reached the subscriber. Until the
    /// subscriber has taken its first sample, its end of the connection is
    /// not attached, and a send into its full buffer is dropped instead of
    /// waiting (iceoryx2 refuses to wait for a receiver it does not see);
    /// once it has, sends wait for room.
    fn send_until_delivered(&self, msg: &[u8]) -> Result<()> {
        wait_until("a hello sample to reach the subscriber", || {
            Ok(self.send_counted(msg)? > 0)
        })
    }

    /// Waits until the other side has dropped its subscriber: samples it
    /// has not taken yet stay readable as long as this publisher lives.
    fn linger(&self) -> Result<()> {
        wait_until("the subscriber to finish", || {
            Ok(self.data.dynamic_config().number_of_subscribers() == 0)
        })
    }

    /// Copies `msg` into a loaned sample, sends it (waiting while the
    /// subscriber's buffer is full), and notifies in event mode; checks
    /// that it reached the subscriber.
    fn send(&self, msg: &[u8]) -> Result<()> {
        match self.send_counted(msg)? {
            1 => Ok(()),
            n => Err(bench_error(format!(
                "iceoryx2 send reached {n} subscribers, not 1"
            ))),
        }
    }

    /// As [`Tx::send`]; how many subscribers the sample reached.
    fn send_counted(&self, msg: &[u8]) -> Result<usize> {
        let sample = self
            .publisher
            .loan_slice_uninit(msg.len())
            .map_err(ice("loan"))?
            .write_from_slice(msg);
        let delivered = sample.send().map_err(ice("send"))?;
        if let Some(n) = &self.notifier {
            n.notify().map_err(ice("notify"))?;
        }
        Ok(delivered)
    }
}

impl Rx {
    fn open(node: &Node<ipc::Service>, names: &Names, mode: Mode, buffer: usize) -> Result<Rx> {
        let subscriber = names
            .data(node, buffer)?
            .subscriber_builder()
            .buffer_size(buffer)
            .create()
            .map_err(ice("subscriber"))?;
        let listener = match mode {
            Mode::Poll => None,
            Mode::Event => Some(
                names
                    .wake(node)?
                    .listener_builder()
                    .create()
                    .map_err(ice("listener"))?,
            ),
        };
        Ok(Rx {
            subscriber,
            listener,
        })
    }

    /// One sample copied into `buf` if one is there; its length.
    fn try_recv_into(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        let Some(sample) = self.subscriber.receive().map_err(ice("receive"))? else {
            return Ok(None);
        };
        let payload = sample.payload();
        let Some(dst) = buf.get_mut(..payload.len()) else {
            return Err(bench_error(format!(
                "iceoryx2 received {} bytes, more than the {} expected",
                payload.len(),
                buf.len()
            )));
        };
        dst.copy_from_slice(payload);
        Ok(Some(payload.len()))
    }

    /// Waits for the next sample (spinning or sleeping, by mode), copies it
    /// into `buf`; its length.
    fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut misses = 0u32;
        loop {
            if let Some(len) = self.try_recv_into(buf)? {
                return Ok(len);
            }
            match &self.listener {
                Some(l) => {
                    l.blocking_wait(|_| {}).map_err(ice("wait"))?;
                }
                None => {
                    misses = misses.saturating_add(1);
                    if misses > SPIN_POLLS {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
    }

    /// Set-up: waits (sleeping, not timed) for the next sample; its length.
    fn recv_set_up(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = None;
        wait_until("the hello sample", || {
            got = self.try_recv_into(buf)?;
            Ok(got.is_some())
        })?;
        // The hello's notification was not waited for: drop it, so that the
        // first timed wait is a real one.
        if let Some(l) = &self.listener {
            l.try_wait(|_| {}).map_err(ice("wait"))?;
        }
        Ok(got.unwrap_or(0))
    }
}

/// Runs `set_up`, then `go()` even if it failed: a side that ended before
/// reporting ready would leave the others (and the parent) waiting for it.
/// A failed set-up then ends the measurement with its error.
fn set_up_then_go<T>(
    go: &mut dyn FnMut() -> Result<()>,
    set_up: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let side = set_up();
    go()?;
    side
}

/// Pushes the consumer, then the producer, of one throughput measurement.
///
/// Before the clock starts, the producer waits until it sees the
/// subscriber (and listener), then sends as many full-size hello samples as
/// the subscriber's buffer holds (plus a few), which the consumer takes:
/// connection, discovery and the first touch of every page of the shared
/// memory are not timed. The producer ends with an empty sample; the
/// consumer checks that it received exactly `messages` of `size` bytes
/// before it.
///
/// Returns the measurement's domain, to be removed once its processes are
/// gone.
pub(super) fn throughput<'a>(
    mode: Mode,
    size: usize,
    messages: usize,
    jobs: &mut Vec<Job<'a>>,
) -> Domain {
    quiet();
    let domain = Domain::new();
    let domain2 = domain.clone();
    let names = Names::new("stream");
    let names2 = names.clone();
    let buffer = buffer_for(size);
    let hellos = buffer + 4;
    let domain3 = domain.clone();
    jobs.push(Box::new(move |go| {
        let (_node, mut rx, mut buf) = set_up_then_go(go, || {
            let node = node(&domain2)?;
            let mut rx = Rx::open(&node, &names, mode, buffer)?;
            let mut buf = super::super::runner::warm_buffer(size);
            for _ in 0..hellos {
                rx.recv_set_up(&mut buf)?;
            }
            Ok((node, rx, buf))
        })?;
        let mut got = 0usize;
        loop {
            let len = rx.recv_into(&mut buf)?;
            if len == 0 {
                break;
            }
            if len != size {
                return Err(bench_error(format!(
                    "iceoryx2 received a message of {len} bytes, not {size}"
                )));
            }
            std::hint::black_box(&mut buf);
            got += 1;
        }
        if got != messages {
            return Err(bench_error(format!(
                "iceoryx2 subscriber received {got} of {messages} messages"
            )));
        }
        Ok(Vec::new())
    }));
    jobs.push(Box::new(move |go| {
        let msg = vec![0x5au8; size];
        let (_node, tx) = set_up_then_go(go, || {
            let node = node(&domain3)?;
            let tx = Tx::open(&node, &names2, mode, size, buffer)?;
            tx.wait_for_receiver()?;
            for _ in 0..hellos {
                tx.send_until_delivered(&msg)?;
            }
            Ok((node, tx))
        })?;
        for _ in 0..messages {
            tx.send(&msg)?;
        }
        tx.send(&[])?;
        tx.linger()?;
        Ok(Vec::new())
    }));
    domain
}

/// Pushes the pinger, then the echoer, of one round-trip measurement: a
/// ping service and a pong service (each with its event service in event
/// mode). One hello goes each way before the clock starts.
/// Returns the measurement's domain, as [`throughput`] does.
pub(super) fn latency<'a>(
    mode: Mode,
    n: usize,
    cpu: Option<usize>,
    jobs: &mut Vec<Job<'a>>,
) -> Domain {
    quiet();
    let domain = Domain::new();
    let (domain2, domain3) = (domain.clone(), domain.clone());
    let (ping, pong) = (Names::new("ping"), Names::new("pong"));
    let (ping2, pong2) = (ping.clone(), pong.clone());
    let buffer = 4;
    jobs.push(Box::new(move |go| {
        let msg = [0x5au8; LATENCY_SIZE];
        let mut buf = [0u8; LATENCY_SIZE];
        let set_up = (|| -> Result<_> {
            pin(cpu)?;
            let node = node(&domain2)?;
            let tx = Tx::open(&node, &ping, mode, LATENCY_SIZE, buffer)?;
            let mut rx = Rx::open(&node, &pong, mode, buffer)?;
            tx.wait_for_receiver()?;
            tx.send_until_delivered(&msg)?;
            rx.recv_set_up(&mut buf)?;
            Ok((node, tx, rx))
        })();
        // `ping_loop` calls `go()` itself; a failed set-up calls it here
        // (see `set_up_then_go`).
        let (_node, tx, mut rx) = match set_up {
            Ok(ends) => ends,
            Err(e) => {
                go()?;
                return Err(e);
            }
        };
        ping_loop(go, n, || {
            tx.send(&msg)?;
            match rx.recv_into(&mut buf)? {
                LATENCY_SIZE => Ok(()),
                len => Err(bench_error(format!(
                    "iceoryx2 pong of {len} bytes, not {LATENCY_SIZE}"
                ))),
            }
        })
    }));
    jobs.push(Box::new(move |go| {
        let mut buf = [0u8; LATENCY_SIZE];
        let (_node, tx, mut rx) = set_up_then_go(go, || {
            pin(cpu)?;
            let node = node(&domain3)?;
            let tx = Tx::open(&node, &pong2, mode, LATENCY_SIZE, buffer)?;
            let mut rx = Rx::open(&node, &ping2, mode, buffer)?;
            let len = rx.recv_set_up(&mut buf)?;
            tx.wait_for_receiver()?;
            tx.send_until_delivered(&buf[..len])?;
            Ok((node, tx, rx))
        })?;
        let trace = echoes(n + WARM_UP, || {
            let len = rx.recv_into(&mut buf)?;
            tx.send(&buf[..len])
        })?;
        tx.linger()?;
        Ok(trace)
    }));
    domain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_have_one_name_length_and_only_dead_ones_are_abandoned() {
        let (a, b) = (Domain::new(), Domain::new());
        assert_eq!(a.prefix.len(), "iox2_ihb_".len() + 16 + 1, "{a:?}");
        assert_eq!(b.prefix.len(), a.prefix.len(), "{b:?}");
        assert_ne!(a.prefix, b.prefix);
        let dir = a.root.to_str().expect("a UTF-8 path");
        assert_eq!(format!("{dir}_"), format!("/tmp/{}", a.prefix));
        // This process is alive; pid 0x7ffffffe is past any possible pid (at most 2^22);
        // files of other iceoryx2 users are never ours.
        assert!(!abandoned(&a.prefix));
        assert!(!abandoned(&format!("{}x.data", b.prefix)));
        assert!(abandoned("iox2_ihb_7ffffffe00000000_x.data"));
        assert!(abandoned("iox2_ihb_7ffffffe00000007"));
        assert!(!abandoned(
            "iox2_9204dd183d1c4d8e1ff592a30766ffa6765aa8b5_node.0_10_0.global_mgmt"
        ));
        assert!(!abandoned("iox2_ihb_zz"));
    }
}
