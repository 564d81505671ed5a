//! The engine's unit tests: exchanges between two replicas through the real message path.
use super::*;
use crate::data::{DataConfig, HeaplessData};
use crate::tree::tree_size;
use crate::wire::{decode, DEFAULT_MAX_DATAGRAM};
use crate::{ClusterId, DigestKey, NodeId, Version};
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

fn deliver<const T: usize>(engine: &mut Engine<T>, m: &mut Map, from: u8, datagrams: &[Vec<u8>]) {
    for d in datagrams {
        let (_, msg) = decode(d, C, DEFAULT_MAX_DATAGRAM).unwrap();
        engine.handle(Instant::ZERO, addr(from), &msg, m).unwrap();
    }
}

#[test]
fn a_fetch_of_positions_that_moved_since_the_listing_still_gets_every_entry_listed() {
    // A lists its leaves to B, which fetches every position; before the fetch arrives, A takes
    // writes in every leaf, so the positions no longer name what was listed.
    let (mut a, mut b) = (map(1, 0..20), map(2, 0..0));
    let listed: Vec<std::vec::Vec<u8>> = a.records().map(|r| r.key().to_vec()).collect();
    let (mut ea, mut eb): (Engine, Engine) = (
        Engine::new(SyncConfig::default()),
        Engine::new(SyncConfig::default()),
    );
    ea.start(addr(2), TreeId::DATA);
    let root = drain(&mut ea, &a, Instant::ZERO);
    deliver(&mut eb, &mut b, 1, &root);
    let digests = drain(&mut eb, &b, Instant::ZERO);
    deliver(&mut ea, &mut a, 2, &digests);
    let listing = drain(&mut ea, &a, Instant::ZERO);
    deliver(&mut eb, &mut b, 1, &listing);
    let fetch = drain(&mut eb, &b, Instant::ZERO);
    assert!(fetch
        .iter()
        .all(|d| decode(d, C, DEFAULT_MAX_DATAGRAM).unwrap().1.kind() == Kind::Fetch));
    for i in 100..160 {
        a.set(Instant::ZERO, std::format!("new{i}").as_bytes(), &[1; 8])
            .unwrap();
    }
    deliver(&mut ea, &mut a, 2, &fetch);
    let entries = drain(&mut ea, &a, Instant::ZERO);
    deliver(&mut eb, &mut b, 1, &entries);
    for k in &listed {
        assert!(b.get(k).is_some(), "a listed key was not sent");
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
        sketch: false,
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
    GroupHead {
        node: empty,
        part: None,
        count: 200,
    }
    .push(&mut enc);
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
    enc.push_raw(&0u32.to_le_bytes());
    crate::wire::push_group_head(
        &mut enc,
        &GroupHead {
            node: 17,
            part: None,
            count: 0,
        },
        3,
    );
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

/// A table of (key hash, version) whose hashes are chosen to share short hashes: a listing's
/// 2-byte short hashes take two values per leaf, so nearly every leaf holds collisions.
struct Crowded {
    entries: std::collections::BTreeMap<u64, Version>,
    tree: crate::tree::Tree<[u64; tree_size(1)]>,
    key: DigestKey,
    /// Whether it claims [`Replica::versions_unique`].
    unique: bool,
    /// Calls to [`Replica::first_in`]: the entries walked.
    walked: std::cell::Cell<usize>,
}

impl Crowded {
    fn new() -> Self {
        Crowded {
            entries: Default::default(),
            tree: crate::tree::Tree::new([0; tree_size(1)]).unwrap(),
            key: DigestKey::from_cluster(C),
            unique: true,
            walked: std::cell::Cell::new(0),
        }
    }

    /// Keys in two leaves; within a leaf, the 16 bits after the leaf's 4 are one of two values, so
    /// a 2-byte short hash is shared by about half the keys of a leaf.
    fn hash(k: u8) -> u64 {
        let leaf = u64::from(k % 2) << 60;
        let short = u64::from(k / 2 % 2) << 44;
        leaf | short | (u64::from(k) << 8) | 1
    }

    fn set(&mut self, h: u64, v: Version) -> bool {
        match self.entries.get(&h).copied() {
            Some(old) if old >= v => false,
            Some(old) => {
                let (o, n) = (self.key.entry_digest(h, old), self.key.entry_digest(h, v));
                self.tree.replace(h, o, n);
                self.entries.insert(h, v);
                true
            }
            None => {
                self.tree.insert(h, self.key.entry_digest(h, v));
                self.entries.insert(h, v);
                true
            }
        }
    }
}

impl Replica for Crowded {
    fn tree(&self) -> crate::tree::TreeView<'_> {
        self.tree.view()
    }
    fn first_in(&self, from: u64, to: u64) -> Option<(u64, Version)> {
        self.walked.set(self.walked.get() + 1);
        self.entries.range(from..=to).next().map(|(&h, &v)| (h, v))
    }
    fn encode_entry(&self, _: Instant, hash: u64, enc: &mut Encoder<'_>) -> Encoded {
        match self.entries.get(&hash) {
            None => Encoded::Missing,
            Some(v) if enc.push(&(hash, *v)) => Encoded::Written,
            Some(_) => Encoded::NoRoom,
        }
    }
    fn check_entries(&self, mut bytes: &[u8]) -> Result<usize, EntryError> {
        let mut n = 0;
        while !bytes.is_empty() {
            bytes = postcard::take_from_bytes::<(u64, Version)>(bytes)
                .map_err(|_| EntryError::Malformed)?
                .1;
            n += 1;
        }
        Ok(n)
    }
    fn merge_entries(&mut self, _: Instant, mut bytes: &[u8]) -> Merged {
        let mut m = Merged::default();
        while let Ok(((h, v), rest)) = postcard::take_from_bytes::<(u64, Version)>(bytes) {
            bytes = rest;
            if self.set(h, v) {
                m.applied += 1;
            } else {
                m.stale += 1;
            }
        }
        m
    }
    fn versions_unique(&self) -> bool {
        self.unique
    }
}

/// Sends what `engine` has for `src` to `dst`; whether anything moved.
fn step<R: Replica>(
    engine: &mut Engine<256>,
    src: &R,
    to: &mut Engine<256>,
    dst: &mut R,
    from: u8,
) -> bool {
    let header = Header::new(C, NodeId(u64::from(from)));
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while let Some(t) = engine.poll_transmit(Instant::ZERO, &header, src, &mut buf) {
        out.push(buf[..t.len].to_vec());
    }
    for d in &out {
        let (_, msg) = decode(d, C, DEFAULT_MAX_DATAGRAM).unwrap();
        to.handle(Instant::ZERO, addr(from), &msg, dst).unwrap();
    }
    !out.is_empty()
}

/// Runs exchanges started by `a` until the roots match: the number of exchanges, or `None`.
fn reconcile_until_equal<R: Replica>(a: &mut R, b: &mut R, max: usize) -> Option<usize> {
    let config = SyncConfig {
        bytes_per_sec: 0,
        ..SyncConfig::default()
    };
    let (mut ea, mut eb): (Engine<256>, Engine<256>) = (Engine::new(config), Engine::new(config));
    for round in 1..=max {
        ea.start(addr(2), TreeId::DATA);
        while step(&mut ea, a, &mut eb, b, 1) | step(&mut eb, b, &mut ea, a, 2) {}
        if a.tree().root() == b.tree().root() {
            return Some(round);
        }
    }
    None
}

/// Two crowded tables built from (side, key, version) writes, and the newest version of each key.
fn crowded_pair(
    unique: bool,
    writes: impl Iterator<Item = (bool, u8, Version)>,
) -> (Crowded, Crowded, std::collections::BTreeMap<u64, Version>) {
    let (mut a, mut b) = (Crowded::new(), Crowded::new());
    (a.unique, b.unique) = (unique, unique);
    let mut newest = std::collections::BTreeMap::new();
    for (side, k, v) in writes {
        let h = Crowded::hash(k % 32);
        let r = if side { &mut a } else { &mut b };
        if r.set(h, v) {
            let e = newest.entry(h).or_insert(v);
            *e = (*e).max(v);
        }
    }
    (a, b, newest)
}

/// Whether exchanges started by `a` leave both with the newest version of every key, within
/// `rounds` exchanges.
fn agree_within(
    (mut a, mut b): (Crowded, Crowded),
    newest: &std::collections::BTreeMap<u64, Version>,
    rounds: usize,
) -> quickcheck::TestResult {
    let Some(took) = reconcile_until_equal(&mut a, &mut b, 4) else {
        return quickcheck::TestResult::error("no agreement in 4 exchanges");
    };
    let agreed = a.entries == b.entries
        && a.entries.iter().all(|(h, v)| newest.get(h) == Some(v))
        && a.entries.len() == newest.len();
    quickcheck::TestResult::from_bool(agreed && took <= rounds)
}

#[test]
fn shared_short_hashes_never_lose_an_entry() {
    // Versions are unique.
    fn prop(ops: Vec<(bool, u8, u16)>) -> quickcheck::TestResult {
        let writes = ops
            .iter()
            .enumerate()
            .map(|(n, &(side, k, major))| (side, k, Version::new(u64::from(major), n as u64, 0)));
        let (a, b, newest) = crowded_pair(true, writes);
        let crowded = [&a, &b].iter().any(|r| {
            let shorts: Vec<u64> = r
                .entries
                .keys()
                .map(|&h| crate::wire::short_hash(h, 1, 2))
                .collect();
            shorts.windows(2).any(|w| w[0] == w[1])
        });
        if !crowded {
            return quickcheck::TestResult::discard();
        }
        agree_within((a, b), &newest, 3)
    }
    quickcheck::QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<(bool, u8, u16)>) -> quickcheck::TestResult);
}

