//! A small cluster in simulated time, on an in-memory network.

use super::*;
use crate::members::WireMember;
use crate::tree::tree_size;
use crate::wire::{self, Encoder, Header, Kind, Message, TAG_RESERVE};
use crate::ClusterId;
use std::vec;
use std::vec::Vec as StdVec;

type Small = HeaplessStorage<16, 16, { tree_size(1) }, 64, 32, 64, { tree_size(1) }>;

struct Cluster {
    nodes: StdVec<Node<Small>>,
    up: StdVec<bool>,
    flight: StdVec<(Instant, usize, SocketAddr, StdVec<u8>)>,
    now: Instant,
    events: StdVec<StdVec<Event<heapless::Vec<u8, 32>>>>,
}

/// The LAN preset with the depth-1 trees of [`Small`].
fn lan(cluster: ClusterId, node: NodeId) -> Config {
    Config {
        members_depth: 1,
        data_depth: 1,
        ..Config::lan(cluster, node)
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7946))
}

impl Cluster {
    fn new(n: usize) -> Self {
        Self::with_swim(n, crate::config::SwimConfig::lan())
    }

    fn with_swim(n: usize, swim: crate::config::SwimConfig) -> Self {
        let now = Instant::from_millis(1_000);
        let nodes = (0..n)
            .map(|i| {
                let config = Config {
                    swim,
                    ..lan(ClusterId(*b"test"), NodeId(i as u64 + 1))
                };
                Node::<Small>::new(config, now, addr(i), b"", i as u64).unwrap()
            })
            .collect();
        Cluster {
            nodes,
            up: vec![true; n],
            flight: StdVec::new(),
            now,
            events: vec![StdVec::new(); n],
        }
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 1500];
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].poll_transmit(self.now, &mut buf) {
                assert!(t.len <= 1200 - TAG_RESERVE);
                if self.up[i] {
                    let to = (0..self.nodes.len()).find(|&j| addr(j) == t.to);
                    if let Some(to) = to {
                        self.flight.push((
                            self.now + Duration::from_millis(1),
                            to,
                            addr(i),
                            buf[..t.len].to_vec(),
                        ));
                    }
                }
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events[i].push(e);
            }
        }
    }

    fn run_until(&mut self, until: Instant) {
        self.drain();
        while self.now < until {
            let up = &self.up;
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| up[*i])
                .filter_map(|(_, n)| n.poll_timeout())
                .min();
            let next_rx = self.flight.iter().map(|f| f.0).min();
            let next = [next_timer, next_rx, Some(until)]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            // Never stand still: a timer already due is served at the next millisecond.
            self.now = self.now.max(next).max(self.now + Duration::from_millis(1));
            let (due, rest): (StdVec<_>, StdVec<_>) =
                self.flight.drain(..).partition(|f| f.0 <= self.now);
            self.flight = rest;
            for (_, to, from, mut bytes) in due {
                if self.up[to] {
                    self.nodes[to]
                        .handle_datagram(self.now, from, &mut bytes)
                        .unwrap();
                }
            }
            for i in 0..self.nodes.len() {
                if self.up[i] {
                    self.nodes[i].handle_timeout(self.now);
                }
            }
            self.drain();
        }
    }

    fn secs(&mut self, s: u64) {
        let until = self.now + Duration::from_secs(s);
        self.run_until(until);
    }

    fn status(&self, at: usize, of: usize) -> Option<Status> {
        self.nodes[at]
            .members()
            .get(NodeId(of as u64 + 1))
            .map(|m| m.status())
    }

    fn joined(n: usize) -> Self {
        let mut c = Cluster::new(n);
        for i in 1..n {
            c.nodes[i].join(addr(0));
        }
        c.secs(5);
        c
    }
}

#[test]
fn a_storage_tree_of_another_depth_is_refused() {
    let config = Config::lan(ClusterId(*b"test"), NodeId(1));
    let r = Node::<Small>::new(config, Instant::ZERO, addr(0), b"", 1);
    assert!(matches!(
        r,
        Err(NodeError::MemberTreeDepth {
            configured: 2,
            storage: 1
        })
    ));
}

