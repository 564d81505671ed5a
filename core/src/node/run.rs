//! Timers and outputs: probes, suspicions, gossip and sync rounds; datagrams, events and deadlines.

use super::suspect::{Suspicion, SUSPECT_CLAIMS};
use super::{Event, Node, Out, Rumor, Storage, Wake};
use crate::gossip::Fill;
use crate::members::{Member, Status};
use crate::wire::{self, Encoder, Kind, Transmit, TreeId};
use crate::{Instant, NodeId};
use core::net::SocketAddr;

impl<
        S: Storage,
        const SYNC: usize,
        const QUEUE: usize,
        const RUMORS: usize,
        const SUSPECTS: usize,
    > Node<S, SYNC, QUEUE, RUMORS, SUSPECTS>
{
    pub(super) fn is_peer(&self, m: &Member<S::Meta>) -> bool {
        m.id() != self.config.node && !m.status().is_gone()
    }

    /// A random live member other than ourselves and `except`.
    pub(super) fn random_member(&mut self, except: Option<NodeId>) -> Option<(NodeId, SocketAddr)> {
        self.random_peer(except, |s| !s.is_gone())
    }

    /// A member other than ourselves and `except` whose status passes `wanted`, picked uniformly at
    /// random (by position, not by hash, so no member is favoured by a wide gap before its hash).
    pub(super) fn random_peer(
        &mut self,
        except: Option<NodeId>,
        wanted: impl Fn(Status) -> bool,
    ) -> Option<(NodeId, SocketAddr)> {
        let me = self.config.node;
        let fits =
            |m: &Member<S::Meta>| m.id() != me && wanted(m.status()) && Some(m.id()) != except;
        let len = self.members.len();
        if len == 0 {
            return None;
        }
        let start = self.rng.below(len as u64) as usize;
        for _ in 0..8 {
            let i = self.rng.below(len as u64) as usize;
            if let Some(m) = self.members.nth(i).filter(|m| fits(m)) {
                return Some((m.id(), m.addr()));
            }
        }
        // Few members qualify: walk from a random position.
        (0..len)
            .filter_map(|k| self.members.nth(start.wrapping_add(k).checked_rem(len)?))
            .find(|m| fits(m))
            .map(|m| (m.id(), m.addr()))
    }

    /// Asks every seed: announces us while `alone`, else starts a membership exchange.
    pub(super) fn ask_seeds(&mut self, alone: bool) {
        for i in 0..self.seeds.len() {
            match self.seeds.get(i) {
                Some(&seed) if alone => self.announce(seed),
                Some(&seed) => {
                    self.sync.start(seed, TreeId::MEMBERS);
                }
                None => {}
            }
        }
    }

    /// Whether some seed is a live member (true when there are no seeds).
    fn seed_is_member(&self) -> bool {
        let me = self.config.node;
        self.seeds.is_empty()
            || self
                .members
                .iter()
                .any(|m| m.id() != me && !m.status().is_gone() && self.seeds.contains(&m.addr()))
    }

    /// Advances timers: probes, indirect probes, suspicions, gossip, anti-entropy, expiry (see
    /// [`Wake`]). Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.data.collect(now);
        self.members.expire(now);
        // A node that has left no longer judges others.
        let active = self
            .members
            .me()
            .is_some_and(|m| m.status() != Status::Left);
        if now >= self.fd.next_probe {
            self.probe_round(now, active);
        }
        self.indirect_probes(now);
        self.expire_suspicions(now);
        if now >= self.next_gossip {
            self.gossip_round(now);
        }
        if self.sync_at.due(now) {
            self.sync_round(now);
        }
        self.sync.handle_timeout(now);
        self.fd.relays.retain(|r| r.until > now);
    }

    /// Pushes news to a few random members, while there is any: `gossip_nodes` distinct ones, the
    /// next in table order from a random place, so a small cluster is covered in one round (picks
    /// made independently would often land twice on one member, and a change's few retransmits
    /// could then miss another until anti-entropy). When changes outran the gossip queue (a burst
    /// of writes), those members also start anti-entropy with us at once, and the node keeps
    /// comparing until roots match: no write waits for the sync interval.
    fn gossip_round(&mut self, now: Instant) {
        let swim = self.config.swim;
        let outran = core::mem::take(&mut self.data_outran);
        let len = self.members.len();
        let mut at = self.rng.below(len as u64) as usize;
        let mut left = if self.gossip.is_empty() {
            0
        } else {
            swim.gossip_nodes
        };
        for _ in 0..len {
            if left == 0 {
                break;
            }
            at = at.wrapping_add(1).checked_rem(len).unwrap_or(0);
            let Some(to) = self
                .members
                .nth(at)
                .filter(|m| m.id() != self.config.node && !m.status().is_gone())
                .map(|m| m.addr())
            else {
                continue;
            };
            left = left.saturating_sub(1);
            self.queue(Out::Gossip { to });
            if outran {
                self.sync.start(to, TreeId::DATA);
            }
        }
        if outran {
            self.sync_at.soon(now, &swim);
        }
        self.next_gossip = now.saturating_add(swim.gossip_interval);
    }

    /// Starts an anti-entropy exchange of both tables with a random member. Members we hold dead
    /// are asked too: one that answers was only cut off, and the exchange heals the partition.
    /// Left members are not.
    fn sync_round(&mut self, now: Instant) {
        let mut started = true;
        if let Some((_, to)) = self.random_peer(None, |s| s != Status::Left) {
            started &= self.sync.start(to, TreeId::MEMBERS);
            started &= self.sync.start(to, TreeId::DATA);
        }
        if self.members.live() > 1 && !self.seed_is_member() {
            // Joined a cluster, but not the seeds' one: two clusters that formed apart (a join
            // lost on the way) merge through the seeds.
            self.ask_seeds(false);
        }
        self.sync_at.ran(now, started, &self.config.swim);
    }

    /// Writes the next datagram into `buf`; `None` when there is nothing to send now. `buf` must
    /// hold `max_datagram` bytes: a datagram that does not fit stays queued for the next call, and
    /// holds back the rest until a buffer that large comes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let header = self.config.header();
        // Room for the tag is always kept, so a keyed and a keyless datagram carry the same load;
        // an encrypted one also keeps room for its nonce.
        let max = self.config.sync.max_datagram;
        let room = max
            .min(buf.len())
            .saturating_sub(wire::nonce_room(self.config.auth.as_ref()));
        let limit = wire::message_limit(max, room);
        // An item leaves the queue only once written: a buffer too small keeps it for the next call.
        let t = match self.out.front().copied() {
            Some(o) => {
                let (to, kind) = match o {
                    Out::Ping { to, .. } => (to, Kind::Ping),
                    Out::Ack { to, .. } => (to, Kind::Ack),
                    Out::PingReq { to, .. } => (to, Kind::PingReq),
                    Out::Gossip { to } | Out::Feed { to, .. } => (to, Kind::Gossip),
                };
                let mut enc = Encoder::new(buf.get_mut(..limit)?, &header, kind).ok()?;
                let fixed = match o {
                    Out::Ping { probe, .. } => enc.push(&probe),
                    Out::Ack { seq, .. } => enc.push(&seq),
                    Out::PingReq { request, .. } => enc.push(&request),
                    Out::Gossip { .. } | Out::Feed { .. } => true,
                };
                if !fixed {
                    return None;
                }
                self.out.pop_front();
                match o {
                    Out::Feed { newcomer, .. } => self.fill_feed(now, newcomer, &mut enc),
                    _ => self.fill_rumors(now, &mut enc),
                }
                Transmit {
                    to,
                    len: enc.finish(),
                    kind,
                }
            }
            // The engine keeps the tag's room itself (`wire::message_limit`).
            None => {
                let buf = buf.get_mut(..room)?;
                match self.sync.next_tree()? {
                    TreeId::DATA => self.sync.poll_transmit(now, &header, &self.data, buf)?,
                    _ => self.sync.poll_transmit(now, &header, &self.members, buf)?,
                }
            }
        };
        let nonce = self.next_nonce();
        let len = wire::seal(self.config.auth.as_ref(), nonce, buf, t.len)?;
        let t = Transmit { len, ..t };
        self.stats.datagrams_out = self.stats.datagrams_out.saturating_add(1);
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(t.len as u64);
        Some(t)
    }

    /// The nonce of the next encrypted datagram; each is used once.
    fn next_nonce(&mut self) -> wire::Nonce {
        #[cfg(feature = "encrypt")]
        {
            let counter = self.sealed;
            self.sealed = self.sealed.wrapping_add(1);
            wire::Nonce {
                generation: self.config.generation,
                counter,
            }
        }
        #[cfg(not(feature = "encrypt"))]
        wire::Nonce::default()
    }

    pub(super) fn fill_rumors(&mut self, now: Instant, enc: &mut Encoder<'_>) {
        let (members, data, suspicions) = (&self.members, &self.data, &self.fd.suspicions);
        let retention = self.config.members.retention;
        self.gossip.fill(|tree, hash| {
            let written = match tree {
                TreeId::MEMBERS => members
                    .by_hash(hash)
                    .map(|m| enc.push(&Rumor::Member(m.to_wire(now, retention)))),
                TreeId::DATA => data
                    .by_hash(hash)
                    .map(|r| enc.push(&Rumor::Data(data.to_wire(r, now)))),
                SUSPECT_CLAIMS => members
                    .by_hash(hash)
                    .and_then(|m| Suspicion::claim(suspicions, m))
                    .map(|c| enc.push(&Rumor::Suspect(c))),
                _ => None,
            };
            match written {
                None => Fill::Gone,
                Some(true) => Fill::Written,
                Some(false) => Fill::Full,
            }
        });
    }

    /// Our own record, then members from a random position on, as rumors: all that fit. Gone
    /// members and the newcomer itself are left out.
    fn fill_feed(&mut self, now: Instant, newcomer: NodeId, enc: &mut Encoder<'_>) {
        let retention = self.config.members.retention;
        let me = self.config.node;
        let Some(own) = self.members.me() else {
            return;
        };
        if !enc.push(&Rumor::Member(own.to_wire(now, retention))) {
            return;
        }
        let len = self.members.len();
        let start = self.rng.below(len as u64) as usize;
        for k in 0..len {
            let Some(m) = start
                .wrapping_add(k)
                .checked_rem(len)
                .and_then(|i| self.members.nth(i))
            else {
                continue;
            };
            if m.id() == me || m.id() == newcomer || m.status().is_gone() {
                continue;
            }
            if !enc.push(&Rumor::Member(m.to_wire(now, retention))) {
                return;
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<S::Key>> {
        self.events.pop_front().or_else(|| {
            let n = core::mem::take(&mut self.lagged);
            (n > 0).then_some(Event::Lagged(n))
        })
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.poll_wake().map(|(at, _)| at)
    }

    /// When [`Node::handle_timeout`] should next be called, and why.
    pub fn poll_wake(&self) -> Option<(Instant, Wake)> {
        Wake::ALL
            .into_iter()
            .filter_map(|w| Some((self.deadline(w)?, w)))
            .min_by_key(|&(at, _)| at)
    }

    /// When the timer `w` next fires, if it is set.
    pub fn deadline(&self, w: Wake) -> Option<Instant> {
        match w {
            Wake::Tombstones => self.data.poll_timeout(),
            Wake::MemberExpiry => self.members.poll_timeout(),
            Wake::Probe => Some(self.fd.next_probe),
            Wake::IndirectProbe => self
                .fd
                .probing
                .and_then(|p| p.indirect_at.filter(|_| !p.acked)),
            Wake::Suspicion => self.fd.suspicions.iter().map(|s| s.deadline).min(),
            Wake::Gossip => {
                (!self.gossip.is_empty() || self.data_outran).then_some(self.next_gossip)
            }
            Wake::AntiEntropy => Some(self.sync_at.next()),
            Wake::Sync => self.sync.poll_timeout(),
        }
    }
}
