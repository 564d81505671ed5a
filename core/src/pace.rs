//! Pacing: a token bucket that spreads long answers over time instead of bursting them.

use crate::{Duration, Instant};

const UNIT: u64 = 1000;

/// A token bucket of whole datagrams: up to `burst` at once, refilled at `per_sec` per second.
#[derive(Clone, Debug)]
pub(crate) struct Pacer {
    burst: u64,
    per_sec: u64,
    milli_tokens: u64,
    at: Instant,
}

impl Pacer {
    /// A full bucket. `per_sec` of zero means unpaced.
    pub(crate) fn new(burst: u32, per_sec: u32) -> Self {
        let burst = u64::from(burst.max(1));
        Pacer {
            burst,
            per_sec: u64::from(per_sec),
            milli_tokens: burst.saturating_mul(UNIT),
            at: Instant::ZERO,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.at {
            return;
        }
        // `per_sec` datagrams per second is `per_sec` milli-datagrams per millisecond.
        let gained = now
            .saturating_since(self.at)
            .as_millis()
            .saturating_mul(self.per_sec);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(gained)
            .min(self.burst.saturating_mul(UNIT));
        self.at = now;
    }

    /// Whether a datagram may leave at `now`.
    pub(crate) fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.per_sec == 0 || self.milli_tokens >= UNIT
    }

    /// Spends one datagram's token (after [`Pacer::ready`] said yes).
    pub(crate) fn take(&mut self) {
        if self.per_sec != 0 {
            self.milli_tokens = self.milli_tokens.saturating_sub(UNIT);
        }
    }

    /// Takes one datagram's token if one is available at `now`.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let ready = self.ready(now);
        if ready {
            self.take();
        }
        ready
    }

    /// When the next token is available (`now`'s last refill time if already available).
    pub(crate) fn ready_at(&self) -> Instant {
        if self.per_sec == 0 || self.milli_tokens >= UNIT {
            return self.at;
        }
        let missing = UNIT.saturating_sub(self.milli_tokens);
        self.at
            .saturating_add(Duration::from_millis(missing.div_ceil(self.per_sec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let mut p = Pacer::new(3, 1000);
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
    fn zero_rate_is_unpaced() {
        let mut p = Pacer::new(1, 0);
        assert!((0..100).all(|_| p.try_take(Instant::ZERO)));
    }
}