#[test]
fn nodes_join_through_a_seed_and_agree() {
    let c = Cluster::joined(5);
    for a in 0..5 {
        for b in 0..5 {
            assert_eq!(c.status(a, b), Some(Status::Alive), "node {a} on node {b}");
        }
    }
    assert!(c.events[1].contains(&Event::MemberJoined(NodeId(3))));
}

#[test]
fn a_newcomer_is_fed_the_members_within_one_round_trip() {
    let mut c = Cluster::new(9);
    for i in 1..8 {
        c.nodes[i].join(addr(0));
    }
    c.secs(5);
    // Any member will do as a seed: its feed (its own record and a sample of members) answers
    // the newcomer's first datagram, before any table exchange could finish.
    c.nodes[8].join(addr(3));
    let until = c.now + Duration::from_millis(2);
    c.run_until(until);
    assert_eq!(c.nodes[8].members().live(), 9);
    assert_eq!(c.status(3, 8), Some(Status::Alive));
    // The seed fed the newcomer; the newcomer, alone until then, fed no one back.
    assert_eq!(c.nodes[3].stats().feeds, 1);
    assert_eq!(c.nodes[8].stats().feeds, 0);
    let joined = c.events[8]
        .iter()
        .filter(|e| matches!(e, Event::MemberJoined(_)))
        .count();
    assert_eq!(joined, 8);
}

#[test]
fn only_newcomers_speaking_from_their_own_address_are_fed_and_feeds_are_paced() {
    let now = Instant::from_millis(1_000);
    let mut config = lan(ClusterId(*b"test"), NodeId(1));
    let max = config.sync.max_datagram as u32;
    // Feeds get half the burst: four datagrams.
    config.sync.burst_bytes = 8 * max;
    config.sync.bytes_per_sec = 80 * max;
    let mut n = Node::<Small>::new(config, now, addr(0), b"", 1).unwrap();
    // A Gossip datagram from `from` whose sender `id` introduces itself at `at`.
    let intro = |n: &mut Node<Small>, id: u64, at: SocketAddr, from: SocketAddr| {
        let mut buf = [0u8; 1200];
        let header = Header::new(ClusterId(*b"test"), NodeId(id));
        let mut e = Encoder::new(&mut buf, &header, Kind::Gossip).unwrap();
        assert!(e.push(&Rumor::Member(WireMember {
            id: NodeId(id),
            addr: at,
            generation: 0,
            version: 0,
            status: Status::Alive,
            meta: b"",
            age_ms: 0,
        })));
        let len = e.finish();
        n.handle_datagram(now, from, &mut buf[..len]).unwrap();
    };
    // Alone, a node has nothing to feed (this is also a joiner hearing from its seed).
    intro(&mut n, 2, addr(1), addr(1));
    assert_eq!(n.stats().feeds, 0);
    // A record for one address arriving from another draws nothing to the sender.
    intro(&mut n, 3, addr(2), addr(9));
    assert_eq!((n.stats().feeds, n.stats().feeds_withheld), (0, 0));
    // Twelve introductions at once: the burst is fed, the rest withheld and counted.
    for id in 4..16 {
        intro(&mut n, id, addr(id as usize - 1), addr(id as usize - 1));
    }
    assert_eq!((n.stats().feeds, n.stats().feeds_withheld), (4, 8));
    let mut out = [0u8; 1500];
    let mut fed = StdVec::new();
    while let Some(t) = n.poll_transmit(now, &mut out) {
        assert!(t.len <= 1200);
        fed.push(t.to);
    }
    assert_eq!(fed, (3..7).map(addr).collect::<StdVec<_>>());
}

#[test]
fn writes_spread_by_gossip_within_two_seconds() {
    let mut c = Cluster::joined(5);
    let now = c.now;
    c.nodes[2].set(now, b"colour", b"blue").unwrap();
    c.secs(2);
    for i in 0..5 {
        assert_eq!(c.nodes[i].get(b"colour"), Some(&b"blue"[..]), "node {i}");
    }
    let key = heapless::Vec::from_slice(b"colour").unwrap();
    assert!(c.events[0].contains(&Event::DataChanged(key)));
}

