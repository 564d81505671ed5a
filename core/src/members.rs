//! The member table: who is in the cluster, at which address, in which state.
//!
//! Every member's state is ordered by (generation, version, status precedence). The generation changes
//! only when the member restarts; the version only when the member itself says something new (new
//! metadata, a refutation, a leave). Others may only raise a member's status at the same
//! (generation, version): Alive < Suspect < Dead < Left. So every replica orders the same claims the same
//! way and merging is commutative, associative and idempotent, whatever the order gossip arrives in.
//!
//! - A member that hears itself suspected or declared dead refutes it by bumping its version.
//! - A restart shows as a higher generation and replaces everything known of the older one.
//! - Leaving is a status of its own, set by the member itself, and outranks Dead: a graceful leave is
//!   never reported as a failure.
//! - Dead and Left members stay as tombstones for `retention`, then are forgotten. Their age travels with
//!   them, so replicas forget them at about the same time, and an older claim about a tombstoned member
//!   never brings it back: only the member itself, with a newer (generation, version), does.

use crate::hash::{DigestKey, EntryDigest};
use crate::indexed::{each_entry, Digested, Indexed};
use crate::store::{ByteBuf, HeaplessTable, Table};
use crate::sync::{Encoded, EntryError, Merged, Replica, Tally};
use crate::tree::{BadTreeSize, Tree, TreeBuf, TreeView};
use crate::wire::{Encoder, TreeId};
use crate::{Duration, Instant, NodeId, Version};
use core::net::SocketAddr;
use serde::{Deserialize, Serialize};

/// A member's state, in order of precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// Answering probes.
    Alive,
    /// Missed a probe; dead unless it refutes in time.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left the cluster on purpose.
    Left,
}

impl Status {
    fn rank(self) -> u32 {
        self as u32
    }

    /// Dead or left: kept only as a tombstone.
    pub fn is_gone(self) -> bool {
        matches!(self, Status::Dead | Status::Left)
    }
}

/// Settings of a [`Members`] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MembersConfig {
    /// Longest metadata accepted, locally or from peers.
    pub max_meta_len: usize,
    /// How long dead and left members are remembered.
    pub retention: Duration,
}

impl Default for MembersConfig {
    fn default() -> Self {
        MembersConfig {
            max_meta_len: 64,
            retention: Duration::from_secs(3600),
        }
    }
}

/// One member.
pub struct Member<M> {
    id: NodeId,
    addr: SocketAddr,
    generation: u32,
    version: u64,
    status: Status,
    meta: M,
    /// For dead and left members: when they are forgotten, on our clock.
    expires: Instant,
    digest: EntryDigest,
}

impl<M: ByteBuf> Member<M> {
    /// The member's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Its generation (restart count).
    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// Its version within the generation.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Its status.
    pub fn status(&self) -> Status {
        self.status
    }
    /// Its metadata.
    pub fn meta(&self) -> &[u8] {
        &self.meta
    }
    /// The member as it travels, with its tombstone age as of `now` for a retention of `retention`.
    pub fn to_wire(&self, now: Instant, retention: Duration) -> WireMember<'_> {
        WireMember {
            id: self.id,
            addr: self.addr,
            generation: self.generation,
            version: self.version,
            status: self.status,
            meta: &self.meta,
            age_ms: if self.status.is_gone() {
                retention
                    .as_millis()
                    .saturating_sub(self.expires.saturating_since(now).as_millis())
            } else {
                0
            },
        }
    }
}

impl<M> Digested for Member<M> {
    fn version(&self) -> Version {
        order(self.generation, self.version, self.status)
    }
    fn digest(&self) -> EntryDigest {
        self.digest
    }
}

fn order(generation: u32, version: u64, status: Status) -> Version {
    Version::new(u64::from(generation), version, status.rank())
}

/// A member as it travels in gossip and sync messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMember<'a> {
    /// The member's id.
    pub id: NodeId,
    /// Where it listens.
    #[serde(with = "crate::wire::addr")]
    pub addr: SocketAddr,
    /// Its generation.
    pub generation: u32,
    /// Its version within the generation.
    pub version: u64,
    /// Its status.
    pub status: Status,
    /// Its metadata.
    pub meta: &'a [u8],
    /// For dead and left members: milliseconds since they died or left, as the sender saw it.
    pub age_ms: u64,
}

