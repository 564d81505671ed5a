//! foca 2 in the comparison: sans-IO SWIM nodes with `Config::new_lan(n)`, driven through the same
//! seeded [`Net`] and the same kind of timer queue as tidings' [`crate::cluster::Cluster`].
//!
//! Updates travel as foca custom broadcasts (12 bytes: the key, then the value), piggybacked on
//! foca's own messages and on its periodic gossip, each sent `max_transmissions` times per node.
//! A node holding an update drops any copy it receives again, as foca's documentation asks.

use super::{Noticed, Swarm};
use crate::net::{Net, NetConfig};
use crate::rng::Rng;
use foca::{
    BroadcastHandler, Config, Foca, Identity, Invalidates, Member, Notification, PostcardCodec,
    Runtime, Timer,
};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::num::NonZeroU32;
use std::rc::Rc;
use tidings::{Duration, Instant};

/// A foca identity: the host, and a generation bumped when foca renews it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Id {
    host: u32,
    generation: u16,
}

impl Identity for Id {
    type Addr = u32;

    fn renew(&self) -> Option<Self> {
        Some(Id {
            generation: self.generation.wrapping_add(1),
            ..*self
        })
    }

    fn addr(&self) -> u32 {
        self.host
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// The key of an update, as foca's broadcast queue knows it.
pub struct UpdateKey(u32);

impl Invalidates for UpdateKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// An update shorter than its key.
#[derive(Debug)]
pub struct ShortUpdate;

impl std::fmt::Display for ShortUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an update is at least 4 bytes")
    }
}

impl std::error::Error for ShortUpdate {}

/// One node's updates: which it holds, and a log of first arrivals the swarm drains.
pub struct Updates {
    host: usize,
    held: BTreeSet<u32>,
    arrivals: Rc<RefCell<Vec<(usize, u32)>>>,
}

impl BroadcastHandler<Id> for Updates {
    type Key = UpdateKey;
    type Error = ShortUpdate;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Id>,
    ) -> Result<Option<UpdateKey>, ShortUpdate> {
        let key = data
            .get(..4)
            .and_then(|k| k.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or(ShortUpdate)?;
        if !self.held.insert(key) {
            return Ok(None);
        }
        if sender.is_some() {
            self.arrivals.borrow_mut().push((self.host, key));
        }
        Ok(Some(UpdateKey(key)))
    }
}

type FocaNode = Foca<Id, PostcardCodec, SmallRng, Updates>;

struct Host {
    foca: Option<FocaNode>,
    id: Id,
    bytes_out: u64,
}

/// Everything a foca call may touch besides the node itself.
struct Io {
    now: Instant,
    net: Net,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: HashMap<u64, (usize, Timer<Id>)>,
    seq: u64,
    noticed: Vec<(Instant, Noticed)>,
    max_datagram: usize,
}

/// The runtime of one call on host `host`.
struct Rt<'a> {
    host: usize,
    io: &'a mut Io,
    bytes_out: &'a mut u64,
}

impl Runtime<Id> for Rt<'_> {
    fn notify(&mut self, notification: Notification<'_, Id>) {
        if let Notification::MemberDown(id) = notification {
            let n = Noticed::Dead {
                host: self.host,
                target: id.host as usize,
            };
            self.io.noticed.push((self.io.now, n));
        }
    }

    fn send_to(&mut self, to: Id, data: &[u8]) {
        *self.bytes_out += data.len() as u64;
        self.io.max_datagram = self.io.max_datagram.max(data.len());
        let now = self.io.now;
        self.io
            .net
            .send(now, self.host, to.host as usize, data.to_vec(), 0);
    }

    fn submit_after(&mut self, event: Timer<Id>, after: std::time::Duration) {
        let at = self.io.now + Duration::from_millis(after.as_millis() as u64);
        self.io.seq += 1;
        self.io.timers.push(Reverse((at, self.io.seq)));
        self.io.pending.insert(self.io.seq, (self.host, event));
    }
}

/// A foca cluster.
pub struct FocaSwarm {
    hosts: Vec<Host>,
    io: Io,
    arrivals: Rc<RefCell<Vec<(usize, u32)>>>,
    /// foca calls that returned an error (foca tolerates them; counted for the curious).
    pub errors: u64,
}