#[test]
fn every_write_reaches_every_member_of_a_small_cluster_in_its_first_gossip_round() {
    // The `local` preset retransmits a change only twice in a cluster this small: both must go to
    // distinct members, or one member waits for anti-entropy (15 s).
    let mut c = Cluster::with_swim(3, crate::config::SwimConfig::local());
    for i in 1..3 {
        c.nodes[i].join(addr(0));
    }
    c.secs(5);
    for k in 0..60u32 {
        let writer = k as usize % 3;
        let key = std::format!("k{k}");
        let now = c.now;
        c.nodes[writer].set(now, key.as_bytes(), b"v").unwrap();
        // One gossip interval (100 ms) and the flight.
        let until = c.now + Duration::from_millis(120);
        c.run_until(until);
        for i in 0..3 {
            assert!(
                c.nodes[i].get(key.as_bytes()).is_some(),
                "{key} from node {writer} missing on node {i}"
            );
        }
    }
}

#[test]
fn changes_beyond_the_event_queue_wait_for_room_and_no_event_is_dropped() {
    // An event queue of 8, as on a microcontroller: one datagram of 40 writes holds more changes.
    type Tiny = Node<Small, 32, 8>;
    let node = |i: u64| {
        let c = lan(ClusterId(*b"test"), NodeId(i + 1));
        Tiny::new(c, Instant::from_millis(1_000), addr(i as usize), b"", i).unwrap()
    };
    let (mut a, mut b) = (node(0), node(1));
    b.join(addr(0));
    let mut seen = StdVec::new();
    let mut buf = [0u8; 1500];
    for step in 0..500u64 {
        let t = Instant::from_millis(1_000 + step * 10);
        if step == 100 {
            for i in 0..40u8 {
                a.set(t, &[b'k', i], b"v").unwrap();
            }
        }
        a.handle_timeout(t);
        b.handle_timeout(t);
        // Events are taken after every input, as a driver does.
        while b.poll_event().map(|e| seen.push(e)).is_some() {}
        while let Some(tx) = a.poll_transmit(t, &mut buf) {
            let _ = b.handle_datagram(t, addr(0), &mut buf[..tx.len]);
            while b.poll_event().map(|e| seen.push(e)).is_some() {}
        }
        while let Some(tx) = b.poll_transmit(t, &mut buf) {
            let _ = a.handle_datagram(t, addr(1), &mut buf[..tx.len]);
            while a.poll_event().is_some() {}
        }
    }
    for i in 0..40u8 {
        assert_eq!(b.get(&[b'k', i]), Some(&b"v"[..]));
    }
    let changed: std::collections::BTreeSet<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::DataChanged(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(changed.len(), 40, "every change reported");
    assert!(!seen.iter().any(|e| matches!(e, Event::Lagged(_))));
    assert_eq!(b.stats().events_dropped, 0);
    assert!(
        b.stats().changes_deferred > 0,
        "some changes waited for room"
    );
}

#[test]
fn entries_repaired_by_anti_entropy_are_counted_in_the_sync_stats() {
    let mut c = Cluster::joined(3);
    c.up[2] = false;
    let now = c.now;
    for i in 0..10u8 {
        c.nodes[0].set(now, &[b'k', i], b"v").unwrap();
    }
    // Long enough for the rumors to be spent while node 2 is away.
    c.secs(5);
    c.up[2] = true;
    c.secs(70);
    for i in 0..10u8 {
        assert_eq!(c.nodes[2].get(&[b'k', i]), Some(&b"v"[..]));
    }
    let s = c.nodes[2].sync_stats();
    assert!(s.applied >= 1, "{s:?}");
}

#[test]
fn a_full_outgoing_queue_refuses_counted_and_a_small_buffer_keeps_the_datagram() {
    let mut c = Cluster::joined(2);
    let now = c.now;
    let header = c.nodes[0].config().header();
    for seq in 0..136u32 {
        let mut buf = [0u8; 64];
        let mut e = Encoder::new(&mut buf, &header, Kind::Ping).unwrap();
        e.push(&Probe {
            seq,
            target: NodeId(2),
        });
        let n = e.finish();
        c.nodes[1]
            .handle_datagram(now, addr(0), &mut buf[..n])
            .unwrap();
    }
    // 136 acks, a queue of 128: the rest are refused and counted, not lost silently.
    assert_eq!(c.nodes[1].stats().out_dropped, 8);
    let mut tiny = [0u8; 8];
    assert!(c.nodes[1].poll_transmit(now, &mut tiny).is_none());
    let mut buf = [0u8; 1500];
    let t = c.nodes[1].poll_transmit(now, &mut buf).unwrap();
    assert_eq!((t.to, t.kind), (addr(0), Kind::Ack));
}

#[test]
fn the_node_says_why_it_wakes() {
    let mut c = Cluster::joined(2);
    let n = &c.nodes[0];
    let (at, why) = n.poll_wake().unwrap();
    assert_eq!(Some(at), n.poll_timeout());
    assert_eq!(n.deadline(why), Some(at));
    // Node 1 stops answering: once node 0 has probed it, the next timer of the probe cycle is the
    // indirect probe, before the next probe.
    c.up[1] = false;
    let probe_at = c.nodes[0].deadline(Wake::Probe).unwrap();
    c.run_until(probe_at);
    let n = &c.nodes[0];
    let indirect = n
        .deadline(Wake::IndirectProbe)
        .expect("an indirect probe is due");
    assert!(indirect < n.deadline(Wake::Probe).unwrap());
}

#[test]
fn new_metadata_reaches_every_member_and_too_long_metadata_changes_nothing() {
    let mut c = Cluster::joined(3);
    let now = c.now;
    c.nodes[0].set_meta(now, b"rack=b").unwrap();
    c.secs(2);
    for i in 1..3 {
        let m = c.nodes[i].members().get(NodeId(1)).unwrap();
        assert_eq!(m.meta(), b"rack=b", "node {i}");
    }
    let version = c.nodes[0].members().me().unwrap().version();
    let long = [b'x'; 200];
    assert!(c.nodes[0].set_meta(c.now, &long).is_err());
    let me = c.nodes[0].members().me().unwrap();
    assert_eq!((me.meta(), me.version()), (&b"rack=b"[..], version));
}

#[test]
fn a_probe_whose_ping_was_lost_is_answered_by_the_second_ping_and_suspects_no_one() {
    let cluster = ClusterId(*b"test");
    let node = |i: u64| {
        let c = lan(cluster, NodeId(i + 1));
        Node::<Small>::new(c, Instant::from_millis(1_000), addr(i as usize), b"", i).unwrap()
    };
    let (mut a, mut b) = (node(0), node(1));
    b.join(addr(0));
    let mut lost = None;
    let mut pings = StdVec::new();
    for step in 0..1_000u64 {
        let t = Instant::from_millis(1_000 + step * 10);
        a.handle_timeout(t);
        b.handle_timeout(t);
        for mut d in outbox(&mut a, t) {
            if let Ok((_, Message::Ping { probe, .. })) = wire::decode(&d, cluster, 1200) {
                pings.push(probe.seq);
                // Once joined, the first probe of b is lost on the way.
                if lost.is_none() && step > 300 {
                    lost = Some(probe.seq);
                    continue;
                }
            }
            let _ = b.handle_datagram(t, addr(0), &mut d);
        }
        for mut d in outbox(&mut b, t) {
            let _ = a.handle_datagram(t, addr(1), &mut d);
        }
    }
    let lost = lost.expect("a probed b");
    assert_eq!(
        pings.iter().filter(|&&s| s == lost).count(),
        2,
        "pinged again"
    );
    assert_eq!(a.stats().missed_acks, 0, "the second ping was answered");
    assert_eq!(
        a.members().get(NodeId(2)).map(|m| m.status()),
        Some(Status::Alive)
    );
}

#[test]
fn a_crashed_node_is_suspected_then_declared_dead() {
    let mut c = Cluster::joined(4);
    c.up[3] = false;
    c.secs(40);
    for i in 0..3 {
        assert_eq!(c.status(i, 3), Some(Status::Dead), "on node {i}");
        assert!(c.events[i].contains(&Event::MemberFailed(NodeId(4))));
        assert!(
            c.nodes[i].stats().missed_acks > 0
                || c.events[i].contains(&Event::MemberSuspected(NodeId(4)))
        );
    }
    for a in 0..3 {
        for b in 0..3 {
            assert_eq!(
                c.status(a, b),
                Some(Status::Alive),
                "no false positive: {b} on {a}"
            );
        }
    }
}

#[test]
fn a_graceful_leave_is_reported_as_left_not_failed() {
    let mut c = Cluster::joined(4);
    let now = c.now;
    assert!(!c.nodes[3].leave_acknowledged());
    c.nodes[3].leave(now).unwrap();
    assert!(!c.nodes[3].leave_acknowledged());
    c.secs(1);
    assert!(
        c.nodes[3].leave_acknowledged(),
        "a member answered the leave"
    );
    c.up[3] = false;
    c.secs(40);
    for i in 0..3 {
        assert_eq!(c.status(i, 3), Some(Status::Left), "on node {i}");
        assert!(c.events[i].contains(&Event::MemberLeft(NodeId(4))));
        assert!(!c.events[i].contains(&Event::MemberFailed(NodeId(4))));
    }
}

#[test]
fn a_restarted_node_comes_back_with_a_higher_generation() {
    let mut c = Cluster::joined(3);
    c.up[2] = false;
    c.secs(40);
    assert_eq!(c.status(0, 2), Some(Status::Dead));
    let mut config = lan(ClusterId(*b"test"), NodeId(3));
    config.generation = 1;
    c.nodes[2] = Node::new(config, c.now, addr(2), b"", 99).unwrap();
    c.up[2] = true;
    c.nodes[2].join(addr(0));
    c.secs(10);
    assert_eq!(c.status(0, 2), Some(Status::Alive));
    assert_eq!(c.nodes[0].members().get(NodeId(3)).unwrap().generation(), 1);
    assert!(c.events[0].contains(&Event::MemberRestarted(NodeId(3))));
}

#[test]
fn bad_datagrams_are_counted_and_change_nothing() {
    let mut c = Cluster::joined(3);
    let root = c.nodes[0].members().root();
    let now = c.now;
    let n = &mut c.nodes[0];
    assert_eq!(
        n.handle_datagram(now, addr(9), &mut b"garbage!".to_vec()),
        Err(RecvError::Wire(WireError::BadMagic))
    );
    // A valid header, then a ping whose rumor run is cut short.
    let mut buf = [0u8; 64];
    let mut e = Encoder::new(
        &mut buf,
        &Header::new(ClusterId(*b"test"), NodeId(2)),
        Kind::Ping,
    )
    .unwrap();
    e.push(&Probe {
        seq: 1,
        target: NodeId(1),
    });
    e.push_raw(&[0, 5, 1]);
    let len = e.finish();
    assert!(matches!(
        n.handle_datagram(now, addr(1), &mut buf[..len]),
        Err(RecvError::Rumor(_))
    ));
    assert_eq!(n.stats().rejects.bad_magic, 1);
    assert_eq!(n.stats().refused, 1);
    assert_eq!(n.members().root(), root);
    let mut out = [0u8; 1500];
    assert!(
        n.poll_transmit(now, &mut out).is_none(),
        "a refused ping must not be acked"
    );
}

/// When a lone node that learned of members 2..=6 and a suspicion of member 7 declares 7 dead,
/// given the rumors `extra` that followed the suspicion, each from its own sender.
fn declared_dead_after(extra: &[(u64, Rumor<'_>)]) -> Duration {
    let start = Instant::from_millis(1_000);
    let config = lan(ClusterId(*b"test"), NodeId(1));
    let mut n = Node::<Small>::new(config, start, addr(0), b"", 1).unwrap();
    let send = |n: &mut Node<Small>, sender: u64, rumors: &[Rumor<'_>]| {
        let mut buf = [0u8; 1200];
        let header = Header::new(ClusterId(*b"test"), NodeId(sender));
        let mut e = Encoder::new(&mut buf, &header, Kind::Gossip).unwrap();
        for r in rumors {
            assert!(e.push(r));
        }
        let len = e.finish();
        n.handle_datagram(start, addr(sender as usize - 1), &mut buf[..len])
            .unwrap();
    };
    let member = |id: u64, status| {
        Rumor::Member(WireMember {
            id: NodeId(id),
            addr: addr(id as usize - 1),
            generation: 0,
            version: 0,
            status,
            meta: b"",
            age_ms: 0,
        })
    };
    let mut intro: StdVec<Rumor<'_>> = (2..=6).map(|id| member(id, Status::Alive)).collect();
    intro.push(member(7, Status::Suspect));
    send(&mut n, 2, &intro);
    for (sender, r) in extra {
        send(&mut n, *sender, &[*r]);
    }
    let mut now = start;
    while now < start + Duration::from_secs(60) {
        now = now + Duration::from_millis(100);
        n.handle_timeout(now);
        let mut out = [0u8; 1500];
        while n.poll_transmit(now, &mut out).is_some() {}
        while let Some(e) = n.poll_event() {
            if e == Event::MemberFailed(NodeId(7)) {
                return now - start;
            }
        }
    }
    panic!("member 7 never declared dead");
}

#[test]
fn only_independent_suspecters_shorten_a_suspicion() {
    let claim = |by| {
        Rumor::Suspect(SuspectClaim {
            id: NodeId(7),
            generation: 0,
            version: 0,
            by: NodeId(by),
        })
    };
    let suspect = Rumor::Member(WireMember {
        id: NodeId(7),
        addr: addr(6),
        generation: 0,
        version: 0,
        status: Status::Suspect,
        meta: b"",
        age_ms: 0,
    });
    // 7 members: the suspicion lasts 4 s fully confirmed, 24 s without confirmation. Our own probes
    // (unanswered here) may add one confirmation: 14 s.
    let forwarded = declared_dead_after(&[(3, suspect), (4, suspect), (5, suspect)]);
    assert!(forwarded >= Duration::from_secs(14), "{forwarded:?}");
    let confirmed =
        declared_dead_after(&[(3, claim(2)), (3, claim(3)), (3, claim(4)), (3, claim(5))]);
    assert!(confirmed <= Duration::from_millis(4_100), "{confirmed:?}");
    // The same suspecter heard twice counts once.
    let repeated = declared_dead_after(&[(3, claim(2)), (4, claim(3)), (5, claim(3))]);
    assert!(repeated > confirmed, "{repeated:?}");
}

fn keyed(id: u64, ring: crate::auth::Keyring) -> Node<Small> {
    let config = Config {
        auth: Some(ring),
        ..lan(ClusterId(*b"test"), NodeId(id))
    };
    Node::<Small>::new(
        config,
        Instant::from_millis(1_000),
        addr(id as usize - 1),
        b"",
        id,
    )
    .unwrap()
}

/// Every datagram `from` has to send now, in order.
fn outbox(from: &mut Node<Small>, now: Instant) -> StdVec<StdVec<u8>> {
    let mut out = StdVec::new();
    let mut buf = [0u8; 1500];
    while let Some(t) = from.poll_transmit(now, &mut buf) {
        assert!(t.len <= 1200, "the tag fits the datagram limit");
        out.push(buf[..t.len].to_vec());
    }
    out
}

#[test]
fn forged_replayed_foreign_and_keyless_datagrams_change_nothing_and_are_counted() {
    use crate::auth::Keyring;
    let ring = Keyring::new([7; 32]);
    let now = Instant::from_millis(1_000);
    let mut a = keyed(1, ring);
    let mut b = keyed(2, ring);
    b.join(addr(0));
    // Real exchanges, authenticated: b joins through a, then writes; everything b sends is kept.
    let mut sent_by_b = StdVec::new();
    let mut t = now;
    for step in 0..40 {
        t = t + Duration::from_millis(100);
        if step == 10 {
            b.set(t, b"k", b"v").unwrap();
        }
        a.handle_timeout(t);
        b.handle_timeout(t);
        for d in outbox(&mut b, t) {
            a.handle_datagram(t, addr(1), &mut d.clone()).unwrap();
            sent_by_b.push(d);
        }
        for d in outbox(&mut a, t) {
            b.handle_datagram(t, addr(0), &mut d.clone()).unwrap();
        }
    }
    assert_eq!(a.get(b"k"), Some(&b"v"[..]));
    assert_eq!(a.members().live(), 2);
    let (members, data) = (a.members().root(), a.data().root());
    let unchanged = |a: &Node<Small>| a.members().root() == members && a.data().root() == data;
    let sample = sent_by_b[0].clone();

    // Replayed, long after: authentic, but no newer than what a holds, so nothing moves.
    let later = t + Duration::from_secs(5);
    for d in &sent_by_b {
        let _ = a.handle_datagram(later, addr(1), &mut d.clone());
        // Answers to replayed probes and sync steps may go out; they carry nothing new.
        let _ = outbox(&mut a, later);
    }
    assert!(unchanged(&a));
    assert!(a.members().stats().stale > 0);

    // Forged: the same datagram tagged under another key.
    let mut forged = sample[..sample.len() - 16].to_vec();
    forged.extend_from_slice(&Keyring::new([8; 32]).tag(&forged));
    let unauthenticated = |e| e == Err(RecvError::Wire(WireError::Unauthenticated));
    assert!(unauthenticated(a.handle_datagram(
        now,
        addr(1),
        &mut forged.clone()
    )));
    // Tampered: one body bit flipped under the right tag.
    let mut tampered = sample.clone();
    tampered[8] ^= 1;
    assert!(unauthenticated(a.handle_datagram(
        now,
        addr(1),
        &mut tampered.clone()
    )));
    // Keyless: a node without a key, same cluster.
    let mut keyless =
        Node::<Small>::new(lan(ClusterId(*b"test"), NodeId(3)), now, addr(2), b"", 3).unwrap();
    keyless.join(addr(0));
    for d in outbox(&mut keyless, now) {
        assert!(unauthenticated(a.handle_datagram(
            now,
            addr(2),
            &mut d.clone()
        )));
    }
    // Foreign: another cluster, even with the right key.
    let mut foreign = Node::<Small>::new(
        Config {
            auth: Some(ring),
            ..lan(ClusterId(*b"othr"), NodeId(4))
        },
        now,
        addr(3),
        b"",
        4,
    )
    .unwrap();
    foreign.join(addr(0));
    for d in outbox(&mut foreign, now) {
        assert_eq!(
            a.handle_datagram(now, addr(3), &mut d.clone()),
            Err(RecvError::Wire(WireError::ForeignCluster))
        );
    }
    assert!(unchanged(&a));
    let r = a.stats().rejects;
    assert!(r.unauthenticated >= 3, "{r:?}");
    assert!(r.foreign_cluster >= 1, "{r:?}");
    assert!(
        outbox(&mut a, later).is_empty(),
        "nothing refused is answered"
    );
}

#[test]
fn keys_rotate_without_a_gap() {
    use crate::auth::Keyring;
    let (k1, k2) = ([1; 32], [2; 32]);
    let now = Instant::from_millis(1_000);
    // Mid-rotation: a already signs with k2, b still signs with k1; each accepts both.
    let mut a = keyed(1, Keyring::new(k2).with(k1).unwrap().with_digest_secret(k1));
    let mut b = keyed(2, Keyring::new(k1).with(k2).unwrap());
    b.join(addr(0));
    for round in 0..3 {
        let t = now + Duration::from_millis(round * 10);
        for d in outbox(&mut b, t) {
            a.handle_datagram(t, addr(1), &mut d.clone()).unwrap();
        }
        for d in outbox(&mut a, t) {
            b.handle_datagram(t, addr(0), &mut d.clone()).unwrap();
        }
    }
    assert_eq!(
        a.members().root(),
        b.members().root(),
        "same digest secret: trees agree"
    );
    assert_eq!(a.members().live(), 2);
}

#[cfg(feature = "encrypt")]
mod sealed;
