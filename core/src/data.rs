//! The data plane: a replicated last-writer-wins map.
//!
//! Every write gets a [`Version`] of (clock, writer id, writer generation), unique in the cluster and
//! ordered the same way on every node, so the newest write wins everywhere regardless of the order
//! copies arrive in. The clock is a hybrid logical clock ([`crate::clock`]): with a wall clock given
//! by [`DataMap::set_wall_clock`], a write made later in real time wins; without one, a Lamport
//! counter. A delete is a write too, whether or not this replica holds the key: it leaves a tombstone
//! that travels like any entry, so a delete that follows a write stays a delete everywhere, and it is
//! collected `tombstone_grace` after the delete. Tombstones carry their age on the wire, so every
//! replica collects a tombstone at about the same moment; a replica cut off for longer than the grace
//! period can bring a deleted value back, so the grace period must outlast the longest partition.
//!
//! ```
//! use tidings::data::{DataConfig, HeaplessData};
//! use tidings::{ClusterId, DigestKey, Instant, NodeId};
//!
//! let key = DigestKey::from_cluster(ClusterId(*b"demo"));
//! // 64 keys of up to 32 bytes, values of up to 64 bytes, a depth-1 digest tree.
//! let mut map: HeaplessData<64, 32, 64, { tidings::tree::tree_size(1) }> =
//!     HeaplessData::new_heapless(DataConfig::default(), NodeId(1), 0, key).unwrap();
//! let now = Instant::from_millis(0);
//! map.set(now, b"colour", b"blue").unwrap();
//! assert_eq!(map.get(b"colour"), Some(&b"blue"[..]));
//! map.delete(now, b"colour").unwrap();
//! assert_eq!(map.get(b"colour"), None);
//! // A write in two steps, for a caller that must make it durable in between: the version is
//! // reserved, nothing else changes until `apply`.
//! let v = map.prepare(now, b"colour", Some(b"green")).unwrap();
//! assert_eq!(map.get(b"colour"), None);
//! map.apply(now, b"colour", Some(b"green"), v).unwrap();
//! assert_eq!(map.get(b"colour"), Some(&b"green"[..]));
//! ```

use crate::clock::WriteClock;
use crate::hash::{DigestKey, EntryDigest};
use crate::indexed::{each_entry, Digested, Indexed};
use crate::store::{ByteBuf, HeaplessTable, Table};
use crate::sync::{Encoded, EntryError, Merged, Replica, Tally};
use crate::tree::{BadTreeSize, Tree, TreeBuf, TreeView};
use crate::wire::{Encoder, TreeId};
use crate::{Duration, Instant, NodeId, Version};
use core::marker::PhantomData;
use serde::{Deserialize, Serialize};

/// Settings of a [`DataMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DataConfig {
    /// Longest key accepted, locally or from peers.
    pub max_key_len: usize,
    /// Longest value accepted, locally or from peers.
    pub max_value_len: usize,
    /// How long a tombstone is kept after its delete.
    pub tombstone_grace: Duration,
    /// With a wall clock: how far ahead of it a peer's version may be before it is refused
    /// ([`crate::clock`]). Refused writes are accepted once real time catches up with them.
    pub max_clock_ahead: Duration,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            max_key_len: 64,
            max_value_len: 1024,
            tombstone_grace: Duration::from_secs(24 * 3600),
            max_clock_ahead: Duration::from_secs(60),
        }
    }
}

/// Why a local write was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DataError {
    /// The key is longer than `max_key_len` or the key buffer.
    KeyTooLong,
    /// The value is longer than `max_value_len` or the value buffer.
    ValueTooLong,
    /// The table is full and the key is new.
    Full,
    /// The tree buffer's size is not a valid tree size.
    BadTree(BadTreeSize),
    /// The clock reached [`crate::clock::MAX_MAJOR`]; no newer version can be made.
    ClockExhausted,
    /// A newer write of this key arrived between [`DataMap::prepare`] and [`DataMap::apply`]: the
    /// prepared write lost to it (last writer wins) and changed nothing.
    Superseded,
}

/// Counters of a [`DataMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DataStats {
    /// Local writes and deletes.
    pub local_writes: u64,
    /// Entries from peers that were newer and applied.
    pub applied: u64,
    /// Entries from peers that were not newer.
    pub stale: u64,
    /// New entries refused because the table was full.
    pub full: u64,
    /// Tombstones collected.
    pub collected: u64,
    /// Entries from peers refused because their version was too far ahead of our wall clock
    /// ([`crate::clock`]); accepted once real time catches up with them.
    pub ahead: u64,
}

/// One stored entry: a live value or a tombstone.
pub struct Record<K, V> {
    key: K,
    version: Version,
    value: Option<V>,
    /// For tombstones: when it is collected, on our clock.
    expires: Instant,
    digest: EntryDigest,
}

impl<K: ByteBuf, V: ByteBuf> Record<K, V> {
    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
    /// The version of the write that produced this entry.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The value, or `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }
}

impl<K, V> Digested for Record<K, V> {
    fn version(&self) -> Version {
        self.version
    }
    fn digest(&self) -> EntryDigest {
        self.digest
    }
}

