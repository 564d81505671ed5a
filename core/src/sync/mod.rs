//! Anti-entropy: find and ship only the entries two replicas disagree on.
//!
//! An exchange is a drill-down in which every message is self-describing, so neither side keeps any
//! per-peer session:
//!
//! 1. `Root`: A sends its 32-byte root. Equal roots end the exchange (B answers with its root if asked).
//! 2. `Digests`: B, seeing a different root, sends its 16 child digests of the root. Whoever receives
//!    child digests of a node compares them with its own and, for every child that differs, sends its own
//!    child digests of *that* child: each message descends one level, and the two sides take turns.
//! 3. `Listing`: when the differing children are leaves, the receiver lists them instead: (key hash,
//!    version) of every entry, sorted by hash.
//! 4. The listing's receiver merges it with its own entries of those leaves: entries it has newer (or the
//!    peer lacks) are pushed at once as `Entries`; entries the peer has newer are asked for with `Fetch`,
//!    answered by `Entries`. Newest wins on every side.
//!
//! A lost message only prunes its branch; the next exchange finds whatever is still different. Answers
//! are produced lazily from a small fixed queue of [`Engine`] tasks, packed into datagrams no larger
//! than the configured maximum, and paced by a token bucket. A full queue refuses new work (counted);
//! the peer's next exchange asks again.
//!
//! The engine works over the [`Replica`] trait, so it reconciles any store: the crate's own
//! [`DataMap`](crate::data::DataMap) and member table, or a user's.

use crate::pace::Pacer;
use crate::tree::{Shape, TreeView, FANOUT};
use crate::wire::{
    fingerprint, push_summary, short_hash, DigestItem, Encoder, FetchHead, Fetches, GroupHead,
    Hash8, Header, Items, Kind, Listing, Message, RootMsg, Summaries, TreeId, BITMAP_BYTES,
    MAX_GROUP,
};
use crate::{Instant, Version};
use core::net::SocketAddr;
use heapless::{Deque, Vec};
use nodes::NodeSet;
use postcard::experimental::max_size::MaxSize;

mod nodes;

/// Key hashes per send or fetch task.
const HASHES_PER_TASK: usize = 16;

/// A replicated table the engine can reconcile.
///
/// The engine takes replicas as trait objects (`&dyn Replica`): its code exists once, however many
/// table types a node holds, which matters in a microcontroller's flash.
pub trait Replica {
    /// The table's digest tree, kept current on every change ([`crate::tree::Tree::view`]).
    fn tree(&self) -> TreeView<'_>;
    /// The entry with the smallest key hash in `from..=to`.
    fn first_in(&self, from: u64, to: u64) -> Option<(u64, Version)>;
    /// Appends the entry under `hash` to `enc`, as of `now`.
    fn encode_entry(&self, now: Instant, hash: u64, enc: &mut Encoder<'_>) -> Encoded;
    /// Checks a run of encoded entries without applying any: the number of entries, or why the run
    /// must be refused as a whole.
    fn check_entries(&self, bytes: &[u8]) -> Result<usize, EntryError>;
    /// Applies a run that [`Replica::check_entries`] accepted; newest wins per entry.
    fn merge_entries(&mut self, now: Instant, bytes: &[u8]) -> Merged;
    /// Whether no two entries ever share a version, as in key-value data where a version names one
    /// write. Listings of such a table carry 3- or 4-byte key hashes instead of 8: a rare shared
    /// short hash is then resolved by the next exchange, because the versions tell the keys apart.
    fn versions_unique(&self) -> bool {
        false
    }
}

/// What [`Replica::encode_entry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoded {
    /// The entry was appended.
    Written,
    /// There is no entry under that hash (any more).
    Missing,
    /// The entry does not fit in the room left.
    NoRoom,
}

/// Why a run of entries was refused. Nothing of the run was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EntryError {
    /// An entry does not decode.
    Malformed,
    /// A key longer than this replica accepts.
    KeyTooLong,
    /// A value longer than this replica accepts.
    ValueTooLong,
    /// A version implausibly far ahead of ours.
    VersionTooFar,
}

/// The outcome of merging a run of entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Entries that were newer and replaced or added to ours.
    pub applied: u32,
    /// Entries no newer than ours, ignored.
    pub stale: u32,
    /// New entries refused because the table is full.
    pub full: u32,
}

