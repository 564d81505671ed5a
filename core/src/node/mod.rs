//! The node: membership, failure detection, dissemination, anti-entropy and data behind one sans-IO
//! state machine.
//!
//! Inputs are [`Node::handle_datagram`], [`Node::handle_timeout`] and the commands ([`Node::join`],
//! [`Node::leave`], [`Node::set`], [`Node::delete`]). After every input, drain the outputs:
//! [`Node::poll_transmit`] until `None` (each call writes one datagram into the caller's buffer),
//! [`Node::poll_event`] until `None`, then sleep until [`Node::poll_timeout`]. Calling
//! `handle_timeout` early is harmless. Time is always a parameter; the node never reads a clock.
//!
//! Failure detection is SWIM with Lifeguard: every probe interval one member, in a fixed pseudo-random
//! order, is pinged; without an ack within the probe timeout, `indirect_checks` others are asked to ping
//! it; without any ack by the end of the interval it is suspected. A suspicion lasts
//! `suspicion_mult * log10(n)` intervals once `indirect_checks` other members report their own probes of
//! it failed (forwarding a suspicion confirms nothing), up to
//! `suspicion_max_timeout_mult` times that without confirmation, then the member is declared dead.
//! Local health stretches this node's own intervals while it misses acks.
//!
//! Changes ride piggybacked on every probe and ack (freshest first, `retransmit_mult * log10(n)` times
//! each) and on a gossip push to `gossip_nodes` members every gossip interval while there is news. Every
//! sync interval the node compares its membership and data trees with one random member; while member
//! tables differ it compares again sooner (after a gossip interval, then twice that, and so on, until
//! a root matches).
//!
//! A join is an announcement and a feed: the newcomer's first datagram to its seed carries its own
//! record, and the seed answers with a sample of members (paced, and only to the address the
//! newcomer's record gives), so the newcomer's anti-entropy spreads over the cluster at once.

mod detector;
mod recv;
mod rumor;
mod run;
mod schedule;
mod storage;
mod suspect;
mod timing;
mod writes;

pub use crate::gossip::GossipStats;
pub use rumor::{Rumor, SuspectClaim};
#[cfg(feature = "alloc")]
pub use storage::AllocStorage;
pub use storage::{HeaplessStorage, Storage};

use crate::config::{Config, ConfigError};
use crate::data::{DataError, DataMap};
use crate::gossip::{retransmit_limit, Broadcasts};
use crate::members::{Change, MemberError, Members, Status};
use crate::pace::Pacer;
use crate::rng::Rng;
use crate::sync::{Engine, EntryError, Replica, SyncError};
use crate::wire::{Probe, ProbeRequest, Rejects, TreeId, WireError};
use crate::{Duration, Instant, NodeId};
use core::net::SocketAddr;
use detector::Detector;
use heapless::{Deque, Vec};
use schedule::SyncSchedule;

/// Something the application may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<K> {
    /// A member joined (or re-joined after leaving).
    MemberJoined(NodeId),
    /// A member changed its address or metadata, or was alive again after a suspicion.
    MemberUpdated(NodeId),
    /// A member is suspected of having failed.
    MemberSuspected(NodeId),
    /// A member was declared dead.
    MemberFailed(NodeId),
    /// A member left on purpose.
    MemberLeft(NodeId),
    /// A member restarted (a higher generation).
    MemberRestarted(NodeId),
    /// A key was written or deleted by another node.
    DataChanged(K),
    /// Another node at this address claims our id: two nodes were given one id (or one name, when
    /// ids come from names). Nothing stops either; the application should, if it is the newcomer.
    IdConflict(#[cfg_attr(feature = "defmt", defmt(Debug2Format))] SocketAddr),
    /// This many events were dropped because the queue was full (the application did not drain it
    /// after every input, or one datagram changed more than it holds). It comes after the events
    /// that were kept; whoever mirrors the node's state must re-read it whole.
    Lagged(u64),
}

