//! What a settled cluster costs while nothing happens: probes, acks and anti-entropy roots.
//!
//! The cluster starts converged and is left to settle (the news of its joins passed on), then every
//! byte every node sends is counted for `secs` seconds. Nothing fails, so any suspicion is false.

use super::{ms, settled, Common, Progress};
use crate::plot::{Chart, Series};
use serde::Serialize;
use tidings::node::Event;
use tidings::Duration;

/// What `steady` measures.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Seconds measured.
    pub secs: u64,
    /// What every datagram carried beside its message (`--keyring`).
    pub keyring: super::Seal,
    /// Bytes sent per node per second (UDP payload).
    pub bytes_sent_per_node_per_sec: f64,
    /// Datagrams sent per node per second.
    pub datagrams_per_node_per_sec: f64,
    /// Largest datagram sent while measuring.
    pub max_datagram: usize,
    /// Suspicions seen, counted once per observer: every node that held a live member suspect.
    pub false_suspicions: u64,
    /// Suspicions started: probes that went unanswered although every node was up (each makes its
    /// prober suspect the target, or confirm a suspicion already spreading).
    pub suspicions_started: u64,
    /// Live members declared dead by at least one node.
    pub live_members_declared_dead: usize,
}

/// Runs `nodes` nodes for `secs` seconds; `chart` receives bytes per node per second over time.
pub fn run(nodes: usize, secs: u64, common: &Common, chart: Option<&mut Chart>) -> Report {
    let mut progress = Progress::new("steady", common);
    let mut c = settled(nodes, common);
    let total = |c: &crate::cluster::Cluster| -> (u64, u64) {
        c.hosts
            .iter()
            .fold((0, 0), |(b, d), h| (b + h.bytes_out, d + h.datagrams_out))
    };
    let (bytes0, datagrams0) = total(&c);
    let missed = |c: &crate::cluster::Cluster| -> u64 {
        c.hosts
            .iter()
            .filter_map(|h| h.node.as_ref())
            .map(|n| n.stats().missed_acks)
            .sum()
    };
    let missed0 = missed(&c);
    let mut declared_dead = std::collections::HashSet::new();
    c.max_datagram = 0;
    c.watch = true;
    let mut false_suspicions = 0u64;
    let mut points = Vec::new();
    let mut last = bytes0;
    for s in 1..=secs {
        c.run_for(Duration::from_secs(1));
        for e in c.take_events() {
            match e.event {
                Event::MemberSuspected(_) => false_suspicions += 1,
                Event::MemberFailed(id) => {
                    false_suspicions += 1;
                    declared_dead.insert(id);
                }
                _ => {}
            }
        }
        let (b, _) = total(&c);
        points.push((s as f64, (b - last) as f64 / nodes as f64));
        last = b;
        progress.show(|| format!("{s}/{secs} simulated seconds, {nodes} nodes"));
    }
    progress.done();
    let (bytes, datagrams) = total(&c);
    let per = (nodes as f64) * (secs.max(1) as f64);
    if let Some(chart) = chart {
        *chart = Chart {
            title: format!("Steady state, {nodes} nodes (lan)"),
            x_label: "simulated seconds".into(),
            y_label: "bytes sent per node per second".into(),
            series: vec![Series {
                name: format!("{nodes} nodes"),
                points,
            }],
            y_from_zero: true,
            y_log: false,
        };
    }
    Report {
        nodes,
        secs,
        keyring: common.seal,
        bytes_sent_per_node_per_sec: ms((bytes - bytes0) as f64 / per),
        datagrams_per_node_per_sec: ms((datagrams - datagrams0) as f64 / per),
        max_datagram: c.max_datagram,
        false_suspicions,
        suspicions_started: missed(&c) - missed0,
        live_members_declared_dead: declared_dead.len(),
    }
}