/// How one merged entry counts in [`Merged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Newer, and applied.
    Applied,
    /// Not newer, or refused as invalid.
    Stale,
    /// New, and refused because the table is full.
    Full,
}

impl Merged {
    /// Merges every entry of a checked run with `merge`, counting the outcomes.
    pub fn run<'a, E: serde::Deserialize<'a>>(
        bytes: &'a [u8],
        mut merge: impl FnMut(E) -> Tally,
    ) -> Merged {
        let mut out = Merged::default();
        let _ = crate::indexed::each_entry(
            bytes,
            |e: E| {
                let n = match merge(e) {
                    Tally::Applied => &mut out.applied,
                    Tally::Stale => &mut out.stale,
                    Tally::Full => &mut out.full,
                };
                *n = n.saturating_add(1);
                Ok::<(), ()>(())
            },
            (),
        );
        out
    }
}

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
    /// Not a sync message: it belongs to the failure detector.
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
}

/// Bytes of encoded fetch groups per fetch task: a dozen sparse groups, or four full ones.
const FETCH_BYTES: usize = 128;

/// Positions wanted in one listing group of a peer.
#[derive(Clone, Debug)]
struct Wanted {
    node: u32,
    part: Option<(Hash8, Hash8)>,
    count: u8,
    bits: [u8; BITMAP_BYTES],
}

