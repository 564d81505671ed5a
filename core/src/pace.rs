//! Pacing: a token bucket that spreads long answers over time instead of bursting them.

use crate::{Duration, Instant};

/// A token bucket of bytes: up to `burst` at once, refilled at `per_sec` per second (counted per
/// millisecond, so rates below 1,000 B/s pace as 1,000). A datagram may leave while the bucket holds
/// at least `cost` bytes (the largest datagram); it spends what it really took.
#[derive(Clone, Debug)]
pub(crate) struct Pacer {
    burst: u64,
    /// Bytes per millisecond; 0 means unpaced.
    per_ms: u32,
    cost: u64,
    tokens: u64,
    at: Instant,
}

impl Pacer {
    /// A full bucket. `per_sec` of zero means unpaced; a burst below `cost` is raised to it.
    pub(crate) fn new(burst: u32, per_sec: u32, cost: usize) -> Self {
        let cost = u64::try_from(cost).unwrap_or(u64::MAX).max(1);
        let burst = u64::from(burst).max(cost);
        Pacer {
            burst,
            per_ms: if per_sec == 0 {
                0
            } else {
                (per_sec / 1000).max(1)
            },
            cost,
            tokens: burst,
            at: Instant::ZERO,
        }
    }

    /// Whether a datagram may leave at `now`.
    pub(crate) fn ready(&mut self, now: Instant) -> bool {
        if now > self.at {
            let gained = now
                .saturating_since(self.at)
                .as_millis()
                .saturating_mul(u64::from(self.per_ms));
            self.tokens = self.tokens.saturating_add(gained).min(self.burst);
            self.at = now;
        }
        self.per_ms == 0 || self.tokens >= self.cost
    }

    /// Spends `bytes` (after [`Pacer::ready`] said yes).
    pub(crate) fn take(&mut self, bytes: usize) {
        let spent = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.tokens = self.tokens.saturating_sub(spent);
    }

    /// Takes the tokens of one datagram of the largest size if they are there at `now`.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let ready = self.ready(now);
        if ready {
            self.tokens = self.tokens.saturating_sub(self.cost);
        }
        ready
    }

    /// When the next datagram may leave (`now`'s last refill time if it already may).
    pub(crate) fn ready_at(&self) -> Instant {
        if self.per_ms == 0 || self.tokens >= self.cost {
            return self.at;
        }
        let missing = self.cost.saturating_sub(self.tokens);
        self.at.saturating_add(Duration::from_millis(
            missing.div_ceil(u64::from(self.per_ms)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces_by_bytes() {
        // 3 datagrams of 100 bytes at once, then 100 bytes a millisecond.
        let mut p = Pacer::new(300, 100_000, 100);
        let t0 = Instant::from_millis(100);
        assert!(p.try_take(t0) && p.try_take(t0) && p.try_take(t0));
        assert!(!p.try_take(t0));
        assert_eq!(p.ready_at(), Instant::from_millis(101));
        assert!(p.try_take(Instant::from_millis(101)));
        // A long idle refills only up to the burst.
        let t1 = Instant::from_millis(10_000);
        assert_eq!((0..10).filter(|_| p.try_take(t1)).count(), 3);
    }

    #[test]
    fn small_datagrams_spend_only_their_bytes() {
        let mut p = Pacer::new(1_000, 1_000, 100);
        let t0 = Instant::from_millis(5);
        let mut sent = 0;
        while p.ready(t0) {
            p.take(10);
            sent += 1;
        }
        // 1,000 bytes in the bucket, a datagram leaves while 100 remain: 91 of 10 bytes.
        assert_eq!(sent, 91);
    }

    #[test]
    fn a_burst_below_one_datagram_still_lets_one_leave() {
        let mut p = Pacer::new(10, 1_000, 500);
        assert!(p.try_take(Instant::ZERO));
        assert!(!p.try_take(Instant::ZERO));
    }

    #[test]
    fn zero_rate_is_unpaced() {
        let mut p = Pacer::new(1, 0, 100);
        assert!((0..100).all(|_| p.try_take(Instant::ZERO)));
    }
}
