//! Every transport the harness knows, by name: the crate's primitives, the
//! raw kernel transports, and the pitfall variants. The `check` command and
//! the generic property suite both read this list, so adding a primitive
//! here adds it to both.

use std::time::Duration;

use ipc_harness::harness::campaign::{CampaignConfig, CampaignResult, campaign};
use ipc_harness::harness::channel::{Channel, Promises};
use ipc_harness::harness::pitfalls::{Pitfall, PitfallChannel, Variant};
use ipc_harness::harness::transports::{
    DuplexChannel, DuplexPipesChannel, FifoChannel, FifoChunkedChannel, JoinableChannel,
    PipeChannel, QueueChannel, RawChannel, RawKind,
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
    /// Its name, as `--primitive` takes it (and as the table shows it).
    pub name: String,
    /// Short names `--primitive` also takes, e.g. `pipe` or `coalescing`
    /// (matched without regard to case; one alias may name several entries,
    /// as `duplex` names both directions).
    pub aliases: Vec<&'static str>,
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
            aliases: Vec::new(),
            kind,
            promises: channel.promises(),
            requires: None,
            tuning: Tuning::NONE,
            campaign: Box::new(move |config| campaign(&channel, config)),
        }
    }

    /// This entry, also known by `aliases`.
    fn alias(mut self, aliases: &[&'static str]) -> Entry {
        self.aliases.extend_from_slice(aliases);
        self
    }

    /// Whether `wanted` names this entry: its full name or one of its
    /// aliases, in any case.
    pub fn answers_to(&self, wanted: &str) -> bool {
        let wanted = wanted.trim();
        self.name.eq_ignore_ascii_case(wanted)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(wanted))
    }

    /// Why this entry cannot run on this kernel, if it cannot.
    pub fn skip_reason(&self) -> Option<String> {
        self.requires.and_then(ipc_harness::probe::require)
    }

    /// A pitfall variant's entry: its transport, tuned with `tuning`.
    /// Its aliases are the variant's name and, when it differs, the name of
    /// the catalogue pitfall it shows (`unshared-task-counter` and
    /// `task-done-too-many-times`).
    fn pitfall<C: Channel + 'static>(variant: Variant, channel: C, tuning: Tuning) -> Entry {
        let mut aliases = vec![variant.name()];
        if let Some(p) = variant.pitfall().filter(|p| p.name() != variant.name()) {
            aliases.push(p.name());
        }
        Entry {
            tuning,
            ..Entry::new(Kind::Pitfall(variant), channel).alias(&aliases)
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
    /// Replay the failing scenario alone to tell a timing-dependent
    /// failure from one that replays.
    pub replay: bool,
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
        replay: true,
        signal_storm: None,
        faults: false,
        min_cases: 0,
        max_deadline: None,
    };

    /// A pitfall variant's: it is shown by its first failure (shrinking or
    /// replaying it would cost runs that may each wait for a deadline), and
    /// no run waits longer than 5 s.
    pub const PITFALL: Tuning = Tuning {
        shrink: false,
        replay: false,
        max_deadline: Some(Duration::from_secs(5)),
        ..Tuning::NONE
    };

    fn apply(&self, config: &mut CampaignConfig) {
        config.shrink &= self.shrink;
        if !self.replay {
            config.replays = 0;
        }
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
        Entry::new(Kind::Primitive, PipeChannel).alias(&["pipe"]),
        Entry::new(Kind::Primitive, DuplexChannel { reversed: false })
            .alias(&["duplex", "duplex-ab"]),
        Entry::new(Kind::Primitive, DuplexChannel { reversed: true })
            .alias(&["duplex", "duplex-ba"]),
        Entry::new(Kind::Primitive, DuplexPipesChannel { reversed: false })
            .alias(&["duplex-pipes", "duplex-pipes-ab"]),
        Entry::new(Kind::Primitive, DuplexPipesChannel { reversed: true })
            .alias(&["duplex-pipes", "duplex-pipes-ba"]),
        Entry::new(Kind::Primitive, FifoChannel).alias(&["fifo"]),
        Entry::new(Kind::Primitive, FifoChunkedChannel).alias(&["fifo-chunked"]),
        Entry::new(Kind::Primitive, QueueChannel::DEFAULT).alias(&["queue"]),
        Entry::new(
            Kind::Primitive,
            QueueChannel {
                bounded: Some(4),
                ring_bytes: Some(4096),
                racing_readers: false,
            },
        )
        .alias(&["queue-bounded"]),
        Entry::new(Kind::Primitive, JoinableChannel::DEFAULT).alias(&["joinable"]),
    ]
}

/// The raw kernel transports.
pub fn raw() -> Vec<Entry> {
    RawChannel::ALL
        .into_iter()
        .map(|c| {
            let alias = match c.0 {
                RawKind::Pipe => "raw-pipe",
                RawKind::PacketPipe => "packet-pipe",
                RawKind::Stream => "stream",
                RawKind::SeqPacket => "seqpacket",
                RawKind::Datagram => "dgram",
            };
            let mut e = Entry::new(Kind::Raw, c).alias(&[alias]);
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
        // `racing-readers` names both racing-readers entries.
        Entry::pitfall(
            Variant::RacingReaders,
            QueueChannel {
                racing_readers: true,
                ..QueueChannel::DEFAULT
            },
            Tuning::PITFALL,
        )
        .alias(&["racing-readers-queue"]),
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

/// The entries `wanted` names (full names or aliases, any case; see
/// [`Entry::answers_to`]), in registry order, each once; or the first name
/// that names none.
pub fn select<'a>(wanted: impl IntoIterator<Item = &'a str>) -> Result<Vec<Entry>, String> {
    let everything = all(true);
    let mut chosen = vec![false; everything.len()];
    for w in wanted {
        let mut found = false;
        for (i, e) in everything.iter().enumerate() {
            if e.answers_to(w) {
                chosen[i] = true;
                found = true;
            }
        }
        if !found {
            return Err(w.to_string());
        }
    }
    Ok(everything
        .into_iter()
        .zip(chosen)
        .filter_map(|(e, c)| c.then_some(e))
        .collect())
}

/// Every name `--primitive` takes, one entry a line: its aliases, then its
/// full name (quoted, as a shell needs it), e.g.
/// `  pipe                   'pipe()'`.
pub fn names_table() -> String {
    let everything = all(true);
    let rows: Vec<(String, String)> = everything
        .iter()
        .map(|e| (e.aliases.join(", "), format!("'{}'", e.name)))
        .collect();
    let w = rows.iter().map(|(a, _)| a.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(a, n)| format!("  {a:w$}  {n}\n"))
        .collect()
}
