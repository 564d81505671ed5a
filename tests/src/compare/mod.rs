//! tidings beside foca on the same simulated network: one set of scenarios, written once against
//! the [`Swarm`] trait, run on a swarm of each library with the same seed, latency and loss.
//!
//! Each side runs its LAN preset ([`tidings::config::Config::lan`], foca's `Config::new_lan`). The
//! scenarios:
//! - **join storm**: every node starts at once knowing only host 0, and is told to join through it
//!   again every second until it knows someone; timed until every node knows all the others;
//! - **steady state**: a cluster that knows itself, left to settle, then every byte counted;
//! - **dissemination**: one small update from a random node, timed until every running node holds
//!   it; a trial that never gets there within the limit is *incomplete*;
//! - **detection**: nodes crash at random instants; timed until every running node holds each of
//!   them dead.

pub mod chitchat_bench;
pub mod foca_swarm;
pub mod tidings_swarm;

use crate::net::NetConfig;
use crate::plot::{Chart, Series};
use crate::rng::Rng;
use crate::scenario::{lan, ms, percentile, Common};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tidings::{Duration, Instant};

/// Something a node noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noticed {
    /// Host `host` received update `key`.
    Update {
        /// Who received it.
        host: usize,
        /// Which update.
        key: u32,
    },
    /// Host `host` declared host `target` dead.
    Dead {
        /// Who declared it.
        host: usize,
        /// Whom.
        target: usize,
    },
}

/// A cluster of one library's nodes on the simulated network, seen through what the scenarios need.
pub trait Swarm: Sized {
    /// `n` nodes that already know each other.
    fn converged(n: usize, net: NetConfig, seed: u64) -> Self;
    /// `n` fresh nodes that know nobody; [`Swarm::join`] introduces them.
    fn fresh(n: usize, net: NetConfig, seed: u64) -> Self;
    /// Asks host `i` to join through host `seed` (again, if it was asked before).
    fn join(&mut self, i: usize, seed: usize);
    /// Virtual time.
    fn now(&self) -> Instant;
    /// Runs every delivery and timer up to `until`.
    fn run_until(&mut self, until: Instant);
    /// Stops host `i` without a word.
    fn crash(&mut self, i: usize);
    /// Whether host `i` runs.
    fn is_running(&self, i: usize) -> bool;
    /// Members host `i` holds alive or suspect, itself included.
    fn known(&self, i: usize) -> usize;
    /// Host `i` publishes update `key` (12 bytes of key and value).
    fn update(&mut self, i: usize, key: u32);
    /// Whether no node has news left to pass on.
    fn quiet(&self) -> bool;
    /// Takes what nodes noticed since the last call, with when.
    fn take_noticed(&mut self) -> Vec<(Instant, Noticed)>;
    /// Bytes every host has sent so far (UDP payload).
    fn bytes_sent(&self) -> u64;
    /// Largest datagram any host sent so far.
    fn max_datagram(&self) -> usize;
    /// Hosts, running or not.
    fn hosts(&self) -> usize;

    /// Runs for `d`.
    fn run_for(&mut self, d: Duration) {
        let until = self.now() + d;
        self.run_until(until);
    }

    /// Runs until no node has news left, or `limit` passed.
    fn settle(&mut self, limit: Duration) {
        let until = self.now() + limit;
        while self.now() < until && !self.quiet() {
            self.run_for(Duration::from_millis(500));
        }
    }

    /// Running hosts.
    fn running(&self) -> Vec<usize> {
        (0..self.hosts()).filter(|&i| self.is_running(i)).collect()
    }
}

/// One library's figures, the same fields for each.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Side {
    /// Seconds from an update until a node holds it: median over every (trial, node).
    pub disseminate_secs_p50: f64,
    /// Seconds from an update until a node holds it: 99th percentile over every (trial, node).
    pub disseminate_secs_p99: f64,
    /// Seconds until the update reached every running node, in the slowest complete trial.
    pub disseminate_all_secs_max: f64,
    /// Trials in which the update never reached every running node.
    pub disseminate_incomplete: usize,
    /// Seconds from a crash until every running node holds the node dead: median over crashes.
    pub detect_secs_p50: f64,
    /// The same, 99th percentile over crashes (a crash never known dead by all counts as the
    /// whole wait: until `limit` after the last crash).
    pub detect_secs_p99: f64,
    /// Running nodes declared dead.
    pub false_positives: usize,
    /// Bytes sent per node per second in the steady state (UDP payload).
    pub bytes_sent_per_node_per_sec: f64,
    /// Largest datagram sent in any scenario.
    pub max_datagram: usize,
    /// Seconds until every node of the join storm knew every other; `null` if the limit passed.
    pub join_converge_secs: Option<f64>,
    /// Seconds until half of the join storm's nodes knew every other.
    pub join_half_secs: Option<f64>,
    /// Members the least-informed node of the join storm knew when it ended (all of them, or the
    /// limit passed).
    pub join_least_known: usize,
}