impl WireMember<'_> {
    fn order(&self) -> Version {
        order(self.generation, self.version, self.status)
    }
}

/// What a merge or a local change did to the table: the member events a node reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Change {
    /// A member we did not know, alive or suspect.
    Joined,
    /// New address or metadata, or alive again after a suspicion.
    Updated,
    /// Now suspected.
    Suspected,
    /// Now dead.
    Failed,
    /// Left on purpose.
    Left,
    /// Came back with a higher generation.
    Restarted,
    /// A tombstone was forgotten.
    Forgotten,
    /// A claim that we are suspect or dead, answered by raising our own version.
    Refuted,
    /// Another node has our id (it was given our id or, with ids derived from names, our name):
    /// a record of our generation at another address outranked ours again after we had outranked
    /// it. Refuted like any claim about us.
    Twin(#[cfg_attr(feature = "defmt", defmt(Debug2Format))] SocketAddr),
}

/// Why a member was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum MemberError {
    /// Metadata longer than `max_meta_len` or the metadata buffer.
    MetaTooLong,
    /// The table is full and the member is new.
    Full,
    /// The tree buffer's size is not a valid tree size.
    BadTree(BadTreeSize),
}

/// Counters of a [`Members`] table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MembersStats {
    /// Claims that changed the table.
    pub applied: u64,
    /// Claims no newer than ours.
    pub stale: u64,
    /// New members refused for lack of room.
    pub full: u64,
    /// Refutations of claims about ourselves.
    pub refuted: u64,
    /// Claims showing that another node, at another address, has our id.
    pub twins: u64,
    /// Tombstones forgotten.
    pub forgotten: u64,
}

/// The member table over a [`Table`] backend and a digest tree.
pub struct Members<M, T, B> {
    index: Indexed<T, B>,
    key: DigestKey,
    me: NodeId,
    config: MembersConfig,
    next_expiry: Option<Instant>,
    live: usize,
    stats: MembersStats,
    /// The last address that claimed our id (see `merge_about_me`).
    twin: Option<SocketAddr>,
    _m: core::marker::PhantomData<fn() -> M>,
}

/// A member table without an allocator: `N` members (a power of two, tombstones included), metadata of
/// up to `META` bytes, a tree of `NODES` digests.
pub type HeaplessMembers<const N: usize, const META: usize, const NODES: usize> = Members<
    heapless::Vec<u8, META>,
    HeaplessTable<Member<heapless::Vec<u8, META>>, N>,
    [u64; NODES],
>;

/// A member table for servers.
#[cfg(feature = "alloc")]
pub type AllocMembers = Members<
    alloc::vec::Vec<u8>,
    crate::store::HashTable<Member<alloc::vec::Vec<u8>>>,
    alloc::vec::Vec<u64>,
>;