impl FocaSwarm {
    fn new(n: usize, net: NetConfig, seed: u64) -> Self {
        let config = Config::new_lan(NonZeroU32::new(n.max(1) as u32).expect("n > 0"));
        let arrivals = Rc::new(RefCell::new(Vec::new()));
        let mut rng = Rng::new(seed ^ 0xf0ca);
        let hosts = (0..n)
            .map(|i| {
                let id = Id {
                    host: i as u32,
                    generation: 0,
                };
                let updates = Updates {
                    host: i,
                    held: BTreeSet::new(),
                    arrivals: Rc::clone(&arrivals),
                };
                let rng = SmallRng::seed_from_u64(rng.next_u64());
                let foca =
                    Foca::with_custom_broadcast(id, config.clone(), rng, PostcardCodec, updates);
                Host {
                    foca: Some(foca),
                    id,
                    bytes_out: 0,
                }
            })
            .collect();
        let mut network = Net::new(0, net, seed ^ 0x6e65_7477_6f72_6b00);
        for _ in 0..n {
            network.add_host();
        }
        FocaSwarm {
            hosts,
            io: Io {
                now: Instant::from_millis(1_000),
                net: network,
                timers: BinaryHeap::new(),
                pending: HashMap::new(),
                seq: 0,
                noticed: Vec::new(),
                max_datagram: 0,
            },
            arrivals,
            errors: 0,
        }
    }

    /// Runs `f` on host `i`'s node with a runtime, then stamps the update arrivals it caused.
    fn call<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut FocaNode, &mut Rt<'_>) -> Result<R, foca::Error>,
    ) -> Option<R> {
        let host = self.hosts.get_mut(i)?;
        let foca = host.foca.as_mut()?;
        let mut rt = Rt {
            host: i,
            io: &mut self.io,
            bytes_out: &mut host.bytes_out,
        };
        let r = f(foca, &mut rt);
        let now = self.io.now;
        for (host, key) in self.arrivals.borrow_mut().drain(..) {
            self.io.noticed.push((now, Noticed::Update { host, key }));
        }
        match r {
            Ok(r) => Some(r),
            Err(_) => {
                self.errors += 1;
                None
            }
        }
    }
}

impl Swarm for FocaSwarm {
    fn converged(n: usize, net: NetConfig, seed: u64) -> Self {
        let mut s = FocaSwarm::new(n, net, seed);
        let ids: Vec<Id> = s.hosts.iter().map(|h| h.id).collect();
        for i in 0..n {
            let others = ids.iter().filter(|id| id.host as usize != i).copied();
            s.call(i, |f, rt| {
                f.apply_many(others.map(Member::alive), false, rt)
            });
        }
        s.io.noticed.clear();
        s
    }

    fn fresh(n: usize, net: NetConfig, seed: u64) -> Self {
        FocaSwarm::new(n, net, seed)
    }

    fn join(&mut self, i: usize, seed: usize) {
        let Some(to) = self.hosts.get(seed).map(|h| h.id) else {
            return;
        };
        self.call(i, |f, rt| f.announce(to, rt));
    }

    fn now(&self) -> Instant {
        self.io.now
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            let timer = self.io.timers.peek().map(|Reverse((t, _))| *t);
            let packet = self.io.net.next_at();
            let next = match (timer, packet) {
                (Some(t), Some(p)) => t.min(p),
                (Some(t), None) => t,
                (None, Some(p)) => p,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.io.now = self.io.now.max(next);
            if packet == Some(next) {
                if let Some(d) = self.io.net.pop_due(self.io.now) {
                    self.call(d.to, |f, rt| f.handle_data(&d.bytes, rt));
                }
                continue;
            }
            if let Some(Reverse((_, seq))) = self.io.timers.pop() {
                if let Some((host, timer)) = self.io.pending.remove(&seq) {
                    self.call(host, |f, rt| f.handle_timer(timer, rt));
                }
            }
        }
        self.io.now = self.io.now.max(until);
    }

    fn crash(&mut self, i: usize) {
        if let Some(h) = self.hosts.get_mut(i) {
            h.foca = None;
        }
    }

    fn is_running(&self, i: usize) -> bool {
        self.hosts.get(i).is_some_and(|h| h.foca.is_some())
    }

    fn known(&self, i: usize) -> usize {
        self.hosts
            .get(i)
            .and_then(|h| h.foca.as_ref())
            .map_or(0, |f| f.num_members() + 1)
    }

    fn update(&mut self, i: usize, key: u32) {
        let mut item = key.to_be_bytes().to_vec();
        item.extend_from_slice(b"value...");
        let queued = self.call(i, |f, _| f.add_broadcast(&item));
        assert_eq!(queued, Some(true), "foca queues the update");
    }

    fn quiet(&self) -> bool {
        self.hosts
            .iter()
            .filter_map(|h| h.foca.as_ref())
            .all(|f| f.updates_backlog() == 0 && f.custom_broadcast_backlog() == 0)
    }

    fn take_noticed(&mut self) -> Vec<(Instant, Noticed)> {
        std::mem::take(&mut self.io.noticed)
    }

    fn bytes_sent(&self) -> u64 {
        self.hosts.iter().map(|h| h.bytes_out).sum()
    }

    fn max_datagram(&self) -> usize {
        self.io.max_datagram
    }

    fn hosts(&self) -> usize {
        self.hosts.len()
    }
}
