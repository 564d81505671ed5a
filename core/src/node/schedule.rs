//! When the next anti-entropy exchange starts.
//!
//! At rest, every `sync_interval`. After news (an exchange brought entries, showed we are behind, or
//! we just joined), one gossip interval from now, and again after each exchange while the tables
//! differ, each wait twice the last, until a root matches ours or the wait reaches the sync interval.
//! The doubling keeps a cluster in constant churn from comparing at every gossip interval; it holds
//! when exchanges are lost or refused, so a lossy link still heals in gossip intervals, not sync
//! intervals.

use crate::config::SwimConfig;
use crate::{Duration, Instant};

/// The anti-entropy schedule of one node.
#[derive(Clone, Copy, Debug)]
pub(super) struct SyncSchedule {
    next: Instant,
    /// The wait after the next exchange while the tables differ; `None` at rest.
    hurry: Option<Duration>,
}

impl SyncSchedule {
    /// The first exchange at `first`.
    pub(super) fn new(first: Instant) -> Self {
        SyncSchedule {
            next: first,
            hurry: None,
        }
    }

    /// When the next exchange starts.
    pub(super) fn next(&self) -> Instant {
        self.next
    }

    /// Whether an exchange is due at `now`.
    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// News: compare again one gossip interval from now, and keep comparing.
    pub(super) fn soon(&mut self, now: Instant, swim: &SwimConfig) {
        let soon = swim.gossip_interval;
        self.hurry = Some(soon);
        self.next = self.next.min(now.saturating_add(soon));
    }

    /// A peer's table differs from ours: compare again after the current wait.
    pub(super) fn diverged(&mut self, now: Instant, swim: &SwimConfig) {
        let wait = *self.hurry.get_or_insert(swim.gossip_interval);
        self.next = self.next.min(now.saturating_add(wait));
    }

    /// A root matched ours: back to the sync interval.
    pub(super) fn calm(&mut self) {
        self.hurry = None;
    }

    /// An exchange was due at `now`; `started` says whether it could be queued. Sets the next one:
    /// soon if it was refused (a busy moment), after the doubling wait while tables differ, else a
    /// sync interval away.
    pub(super) fn ran(&mut self, now: Instant, started: bool, swim: &SwimConfig) {
        let wait = match (started, self.hurry) {
            (false, _) => swim.gossip_interval,
            (true, Some(d)) => {
                let next = d.saturating_mul(2);
                self.hurry = (next < swim.sync_interval).then_some(next);
                d
            }
            (true, None) => swim.sync_interval,
        };
        self.next = now.saturating_add(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_hurries_and_the_wait_doubles_until_a_match_or_the_interval() {
        let swim = SwimConfig::lan();
        let gi = swim.gossip_interval;
        let t0 = Instant::from_millis(1_000);
        let mut s = SyncSchedule::new(t0 + swim.sync_interval);
        s.soon(t0, &swim);
        assert_eq!(s.next(), t0 + gi);
        let mut now = s.next();
        let mut waits = std::vec::Vec::new();
        for _ in 0..12 {
            s.ran(now, true, &swim);
            waits.push(s.next().saturating_since(now));
            now = s.next();
        }
        assert_eq!(waits[0], gi);
        assert_eq!(waits[1], gi.saturating_mul(2));
        assert_eq!(waits.last(), Some(&swim.sync_interval));
        s.ran(now, true, &swim);
        s.diverged(now, &swim);
        assert_eq!(s.next().saturating_since(now), gi);
        s.calm();
        s.ran(now, true, &swim);
        assert_eq!(s.next().saturating_since(now), swim.sync_interval);
        s.ran(now, false, &swim);
        assert_eq!(s.next().saturating_since(now), gi);
    }
}
