//! Anti-entropy: find and ship only the entries two replicas disagree on.
//!
//! An exchange is a drill-down in which every message is self-describing, so neither side keeps any
//! per-peer session:
//!
//! 1. `Root`: A sends its 32-byte root. Equal roots end the exchange (B answers with its root if asked).
//! 2. `Digests`: B, seeing a different root, describes the root's 16 children: which hold entries, and
//!    a 4-byte fingerprint of each one's digest under a salt the message carries. Whoever receives such
//!    a description compares it with its own children and, for every child that differs, describes
//!    *that* child's children: each message descends one level, and the two sides take turns. A new
//!    salt in every message means two subtrees that share a fingerprint by chance are told apart by
//!    the next exchange.
//! 3. `Listing`: when the differing children are leaves, the receiver lists them instead: a short key
//!    hash (the 2 to 4 bytes after the bits the node fixes) and the version of every entry, in hash
//!    order. When every one of many small children differs (a dense divergence), they are listed whole
//!    one level early, which skips the last level of fingerprints. Where versions do not tell keys
//!    apart (member tables), each summary also carries a check byte of the whole key hash under the
//!    message's salt, so two keys that share a short hash and a version are still told apart.
//! 4. The listing's receiver merges it with its own entries of those nodes: entries it has newer (or
//!    the peer lacks) are pushed at once as `Entries`; entries the peer has newer are asked for with
//!    `Fetch`, a bitmap of positions in the listing group, answered by `Entries`. Newest wins on every
//!    side. Two keys that share a short hash are both shipped, so nothing is missed.
//!
//! **A sketch first** (feature `sketch`, a table whose tree keeps one: [`crate::tree::Sketched`]).
//! A root says whether its sender decodes sketches; when it does and the roots differ by at most the
//! sketch's capacity in entry count, B answers step 1 with its sketch instead of step 2. A XORs it
//! with its own and decodes the exact key hashes that differ and, from their weights, which side is
//! newer: it pushes its newer entries at once and asks for B's with a `Want` of key hashes. Sixteen
//! differing keys among a million cost 395 bytes and two round trips, values included. When more
//! keys differ than the capacity, A describes its own root and the drill-down above takes over, one
//! message later. See [`crate::sketch`].
//!
//! A lost message only prunes its branch; the next exchange finds whatever is still different. Answers
//! are produced lazily from a small fixed queue of [`Engine`] tasks, packed into datagrams no larger
//! than the configured maximum, and paced by a token bucket. A full queue refuses new work (counted);
//! the peer's next exchange asks again.
//!
//! The engine works over the [`Replica`] trait, so it reconciles any store: the crate's own
//! [`DataMap`](crate::data::DataMap) and member table, or a user's.

use crate::pace::Pacer;
use crate::tree::{Shape, TreeView};
use crate::wire::{
    short_hash, DigestItem, DigestItems, Encoder, Fetches, GroupHead, Hash8, Header, Kind, Listing,
    Message, RootMsg, Summaries, TreeId,
};
use crate::Instant;
use core::net::SocketAddr;
use heapless::{Deque, Vec};
use nodes::NodeSet;
use plan::Plan;
use replica::OursFrom;
pub use replica::{Encoded, EntryError, Merged, Replica, Tally};
use watch::{Silence, Watch};
use write::{write_describe, write_entries};

mod nodes;
mod plan;
mod replica;
#[cfg(feature = "sketch")]
mod sketch;
#[cfg(all(test, feature = "sketch"))]
mod sketch_tests;
#[cfg(test)]
mod tests;
mod watch;
mod write;

/// Key hashes per send or fetch task.
const HASHES_PER_TASK: usize = 16;

/// Why a sync message was refused as a whole. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SyncError {
    /// The peer's tree has another depth: its configuration differs from ours.
    ShapeMismatch,
    /// A node that does not exist in our tree, or a leaf where an inner node belongs.
    BadNode,
    /// A listing of a node that is not a leaf, or summaries out of order or outside their group's range.
    BadListing,
    /// A run of entries was refused.
    Entry(EntryError),
    /// Not a message of an exchange: it belongs to the failure detector, or it carries entries
    /// given to [`Engine::handle_exchange`].
    NotSync,
}