/// What a node's timers are for: [`Node::poll_wake`] says which fires next, and
/// [`Node::deadline`] when each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Wake {
    /// Tombstones of deleted keys are due for collection.
    Tombstones,
    /// Records of dead and left members are due to be forgotten.
    MemberExpiry,
    /// A probe interval ends: the last probe is judged and the next member probed.
    Probe,
    /// The probe went unanswered: others are asked to probe the member indirectly.
    IndirectProbe,
    /// A suspicion times out: the member is declared dead.
    Suspicion,
    /// News is pushed to a few members.
    Gossip,
    /// An anti-entropy exchange starts.
    AntiEntropy,
    /// The sync engine: its pacing lets the next datagram out (served by [`Node::poll_transmit`],
    /// which a driver drains after every wake), or an exchange it started has gone quiet and starts
    /// again.
    Sync,
}

impl Wake {
    /// Every timer, in the order [`Node::handle_timeout`] serves them (the last by
    /// [`Node::poll_transmit`]).
    pub const ALL: [Wake; 8] = [
        Wake::Tombstones,
        Wake::MemberExpiry,
        Wake::Probe,
        Wake::IndirectProbe,
        Wake::Suspicion,
        Wake::Gossip,
        Wake::AntiEntropy,
        Wake::Sync,
    ];
}

/// Why a datagram was refused. The node's state is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RecvError {
    /// The datagram did not decode.
    Wire(WireError),
    /// A sync message was refused.
    Sync(SyncError),
    /// A piggybacked rumor was malformed or out of bounds.
    Rumor(EntryError),
}

/// Why a node could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is inconsistent.
    Config(ConfigError),
    /// The member table could not hold ourselves.
    Members(MemberError),
    /// The data map could not be built.
    Data(DataError),
    /// The member tree the storage provides is not `Config::members_depth` deep. Every node of a
    /// cluster must use the same depths, or their trees never compare.
    MemberTreeDepth {
        /// `Config::members_depth`.
        configured: u8,
        /// The depth of the storage's tree buffer.
        storage: u8,
    },
    /// The data tree the storage provides is not `Config::data_depth` deep.
    DataTreeDepth {
        /// `Config::data_depth`.
        configured: u8,
        /// The depth of the storage's tree buffer.
        storage: u8,
    },
}

/// Counters of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeStats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams rejected before decoding finished, by reason.
    pub rejects: Rejects,
    /// Datagrams refused after decoding (bad sync messages or rumors).
    pub refused: u64,
    /// Probes sent.
    pub probes: u64,
    /// Indirect probe requests sent.
    pub indirect_probes: u64,
    /// Probes that went unanswered.
    pub missed_acks: u64,
    /// Events dropped because the application did not drain them. Changes heard while the queue is
    /// full wait instead ([`NodeStats::changes_deferred`]), so this stays 0 when events are taken
    /// after every input.
    pub events_dropped: u64,
    /// Changes heard (rumors, entries, deaths due) that waited because the event queue was full:
    /// applied when they come again, or at the next timeout.
    pub changes_deferred: u64,
    /// Feeds sent: a sample of members for a newcomer that introduced itself.
    pub feeds: u64,
    /// Newcomers not fed because the pacing budget was spent (they ask again while alone).
    pub feeds_withheld: u64,
    /// Datagrams not queued because the outgoing queue was full (the driver did not drain
    /// [`Node::poll_transmit`] after an input): probes, acks, gossip.
    pub out_dropped: u64,
}

#[derive(Clone, Copy, Debug)]
enum Out {
    Ping {
        to: SocketAddr,
        probe: Probe,
    },
    Ack {
        to: SocketAddr,
        seq: u32,
    },
    PingReq {
        to: SocketAddr,
        request: ProbeRequest,
    },
    Gossip {
        to: SocketAddr,
    },
    /// A newcomer's first word reached us: a gossip datagram of our own record and a random
    /// sample of members, so it can talk to many members at once instead of only to us.
    Feed {
        to: SocketAddr,
        newcomer: NodeId,
    },
}

#[derive(Clone, Copy, Debug)]
struct Probing {
    target: NodeId,
    seq: u32,
    indirect_at: Option<Instant>,
    acked: bool,
}

