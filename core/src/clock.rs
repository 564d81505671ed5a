//! The write clock: a hybrid logical clock that follows real time where the caller has a wall clock,
//! and a Lamport counter where it has none.
//!
//! A data version's `major` part comes from here. With a wall clock it is
//! `unix_us << 8 | counter`: the Unix microseconds of the write, and a counter that orders writes
//! within one microsecond. Every new value is above every value this node has made or seen, so a
//! write always beats what its writer could read; and because the high bits follow real time, a write
//! made later in real time beats an earlier one made on another node, provided the two nodes' clocks
//! differ by less than the time between the writes. That is the skew assumption: keep the clocks of a
//! cluster within a few milliseconds of each other (NTP does) and the order of writes is the order in
//! which they were made, for writes further apart than the skew.
//!
//! A version more than [`WallClock`]'s `max_ahead` ahead of our wall clock is refused (and counted by
//! the caller), so one node with a clock far in the future cannot drag the cluster's clocks along;
//! it is accepted once real time has caught up with it, and then it wins over writes made meanwhile:
//! a clock far ahead breaks the skew assumption, and the refusals counted on the other nodes are the
//! alarm. Without a wall clock (a microcontroller without
//! a real-time clock) the clock is a Lamport counter: each write is one above the largest value seen,
//! and only values above [`MAX_MAJOR`] are refused, so such a node still takes part in a cluster of
//! nodes that have wall clocks.

use crate::{Duration, Instant};

/// Bits of the counter within one microsecond.
pub const COUNTER_BITS: u32 = 8;

/// The largest `major` a version may have: room for 2^62 more writes after it, and for wall clocks
/// until the year 2540.
pub const MAX_MAJOR: u64 = 1 << 62;

/// A wall clock known to the core: Unix microseconds at a point of the caller's monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WallClock {
    /// Unix microseconds at the caller's `Instant::ZERO`.
    epoch_unix_us: u64,
    /// How far ahead of our wall clock a version may be before it is refused.
    max_ahead: Duration,
}

/// The hybrid logical clock of one writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WriteClock {
    last: u64,
    wall: Option<WallClock>,
}

impl WriteClock {
    /// A clock that has seen nothing and has no wall clock (Lamport until [`Self::set_wall_clock`]).
    pub const fn new() -> Self {
        WriteClock {
            last: 0,
            wall: None,
        }
    }

    /// Tells the clock that `now` on the caller's monotonic clock is `unix_us` on the wall clock.
    /// Between calls the clock advances with `now`, in whole milliseconds; a caller that wants
    /// versions precise to the microsecond calls it just before each write. Versions never go back,
    /// whatever it says. `max_ahead` bounds how far in the future a peer's version may be.
    pub fn set_wall_clock(&mut self, now: Instant, unix_us: u64, max_ahead: Duration) {
        self.wall = Some(WallClock {
            epoch_unix_us: unix_us.saturating_sub(now.as_millis().saturating_mul(1000)),
            max_ahead,
        });
    }

    /// Whether versions follow a wall clock.
    pub fn has_wall_clock(&self) -> bool {
        self.wall.is_some()
    }

    /// The wall clock's time at `now` as a version `major` with a zero counter: `Ok(None)` without
    /// a wall clock, `Err(())` for a wall clock beyond [`MAX_MAJOR`] (a clock set wildly wrong).
    fn physical(&self, now: Instant) -> Result<Option<u64>, ()> {
        let Some(w) = self.wall else {
            return Ok(None);
        };
        let us = w
            .epoch_unix_us
            .saturating_add(now.as_millis().saturating_mul(1000));
        match us.checked_mul(1 << COUNTER_BITS) {
            Some(m) if m <= MAX_MAJOR => Ok(Some(m)),
            _ => Err(()),
        }
    }