/// Settings of the sync engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SyncConfig {
    /// Largest datagram sent, in bytes, authentication tag included.
    pub max_datagram: usize,
    /// Bytes that may leave back to back before pacing starts; at least one `max_datagram`.
    pub burst_bytes: u32,
    /// Sustained bytes per second of anti-entropy (0 = unpaced): how fast a large divergence may
    /// heal, and how much of the link it may take while it does.
    pub bytes_per_sec: u32,
}

impl SyncConfig {
    /// Servers: 20 MB/s (160 Mbit/s) sustained, bursts of 64 KiB.
    pub const fn server() -> Self {
        SyncConfig {
            max_datagram: crate::wire::DEFAULT_MAX_DATAGRAM,
            burst_bytes: 64 * 1024,
            bytes_per_sec: 20_000_000,
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self::server()
    }
}

/// Counters of the sync engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SyncStats {
    /// Exchanges this node started.
    pub started: u64,
    /// Exchanges started again because the peer went quiet for a few round trips (a message was
    /// lost).
    pub retried: u64,
    /// Root messages that matched ours.
    pub in_sync: u64,
    /// Root messages that did not.
    pub mismatched: u64,
    /// Answers describing our root back to us: a peer found its root different from ours (the
    /// initiator's side of `mismatched`).
    pub root_described: u64,
    /// Entries a comparison found newer on the peer, or only there: this node is behind.
    pub wanted: u64,
    /// Entries applied from peers.
    pub applied: u64,
    /// Entries received that were not newer.
    pub stale: u64,
    /// New entries refused for lack of room.
    pub full: u64,
    /// Entries sent.
    pub entries_sent: u64,
    /// Work refused because the task queue was full.
    pub dropped: u64,
    /// Messages refused with a [`SyncError`].
    pub refused: u64,
    /// Sketches sent in answer to a differing root.
    #[cfg(feature = "sketch")]
    pub sketches_sent: u64,
    /// Sketches received that decoded: the differing keys were known at once.
    #[cfg(feature = "sketch")]
    pub sketches_decoded: u64,
    /// Sketches received that did not decode (more keys differed than the capacity): the
    /// drill-down took over.
    #[cfg(feature = "sketch")]
    pub sketches_failed: u64,
}

/// What one sync message showed, as [`Engine::handle`] returns it: the caller decides from this when
/// to compare again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Handled {
    /// The peer's root equalled ours: the replicas were identical when it was sent.
    pub in_sync: bool,
    /// The peer's root differed from ours: a drill-down started.
    pub mismatched: bool,
    /// The peer described our root back to us: it found our replicas differ.
    pub described: bool,
    /// Entries are newer on the peer, or only there: this replica is behind and fetches them.
    pub behind: bool,
    /// Entries applied from the peer.
    pub applied: u32,
}

pub use crate::wire::Transmit;

#[derive(Clone, Debug)]
enum Work {
    /// Send our root.
    Root { reply: bool },
    /// Describe `nodes` (the children of up to sixteen neighbouring nodes): child fingerprints of
    /// inner nodes, listings of leaves, or listings of every node when `list` (from key hash
    /// `cursor` on, for the lowest pending node).
    Describe {
        nodes: NodeSet,
        cursor: u64,
        list: bool,
    },
    /// Send these entries.
    Send { hashes: Vec<u64, HASHES_PER_TASK> },
    /// Ask for entries by position in listing groups: encoded fetch groups.
    Fetch { groups: Vec<u8, FETCH_BYTES> },
    /// Send our sketch.
    #[cfg(feature = "sketch")]
    Sketch,
    /// Ask for entries by key hash.
    #[cfg(feature = "sketch")]
    Want { hashes: sketch::Wanted },
}

/// Bytes of encoded fetch groups per fetch task: a dozen sparse groups, or four full ones.
const FETCH_BYTES: usize = 128;

