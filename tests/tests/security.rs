//! Replays never move state backwards; floods of invented members and keys stay within the bounds.

use quickcheck::{Arbitrary, Gen, QuickCheck};
use std::collections::BTreeMap;
use tidings::config::Config;
use tidings::data::{WireEntry, WireValue};
use tidings::members::{Status, WireMember};
use tidings::node::{AllocStorage, Node, Rumor};
use tidings::wire::{Encoder, Header, Kind, ENCRYPTED, TAG_RESERVE};
use tidings::{ClusterId, Duration, Instant, NodeId, Version};
use tidings_sim::cluster::Cluster;
use tidings_sim::scenario::{lan, template, Seal};

/// Every node's view as comparable versions: members by id, keys by name.
type View = BTreeMap<(usize, u8, Vec<u8>), (u32, u64, u8, Version)>;

fn rank(s: Status) -> u8 {
    match s {
        Status::Alive => 0,
        Status::Suspect => 1,
        Status::Dead => 2,
        Status::Left => 3,
    }
}

fn view(c: &Cluster) -> View {
    let mut v = View::new();
    for i in c.running() {
        let n = c.node(i).unwrap();
        for m in n.members().iter() {
            let key = (i, 0, m.id().0.to_le_bytes().to_vec());
            v.insert(
                key,
                (
                    m.generation(),
                    m.version(),
                    rank(m.status()),
                    Version::default(),
                ),
            );
        }
        for r in n.data().records() {
            v.insert((i, 1, r.key().to_vec()), (0, 0, 0, r.version()));
        }
    }
    v
}

/// Whether nothing in `after` is older than in `before` (or gone).
fn no_step_back(before: &View, after: &View) -> bool {
    before.iter().all(|(k, old)| {
        after.get(k).is_some_and(|new| {
            let member = k.1 == 0;
            if member {
                // (generation, version) never decrease; at equal ones, status only rises.
                (new.0, new.1, new.2) >= (old.0, old.1, old.2)
            } else {
                new.3 >= old.3
            }
        })
    })
}

#[derive(Clone, Debug)]
struct Replays {
    nodes: usize,
    writes: Vec<(u8, u8)>,
    picks: Vec<(u16, u8, u16)>,
    seed: u64,
}

impl Arbitrary for Replays {
    fn arbitrary(g: &mut Gen) -> Self {
        Replays {
            nodes: 2 + usize::arbitrary(g) % 5,
            writes: Vec::arbitrary(g),
            picks: Vec::arbitrary(g),
            seed: u64::arbitrary(g),
        }
    }
}

fn replays_never_move_state_backwards(r: Replays) -> bool {
    replayed(r, Seal::Sign)
}

fn replays_of_encrypted_datagrams_never_move_state_backwards(r: Replays) -> bool {
    replayed(r, Seal::Encrypt)
}

fn replayed(r: Replays, seal: Seal) -> bool {
    let mut config = template(8);
    config.auth = seal.keyring();
    let mut c = Cluster::converged(config, lan(0.0), r.nodes, r.seed);
    c.capture = true;
    for (k, &(who, key)) in r.writes.iter().enumerate() {
        let host = usize::from(who) % r.nodes;
        let key = [b'k', key % 8];
        c.with_node(host, |n, now| {
            if k % 3 == 2 {
                let _ = n.delete(now, &key);
            } else {
                let _ = n.set(now, &key, &[k as u8]);
            }
        });
        c.run_for(Duration::from_millis(300));
    }
    if r.nodes > 2 {
        c.with_node(r.nodes - 1, |n, now| n.leave(now));
    }
    c.run_for(Duration::from_secs(10));
    c.capture = false;
    let captured = std::mem::take(&mut c.captured);
    if captured.is_empty() {
        return true;
    }
    for &(which, to, wait) in &r.picks {
        let (from, orig_to, bytes) = &captured[usize::from(which) % captured.len()];
        // Back to its receiver, or to anyone else, some time later.
        let to = if to % 2 == 0 {
            *orig_to
        } else {
            usize::from(to) % r.nodes
        };
        c.run_for(Duration::from_millis(u64::from(wait % 5_000)));
        let before = view(&c);
        c.inject(*from, to, bytes);
        if !no_step_back(&before, &view(&c)) {
            eprintln!("replaying datagram {which} to {to} moved state back");
            return false;
        }
    }
    true
}

#[test]
fn replaying_captured_datagrams_never_moves_state_backwards() {
    QuickCheck::new()
        .tests(100)
        .quickcheck(replays_never_move_state_backwards as fn(Replays) -> bool);
}

#[test]
fn replaying_captured_encrypted_datagrams_never_moves_state_backwards() {
    QuickCheck::new().tests(40).quickcheck(
        replays_of_encrypted_datagrams_never_move_state_backwards as fn(Replays) -> bool,
    );
}