#[test]
fn keys_that_share_a_short_hash_and_a_version_are_told_apart_by_check_bytes() {
    // As in member tables, versions do not tell keys apart. Each side holds at most one key per
    // short hash, so no short hash repeats on a side, and in at least one of them the two sides
    // hold different keys of the same version: they pass for one entry but for the check bytes.
    fn prop(slots: Vec<(Option<u8>, Option<u8>, bool, bool)>) -> quickcheck::TestResult {
        // `Crowded::hash` gives keys `s + 4 j` (j < 8) the same short hash, one per slot s < 4.
        let slots: Vec<_> = slots.into_iter().take(4).collect();
        let key = |s: usize, j: u8| s as u8 + 4 * (j % 8);
        let version = |later: bool| Version::new(1 + u64::from(later), 0, 0);
        let hidden = slots.iter().enumerate().any(|(s, &(a, b, va, vb))| {
            matches!((a, b), (Some(x), Some(y)) if key(s, x) != key(s, y)) && va == vb
        });
        if !hidden {
            return quickcheck::TestResult::discard();
        }
        let writes = slots.iter().enumerate().flat_map(|(s, &(a, b, va, vb))| {
            let a = a.map(|j| (true, key(s, j), version(va)));
            a.into_iter()
                .chain(b.map(|j| (false, key(s, j), version(vb))))
        });
        let (a, b, newest) = crowded_pair(false, writes);
        agree_within((a, b), &newest, 2)
    }
    quickcheck::QuickCheck::new().tests(300).quickcheck(
        prop as fn(Vec<(Option<u8>, Option<u8>, bool, bool)>) -> quickcheck::TestResult,
    );
}