#[derive(Clone, Copy, Debug)]
struct Relay {
    seq: u32,
    requester: SocketAddr,
    their_seq: u32,
    until: Instant,
}

type MembersOf<S> =
    Members<<S as Storage>::Meta, <S as Storage>::MemberTable, <S as Storage>::MemberTree>;
type DataOf<S> = DataMap<
    <S as Storage>::Key,
    <S as Storage>::Value,
    <S as Storage>::DataTable,
    <S as Storage>::DataTree,
>;

/// A tidings node. See the [module docs](self) for the run loop.
///
/// Besides its [`Storage`], a node's RAM is set by four capacities, whose defaults suit servers:
/// - `SYNC` (32): anti-entropy exchanges answered at once; more wait for the peer to ask again.
/// - `QUEUE` (128): probes, acks and gossip waiting to be sent, and events waiting to be taken; both
///   are drained after every input. A datagram whose changes would overflow the event queue has
///   the rest wait until they come again (see [`NodeStats::changes_deferred`]), so no event is
///   dropped; 128 holds the changes of any 1,200-byte datagram.
/// - `RUMORS` (128): recent changes waiting to be piggybacked; when full, the change closest to done
///   gives way (anti-entropy still delivers it).
/// - `SUSPECTS` (32): suspicions timed at once; a suspect beyond that is timed once a slot frees.
///
/// A microcontroller with a dozen members might use `Node<S, 4, 8, 32, 8>`.
pub struct Node<
    S: Storage,
    const SYNC: usize = 32,
    const QUEUE: usize = 128,
    const RUMORS: usize = 128,
    const SUSPECTS: usize = 32,
> {
    config: Config,
    members: MembersOf<S>,
    data: DataOf<S>,
    sync: Engine<SYNC>,
    gossip: Broadcasts<RUMORS>,
    out: Deque<Out, QUEUE>,
    events: Deque<Event<S::Key>, QUEUE>,
    rng: Rng,
    seeds: Vec<SocketAddr, 8>,
    /// The failure detector: probes, indirect probes, relays, suspicions, local health, leave.
    fd: Detector<QUEUE, SUSPECTS>,
    next_gossip: Instant,
    /// When anti-entropy next runs, and how soon after that while tables differ.
    sync_at: SyncSchedule,
    data_in_sync_at: Option<Instant>,
    /// Events dropped since the last [`Event::Lagged`].
    lagged: u64,
    /// Data changes outran the gossip queue since the last gossip round.
    data_outran: bool,
    /// Changes of the datagram being handled waited for room in the event queue.
    deferred: bool,
    /// Bounds feeds like the sync engine's pacing bounds its answers: half its burst and an eighth
    /// of its rate, each feed a full datagram (on `lan`, about 27 at once and 2,100 a second).
    feeds: Pacer,
    stats: NodeStats,
    /// The counter of the next encrypted datagram's nonce.
    #[cfg(feature = "encrypt")]
    sealed: u64,
}