/// An entry as it travels in `Entries` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The write's version.
    pub version: Version,
    /// The value or the tombstone.
    #[serde(borrow)]
    pub value: WireValue<'a>,
}

/// A value or a tombstone on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireValue<'a> {
    /// A live value.
    Live(&'a [u8]),
    /// A tombstone, `age_ms` after its delete as the sender saw it.
    Deleted {
        /// Milliseconds since the delete.
        age_ms: u64,
    },
}

/// A local write checked by [`DataMap::prepare`]: its version, and whether a table slot is held
/// for it (a new key). Give it to [`DataMap::apply`] once the write is durable, or to
/// [`DataMap::abandon`] if it never will be, so the slot is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Prepared {
    /// The write's version.
    pub version: Version,
    holds_slot: bool,
}

/// What a merge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The incoming write was newer and is now ours.
    Applied,
    /// The incoming write was no newer than ours (or an expired tombstone for a key we lack).
    Stale,
    /// The key is new and the table is full: refused and counted.
    Full,
}

/// Where a merged write comes from: what is checked and counted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// This node's own write ([`DataMap::apply`]).
    Local,
    /// A peer's write: bounded by the clock's limit.
    Peer,
    /// This node's own durable storage at startup.
    Disk,
}

/// A replicated last-writer-wins map over a [`Table`] backend and a digest tree.
pub struct DataMap<K, V, T, B> {
    index: Indexed<T, B>,
    key: DigestKey,
    writer: NodeId,
    generation: u32,
    clock: WriteClock,
    live: usize,
    /// Table slots held for prepared writes of new keys: no other insert may take them.
    reserved: usize,
    config: DataConfig,
    next_collect: Option<Instant>,
    stats: DataStats,
    _kv: PhantomData<fn() -> (K, V)>,
}

/// A map without an allocator: `KEYS` entries (a power of two, tombstones included), keys of up to
/// `KEY` bytes, values of up to `VALUE` bytes, and a tree of `NODES` digests ([`tree_size`]).
///
/// [`tree_size`]: crate::tree::tree_size
pub type HeaplessData<const KEYS: usize, const KEY: usize, const VALUE: usize, const NODES: usize> =
    DataMap<
        heapless::Vec<u8, KEY>,
        heapless::Vec<u8, VALUE>,
        HeaplessTable<Record<heapless::Vec<u8, KEY>, heapless::Vec<u8, VALUE>>, KEYS>,
        [u64; NODES],
    >;

/// A map for servers: hashbrown storage, heap-allocated keys, values and tree, and (feature
/// `sketch`) a sketch beside the tree.
#[cfg(feature = "alloc")]
pub type AllocData = DataMap<
    alloc::vec::Vec<u8>,
    alloc::vec::Vec<u8>,
    crate::store::HashTable<Record<alloc::vec::Vec<u8>, alloc::vec::Vec<u8>>>,
    AllocTree,
>;

/// The tree storage of [`AllocData`]: digests, with a sketch when the `sketch` feature is on.
#[cfg(all(feature = "alloc", feature = "sketch"))]
pub type AllocTree = crate::tree::HeapSketched;
/// The tree storage of [`AllocData`]: digests, with a sketch when the `sketch` feature is on.
#[cfg(all(feature = "alloc", not(feature = "sketch")))]
pub type AllocTree = alloc::vec::Vec<u64>;

/// The sketch capacity of [`AllocData::with_depth`] and of the `lan` preset: 16 differing keys in
/// 264 bytes.
pub const DEFAULT_SKETCH_CAPACITY: usize = 16;

/// Heap tree storage of `depth` with a sketch of `capacity` keys (ignored without the `sketch`
/// feature).
#[cfg(feature = "alloc")]
pub fn alloc_tree(depth: u8, capacity: usize) -> AllocTree {
    #[cfg(feature = "sketch")]
    return crate::tree::HeapSketched::with_capacity(depth, capacity);
    #[cfg(not(feature = "sketch"))]
    {
        let _ = capacity;
        alloc::vec![0; crate::tree::Shape::new(depth).map_or(1, |s| s.nodes())]
    }
}

impl<const KEYS: usize, const KEY: usize, const VALUE: usize, const NODES: usize>
    HeaplessData<KEYS, KEY, VALUE, NODES>
{
    /// An empty map. `NODES` must be a [`tree_size`](crate::tree::tree_size).
    pub fn new_heapless(
        config: DataConfig,
        writer: NodeId,
        generation: u32,
        key: DigestKey,
    ) -> Result<Self, DataError> {
        Self::new(
            config,
            writer,
            generation,
            key,
            HeaplessTable::new(),
            [0; NODES],
        )
    }
}