    /// The largest value seen or made.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The value for a new write at `now`, above everything seen; `None` once [`MAX_MAJOR`] is
    /// reached, or while the wall clock is beyond it (refused rather than clamped, so a clock set
    /// wildly wrong does not use up the versions). Nothing changes until [`Self::observe`].
    pub fn peek_next(&self, now: Instant) -> Option<u64> {
        let next = self.last.checked_add(1)?;
        let next = self.physical(now).ok()?.map_or(next, |p| next.max(p));
        (next <= MAX_MAJOR).then_some(next)
    }

    /// Moves the clock past `major` (a value made here, seen from a peer, or restored from disk).
    pub fn observe(&mut self, major: u64) {
        self.last = self.last.max(major);
    }

    /// The largest `major` accepted from a peer at `now`: our wall clock plus `max_ahead` (never below
    /// what we already hold), or [`MAX_MAJOR`] without a wall clock.
    pub fn limit(&self, now: Instant) -> u64 {
        match (self.wall, self.physical(now)) {
            (Some(w), Ok(Some(p))) => {
                let ahead = w.max_ahead.as_millis().checked_mul(1000 << COUNTER_BITS);
                let limit = ahead.map_or(MAX_MAJOR, |a| p.saturating_add(a) | 0xFF);
                limit.max(self.last).min(MAX_MAJOR)
            }
            _ => MAX_MAJOR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AHEAD: Duration = Duration::from_secs(60);

    fn at(us: u64) -> u64 {
        us << COUNTER_BITS
    }

    #[test]
    fn without_a_wall_clock_it_counts() {
        let mut c = WriteClock::new();
        assert_eq!(c.peek_next(Instant::ZERO), Some(1));
        c.observe(41);
        assert_eq!(c.peek_next(Instant::ZERO), Some(42));
        assert_eq!(c.limit(Instant::ZERO), MAX_MAJOR);
        c.observe(MAX_MAJOR);
        assert_eq!(c.peek_next(Instant::ZERO), None);
    }

    #[test]
    fn with_a_wall_clock_it_follows_real_time_and_never_goes_back() {
        let mut c = WriteClock::new();
        c.set_wall_clock(Instant::from_millis(500), 1_000_500_123, AHEAD);
        assert_eq!(
            c.peek_next(Instant::from_millis(500)),
            Some(at(1_000_500_123))
        );
        c.observe(at(1_000_500_123));
        // Same microsecond: the counter orders it.
        assert_eq!(
            c.peek_next(Instant::from_millis(500)),
            Some(at(1_000_500_123) + 1)
        );
        // Later: real time, advancing with the monotonic clock between readings.
        assert_eq!(
            c.peek_next(Instant::from_millis(900)),
            Some(at(1_000_900_123))
        );
        // The wall clock stepped back by a minute: versions still rise.
        c.set_wall_clock(Instant::from_millis(900), 940_900_000, AHEAD);
        assert_eq!(
            c.peek_next(Instant::from_millis(900)),
            Some(at(1_000_500_123) + 1)
        );
    }

    #[test]
    fn versions_far_ahead_of_the_wall_clock_are_beyond_the_limit_until_time_catches_up() {
        let mut c = WriteClock::new();
        c.set_wall_clock(Instant::ZERO, 10_000_000_000, AHEAD);
        let far = at(10_000_000_000 + 120_000_000);
        assert!(far > c.limit(Instant::ZERO));
        assert!(at(10_000_000_000 + 59_000_000) <= c.limit(Instant::ZERO));
        assert!(far <= c.limit(Instant::from_millis(61_000)));
    }

    #[test]
    fn a_wall_clock_beyond_the_range_refuses_writes_instead_of_using_up_the_versions() {
        let mut c = WriteClock::new();
        c.set_wall_clock(Instant::ZERO, u64::MAX / 1000, AHEAD);
        assert_eq!(c.peek_next(Instant::ZERO), None);
        assert_eq!(c.last(), 0);
    }

    #[test]
    fn a_lamport_node_accepts_a_wall_clock_nodes_versions() {
        let c = WriteClock::new();
        assert!(at(1_796_000_000_000_000) <= c.limit(Instant::ZERO));
        assert!(at(1_796_000_000_000_000) < MAX_MAJOR / 8);
    }
}