impl<M, T, B> Members<M, T, B>
where
    M: ByteBuf,
    T: Table<Value = Member<M>>,
    B: TreeBuf,
{
    /// A table holding only ourselves, alive: `me` at `addr`, in `generation`, with `meta`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: MembersConfig,
        key: DigestKey,
        table: T,
        tree: B,
        me: NodeId,
        addr: SocketAddr,
        generation: u32,
        meta: &[u8],
    ) -> Result<Self, MemberError> {
        let tree = Tree::new(tree).map_err(MemberError::BadTree)?;
        let config = MembersConfig {
            max_meta_len: config.max_meta_len.min(M::CAPACITY),
            ..config
        };
        let mut members = Members {
            index: Indexed::new(table, tree),
            key,
            me,
            config,
            next_expiry: None,
            live: 0,
            stats: MembersStats::default(),
            twin: None,
            _m: core::marker::PhantomData,
        };
        let own = WireMember {
            id: me,
            addr,
            generation,
            version: 0,
            status: Status::Alive,
            meta,
            age_ms: 0,
        };
        members.store(Instant::ZERO, &own)?;
        Ok(members)
    }

    fn hash(&self, id: NodeId) -> u64 {
        self.key.key_hash(TreeId::MEMBERS.0, &id.0.to_le_bytes())
    }

    /// The member `id`.
    pub fn get(&self, id: NodeId) -> Option<&Member<M>> {
        self.index.get(self.hash(id)).filter(|m| m.id == id)
    }

    /// The member whose key hash is `hash`.
    pub fn by_hash(&self, hash: u64) -> Option<&Member<M>> {
        self.index.get(hash)
    }

    /// The key hash that names member `id` in the tree and on the wire.
    pub fn hash_of(&self, id: NodeId) -> u64 {
        self.hash(id)
    }

    /// Whether a claim could be merged: checked before anything of its datagram is applied.
    pub fn check(&self, m: &WireMember<'_>) -> Result<(), EntryError> {
        if m.meta.len() > self.config.max_meta_len {
            return Err(EntryError::ValueTooLong);
        }
        Ok(())
    }

    /// Ourselves.
    pub fn me(&self) -> Option<&Member<M>> {
        self.get(self.me)
    }

    /// Every member, tombstones included, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Member<M>> + '_ {
        self.index.table().iter().map(|(_, m)| m)
    }

    /// Members with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.iter().filter(|m| m.status == status).count()
    }

    /// The member at position `i` of the table's current order: `nth(random % len())` picks a member
    /// uniformly at random.
    pub fn nth(&self, i: usize) -> Option<&Member<M>> {
        self.index.table().nth(i).map(|(_, m)| m)
    }

    /// Members alive or suspect, ourselves included: kept as a count, so reading it is free.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Members and tombstones held.
    pub fn len(&self) -> usize {
        self.index.table().len()
    }

    /// Whether the table holds nobody (never: it always holds ourselves).
    pub fn is_empty(&self) -> bool {
        self.index.table().is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> &MembersStats {
        &self.stats
    }

    fn store(&mut self, now: Instant, m: &WireMember<'_>) -> Result<(), MemberError> {
        if m.meta.len() > self.config.max_meta_len {
            return Err(MemberError::MetaTooLong);
        }
        let meta = M::from_slice(m.meta).ok_or(MemberError::MetaTooLong)?;
        let hash = self.hash(m.id);
        let retention = self.config.retention.as_millis();
        let expires = now.saturating_add(Duration::from_millis(retention.saturating_sub(m.age_ms)));
        let member = Member {
            id: m.id,
            addr: m.addr,
            generation: m.generation,
            version: m.version,
            status: m.status,
            meta,
            expires,
            digest: self.key.entry_digest(hash, m.order()),
        };
        let old = self
            .index
            .insert(hash, member)
            .map_err(|_| MemberError::Full)?;
        if old.is_none_or(|o| o.status.is_gone()) {
            self.live = self.live.saturating_add(usize::from(!m.status.is_gone()));
        } else if m.status.is_gone() {
            self.live = self.live.saturating_sub(1);
        }
        if m.status.is_gone() {
            self.next_expiry = Some(self.next_expiry.map_or(expires, |n| n.min(expires)));
        }
        Ok(())
    }

    /// Merges a claim about a member; newest wins. Claims about ourselves that say we are not alive
    /// are refuted by raising our version.
    pub fn merge(
        &mut self,
        now: Instant,
        m: &WireMember<'_>,
    ) -> Result<Option<Change>, MemberError> {
        if m.id == self.me {
            return self.merge_about_me(now, m);
        }
        let old = self.get(m.id).map(|o| (o.order(), o.generation, o.status));
        if old.is_some_and(|(o, _, _)| m.order() <= o) {
            self.stats.stale = self.stats.stale.saturating_add(1);
            return Ok(None);
        }
        if m.status.is_gone() && m.age_ms >= self.config.retention.as_millis() {
            // Expired in transit: forget what it supersedes, keep nothing.
            let hash = self.hash(m.id);
            return Ok(self.index.remove(hash).map(|old| {
                if !old.status.is_gone() {
                    self.live = self.live.saturating_sub(1);
                }
                self.stats.forgotten = self.stats.forgotten.saturating_add(1);
                match (old.status.is_gone(), m.status) {
                    (true, _) => Change::Forgotten,
                    (false, Status::Left) => Change::Left,
                    (false, _) => Change::Failed,
                }
            }));
        }
        if let Err(e) = self.store(now, m) {
            if e == MemberError::Full {
                self.stats.full = self.stats.full.saturating_add(1);
            }
            return Err(e);
        }
        self.stats.applied = self.stats.applied.saturating_add(1);
        let change = match old {
            None if m.status.is_gone() => None,
            None => Some(Change::Joined),
            Some((_, _, status)) if m.status.is_gone() => match (status == m.status, m.status) {
                (true, _) => None,
                (false, Status::Left) => Some(Change::Left),
                (false, _) => Some(Change::Failed),
            },
            Some((_, generation, _)) if m.generation > generation => Some(Change::Restarted),
            Some((_, _, status)) if status.is_gone() => Some(Change::Joined),
            Some((_, _, Status::Alive)) if m.status == Status::Suspect => Some(Change::Suspected),
            Some(_) => Some(Change::Updated),
        };
        Ok(change)
    }

    fn merge_about_me(
        &mut self,
        now: Instant,
        m: &WireMember<'_>,
    ) -> Result<Option<Change>, MemberError> {
        let Some(me) = self.me() else {
            return Ok(None);
        };
        let (generation, version, status) = (me.generation, me.version, me.status);
        let stale = m.order() <= order(generation, version, status);
        // A live record of our generation (or a later one) at another address. Our own past
        // incarnation's record looks alike once (a restart at a new address, with no data
        // directory to raise the generation); it is outranked and then stale. Another node with
        // our id answers by outranking us back: newer again from the address we outranked.
        let other = m.addr != me.addr && m.status == Status::Alive && m.generation >= generation;
        let known = self.twin == Some(m.addr);
        let twin = (other && known && !stale).then_some(Change::Twin(m.addr));
        if status == Status::Left || (stale && (known || !other)) {
            self.stats.stale = self.stats.stale.saturating_add(1);
            return Ok(None);
        }
        if other {
            self.twin = Some(m.addr);
        }
        if twin.is_some() {
            self.stats.twins = self.stats.twins.saturating_add(1);
        }
        // Someone holds a newer claim about us than we do, or another node has our id: outrank it,
        // so our record travels and the other node learns of us too.
        let (generation, base) = if m.generation > generation {
            (m.generation, m.version)
        } else {
            (generation, version.max(m.version))
        };
        self.bump(now, generation, base.saturating_add(1), Status::Alive)?;
        self.stats.refuted = self.stats.refuted.saturating_add(1);
        Ok(twin.or(Some(Change::Refuted)))
    }

    fn bump(
        &mut self,
        now: Instant,
        generation: u32,
        version: u64,
        status: Status,
    ) -> Result<(), MemberError> {
        let Some(me) = self.me() else {
            return Ok(());
        };
        let (addr, meta) = (
            me.addr,
            M::from_slice(&me.meta).ok_or(MemberError::MetaTooLong)?,
        );
        let claim = WireMember {
            id: self.me,
            addr,
            generation,
            version,
            status,
            meta: &meta,
            age_ms: 0,
        };
        self.store(now, &claim)
    }

    /// Our failure detector suspects `id`: raises Alive to Suspect at the same version.
    pub fn suspect(&mut self, now: Instant, id: NodeId) -> Option<Change> {
        self.raise(now, id, Status::Alive, Status::Suspect, Change::Suspected)
    }

    /// The suspicion of `id` ran out: raises Suspect to Dead at the same version.
    pub fn declare_dead(&mut self, now: Instant, id: NodeId) -> Option<Change> {
        self.raise(now, id, Status::Suspect, Status::Dead, Change::Failed)
    }

    fn raise(
        &mut self,
        now: Instant,
        id: NodeId,
        from: Status,
        to: Status,
        change: Change,
    ) -> Option<Change> {
        let m = self.get(id).filter(|m| m.status == from && id != self.me)?;
        let meta = M::from_slice(&m.meta)?;
        let claim = WireMember {
            status: to,
            meta: &meta,
            age_ms: 0,
            ..m.to_wire(now, self.config.retention)
        };
        self.store(now, &claim).ok()?;
        Some(change)
    }

    /// We leave: our own status becomes Left at a new version.
    pub fn leave(&mut self, now: Instant) -> Result<(), MemberError> {
        let Some(me) = self.me() else {
            return Ok(());
        };
        let (generation, version) = (me.generation, me.version.saturating_add(1));
        self.bump(now, generation, version, Status::Left)
    }

    /// Replaces our metadata, at a new version.
    pub fn set_meta(&mut self, now: Instant, meta: &[u8]) -> Result<(), MemberError> {
        let Some(me) = self.me() else {
            return Ok(());
        };
        let claim = WireMember {
            version: me.version.saturating_add(1),
            meta,
            ..me.to_wire(now, self.config.retention)
        };
        self.store(now, &claim)
    }

    /// Forgets tombstones older than the retention time. Cheap unless one is due.
    pub fn expire(&mut self, now: Instant) -> usize {
        if self.next_expiry.is_none_or(|t| t > now) {
            return 0;
        }
        let mut next: Option<Instant> = None;
        let mut forgotten = 0usize;
        self.index.retain(|_, m| {
            if !m.status.is_gone() {
                return true;
            }
            let due = m.expires;
            let keep = due > now;
            if keep {
                next = Some(next.map_or(due, |n| n.min(due)));
            } else {
                forgotten = forgotten.saturating_add(1);
            }
            keep
        });
        self.next_expiry = next;
        self.stats.forgotten = self.stats.forgotten.saturating_add(forgotten as u64);
        forgotten
    }

    /// When the next tombstone is due to be forgotten.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// The 32-byte root of the membership tree.
    pub fn root(&self) -> crate::tree::Root {
        self.index.tree().root()
    }
}