#[cfg(feature = "alloc")]
impl AllocData {
    /// An empty map holding at most `limit` entries (tombstones included), with a tree of `depth`
    /// and a sketch of [`DEFAULT_SKETCH_CAPACITY`] (feature `sketch`).
    pub fn with_depth(
        config: DataConfig,
        writer: NodeId,
        generation: u32,
        key: DigestKey,
        depth: u8,
        limit: usize,
    ) -> Result<Self, DataError> {
        crate::tree::Shape::new(depth).ok_or(DataError::BadTree(BadTreeSize { len: 0 }))?;
        let table = crate::store::HashTable::with_limit(limit);
        let tree = alloc_tree(depth, DEFAULT_SKETCH_CAPACITY);
        Self::new(config, writer, generation, key, table, tree)
    }
}

impl<K, V, T, B> DataMap<K, V, T, B>
where
    K: ByteBuf,
    V: ByteBuf,
    T: Table<Value = Record<K, V>>,
    B: TreeBuf,
{
    /// An empty map over `table` (emptied) and tree storage `tree`. Key and value limits are lowered to
    /// what the key and value buffers hold.
    pub fn new(
        config: DataConfig,
        writer: NodeId,
        generation: u32,
        key: DigestKey,
        table: T,
        tree: B,
    ) -> Result<Self, DataError> {
        let config = DataConfig {
            max_key_len: config.max_key_len.min(K::CAPACITY),
            max_value_len: config.max_value_len.min(V::CAPACITY),
            ..config
        };
        Ok(DataMap {
            index: Indexed::new(table, Tree::new(tree).map_err(DataError::BadTree)?),
            key,
            writer,
            generation,
            clock: WriteClock::new(),
            live: 0,
            reserved: 0,
            config,
            next_collect: None,
            stats: DataStats::default(),
            _kv: PhantomData,
        })
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.key.key_hash(TreeId::DATA.0, key)
    }

    /// The value under `key`, if live.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.record(key).and_then(|r| r.value())
    }

    /// The record under `key`, live or tombstone.
    pub fn record(&self, key: &[u8]) -> Option<&Record<K, V>> {
        self.index.get(self.hash(key)).filter(|r| &*r.key == key)
    }

    /// Live entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.index
            .table()
            .iter()
            .filter_map(|(_, r)| Some((r.key(), r.value()?)))
    }

    /// Every record, tombstones included.
    pub fn records(&self) -> impl Iterator<Item = &Record<K, V>> + '_ {
        self.index.table().iter().map(|(_, r)| r)
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The counters.
    pub fn stats(&self) -> &DataStats {
        &self.stats
    }

    /// The largest clock value made or seen: the `major` of every new write is above it. Persist it
    /// with the data, and give it back to [`Self::observe_clock`] after a restart.
    pub fn clock(&self) -> u64 {
        self.clock.last()
    }

    /// Moves the clock past `major` (after a restart, from persisted state) so new writes order after
    /// old ones.
    pub fn observe_clock(&mut self, major: u64) {
        self.clock.observe(major);
    }

    /// Tells the map that `now` is `unix_us` (Unix microseconds) on the wall clock: versions follow
    /// real time from then on ([`crate::clock`]). Call it again whenever the wall clock may have been
    /// stepped, or before each write for versions precise to the microsecond.
    pub fn set_wall_clock(&mut self, now: Instant, unix_us: u64) {
        self.clock
            .set_wall_clock(now, unix_us, self.config.max_clock_ahead);
    }

    /// Sets `key` to `value`, returning the write's version.
    pub fn set(&mut self, now: Instant, key: &[u8], value: &[u8]) -> Result<Version, DataError> {
        self.write(now, key, Some(value))
    }

    /// Deletes `key`: a tombstone with a fresh version, whether or not the key is held here (a delete
    /// of a write that has not arrived yet must still win over it).
    pub fn delete(&mut self, now: Instant, key: &[u8]) -> Result<Version, DataError> {
        self.write(now, key, None)
    }

    /// A local write in one step: [`Self::prepare`], then [`Self::apply`].
    pub fn write(
        &mut self,
        now: Instant,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Version, DataError> {
        let p = self.prepare(now, key, value)?;
        self.apply(now, key, value, p)
    }

    /// Checks a local write of `value` (`None`: a delete) to `key`, reserves its version, above every
    /// version seen, and for a new key holds a table slot, so the write cannot fail for room later.
    /// Nothing else changes: the write takes effect with [`Self::apply`], which a caller calls once
    /// the write is durable, or is given up with [`Self::abandon`].
    pub fn prepare(
        &mut self,
        now: Instant,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Prepared, DataError> {
        // The limits were lowered to the buffers' capacities in `new`.
        if key.len() > self.config.max_key_len {
            return Err(DataError::KeyTooLong);
        }
        if value.is_some_and(|v| v.len() > self.config.max_value_len) {
            return Err(DataError::ValueTooLong);
        }
        let holds_slot = self.record(key).is_none();
        if holds_slot && !self.has_room() {
            return Err(DataError::Full);
        }
        let major = self.clock.peek_next(now).ok_or(DataError::ClockExhausted)?;
        self.clock.observe(major);
        self.reserved = self.reserved.saturating_add(usize::from(holds_slot));
        Ok(Prepared {
            version: Version::new(major, self.writer.0, self.generation),
            holds_slot,
        })
    }

    /// Whether a new key fits beside the entries held and the slots reserved.
    fn has_room(&self) -> bool {
        let table = self.index.table();
        table.len().saturating_add(self.reserved) < table.capacity()
    }

    /// Gives up a prepared write that will never be applied: its slot is released.
    pub fn abandon(&mut self, prepared: Prepared) {
        self.reserved = self
            .reserved
            .saturating_sub(usize::from(prepared.holds_slot));
    }

    /// Applies a write prepared by [`Self::prepare`]. `Superseded` if a newer write of the key
    /// arrived meanwhile; then nothing changed (the slot is released either way).
    pub fn apply(
        &mut self,
        now: Instant,
        key: &[u8],
        value: Option<&[u8]>,
        prepared: Prepared,
    ) -> Result<Version, DataError> {
        self.abandon(prepared);
        let version = prepared.version;
        let entry = WireEntry {
            key,
            version,
            value: value.map_or(WireValue::Deleted { age_ms: 0 }, WireValue::Live),
        };
        match self.merge_entry(now, &entry, Origin::Local) {
            Ok(MergeOutcome::Applied) => Ok(version),
            Ok(MergeOutcome::Stale) => Err(DataError::Superseded),
            Ok(MergeOutcome::Full) => Err(DataError::Full),
            Err(EntryError::ValueTooLong) => Err(DataError::ValueTooLong),
            Err(_) => Err(DataError::KeyTooLong),
        }
    }

    /// Loads one entry from this node's own durable storage: merged like a peer's write, except
    /// that no version is too far ahead (the node wrote or accepted it before).
    pub fn restore(
        &mut self,
        now: Instant,
        entry: &WireEntry<'_>,
    ) -> Result<MergeOutcome, EntryError> {
        self.merge_entry(now, entry, Origin::Disk)
    }

    /// Stores a record that is known to be newer than ours.
    fn store(
        &mut self,
        hash: u64,
        key: K,
        version: Version,
        value: Option<V>,
        expires: Instant,
    ) -> Result<(), ()> {
        if self.index.get(hash).is_none() && !self.has_room() {
            return Err(());
        }
        let digest = self.key.entry_digest(hash, version);
        let is_live = value.is_some();
        let record = Record {
            key,
            version,
            value,
            expires,
            digest,
        };
        if let Some(old) = self.index.insert(hash, record).map_err(|_| ())? {
            self.live = self.live.saturating_sub(usize::from(old.value.is_some()));
        }
        self.live = self.live.saturating_add(usize::from(is_live));
        if !is_live {
            self.next_collect = Some(self.next_collect.map_or(expires, |n| n.min(expires)));
        }
        Ok(())
    }

    /// Whether a write from a peer is well formed: checked before anything of its datagram is
    /// applied. A version too far ahead of our clock does not refuse the datagram: that entry alone
    /// is left out when merged (counted in [`DataStats::ahead`]), so a peer whose clock is ahead still
    /// has its probes answered and its other entries merged.
    pub fn check(&self, e: &WireEntry<'_>) -> Result<(), EntryError> {
        let c = &self.config;
        match e.value {
            _ if e.key.len() > c.max_key_len => Err(EntryError::KeyTooLong),
            WireValue::Live(v) if v.len() > c.max_value_len => Err(EntryError::ValueTooLong),
            _ => Ok(()),
        }
    }

    /// The key hash that names `key` in the tree and on the wire.
    pub fn hash_of(&self, key: &[u8]) -> u64 {
        self.hash(key)
    }

    /// The record whose key hash is `hash`.
    pub fn by_hash(&self, hash: u64) -> Option<&Record<K, V>> {
        self.index.get(hash)
    }

    /// The record as it travels, as of `now`.
    pub fn to_wire<'r>(&self, r: &'r Record<K, V>, now: Instant) -> WireEntry<'r> {
        let value = match &r.value {
            Some(v) => WireValue::Live(v),
            None => WireValue::Deleted {
                age_ms: self
                    .config
                    .tombstone_grace
                    .as_millis()
                    .saturating_sub(r.expires.saturating_since(now).as_millis()),
            },
        };
        WireEntry {
            key: &r.key,
            version: r.version,
            value,
        }
    }

    /// Merges one write from a peer; newest wins.
    pub fn merge(
        &mut self,
        now: Instant,
        entry: &WireEntry<'_>,
    ) -> Result<MergeOutcome, EntryError> {
        self.merge_entry(now, entry, Origin::Peer)
    }

    fn merge_entry(
        &mut self,
        now: Instant,
        entry: &WireEntry<'_>,
        origin: Origin,
    ) -> Result<MergeOutcome, EntryError> {
        if entry.key.len() > self.config.max_key_len {
            return Err(EntryError::KeyTooLong);
        }
        let hash = self.hash(entry.key);
        if origin == Origin::Peer && entry.version.major > self.clock.limit(now) {
            self.stats.ahead = self.stats.ahead.saturating_add(1);
            return Err(EntryError::VersionTooFar);
        }
        self.clock.observe(entry.version.major);
        if let Some(ours) = self.index.get(hash) {
            if !wins(entry, ours) {
                if origin != Origin::Local {
                    self.stats.stale = self.stats.stale.saturating_add(1);
                }
                return Ok(MergeOutcome::Stale);
            }
        }
        let (value, expires) = match entry.value {
            WireValue::Live(v) if v.len() > self.config.max_value_len => {
                return Err(EntryError::ValueTooLong)
            }
            WireValue::Live(v) => (Some(V::from_slice(v).ok_or(EntryError::ValueTooLong)?), now),
            // Collected when the sender collects it: `grace - age` from now (`age < grace` here).
            WireValue::Deleted { age_ms } if age_ms >= self.config.tombstone_grace.as_millis() => {
                // Expired in transit: delete what it supersedes, keep nothing.
                return Ok(match self.index.remove(hash) {
                    Some(old) => {
                        self.live = self.live.saturating_sub(usize::from(old.value.is_some()));
                        self.stats.applied = self.stats.applied.saturating_add(1);
                        self.stats.collected = self.stats.collected.saturating_add(1);
                        MergeOutcome::Applied
                    }
                    None => {
                        self.stats.stale = self.stats.stale.saturating_add(1);
                        MergeOutcome::Stale
                    }
                });
            }
            WireValue::Deleted { age_ms } => (
                None,
                now.saturating_add(Duration::from_millis(
                    self.config
                        .tombstone_grace
                        .as_millis()
                        .saturating_sub(age_ms),
                )),
            ),
        };
        let key = K::from_slice(entry.key).ok_or(EntryError::KeyTooLong)?;
        match self.store(hash, key, entry.version, value, expires) {
            Ok(()) => {
                let counter = match origin {
                    Origin::Local => &mut self.stats.local_writes,
                    Origin::Peer | Origin::Disk => &mut self.stats.applied,
                };
                *counter = counter.saturating_add(1);
                Ok(MergeOutcome::Applied)
            }
            Err(()) => {
                self.stats.full = self.stats.full.saturating_add(1);
                Ok(MergeOutcome::Full)
            }
        }
    }

    /// Drops tombstones whose grace period has passed. Cheap unless one is due.
    pub fn collect(&mut self, now: Instant) {
        if self.next_collect.is_none_or(|t| t > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        let stats = &mut self.stats;
        self.index.retain(|_, r| {
            if r.value.is_some() {
                return true;
            }
            let due = r.expires;
            if due <= now {
                stats.collected = stats.collected.saturating_add(1);
                false
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
                true
            }
        });
        self.next_collect = next;
    }

    /// When the next tombstone is due for collection.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_collect
    }

    /// The 32-byte root of the digest tree.
    pub fn root(&self) -> crate::tree::Root {
        self.index.tree().root()
    }
}

