//! How fast crashed nodes are noticed, and whether live ones are ever declared dead.
//!
//! In a settled cluster, `crashes` random nodes stop without a word, each at a random instant. For
//! each, the time until the first node suspects it (in probe intervals) and the time until every
//! running node holds it dead are recorded. A live node declared dead is a false positive.

use super::{ms, percentile, settled, Common, Progress};
use crate::cluster::{host_of_id, id_of};
use crate::plot::{Chart, Series};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tidings::node::Event;
use tidings::{Duration, Instant};

/// What `detect` measures.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Mean time from a crash to its first suspicion anywhere, in probe intervals.
    pub first_suspect_periods_mean: f64,
    /// Seconds from a crash until a node holds it dead: 99th percentile over (crash, node).
    pub all_know_dead_secs_p99: f64,
    /// Live members declared dead by some node.
    pub false_positives: u64,
}

/// Parameters of `detect`.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Nodes.
    pub nodes: usize,
    /// Nodes that crash.
    pub crashes: usize,
    /// Window in which the crashes happen, each at a random instant.
    pub window: Duration,
    /// How long after the last crash to wait for everyone to know.
    pub limit: Duration,
}

/// Runs the scenario; `chart` receives, per crash, the fraction of nodes holding it dead over time.
pub fn run(p: Params, common: &Common, chart: Option<&mut Chart>) -> Report {
    let mut progress = Progress::new("detect", common);
    let mut c = settled(p.nodes, common);
    let mut rng = crate::rng::Rng::new(common.seed ^ 0xde7);
    let start = c.now;
    let mut plan: Vec<(Instant, usize)> = Vec::new();
    let mut chosen = BTreeSet::new();
    while chosen.len() < p.crashes.min(p.nodes.saturating_sub(1)) {
        chosen.insert(rng.below(p.nodes as u64) as usize);
    }
    for &host in &chosen {
        let at = start + Duration::from_millis(rng.below(p.window.as_millis().max(1)));
        plan.push((at, host));
    }
    plan.sort();
    let crashed_at: BTreeMap<usize, Instant> = plan.iter().map(|&(t, h)| (h, t)).collect();
    let last = plan.last().map_or(start, |p| p.0);
    let until = last + p.limit;
    c.watch = true;
    let mut first_suspect: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut dead_at: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut false_dead = BTreeSet::new();
    let mut next = 0;
    let running_after = p.nodes - chosen.len();
    loop {
        let step_to = plan
            .get(next)
            .map_or(c.now + Duration::from_millis(100), |p| p.0);
        c.run_until(step_to.min(c.now + Duration::from_millis(100)));
        while plan.get(next).is_some_and(|p| p.0 <= c.now) {
            c.crash(plan[next].1);
            next += 1;
        }
        for seen in c.take_events() {
            let (id, failed) = match seen.event {
                Event::MemberSuspected(id) => (id, false),
                Event::MemberFailed(id) => (id, true),
                _ => continue,
            };
            let Some(target) = host_of_id(id) else {
                continue;
            };
            match crashed_at.get(&target).filter(|&&t| t <= seen.at) {
                Some(&t) => {
                    first_suspect.entry(target).or_insert(seen.at);
                    if failed && c.node(seen.host).is_some() {
                        dead_at
                            .entry(target)
                            .or_default()
                            .push((seen.at - t).as_millis() as f64 / 1000.0);
                    }
                }
                None if failed => {
                    false_dead.insert(target);
                }
                None => {}
            }
        }
        let everyone_knows = next == plan.len()
            && chosen
                .iter()
                .all(|h| dead_at.get(h).is_some_and(|v| v.len() >= running_after));
        progress.show(|| {
            format!(
                "{next}/{} crashed, {} fully detected",
                plan.len(),
                dead_at
                    .values()
                    .filter(|v| v.len() >= running_after)
                    .count()
            )
        });
        if everyone_knows || c.now >= until {
            break;
        }
    }
    progress.done();
    let probe = c.node(c.running().next().unwrap_or(0)).map_or(1000.0, |n| {
        n.config().swim.probe_interval.as_millis() as f64
    });
    let periods: Vec<f64> = plan
        .iter()
        .map(|&(t, h)| match first_suspect.get(&h) {
            Some(&s) => (s - t).as_millis() as f64 / probe,
            None => ((until - t).as_millis() as f64) / probe,
        })
        .collect();
    let mut all: Vec<f64> = Vec::new();
    for &(_, h) in &plan {
        let mut v = dead_at.get(&h).cloned().unwrap_or_default();
        // Nodes that never learned count as the whole wait.
        while v.len() < running_after {
            v.push(p.limit.as_millis() as f64 / 1000.0);
        }
        all.extend(v);
    }
    if let Some(chart) = chart {
        *chart = Chart {
            title: format!(
                "Crashed nodes known dead, {} nodes (lan, loss {})",
                p.nodes, common.loss
            ),
            x_label: "seconds since the crash".into(),
            y_label: "fraction of running nodes holding it dead".into(),
            series: plan
                .iter()
                .take(6)
                .map(|&(_, h)| {
                    let mut v = dead_at.get(&h).cloned().unwrap_or_default();
                    v.sort_by(f64::total_cmp);
                    Series {
                        name: format!("node {}", id_of(h).0),
                        points: v
                            .iter()
                            .enumerate()
                            .map(|(k, &t)| (t, (k + 1) as f64 / running_after as f64))
                            .collect(),
                    }
                })
                .collect(),
            y_from_zero: true,
            y_log: false,
        };
    }
    Report {
        first_suspect_periods_mean: ms(periods.iter().sum::<f64>() / periods.len().max(1) as f64),
        all_know_dead_secs_p99: ms(percentile(&all, 99.0)),
        false_positives: false_dead.len() as u64,
    }
}