/// What `compare` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nodes.
    pub nodes: usize,
    /// tidings with `Config::lan`.
    pub tidings: Side,
    /// foca 2 with `Config::new_lan`.
    pub foca: Side,
}

/// Parameters of a comparison.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Nodes.
    pub nodes: usize,
    /// Updates spread, one after another.
    pub trials: usize,
    /// Nodes crashed.
    pub crashes: usize,
    /// Simulated seconds of steady state measured.
    pub steady_secs: u64,
    /// Longest a dissemination trial or a detection may take.
    pub limit: Duration,
    /// Longest a join storm may take.
    pub join_limit: Duration,
}

impl Params {
    /// The defaults of `tidings-sim compare` for `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Params {
            nodes,
            trials: 10,
            crashes: 20,
            steady_secs: 60,
            limit: Duration::from_secs(120),
            join_limit: Duration::from_secs(300),
        }
    }
}

/// Runs every scenario on both libraries; `chart` receives the join storms over time.
pub fn run(p: Params, common: &Common, chart: Option<&mut Chart>) -> Report {
    let (tidings, ours) = side::<tidings_swarm::TidingsSwarm>(p, common);
    let (foca, theirs) = side::<foca_swarm::FocaSwarm>(p, common);
    if let Some(chart) = chart {
        *chart = Chart {
            title: format!(
                "Join storm: {} nodes start at once through one seed (loss {})",
                p.nodes, common.loss
            ),
            x_label: "seconds since the start".into(),
            y_label: "fraction of nodes that know every other".into(),
            series: vec![
                Series {
                    name: "tidings (lan)".into(),
                    points: ours,
                },
                Series {
                    name: "foca 2 (new_lan)".into(),
                    points: theirs,
                },
            ],
            y_from_zero: true,
            y_log: false,
        };
    }
    Report {
        nodes: p.nodes,
        tidings,
        foca,
    }
}

/// Runs every scenario on one library; also returns the join storm's curve.
pub fn side<S: Swarm>(p: Params, common: &Common) -> (Side, Vec<(f64, f64)>) {
    let net = lan(common.loss);
    let storm = join_storm::<S>(p.nodes, p.join_limit, net, common.seed);
    let mut s = S::converged(p.nodes, net, common.seed);
    s.settle(Duration::from_secs(60));
    let bytes_sent_per_node_per_sec = steady(&mut s, p.steady_secs);
    let (secs, all, disseminate_incomplete) = disseminate(&mut s, p, common.seed);
    let (detect, false_positives) = detect(&mut s, p, common.seed);
    let side = Side {
        disseminate_secs_p50: ms(percentile(&secs, 50.0)),
        disseminate_secs_p99: ms(percentile(&secs, 99.0)),
        disseminate_all_secs_max: ms(percentile(&all, 100.0)),
        disseminate_incomplete,
        detect_secs_p50: ms(percentile(&detect, 50.0)),
        detect_secs_p99: ms(percentile(&detect, 99.0)),
        false_positives,
        bytes_sent_per_node_per_sec,
        max_datagram: storm.max_datagram.max(s.max_datagram()),
        join_converge_secs: storm.all,
        join_half_secs: storm.half,
        join_least_known: storm.least_known,
    };
    (side, storm.curve)
}

/// What a join storm showed.
#[derive(Clone, Debug, Default)]
pub struct Storm {
    /// Seconds until every node knew every other.
    pub all: Option<f64>,
    /// Seconds until half of them did.
    pub half: Option<f64>,
    /// Members the least-informed node knew at the end.
    pub least_known: usize,
    /// Largest datagram sent.
    pub max_datagram: usize,
    /// (seconds, fraction of nodes that knew every other), every 100 ms.
    pub curve: Vec<(f64, f64)>,
}

/// Every node starts at once and joins through host 0, asked again every second while it knows
/// nobody.
pub fn join_storm<S: Swarm>(n: usize, limit: Duration, net: NetConfig, seed: u64) -> Storm {
    let mut s = S::fresh(n, net, seed);
    let start = s.now();
    for i in 1..n {
        s.join(i, 0);
    }
    let (mut all, mut half, mut curve) = (None, None, vec![(0.0, 0.0)]);
    let mut next_ask = start + Duration::from_secs(1);
    while s.now() < start + limit {
        s.run_for(Duration::from_millis(100));
        let t = ms((s.now() - start).as_millis() as f64 / 1000.0);
        let complete = (0..n).filter(|&i| s.known(i) >= n).count();
        curve.push((t, complete as f64 / n as f64));
        if half.is_none() && complete * 2 >= n {
            half = Some(t);
        }
        if complete == n {
            all = Some(t);
            break;
        }
        if s.now() >= next_ask {
            for i in 1..n {
                if s.known(i) <= 1 {
                    s.join(i, 0);
                }
            }
            next_ask = next_ask + Duration::from_secs(1);
        }
    }
    Storm {
        all,
        half,
        least_known: (0..n).map(|i| s.known(i)).min().unwrap_or(0),
        max_datagram: s.max_datagram(),
        curve,
    }
}

