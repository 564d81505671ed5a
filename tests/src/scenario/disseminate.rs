//! How fast one write reaches every node.
//!
//! In a settled cluster, a random node writes a key; every node's arrival time and hop count are
//! recorded (the hop count is carried as the datagram's tag: the writer's datagrams are hop 1, and a
//! node that learned at hop k sends hop k+1). The trial ends when every running node holds the write.
//! Trials run one after another, each once the previous one has settled.

use super::{ms, percentile, settle, settled, Common, Progress};
use crate::plot::{Chart, Series};
use serde::Serialize;
use tidings::node::Event;
use tidings::Duration;

/// What `disseminate` measures.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Writes spread.
    pub trials: usize,
    /// Hops from the writer: median over every (trial, node).
    pub rounds_p50: f64,
    /// Hops: 99th percentile.
    pub rounds_p99: f64,
    /// Hops: worst.
    pub rounds_max: f64,
    /// Seconds from the write until a node holds it: median over every (trial, node).
    pub secs_p50: f64,
    /// Seconds: 99th percentile.
    pub secs_p99: f64,
    /// Seconds: the slowest node of the slowest trial.
    pub secs_max: f64,
    /// Whether every trial reached every running node.
    pub reached_all: bool,
}

/// Parameters of `disseminate`.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Nodes.
    pub nodes: usize,
    /// Trials.
    pub trials: usize,
    /// Longest a trial may take.
    pub limit: Duration,
}

/// Runs the scenario; `chart` receives the fraction of nodes reached over time, per trial.
pub fn run(p: Params, common: &Common, chart: Option<&mut Chart>) -> Report {
    let mut progress = Progress::new("disseminate", common);
    let mut c = settled(p.nodes, common);
    let mut rng = crate::rng::Rng::new(common.seed ^ 0xd155);
    let (mut secs, mut hops) = (Vec::new(), Vec::new());
    let mut reached_all = true;
    let mut series = Vec::new();
    for trial in 0..p.trials {
        let writer = rng.below(p.nodes as u64) as usize;
        let key = format!("trial-{trial}").into_bytes();
        for h in c.hosts.iter_mut() {
            h.tag = 0;
        }
        c.hosts[writer].tag = 1;
        c.trace = Some(key.clone());
        c.watch = true;
        let start = c.now;
        c.with_node(writer, |n, now| n.set(now, &key, b"value"))
            .expect("writer runs")
            .expect("write accepted");
        let mut reached = 1usize;
        let mut curve = vec![(0.0, 1.0 / p.nodes as f64)];
        let until = start + p.limit;
        while reached < p.nodes && c.now < until {
            c.run_for(Duration::from_millis(10));
            for seen in c.take_events() {
                if seen.event != Event::DataChanged(key.clone()) {
                    continue;
                }
                let hop = seen.via.unwrap_or(0);
                let t = (seen.at - start).as_millis() as f64 / 1000.0;
                secs.push(t);
                hops.push(f64::from(hop));
                reached += 1;
                curve.push((t, reached as f64 / p.nodes as f64));
            }
            progress.show(|| {
                format!(
                    "trial {}/{}: {reached}/{} nodes",
                    trial + 1,
                    p.trials,
                    p.nodes
                )
            });
        }
        reached_all &= reached >= p.nodes;
        series.push(Series {
            name: format!("trial {}", trial + 1),
            points: curve,
        });
        c.watch = false;
        c.take_events();
        settle(&mut c, Duration::from_secs(30));
    }
    progress.done();
    if let Some(chart) = chart {
        *chart = Chart {
            title: format!(
                "One write reaching {} nodes (lan, loss {})",
                p.nodes, common.loss
            ),
            x_label: "seconds since the write".into(),
            y_label: "fraction of nodes holding it".into(),
            series: series.into_iter().take(6).collect(),
            y_from_zero: true,
            y_log: false,
        };
    }
    Report {
        nodes: p.nodes,
        trials: p.trials,
        rounds_p50: percentile(&hops, 50.0),
        rounds_p99: percentile(&hops, 99.0),
        rounds_max: percentile(&hops, 100.0),
        secs_p50: ms(percentile(&secs, 50.0)),
        secs_p99: ms(percentile(&secs, 99.0)),
        secs_max: ms(percentile(&secs, 100.0)),
        reached_all,
    }
}