/// Whether `incoming` beats `ours`: a newer version, or, for equal versions (which a correct writer never
/// reuses), a deterministic order on the payload so merging stays commutative even then.
fn wins<K: ByteBuf, V: ByteBuf>(incoming: &WireEntry<'_>, ours: &Record<K, V>) -> bool {
    match incoming.version.cmp(&ours.version) {
        core::cmp::Ordering::Greater => true,
        core::cmp::Ordering::Less => false,
        core::cmp::Ordering::Equal => match (incoming.value, ours.value()) {
            (WireValue::Live(a), Some(b)) => a > b,
            (WireValue::Live(_), None) => true,
            (WireValue::Deleted { .. }, _) => false,
        },
    }
}

impl<K, V, T, B> Replica for DataMap<K, V, T, B>
where
    K: ByteBuf,
    V: ByteBuf,
    T: Table<Value = Record<K, V>>,
    B: TreeBuf,
{
    fn tree(&self) -> TreeView<'_> {
        self.index.tree().view()
    }

    fn first_in(&self, from: u64, to: u64) -> Option<(u64, Version)> {
        self.index.first_in(from, to)
    }

    fn encode_entry(&self, now: Instant, hash: u64, enc: &mut Encoder<'_>) -> Encoded {
        match self.index.get(hash) {
            None => Encoded::Missing,
            Some(r) if enc.push(&self.to_wire(r, now)) => Encoded::Written,
            Some(_) => Encoded::NoRoom,
        }
    }

    fn check_entries(&self, bytes: &[u8]) -> Result<usize, EntryError> {
        each_entry(
            bytes,
            |e: WireEntry<'_>| self.check(&e),
            EntryError::Malformed,
        )
    }

    fn merge_entries(&mut self, now: Instant, bytes: &[u8]) -> Merged {
        Merged::run(bytes, |e: WireEntry<'_>| match self.merge(now, &e) {
            Ok(MergeOutcome::Applied) => Tally::Applied,
            Ok(MergeOutcome::Stale) | Err(_) => Tally::Stale,
            Ok(MergeOutcome::Full) => Tally::Full,
        })
    }

    fn versions_unique(&self) -> bool {
        // A version is (counter, writer, generation): one write of one key.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tree_size;
    use crate::ClusterId;
    use quickcheck::QuickCheck;
    use std::vec::Vec;

    type Map = HeaplessData<64, 16, 16, { tree_size(1) }>;

    fn key() -> DigestKey {
        DigestKey::from_cluster(ClusterId(*b"test"))
    }

    fn map(id: u64) -> Map {
        Map::new_heapless(DataConfig::default(), NodeId(id), 0, key()).unwrap()
    }

    /// A write as generated: key index, counter, writer, delete. The value is a function of the
    /// version, as for real writes: equal versions are the same write.
    type Write = (u8, u8, u8, bool);

    fn apply(m: &mut Map, w: Write) {
        let (k, counter, writer, delete) = w;
        let key = [b'k', k % 8];
        let version = Version::new(u64::from(counter), u64::from(writer % 4), 0);
        let value = [counter, writer % 4];
        let value = if delete {
            WireValue::Deleted { age_ms: 0 }
        } else {
            WireValue::Live(&value)
        };
        m.merge(
            Instant::ZERO,
            &WireEntry {
                key: &key,
                version,
                value,
            },
        )
        .unwrap();
    }

    fn state(m: &Map) -> Vec<(Vec<u8>, Version, Option<Vec<u8>>)> {
        let mut v: Vec<_> = m
            .records()
            .map(|r| (r.key().to_vec(), r.version(), r.value().map(|v| v.to_vec())))
            .collect();
        v.sort();
        v
    }

    fn merged(parts: &[&[Write]]) -> Map {
        let mut m = map(9);
        for p in parts {
            for &w in p.iter() {
                apply(&mut m, w);
            }
        }
        m
    }

    #[test]
    fn merge_is_commutative_associative_idempotent() {
        fn prop(a: Vec<Write>, b: Vec<Write>, c: Vec<Write>) -> bool {
            let ab = merged(&[&a, &b]);
            let ba = merged(&[&b, &a]);
            let ab_c = merged(&[&a, &b, &c]);
            let a_cb = merged(&[&a, &c, &b]);
            let c_ba = merged(&[&c, &b, &a]);
            let aa = merged(&[&a, &a]);
            state(&ab) == state(&ba)
                && ab.root() == ba.root()
                && state(&ab_c) == state(&a_cb)
                && state(&ab_c) == state(&c_ba)
                && ab_c.root() == c_ba.root()
                && state(&aa) == state(&merged(&[&a]))
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<Write>, Vec<Write>, Vec<Write>) -> bool);
    }

    #[test]
    fn incremental_root_equals_rebuilt_root() {
        fn prop(writes: Vec<(u8, u8, bool)>, then: Vec<Write>) -> bool {
            let mut m = map(1);
            let mut now = Instant::ZERO;
            for (k, len, delete) in writes {
                now = now + Duration::from_millis(1);
                let key = [b'k', k % 16];
                if delete {
                    m.delete(now, &key).unwrap();
                } else {
                    m.set(now, &key, &[k; 16][..usize::from(len % 17)]).unwrap();
                }
            }
            for w in then {
                apply(&mut m, w);
            }
            // Rebuild from scratch from the final records.
            let mut fresh = map(2);
            for r in m.records() {
                let value = match r.value() {
                    Some(v) => WireValue::Live(v),
                    None => WireValue::Deleted { age_ms: 0 },
                };
                fresh
                    .merge(
                        now,
                        &WireEntry {
                            key: r.key(),
                            version: r.version(),
                            value,
                        },
                    )
                    .unwrap();
            }
            fresh.root() == m.root() && fresh.len() == m.len()
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<(u8, u8, bool)>, Vec<Write>) -> bool);
    }

    #[test]
    fn local_writes_are_bounded_and_versioned() {
        let mut m = map(7);
        let t = Instant::ZERO;
        assert_eq!(m.set(t, &[0; 17], b"v"), Err(DataError::KeyTooLong));
        assert_eq!(m.set(t, b"k", &[0; 17]), Err(DataError::ValueTooLong));
        let v1 = m.set(t, b"k", b"one").unwrap();
        let v2 = m.set(t, b"k", b"two").unwrap();
        assert!(v2 > v1 && v2.minor == 7);
        assert_eq!(m.get(b"k"), Some(&b"two"[..]));
        for i in 0..63u8 {
            m.set(t, &[i, 1], b"x").unwrap();
        }
        assert_eq!(m.set(t, b"new", b"x"), Err(DataError::Full));
        assert_eq!(m.len(), 64);
        // A peer's newer write moves our clock past it.
        let theirs = Version::new(1000, 3, 0);
        m.merge(
            t,
            &WireEntry {
                key: b"k",
                version: theirs,
                value: WireValue::Live(b"z"),
            },
        )
        .unwrap();
        assert!(m.set(t, b"k", b"mine").unwrap() > theirs);
    }

    #[test]
    fn a_delete_of_a_key_not_held_yet_still_wins_over_the_write_it_follows() {
        let mut writer = map(1);
        let mut deleter = map(2);
        let t = Instant::ZERO;
        let put = writer.set(t, b"k", b"v").unwrap();
        // The deleter has seen the writer's clock (gossip of anything), but not this key.
        deleter.observe_clock(put.major);
        let del = deleter.delete(t, b"k").unwrap();
        assert!(del > put);
        assert_eq!(deleter.records().count(), 1);
        let late = WireEntry {
            key: b"k",
            version: put,
            value: WireValue::Live(b"v"),
        };
        assert_eq!(deleter.merge(t, &late), Ok(MergeOutcome::Stale));
        assert_eq!(deleter.get(b"k"), None);
    }

    #[test]
    fn a_prepared_write_changes_nothing_until_applied_and_loses_to_a_newer_one_meanwhile() {
        let mut m = map(1);
        let t = Instant::ZERO;
        let root = m.root();
        let p = m.prepare(t, b"k", Some(b"mine")).unwrap();
        assert_eq!(
            (m.get(b"k"), m.root(), m.stats().local_writes),
            (None, root, 0)
        );
        // Never applied (the commit failed): the next write still gets a fresh version.
        m.abandon(p);
        assert!(m.prepare(t, b"k", Some(b"again")).unwrap().version > p.version);
        let p = m.prepare(t, b"j", Some(b"mine")).unwrap();
        let newer = Version::new(p.version.major + 5, 9, 0);
        m.merge(
            t,
            &WireEntry {
                key: b"j",
                version: newer,
                value: WireValue::Live(b"theirs"),
            },
        )
        .unwrap();
        assert_eq!(
            m.apply(t, b"j", Some(b"mine"), p),
            Err(DataError::Superseded)
        );
        assert_eq!(m.get(b"j"), Some(&b"theirs"[..]));
        assert_eq!(m.prepare(t, &[0; 17], None), Err(DataError::KeyTooLong));
        assert_eq!(
            m.prepare(t, b"k", Some(&[0; 17])),
            Err(DataError::ValueTooLong)
        );
    }

    #[test]
    fn a_prepared_write_of_a_new_key_holds_its_slot_until_applied_or_abandoned() {
        let mut m = map(1);
        let t = Instant::ZERO;
        for i in 0..63u8 {
            m.set(t, &[i, 1], b"x").unwrap();
        }
        let p = m.prepare(t, b"last", Some(b"mine")).unwrap();
        // The last slot is held: neither a peer's new key nor another local one takes it.
        let theirs = WireEntry {
            key: b"theirs",
            version: Version::new(1_000, 2, 0),
            value: WireValue::Live(b"v"),
        };
        assert_eq!(m.merge(t, &theirs), Ok(MergeOutcome::Full));
        assert_eq!(m.prepare(t, b"other", Some(b"x")), Err(DataError::Full));
        // An existing key needs no slot.
        m.set(t, &[0, 1], b"y").unwrap();
        assert!(m.apply(t, b"last", Some(b"mine"), p).is_ok());
        assert_eq!(m.len(), 64);
        // Abandoned, a slot is free again.
        let mut m = map(2);
        for i in 0..63u8 {
            m.set(t, &[i, 1], b"x").unwrap();
        }
        let p = m.prepare(t, b"a", None).unwrap();
        assert_eq!(m.prepare(t, b"b", None), Err(DataError::Full));
        m.abandon(p);
        assert!(m.set(t, b"b", b"v").is_ok());
    }

    #[test]
    fn with_a_wall_clock_a_later_write_wins_whatever_the_counters_say() {
        // Node 1 has written a lot (a high Lamport counter would win); node 2 writes later in real
        // time and wins.
        let mut busy = map(1);
        let mut late = map(2);
        let start = 1_796_000_000_000_000;
        busy.set_wall_clock(Instant::ZERO, start);
        late.set_wall_clock(Instant::ZERO, start);
        let mut first = Version::default();
        for i in 0..50u8 {
            first = busy.set(Instant::ZERO, b"x", &[i]).unwrap();
        }
        let second = late.set(Instant::from_millis(3), b"x", b"later").unwrap();
        assert!(second > first);
        assert_eq!(second.major >> crate::clock::COUNTER_BITS, start + 3_000);
        // A version a day ahead of our wall clock is refused; the clock is untouched.
        let ahead = WireEntry {
            key: b"y",
            version: Version::new((start + 86_400_000_000) << crate::clock::COUNTER_BITS, 3, 0),
            value: WireValue::Live(b"v"),
        };
        let before = late.clock();
        assert_eq!(
            late.merge(Instant::from_millis(3), &ahead),
            Err(EntryError::VersionTooFar)
        );
        assert_eq!(late.clock(), before);
        // From disk it is trusted: this node accepted it before a restart.
        assert_eq!(
            late.restore(Instant::from_millis(3), &ahead),
            Ok(MergeOutcome::Applied)
        );
    }

    #[test]
    fn tombstones_are_collected_after_grace_and_expired_ones_not_stored() {
        let cfg = DataConfig {
            tombstone_grace: Duration::from_secs(10),
            ..DataConfig::default()
        };
        let mut m = Map::new_heapless(cfg, NodeId(1), 0, key()).unwrap();
        let empty = m.root();
        let t0 = Instant::from_millis(100_000);
        m.set(t0, b"k", b"v").unwrap();
        m.delete(t0, b"k").unwrap();
        assert_eq!(m.records().count(), 1);
        assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        m.collect(t0 + Duration::from_secs(9));
        assert_eq!(m.records().count(), 1);
        m.collect(t0 + Duration::from_secs(10));
        assert_eq!(m.records().count(), 0);
        assert_eq!(m.root(), empty);
        assert_eq!(m.stats().collected, 1);
        // A tombstone that aged out in transit is not stored for a key we never had.
        let old = WireEntry {
            key: b"x",
            version: Version::new(5, 2, 0),
            value: WireValue::Deleted { age_ms: 20_000 },
        };
        assert_eq!(m.merge(t0, &old), Ok(MergeOutcome::Stale));
        assert_eq!(m.records().count(), 0);
        // ...but it still deletes an older live value, and is collected at once.
        m.merge(
            t0,
            &WireEntry {
                key: b"x",
                version: Version::new(4, 2, 0),
                value: WireValue::Live(b"v"),
            },
        )
        .unwrap();
        assert_eq!(m.merge(t0, &old), Ok(MergeOutcome::Applied));
        assert_eq!(m.get(b"x"), None);
        assert_eq!(m.records().count(), 0);
    }

    #[test]
    fn a_version_beyond_the_clock_ceiling_is_refused_alone_and_counted() {
        let mut m = map(1);
        let far = WireEntry {
            key: b"x",
            version: Version::new(crate::clock::MAX_MAJOR + 1, 1, 0),
            value: WireValue::Live(b"v"),
        };
        assert_eq!(m.merge(Instant::ZERO, &far), Err(EntryError::VersionTooFar));
        // In a run, the entry alone is left out: the one beside it is merged.
        let ok = WireEntry {
            key: b"y",
            version: Version::new(7, 1, 0),
            value: WireValue::Live(b"v"),
        };
        let mut buf = [0u8; 64];
        let n1 = postcard::to_slice(&far, &mut buf).unwrap().len();
        let n2 = postcard::to_slice(&ok, &mut buf[n1..]).unwrap().len();
        assert_eq!(m.check_entries(&buf[..n1 + n2]), Ok(2));
        m.merge_entries(Instant::ZERO, &buf[..n1 + n2]);
        assert_eq!((m.get(b"x"), m.get(b"y")), (None, Some(&b"v"[..])));
        assert_eq!(m.stats().ahead, 2);
        assert!(m.set(Instant::ZERO, b"k", b"v").unwrap().major < 10);
    }

    #[test]
    fn entries_larger_than_the_buffers_are_refused_whole() {
        // DataConfig allows 1,024-byte values but this map's value buffer holds 16.
        let m = map(1);
        let ok = WireEntry {
            key: b"a",
            version: Version::new(1, 2, 0),
            value: WireValue::Live(b"short"),
        };
        let big = WireEntry {
            key: b"b",
            version: Version::new(2, 2, 0),
            value: WireValue::Live(&[1; 100]),
        };
        let mut buf = [0u8; 256];
        let n1 = postcard::to_slice(&ok, &mut buf).unwrap().len();
        let n2 = postcard::to_slice(&big, &mut buf[n1..]).unwrap().len();
        assert_eq!(
            m.check_entries(&buf[..n1 + n2]),
            Err(EntryError::ValueTooLong)
        );
        assert_eq!(m.records().count(), 0);
    }

    #[test]
    fn a_tombstone_keeps_its_age_on_a_young_node() {
        let cfg = DataConfig {
            tombstone_grace: Duration::from_secs(100),
            ..DataConfig::default()
        };
        let mut m = Map::new_heapless(cfg, NodeId(1), 0, key()).unwrap();
        // Our clock started 1 s ago; the tombstone is 90 s old: 10 s remain.
        let now = Instant::from_millis(1_000);
        let t = WireEntry {
            key: b"x",
            version: Version::new(3, 2, 0),
            value: WireValue::Deleted { age_ms: 90_000 },
        };
        assert_eq!(m.merge(now, &t), Ok(MergeOutcome::Applied));
        assert_eq!(m.poll_timeout(), Some(now + Duration::from_secs(10)));
        let mut buf = [0u8; 64];
        let mut enc = Encoder::new(
            &mut buf,
            &crate::wire::Header::new(ClusterId(*b"test"), NodeId(1)),
            crate::wire::Kind::Entries,
        )
        .unwrap();
        let h = m.hash(b"x");
        enc.push(&TreeId::DATA);
        assert_eq!(
            m.encode_entry(now + Duration::from_secs(4), h, &mut enc),
            Encoded::Written
        );
        let n = enc.finish();
        let (_, msg) = crate::wire::decode(&buf[..n], ClusterId(*b"test"), 1200).unwrap();
        let crate::wire::Message::Entries { bytes, .. } = msg else {
            panic!("not entries")
        };
        let (e, _) = postcard::take_from_bytes::<WireEntry<'_>>(bytes).unwrap();
        assert_eq!(e.value, WireValue::Deleted { age_ms: 94_000 });
    }
}