/// Bytes sent per node per second over `secs` seconds.
pub fn steady<S: Swarm>(s: &mut S, secs: u64) -> f64 {
    let before = s.bytes_sent();
    s.run_for(Duration::from_secs(secs));
    let nodes = s.running().len().max(1);
    ms((s.bytes_sent() - before) as f64 / nodes as f64 / secs.max(1) as f64)
}

/// `p.trials` updates from random nodes, one after another, each once the previous settled.
/// Returns the arrival times (seconds, per trial and node), the time each complete trial took to
/// reach every node, and the incomplete trials.
pub fn disseminate<S: Swarm>(s: &mut S, p: Params, seed: u64) -> (Vec<f64>, Vec<f64>, usize) {
    let mut rng = Rng::new(seed ^ 0xd155);
    let (mut secs, mut all, mut incomplete) = (Vec::new(), Vec::new(), 0);
    for trial in 0..p.trials {
        let key = trial as u32 + 1;
        let running = s.running();
        let origin = running[rng.below(running.len() as u64) as usize];
        s.take_noticed();
        let start = s.now();
        s.update(origin, key);
        let mut holders = BTreeSet::from([origin]);
        let mut last = 0.0f64;
        while holders.len() < running.len() && s.now() < start + p.limit {
            s.run_for(Duration::from_millis(10));
            for (at, n) in s.take_noticed() {
                if let Noticed::Update { host, key: k } = n {
                    if k == key && holders.insert(host) {
                        last = (at - start).as_millis() as f64 / 1000.0;
                        secs.push(last);
                    }
                }
            }
        }
        if holders.len() < running.len() {
            incomplete += 1;
        } else {
            all.push(last);
        }
        s.settle(Duration::from_secs(30));
    }
    (secs, all, incomplete)
}

/// Crashes `p.crashes` random nodes at random instants within 30 s, and waits until every running
/// node holds each dead. Returns, per crash, the seconds until all knew (the limit for a crash
/// never known by all), and the running nodes declared dead.
pub fn detect<S: Swarm>(s: &mut S, p: Params, seed: u64) -> (Vec<f64>, usize) {
    let mut rng = Rng::new(seed ^ 0xde7);
    let start = s.now();
    let running = s.running();
    let mut plan = BTreeMap::new();
    while plan.len() < p.crashes.min(running.len().saturating_sub(2)) {
        let host = running[rng.below(running.len() as u64) as usize];
        let at = start + Duration::from_millis(rng.below(30_000));
        plan.entry(host).or_insert(at);
    }
    let mut order: Vec<(Instant, usize)> = plan.iter().map(|(&h, &t)| (t, h)).collect();
    order.sort();
    let survivors: BTreeSet<usize> = running
        .iter()
        .copied()
        .filter(|h| !plan.contains_key(h))
        .collect();
    let until = order.last().map_or(start, |o| o.0) + p.limit;
    s.take_noticed();
    let mut knew: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut done_at: BTreeMap<usize, f64> = BTreeMap::new();
    let mut false_dead = BTreeSet::new();
    let mut next = 0;
    while s.now() < until && done_at.len() < order.len() {
        let step = order
            .get(next)
            .map_or(s.now() + Duration::from_millis(100), |o| o.0)
            .min(s.now() + Duration::from_millis(100));
        s.run_until(step);
        while order.get(next).is_some_and(|o| o.0 <= s.now()) {
            s.crash(order[next].1);
            next += 1;
        }
        for (at, n) in s.take_noticed() {
            let Noticed::Dead { host, target } = n else {
                continue;
            };
            let Some(&crashed) = plan.get(&target).filter(|&&t| t <= at) else {
                if survivors.contains(&target) {
                    false_dead.insert(target);
                }
                continue;
            };
            let holders = knew.entry(target).or_default();
            if survivors.contains(&host) && holders.insert(host) && holders.len() == survivors.len()
            {
                done_at.insert(target, (at - crashed).as_millis() as f64 / 1000.0);
            }
        }
    }
    // A crash never known dead by all counts as the whole wait for it.
    let times: Vec<f64> = order
        .iter()
        .map(|&(t, h)| {
            let whole = (until - t).as_millis() as f64 / 1000.0;
            done_at.get(&h).copied().unwrap_or(whole)
        })
        .collect();
    (times, false_dead.len())
}
