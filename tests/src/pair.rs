//! Two replicas reconciling over a simulated link: virtual time, latency and jitter, seeded loss and
//! duplication.
//!
//! Every datagram goes through the real path: [`Engine::poll_transmit`] writes it, [`wire::decode`]
//! validates it, [`Engine::handle`] acts on it. The link records what crossed it.

use crate::net::{Net, NetConfig};
use crate::rng::Rng;
use std::net::SocketAddr;
use tidings::sync::{Engine, Replica, SyncConfig};
use tidings::wire::{self, Header, Kind, Message, TreeId};
use tidings::{ClusterId, Duration, Instant, NodeId};

/// The cluster every simulated peer belongs to.
pub const CLUSTER: ClusterId = ClusterId(*b"sim!");

/// One side of a pair.
pub struct Peer<R> {
    /// The replicated table.
    pub replica: R,
    /// Its sync engine.
    pub engine: Engine<1024>,
    /// Its address.
    pub addr: SocketAddr,
    /// Its datagram header.
    pub header: Header,
    /// Causal depth of the deepest datagram received.
    depth: u32,
}

impl<R: Replica> Peer<R> {
    /// A peer with id `id` at 10.0.0.`id`.
    pub fn new(id: u8, replica: R, config: SyncConfig) -> Self {
        Peer {
            replica,
            engine: Engine::new(config),
            addr: SocketAddr::from(([10, 0, 0, id], 7946)),
            header: Header::new(CLUSTER, NodeId(u64::from(id))),
            depth: 0,
        }
    }
}

/// The link's settings.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// One-way latency.
    pub latency: Duration,
    /// Extra random latency, so datagrams overtake each other.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// The configured maximum datagram (the receiver rejects larger ones).
    pub max_datagram: usize,
}

/// What crossed the link during a reconciliation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams sent (lost ones included).
    pub datagrams: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Bytes sent by each side.
    pub bytes_by_side: [u64; 2],
    /// Bytes of every datagram that carried no entry: the cost of finding the differences.
    pub identify_bytes: u64,
    /// Bytes of the entries themselves (without datagram headers).
    pub payload_bytes: u64,
    /// Identify bytes by message kind: roots, digests, listings, fetches and wants, sketches.
    pub identify_by_kind: [u64; 5],
    /// Largest datagram.
    pub max_datagram: usize,
    /// Work the engines refused for lack of room in their queues.
    pub dropped: u64,
    /// Longest causal chain of messages, in round trips, over every exchange.
    pub round_trips: u32,
    /// Exchanges started.
    pub rounds: u32,
    /// Datagrams the receiver rejected.
    pub rejected: u64,
    /// Datagrams that arrived after one sent later on the same path.
    pub reordered: u64,
    /// Extra copies the link delivered.
    pub duplicated: u64,
}

/// Runs exchanges started by `a` until the roots agree or `max_rounds` exchanges have run. Returns the
/// traffic and the virtual time at the end.
pub fn reconcile<R: Replica>(
    a: &mut Peer<R>,
    b: &mut Peer<R>,
    tree: TreeId,
    link: Link,
    rng: &mut Rng,
    max_rounds: u32,
    mut now: Instant,
) -> (Traffic, Instant) {
    let mut t = Traffic::default();
    let config = NetConfig {
        latency: link.latency,
        jitter: link.jitter,
        loss: link.loss,
        duplicate: link.duplicate,
    };
    let mut net = Net::new(2, config, rng.next_u64());
    let mut buf = vec![0u8; 65_536];
    let addrs = [a.addr, b.addr];
    let roots_differ =
        |a: &Peer<R>, b: &Peer<R>| a.replica.tree().root() != b.replica.tree().root();
    while t.rounds < max_rounds && (t.rounds == 0 || roots_differ(a, b)) {
        t.rounds += 1;
        // Round trips add up over exchanges: a second exchange starts after the first ended.
        let base = t.round_trips;
        a.depth = 0;
        b.depth = 0;
        a.engine.start(b.addr, tree);
        loop {
            for (from, peer) in [&mut *a, &mut *b].into_iter().enumerate() {
                drain(
                    peer,
                    from,
                    now,
                    &mut net,
                    &mut t,
                    &mut buf,
                    link.max_datagram,
                );
            }
            // Converged with nothing in flight: the measurement ends (the engine's check of a
            // silent exchange would only confirm the match).
            let quiet = net.next_at().is_none() && a.engine.is_idle() && b.engine.is_idle();
            if quiet && !roots_differ(a, b) {
                break;
            }
            let wake = [
                a.engine.poll_timeout(),
                b.engine.poll_timeout(),
                net.next_at(),
            ];
            let Some(next) = wake.into_iter().flatten().min() else {
                break;
            };
            now = now.max(next);
            a.engine.handle_timeout(now);
            b.engine.handle_timeout(now);
            while let Some(d) = net.pop_due(now) {
                let to = d.to;
                let peer = if to == 1 { &mut *b } else { &mut *a };
                t.round_trips = t.round_trips.max(base + d.tag.div_ceil(2));
                peer.depth = peer.depth.max(d.tag);
                match wire::decode(&d.bytes, CLUSTER, link.max_datagram) {
                    Ok((_, msg)) => {
                        if peer
                            .engine
                            .handle(now, addrs[d.from], &msg, &mut peer.replica)
                            .is_err()
                        {
                            t.rejected += 1;
                        }
                    }
                    Err(_) => t.rejected += 1,
                }
                // As a node is driven: what an input made ready leaves before the next input.
                drain(peer, to, now, &mut net, &mut t, &mut buf, link.max_datagram);
            }
        }
    }
    t.dropped = a.engine.stats().dropped + b.engine.stats().dropped;
    t.reordered = net.stats().reordered;
    t.duplicated = net.stats().duplicated;
    (t, now)
}

/// Sends every datagram `peer` (index `from`) is ready to send at `now`.
fn drain<R: Replica>(
    peer: &mut Peer<R>,
    from: usize,
    now: Instant,
    net: &mut Net,
    t: &mut Traffic,
    buf: &mut [u8],
    max: usize,
) {
    while let Some(tx) = peer
        .engine
        .poll_transmit(now, &peer.header, &peer.replica, buf)
    {
        let bytes = buf[..tx.len].to_vec();
        record(t, &bytes, tx.kind, max);
        t.bytes_by_side[from] += bytes.len() as u64;
        net.send(now, from, 1 - from, bytes, peer.depth + 1);
    }
}

fn record(t: &mut Traffic, bytes: &[u8], kind: Kind, max: usize) {
    t.datagrams += 1;
    t.bytes += bytes.len() as u64;
    t.max_datagram = t.max_datagram.max(bytes.len());
    if kind == Kind::Entries {
        if let Ok((_, Message::Entries { bytes: entries, .. })) = wire::decode(bytes, CLUSTER, max)
        {
            t.payload_bytes += entries.len() as u64;
        }
    } else {
        t.identify_bytes += bytes.len() as u64;
        let i = match kind {
            Kind::Root => 0,
            Kind::Digests => 1,
            Kind::Listing => 2,
            Kind::Sketch => 4,
            _ => 3,
        };
        t.identify_by_kind[i] += bytes.len() as u64;
    }
}
