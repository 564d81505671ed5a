//! Laws of reconciliation, checked over random replicas and a lossy link.

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use std::sync::atomic::{AtomicU64, Ordering};
use tidings::data::{AllocData, DataConfig, HeaplessData, WireEntry, WireValue};
use tidings::sync::SyncConfig;
use tidings::tree::tree_size;
use tidings::wire::TreeId;
use tidings::{DigestKey, Duration, Instant, NodeId, Version};
use tidings_sim::pair::{self, Link, Peer};
use tidings_sim::reconcile::same_records;
use tidings_sim::rng::Rng;

/// What the links of a property's runs did, to check that it ran over reordering and duplication
/// (its runs are many and small: a single run may see neither). One per property: tests run in
/// parallel.
struct Seen {
    reordered: AtomicU64,
    duplicated: AtomicU64,
}

impl Seen {
    const fn new() -> Self {
        Seen {
            reordered: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
        }
    }

    fn add(&self, t: &pair::Traffic) {
        self.reordered.fetch_add(t.reordered, Ordering::Relaxed);
        self.duplicated.fetch_add(t.duplicated, Ordering::Relaxed);
    }

    fn assert_both(&self) {
        assert!(
            self.reordered.load(Ordering::Relaxed) > 0,
            "no datagram was reordered"
        );
        assert!(
            self.duplicated.load(Ordering::Relaxed) > 0,
            "no datagram was duplicated"
        );
    }
}

static SEEN_DATA: Seen = Seen::new();
static SEEN_HEAPLESS: Seen = Seen::new();
static SEEN_MEMBERS: Seen = Seen::new();

/// Two replicas' histories: shared writes, then writes and deletes on each side alone.
#[derive(Clone, Debug)]
struct Scenario {
    shared: Vec<(u16, u16)>,
    only_a: Vec<(u16, u16, bool)>,
    only_b: Vec<(u16, u16, bool)>,
    loss_pct: u8,
    depth: u8,
    small_datagrams: bool,
    seed: u64,
}

impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = usize::arbitrary(g) % 300;
        let shared = (0..n)
            .map(|_| (u16::arbitrary(g) % 400, u16::arbitrary(g) % 300))
            .collect();
        let side = |g: &mut Gen| {
            (0..usize::arbitrary(g) % 60)
                .map(|_| {
                    (
                        u16::arbitrary(g) % 400,
                        u16::arbitrary(g) % 300,
                        bool::arbitrary(g),
                    )
                })
                .collect()
        };
        Scenario {
            shared,
            only_a: side(g),
            only_b: side(g),
            loss_pct: u8::arbitrary(g) % 31,
            depth: u8::arbitrary(g) % 4,
            small_datagrams: bool::arbitrary(g),
            seed: u64::arbitrary(g),
        }
    }
}

fn key(k: u16) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

fn value(k: u16, len: u16, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8) ^ (k as u8) ^ salt).collect()
}

fn apply_side(m: &mut AllocData, writes: &[(u16, u16, bool)], salt: u8, now: Instant) {
    for &(k, len, delete) in writes {
        if delete {
            m.delete(now, &key(k)).unwrap();
        } else {
            m.set(now, &key(k), &value(k, len, salt)).unwrap();
        }
    }
}

fn link(s: &Scenario) -> (Link, SyncConfig) {
    let max = if s.small_datagrams { 512 } else { 1200 };
    let sync = SyncConfig {
        max_datagram: max,
        ..SyncConfig::default()
    };
    let link = Link {
        jitter: Duration::from_millis(4),
        duplicate: 0.05,
        latency: Duration::from_millis(3),
        loss: f64::from(s.loss_pct) / 100.0,
        max_datagram: max,
    };
    (link, sync)
}

