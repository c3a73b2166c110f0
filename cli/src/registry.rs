//! Every transport the harness knows, by name: the crate's primitives, the
//! raw kernel transports, and the pitfall variants. The `check` command and
//! the generic property suite both read this list, so adding a primitive
//! here adds it to both.

use std::time::Duration;

use ipc_harness::harness::campaign::{CampaignConfig, CampaignResult, campaign};
use ipc_harness::harness::channel::{Channel, Promises};
use ipc_harness::harness::pitfalls::{Pitfall, PitfallChannel, Variant};
use ipc_harness::harness::transports::{
    DuplexChannel, FifoChannel, JoinableChannel, PipeChannel, QueueChannel, RawChannel, RawKind,
};
use ipc_harness::probe::Feature;

/// What sort of transport an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of the crate's primitives: it must keep every promise.
    Primitive,
    /// A raw kernel transport used the naive way: the lesson rows.
    Raw,
    /// A deliberately broken variant: the harness must catch it.
    Pitfall(Variant),
}

/// One checkable transport.
pub struct Entry {
    /// Its name, as `--primitive` takes it.
    pub name: String,
    /// What sort it is.
    pub kind: Kind,
    /// What it promises.
    pub promises: Promises,
    /// A kernel feature it needs; without it, the entry is skipped.
    pub requires: Option<Feature>,
    /// How its campaigns differ from the one asked for.
    pub tuning: Tuning,
    campaign: Box<dyn Fn(&CampaignConfig) -> CampaignResult>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Entry {
    fn new<C: Channel + 'static>(kind: Kind, channel: C) -> Entry {
        Entry {
            name: channel.name(),
            kind,
            promises: channel.promises(),
            requires: None,
            tuning: Tuning::NONE,
            campaign: Box::new(move |config| campaign(&channel, config)),
        }
    }

    /// Why this entry cannot run on this kernel, if it cannot.
    pub fn skip_reason(&self) -> Option<String> {
        self.requires.and_then(ipc_harness::probe::require)
    }

    /// A pitfall variant's entry: its transport, tuned with `tuning`.
    fn pitfall<C: Channel + 'static>(variant: Variant, channel: C, tuning: Tuning) -> Entry {
        Entry {
            tuning,
            ..Entry::new(Kind::Pitfall(variant), channel)
        }
    }

    /// Runs a campaign on this entry's transport, with its [`Tuning`].
    pub fn campaign(&self, config: &CampaignConfig) -> CampaignResult {
        let mut config = config.clone();
        self.tuning.apply(&mut config);
        (self.campaign)(&config)
    }
}

/// How an entry's campaigns differ from the one asked for: declared with
/// the entry, applied by [`Entry::campaign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Shrink a failing scenario to a minimal one.
    pub shrink: bool,
    /// Run under this signal storm, whatever was asked.
    pub signal_storm: Option<Duration>,
    /// Generate fault scenarios, whatever was asked.
    pub faults: bool,
    /// Run at least this many scenarios.
    pub min_cases: u32,
    /// Give each run at most this long.
    pub max_deadline: Option<Duration>,
}

impl Tuning {
    /// The campaign as asked.
    pub const NONE: Tuning = Tuning {
        shrink: true,
        signal_storm: None,
        faults: false,
        min_cases: 0,
        max_deadline: None,
    };

    /// A pitfall variant's: it is shown by its first failure (shrinking it
    /// would cost runs that may each wait for a deadline), and no run waits
    /// longer than 5 s.
    pub const PITFALL: Tuning = Tuning {
        shrink: false,
        max_deadline: Some(Duration::from_secs(5)),
        ..Tuning::NONE
    };

    fn apply(&self, config: &mut CampaignConfig) {
        config.shrink &= self.shrink;
        if self.signal_storm.is_some() {
            config.run.signal_storm = self.signal_storm;
        }
        config.faults |= self.faults;
        config.cases = config.cases.max(self.min_cases);
        if let Some(deadline) = self.max_deadline {
            config.run.deadline = config.run.deadline.min(deadline);
        }
    }
}

