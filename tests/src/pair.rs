//! Two replicas reconciling over a simulated link: virtual time, fixed latency, seeded loss.
//!
//! Every datagram goes through the real path: [`Engine::poll_transmit`] writes it, [`wire::decode`]
//! validates it, [`Engine::handle`] acts on it. The link records what crossed it.

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
    pub engine: Engine<256>,
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
    /// Probability that a datagram is lost.
    pub loss: f64,
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
    /// Bytes of every datagram that carried no entry: the cost of finding the differences.
    pub identify_bytes: u64,
    /// Bytes of the entries themselves (without datagram headers).
    pub payload_bytes: u64,
    /// Largest datagram.
    pub max_datagram: usize,
    /// Longest causal chain of messages, in round trips.
    pub round_trips: u32,
    /// Exchanges started.
    pub rounds: u32,
    /// Datagrams the receiver rejected.
    pub rejected: u64,
}

struct InFlight {
    at: Instant,
    to_b: bool,
    depth: u32,
    bytes: Vec<u8>,
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
    let mut flight: Vec<InFlight> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let (a_addr, b_addr) = (a.addr, b.addr);
    while t.rounds < max_rounds
        && (t.rounds == 0 || a.replica.tree().root() != b.replica.tree().root())
    {
        t.rounds += 1;
        a.depth = 0;
        b.depth = 0;
        a.engine.start(b.addr, tree);
        loop {
            for (peer, to_b) in [(&mut *a, true), (&mut *b, false)] {
                while let Some(tx) =
                    peer.engine
                        .poll_transmit(now, &peer.header, &peer.replica, &mut buf)
                {
                    let bytes = buf[..tx.len].to_vec();
                    record(&mut t, &bytes, tx.kind, link.max_datagram);
                    if !rng.chance(link.loss) {
                        flight.push(InFlight {
                            at: now + link.latency,
                            to_b,
                            depth: peer.depth + 1,
                            bytes,
                        });
                    }
                }
            }
            let next_tx = [a.engine.poll_timeout(), b.engine.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let next_rx = flight.iter().map(|f| f.at).min();
            let Some(next) = [next_tx, next_rx].into_iter().flatten().min() else {
                break;
            };
            now = now.max(next);
            let (due, rest): (Vec<_>, Vec<_>) = flight.into_iter().partition(|f| f.at <= now);
            flight = rest;
            for f in due {
                let peer = if f.to_b { &mut *b } else { &mut *a };
                let from = if f.to_b { a_addr } else { b_addr };
                t.round_trips = t.round_trips.max(f.depth.div_ceil(2));
                peer.depth = peer.depth.max(f.depth);
                match wire::decode(&f.bytes, CLUSTER, link.max_datagram) {
                    Ok((_, msg)) => {
                        if peer
                            .engine
                            .handle(now, from, &msg, &mut peer.replica)
                            .is_err()
                        {
                            t.rejected += 1;
                        }
                    }
                    Err(_) => t.rejected += 1,
                }
            }
        }
    }
    (t, now)
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
    }
}