impl<M> Member<M> {
    fn order(&self) -> Version {
        order(self.generation, self.version, self.status)
    }
}

impl<const N: usize, const META: usize, const NODES: usize> HeaplessMembers<N, META, NODES> {
    /// A heapless table holding only ourselves.
    pub fn new_heapless(
        config: MembersConfig,
        key: DigestKey,
        me: NodeId,
        addr: SocketAddr,
        generation: u32,
        meta: &[u8],
    ) -> Result<Self, MemberError> {
        Self::new(
            config,
            key,
            HeaplessTable::new(),
            [0; NODES],
            me,
            addr,
            generation,
            meta,
        )
    }
}

#[cfg(feature = "alloc")]
impl AllocMembers {
    /// A table for up to `limit` members (tombstones included) with a tree of `depth`, holding only
    /// ourselves.
    #[allow(clippy::too_many_arguments)]
    pub fn with_depth(
        config: MembersConfig,
        key: DigestKey,
        depth: u8,
        limit: usize,
        me: NodeId,
        addr: SocketAddr,
        generation: u32,
        meta: &[u8],
    ) -> Result<Self, MemberError> {
        let nodes = crate::tree::Shape::new(depth)
            .ok_or(MemberError::BadTree(BadTreeSize { len: 0 }))?
            .nodes();
        let table = crate::store::HashTable::with_limit(limit);
        Self::new(
            config,
            key,
            table,
            alloc::vec![0; nodes],
            me,
            addr,
            generation,
            meta,
        )
    }
}

