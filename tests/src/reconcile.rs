//! The reconciliation benchmark: two replicas of `keys` keys that differ in `diff`, repaired through the
//! real message path.

use crate::pair::{self, Link, Peer};
use crate::rng::Rng;
use serde::Serialize;
use tidings::data::{alloc_tree, AllocData, DataConfig, WireEntry, WireValue};
use tidings::store::HashTable;
use tidings::sync::SyncConfig;
use tidings::tree::depth_for;
use tidings::wire::TreeId;
use tidings::{DigestKey, Duration, Instant, NodeId, Version};

/// Parameters of one run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Keys in each replica.
    pub keys: u64,
    /// Keys changed on one side only.
    pub diff: u64,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Seed of keys, values, the choice of differing keys and losses.
    pub seed: u64,
    /// Datagram loss probability.
    pub loss: f64,
    /// Tree depth; `None` picks one for about 16 keys per leaf.
    pub depth: Option<u8>,
    /// Pacing of each side in bytes per second (0 = unpaced).
    pub rate: u32,
    /// Sketch capacity of each side (0: none).
    pub sketch: usize,
}

/// The report, one JSON object with exactly these fields.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// Keys per replica.
    pub keys: u64,
    /// Differing keys.
    pub diff: u64,
    /// Bytes of all datagrams that carried no entry: the cost of finding the differences.
    pub identify_bytes: u64,
    /// Identify bytes by message kind: `root`, `digests`, `listing`, `fetch`, `sketch`.
    pub identify: Identify,
    /// Encoded size of the entries shipped.
    pub payload_bytes: u64,
    /// Everything on the wire.
    pub total_bytes: u64,
    /// Request/response exchanges on the longest causal chain. A side's datagram counts one deeper
    /// than the deepest it received before sending, so a paced transfer also counts the round trips
    /// its own length takes.
    pub round_trips: u32,
    /// Exchanges started (a refused or lost part of one is found again by the next).
    pub exchanges: u32,
    /// Work the engines refused for lack of room in their queues.
    pub dropped: u64,
    /// Virtual time from the first datagram until both sides are equal (1 ms each way).
    pub secs: f64,
    /// When paced: the busiest side's bytes at the rate plus one link latency, a time no schedule can
    /// beat (0 unpaced). `secs` over this is how close the exchange comes to the link's limit.
    pub paced_floor_secs: f64,
    /// Datagrams sent.
    pub datagrams: u64,
    /// Largest datagram.
    pub max_datagram: usize,
    /// Whether both roots and both maps are equal afterwards.
    pub converged: bool,
    /// Sketches that decoded, and that did not (the drill-down took over), over both sides.
    pub sketches: Sketches,
}

/// What became of the sketches sent.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Sketches {
    /// Sketches sent.
    pub sent: u64,
    /// Sketches that decoded.
    pub decoded: u64,
    /// Sketches that did not.
    pub failed: u64,
}

fn key_of(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

/// Identify bytes by message kind.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Identify {
    /// Root messages.
    pub root: u64,
    /// Child fingerprints.
    pub digests: u64,
    /// Listings of short key hashes and versions.
    pub listing: u64,
    /// Fetch bitmaps, and wants of key hashes.
    pub fetch: u64,
    /// Sketches.
    pub sketch: u64,
}

/// Builds the two replicas and reconciles them.
pub fn run(p: Params) -> Report {
    let digest_key = DigestKey::from_cluster(pair::CLUSTER);
    let depth = p.depth.unwrap_or_else(|| depth_for(p.keys, 16));
    let config = DataConfig {
        max_value_len: p.value_bytes.max(1024),
        ..DataConfig::default()
    };
    let make = |id| {
        let table = HashTable::with_limit(usize::MAX);
        let tree = alloc_tree(depth, p.sketch);
        AllocData::new(config, NodeId(id), 0, digest_key, table, tree).expect("valid depth")
    };
    let (mut a, mut b) = (make(1), make(2));
    let mut rng = Rng::new(p.seed);
    let mut value = vec![0u8; p.value_bytes];
    let now = Instant::from_millis(0);
    for i in 0..p.keys {
        rng.fill(&mut value);
        let entry = WireEntry {
            key: &key_of(i),
            version: Version::new(1 + i, 0, 0),
            value: WireValue::Live(&value),
        };
        a.merge(now, &entry).expect("fits");
        b.merge(now, &entry).expect("fits");
    }
    // Distinct keys, each changed on one side.
    let mut chosen = std::collections::HashSet::new();
    while (chosen.len() as u64) < p.diff.min(p.keys) {
        chosen.insert(rng.below(p.keys));
    }
    let mut chosen: Vec<u64> = chosen.into_iter().collect();
    chosen.sort_unstable();
    for (n, i) in chosen.into_iter().enumerate() {
        rng.fill(&mut value);
        let side = if n % 2 == 0 { &mut a } else { &mut b };
        side.set(now, &key_of(i), &value).expect("fits");
    }
    let sync = SyncConfig {
        bytes_per_sec: p.rate,
        ..SyncConfig::default()
    };
    let mut pa = Peer::new(1, a, sync);
    let mut pb = Peer::new(2, b, sync);
    let link = Link {
        jitter: Duration::ZERO,
        duplicate: 0.0,
        latency: Duration::from_millis(1),
        loss: p.loss,
        max_datagram: sync.max_datagram,
    };
    let (t, end) = pair::reconcile(&mut pa, &mut pb, TreeId::DATA, link, &mut rng, 100, now);
    let converged =
        pa.replica.root() == pb.replica.root() && same_records(&pa.replica, &pb.replica);
    let (sa, sb) = (pa.engine.stats(), pb.engine.stats());
    Report {
        keys: p.keys,
        diff: p.diff,
        identify_bytes: t.identify_bytes,
        identify: Identify {
            root: t.identify_by_kind[0],
            digests: t.identify_by_kind[1],
            listing: t.identify_by_kind[2],
            fetch: t.identify_by_kind[3],
            sketch: t.identify_by_kind[4],
        },
        payload_bytes: t.payload_bytes,
        total_bytes: t.bytes,
        round_trips: t.round_trips,
        exchanges: t.rounds,
        dropped: t.dropped,
        secs: end.saturating_since(now).as_millis() as f64 / 1000.0,
        paced_floor_secs: match p.rate {
            0 => 0.0,
            rate => {
                let busiest = t.bytes_by_side[0].max(t.bytes_by_side[1]);
                let floor =
                    busiest as f64 / f64::from(rate) + link.latency.as_millis() as f64 / 1e3;
                (floor * 1e4).round() / 1e4
            }
        },
        datagrams: t.datagrams,
        max_datagram: t.max_datagram,
        converged,
        sketches: Sketches {
            sent: sa.sketches_sent + sb.sketches_sent,
            decoded: sa.sketches_decoded + sb.sketches_decoded,
            failed: sa.sketches_failed + sb.sketches_failed,
        },
    }
}

/// Whether two maps hold the same records (key, version, value or tombstone).
pub fn same_records(a: &AllocData, b: &AllocData) -> bool {
    a.records().count() == b.records().count()
        && a.records().all(|r| {
            b.record(r.key())
                .is_some_and(|o| o.version() == r.version() && o.value() == r.value())
        })
}
