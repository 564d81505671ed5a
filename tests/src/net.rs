//! A seeded network for the simulator: per-datagram latency and jitter (hence reordering), loss,
//! duplication and partitions, in virtual time. The same seed always gives the same deliveries.

use crate::rng::Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tidings::{Duration, Instant};

/// How the network treats every datagram.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// Base one-way latency.
    pub latency: Duration,
    /// Extra latency, uniform in `0..=jitter`; datagrams overtake each other within it.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// A datagram arriving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The sending host.
    pub from: usize,
    /// The receiving host.
    pub to: usize,
    /// The datagram.
    pub bytes: Vec<u8>,
    /// A tag the sender attached (the simulator uses it for causal depth).
    pub tag: u32,
}

/// What the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Bytes handed to the network.
    pub sent_bytes: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Datagrams dropped by a partition.
    pub cut: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Datagrams delivered (copies included).
    pub delivered: u64,
    /// Datagrams delivered after one sent later on the same path (from one host to another).
    pub reordered: u64,
}

/// The network between `hosts` hosts.
pub struct Net {
    config: NetConfig,
    rng: Rng,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    slots: Vec<Option<Delivery>>,
    free: Vec<usize>,
    seq: u64,
    side: Vec<u32>,
    stats: NetStats,
    /// The latest send sequence delivered on each path.
    delivered_seq: std::collections::HashMap<(usize, usize), u64>,
}

impl Net {
    /// A network of `hosts` hosts, all connected.
    pub fn new(hosts: usize, config: NetConfig, seed: u64) -> Self {
        Net {
            config,
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            side: vec![0; hosts],
            stats: NetStats::default(),
            delivered_seq: std::collections::HashMap::new(),
        }
    }

    /// Changes how the network treats datagrams sent from now on.
    pub fn set_config(&mut self, config: NetConfig) {
        self.config = config;
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Adds a host, connected to everyone on side 0; returns its index.
    pub fn add_host(&mut self) -> usize {
        self.side.push(0);
        self.side.len() - 1
    }

    /// Puts `host` on partition side `side`: hosts on different sides cannot reach each other.
    pub fn set_side(&mut self, host: usize, side: u32) {
        if let Some(s) = self.side.get_mut(host) {
            *s = side;
        }
    }

    /// Reconnects everyone.
    pub fn heal(&mut self) {
        self.side.iter_mut().for_each(|s| *s = 0);
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.side.get(a).is_some() && self.side.get(a) == self.side.get(b)
    }

    /// Sends a datagram at `now`.
    pub fn send(&mut self, now: Instant, from: usize, to: usize, bytes: Vec<u8>, tag: u32) {
        self.stats.sent += 1;
        self.stats.sent_bytes += bytes.len() as u64;
        if !self.connected(from, to) {
            self.stats.cut += 1;
            return;
        }
        if self.rng.chance(self.config.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            2
        } else {
            1
        };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            let jitter = match self.config.jitter.as_millis() {
                0 => 0,
                j => self.rng.below(j + 1),
            };
            let at = now + self.config.latency + Duration::from_millis(jitter);
            let d = Delivery {
                from,
                to,
                bytes: bytes.clone(),
                tag,
            };
            let slot = match self.free.pop() {
                Some(i) => {
                    self.slots[i] = Some(d);
                    i
                }
                None => {
                    self.slots.push(Some(d));
                    self.slots.len() - 1
                }
            };
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq, slot)));
        }
    }

    /// When the next datagram arrives.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next datagram due at or before `now`. A partition that formed while it was in flight
    /// drops it on arrival.
    pub fn pop_due(&mut self, now: Instant) -> Option<Delivery> {
        loop {
            let &Reverse((at, seq, slot)) = self.queue.peek()?;
            if at > now {
                return None;
            }
            self.queue.pop();
            let d = self.slots[slot].take()?;
            self.free.push(slot);
            if !self.connected(d.from, d.to) {
                self.stats.cut += 1;
                continue;
            }
            self.stats.delivered += 1;
            let last = self.delivered_seq.entry((d.from, d.to)).or_insert(0);
            if seq < *last {
                self.stats.reordered += 1;
            }
            *last = (*last).max(seq);
            return Some(d);
        }
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, config: NetConfig) -> Vec<(Instant, Delivery)> {
        let mut net = Net::new(3, config, seed);
        for i in 0..200u32 {
            net.send(
                Instant::from_millis(u64::from(i)),
                (i % 3) as usize,
                ((i + 1) % 3) as usize,
                vec![i as u8],
                i,
            );
        }
        let mut out = Vec::new();
        while let Some(at) = net.next_at() {
            while let Some(d) = net.pop_due(at) {
                out.push((at, d));
            }
        }
        out
    }

    #[test]
    fn same_seed_same_deliveries() {
        let c = NetConfig {
            jitter: Duration::from_millis(20),
            loss: 0.1,
            duplicate: 0.1,
            ..NetConfig::default()
        };
        assert_eq!(run(5, c), run(5, c));
        assert_ne!(run(5, c), run(6, c));
    }

    #[test]
    fn loss_duplication_and_reordering_happen_at_their_rates() {
        let c = NetConfig {
            jitter: Duration::from_millis(20),
            loss: 0.2,
            duplicate: 0.1,
            ..NetConfig::default()
        };
        let mut net = Net::new(2, c, 1);
        for i in 0..10_000u32 {
            net.send(Instant::from_millis(u64::from(i)), 0, 1, vec![], i);
        }
        let s = net.stats();
        assert!((1_700..2_300).contains(&s.lost), "{s:?}");
        assert!((600..1_000).contains(&s.duplicated), "{s:?}");
        let order: Vec<u32> =
            std::iter::from_fn(|| net.pop_due(Instant::from_millis(u64::MAX)).map(|d| d.tag))
                .collect();
        assert!(
            order.windows(2).any(|w| w[0] > w[1]),
            "jitter should reorder"
        );
    }

    #[test]
    fn partitions_cut_new_and_in_flight_datagrams() {
        let mut net = Net::new(
            3,
            NetConfig {
                latency: Duration::from_millis(10),
                ..NetConfig::default()
            },
            1,
        );
        net.send(Instant::ZERO, 0, 1, vec![1], 0);
        net.set_side(1, 1);
        net.send(Instant::ZERO, 0, 1, vec![2], 0);
        net.send(Instant::ZERO, 0, 2, vec![3], 0);
        let t = Instant::from_millis(10);
        let got: Vec<_> = std::iter::from_fn(|| net.pop_due(t))
            .map(|d| d.bytes)
            .collect();
        assert_eq!(got, vec![vec![3]]);
        assert_eq!(net.stats().cut, 2);
        net.heal();
        net.send(t, 0, 1, vec![4], 0);
        assert_eq!(
            net.pop_due(Instant::from_millis(20)).map(|d| d.bytes),
            Some(vec![4])
        );
    }
}
