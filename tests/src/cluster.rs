//! A cluster of real [`Node`]s on the simulated network, in virtual time.
//!
//! Every node is driven exactly as an adapter drives it: each datagram and each timer is one input,
//! after which its transmits and events are drained and its next deadline is queued. Timers live in
//! one priority queue, so the cost of a step does not depend on the number of nodes, and the same
//! seed always gives the same run.

use crate::net::{Delivery, Net, NetConfig, NetStats};
use crate::storage::SimStorage;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};
use tidings::config::Config;
use tidings::members::Status;
use tidings::node::{Event, Node, Rumor};
use tidings::wire::{self, Encoder, Kind, TAG_RESERVE};
use tidings::{ClusterId, Duration, Instant, NodeId};

/// A simulated node.
pub type SimNode = Node<SimStorage>;

/// The cluster every simulation runs in.
pub const CLUSTER: ClusterId = ClusterId(*b"sim1");

/// The address of host `i`: 10.0.0.0/8, one address per host, port 7946.
pub fn addr_of(i: usize) -> SocketAddr {
    let ip = 0x0a00_0001u32.wrapping_add(i as u32);
    SocketAddr::from((Ipv4Addr::from(ip), 7946))
}

/// The host listening at `addr`, if it is a simulator address.
pub fn host_of(addr: SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(a) if a.port() == 7946 => {
            let i = u32::from(*a.ip()).checked_sub(0x0a00_0001)?;
            usize::try_from(i).ok()
        }
        _ => None,
    }
}

/// The id of host `i`.
pub fn id_of(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

/// The host whose node has id `id`.
pub fn host_of_id(id: NodeId) -> Option<usize> {
    usize::try_from(id.0.checked_sub(1)?).ok()
}

/// One machine of the simulation: a node while it runs, nothing while it is down.
pub struct Host {
    /// The node, while running.
    pub node: Option<SimNode>,
    /// Generation of the current (or last) run.
    pub generation: u32,
    /// Tag stamped on the datagrams this host sends (scenarios use it for hop counts).
    pub tag: u32,
    /// Bytes this host has sent.
    pub bytes_out: u64,
    /// Datagrams this host has sent.
    pub datagrams_out: u64,
    timer: Option<Instant>,
}

/// An event a node emitted, with when and where.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When.
    pub at: Instant,
    /// Which host.
    pub host: usize,
    /// What.
    pub event: Event<Vec<u8>>,
    /// The tag of the datagram being handled, if the event came from one.
    pub via: Option<u32>,
}

/// The simulated cluster.
pub struct Cluster {
    /// Virtual time.
    pub now: Instant,
    /// Every host ever started, by index.
    pub hosts: Vec<Host>,
    /// Events seen since the last [`Cluster::take_events`], while [`Cluster::watch`] is on.
    pub events: Vec<Seen>,
    /// Whether to keep events.
    pub watch: bool,
    /// Largest datagram any node sent.
    pub max_datagram: usize,
    /// Bytes sent by every node, by message kind.
    pub bytes_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Datagrams a node refused (they change nothing; between correct nodes this should stay 0).
    pub refused: u64,
    /// Every datagram delivered, as (from, to, bytes), while [`Cluster::capture`] is on.
    pub captured: Vec<(usize, usize, Vec<u8>)>,
    /// Whether to keep delivered datagrams.
    pub capture: bool,
    /// A key whose spread is traced: a host that learns it from a datagram tagged k tags its own
    /// datagrams k + 1 from then on.
    pub trace: Option<Vec<u8>>,
    net: Net,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    template: Config,
    seed: u64,
    buf: Vec<u8>,
}

impl Cluster {
    /// An empty cluster whose nodes take their settings from `template` (node id and generation
    /// are filled in per host).
    pub fn new(template: Config, net: NetConfig, seed: u64) -> Self {
        Cluster {
            now: Instant::from_millis(1_000),
            hosts: Vec::new(),
            events: Vec::new(),
            watch: false,
            max_datagram: 0,
            bytes_by_kind: Default::default(),
            refused: 0,
            trace: None,
            captured: Vec::new(),
            capture: false,
            net: Net::new(0, net, seed ^ 0x6e65_7477_6f72_6b00),
            timers: BinaryHeap::new(),
            template,
            seed,
            buf: vec![0; 65_536],
        }
    }

    /// A cluster of `n` nodes that already agree on membership: every node has been handed every
    /// member's alive record, as after a completed join. The news of those joins is still queued
    /// for gossip, so let it settle ([`Cluster::run_for`]) before measuring a steady state.
    pub fn converged(template: Config, net: NetConfig, n: usize, seed: u64) -> Self {
        let mut c = Cluster::new(template, net, seed);
        for _ in 0..n {
            c.start_host();
        }
        c.introduce_all();
        c
    }

    fn config_for(&self, i: usize, generation: u32) -> Config {
        Config {
            node: id_of(i),
            generation,
            ..self.template
        }
    }

