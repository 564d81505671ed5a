//! Timers and outputs: probes, suspicions, gossip and sync rounds; datagrams, events and deadlines.

use super::suspect::{Suspicion, SUSPECT_CLAIMS};
use super::{Event, Node, Out, Probing, Rumor, Storage};
use crate::gossip::Fill;
use crate::members::{Member, Status};
use crate::sync::Replica;
use crate::wire::{Encoder, Kind, Probe, ProbeRequest, TreeId, TAG_RESERVE};
use crate::{Instant, NodeId};
use core::net::SocketAddr;
use heapless::Vec;

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

    /// The next member to probe: members in key-hash order (a fixed pseudo-random permutation), round
    /// robin, so every member is probed once per round.
    pub(super) fn next_target(&mut self) -> Option<(NodeId, SocketAddr)> {
        for _ in 0..self.members.len() {
            let from = self.probe_cursor.checked_add(1).unwrap_or(0);
            let (h, _) = self
                .members
                .first_in(from, u64::MAX)
                .or_else(|| self.members.first_in(0, u64::MAX))?;
            self.probe_cursor = h;
            if let Some(m) = self.members.by_hash(h).filter(|m| self.is_peer(m)) {
                return Some((m.id(), m.addr()));
            }
        }
        None
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
    fn ask_seeds(&mut self, alone: bool) {
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

    /// Advances timers: probes, indirect probes, suspicions, gossip, anti-entropy, expiry.
    /// Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.data.collect(now);
        self.members.expire(now);
        let swim = self.config.swim;
        // A node that has left no longer judges others.
        let active = self
            .members
            .me()
            .is_some_and(|m| m.status() != Status::Left);

        if now >= self.next_probe {
            let live = self.members.live();
            if live <= 1 && active {
                // Alone: not joined yet, or cut off from everyone. Ask the seeds every interval.
                self.ask_seeds(true);
            }
            for s in self.suspicions.iter_mut() {
                s.refresh(&swim, live);
            }
            if let Some(p) = self.probing.take().filter(|_| active) {
                if p.acked {
                    self.awareness.apply(-1, swim.awareness_max_multiplier);
                } else {
                    self.stats.missed_acks = self.stats.missed_acks.saturating_add(1);
                    self.awareness.apply(1, swim.awareness_max_multiplier);
                    if let Some(change) = self.members.suspect(now, p.target) {
                        let h = self.members.hash_of(p.target);
                        self.spread(TreeId::MEMBERS, h);
                        self.on_change(now, p.target, change);
                    }
                    let me = self.config.node;
                    self.suspected_by(now, p.target, me);
                }
            }
            if let Some((target, to)) = self.next_target().filter(|_| active) {
                self.seq = self.seq.wrapping_add(1);
                let indirect_at = now.saturating_add(self.awareness.scale(swim.probe_timeout));
                let probe = Probe {
                    seq: self.seq,
                    target,
                };
                // A probe that could not be queued is not one: the target is not judged on it.
                if self.queue(Out::Ping { to, probe }) {
                    self.probing = Some(Probing {
                        target,
                        seq: self.seq,
                        indirect_at: Some(indirect_at),
                        acked: false,
                    });
                    self.stats.probes = self.stats.probes.saturating_add(1);
                }
            }
            self.next_probe = now.saturating_add(self.awareness.scale(swim.probe_interval));
        }

        let due = self
            .probing
            .filter(|p| !p.acked && p.indirect_at.is_some_and(|t| t <= now));
        if let Some(p) = due {
            if let Some(probing) = self.probing.as_mut() {
                probing.indirect_at = None;
            }
            let addr = self.members.get(p.target).map(|m| m.addr());
            for _ in 0..swim.indirect_checks {
                let (Some(addr), Some((_, via))) = (addr, self.random_member(Some(p.target)))
                else {
                    break;
                };
                let request = ProbeRequest {
                    seq: p.seq,
                    target: p.target,
                    addr,
                };
                if self.queue(Out::PingReq { to: via, request }) {
                    self.stats.indirect_probes = self.stats.indirect_probes.saturating_add(1);
                }
            }
        }

        let mut failed: Vec<NodeId, SUSPECTS> = Vec::new();
        if self.suspicions.iter().any(|s| s.deadline <= now) {
            let members = &self.members;
            self.suspicions.retain(|s| {
                let still = members
                    .get(s.id)
                    .is_some_and(|m| m.status() == Status::Suspect);
                if still && s.deadline <= now {
                    let _ = failed.push(s.id);
                }
                still && s.deadline > now
            });
        }
        for id in failed {
            if let Some(change) = self.members.declare_dead(now, id) {
                let h = self.members.hash_of(id);
                self.spread(TreeId::MEMBERS, h);
                self.on_change(now, id, change);
            }
        }

        if now >= self.next_gossip {
            if !self.gossip.is_empty() {
                for _ in 0..swim.gossip_nodes {
                    if let Some((_, to)) = self.random_member(None) {
                        self.queue(Out::Gossip { to });
                    }
                }
            }
            self.next_gossip = now.saturating_add(swim.gossip_interval);
        }

        if self.sync_at.due(now) {
            // Members we hold dead are asked too: one that answers was only cut off, and the
            // exchange heals the partition. Left members are not.
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
            self.sync_at.ran(now, started, &swim);
        }

        self.relays.retain(|r| r.until > now);
    }

    /// Writes the next datagram into `buf`; `None` when there is nothing to send now. `buf` should
    /// hold `max_datagram` bytes: a datagram that does not fit stays queued for the next call.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<crate::sync::Transmit> {
        let header = self.config.header();
        // Room for the tag is always kept, so a keyed and a keyless datagram carry the same load.
        let limit = self
            .config
            .sync
            .max_datagram
            .min(buf.len())
            .saturating_sub(TAG_RESERVE);
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
                crate::sync::Transmit {
                    to,
                    len: enc.finish(),
                    kind,
                }
            }
            None => match self.sync.next_tree()? {
                TreeId::DATA => {
                    self.sync
                        .poll_transmit(now, &header, &self.data, buf.get_mut(..limit)?)?
                }
                _ => self
                    .sync
                    .poll_transmit(now, &header, &self.members, buf.get_mut(..limit)?)?,
            },
        };
        let t = match &self.config.auth {
            None => t,
            Some(ring) => {
                let end = t.len.checked_add(TAG_RESERVE)?;
                let tag = ring.tag(buf.get(..t.len)?);
                buf.get_mut(t.len..end)?.copy_from_slice(&tag);
                crate::sync::Transmit { len: end, ..t }
            }
        };
        self.stats.datagrams_out = self.stats.datagrams_out.saturating_add(1);
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(t.len as u64);
        Some(t)
    }

    pub(super) fn fill_rumors(&mut self, now: Instant, enc: &mut Encoder<'_>) {
        let (members, data, suspicions) = (&self.members, &self.data, &self.suspicions);
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
        let suspicion = self.suspicions.iter().map(|s| s.deadline).min();
        let gossip = (!self.gossip.is_empty()).then_some(self.next_gossip);
        [
            Some(self.next_probe),
            self.probing
                .and_then(|p| p.indirect_at.filter(|_| !p.acked)),
            suspicion,
            gossip,
            Some(self.sync_at.next()),
            self.data.poll_timeout(),
            self.members.poll_timeout(),
            self.sync.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
