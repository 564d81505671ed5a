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
    DigestItem, Encoder, GroupHead, Hash8, Header, Items, Kind, Listing, Message, RootMsg, Summary,
    TreeId,
};
use crate::{Instant, Version};
use core::net::SocketAddr;
use heapless::{Deque, Vec};

/// Key hashes per send or fetch task.
const HASHES_PER_TASK: usize = 16;

/// A replicated table the engine can reconcile.
///
/// The engine takes replicas as trait objects (`&dyn Replica`): its code exists once, however many
/// table types a node holds, which matters in a microcontroller's flash.
pub trait Replica {
    /// The table's digest tree, kept current on every change ([`crate::tree::Tree::view`]).
    fn tree(&self) -> TreeView<'_>;
    /// The version of the entry under `hash`.
    fn version_of(&self, hash: u64) -> Option<Version>;
    /// The entry with the smallest key hash in `from..=to`.
    fn first_in(&self, from: u64, to: u64) -> Option<(u64, Version)>;
    /// Appends the entry under `hash` to `enc`, as of `now`.
    fn encode_entry(&self, now: Instant, hash: u64, enc: &mut Encoder<'_>) -> Encoded;
    /// Checks a run of encoded entries without applying any: the number of entries, or why the run
    /// must be refused as a whole.
    fn check_entries(&self, bytes: &[u8]) -> Result<usize, EntryError>;
    /// Applies a run that [`Replica::check_entries`] accepted; newest wins per entry.
    fn merge_entries(&mut self, now: Instant, bytes: &[u8]) -> Merged;
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
    /// Describe nodes `base + i` for each bit `i` of `mask` (the children of up to four neighbouring
    /// nodes): child digests of inner nodes, listings of
    /// leaves (from key hash `cursor` on, for the lowest pending leaf).
    Describe { base: u32, mask: u64, cursor: u64 },
    /// Send these entries.
    Send { hashes: Vec<u64, HASHES_PER_TASK> },
    /// Ask for these entries.
    Fetch { hashes: Vec<u64, HASHES_PER_TASK> },
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

    /// Adds the nodes of a describe to the queued describe at the tail when they lie within its 64
    /// nodes: in a large divergence, neighbouring nodes differ together, and one task then holds the
    /// children of four.
    fn widen_tail(
        &mut self,
        to: SocketAddr,
        tree: TreeId,
        shape: Shape,
        base: u32,
        mask: u64,
    ) -> bool {
        let Some(Task {
            to: t,
            tree: tr,
            work:
                Work::Describe {
                    base: tail,
                    mask: m,
                    ..
                },
        }) = self.tasks.back_mut()
        else {
            return false;
        };
        let Some(shift) = base.checked_sub(*tail).filter(|&s| s < u64::BITS) else {
            return false;
        };
        let same_kind = shape.is_leaf(*tail) == shape.is_leaf(base);
        if *t != to || *tr != tree || !same_kind || mask.leading_zeros() < shift {
            return false;
        }
        *m |= mask << shift;
        true
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
                    self.enqueue(from, m.tree, describe(0, 1));
                }
            }
            Message::Digests { tree, items } => {
                handled.described = self.digests(from, tree, items, replica)?;
            }
            Message::Listing { tree, groups } => {
                (handled.described, handled.behind) = self.listing(from, tree, groups, replica)?;
            }
            Message::Fetch { tree, hashes } => {
                let mut plan = Plan::new(from, tree);
                for h in hashes.into_iter().map(u64::from_be_bytes) {
                    if replica.version_of(h).is_some() && !plan.push(self, h) {
                        break;
                    }
                }
                plan.flush(self);
            }
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

    /// A peer's digests of some of our tree's nodes: asks about the children that differ.
    /// Whether the peer described our root (it found our replicas different).
    fn digests(
        &mut self,
        from: SocketAddr,
        tree: TreeId,
        items: Items<'_, DigestItem>,
        replica: &dyn Replica,
    ) -> Result<bool, SyncError> {
        let shape = replica.tree().shape();
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
        for item in items {
            let ours = replica.tree().children(item.node).unwrap_or_default();
            let mut mask = 0u16;
            for (i, (a, b)) in ours.iter().zip(item.digests.iter()).enumerate() {
                if a.to_be_bytes() != *b {
                    mask |= 1 << i;
                }
            }
            if let (Some(base), true) = (shape.first_child(item.node), mask != 0) {
                let mask = u64::from(mask);
                if !self.widen_tail(from, tree, shape, base, mask) {
                    self.enqueue(from, tree, describe(base, mask));
                }
            }
        }
        Ok(described)
    }