impl Wanted {
    /// The group as a fetch encodes it, if any position is wanted.
    fn encode<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        if self.bits.iter().all(|&b| b == 0) {
            return None;
        }
        let head = FetchHead {
            node: self.node,
            part: self.part,
            count: self.count,
        };
        let n = postcard::to_slice(&head, buf).ok()?.len();
        let bits = self.bits.get(..usize::from(self.count).div_ceil(8))?;
        buf.get_mut(n..n.saturating_add(bits.len()))?
            .copy_from_slice(bits);
        buf.get(..n.saturating_add(bits.len()))
    }
}

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
    /// The salt of the next digests message.
    salt: u32,
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
        let finish = matches!(work, Work::Send { .. } | Work::Fetch { .. });
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
    pub fn start(&mut self, to: SocketAddr, tree: TreeId) -> bool {
        self.stats.started = self.stats.started.saturating_add(1);
        self.enqueue(to, tree, Work::Root { reply: true })
    }

    /// Handles one sync message from `from` about `replica`, and says what it showed. On error
    /// nothing changed.
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        replica: &mut dyn Replica,
    ) -> Result<Handled, SyncError> {
        let r = self.dispatch(now, from, msg, replica);
        if r.is_err() {
            self.stats.refused = self.stats.refused.saturating_add(1);
        }
        r
    }

    fn dispatch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        replica: &mut dyn Replica,
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
                    self.enqueue(from, m.tree, describe(0, 1, false));
                }
            }
            Message::Digests { tree, salt, items } => {
                handled.described = self.digests(from, tree, salt, items, replica)?;
            }
            Message::Listing { tree, groups } => {
                (handled.described, handled.behind) = self.listing(from, tree, groups, replica)?;
            }
            Message::Fetch { tree, groups } => self.fetch(from, tree, groups, replica)?,
            Message::Ping { .. }
            | Message::Ack { .. }
            | Message::PingReq { .. }
            | Message::Gossip { .. } => {
                return Err(SyncError::NotSync);
            }
            Message::Entries { bytes, .. } => {
                replica.check_entries(bytes).map_err(SyncError::Entry)?;
                let m = replica.merge_entries(now, bytes);
                self.count_merged(m);
                handled.applied = m.applied;
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
        items: Items<'_, DigestItem>,
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
        for (head, _) in groups.groups() {
            group_range(shape, head.node, head.part).ok_or(SyncError::BadListing)?;
        }
        let mut plan = Plan::new(from, tree);
        for (head, bits) in groups.groups() {
            let (lo, hi) = group_range(shape, head.node, head.part).unwrap_or((1, 0));
            let ours = OursFrom {
                replica,
                next: Some(lo),
                hi,
            };
            for (i, (h, _)) in ours.take(usize::from(head.count)).enumerate() {
                if bit(bits, i) && !plan.push(self, h) {
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
        tree: TreeId,
        groups: Listing<'_>,
        replica: &dyn Replica,
    ) -> Result<(bool, bool), SyncError> {
        let shape = replica.tree().shape();
        for (head, summaries) in groups.groups() {
            let level = shape.level(head.node).unwrap_or(0);
            group_range(shape, head.node, head.part)
                .filter(|&(lo, hi)| {
                    let (lo, hi) = (
                        short_hash(lo, level, head.width),
                        short_hash(hi, level, head.width),
                    );
                    sorted_within(summaries, lo, hi)
                })
                .ok_or(SyncError::BadListing)?;
        }
        let whole_root = |h: &GroupHead| h.node == 0 && h.part.is_none_or(|p| p.0 == [0; 8]);
        let described = groups.groups().any(|(h, _)| whole_root(&h));
        if described {
            self.stats.root_described = self.stats.root_described.saturating_add(1);
        }
        let mut plan = Plan::new(from, tree);
        for (head, summaries) in groups.groups() {
            if !plan.compare(self, replica, &head, summaries) {
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
        (!self.tasks.is_empty()).then(|| self.pacer.ready_at())
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
        if kind == Kind::Digests {
            self.salt = salt.wrapping_add(0x9E37_79B9);
            if !enc.push(&salt.to_le_bytes()) {
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
                    enc.push(&RootMsg {
                        tree,
                        depth: shape.depth(),
                        count: root.count,
                        root: root.hash,
                        reply: *reply,
                    })
                }
                Work::Describe {
                    nodes,
                    cursor,
                    list,
                } => write_describe(replica, &mut enc, salt, *list, nodes, cursor),
                Work::Send { hashes } => {
                    write_entries(now, replica, &mut enc, start, hashes, &mut self.stats)
                }
                Work::Fetch { groups } => enc.push_raw(groups),
            };
            if !done {
                break;
            }
            self.tasks.pop_front();
            finished = finished.saturating_add(1);
            if kind == Kind::Root || finished >= MAX_TASKS_PER_DATAGRAM {
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

/// The children of `item`'s node whose fingerprints differ from ours, as a bit mask.
fn differing(view: TreeView<'_>, salt: u32, item: &DigestItem) -> u16 {
    let ours = view.children(item.node).unwrap_or_default();
    let mut mask = 0u16;
    for (i, (a, b)) in ours.iter().zip(item.digests.iter()).enumerate() {
        if fingerprint(*a, salt) != *b {
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
fn dense(view: TreeView<'_>, salt: u32, items: Items<'_, DigestItem>) -> bool {
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
    summaries.into_iter().all(|(s, _)| {
        let ok = prev <= s && s <= hi;
        prev = s;
        ok
    })
}

/// Writes child fingerprints or listings for the pending nodes of a describe task; true when all
/// are done.
fn write_describe(
    replica: &dyn Replica,
    enc: &mut Encoder<'_>,
    salt: u32,
    list: bool,
    nodes: &mut NodeSet,
    cursor: &mut u64,
) -> bool {
    let tree = replica.tree();
    let shape = tree.shape();
    while let Some(node) = nodes.first() {
        if list || shape.is_leaf(node) {
            let Some((lo, hi)) = shape.range(node) else {
                nodes.remove(node);
                continue;
            };
            let from = (*cursor).max(lo);
            match write_group(replica, enc, node, from, (lo, hi)) {
                Some(next) => {
                    *cursor = next;
                    return false;
                }
                None => *cursor = 0,
            }
        } else {
            let Some(children) = tree.children(node) else {
                nodes.remove(node);
                continue;
            };
            let mut digests = [[0u8; 4]; FANOUT];
            for (d, c) in digests.iter_mut().zip(children.iter()) {
                *d = fingerprint(*c, salt);
            }
            if !enc.push(&DigestItem { node, digests }) {
                return false;
            }
        }
        nodes.remove(node);
    }
    true
}

/// Bytes of key hash per summary in a listing of `node`: full hashes unless versions tell keys apart;
/// otherwise 3 bytes for a node small enough that two of its keys rarely share them, else 4.
fn hash_width(replica: &dyn Replica, node: u32) -> u8 {
    let view = replica.tree();
    let level = view.shape().level(node).unwrap_or(0);
    let expected = view.count().checked_shr(4 * u32::from(level)).unwrap_or(0);
    match (replica.versions_unique(), expected <= LIST_WHOLE_MAX) {
        (false, _) => 8,
        (true, true) => 3,
        (true, false) => 4,
    }
}

/// Lists the entries of `node` (range `lo..=hi`) from key hash `from` on. Returns the hash to resume
/// from when the datagram or the group filled up first, `None` when the node is done.
fn write_group(
    replica: &dyn Replica,
    enc: &mut Encoder<'_>,
    node: u32,
    from: u64,
    (lo, hi): (u64, u64),
) -> Option<u64> {
    let level = replica.tree().shape().level(node).unwrap_or(0);
    let width = hash_width(replica, node);
    // The head goes in front once the summaries say whether the group is whole.
    let at = enc.len();
    if !enc.reserve(GroupHead::POSTCARD_MAX_SIZE) {
        return Some(from);
    }
    let (mut count, mut last) = (0u8, None);
    let mut ours = OursFrom {
        replica,
        next: Some(from),
        hi,
    };
    let mut next = ours.next();
    while let Some((hash, version)) = next {
        if usize::from(count) >= MAX_GROUP
            || !push_summary(enc, short_hash(hash, level, width), width, &version)
        {
            break;
        }
        count = count.saturating_add(1);
        last = Some(hash);
        next = ours.next();
    }
    let complete = next.is_none();
    let part = match (complete && from == lo, complete, last) {
        (true, _, _) => None,
        (false, true, _) => Some((from, hi)),
        (false, false, Some(l)) => Some((from, l)),
        (false, false, None) => {
            enc.truncate(at);
            return Some(from);
        }
    };
    let head = GroupHead {
        node,
        part: part.map(|(a, b)| (a.to_be_bytes(), b.to_be_bytes())),
        width,
        count,
    };
    enc.fill(at, GroupHead::POSTCARD_MAX_SIZE, &head);
    match (complete, last) {
        (true, _) => None,
        (false, l) => l.and_then(|l| l.checked_add(1)),
    }
}

/// Appends entries while they fit; true when all were written. An entry too large for even an empty
/// datagram is skipped and counted.
fn write_entries(
    now: Instant,
    replica: &dyn Replica,
    enc: &mut Encoder<'_>,
    start: usize,
    hashes: &mut Vec<u64, HASHES_PER_TASK>,
    stats: &mut SyncStats,
) -> bool {
    // From the back: the order of entries does not matter, and nothing shifts.
    while let Some(&h) = hashes.last() {
        match replica.encode_entry(now, h, enc) {
            Encoded::Written => stats.entries_sent = stats.entries_sent.saturating_add(1),
            Encoded::Missing => {}
            Encoded::NoRoom if enc.len() == start => {
                stats.dropped = stats.dropped.saturating_add(1)
            }
            Encoded::NoRoom => return false,
        }
        hashes.pop();
    }
    true
}

/// Entries to push and to fetch, gathered while comparing a listing: pushes in tasks of
/// [`HASHES_PER_TASK`], fetches as one bitmap per listing group.
struct Plan {
    to: SocketAddr,
    tree: TreeId,
    send: Vec<u64, HASHES_PER_TASK>,
    fetch: Vec<u8, FETCH_BYTES>,
    /// Whether anything was planned for fetching: the peer is ahead.
    pulled: bool,
}

impl Plan {
    fn new(to: SocketAddr, tree: TreeId) -> Self {
        Plan {
            to,
            tree,
            send: Vec::new(),
            fetch: Vec::new(),
            pulled: false,
        }
    }

    /// Plans to send `hash`; false once the engine's queue is full (the rest waits for the next
    /// exchange).
    fn push<const T: usize>(&mut self, engine: &mut Engine<T>, hash: u64) -> bool {
        let (to, tree) = (self.to, self.tree);
        if self.send.is_full()
            && !engine.enqueue(
                to,
                tree,
                Work::Send {
                    hashes: core::mem::take(&mut self.send),
                },
            )
        {
            return false;
        }
        let _ = self.send.push(hash);
        true
    }

    /// Merges the peer's summaries of one listing group with our entries of its range; false if
    /// the queue filled up. When a short hash repeats on either side (two keys share it), versions
    /// under equal short hashes are not compared: both entries travel, so nothing is missed.
    fn compare<const T: usize>(
        &mut self,
        engine: &mut Engine<T>,
        replica: &dyn Replica,
        head: &GroupHead,
        theirs: Summaries<'_>,
    ) -> bool {
        let shape = replica.tree().shape();
        let level = shape.level(head.node).unwrap_or(0);
        let Some((lo, hi)) = group_range(shape, head.node, head.part) else {
            return true;
        };
        let ours = || {
            OursFrom {
                replica,
                next: Some(lo),
                hi,
            }
            .map(move |(h, v)| (short_hash(h, level, head.width), h, v))
        };
        let collided = repeats(&mut theirs.map(|t| t.0)) || repeats(&mut ours().map(|o| o.0));
        let mut want = Wanted {
            node: head.node,
            part: head.part,
            count: head.count,
            bits: [0; BITMAP_BYTES],
        };
        let (mut ours, mut theirs) = (ours(), theirs.enumerate());
        let (mut o, mut t) = (ours.next(), theirs.next());
        while o.is_some() || t.is_some() {
            let (os, ts) = (o.map(|o| o.0), t.map(|t| t.1 .0));
            let (push, pull) = match (o, t) {
                (Some((_, _, v)), Some((_, (_, tv)))) if os == ts && !collided => (v > tv, v < tv),
                _ => match (os, ts) {
                    (Some(a), Some(b)) => (a <= b, b <= a),
                    (a, b) => (a.is_some(), b.is_some()),
                },
            };
            if push {
                if let Some((_, h, _)) = o {
                    if !self.push(engine, h) {
                        return false;
                    }
                }
            }
            if pull {
                if let Some((i, _)) = t {
                    self.pull(engine, &mut want, i);
                }
            }
            if push || os == ts {
                o = ours.next();
            }
            if pull || os == ts {
                t = theirs.next();
            }
        }
        let mut buf = [0u8; FETCH_BYTES];
        let Some(group) = want.encode(&mut buf) else {
            return true;
        };
        if self.fetch.len().saturating_add(group.len()) > FETCH_BYTES {
            let groups = core::mem::take(&mut self.fetch);
            if !engine.enqueue(self.to, self.tree, Work::Fetch { groups }) {
                return false;
            }
        }
        let _ = self.fetch.extend_from_slice(group);
        true
    }

    /// Marks position `i` of the group as wanted.
    fn pull<const T: usize>(
        &mut self,
        engine: &mut Engine<T>,
        want: &mut Wanted,
        i: usize,
    ) -> bool {
        engine.stats.wanted = engine.stats.wanted.saturating_add(1);
        self.pulled = true;
        if let Some(b) = want.bits.get_mut(i / 8) {
            *b |= 1 << (i % 8);
        }
        true
    }

    fn flush<const T: usize>(self, engine: &mut Engine<T>) {
        if !self.fetch.is_empty() {
            engine.enqueue(self.to, self.tree, Work::Fetch { groups: self.fetch });
        }
        if !self.send.is_empty() {
            engine.enqueue(self.to, self.tree, Work::Send { hashes: self.send });
        }
    }
}

/// Whether a value repeats in an ascending sequence.
fn repeats(sorted: &mut dyn Iterator<Item = u64>) -> bool {
    let mut prev = None;
    for s in sorted {
        if prev.replace(s) == Some(s) {
            return true;
        }
    }
    false
}

/// Our entries in a hash range, ascending.
struct OursFrom<'r> {
    replica: &'r dyn Replica,
    next: Option<u64>,
    hi: u64,
}

impl Iterator for OursFrom<'_> {
    type Item = (u64, Version);
    fn next(&mut self) -> Option<(u64, Version)> {
        let from = self.next.filter(|&n| n <= self.hi)?;
        let (h, v) = self.replica.first_in(from, self.hi)?;
        self.next = h.checked_add(1);
        Some((h, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataConfig, HeaplessData};
    use crate::tree::tree_size;
    use crate::wire::{decode, DEFAULT_MAX_DATAGRAM};
    use crate::{ClusterId, DigestKey, NodeId};
    use std::vec::Vec;

    type Map = HeaplessData<256, 16, 64, { tree_size(1) }>;
    const C: ClusterId = ClusterId(*b"test");

    fn map(id: u64, keys: core::ops::Range<u32>) -> Map {
        let mut m = Map::new_heapless(
            DataConfig::default(),
            NodeId(id),
            0,
            DigestKey::from_cluster(C),
        )
        .unwrap();
        for i in keys {
            m.set(Instant::ZERO, std::format!("key{i}").as_bytes(), &[7; 60])
                .unwrap();
        }
        m
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 1))
    }

    /// Drains every datagram `engine` will send at `now`.
    fn drain<const T: usize>(engine: &mut Engine<T>, m: &Map, now: Instant) -> Vec<Vec<u8>> {
        let header = Header::new(C, NodeId(1));
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(t) = engine.poll_transmit(now, &header, m, &mut buf) {
            assert!(t.len <= DEFAULT_MAX_DATAGRAM - crate::wire::TAG_RESERVE);
            out.push(buf[..t.len].to_vec());
        }
        out
    }

    fn deliver<const T: usize>(
        engine: &mut Engine<T>,
        m: &mut Map,
        from: u8,
        datagrams: &[Vec<u8>],
    ) {
        for d in datagrams {
            let (_, msg) = decode(d, C, DEFAULT_MAX_DATAGRAM).unwrap();
            engine.handle(Instant::ZERO, addr(from), &msg, m).unwrap();
        }
    }

    #[test]
    fn equal_replicas_exchange_one_root_each_way() {
        let (mut a, mut b) = (map(1, 0..50), map(1, 0..50));
        let (mut ea, mut eb): (Engine, Engine) = (
            Engine::new(SyncConfig::default()),
            Engine::new(SyncConfig::default()),
        );
        assert!(ea.start(addr(2), TreeId::DATA));
        let to_b = drain(&mut ea, &a, Instant::ZERO);
        deliver(&mut eb, &mut b, 1, &to_b);
        let to_a = drain(&mut eb, &b, Instant::ZERO);
        deliver(&mut ea, &mut a, 2, &to_a);
        assert_eq!((to_b.len(), to_a.len()), (1, 1));
        assert!(drain(&mut ea, &a, Instant::ZERO).is_empty());
        assert_eq!((ea.stats().in_sync, eb.stats().in_sync), (1, 1));
        assert!(to_b[0].len() + to_a[0].len() <= 160);
    }

    #[test]
    fn long_answers_are_paced_and_complete() {
        // B lacks everything: A's listings of 200 keys, then 200 entries of ~80 bytes, must go out
        // at most `burst_bytes` at once and then at the configured rate.
        let config = SyncConfig {
            burst_bytes: 4 * DEFAULT_MAX_DATAGRAM as u32,
            bytes_per_sec: 1000 * DEFAULT_MAX_DATAGRAM as u32,
            ..SyncConfig::default()
        };
        let (mut a, mut b) = (map(1, 0..200), map(2, 0..0));
        let (mut ea, mut eb): (Engine, Engine) = (Engine::new(config), Engine::new(config));
        ea.start(addr(2), TreeId::DATA);
        let mut now = Instant::from_millis(10);
        let mut bursts = Vec::new();
        for _ in 0..200 {
            let to_b = drain(&mut ea, &a, now);
            let to_a = drain(&mut eb, &b, now);
            let bytes = |d: &Vec<Vec<u8>>| d.iter().map(Vec::len).sum::<usize>();
            bursts.push(bytes(&to_b));
            bursts.push(bytes(&to_a));
            deliver(&mut eb, &mut b, 1, &to_b);
            deliver(&mut ea, &mut a, 2, &to_a);
            match [ea.poll_timeout(), eb.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
            {
                Some(t) => now = now.max(t).max(now + crate::Duration::from_millis(1)),
                None => break,
            }
        }
        // A datagram leaves while a full one's bytes are left, so a drain may pass the burst by
        // less than one datagram.
        let cap = 5 * DEFAULT_MAX_DATAGRAM;
        assert!(bursts.iter().all(|&n| n < cap), "{bursts:?}");
        assert!(bursts.iter().filter(|&&n| n > 0).count() > 10, "{bursts:?}");
        assert_eq!(a.root(), b.root());
        assert_eq!(b.len(), 200);
    }

    #[test]
    fn a_full_queue_refuses_work_and_counts_it() {
        let mut a = map(1, 0..10);
        let mut e: Engine<2> = Engine::new(SyncConfig::default());
        assert!(e.start(addr(2), TreeId::DATA));
        assert!(e.start(addr(3), TreeId::DATA));
        assert!(!e.start(addr(4), TreeId::DATA));
        assert_eq!(e.stats().dropped, 1);
        // Work refused for lack of room leaves the replica untouched.
        let root = a.root();
        let theirs = Message::Root(RootMsg {
            tree: TreeId::DATA,
            depth: 1,
            count: 0,
            root: [0; 32],
            reply: true,
        });
        e.handle(Instant::ZERO, addr(5), &theirs, &mut a).unwrap();
        assert_eq!(e.stats().dropped, 2);
        assert_eq!(a.root(), root);
    }

    #[test]
    fn fetching_positions_we_do_not_hold_sends_nothing_and_cancels_nothing() {
        let mut a = map(1, 0..10);
        let mut e: Engine = Engine::new(SyncConfig::default());
        let mut buf = [0u8; 64];
        let header = Header::new(C, NodeId(2));
        // Every position of a listing of 200 entries in a leaf that holds none of ours.
        let shape = a.tree().shape();
        let empty = (1..=16u32)
            .find(|&n| {
                let (lo, hi) = shape.range(n).unwrap();
                a.first_in(lo, hi).is_none()
            })
            .unwrap();
        let mut enc = Encoder::new(&mut buf, &header, Kind::Fetch).unwrap();
        enc.push(&TreeId::DATA);
        enc.push(&FetchHead {
            node: empty,
            part: None,
            count: 200,
        });
        enc.push_raw(&[0xff; 25]);
        let n = enc.finish();
        let (_, fetch) = decode(&buf[..n], C, DEFAULT_MAX_DATAGRAM).unwrap();
        e.handle(Instant::ZERO, addr(2), &fetch, &mut a).unwrap();
        assert!(e.start(addr(3), TreeId::DATA));
        let out = drain(&mut e, &a, Instant::ZERO);
        assert_eq!(
            out.len(),
            1,
            "the exchange with another peer must still start"
        );
        assert_eq!(e.stats().dropped, 0);
    }

    #[test]
    fn listings_of_unknown_nodes_are_refused() {
        let mut a = map(1, 0..100);
        let mut e: Engine = Engine::new(SyncConfig::default());
        let mut buf = [0u8; 64];
        let header = Header::new(C, NodeId(2));
        let mut enc = Encoder::new(&mut buf, &header, Kind::Listing).unwrap();
        enc.push(&TreeId::DATA);
        enc.push(&GroupHead {
            node: 17,
            part: None,
            width: 3,
            count: 0,
        });
        let n = enc.finish();
        let (_, listing) = decode(&buf[..n], C, DEFAULT_MAX_DATAGRAM).unwrap();
        assert_eq!(
            e.handle(Instant::ZERO, addr(2), &listing, &mut a),
            Err(SyncError::BadListing)
        );
        assert!(e.is_idle());
    }

    #[test]
    fn neighbouring_describes_share_a_task() {
        let shape = Shape::new(2).unwrap();
        let mut e: Engine<8> = Engine::new(SyncConfig::default());
        let (b, d) = (addr(2), TreeId::DATA);
        // The children of nodes 1 and 2 (level 2: 17..=32 and 33..=48) go in one task.
        assert!(e.enqueue(b, d, describe(17, 0xffff, false)));
        assert!(e.widen_tail(b, d, shape, (33, 0x00ff, false)));
        assert_eq!(e.tasks.len(), 1);
        let mut expected = NodeSet::new(17, 0xffff);
        expected.add(33, 0x00ff);
        assert!(matches!(
            e.tasks.back().map(|t| &t.work),
            Some(Work::Describe { nodes, .. }) if *nodes == expected
        ));
        // Not beyond 256 nodes, not another level, not another peer or table, nor listings.
        assert!(!e.widen_tail(b, d, shape, (17 + 256, 1, false)));
        assert!(!e.widen_tail(b, d, shape, (49, 1, true)));
        assert!(!e.widen_tail(b, d, shape, (1, 1, false)));
        assert!(!e.widen_tail(addr(3), d, shape, (33, 1, false)));
        assert!(!e.widen_tail(b, TreeId::MEMBERS, shape, (33, 1, false)));
        assert_eq!(e.stats().dropped, 0);
    }

    #[test]
    fn entries_found_go_out_before_the_drill_down_goes_deeper() {
        let a = map(1, 0..10);
        let mut e: Engine = Engine::new(SyncConfig::default());
        let (h, _) = a.first_in(0, u64::MAX).unwrap();
        assert!(e.start(addr(2), TreeId::DATA));
        let hashes = heapless::Vec::from_slice(&[h]).unwrap();
        assert!(e.enqueue(addr(2), TreeId::DATA, Work::Send { hashes }));
        let kinds: Vec<Kind> = drain(&mut e, &a, Instant::ZERO)
            .iter()
            .map(|d| decode(d, C, DEFAULT_MAX_DATAGRAM).unwrap().1.kind())
            .collect();
        assert_eq!(kinds, [Kind::Entries, Kind::Root]);
    }
}
