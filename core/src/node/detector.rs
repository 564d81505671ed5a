//! The probe cycle of the failure detector: one member probed per interval, in a fixed order; an
//! unanswered probe asks others to probe indirectly, then makes the member suspect; a suspicion
//! that outlives its timeout declares the member dead. Lifeguard's local health stretches the
//! intervals while this node itself seems unwell.

use super::suspect::Suspicion;
use super::timing::Awareness;
use super::{Node, Out, Probing, Relay, Storage};
use crate::members::Status;
use crate::sync::Replica;
use crate::wire::{Probe, ProbeRequest, TreeId};
use crate::{Instant, NodeId};
use core::net::SocketAddr;
use heapless::Vec;

/// The failure detector's state: the probe in flight and the order of probes, indirect probes
/// relayed for others, suspicions and their timers, local health, and a leave in progress. Its
/// rounds are [`Node`] methods (below): they also read the member table and queue datagrams.
pub(super) struct Detector<const RELAYS: usize, const SUSPECTS: usize> {
    /// The sequence number of our last ping.
    pub(super) seq: u32,
    /// The probe waiting for its answer.
    pub(super) probing: Option<Probing>,
    /// Where the probe order stands: the key hash of the member probed last.
    pub(super) probe_cursor: u64,
    /// When the next probe round starts.
    pub(super) next_probe: Instant,
    /// Pings sent on behalf of members that asked for an indirect probe.
    pub(super) relays: Vec<Relay, RELAYS>,
    /// Members suspected, with their timers and confirmations.
    pub(super) suspicions: Vec<Suspicion, SUSPECTS>,
    /// Lifeguard's local health.
    pub(super) awareness: Awareness,
    /// The probe sequence of the pings that carried our leave, and whether one was answered.
    pub(super) leave: Option<(u32, bool)>,
}

impl<const RELAYS: usize, const SUSPECTS: usize> Detector<RELAYS, SUSPECTS> {
    /// Probing starts after `probe_cursor` (our own key hash), at `next_probe`.
    pub(super) fn new(probe_cursor: u64, next_probe: Instant) -> Self {
        Detector {
            seq: 0,
            probing: None,
            probe_cursor,
            next_probe,
            relays: Vec::new(),
            suspicions: Vec::new(),
            awareness: Awareness::default(),
            leave: None,
        }
    }
}

