//! Silence after an exchange this node started: a lost message ends an exchange without a word,
//! so when the peer has said nothing for a few round trips, the exchange starts again at once
//! instead of waiting for the next scheduled one.

use crate::wire::TreeId;
use crate::{Duration, Instant};
use core::net::SocketAddr;

/// Retries of one exchange before it is left to the schedule.
const MAX_RETRIES: u8 = 2;
/// The wait before any round trip was measured.
const FIRST_WAIT_MS: u32 = 200;
/// The shortest wait: a scheduler's slice on a loaded host.
const MIN_WAIT_MS: u32 = 10;

/// The watched exchange.
#[derive(Clone, Copy, Debug)]
struct Watched {
    to: SocketAddr,
    tree: TreeId,
    /// When our root left, or the peer last spoke.
    at: Instant,
    /// Whether the peer answered since our root left (the answer times the round trip).
    answered: bool,
    retries: u8,
}

/// What the watch decided at a timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Silence {
    /// Nothing to do yet.
    Wait,
    /// The peer went quiet: start the exchange again.
    Retry(SocketAddr, TreeId),
}

/// One exchange watched for silence, and the round trip measured from its answers.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Watch {
    watched: Option<Watched>,
    /// Smoothed round trip in milliseconds; 0 until measured.
    rtt_ms: u32,
}

impl Watch {
    /// An exchange with `to` about `tree` was queued; watched unless one already is.
    pub(super) fn started(&mut self, to: SocketAddr, tree: TreeId) {
        if self.watched.is_none() {
            self.watched = Some(Watched {
                to,
                tree,
                at: Instant::ZERO,
                answered: false,
                retries: 0,
            });
        }
    }

    /// Our root left for `to` at `now`.
    pub(super) fn sent_root(&mut self, now: Instant, to: SocketAddr) {
        if let Some(w) = self.watched.as_mut().filter(|w| w.to == to && !w.answered) {
            w.at = now;
        }
    }

    /// `from` spoke at `now`; `matched` names the table whose root matched ours, which ends the
    /// exchange of that table.
    pub(super) fn heard(&mut self, now: Instant, from: SocketAddr, matched: Option<TreeId>) {
        let Some(w) = self.watched.as_mut().filter(|w| w.to == from) else {
            return;
        };
        if !w.answered {
            let sample = u32::try_from(now.saturating_since(w.at).as_millis()).unwrap_or(u32::MAX);
            self.rtt_ms = match self.rtt_ms {
                0 => sample.max(1),
                r => r.saturating_mul(7).saturating_add(sample) / 8,
            };
            w.answered = true;
        }
        w.at = now;
        if matched == Some(w.tree) {
            self.watched = None;
        }
    }

    /// The wait for an answer: four smoothed round trips, so jitter and a busy peer are not silence.
    fn wait(&self) -> Duration {
        let ms = match self.rtt_ms {
            0 => FIRST_WAIT_MS,
            r => r.saturating_mul(4).max(MIN_WAIT_MS),
        };
        Duration::from_millis(u64::from(ms))
    }

    /// When the watched exchange counts as silent.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.watched.map(|w| w.at.saturating_add(self.wait()))
    }

    /// At `now`; `busy` when work is queued (then we, not the peer, are the ones to speak).
    pub(super) fn check(&mut self, now: Instant, busy: bool) -> Silence {
        let wait = self.wait();
        let Some(w) = self.watched.as_mut() else {
            return Silence::Wait;
        };
        if now < w.at.saturating_add(wait) {
            return Silence::Wait;
        }
        if busy {
            w.at = now;
            return Silence::Wait;
        }
        if w.retries >= MAX_RETRIES {
            self.watched = None;
            return Silence::Wait;
        }
        w.retries = w.retries.saturating_add(1);
        w.at = now;
        w.answered = false;
        Silence::Retry(w.to, w.tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 2], 1))
    }

    #[test]
    fn a_quiet_peer_is_asked_again_after_a_few_round_trips_then_left_to_the_schedule() {
        let mut w = Watch::default();
        w.started(peer(), TreeId::DATA);
        let t = |ms| Instant::from_millis(ms);
        w.sent_root(t(1_000), peer());
        w.heard(t(1_005), peer(), None);
        assert_eq!(w.rtt_ms, 5);
        // Quiet for less than four round trips: wait; for more: retry, twice at most.
        assert_eq!(w.check(t(1_020), false), Silence::Wait);
        assert_eq!(
            w.check(t(1_026), false),
            Silence::Retry(peer(), TreeId::DATA)
        );
        assert_eq!(w.check(t(1_030), true), Silence::Wait);
        assert_eq!(
            w.check(t(1_051), true),
            Silence::Wait,
            "our own work pending"
        );
        assert_eq!(
            w.check(t(1_072), false),
            Silence::Retry(peer(), TreeId::DATA)
        );
        assert_eq!(w.check(t(1_100), false), Silence::Wait);
        assert!(w.deadline().is_none());
    }

    #[test]
    fn a_matching_root_ends_the_watch() {
        let mut w = Watch::default();
        w.started(peer(), TreeId::MEMBERS);
        w.sent_root(Instant::from_millis(10), peer());
        w.heard(Instant::from_millis(12), peer(), Some(TreeId::DATA));
        assert!(w.deadline().is_some(), "another table's match");
        w.heard(Instant::from_millis(13), peer(), Some(TreeId::MEMBERS));
        assert!(w.deadline().is_none());
    }
}
