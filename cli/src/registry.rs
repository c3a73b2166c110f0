//! Every transport the harness knows, by name: the crate's primitives, the
//! raw kernel transports, and the pitfall variants. The `check` command and
//! the generic property suite both read this list, so adding a primitive
//! here adds it to both.

use std::time::Duration;

use ipc_harness::harness::campaign::{CampaignConfig, CampaignResult, campaign};
use ipc_harness::harness::channel::{Channel, Promises};
use ipc_harness::harness::pitfalls::{Pitfall, PitfallChannel};
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
    Pitfall(Pitfall),
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
            campaign: Box::new(move |config| campaign(&channel, config)),
        }
    }

    /// Why this entry cannot run on this kernel, if it cannot.
    pub fn skip_reason(&self) -> Option<String> {
        self.requires.and_then(ipc_harness::probe::require)
    }

    /// Runs a campaign on this entry's transport.
    pub fn campaign(&self, config: &CampaignConfig) -> CampaignResult {
        let mut config = config.clone();
        if let Kind::Pitfall(pitfall) = self.kind {
            // A pitfall is shown by its first failure; shrinking it would
            // cost runs that may each wait for a deadline.
            config.shrink = false;
            if pitfall == Pitfall::EintrAsEof {
                config.run.signal_storm = Some(Duration::from_micros(200));
            }
            if pitfall == Pitfall::NonRobustLock {
                // About one fault scenario in 7 kills a process holding a
                // lock; the campaign stops at the first that does.
                config.faults = true;
                config.cases = config.cases.max(400);
            }
            let deadline = match pitfall {
                // Every run of this one waits for its deadline.
                Pitfall::EofNeverComes => Duration::from_secs(1),
                // Its failing runs wait for theirs.
                Pitfall::NonRobustLock => Duration::from_secs(2),
                _ => Duration::from_secs(5),
            };
            config.run.deadline = config.run.deadline.min(deadline);
        }
        (self.campaign)(&config)
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

/// The pitfall variants.
pub fn pitfalls() -> Vec<Entry> {
    let mut v: Vec<Entry> = Pitfall::ALL
        .into_iter()
        .map(|p| Entry::new(Kind::Pitfall(p), PitfallChannel(p)))
        .collect();
    v.push(Entry::new(
        Kind::Pitfall(Pitfall::RacingReaders),
        QueueChannel {
            racing_readers: true,
            ..QueueChannel::DEFAULT
        },
    ));
    v.push(Entry::new(
        Kind::Pitfall(Pitfall::UnsharedTaskCounter),
        JoinableChannel {
            local_counter_pitfall: true,
            ..JoinableChannel::DEFAULT
        },
    ));
    // Campaigned under a signal storm, and under kill faults (see
    // Entry::campaign).
    for p in [Pitfall::EintrAsEof, Pitfall::NonRobustLock] {
        v.push(Entry::new(Kind::Pitfall(p), PitfallChannel(p)));
    }
    v
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