    /// A peer's listing of (key hash, version) pairs: sends what we have newer and fetches what
    /// it has newer. Whether it described our whole root, and whether we are behind.
    fn listing(
        &mut self,
        from: SocketAddr,
        tree: TreeId,
        groups: Listing<'_>,
        replica: &dyn Replica,
    ) -> Result<(bool, bool), SyncError> {
        let shape = replica.tree().shape();
        for (head, summaries) in groups.groups() {
            group_range(shape, &head)
                .filter(|&(lo, hi)| sorted_within(summaries, lo, hi))
                .ok_or(SyncError::BadListing)?;
        }
        let whole_root = |h: &GroupHead| h.node == 0 && h.part.is_none_or(|p| p.0 == [0; 8]);
        let described = groups.groups().any(|(h, _)| whole_root(&h));
        if described {
            self.stats.root_described = self.stats.root_described.saturating_add(1);
        }
        let mut plan = Plan::new(from, tree);
        for (head, summaries) in groups.groups() {
            let (lo, hi) = group_range(shape, &head).unwrap_or((1, 0));
            if !plan.compare(self, replica, lo, hi, summaries) {
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
                Work::Describe { base, mask, cursor } => {
                    write_describe(replica, &mut enc, *base, mask, cursor)
                }
                Work::Send { hashes } => {
                    write_entries(now, replica, &mut enc, start, hashes, &mut self.stats)
                }
                Work::Fetch { hashes } => {
                    let mut done = true;
                    while let Some(&h) = hashes.first() {
                        if !enc.push(&h.to_be_bytes()) {
                            done = false;
                            break;
                        }
                        hashes.remove(0);
                    }
                    done
                }
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
/// decoder accepts (each task adds at most 64 items or groups).
const MAX_TASKS_PER_DATAGRAM: usize = crate::wire::MAX_ITEMS / u64::BITS as usize;

fn describe(base: u32, mask: u64) -> Work {
    Work::Describe {
        base,
        mask,
        cursor: 0,
    }
}

fn kind_of(work: &Work, shape: Shape) -> Kind {
    match work {
        Work::Root { .. } => Kind::Root,
        Work::Describe { base, .. } if shape.is_leaf(*base) => Kind::Listing,
        Work::Describe { .. } => Kind::Digests,
        Work::Send { .. } => Kind::Entries,
        Work::Fetch { .. } => Kind::Fetch,
    }
}

/// The key-hash range a listing group covers, if it is a node of ours and its part lies inside it.
fn group_range(shape: Shape, head: &GroupHead) -> Option<(u64, u64)> {
    if !shape.is_leaf(head.node) {
        return None;
    }
    let (lo, hi) = shape.range(head.node)?;
    match head.part {
        None => Some((lo, hi)),
        Some((a, b)) => {
            let (a, b) = (u64::from_be_bytes(a), u64::from_be_bytes(b));
            (lo <= a && a <= b && b <= hi).then_some((a, b))
        }
    }
}

fn sorted_within(summaries: crate::wire::Items<'_, Summary>, lo: u64, hi: u64) -> bool {
    let mut prev: Option<u64> = None;
    summaries.into_iter().all(|s| {
        let h = u64::from_be_bytes(s.hash);
        let ok = lo <= h && h <= hi && prev.is_none_or(|p| p < h);
        prev = Some(h);
        ok
    })
}

/// Writes child digests or listings for the pending nodes of a describe task; true when all are done.
fn write_describe(
    replica: &dyn Replica,
    enc: &mut Encoder<'_>,
    base: u32,
    mask: &mut u64,
    cursor: &mut u64,
) -> bool {
    let tree = replica.tree();
    let shape = tree.shape();
    while *mask != 0 {
        let i = mask.trailing_zeros();
        let node = base.saturating_add(i);
        if shape.is_leaf(node) {
            let Some((lo, hi)) = shape.range(node) else {
                *mask &= !(1 << i);
                continue;
            };
            let from = (*cursor).max(lo);
            match write_group(replica, enc, node, from, lo, hi) {
                Some(next) => {
                    *cursor = next;
                    return false;
                }
                None => *cursor = 0,
            }
        } else {
            let Some(children) = tree.children(node) else {
                *mask &= !(1 << i);
                continue;
            };
            let mut digests = [[0u8; 8]; FANOUT];
            for (d, c) in digests.iter_mut().zip(children.iter()) {
                *d = c.to_be_bytes();
            }
            if !enc.push(&DigestItem { node, digests }) {
                return false;
            }
        }
        *mask &= !(1 << i);
    }
    true
}

/// Lists the entries of leaf `node` from key hash `from` on. Returns the hash to resume from when the
/// datagram filled up first, `None` when the leaf is done.
fn write_group(
    replica: &dyn Replica,
    enc: &mut Encoder<'_>,
    node: u32,
    from: u64,
    lo: u64,
    hi: u64,
) -> Option<u64> {
    // First pass: how many summaries fit after a head that may need a part range.
    let part_head = GroupHead {
        node,
        part: Some(([0; 8], [0; 8])),
        count: [0; 2],
    };
    let head_size = postcard::experimental::serialized_size(&part_head).unwrap_or(usize::MAX);
    let Some(mut room) = enc.remaining().checked_sub(head_size) else {
        return Some(from);
    };
    let (mut count, mut last, mut next) = (0u16, None, Some(from).filter(|&f| f <= hi));
    while let Some(h) = next {
        let Some((hash, version)) = replica.first_in(h, hi) else {
            next = None;
            break;
        };
        let size = postcard::experimental::serialized_size(&Summary {
            hash: [0; 8],
            version,
        })
        .unwrap_or(usize::MAX);
        if size > room || count == u16::MAX {
            break;
        }
        room = room.saturating_sub(size);
        count = count.saturating_add(1);
        last = Some(hash);
        next = hash.checked_add(1).filter(|&n| n <= hi);
    }
    let complete = next.is_none();
    if count == 0 && !complete {
        return Some(from);
    }
    let part: Option<(Hash8, Hash8)> = if complete && from == lo {
        None
    } else {
        let end = if complete { hi } else { last.unwrap_or(from) };
        Some((from.to_be_bytes(), end.to_be_bytes()))
    };
    let head = GroupHead {
        node,
        part,
        count: count.to_le_bytes(),
    };
    if !enc.push(&head) {
        return Some(from);
    }
    let count_at = enc.len().saturating_sub(2);
    let (mut at, mut written) = (Some(from), 0u16);
    while let Some(h) = at.filter(|&h| h <= hi && written < count) {
        let Some((hash, version)) = replica.first_in(h, hi) else {
            break;
        };
        let summary = Summary {
            hash: hash.to_be_bytes(),
            version,
        };
        if !enc.push(&summary) {
            break;
        }
        written = written.saturating_add(1);
        at = hash.checked_add(1);
    }
    if written != count {
        // The replica changed between the passes: the group says what was really written.
        enc.patch(count_at, &written.to_le_bytes());
    }
    if complete {
        None
    } else {
        last.and_then(|l| l.checked_add(1))
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
    while let Some(&h) = hashes.first() {
        match replica.encode_entry(now, h, enc) {
            Encoded::Written => stats.entries_sent = stats.entries_sent.saturating_add(1),
            Encoded::Missing => {}
            Encoded::NoRoom if enc.len() == start => {
                stats.dropped = stats.dropped.saturating_add(1)
            }
            Encoded::NoRoom => return false,
        }
        hashes.remove(0);
    }
    true
}

/// Entries to push and to fetch, gathered while comparing a listing, queued in tasks of
/// [`HASHES_PER_TASK`].
struct Plan {
    to: SocketAddr,
    tree: TreeId,
    send: Vec<u64, HASHES_PER_TASK>,
    fetch: Vec<u64, HASHES_PER_TASK>,
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
        add(
            engine,
            (self.to, self.tree),
            &mut self.send,
            hash,
            |hashes| Work::Send { hashes },
        )
    }

    /// Plans to fetch `hash`; false once the engine's queue is full.
    fn pull<const T: usize>(&mut self, engine: &mut Engine<T>, hash: u64) -> bool {
        engine.stats.wanted = engine.stats.wanted.saturating_add(1);
        self.pulled = true;
        add(
            engine,
            (self.to, self.tree),
            &mut self.fetch,
            hash,
            |hashes| Work::Fetch { hashes },
        )
    }

    /// Merges the peer's sorted summaries of `lo..=hi` with ours; false if the queue filled up.
    fn compare<const T: usize>(
        &mut self,
        engine: &mut Engine<T>,
        replica: &dyn Replica,
        lo: u64,
        hi: u64,
        theirs: crate::wire::Items<'_, Summary>,
    ) -> bool {
        let mut ours = OursFrom {
            replica,
            next: Some(lo),
            hi,
        };
        let mut mine = ours.next();
        for s in theirs {
            let h = u64::from_be_bytes(s.hash);
            while let Some((mh, _)) = mine.filter(|&(mh, _)| mh < h) {
                if !self.push(engine, mh) {
                    return false;
                }
                mine = ours.next();
            }
            let ok = match mine {
                Some((mh, mv)) if mh == h => {
                    mine = ours.next();
                    match mv.cmp(&s.version) {
                        core::cmp::Ordering::Greater => self.push(engine, h),
                        core::cmp::Ordering::Less => self.pull(engine, h),
                        core::cmp::Ordering::Equal => true,
                    }
                }
                _ => self.pull(engine, h),
            };
            if !ok {
                return false;
            }
        }
        while let Some((mh, _)) = mine {
            if !self.push(engine, mh) {
                return false;
            }
            mine = ours.next();
        }
        true
    }

    fn flush<const T: usize>(self, engine: &mut Engine<T>) {
        if !self.fetch.is_empty() {
            engine.enqueue(self.to, self.tree, Work::Fetch { hashes: self.fetch });
        }
        if !self.send.is_empty() {
            engine.enqueue(self.to, self.tree, Work::Send { hashes: self.send });
        }
    }
}

/// Adds `hash` to `list`, first queueing the list as a task when it is full; false if the queue is.
fn add<const T: usize>(
    engine: &mut Engine<T>,
    (to, tree): (SocketAddr, TreeId),
    list: &mut Vec<u64, HASHES_PER_TASK>,
    hash: u64,
    work: fn(Vec<u64, HASHES_PER_TASK>) -> Work,
) -> bool {
    if list.is_full() && !engine.enqueue(to, tree, work(core::mem::take(list))) {
        return false;
    }
    let _ = list.push(hash);
    true
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
    fn fetching_unknown_hashes_sends_nothing_and_cancels_nothing() {
        let mut a = map(1, 0..10);
        let mut e: Engine = Engine::new(SyncConfig::default());
        let mut buf = [0u8; 64];
        let header = Header::new(C, NodeId(2));
        let mut enc = Encoder::new(&mut buf, &header, Kind::Fetch).unwrap();
        enc.push(&TreeId::DATA);
        enc.push(&[9u8; 8]);
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
    fn listings_of_inner_nodes_are_refused() {
        let mut a = map(1, 0..100);
        let mut e: Engine = Engine::new(SyncConfig::default());
        let mut buf = [0u8; 64];
        let header = Header::new(C, NodeId(2));
        let mut enc = Encoder::new(&mut buf, &header, Kind::Listing).unwrap();
        enc.push(&TreeId::DATA);
        enc.push(&GroupHead {
            node: 0,
            part: None,
            count: [0, 0],
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
        assert!(e.enqueue(b, d, describe(17, 0xffff)));
        assert!(e.widen_tail(b, d, shape, 33, 0x00ff));
        assert_eq!(e.tasks.len(), 1);
        assert!(matches!(
            e.tasks.back().map(|t| &t.work),
            Some(Work::Describe { base: 17, mask, .. }) if *mask == 0x00ff_ffff
        ));
        // Not beyond 64 nodes, not another level, not another peer or table.
        assert!(!e.widen_tail(b, d, shape, 17 + 64, 1));
        assert!(!e.widen_tail(b, d, shape, 1, 1));
        assert!(!e.widen_tail(addr(3), d, shape, 33, 1));
        assert!(!e.widen_tail(b, TreeId::MEMBERS, shape, 33, 1));
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