/// Whether bit `i` of a fetch bitmap is set.
fn bit(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

#[derive(Clone, Debug)]
struct Task {
    to: SocketAddr,
    tree: TreeId,
    work: Work,
}

/// The anti-entropy engine of one node: incoming sync messages in, paced datagrams out.
///
/// Call [`Engine::handle`] for each sync message, then drain [`Engine::poll_transmit`] until it returns
/// `None`, and wake at [`Engine::poll_timeout`]. `TASKS` bounds the work in flight.
pub struct Engine<const TASKS: usize = 32> {
    tasks: Deque<Task, TASKS>,
    pacer: Pacer,
    config: SyncConfig,
    stats: SyncStats,
    /// The salt of the next digests or listing message.
    salt: u32,
    watch: Watch,
}

impl<const TASKS: usize> Engine<TASKS> {
    /// An idle engine.
    pub fn new(config: SyncConfig) -> Self {
        Engine {
            tasks: Deque::new(),
            pacer: Pacer::new(
                config.burst_bytes,
                config.bytes_per_sec,
                config.max_datagram,
            ),
            config,
            stats: SyncStats::default(),
            salt: 0,
            watch: Watch::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Whether no work is queued.
    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    fn enqueue(&mut self, to: SocketAddr, tree: TreeId, work: Work) -> bool {
        // Sends and fetches go first: they finish what the drill-down found, while a describe fans
        // out sixteenfold. In a large divergence, serving the drill-down first would fill the queue
        // with work it must then refuse; this way the peer's next listings wait for our answers.
        let finish = matches!(work, Work::Send { .. } | Work::Fetch { .. }) || wants(&work);
        let task = Task { to, tree, work };
        let ok = if finish {
            self.tasks.push_front(task)
        } else {
            self.tasks.push_back(task)
        }
        .is_ok();
        if !ok {
            self.stats.dropped = self.stats.dropped.saturating_add(1);
        }
        ok
    }

    /// Adds the nodes of a describe to the queued describe at the tail when they lie within its
    /// span: in a large divergence, neighbouring nodes differ together, and one task then holds the
    /// children of sixteen.
    fn widen_tail(
        &mut self,
        to: SocketAddr,
        tree: TreeId,
        shape: Shape,
        (base, mask, list): (u32, u16, bool),
    ) -> bool {
        let Some(Task {
            to: t,
            tree: tr,
            work: Work::Describe { nodes, list: l, .. },
        }) = self.tasks.back_mut()
        else {
            return false;
        };
        let same_kind = shape.is_leaf(nodes.base()) == shape.is_leaf(base) && *l == list;
        *t == to && *tr == tree && same_kind && nodes.add(base, mask)
    }

    /// Starts an exchange of table `tree` with the peer at `to`. False if the queue is full.
    ///
    /// The engine watches the first exchange it starts: when the peer says nothing for four round
    /// trips (a message was lost), [`Engine::handle_timeout`] starts it again, twice at most.
    pub fn start(&mut self, to: SocketAddr, tree: TreeId) -> bool {
        self.stats.started = self.stats.started.saturating_add(1);
        self.watch.started(to, tree);
        self.enqueue(to, tree, Work::Root { reply: true })
    }

    /// Starts the watched exchange again if its peer has gone quiet. Call at
    /// [`Engine::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        // While work is queued, we are the ones to speak: not silence.
        if let Silence::Retry(to, tree) = self.watch.check(now, !self.tasks.is_empty()) {
            self.stats.retried = self.stats.retried.saturating_add(1);
            self.enqueue(to, tree, Work::Root { reply: true });
        }
    }

    /// Handles one sync message from `from` about `replica`, entries included, and says what it
    /// showed. On error nothing changed.
    pub fn handle<R: Replica>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        replica: &mut R,
    ) -> Result<Handled, SyncError> {
        let Message::Entries { bytes, .. } = *msg else {
            return self.handle_exchange(now, from, msg, replica);
        };
        if let Err(e) = replica.check_entries(bytes) {
            self.stats.refused = self.stats.refused.saturating_add(1);
            return Err(SyncError::Entry(e));
        }
        let m = replica.merge_entries(now, bytes);
        self.count_merged(m);
        Ok(Handled {
            applied: m.applied,
            ..Handled::default()
        })
    }

    /// Handles one sync message from `from` about `replica` except entries, which the caller merges
    /// itself (a node does, to report and spread each change) and counts with
    /// [`Engine::count_merged`]; entries are refused with [`SyncError::NotSync`]. On error nothing
    /// changed.
    pub fn handle_exchange(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        replica: &dyn Replica,
    ) -> Result<Handled, SyncError> {
        let r = self.dispatch(from, msg, replica);
        match (&r, msg) {
            (Err(_), _) => self.stats.refused = self.stats.refused.saturating_add(1),
            // Only a root can match ours.
            (Ok(h), Message::Root(m)) => self.watch.heard(now, from, h.in_sync.then_some(m.tree)),
            (Ok(_), _) => self.watch.heard(now, from, None),
        }
        r
    }

    fn dispatch(
        &mut self,
        from: SocketAddr,
        msg: &Message<'_>,
        replica: &dyn Replica,
    ) -> Result<Handled, SyncError> {
        let mut handled = Handled::default();
        let shape = replica.tree().shape();
        match *msg {
            Message::Root(m) => {
                if m.depth != shape.depth() {
                    return Err(SyncError::ShapeMismatch);
                }
                if m.root == replica.tree().root().hash {
                    self.stats.in_sync = self.stats.in_sync.saturating_add(1);
                    handled.in_sync = true;
                    if m.reply {
                        self.enqueue(from, m.tree, Work::Root { reply: false });
                    }
                } else {
                    self.stats.mismatched = self.stats.mismatched.saturating_add(1);
                    handled.mismatched = true;
                    #[cfg(feature = "sketch")]
                    if sketch::answers_with_sketch(&m, replica) {
                        self.enqueue(from, m.tree, Work::Sketch);
                        return Ok(handled);
                    }
                    self.enqueue(from, m.tree, describe(0, 1, false));
                }
            }
            Message::Digests { tree, salt, items } => {
                handled.described = self.digests(from, tree, salt, items, replica)?;
            }
            Message::Listing { tree, salt, groups } => {
                (handled.described, handled.behind) =
                    self.listing(from, (tree, salt), groups, replica)?;
            }
            Message::Fetch { tree, groups } => self.fetch(from, tree, groups, replica)?,
            #[cfg(feature = "sketch")]
            Message::Sketch { tree, syndromes } => {
                handled = self.sketch(from, tree, syndromes, replica)?;
            }
            #[cfg(feature = "sketch")]
            Message::Want { tree, hashes } => self.want(from, tree, hashes),
            Message::Ping { .. }
            | Message::Ack { .. }
            | Message::PingReq { .. }
            | Message::Gossip { .. }
            | Message::Entries { .. } => {
                return Err(SyncError::NotSync);
            }
        }
        Ok(handled)
    }

    /// A peer's fingerprints of some of our tree's nodes: asks about the children that differ.
    /// Whether the peer described our root (it found our replicas different).
    fn digests(
        &mut self,
        from: SocketAddr,
        tree: TreeId,
        salt: u32,
        items: DigestItems<'_>,
        replica: &dyn Replica,
    ) -> Result<bool, SyncError> {
        let view = replica.tree();
        let shape = view.shape();
        if items
            .into_iter()
            .any(|i| shape.first_child(i.node).is_none())
        {
            return Err(SyncError::BadNode);
        }
        let described = items.into_iter().any(|i| i.node == 0);
        if described {
            self.stats.root_described = self.stats.root_described.saturating_add(1);
        }
        let list = dense(view, salt, items);
        for item in items {
            let mask = differing(view, salt, &item);
            if let (Some(base), true) = (shape.first_child(item.node), mask != 0) {
                let work = (base, mask, list && !shape.is_leaf(base));
                if !self.widen_tail(from, tree, shape, work) {
                    self.enqueue(from, tree, describe(work.0, work.1, work.2));
                }
            }
        }
        Ok(described)
    }

    /// A peer's fetch: the entries it wants from our listings, by position.
    fn fetch(
        &mut self,
        from: SocketAddr,
        tree: TreeId,
        groups: Fetches<'_>,
        replica: &dyn Replica,
    ) -> Result<(), SyncError> {
        let shape = replica.tree().shape();
        for (head, _) in groups.into_iter() {
            group_range(shape, head.node, head.part).ok_or(SyncError::BadListing)?;
        }
        let mut plan = Plan::new(from, tree);
        for (head, bits) in groups.into_iter() {
            let (lo, hi) = group_range(shape, head.node, head.part).unwrap_or((1, 0));
            let ours = OursFrom {
                replica,
                next: Some(lo),
                hi,
            };
            // Positions name what we listed; if the range has changed since (writes meanwhile),
            // they may not, and the whole range goes instead: nothing wanted is missed.
            let moved = ours.clone().count() != usize::from(head.count);
            for (i, (h, _)) in ours.enumerate() {
                if (moved || bit(bits, i)) && !plan.push(self, h) {
                    plan.flush(self);
                    return Ok(());
                }
            }
        }
        plan.flush(self);
        Ok(())
    }

    /// A peer's listing of (short key hash, version) pairs: sends what we have newer and fetches
    /// what it has newer. Whether it described our whole root, and whether we are behind.
    fn listing(
        &mut self,
        from: SocketAddr,
        (tree, salt): (TreeId, u32),
        groups: Listing<'_>,
        replica: &dyn Replica,
    ) -> Result<(bool, bool), SyncError> {
        let shape = replica.tree().shape();
        for (head, summaries) in groups.into_iter() {
            let level = shape.level(head.node).unwrap_or(0);
            group_range(shape, head.node, head.part)
                .filter(|&(lo, hi)| {
                    let (lo, hi) = (
                        short_hash(lo, level, summaries.width()),
                        short_hash(hi, level, summaries.width()),
                    );
                    sorted_within(summaries, lo, hi)
                })
                .ok_or(SyncError::BadListing)?;
        }
        let whole_root = |h: &GroupHead| h.node == 0 && h.part.is_none_or(|p| p.0 == [0; 8]);
        let described = groups.into_iter().any(|(h, _)| whole_root(&h));
        if described {
            self.stats.root_described = self.stats.root_described.saturating_add(1);
        }
        let mut plan = Plan::new(from, tree);
        for (head, summaries) in groups.into_iter() {
            if !plan.compare(self, replica, (&head, salt), summaries) {
                break;
            }
        }
        let behind = plan.pulled;
        plan.flush(self);
        Ok((described, behind))
    }

    /// Counts entries of an exchange that the caller merged itself (to report and spread each
    /// change), so [`SyncStats`] covers every entry received either way.
    pub fn count_merged(&mut self, m: Merged) {
        self.stats.applied = self.stats.applied.saturating_add(u64::from(m.applied));
        self.stats.stale = self.stats.stale.saturating_add(u64::from(m.stale));
        self.stats.full = self.stats.full.saturating_add(u64::from(m.full));
    }

    /// The table of the next datagram, so a node with several tables knows which to pass to
    /// [`Engine::poll_transmit`].
    pub fn next_tree(&self) -> Option<TreeId> {
        self.tasks.front().map(|t| t.tree)
    }

    /// When the engine next wants [`Engine::poll_transmit`] called: `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pacing = (!self.tasks.is_empty()).then(|| self.pacer.ready_at());
        match (pacing, self.watch.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes the next datagram into `buf`, if there is work and pacing allows. `replica` must be the
    /// table named by [`Engine::next_tree`].
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        header: &Header,
        replica: &dyn Replica,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        loop {
            let front = self.tasks.front()?;
            let (to, tree, kind) = (
                front.to,
                front.tree,
                kind_of(&front.work, replica.tree().shape()),
            );
            if !self.pacer.ready(now) {
                return None;
            }
            let limit = crate::wire::message_limit(self.config.max_datagram, buf.len());
            match self.write(
                now,
                header,
                replica,
                buf.get_mut(..limit)?,
                (to, tree, kind),
            ) {
                Written::Datagram(len) => {
                    self.pacer.take(len);
                    if kind == Kind::Root {
                        self.watch.sent_root(now, to);
                    }
                    return Some(Transmit { to, len, kind });
                }
                // The tasks written had nothing left to send (entries since collected).
                Written::Nothing => {}
                Written::Stuck => {
                    // Even an empty datagram has no room for the front task: drop it rather than spin.
                    self.tasks.pop_front();
                    self.stats.dropped = self.stats.dropped.saturating_add(1);
                }
            }
        }
    }

    fn write(
        &mut self,
        now: Instant,
        header: &Header,
        replica: &dyn Replica,
        buf: &mut [u8],
        key: (SocketAddr, TreeId, Kind),
    ) -> Written {
        let (to, tree, kind) = key;
        let Ok(mut enc) = Encoder::new(buf, header, kind) else {
            return Written::Stuck;
        };
        if kind != Kind::Root && !enc.push(&tree) {
            return Written::Stuck;
        }
        let salt = self.salt;
        if matches!(kind, Kind::Digests | Kind::Listing) {
            self.salt = salt.wrapping_add(0x9E37_79B9);
            if !enc.push_raw(&salt.to_le_bytes()) {
                return Written::Stuck;
            }
        }
        let start = enc.len();
        let mut finished = 0usize;
        let shape = replica.tree().shape();
        while let Some(task) = self.tasks.front_mut() {
            if task.to != to || task.tree != tree || kind_of(&task.work, shape) != kind {
                break;
            }
            let done = match &mut task.work {
                Work::Root { reply } => {
                    let root = replica.tree().root();
                    RootMsg {
                        tree,
                        depth: shape.depth(),
                        count: root.count,
                        root: root.hash,
                        reply: *reply,
                        sketch: cfg!(feature = "sketch") && !replica.tree().sketch().is_empty(),
                    }
                    .push(&mut enc)
                }
                Work::Describe {
                    nodes,
                    cursor,
                    list,
                } => write_describe(replica, &mut enc, (salt, start), *list, nodes, cursor),
                Work::Send { hashes } => {
                    write_entries(now, replica, &mut enc, start, hashes, &mut self.stats)
                }
                Work::Fetch { groups } => enc.push_raw(groups),
                #[cfg(feature = "sketch")]
                Work::Sketch => {
                    let ok = sketch::write_sketch(replica, &mut enc);
                    if ok {
                        self.stats.sketches_sent = self.stats.sketches_sent.saturating_add(1);
                    }
                    ok
                }
                #[cfg(feature = "sketch")]
                Work::Want { hashes } => hashes.iter().all(|h| enc.push_raw(&h.to_be_bytes())),
            };
            if !done {
                break;
            }
            self.tasks.pop_front();
            finished = finished.saturating_add(1);
            if matches!(kind, Kind::Root)
                || one_per_datagram(kind)
                || finished >= MAX_TASKS_PER_DATAGRAM
            {
                break;
            }
        }
        match (enc.len() == start, finished) {
            (false, _) => Written::Datagram(enc.finish()),
            (true, 0) => Written::Stuck,
            (true, _) => Written::Nothing,
        }
    }
}

/// What one attempt to write a datagram did.
enum Written {
    /// A datagram of this length is ready.
    Datagram(usize),
    /// Tasks completed without anything to send.
    Nothing,
    /// The front task cannot fit even an empty datagram.
    Stuck,
}

/// Tasks packed into one datagram at most, so a datagram never holds more items or groups than the
/// decoder accepts (each task adds at most one per node of its set).
const MAX_TASKS_PER_DATAGRAM: usize = crate::wire::MAX_ITEMS / NodeSet::SPAN as usize;

fn describe(base: u32, mask: u16, list: bool) -> Work {
    Work::Describe {
        nodes: NodeSet::new(base, mask),
        cursor: 0,
        list,
    }
}

/// The children of `item`'s node that differ from ours, as a bit mask.
fn differing(view: TreeView<'_>, salt: u32, item: &DigestItem) -> u16 {
    let ours = DigestItem::new(
        item.node,
        &view.children(item.node).unwrap_or_default(),
        salt,
    );
    let mut mask = ours.present ^ item.present;
    for (i, (a, b)) in ours.digests.iter().zip(item.digests.iter()).enumerate() {
        if a != b {
            mask |= 1 << i;
        }
    }
    mask
}

/// Children compared before a divergence counts as dense at their scale.
const DENSE_MIN_CHILDREN: u32 = 64;
/// Entries expected below a node for it to be listed whole rather than described.
const LIST_WHOLE_MAX: u64 = 64;

/// Whether the differing children of these items are better listed whole than described: every one
/// of at least [`DENSE_MIN_CHILDREN`] small inner children differs. The chance that a child of `n`
/// entries differs is `1 - (1 - p)^n` for a share `p` of differing entries, so only a dense
/// divergence (a quarter of the entries or more, as after a long partition or a bulk rewrite) makes
/// them all differ; a sparse one still drills down to the few leaves that hold it.
fn dense(view: TreeView<'_>, salt: u32, items: DigestItems<'_>) -> bool {
    let shape = view.shape();
    let (mut compared, mut differ) = (0u32, 0u32);
    for item in items {
        let Some(child) = shape.first_child(item.node) else {
            continue;
        };
        let level = shape.level(child).unwrap_or(0);
        let per_child = view.count().checked_shr(4 * u32::from(level)).unwrap_or(0);
        if shape.is_leaf(child) || per_child > LIST_WHOLE_MAX {
            return false;
        }
        compared = compared.saturating_add(16);
        differ = differ.saturating_add(differing(view, salt, &item).count_ones());
    }
    compared >= DENSE_MIN_CHILDREN && differ == compared
}

fn kind_of(work: &Work, shape: Shape) -> Kind {
    match work {
        Work::Root { .. } => Kind::Root,
        Work::Describe { nodes, list, .. } if *list || shape.is_leaf(nodes.base()) => Kind::Listing,
        Work::Describe { .. } => Kind::Digests,
        Work::Send { .. } => Kind::Entries,
        Work::Fetch { .. } => Kind::Fetch,
        #[cfg(feature = "sketch")]
        Work::Sketch => Kind::Sketch,
        #[cfg(feature = "sketch")]
        Work::Want { .. } => Kind::Want,
    }
}

/// Whether a task asks for entries by key hash.
fn wants(work: &Work) -> bool {
    #[cfg(feature = "sketch")]
    return matches!(work, Work::Want { .. });
    #[cfg(not(feature = "sketch"))]
    {
        let _ = work;
        false
    }
}

/// Kinds of which a datagram carries one task: a sketch, or a want (whose hashes must all fit, so
/// two never share a datagram).
fn one_per_datagram(kind: Kind) -> bool {
    #[cfg(feature = "sketch")]
    return matches!(kind, Kind::Sketch | Kind::Want);
    #[cfg(not(feature = "sketch"))]
    {
        let _ = kind;
        false
    }
}

/// The key-hash range a listing or fetch group covers, if it is a node of ours and its part lies
/// inside it.
fn group_range(shape: Shape, node: u32, part: Option<(Hash8, Hash8)>) -> Option<(u64, u64)> {
    let (lo, hi) = shape.range(node)?;
    match part {
        None => Some((lo, hi)),
        Some((a, b)) => {
            let (a, b) = (u64::from_be_bytes(a), u64::from_be_bytes(b));
            (lo <= a && a <= b && b <= hi).then_some((a, b))
        }
    }
}

/// Whether short hashes ascend (equal ones allowed: they are collisions) within `lo..=hi`.
fn sorted_within(summaries: Summaries<'_>, lo: u64, hi: u64) -> bool {
    let mut prev = lo;
    summaries.into_iter().all(|s| {
        let ok = prev <= s.short && s.short <= hi;
        prev = s.short;
        ok
    })
}