/// A cluster under `seal` at work: writes spread by gossip, a burst too large for gossip repaired by
/// anti-entropy, a node that joins, one that crashes and one that restarts. Every datagram, as
/// sent, and the cluster.
fn captured_traffic(seal: Seal) -> (Vec<Vec<u8>>, Cluster) {
    let config = Config {
        auth: seal.keyring(),
        ..template(8)
    };
    let mut c = Cluster::converged(config, lan(0.01), 6, 5);
    c.capture = true;
    c.with_node(0, |n, now| {
        n.set(now, b"secret-key-0", b"recognisable-value-0")
    })
    .unwrap()
    .unwrap();
    c.run_for(Duration::from_secs(2));
    c.with_node(1, |n, now| {
        for k in 0..300u32 {
            let key = format!("secret-key-{k}");
            let value = format!("recognisable-value-{k}");
            n.set(now, key.as_bytes(), value.as_bytes()).unwrap();
        }
    });
    let newcomer = c.join_new(2);
    c.crash(3);
    c.run_for(Duration::from_secs(5));
    c.restart(3, 0);
    c.run_for(Duration::from_secs(40));
    assert!(c.data_agrees() && c.members_agree(), "{seal:?}: converged");
    let held = c.node(newcomer).unwrap().data().records().count();
    assert_eq!(held, 300, "{seal:?}: the newcomer holds every key");
    let captured = std::mem::take(&mut c.captured);
    (captured.into_iter().map(|(_, _, d)| d).collect(), c)
}

fn shows(datagram: &[u8], needle: &[u8]) -> bool {
    datagram.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_capture_of_an_encrypted_cluster_never_shows_a_written_key_or_value() {
    let (captured, _) = captured_traffic(Seal::Encrypt);
    assert!(captured.len() > 1_000, "{} datagrams", captured.len());
    let entries = captured.iter().filter(|d| d.len() > 600).count();
    assert!(
        entries > 5,
        "anti-entropy shipped entries: {entries} large datagrams"
    );
    for d in &captured {
        assert_ne!(d[2] & ENCRYPTED, 0, "every datagram is encrypted");
        assert!(d.len() <= 1200);
        assert!(
            !shows(d, b"secret-key") && !shows(d, b"recognisable-value"),
            "a key or value in plain text: {d:?}"
        );
    }
    // The search finds them where they are: signed but not encrypted, the same traffic shows both.
    let (captured, _) = captured_traffic(Seal::Sign);
    let plain = captured
        .iter()
        .filter(|d| shows(d, b"secret-key") && shows(d, b"recognisable-value"))
        .count();
    assert!(plain > 5, "{plain}");
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

#[test]
fn a_million_invented_members_and_keys_stay_within_the_bounds() {
    let cluster = ClusterId(*b"fld1");
    let mut config = Config::lan(cluster, NodeId(1));
    config.max_members = 1_000;
    config.max_keys = 10_000;
    let now = Instant::from_millis(1_000);
    let me = "10.0.0.1:7946".parse().unwrap();
    let mut node = Node::<AllocStorage>::new(config, now, me, b"", 1).unwrap();
    let attacker = "10.9.9.9:7946".parse().unwrap();
    let header = Header::new(cluster, NodeId(999_999_999));
    let mut out = [0u8; 1500];
    let start_rss = rss_kib();
    let (mut members_sent, mut keys_sent, mut next) = (0u64, 0u64, 2u64);
    let mut buf = [0u8; 1200];
    while members_sent < 1_000_000 || keys_sent < 1_000_000 {
        let mut e = Encoder::new(&mut buf[..1200 - TAG_RESERVE], &header, Kind::Gossip).unwrap();
        loop {
            let id = next;
            let key = id.to_le_bytes();
            let rumor = if members_sent < 1_000_000 && id % 2 == 0 {
                Rumor::Member(WireMember {
                    id: NodeId(id),
                    addr: attacker,
                    generation: 0,
                    version: 0,
                    status: Status::Alive,
                    meta: b"invented",
                    age_ms: 0,
                })
            } else {
                Rumor::Data(WireEntry {
                    key: &key,
                    version: Version {
                        major: 1,
                        minor: id,
                        tie: 0,
                    },
                    value: WireValue::Live(b"invented value"),
                })
            };
            if !e.push(&rumor) {
                break;
            }
            match rumor {
                Rumor::Member(_) => members_sent += 1,
                _ => keys_sent += 1,
            }
            next += 1;
        }
        let len = e.finish();
        let _ = node.handle_datagram(now, attacker, &mut buf[..len]);
        while node.poll_transmit(now, &mut out).is_some() {}
        while node.poll_event().is_some() {}
    }
    let grew = rss_kib().saturating_sub(start_rss);
    eprintln!(
        "flood: {members_sent} members and {keys_sent} keys announced; held {} members and {} keys; \
         refused {} members and {} keys as full; resident memory grew {grew} KiB",
        node.members().len(),
        node.data().records().count(),
        node.members().stats().full,
        node.data().stats().full,
    );
    assert!(node.members().len() <= 1_000);
    assert!(node.data().records().count() <= 10_000);
    assert!(
        node.members().stats().full >= 999_000,
        "refusals are counted"
    );
    assert!(node.data().stats().full >= 990_000, "refusals are counted");
    assert!(grew < 64 * 1024, "memory grew {grew} KiB");
}
