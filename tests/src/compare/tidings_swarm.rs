//! tidings in the comparison: the simulator's [`Cluster`] of real nodes with [`Config::lan`]
//! (through [`template`]).
//!
//! [`Config::lan`]: tidings::config::Config::lan

use super::{Noticed, Swarm};
use crate::cluster::{addr_of, host_of_id, Cluster};
use crate::net::NetConfig;
use crate::scenario::template;
use tidings::config::Config;
use tidings::node::Event;
use tidings::Instant;

/// A tidings cluster.
pub struct TidingsSwarm {
    cluster: Cluster,
}

impl TidingsSwarm {
    /// `n` nodes with the settings of `config` that already know each other.
    pub fn converged_with(config: Config, n: usize, net: NetConfig, seed: u64) -> Self {
        let mut cluster = Cluster::converged(config, net, n, seed);
        cluster.watch = true;
        TidingsSwarm { cluster }
    }
}

impl Swarm for TidingsSwarm {
    fn converged(n: usize, net: NetConfig, seed: u64) -> Self {
        TidingsSwarm::converged_with(template(n), n, net, seed)
    }

    fn fresh(n: usize, net: NetConfig, seed: u64) -> Self {
        let mut cluster = Cluster::new(template(n), net, seed);
        for _ in 0..n {
            cluster.start_host();
        }
        TidingsSwarm { cluster }
    }

    fn join(&mut self, i: usize, seed: usize) {
        self.cluster.with_node(i, |n, _| n.join(addr_of(seed)));
    }

    fn now(&self) -> Instant {
        self.cluster.now
    }

    fn run_until(&mut self, until: Instant) {
        self.cluster.run_until(until);
    }

    fn crash(&mut self, i: usize) {
        self.cluster.crash(i);
    }

    fn is_running(&self, i: usize) -> bool {
        self.cluster.node(i).is_some()
    }

    fn known(&self, i: usize) -> usize {
        self.cluster.node(i).map_or(0, |n| n.members().live())
    }

    fn update(&mut self, i: usize, key: u32) {
        self.cluster
            .with_node(i, |n, now| n.set(now, &key.to_be_bytes(), b"value..."))
            .expect("the origin runs")
            .expect("the update is accepted");
    }

    fn quiet(&self) -> bool {
        self.cluster
            .running()
            .all(|i| self.cluster.node(i).is_some_and(|n| n.queued_news() == 0))
    }

    fn take_noticed(&mut self) -> Vec<(Instant, Noticed)> {
        self.cluster
            .take_events()
            .into_iter()
            .filter_map(|seen| {
                let host = seen.host;
                let n = match seen.event {
                    Event::DataChanged(k) => Noticed::Update {
                        host,
                        key: u32::from_be_bytes(k.as_slice().try_into().ok()?),
                    },
                    Event::MemberFailed(id) => Noticed::Dead {
                        host,
                        target: host_of_id(id)?,
                    },
                    _ => return None,
                };
                Some((seen.at, n))
            })
            .collect()
    }

    fn bytes_sent(&self) -> u64 {
        self.cluster.hosts.iter().map(|h| h.bytes_out).sum()
    }

    fn max_datagram(&self) -> usize {
        self.cluster.max_datagram
    }

    fn hosts(&self) -> usize {
        self.cluster.hosts.len()
    }
}