    fn boot(&mut self, i: usize) {
        let generation = self.hosts[i].generation;
        let config = self.config_for(i, generation);
        let seed =
            self.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(generation);
        let node = Node::new(config, self.now, addr_of(i), b"", seed)
            .unwrap_or_else(|e| panic!("simulated node {i}: {e:?}"));
        self.hosts[i].node = Some(node);
        self.reschedule(i);
    }

    /// Starts a new host with a fresh node that knows only itself; returns its index.
    pub fn start_host(&mut self) -> usize {
        let i = self.net.add_host();
        debug_assert_eq!(i, self.hosts.len());
        self.hosts.push(Host {
            node: None,
            generation: 0,
            tag: 0,
            bytes_out: 0,
            datagrams_out: 0,
            timer: None,
        });
        self.boot(i);
        i
    }

    /// Starts a new host that joins through host `seed`; returns its index.
    pub fn join_new(&mut self, seed: usize) -> usize {
        let i = self.start_host();
        self.with_node(i, |node, _| node.join(addr_of(seed)));
        i
    }

    /// Stops host `i` without a word: its datagrams in flight still arrive, nothing more leaves it.
    pub fn crash(&mut self, i: usize) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.node = None;
            h.timer = None;
        }
    }

    /// Restarts a stopped host `i` with the next generation and joins it through `seed`.
    pub fn restart(&mut self, i: usize, seed: usize) {
        self.hosts[i].generation += 1;
        self.boot(i);
        self.with_node(i, |node, _| node.join(addr_of(seed)));
    }

    /// Puts host `i` on partition side `side`.
    pub fn set_side(&mut self, i: usize, side: u32) {
        self.net.set_side(i, side);
    }

    /// Changes latency, loss and duplication for datagrams sent from now on.
    pub fn set_net(&mut self, config: NetConfig) {
        self.net.set_config(config);
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// What the network did.
    pub fn net_stats(&self) -> NetStats {
        self.net.stats()
    }

    /// Hosts running now.
    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.hosts.len()).filter(|&i| self.hosts[i].node.is_some())
    }

    /// The node of host `i`, if running.
    pub fn node(&self, i: usize) -> Option<&SimNode> {
        self.hosts.get(i).and_then(|h| h.node.as_ref())
    }

    /// Runs a command on the node of host `i` (if running), then drains it. The closure gets the
    /// node and the current time.
    pub fn with_node<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut SimNode, Instant) -> R,
    ) -> Option<R> {
        let now = self.now;
        let r = f(self.hosts.get_mut(i)?.node.as_mut()?, now);
        self.drain(i, None);
        Some(r)
    }

    /// The status host `i` holds for host `j`.
    pub fn status(&self, i: usize, j: usize) -> Option<Status> {
        self.node(i)?.members().get(id_of(j)).map(|m| m.status())
    }

    /// Hands every running node every running node's own record, in datagrams as gossip carries
    /// them: a cluster that has finished joining.
    pub fn introduce_all(&mut self) {
        let Some(first) = self.running().next() else {
            return;
        };
        let now = self.now;
        let retention = self.template.members.retention;
        let mut records: Vec<(u64, usize)> = self
            .running()
            .map(|i| {
                let n = self.node(i).expect("running");
                (n.members().hash_of(n.id()), i)
            })
            .collect();
        // In key-hash order, so every table grows by appending.
        records.sort_unstable();
        let header = self.config_for(first, 0).header();
        let ring = self.template.auth;
        let max = self.template.sync.max_datagram;
        let limit = max - TAG_RESERVE - wire::nonce_room(ring.as_ref());
        let mut datagrams: Vec<Vec<u8>> = Vec::new();
        let mut at = 0;
        while at < records.len() {
            let mut buf = vec![0u8; max];
            let mut enc =
                Encoder::new(&mut buf[..limit], &header, Kind::Gossip).expect("room for a header");
            while let Some(&(_, i)) = records.get(at) {
                let node = self.node(i).expect("running");
                let me = node.members().me().expect("knows itself");
                if !enc.push(&Rumor::Member(me.to_wire(now, retention))) {
                    break;
                }
                at += 1;
            }
            let len = enc.finish();
            // Sealed as the cluster's nodes seal theirs, under a generation no simulated node has.
            let nonce = wire::Nonce {
                generation: u32::MAX,
                counter: datagrams.len() as u64,
            };
            let len = wire::seal(ring.as_ref(), nonce, &mut buf, len).expect("room for the seal");
            buf.truncate(len);
            datagrams.push(buf);
        }
        let running: Vec<usize> = self.running().collect();
        for i in running {
            let node = self.hosts[i].node.as_mut().expect("running");
            for d in &datagrams {
                if node
                    .handle_datagram(now, addr_of(first), &mut d.clone())
                    .is_err()
                {
                    self.refused += 1;
                }
                // Taken after every input, as a driver does: no change waits for room.
                while node.poll_event().is_some() {}
            }
            self.reschedule(i);
        }
    }

    fn reschedule(&mut self, i: usize) {
        let now = self.now;
        let h = &mut self.hosts[i];
        let next = h
            .node
            .as_ref()
            .and_then(|n| n.poll_timeout())
            .map(|t| t.max(now));
        if next != h.timer {
            h.timer = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    /// Sends what host `i` has to send and collects its events. `via` is the tag of the datagram
    /// that prompted it.
    fn drain(&mut self, i: usize, via: Option<u32>) {
        let now = self.now;
        let hosts_len = self.hosts.len();
        let h = &mut self.hosts[i];
        let Some(node) = h.node.as_mut() else {
            return;
        };
        while let Some(event) = node.poll_event() {
            if let (Event::DataChanged(k), Some(via)) = (&event, via) {
                if self.trace.as_ref() == Some(k) {
                    h.tag = via + 1;
                }
            }
            if self.watch {
                self.events.push(Seen {
                    at: now,
                    host: i,
                    event,
                    via,
                });
            }
        }
        while let Some(t) = node.poll_transmit(now, &mut self.buf) {
            h.bytes_out += t.len as u64;
            h.datagrams_out += 1;
            *self.bytes_by_kind.entry(kind_name(t.kind)).or_default() += t.len as u64;
            self.max_datagram = self.max_datagram.max(t.len);
            if let Some(to) = host_of(t.to).filter(|&to| to < hosts_len) {
                self.net.send(now, i, to, self.buf[..t.len].to_vec(), h.tag);
            }
        }
        self.reschedule(i);
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        if self.hosts.get(d.to).is_none_or(|h| h.node.is_none()) {
            return;
        }
        let mut bytes = d.bytes;
        if self.capture {
            // As sent: an encrypted datagram is opened where it lies.
            self.captured.push((d.from, d.to, bytes.clone()));
        }
        let node = self.hosts[d.to].node.as_mut().expect("running");
        if node
            .handle_datagram(now, addr_of(d.from), &mut bytes)
            .is_err()
        {
            self.refused += 1;
        }
        let (to, tag) = (d.to, d.tag);
        self.drain(to, Some(tag));
    }

    /// Delivers `bytes` to host `to` now, as if sent by host `from` (a replay, a forgery...), then
    /// drains it. Whether the node accepted it.
    pub fn inject(&mut self, from: usize, to: usize, bytes: &[u8]) -> bool {
        let now = self.now;
        let Some(node) = self.hosts.get_mut(to).and_then(|h| h.node.as_mut()) else {
            return false;
        };
        let ok = node
            .handle_datagram(now, addr_of(from), &mut bytes.to_vec())
            .is_ok();
        self.drain(to, None);
        ok
    }

    fn fire(&mut self, i: usize) {
        let now = self.now;
        let h = &mut self.hosts[i];
        h.timer = None;
        if let Some(node) = h.node.as_mut() {
            node.handle_timeout(now);
            self.drain(i, None);
        }
    }

    /// Runs until virtual time `until`, handling every delivery and timer on the way in order.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let timer = loop {
                match self.timers.peek() {
                    Some(&Reverse((t, i))) if self.hosts[i].timer != Some(t) => {
                        self.timers.pop();
                    }
                    Some(&Reverse((t, i))) => break Some((t, i)),
                    None => break None,
                }
            };
            let packet = self.net.next_at();
            let next = match (timer, packet) {
                (Some((t, _)), Some(p)) => t.min(p),
                (Some((t, _)), None) => t,
                (None, Some(p)) => p,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if packet == Some(next) {
                if let Some(d) = self.net.pop_due(self.now) {
                    self.deliver(d);
                }
                continue;
            }
            if let Some((_, i)) = timer {
                self.timers.pop();
                self.fire(i);
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Takes the events seen so far.
    pub fn take_events(&mut self) -> Vec<Seen> {
        std::mem::take(&mut self.events)
    }

    /// Whether all running nodes hold identical member tables (equal digest roots).
    pub fn members_agree(&self) -> bool {
        let mut roots = self
            .running()
            .map(|i| self.node(i).expect("running").members().root());
        let Some(first) = roots.next() else {
            return true;
        };
        roots.all(|r| r == first)
    }

    /// Whether all running nodes hold identical data (equal digest roots).
    pub fn data_agrees(&self) -> bool {
        let mut roots = self
            .running()
            .map(|i| self.node(i).expect("running").data().root());
        let Some(first) = roots.next() else {
            return true;
        };
        roots.all(|r| r == first)
    }
}

/// A message kind's name in reports.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Root => "root",
        Kind::Digests => "digests",
        Kind::Listing => "listing",
        Kind::Fetch => "fetch",
        Kind::Entries => "entries",
        Kind::Sketch => "sketch",
        Kind::Want => "want",
        Kind::Ping => "ping",
        Kind::Ack => "ack",
        Kind::PingReq => "ping_req",
        Kind::Gossip => "gossip",
    }
}
