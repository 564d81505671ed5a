//! A join storm: `nodes` fresh nodes start at once, each knowing only one seed, and the time until
//! every node knows every other is measured.
//!
//! Every node but the seed is told to join through host 0 at the same instant; each keeps asking its
//! seeds while it is alone (a node does that by itself). The storm is over when every node holds all
//! `nodes` members alive or suspect (under loss, a suspicion that will be refuted is still knowing).

use super::{lan, ms, sealed, Common, Progress};
use crate::cluster::{addr_of, Cluster};
use serde::Serialize;
use tidings::Duration;

/// What `join` measures.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Nodes in the storm (the seed included).
    pub nodes: usize,
    /// Seconds until every node knew every other; `null` if the limit passed first.
    pub join_converge_secs: Option<f64>,
    /// Seconds until half of the nodes knew every other.
    pub half_know_all_secs: Option<f64>,
    /// Members known (alive or suspect) when the run ended: the least any node knew.
    pub min_known: usize,
    /// Bytes sent per node per second during the storm.
    pub bytes_sent_per_node_per_sec: f64,
    /// Largest datagram sent.
    pub max_datagram: usize,
}

/// Runs a join storm of `nodes` nodes for at most `limit`.
pub fn run(nodes: usize, limit: Duration, common: &Common) -> Report {
    let mut progress = Progress::new("join", common);
    let mut c = Cluster::new(sealed(nodes, common), lan(common.loss), common.seed);
    for i in 0..nodes {
        c.start_host();
        if i > 0 {
            c.with_node(i, |n, _| n.join(addr_of(0)));
        }
    }
    let start = c.now;
    let (mut all, mut half) = (None, None);
    let mut min_known = 0;
    while c.now < start + limit {
        c.run_for(Duration::from_millis(100));
        let known: Vec<usize> = c
            .running()
            .map(|i| c.node(i).map_or(0, |n| n.members().live()))
            .collect();
        let complete = known.iter().filter(|&&k| k >= nodes).count();
        min_known = known.iter().copied().min().unwrap_or(0);
        let t = (c.now - start).as_millis() as f64 / 1000.0;
        if half.is_none() && complete * 2 >= nodes {
            half = Some(ms(t));
        }
        if complete == nodes {
            all = Some(ms(t));
            break;
        }
        progress.show(|| format!("{complete}/{nodes} know everyone; least known {min_known}"));
    }
    progress.done();
    let secs = (c.now - start).as_millis().max(1) as f64 / 1000.0;
    let bytes: u64 = c.hosts.iter().map(|h| h.bytes_out).sum();
    Report {
        nodes,
        join_converge_secs: all,
        half_know_all_secs: half,
        min_known,
        bytes_sent_per_node_per_sec: ms(bytes as f64 / nodes as f64 / secs),
        max_datagram: c.max_datagram,
    }
}
