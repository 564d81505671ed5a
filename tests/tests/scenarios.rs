//! Cluster scenarios at small sizes: what users rely on, checked on every `cargo test`. The full
//! sizes run from the CLI (`tidings-sim disseminate|steady|partition|detect|join`).

use tidings::members::Status;
use tidings::node::Event;
use tidings::Duration;
use tidings_sim::cluster::{id_of, Cluster};
use tidings_sim::scenario::{detect, disseminate, join, partition, settled, steady, Common};

fn common(seed: u64) -> Common {
    Common {
        seed,
        ..Common::default()
    }
}

#[test]
fn one_write_reaches_every_node_within_a_second() {
    let p = disseminate::Params {
        nodes: 200,
        trials: 5,
        limit: Duration::from_secs(60),
    };
    let r = disseminate::run(p, &common(1), None);
    assert!(r.reached_all, "{r:?}");
    assert!(r.secs_p99 <= 1.0, "{r:?}");
    assert!(r.rounds_max >= 2.0, "hops are counted: {r:?}");
}

#[test]
fn a_join_storm_through_one_seed_converges_within_seconds() {
    // 300 nodes start at once knowing only host 0, with 10% loss.
    let mut c = common(3);
    c.loss = 0.1;
    let r = join::run(300, Duration::from_secs(60), &c);
    assert_eq!(r.min_known, 300, "{r:?}");
    let secs = r.join_converge_secs.expect("converged");
    assert!(secs <= 5.0, "{r:?}");
    assert!(r.max_datagram <= 1200, "{r:?}");
}

#[test]
fn steady_state_cost_does_not_grow_with_the_cluster() {
    let small = steady::run(50, 20, &common(2), None);
    let large = steady::run(500, 20, &common(2), None);
    for r in [&small, &large] {
        assert!(r.bytes_sent_per_node_per_sec <= 200.0, "{r:?}");
        assert!(r.bytes_sent_per_node_per_sec > 0.0, "{r:?}");
        assert!(r.max_datagram <= 1200, "{r:?}");
        assert_eq!(r.false_suspicions, 0, "{r:?}");
    }
    let ratio = large.bytes_sent_per_node_per_sec / small.bytes_sent_per_node_per_sec;
    assert!(ratio <= 1.25, "{ratio}: {small:?} {large:?}");
}

#[test]
fn a_healed_partition_converges_to_one_correct_view() {
    let p = partition::Params {
        nodes: 200,
        split: 140,
        partition: Duration::from_secs(60),
        joins: (4, 2),
        deaths: (1, 1),
        limit: Duration::from_secs(120),
    };
    let r = partition::run(p, &common(3), None);
    assert!(r.converged, "{r:?}");
    assert!(r.heal_to_identical_secs <= 10.0, "{r:?}");
    assert!(r.max_datagram <= 1200, "{r:?}");
}

#[test]
fn crashes_are_detected_by_everyone_and_nobody_alive_is_declared_dead() {
    let p = detect::Params {
        nodes: 200,
        crashes: 4,
        window: Duration::from_secs(20),
        limit: Duration::from_secs(120),
    };
    let r = detect::run(p, &common(4), None);
    assert_eq!(r.false_positives, 0, "{r:?}");
    assert!(r.first_suspect_periods_mean <= 3.0, "{r:?}");
    // Suspicion lasts 4 * log10(200) = 9.2 s once confirmed; everyone knows soon after.
    assert!(r.all_know_dead_secs_p99 <= 20.0, "{r:?}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let p = disseminate::Params {
            nodes: 50,
            trials: 2,
            limit: Duration::from_secs(60),
        };
        format!("{:?}", disseminate::run(p, &common(seed), None))
    };
    assert_eq!(run(7), run(7));
}

#[test]
fn a_restart_is_seen_as_a_restart_and_a_leave_as_a_leave() {
    let mut c = settled(30, &common(5));
    c.watch = true;
    c.with_node(3, |n, now| n.set(now, b"kept", b"yes"));
    c.run_for(Duration::from_secs(5));
    c.crash(3);
    c.run_for(Duration::from_secs(3));
    c.restart(3, 0);
    c.run_for(Duration::from_secs(10));
    assert!(c.running().all(|i| c.status(i, 3) == Some(Status::Alive)));
    let gen = |i| {
        c.node(i)
            .unwrap()
            .members()
            .get(id_of(3))
            .unwrap()
            .generation()
    };
    assert!(
        c.running().all(|i| gen(i) == 1),
        "everyone holds generation 1"
    );
    let restarted = c
        .take_events()
        .iter()
        .filter(|e| e.event == Event::MemberRestarted(id_of(3)))
        .count();
    assert!(restarted >= 25, "{restarted} nodes reported the restart");

    c.with_node(7, |n, now| n.leave(now)).unwrap().unwrap();
    c.run_for(Duration::from_secs(5));
    let events = c.take_events();
    let left = events
        .iter()
        .filter(|e| e.event == Event::MemberLeft(id_of(7)))
        .count();
    assert!(left >= 28, "{left} nodes saw the leave");
    assert!(!events
        .iter()
        .any(|e| matches!(e.event, Event::MemberFailed(_) | Event::MemberSuspected(_))));
    assert!(c
        .running()
        .filter(|&i| i != 7)
        .all(|i| c.status(i, 7) == Some(Status::Left)));
    assert!(c.members_agree());
}

#[test]
fn a_node_that_lost_everyone_rejoins_through_its_seeds() {
    let mut c = Cluster::converged(
        tidings_sim::scenario::template(10),
        tidings_sim::scenario::lan(0.0),
        10,
        6,
    );
    let lone = c.join_new(0);
    c.run_for(Duration::from_secs(10));
    assert!(c
        .running()
        .all(|i| c.status(i, lone) == Some(Status::Alive)));
    c.set_side(lone, 1);
    c.run_for(Duration::from_secs(120));
    assert_eq!(
        c.node(lone).unwrap().members().live(),
        1,
        "it lost everyone"
    );
    assert!((0..10).all(|i| c.status(i, lone) == Some(Status::Dead)));
    c.heal();
    c.run_for(Duration::from_secs(90));
    assert!(c
        .running()
        .all(|i| c.status(i, lone) == Some(Status::Alive)));
    assert!(c.members_agree());
}

#[test]
fn a_join_storm_of_100_nodes_reports_every_join_and_drops_no_event() {
    use std::collections::BTreeSet;
    use tidings_sim::scenario::{lan, template};
    // The core's default capacities; 100 nodes join through one at once, and every node's events
    // are taken after every input, as a driver does.
    let mut c = Cluster::new(template(100), lan(0.0), 1);
    c.watch = true;
    let first = c.start_host();
    for _ in 1..100 {
        c.join_new(first);
    }
    let mut joined = vec![BTreeSet::new(); 100];
    for _ in 0..30 {
        c.run_for(Duration::from_secs(1));
        for seen in c.take_events() {
            match seen.event {
                Event::MemberJoined(id) => {
                    joined[seen.host].insert(id);
                }
                Event::Lagged(n) => panic!("host {} dropped {n} events", seen.host),
                _ => {}
            }
        }
    }
    for (i, joined) in joined.iter().enumerate() {
        let n = c.node(i).unwrap();
        assert_eq!(n.members().live(), 100, "host {i} knows everyone");
        assert_eq!(n.stats().events_dropped, 0, "host {i}");
        let others: BTreeSet<_> = (0..100).filter(|&j| j != i).map(id_of).collect();
        assert_eq!(*joined, others, "host {i} reported every join");
    }
}