/// The crate's primitives.
pub fn primitives() -> Vec<Entry> {
    vec![
        Entry::new(Kind::Primitive, PipeChannel),
        Entry::new(Kind::Primitive, DuplexChannel { reversed: false }),
        Entry::new(Kind::Primitive, DuplexChannel { reversed: true }),
        Entry::new(Kind::Primitive, FifoChannel),
        Entry::new(Kind::Primitive, QueueChannel::DEFAULT),
        Entry::new(
            Kind::Primitive,
            QueueChannel {
                bounded: Some(4),
                ring_bytes: Some(4096),
                racing_readers: false,
            },
        ),
        Entry::new(Kind::Primitive, JoinableChannel::DEFAULT),
    ]
}

/// The raw kernel transports.
pub fn raw() -> Vec<Entry> {
    RawChannel::ALL
        .into_iter()
        .map(|c| {
            let mut e = Entry::new(Kind::Raw, c);
            e.requires = match c.0 {
                RawKind::PacketPipe => Some(Feature::PacketPipes),
                RawKind::SeqPacket => Some(Feature::SeqPacket),
                _ => None,
            };
            e
        })
        .collect()
}

/// The pitfall variants, each with its tuning.
pub fn pitfalls() -> Vec<Entry> {
    let plain = |v: Variant| Entry::pitfall(v, PitfallChannel(v), Tuning::PITFALL);
    vec![
        plain(Variant::Coalescing),
        plain(Variant::SplitReads),
        plain(Variant::InterleavedWrites),
        plain(Variant::RacingReaders),
        plain(Variant::IgnoredShortWrite),
        Entry::pitfall(
            Variant::EofNeverComes,
            PitfallChannel(Variant::EofNeverComes),
            // Every run of this one waits for its deadline.
            Tuning {
                max_deadline: Some(Duration::from_secs(1)),
                ..Tuning::PITFALL
            },
        ),
        Entry::pitfall(
            Variant::RacingReaders,
            QueueChannel {
                racing_readers: true,
                ..QueueChannel::DEFAULT
            },
            Tuning::PITFALL,
        ),
        Entry::pitfall(
            Variant::UnsharedTaskCounter,
            JoinableChannel {
                local_counter_pitfall: true,
                ..JoinableChannel::DEFAULT
            },
            Tuning::PITFALL,
        ),
        Entry::pitfall(
            Variant::EintrAsEof,
            PitfallChannel(Variant::EintrAsEof),
            // Correct until a signal interrupts a read.
            Tuning {
                signal_storm: Some(Duration::from_micros(200)),
                ..Tuning::PITFALL
            },
        ),
        Entry::pitfall(
            Variant::NonRobustLock,
            PitfallChannel(Variant::NonRobustLock),
            // Correct until a process dies holding a lock: about one fault
            // scenario in 7 kills one there, and the campaign stops at the
            // first that does. Its failing runs wait for their deadline.
            Tuning {
                faults: true,
                min_cases: 400,
                max_deadline: Some(Duration::from_secs(2)),
                ..Tuning::PITFALL
            },
        ),
    ]
}

/// The entries that show the catalogue's `pitfall` (none for a pitfall
/// that only its demo shows).
pub fn pitfall_entries(pitfall: Pitfall) -> Vec<Entry> {
    pitfalls()
        .into_iter()
        .filter(|e| matches!(e.kind, Kind::Pitfall(v) if v.pitfall() == Some(pitfall)))
        .collect()
}

/// Primitives, then raw transports, then (if asked) pitfalls.
pub fn all(include_pitfalls: bool) -> Vec<Entry> {
    let mut v = primitives();
    v.extend(raw());
    if include_pitfalls {
        v.extend(pitfalls());
    }
    v
}