#[test]
fn any_two_replicas_reconcile_to_equal_roots_and_maps_within_the_datagram_bound() {
    fn prop(s: Scenario) -> TestResult {
        let dk = DigestKey::from_cluster(pair::CLUSTER);
        let config = DataConfig {
            max_value_len: 300,
            ..DataConfig::default()
        };
        let mk =
            |id| AllocData::with_depth(config, NodeId(id), 0, dk, s.depth, usize::MAX).unwrap();
        let (mut a, mut b) = (mk(1), mk(2));
        let now = Instant::from_millis(1_000);
        for (i, &(k, len)) in s.shared.iter().enumerate() {
            let v = value(k, len, 0);
            let e = WireEntry {
                key: &key(k),
                version: Version::new(i as u64 + 1, 9, 0),
                value: WireValue::Live(&v),
            };
            a.merge(now, &e).unwrap();
            b.merge(now, &e).unwrap();
        }
        apply_side(&mut a, &s.only_a, 1, now);
        apply_side(&mut b, &s.only_b, 2, now);
        let (link, sync) = link(&s);
        let (mut pa, mut pb) = (Peer::new(1, a, sync), Peer::new(2, b, sync));
        let mut rng = Rng::new(s.seed);
        let (t, _) = pair::reconcile(&mut pa, &mut pb, TreeId::DATA, link, &mut rng, 200, now);
        SEEN_DATA.add(&t);
        let equal =
            pa.replica.root() == pb.replica.root() && same_records(&pa.replica, &pb.replica);
        if !equal {
            return TestResult::error(format!("not converged after {} rounds: {t:?}", t.rounds));
        }
        if t.max_datagram > link.max_datagram - tidings::wire::TAG_RESERVE {
            return TestResult::error(format!(
                "datagram of {} bytes > {}",
                t.max_datagram, link.max_datagram
            ));
        }
        if t.rejected != 0 {
            return TestResult::error(format!("{} datagrams rejected", t.rejected));
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(150)
        .quickcheck(prop as fn(Scenario) -> TestResult);
    SEEN_DATA.assert_both();
}

#[test]
fn heapless_replicas_reconcile_including_listings_that_span_datagrams() {
    // A depth-0 tree is one leaf: every difference is found through a listing of all 64 entries,
    // which spans several 512-byte datagrams.
    type Small = HeaplessData<128, 16, 64, { tree_size(0) }>;
    let dk = DigestKey::from_cluster(pair::CLUSTER);
    for seed in 0..20u64 {
        let mut rng = Rng::new(seed);
        let mk = |id| Small::new_heapless(DataConfig::default(), NodeId(id), 0, dk).unwrap();
        let (mut a, mut b) = (mk(1), mk(2));
        let now = Instant::from_millis(5);
        for i in 0..64u64 {
            let k = format!("key{i}");
            let e = WireEntry {
                key: k.as_bytes(),
                version: Version::new(i + 1, 7, 0),
                value: WireValue::Live(b"same"),
            };
            a.merge(now, &e).unwrap();
            b.merge(now, &e).unwrap();
        }
        for _ in 0..rng.below(10) {
            let k = format!("key{}", rng.below(80));
            a.set(now, k.as_bytes(), b"from a").unwrap();
        }
        for _ in 0..rng.below(10) {
            let k = format!("key{}", rng.below(80));
            b.delete(now, k.as_bytes()).unwrap();
        }
        let sync = SyncConfig {
            max_datagram: 512,
            ..SyncConfig::default()
        };
        let (mut pa, mut pb) = (Peer::new(1, a, sync), Peer::new(2, b, sync));
        let link = Link {
            jitter: Duration::from_millis(4),
            duplicate: 0.05,
            latency: Duration::from_millis(2),
            loss: 0.1,
            max_datagram: 512,
        };
        let (t, _) = pair::reconcile(&mut pa, &mut pb, TreeId::DATA, link, &mut rng, 100, now);
        SEEN_HEAPLESS.add(&t);
        assert_eq!(pa.replica.root(), pb.replica.root(), "seed {seed}: {t:?}");
        let mut ea: Vec<_> = pa
            .replica
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let mut eb: Vec<_> = pb
            .replica
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        ea.sort();
        eb.sort();
        assert_eq!(ea, eb, "seed {seed}");
        assert!(t.max_datagram <= 512 - tidings::wire::TAG_RESERVE);
    }
    SEEN_HEAPLESS.assert_both();
}

#[test]
fn member_tables_reconcile_whatever_each_side_heard() {
    use tidings::members::{AllocMembers, MembersConfig, Status, WireMember};
    fn prop(
        a_claims: Vec<(u16, u8, u8, u8)>,
        b_claims: Vec<(u16, u8, u8, u8)>,
        loss: u8,
        seed: u64,
    ) -> TestResult {
        let dk = DigestKey::from_cluster(pair::CLUSTER);
        let addr = |n: u16| std::net::SocketAddr::from(([10, 1, (n >> 8) as u8, n as u8], 7946));
        let mk = |id: u16| {
            AllocMembers::with_depth(
                MembersConfig::default(),
                dk,
                2,
                usize::MAX,
                NodeId(u64::from(id)),
                addr(id),
                0,
                b"",
            )
            .unwrap()
        };
        let status = |s: u8| {
            [Status::Alive, Status::Suspect, Status::Dead, Status::Left][usize::from(s % 4)]
        };
        let (mut a, mut b) = (mk(60_000), mk(60_001));
        let now = Instant::from_millis(1);
        for (side, claims) in [(&mut a, &a_claims), (&mut b, &b_claims)] {
            for &(id, g, v, s) in claims {
                let meta = [g; 3];
                let m = WireMember {
                    id: NodeId(u64::from(id % 500)),
                    addr: addr(id % 500),
                    generation: u32::from(g % 3),
                    version: u64::from(v % 5),
                    status: status(s),
                    // Metadata is a function of the claim's (generation, version), as for real members.
                    meta: &meta[..usize::from(v % 5 % 3)],
                    age_ms: 0,
                };
                let _ = side.merge(now, &m);
            }
        }
        let sync = SyncConfig::default();
        let (mut pa, mut pb) = (Peer::new(1, a, sync), Peer::new(2, b, sync));
        let link = Link {
            jitter: Duration::from_millis(4),
            duplicate: 0.05,
            latency: Duration::from_millis(2),
            loss: f64::from(loss % 25) / 100.0,
            max_datagram: 1200,
        };
        let mut rng = Rng::new(seed);
        let (t, _) = pair::reconcile(&mut pa, &mut pb, TreeId::MEMBERS, link, &mut rng, 200, now);
        SEEN_MEMBERS.add(&t);
        if pa.replica.root() != pb.replica.root() {
            return TestResult::error(format!("member roots differ: {t:?}"));
        }
        TestResult::from_bool(
            t.max_datagram <= 1200 - tidings::wire::TAG_RESERVE && t.rejected == 0,
        )
    }
    QuickCheck::new().tests(100).quickcheck(
        prop as fn(Vec<(u16, u8, u8, u8)>, Vec<(u16, u8, u8, u8)>, u8, u64) -> TestResult,
    );
    SEEN_MEMBERS.assert_both();
}