impl<
        S: Storage,
        const SYNC: usize,
        const QUEUE: usize,
        const RUMORS: usize,
        const SUSPECTS: usize,
    > Node<S, SYNC, QUEUE, RUMORS, SUSPECTS>
{
    /// A node that knows only itself, listening at `addr`, with member metadata `meta`. `seed` feeds its
    /// random choices; give each node its own.
    pub fn new(
        config: Config,
        now: Instant,
        addr: SocketAddr,
        meta: &[u8],
        seed: u64,
    ) -> Result<Self, NodeError> {
        config.validate().map_err(NodeError::Config)?;
        let key = config.digest_key();
        let (table, tree) = S::members(&config);
        let members = Members::new(
            config.members,
            key,
            table,
            tree,
            config.node,
            addr,
            config.generation,
            meta,
        )
        .map_err(NodeError::Members)?;
        let (table, tree) = S::data(&config);
        let data = DataMap::new(
            config.data,
            config.node,
            config.generation,
            key,
            table,
            tree,
        )
        .map_err(NodeError::Data)?;
        let storage = members.tree().shape().depth();
        if storage != config.members_depth {
            return Err(NodeError::MemberTreeDepth {
                configured: config.members_depth,
                storage,
            });
        }
        let storage = data.tree().shape().depth();
        if storage != config.data_depth {
            return Err(NodeError::DataTreeDepth {
                configured: config.data_depth,
                storage,
            });
        }
        let mut rng = Rng::new(seed);
        let mut spread = |d: Duration| {
            now.saturating_add(Duration::from_millis(rng.below(d.as_millis().max(1))))
        };
        let (next_probe, next_gossip, next_sync) = (
            spread(config.swim.probe_interval),
            spread(config.swim.gossip_interval),
            spread(config.swim.sync_interval),
        );
        // Each node walks the same probe order starting just past itself, so while views agree every
        // member is probed by about one node per interval: a failure is noticed within one interval.
        let probe_cursor = members.hash_of(config.node);
        // A start drawn from the seed, apart from the generator so that the feature does not change
        // what else the node draws: two nodes that share an id and a generation but not a seed
        // never share a nonce. The top bit stays clear, so the counter never wraps.
        #[cfg(feature = "encrypt")]
        let sealed = crate::rng::mix(seed) >> 1;
        Ok(Node {
            sync: Engine::new(config.sync),
            config,
            members,
            data,
            gossip: Broadcasts::new(),
            out: Deque::new(),
            events: Deque::new(),
            rng,
            seeds: Vec::new(),
            fd: Detector::new(probe_cursor, next_probe),
            next_gossip,
            sync_at: SyncSchedule::new(next_sync),
            data_in_sync_at: None,
            lagged: 0,
            data_outran: false,
            deferred: false,
            feeds: Pacer::new(
                config.sync.burst_bytes / 2,
                config.sync.bytes_per_sec / 8,
                config.sync.max_datagram,
            ),
            stats: NodeStats::default(),
            #[cfg(feature = "encrypt")]
            sealed,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.node
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The member table.
    pub fn members(&self) -> &MembersOf<S> {
        &self.members
    }

    /// The key-value data.
    pub fn data(&self) -> &DataOf<S> {
        &self.data
    }

    /// The value under `key`, if live.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.data.get(key)
    }

    /// The counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The anti-entropy counters.
    pub fn sync_stats(&self) -> &crate::sync::SyncStats {
        self.sync.stats()
    }

    /// Changes still queued to be piggybacked; 0 once this node has passed on all its news.
    pub fn queued_news(&self) -> usize {
        self.gossip.len()
    }

    /// Lifeguard's local-health score (0 is healthy).
    pub fn health_score(&self) -> u32 {
        self.fd.awareness.score()
    }

    /// How often a change is sent: `retransmit_mult * ceil(log10(n + 1))`, and at least once to each
    /// of one gossip round's members after a ride on a probe, so a small cluster hears every change
    /// in the round after it is made.
    fn budget(&self) -> u8 {
        let swim = &self.config.swim;
        retransmit_limit(swim.retransmit_mult, self.members.live().max(2))
            .max(swim.gossip_nodes.saturating_add(1))
    }

    /// Queues a change for gossip; returns the table of a change that gave way in a full queue.
    pub(super) fn spread(&mut self, tree: TreeId, hash: u64) -> Option<TreeId> {
        let budget = self.budget();
        self.gossip.push(tree, hash, budget)
    }

    /// Queues a datagram to send. A full queue refuses it, counted in `out_dropped`; the caller
    /// learns whether it went in.
    fn queue(&mut self, o: Out) -> bool {
        let queued = self.out.push_back(o).is_ok();
        if !queued {
            self.stats.out_dropped = self.stats.out_dropped.saturating_add(1);
        }
        queued
    }

    /// Free slots in the event queue.
    pub(super) fn events_room(&self) -> usize {
        self.events.capacity().saturating_sub(self.events.len())
    }

    pub(super) fn event(&mut self, e: Event<S::Key>) {
        if self.events.push_back(e).is_err() {
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
            self.lagged = self.lagged.saturating_add(1);
        }
    }

    /// Joins the cluster through `seed` (any member's address). Seeds are remembered: a node that
    /// loses every member re-joins through them by itself.
    ///
    /// The first datagram to the seed carries our own record; the seed answers with a feed (its
    /// own record and a random sample of members, as many as fit one datagram) and gossips our
    /// arrival. With a feed in hand, the rest of the member table comes from anti-entropy with
    /// random members rather than all from the seed, so a thousand nodes joining through one seed
    /// at once agree in about two seconds instead of queueing behind it.
    pub fn join(&mut self, seed: SocketAddr) {
        if !self.seeds.contains(&seed) && self.seeds.push(seed).is_err() {
            self.seeds.remove(0);
            let _ = self.seeds.push(seed);
        }
        self.announce(seed);
    }

    /// Introduces us to `seed`: our own record in a gossip datagram (answered with a feed of
    /// members), and a membership exchange for the whole table.
    fn announce(&mut self, seed: SocketAddr) {
        let me = self.members.hash_of(self.config.node);
        self.spread(TreeId::MEMBERS, me);
        self.queue(Out::Gossip { to: seed });
        self.sync.start(seed, TreeId::MEMBERS);
    }

    /// Leaves the cluster gracefully: others will report this node as left, not failed. The news
    /// rides on pings to `gossip_nodes` members; [`Node::leave_acknowledged`] turns true when one
    /// of them answers, so a driver can wait for that before it stops.
    pub fn leave(&mut self, now: Instant) -> Result<(), MemberError> {
        self.members.leave(now)?;
        let me = self.members.hash_of(self.config.node);
        self.spread(TreeId::MEMBERS, me);
        self.fd.seq = self.fd.seq.wrapping_add(1);
        self.fd.leave = Some((self.fd.seq, false));
        for _ in 0..self.config.swim.gossip_nodes {
            if let Some((target, to)) = self.random_member(None) {
                let probe = Probe {
                    seq: self.fd.seq,
                    target,
                };
                self.queue(Out::Ping { to, probe });
            }
        }
        Ok(())
    }

    /// Whether a member answered a ping that carried our leave (so it holds us as left). Also true
    /// when there was nobody to tell.
    pub fn leave_acknowledged(&self) -> bool {
        match self.fd.leave {
            Some((_, acked)) => acked || self.members.live() <= 1,
            None => false,
        }
    }

    /// Replaces this node's metadata (at most `members.max_meta_len` bytes) and spreads it at a new
    /// version. On an error nothing changed.
    pub fn set_meta(&mut self, now: Instant, meta: &[u8]) -> Result<(), MemberError> {
        self.members.set_meta(now, meta)?;
        let me = self.members.hash_of(self.config.node);
        self.spread(TreeId::MEMBERS, me);
        Ok(())
    }

    /// The gossip queue's counters: changes queued, sent, and evicted by fresher ones before their
    /// retransmit budget was spent.
    pub fn gossip_stats(&self) -> &GossipStats {
        self.gossip.stats()
    }

    pub(super) fn on_change(&mut self, now: Instant, id: NodeId, change: Change) {
        if !matches!(change, Change::Suspected) {
            self.fd.suspicions.retain(|s| s.id != id);
        }
        if self
            .members
            .get(id)
            .is_some_and(|m| m.status() == Status::Suspect)
        {
            // However it became suspect (news, a restart into suspicion, a sync), it needs a timer.
            self.track_suspicion(now, id);
        }
        let event = match change {
            Change::Joined => Event::MemberJoined(id),
            Change::Updated => Event::MemberUpdated(id),
            Change::Restarted => Event::MemberRestarted(id),
            Change::Left => Event::MemberLeft(id),
            Change::Failed => Event::MemberFailed(id),
            Change::Suspected => Event::MemberSuspected(id),
            Change::Refuted => {
                self.fd
                    .awareness
                    .apply(1, self.config.swim.awareness_max_multiplier);
                return;
            }
            Change::Twin(addr) => Event::IdConflict(addr),
            Change::Forgotten => return,
        };
        self.event(event);
    }
}

#[cfg(test)]
mod tests;
