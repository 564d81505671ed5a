//! Suspicions: who suspects whom, and when a suspicion runs out.
//!
//! A suspicion lasts from `suspicion_max_timeout_mult` times the minimum down to the minimum as
//! independent suspecters confirm it (Lifeguard). Independence is by name: a node whose own probe
//! went unanswered spreads a [`SuspectClaim`] naming itself, and every node counts the distinct names
//! it has heard, less the first (the member that raised the suspicion). Forwarding a member's Suspect
//! state confirms nothing.

use super::{Node, Storage};
use crate::config::SwimConfig;
use crate::members::{Member, Status};
use crate::node::rumor::SuspectClaim;
use crate::node::timing;
use crate::store::ByteBuf;
use crate::wire::TreeId;
use crate::{Instant, NodeId};
use heapless::Vec;

/// The gossip queue's name for suspect claims (a queue namespace, never a sync tree).
pub(super) const SUSPECT_CLAIMS: TreeId = TreeId(0x80);

/// A running suspicion timer.
#[derive(Clone, Debug)]
pub(super) struct Suspicion {
    pub(super) id: NodeId,
    since: Instant,
    /// Distinct suspecters heard, the first being whoever raised it (when known).
    suspecters: Vec<NodeId, 8>,
    /// When it runs out: refreshed on every confirmation and every probe interval (the cluster
    /// size moves it too), so polling needs no arithmetic.
    pub(super) deadline: Instant,
}

impl Suspicion {
    fn confirmations(&self) -> u32 {
        self.suspecters.len().saturating_sub(1) as u32
    }

    pub(super) fn refresh(&mut self, swim: &SwimConfig, live: usize) {
        let timeout = timing::suspicion_timeout(swim, live, self.confirmations());
        self.deadline = self.since.saturating_add(timeout);
    }

    /// The claim to gossip for suspect member `m`: the latest suspecter we heard of.
    pub(super) fn claim<M: ByteBuf>(all: &[Suspicion], m: &Member<M>) -> Option<SuspectClaim> {
        if m.status() != Status::Suspect {
            return None;
        }
        let s = all.iter().find(|s| s.id == m.id())?;
        Some(SuspectClaim {
            id: m.id(),
            generation: m.generation(),
            version: m.version(),
            by: *s.suspecters.last()?,
        })
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
    /// Starts the suspicion timer of `id` unless it runs already. With every slot taken, the member
    /// is tracked once a slot frees and a probe of it goes unanswered again.
    pub(super) fn track_suspicion(&mut self, now: Instant, id: NodeId) {
        if !self.fd.suspicions.iter().any(|s| s.id == id) {
            let mut s = Suspicion {
                id,
                since: now,
                suspecters: Vec::new(),
                deadline: now,
            };
            s.refresh(&self.config.swim, self.members.live());
            let _ = self.fd.suspicions.push(s);
        }
    }

    /// `by` suspects `id` (we do, when our own probe failed): counts it once, and spreads the news
    /// of a new suspecter.
    pub(super) fn suspected_by(&mut self, now: Instant, id: NodeId, by: NodeId) {
        let suspect = self
            .members
            .get(id)
            .is_some_and(|m| m.status() == Status::Suspect);
        if by == id || !suspect {
            return;
        }
        self.track_suspicion(now, id);
        let live = self.members.live();
        let swim = self.config.swim;
        let Some(s) = self.fd.suspicions.iter_mut().find(|s| s.id == id) else {
            return;
        };
        if s.suspecters.contains(&by) || s.suspecters.push(by).is_err() {
            return;
        }
        s.refresh(&swim, live);
        let h = self.members.hash_of(id);
        self.spread(SUSPECT_CLAIMS, h);
    }

    /// A suspect claim arrived. Claims about a state we do not hold (older, newer, or not
    /// suspect) change nothing: the member's own record carries state; claims only count.
    pub(super) fn apply_suspect(&mut self, now: Instant, c: &SuspectClaim) {
        let current = self.members.get(c.id).is_some_and(|m| {
            m.status() == Status::Suspect
                && (m.generation(), m.version()) == (c.generation, c.version)
        });
        if current && c.id != self.config.node {
            self.suspected_by(now, c.id, c.by);
        }
    }
}