impl<M, T, B> Replica for Members<M, T, B>
where
    M: ByteBuf,
    T: Table<Value = Member<M>>,
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
            Some(m) if enc.push(&m.to_wire(now, self.config.retention)) => Encoded::Written,
            Some(_) => Encoded::NoRoom,
        }
    }

    fn check_entries(&self, bytes: &[u8]) -> Result<usize, EntryError> {
        each_entry(
            bytes,
            |m: WireMember<'_>| self.check(&m),
            EntryError::Malformed,
        )
    }

    fn merge_entries(&mut self, now: Instant, bytes: &[u8]) -> Merged {
        Merged::run(bytes, |m: WireMember<'_>| match self.merge(now, &m) {
            Ok(Some(_)) => Tally::Applied,
            Ok(None) => Tally::Stale,
            Err(_) => Tally::Full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tree_size;
    use crate::ClusterId;
    use quickcheck::QuickCheck;
    use std::vec::Vec;

    type Table8 = HeaplessMembers<8, 16, { tree_size(1) }>;
    const ME: NodeId = NodeId(1);

    fn addr(n: u64) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n as u8], 7946))
    }

    fn table() -> Table8 {
        let key = DigestKey::from_cluster(ClusterId(*b"test"));
        Table8::new_heapless(MembersConfig::default(), key, ME, addr(1), 3, b"me").unwrap()
    }

    fn claim(id: u64, generation: u32, version: u64, status: Status) -> WireMember<'static> {
        WireMember {
            id: NodeId(id),
            addr: addr(id),
            generation,
            version,
            status,
            meta: b"",
            age_ms: 0,
        }
    }

    fn state(t: &Table8) -> Vec<(u64, u32, u64, Status)> {
        let mut v: Vec<_> = t
            .iter()
            .map(|m| (m.id.0, m.generation, m.version, m.status))
            .collect();
        v.sort();
        v
    }

    fn status_of(n: u8) -> Status {
        [Status::Alive, Status::Suspect, Status::Dead, Status::Left][usize::from(n % 4)]
    }

    #[test]
    fn merging_claims_in_any_order_gives_the_same_table() {
        fn prop(claims: Vec<(u8, u8, u8, u8)>, rotate: usize) -> bool {
            let claims: Vec<_> = claims
                .iter()
                .map(|&(id, g, v, s)| {
                    claim(
                        2 + u64::from(id % 5),
                        u32::from(g % 3),
                        u64::from(v % 4),
                        status_of(s),
                    )
                })
                .collect();
            let apply = |order: &mut dyn Iterator<Item = &WireMember<'static>>| {
                let mut t = table();
                for c in order {
                    let _ = t.merge(Instant::ZERO, c);
                }
                t
            };
            let forward = apply(&mut claims.iter());
            let backward = apply(&mut claims.iter().rev());
            let k = if claims.is_empty() {
                0
            } else {
                rotate % claims.len()
            };
            let rotated = apply(&mut claims.iter().cycle().skip(k).take(claims.len()));
            let twice = apply(&mut claims.iter().chain(claims.iter()));
            let live = |t: &Table8| t.iter().filter(|m| !m.status.is_gone()).count();
            [&forward, &backward, &rotated, &twice]
                .iter()
                .all(|t| t.live() == live(t))
                && state(&forward) == state(&backward)
                && state(&forward) == state(&rotated)
                && state(&forward) == state(&twice)
                && forward.root() == backward.root()
        }
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop as fn(Vec<(u8, u8, u8, u8)>, usize) -> bool);
    }

    #[test]
    fn lifecycle_events() {
        let mut t = table();
        let now = Instant::from_millis(1000);
        assert_eq!(
            t.merge(now, &claim(2, 0, 0, Status::Alive)),
            Ok(Some(Change::Joined))
        );
        assert_eq!(t.merge(now, &claim(2, 0, 0, Status::Alive)), Ok(None));
        assert_eq!(t.suspect(now, NodeId(2)), Some(Change::Suspected));
        assert_eq!(
            t.merge(now, &claim(2, 0, 1, Status::Alive)),
            Ok(Some(Change::Updated))
        );
        assert_eq!(t.suspect(now, NodeId(2)), Some(Change::Suspected));
        assert_eq!(t.declare_dead(now, NodeId(2)), Some(Change::Failed));
        // A stale alive claim does not resurrect it...
        assert_eq!(t.merge(now, &claim(2, 0, 1, Status::Alive)), Ok(None));
        assert_eq!(t.get(NodeId(2)).unwrap().status(), Status::Dead);
        // ...but the member itself, restarted, does.
        assert_eq!(
            t.merge(now, &claim(2, 1, 0, Status::Alive)),
            Ok(Some(Change::Restarted))
        );
        // A graceful leave outranks a concurrent death at the same version, and is not a failure.
        assert_eq!(t.merge(now, &claim(3, 0, 5, Status::Dead)), Ok(None));
        assert_eq!(
            t.merge(now, &claim(3, 0, 5, Status::Left)),
            Ok(Some(Change::Left))
        );
        assert_eq!(t.merge(now, &claim(3, 0, 5, Status::Dead)), Ok(None));
        assert_eq!(t.count(Status::Left), 1);
    }

    #[test]
    fn another_node_with_our_id_is_reported_once_it_outranks_us_back() {
        let mut t = table();
        let now = Instant::from_millis(5);
        let twin = |version| WireMember {
            addr: addr(9),
            ..claim(1, 3, version, Status::Alive)
        };
        // A record of our generation at another address, even an older one: outranked, so that
        // whoever is there hears of us, but not yet reported (it may be our own past).
        assert_eq!(t.merge(now, &twin(0)), Ok(Some(Change::Refuted)));
        assert_eq!(t.me().unwrap().version(), 1);
        assert_eq!(t.merge(now, &twin(1)), Ok(None), "stale now");
        // It outranks us back: a live node with our id.
        assert_eq!(t.merge(now, &twin(7)), Ok(Some(Change::Twin(addr(9)))));
        assert_eq!(t.me().unwrap().version(), 8);
        assert_eq!(t.me().unwrap().addr(), addr(1));
        assert_eq!(t.stats().twins, 1);
        // Our own record, echoed back from our own address, is no twin.
        assert_eq!(t.merge(now, &claim(1, 3, 8, Status::Alive)), Ok(None));
        assert_eq!(t.stats().twins, 1);
    }

    #[test]
    fn our_past_incarnation_at_an_old_address_is_outranked_and_never_reported() {
        let mut t = table();
        let now = Instant::from_millis(5);
        // A restart at a new address without a raised generation: the old record is newer at
        // first, then stale for good.
        let old = WireMember {
            addr: addr(9),
            ..claim(1, 3, 40, Status::Alive)
        };
        assert_eq!(t.merge(now, &old), Ok(Some(Change::Refuted)));
        for _ in 0..3 {
            assert_eq!(t.merge(now, &old), Ok(None));
        }
        // From an earlier generation: never a twin.
        let older = WireMember {
            addr: addr(8),
            ..claim(1, 2, 99, Status::Alive)
        };
        assert_eq!(t.merge(now, &older), Ok(None));
        assert_eq!(t.stats().twins, 0);
    }

    #[test]
    fn suspicion_of_ourselves_is_refuted() {
        let mut t = table();
        let now = Instant::from_millis(5);
        assert_eq!(
            t.merge(now, &claim(1, 3, 0, Status::Suspect)),
            Ok(Some(Change::Refuted))
        );
        let me = t.me().unwrap();
        assert_eq!(
            (me.status(), me.version(), me.generation()),
            (Status::Alive, 1, 3)
        );
        assert_eq!(
            t.merge(now, &claim(1, 3, 4, Status::Dead)),
            Ok(Some(Change::Refuted))
        );
        assert_eq!(t.me().unwrap().version(), 5);
        // Our own current state echoed back is not news.
        assert_eq!(t.merge(now, &claim(1, 3, 5, Status::Alive)), Ok(None));
        t.leave(now).unwrap();
        assert_eq!(t.me().unwrap().status(), Status::Left);
        assert_eq!(t.merge(now, &claim(1, 3, 9, Status::Dead)), Ok(None));
    }

    #[test]
    fn tombstones_are_forgotten_after_retention_and_never_revived_by_stale_claims() {
        let mut t = table();
        let t0 = Instant::from_millis(10_000_000);
        t.merge(t0, &claim(2, 0, 7, Status::Alive)).unwrap();
        t.merge(t0, &claim(2, 0, 7, Status::Dead)).unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(t.poll_timeout(), Some(t0 + hour));
        assert_eq!(t.expire(t0 + Duration::from_secs(3599)), 0);
        assert_eq!(t.expire(t0 + hour), 1);
        assert!(t.get(NodeId(2)).is_none());
        // An expired tombstone of a live member removes it, and still reports the failure.
        t.merge(t0, &claim(5, 0, 1, Status::Alive)).unwrap();
        let gone = WireMember {
            age_ms: hour.as_millis(),
            ..claim(5, 0, 2, Status::Dead)
        };
        assert_eq!(t.merge(t0, &gone), Ok(Some(Change::Failed)));
        assert!(t.get(NodeId(5)).is_none());
        // A tombstone that is already past retention is not stored.
        let old = WireMember {
            age_ms: hour.as_millis(),
            ..claim(4, 0, 0, Status::Dead)
        };
        assert_eq!(t.merge(t0, &old), Ok(None));
        assert!(t.get(NodeId(4)).is_none());
    }

    #[test]
    fn the_table_and_metadata_are_bounded() {
        let mut t = table();
        let now = Instant::ZERO;
        for id in 2..9 {
            t.merge(now, &claim(id, 0, 0, Status::Alive)).unwrap();
        }
        let before = t.root();
        assert_eq!(
            t.merge(now, &claim(99, 0, 0, Status::Alive)),
            Err(MemberError::Full)
        );
        assert_eq!(t.stats().full, 1);
        let long = WireMember {
            meta: &[0; 17],
            ..claim(2, 0, 1, Status::Alive)
        };
        assert_eq!(t.merge(now, &long), Err(MemberError::MetaTooLong));
        assert_eq!(t.root(), before);
        assert_eq!(t.set_meta(now, &[0; 17]), Err(MemberError::MetaTooLong));
    }
}
