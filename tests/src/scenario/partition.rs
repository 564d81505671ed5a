//! The reference partition: a settled cluster splits in two; while apart, nodes join and die on each
//! side; then the network heals, and the run measures how long until every running node holds an
//! identical member table that is also right (every running node alive, every dead one dead).

use super::{ms, settled, Common, Progress};
use crate::cluster::Cluster;
use crate::plot::{Chart, Series};
use serde::Serialize;
use std::collections::BTreeMap;
use tidings::members::Status;
use tidings::{Duration, Instant};

/// What `partition` measures.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Whether all running nodes reached identical, correct member tables.
    pub converged: bool,
    /// Seconds from the heal until they did.
    pub heal_to_identical_secs: f64,
    /// Largest datagram sent from the split to the end.
    pub max_datagram: usize,
    /// Bytes sent per running node per second between the heal and convergence.
    pub bytes_per_node_per_sec_during_heal: f64,
    /// The same, by message kind.
    pub heal_bytes_by_kind: std::collections::BTreeMap<&'static str, f64>,
}

/// Parameters of `partition`.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Nodes before the split.
    pub nodes: usize,
    /// Nodes on side A (the rest are on side B).
    pub split: usize,
    /// How long the sides are apart.
    pub partition: Duration,
    /// Nodes that join side A and side B while apart.
    pub joins: (usize, usize),
    /// Nodes of side A and side B that crash while apart.
    pub deaths: (usize, usize),
    /// Longest wait for convergence after the heal.
    pub limit: Duration,
}

/// The share of running nodes that hold the most common member table.
fn agreement(c: &Cluster) -> f64 {
    let mut counts: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    let mut running = 0usize;
    for i in c.running() {
        if let Some(n) = c.node(i) {
            *counts.entry(n.members().root().hash).or_default() += 1;
            running += 1;
        }
    }
    counts.values().max().copied().unwrap_or(0) as f64 / running.max(1) as f64
}

/// Whether every running node holds every running node alive and every crashed one dead or forgotten.
fn correct(c: &Cluster, crashed: &[usize]) -> bool {
    let running: Vec<usize> = c.running().collect();
    running.iter().all(|&i| {
        running
            .iter()
            .all(|&j| c.status(i, j) == Some(Status::Alive))
            && crashed
                .iter()
                .all(|&j| matches!(c.status(i, j), None | Some(Status::Dead)))
    })
}

/// Runs the scenario; `chart` receives the share of nodes agreeing over time.
pub fn run(p: Params, common: &Common, chart: Option<&mut Chart>) -> Report {
    let mut progress = Progress::new("partition", common);
    let mut c = settled(p.nodes, common);
    let mut rng = crate::rng::Rng::new(common.seed ^ 0x5917);
    let split = p.split.min(p.nodes);
    for i in split..p.nodes {
        c.set_side(i, 1);
    }
    let t0 = c.now;
    let heal_at = t0 + p.partition;
    let bytes = |c: &Cluster| c.hosts.iter().map(|h| h.bytes_out).sum::<u64>();
    c.max_datagram = 0;

    // Joins and deaths at random instants while apart.
    enum Act {
        Join(u32),
        Crash(usize),
    }
    let mut plan: Vec<(Instant, Act)> = Vec::new();
    let at = |rng: &mut crate::rng::Rng| {
        t0 + Duration::from_millis(1 + rng.below(p.partition.as_millis().saturating_sub(1).max(1)))
    };
    for _ in 0..p.joins.0 {
        plan.push((at(&mut rng), Act::Join(0)));
    }
    for _ in 0..p.joins.1 {
        plan.push((at(&mut rng), Act::Join(1)));
    }
    let mut victims = Vec::new();
    for (range, n) in [(0..split, p.deaths.0), (split..p.nodes, p.deaths.1)] {
        let mut picked = std::collections::BTreeSet::new();
        while picked.len() < n.min(range.len().saturating_sub(1)) {
            picked.insert(range.start + rng.below(range.len() as u64) as usize);
        }
        victims.extend(picked);
    }
    for &v in &victims {
        plan.push((at(&mut rng), Act::Crash(v)));
    }
    plan.sort_by_key(|a| a.0);
    for (when, act) in plan {
        c.run_until(when);
        match act {
            Act::Join(side) => {
                let seed = loop {
                    let s = rng.below(p.nodes as u64) as usize;
                    let on_side = (s >= split) == (side == 1);
                    if on_side && c.node(s).is_some() {
                        break s;
                    }
                };
                let i = c.start_host();
                c.set_side(i, side);
                c.with_node(i, |n, _| n.join(crate::cluster::addr_of(seed)));
            }
            Act::Crash(v) => c.crash(v),
        }
        progress.show(|| "apart".to_string());
    }
    c.run_until(heal_at);
    c.heal();
    let bytes_at_heal = bytes(&c);
    c.bytes_by_kind.clear();
    let mut points = vec![(0.0, agreement(&c))];
    let until = heal_at + p.limit;
    let mut healed = None;
    while c.now < until {
        c.run_for(Duration::from_millis(100));
        let t = (c.now - heal_at).as_millis() as f64 / 1000.0;
        let share = agreement(&c);
        points.push((t, share));
        progress.show(|| format!("healing: {:.0}% agree after {t:.1} s", share * 100.0));
        if share >= 1.0 && correct(&c, &victims) {
            healed = Some(c.now);
            break;
        }
    }
    progress.done();
    let end = healed.unwrap_or(c.now);
    let secs = (end - heal_at).as_millis() as f64 / 1000.0;
    let running = c.running().count().max(1) as f64;
    if let Some(chart) = chart {
        *chart = Chart {
            title: format!(
                "Healing a {}/{} partition of {} nodes (lan)",
                split,
                p.nodes - split,
                p.nodes
            ),
            x_label: "seconds since the heal".into(),
            y_label: "share of nodes holding the commonest view".into(),
            series: vec![Series {
                name: format!("{} nodes, seed {}", p.nodes, common.seed),
                points,
            }],
            y_from_zero: true,
            y_log: false,
        };
    }
    Report {
        converged: healed.is_some(),
        heal_to_identical_secs: ms(secs),
        max_datagram: c.max_datagram,
        bytes_per_node_per_sec_during_heal: ms((bytes(&c) - bytes_at_heal) as f64
            / running
            / secs.max(0.001)),
        heal_bytes_by_kind: c
            .bytes_by_kind
            .iter()
            .map(|(&k, &b)| (k, ms(b as f64 / running / secs.max(0.001))))
            .collect(),
    }
}