impl<
        S: Storage,
        const SYNC: usize,
        const QUEUE: usize,
        const RUMORS: usize,
        const SUSPECTS: usize,
    > Node<S, SYNC, QUEUE, RUMORS, SUSPECTS>
{
    /// The next member to probe: members in key-hash order (a fixed pseudo-random permutation), round
    /// robin, so every member is probed once per round.
    fn next_target(&mut self) -> Option<(NodeId, SocketAddr)> {
        for _ in 0..self.members.len() {
            let from = self.fd.probe_cursor.checked_add(1).unwrap_or(0);
            let (h, _) = self
                .members
                .first_in(from, u64::MAX)
                .or_else(|| self.members.first_in(0, u64::MAX))?;
            self.fd.probe_cursor = h;
            if let Some(m) = self.members.by_hash(h).filter(|m| self.is_peer(m)) {
                return Some((m.id(), m.addr()));
            }
        }
        None
    }

    /// A probe interval has passed: judges the last probe, then probes the next member. A node that
    /// is alone asks its seeds; one that has left (`active` false) judges no one.
    pub(super) fn probe_round(&mut self, now: Instant, active: bool) {
        let swim = self.config.swim;
        let live = self.members.live();
        if live <= 1 && active {
            // Alone: not joined yet, or cut off from everyone. Ask the seeds every interval.
            self.ask_seeds(true);
        }
        for s in self.fd.suspicions.iter_mut() {
            s.refresh(&swim, live);
        }
        if let Some(p) = self.fd.probing.take().filter(|_| active) {
            self.judge(now, p);
        }
        if let Some((target, to)) = self.next_target().filter(|_| active) {
            self.fd.seq = self.fd.seq.wrapping_add(1);
            let indirect_at = now.saturating_add(self.fd.awareness.scale(swim.probe_timeout));
            let probe = Probe {
                seq: self.fd.seq,
                target,
            };
            // A probe that could not be queued is not one: the target is not judged on it.
            if self.queue(Out::Ping { to, probe }) {
                self.fd.probing = Some(Probing {
                    target,
                    seq: self.fd.seq,
                    indirect_at: Some(indirect_at),
                    acked: false,
                });
                self.stats.probes = self.stats.probes.saturating_add(1);
            }
        }
        self.fd.next_probe = now.saturating_add(self.fd.awareness.scale(swim.probe_interval));
    }

    /// The verdict on the last probe: an answer calms local health; silence worsens it and makes
    /// the target suspect, with this node as a suspecter.
    fn judge(&mut self, now: Instant, p: Probing) {
        let max = self.config.swim.awareness_max_multiplier;
        if p.acked {
            self.fd.awareness.apply(-1, max);
            return;
        }
        self.stats.missed_acks = self.stats.missed_acks.saturating_add(1);
        self.fd.awareness.apply(1, max);
        if let Some(change) = self.members.suspect(now, p.target) {
            let h = self.members.hash_of(p.target);
            self.spread(TreeId::MEMBERS, h);
            self.on_change(now, p.target, change);
        }
        let me = self.config.node;
        self.suspected_by(now, p.target, me);
    }

    /// The probe went unanswered for the probe timeout: asks `indirect_checks` other members to
    /// probe the target for us, and pings it once more ourselves. Under loss most unanswered probes
    /// lost a datagram on the direct path; the second ping makes a live member's suspicion (news
    /// that every member then gossips, and the member's refutation after it) many times rarer, and
    /// a crashed member is suspected no later.
    pub(super) fn indirect_probes(&mut self, now: Instant) {
        let due = self
            .fd
            .probing
            .filter(|p| !p.acked && p.indirect_at.is_some_and(|t| t <= now));
        let Some(p) = due else {
            return;
        };
        if let Some(probing) = self.fd.probing.as_mut() {
            probing.indirect_at = None;
        }
        let addr = self.members.get(p.target).map(|m| m.addr());
        if let Some(to) = addr {
            let probe = Probe {
                seq: p.seq,
                target: p.target,
            };
            self.queue(Out::Ping { to, probe });
        }
        for _ in 0..self.config.swim.indirect_checks {
            let (Some(addr), Some((_, via))) = (addr, self.random_member(Some(p.target))) else {
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

    /// Suspicions past their deadline declare their members dead, as many as the event queue has
    /// room for; suspicions of members no longer suspect are dropped.
    pub(super) fn expire_suspicions(&mut self, now: Instant) {
        if !self.fd.suspicions.iter().any(|s| s.deadline <= now) {
            return;
        }
        let mut failed: Vec<NodeId, SUSPECTS> = Vec::new();
        let members = &self.members;
        // No more deaths than the event queue has room for: the rest are declared at the next
        // timeout, which is due at once.
        let mut room = self.events_room();
        let mut deferred = 0u64;
        self.fd.suspicions.retain(|s: &Suspicion| {
            let still = members
                .get(s.id)
                .is_some_and(|m| m.status() == Status::Suspect);
            if !still || s.deadline > now {
                return still;
            }
            if room == 0 {
                deferred = deferred.saturating_add(1);
                return true;
            }
            room = room.saturating_sub(1);
            // `failed` holds as many as `suspicions`: the push cannot fail.
            let _ = failed.push(s.id);
            false
        });
        self.stats.changes_deferred = self.stats.changes_deferred.saturating_add(deferred);
        for id in failed {
            if let Some(change) = self.members.declare_dead(now, id) {
                let h = self.members.hash_of(id);
                self.spread(TreeId::MEMBERS, h);
                self.on_change(now, id, change);
            }
        }
    }
}
