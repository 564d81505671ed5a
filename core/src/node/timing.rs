//! The failure detector's arithmetic: cluster-size scaling, suspicion timeouts, local health.

use crate::config::SwimConfig;
use crate::Duration;

/// log10(n) in thousandths, from a fixed-point log2 (no floating point on the target).
pub(crate) fn log10_milli(n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let whole = n.ilog2();
    // x = n / 2^whole in [1, 2), as Q30 (so x * x fits 64 bits); square it 16 times to read 16
    // fraction bits of log2.
    let mut x: u64 = if whole <= 30 {
        n << 30u32.saturating_sub(whole)
    } else {
        n >> whole.saturating_sub(30)
    };
    let mut frac = 0u64;
    for bit in (0..16).rev() {
        x = x.saturating_mul(x) >> 30;
        if x >= 2 << 30 {
            x >>= 1;
            frac |= 1 << bit;
        }
    }
    let log2_q16 = (u64::from(whole) << 16) | frac;
    // log10(n) * 1000 = log2(n) * 301.03 = log2_q16 * (301.03 * 65,536) >> 32: a multiply, not a
    // 64-bit division (a library call of nearly a kilobyte on 32-bit targets). The product stays
    // below 2^47. Rounded to nearest.
    (log2_q16.saturating_mul(19_728_302).saturating_add(1 << 31)) >> 32
}

/// `ms * num / den` for a small fraction (`num <= den` at most about 20,000), by a Q16 multiplier:
/// no 64-bit division. Caps at about 2^48 ms, far beyond any setting.
fn scale_ms(ms: u64, num: u32, den: u32) -> u64 {
    let q16 = num
        .saturating_mul(1 << 16)
        .checked_div(den.max(1))
        .unwrap_or(0);
    ms.saturating_mul(u64::from(q16)) >> 16
}

/// The shortest suspicion, once fully confirmed: `suspicion_mult * max(1, log10(n)) * probe_interval`.
pub(crate) fn suspicion_min(c: &SwimConfig, n: usize) -> Duration {
    let scale = u32::try_from(log10_milli(n as u64))
        .unwrap_or(u32::MAX)
        .max(1000);
    let base = c
        .probe_interval
        .as_millis()
        .saturating_mul(u64::from(c.suspicion_mult));
    // base * scale / 1000, without a 64-bit division: whole thousands, then the remainder (< 1000).
    let (whole, part) = (scale / 1000, scale % 1000);
    let ms = base
        .saturating_mul(u64::from(whole))
        .saturating_add(scale_ms(base, part, 1000));
    Duration::from_millis(ms)
}

/// Lifeguard's suspicion timeout after `confirmations` independent suspicions: from
/// `max = suspicion_max_timeout_mult * min` down to `min` as confirmations reach `indirect_checks`.
pub(crate) fn suspicion_timeout(c: &SwimConfig, n: usize, confirmations: u32) -> Duration {
    let min = suspicion_min(c, n).as_millis();
    let max = min.saturating_mul(u64::from(c.suspicion_max_timeout_mult));
    let expected = u64::from(c.indirect_checks).max(1);
    let num = log10_milli(u64::from(confirmations).saturating_add(1));
    let den = log10_milli(expected.saturating_add(1)).max(1);
    let ratio = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let shrink = scale_ms(max.saturating_sub(min), ratio(num.min(den)), ratio(den));
    Duration::from_millis(max.saturating_sub(shrink).max(min))
}

/// Lifeguard's local health: 0 is healthy; each missed ack or refuted suspicion adds one, each
/// answered probe takes one away. Probe interval and timeout stretch by `score + 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Awareness {
    score: u32,
}

impl Awareness {
    /// The current score.
    pub(crate) fn score(self) -> u32 {
        self.score
    }

    /// Changes the score by `delta`, within `0..max`.
    pub(crate) fn apply(&mut self, delta: i32, max: u32) {
        let s = i64::from(self.score).saturating_add(i64::from(delta));
        self.score = u32::try_from(s.clamp(0, i64::from(max.saturating_sub(1)))).unwrap_or(0);
    }

    /// `d` stretched by the current score.
    pub(crate) fn scale(self, d: Duration) -> Duration {
        d.saturating_mul(u64::from(self.score).saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log10_is_close() {
        for (n, want) in [
            (1u64, 0),
            (2, 301),
            (10, 1000),
            (100, 2000),
            (1000, 3000),
            (10_000, 4000),
            (5, 699),
            (u64::MAX, 19_265),
        ] {
            let got = log10_milli(n);
            assert!(got.abs_diff(want) <= 2, "log10({n}) = {got}, want {want}");
        }
    }

    #[test]
    fn suspicion_follows_lifeguard() {
        let c = SwimConfig::lan();
        // 1,000 members: 4 * 3 * 1 s = 12 s once confirmed, 72 s unconfirmed (to within the
        // fixed-point logarithm's few milliseconds).
        let near = |d: Duration, ms: u64| d.as_millis().abs_diff(ms) <= 30;
        assert!(near(suspicion_min(&c, 1000), 12_000));
        assert!(near(suspicion_timeout(&c, 1000, 0), 72_000));
        assert!(near(suspicion_timeout(&c, 1000, 3), 12_000));
        let one = suspicion_timeout(&c, 1000, 1).as_millis();
        assert!(13_000 < one && one < 71_000);
        // Small clusters never go below suspicion_mult probe intervals.
        assert_eq!(suspicion_min(&c, 3).as_millis(), 4_000);
    }

    #[test]
    fn awareness_is_bounded() {
        let mut a = Awareness::default();
        a.apply(-1, 8);
        assert_eq!(a.score(), 0);
        for _ in 0..20 {
            a.apply(1, 8);
        }
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(Duration::from_millis(500)).as_millis(), 4000);
    }
}