#[test]
fn a_listing_of_the_whole_root_walks_no_further_than_the_queue_takes() {
    // A peer lists our root with no summaries: every entry of ours is newer, and the walk stops
    // when the queue is full, not at the end of a table of 20,000 entries.
    let mut ours = Crowded::new();
    for i in 0..20_000u64 {
        ours.set(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), Version::new(1, i, 0));
    }
    let mut buf = [0u8; 64];
    let mut enc = Encoder::new(&mut buf, &Header::new(C, NodeId(2)), Kind::Listing).unwrap();
    enc.push(&TreeId::DATA);
    enc.push_raw(&0u32.to_le_bytes());
    let head = GroupHead {
        node: 0,
        part: None,
        count: 0,
    };
    crate::wire::push_group_head(&mut enc, &head, 8);
    let n = enc.finish();
    let (_, listing) = decode(&buf[..n], C, DEFAULT_MAX_DATAGRAM).unwrap();
    let mut e: Engine = Engine::new(SyncConfig::default());
    e.handle(Instant::ZERO, addr(2), &listing, &mut ours)
        .unwrap();
    // The queue's 32 tasks and the batch being filled, and a look past the last.
    let queued = (32 + 1) * HASHES_PER_TASK;
    assert!(ours.walked.get() <= queued + 2, "{}", ours.walked.get());
    assert!(e.stats().dropped > 0, "the refusal is counted");
}
