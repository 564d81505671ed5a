//! Whatever the order, loss or duplication of gossip, all live members converge to the same view.

use quickcheck::{Arbitrary, Gen, QuickCheck};
use tidings::members::Status;
use tidings::Duration;
use tidings_sim::cluster::{addr_of, Cluster};
use tidings_sim::net::NetConfig;
use tidings_sim::scenario::{lan, template};

/// A hostile stretch of network and what happens during it.
#[derive(Clone, Debug)]
struct Weather {
    nodes: usize,
    loss: f64,
    duplicate: f64,
    jitter_ms: u64,
    /// (after ms, joiner's seed) for nodes that join during the storm.
    joins: Vec<(u64, usize)>,
    /// Hosts that crash during the storm (unless they are a seed).
    crashes: Vec<usize>,
    /// Hosts that leave during the storm (unless they are a seed).
    leaves: Vec<usize>,
    seed: u64,
}

impl Arbitrary for Weather {
    fn arbitrary(g: &mut Gen) -> Self {
        let nodes = 2 + usize::arbitrary(g) % 7;
        let pick = |g: &mut Gen, n: usize| usize::arbitrary(g) % n;
        Weather {
            nodes,
            loss: f64::from(u8::arbitrary(g) % 40) / 100.0,
            duplicate: f64::from(u8::arbitrary(g) % 30) / 100.0,
            jitter_ms: u64::arbitrary(g) % 200,
            joins: (0..usize::arbitrary(g) % 4)
                .map(|_| (u64::arbitrary(g) % 30_000, pick(g, nodes)))
                .collect(),
            crashes: (0..usize::arbitrary(g) % 2)
                .map(|_| pick(g, nodes))
                .collect(),
            leaves: (0..usize::arbitrary(g) % 2)
                .map(|_| pick(g, nodes))
                .collect(),
            seed: u64::arbitrary(g),
        }
    }
}

fn converges(w: Weather) -> bool {
    let storm = NetConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(w.jitter_ms),
        loss: w.loss,
        duplicate: w.duplicate,
    };
    // Every node joins through node 0, in the storm, at once.
    let mut c = Cluster::new(template(16), storm, w.seed);
    c.start_host();
    for _ in 1..w.nodes {
        c.join_new(0);
    }
    let mut joins = w.joins.clone();
    joins.sort();
    for (at, seed) in joins {
        c.run_until(c.now + Duration::from_millis(at / 4));
        if c.node(seed).is_some() {
            c.join_new(seed);
        }
    }
    // A node whose only seed crashed or left before it got in knows nobody to ask: only nodes that
    // are nobody's seed crash or leave.
    let seeds: Vec<usize> = std::iter::once(0)
        .chain(w.joins.iter().map(|j| j.1))
        .collect();
    for &v in w.crashes.iter().filter(|v| !seeds.contains(v)) {
        c.run_for(Duration::from_secs(2));
        c.crash(v);
    }
    for &v in w.leaves.iter().filter(|v| !seeds.contains(v)) {
        c.with_node(v, |n, now| n.leave(now));
    }
    c.run_for(Duration::from_secs(30));
    // The weather clears; within a few anti-entropy rounds everyone must agree, and be right.
    c.set_net(lan(0.0));
    c.run_for(Duration::from_secs(150));
    let left: Vec<usize> = w
        .leaves
        .iter()
        .copied()
        .filter(|&v| c.node(v).is_some())
        .collect();
    let live: Vec<usize> = c.running().filter(|i| !left.contains(i)).collect();
    let agree = live.windows(2).all(|p| {
        let (a, b) = (c.node(p[0]).unwrap(), c.node(p[1]).unwrap());
        a.members().root() == b.members().root()
    });
    let right = live
        .iter()
        .all(|&i| live.iter().all(|&j| c.status(i, j) == Some(Status::Alive)));
    if !(agree && right) {
        eprintln!("not converged: {w:?}");
        for &i in &live {
            let n = c.node(i).unwrap();
            let view: Vec<_> = n
                .members()
                .iter()
                .map(|m| (m.id().0, m.status(), m.generation(), m.version()))
                .collect();
            eprintln!("  host {i} ({}): {view:?}", addr_of(i));
        }
    }
    agree && right
}

#[test]
fn all_live_members_converge_whatever_the_weather() {
    QuickCheck::new()
        .tests(300)
        .rng(Gen::new(64))
        .quickcheck(converges as fn(Weather) -> bool);
}
