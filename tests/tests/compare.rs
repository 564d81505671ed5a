//! The side-by-side comparison at small sizes: both libraries do the work, on the same network,
//! and tidings holds the claims BENCHMARKS.md makes. The full sizes run from the CLI
//! (`tidings-sim compare`, `tidings-sim chitchat`).
#![cfg(feature = "peers")]

use tidings::Duration;
use tidings_sim::compare::foca_swarm::FocaSwarm;
use tidings_sim::compare::{self, chitchat_bench, join_storm, Params, Swarm};
use tidings_sim::scenario::{lan, Common};

fn common(seed: u64, loss: f64) -> Common {
    Common {
        seed,
        loss,
        ..Common::default()
    }
}

#[test]
fn foca_nodes_on_the_simulator_join_spread_and_detect() {
    // The harness drives foca correctly: without that the comparison means nothing.
    let storm = join_storm::<FocaSwarm>(20, Duration::from_secs(120), lan(0.0), 1);
    assert!(storm.all.is_some(), "{storm:?}");
    let mut s = FocaSwarm::converged(20, lan(0.0), 1);
    assert!((0..20).all(|i| s.known(i) == 20));
    s.settle(Duration::from_secs(30));
    s.update(3, 7);
    s.run_for(Duration::from_secs(10));
    let got = s
        .take_noticed()
        .iter()
        .filter(|(_, n)| matches!(n, compare::Noticed::Update { key: 7, .. }))
        .count();
    assert_eq!(got, 19, "every other node receives the update once");
    s.crash(5);
    s.run_for(Duration::from_secs(120));
    let dead = s
        .take_noticed()
        .iter()
        .filter(|(_, n)| matches!(n, compare::Noticed::Dead { target: 5, .. }))
        .count();
    assert_eq!(dead, 19);
    assert_eq!(s.errors, 0);
}

#[test]
fn tidings_spreads_and_detects_no_slower_than_foca_on_the_same_network() {
    let p = Params {
        trials: 5,
        crashes: 3,
        steady_secs: 10,
        ..Params::new(60)
    };
    let r = compare::run(p, &common(4, 0.02), None);
    let (t, f) = (&r.tidings, &r.foca);
    assert_eq!(t.disseminate_incomplete, 0, "{r:?}");
    assert!(t.disseminate_secs_p99 <= f.disseminate_secs_p99, "{r:?}");
    assert!(t.detect_secs_p99 <= f.detect_secs_p99, "{r:?}");
    assert_eq!(t.false_positives, 0, "{r:?}");
    assert!(t.join_converge_secs.is_some_and(|s| s <= 5.0), "{r:?}");
    assert!(t.max_datagram <= 1200, "{r:?}");
    assert!(t.bytes_sent_per_node_per_sec > 0.0 && f.bytes_sent_per_node_per_sec > 0.0);
}

#[test]
fn tidings_sends_a_tenth_of_chitchats_bytes_or_less() {
    let r = chitchat_bench::run(&[10], Duration::from_secs(1), 10, &common(1, 0.0), None)
        .expect("chitchat runs");
    let row = &r.rows[0];
    assert!(row.chitchat_bytes_per_node_per_sec > 0.0, "{r:?}");
    assert!(row.tidings_over_chitchat <= 0.1, "{r:?}");
}
