use super::*;
use quickcheck::{quickcheck, TestResult};
use std::collections::BTreeMap;
use std::vec::Vec;

/// A replica as the sketch sees it: position to weight.
type Terms = BTreeMap<u64, u64>;

fn sketch_of(terms: &Terms, cap: usize) -> Vec<u64> {
    let mut s = std::vec![0u64; syndromes_for(cap)];
    for (&x, &w) in terms {
        add(&mut s, x, w);
    }
    s
}

fn decoded(s: &[u64], seed: u64) -> Result<Terms, DecodeError> {
    let mut out = std::vec![Difference::default(); capacity_of(s.len())];
    let n = decode(s, seed, &mut out)?;
    Ok(out[..n].iter().map(|d| (d.position, d.delta)).collect())
}

/// The difference two replicas' sketches should decode to.
fn difference(a: &Terms, b: &Terms) -> Terms {
    let mut d = a.clone();
    for (&x, &w) in b {
        *d.entry(x).or_default() ^= w;
    }
    d.retain(|_, w| *w != 0);
    d
}

fn terms(n: u64, salt: u64) -> Terms {
    (1..=n)
        .map(|i| (crate::rng::mix(i ^ salt) | 1, crate::rng::mix(i + salt) | 1))
        .collect()
}

#[test]
fn decodes_exactly_at_capacity_and_refuses_beyond() {
    for cap in [0usize, 1, 2, 8, 16, 32] {
        let t = terms(cap as u64, 5);
        assert_eq!(decoded(&sketch_of(&t, cap), 3), Ok(t.clone()), "cap {cap}");
        let more = terms(cap as u64 + 1, 5);
        assert_eq!(
            decoded(&sketch_of(&more, cap), 3),
            Err(DecodeError::TooMany)
        );
    }
}

#[test]
fn re_weighting_is_one_term() {
    let base = terms(1000, 1);
    let mut changed = base.clone();
    let keys: Vec<u64> = base.keys().copied().take(16).collect();
    for (i, x) in keys.iter().enumerate() {
        changed.insert(*x, weight(Version::new(i as u64 + 5000, 1, 0)));
    }
    let mut s = sketch_of(&base, 16);
    for (a, b) in s.iter_mut().zip(sketch_of(&changed, 16)) {
        *a ^= b;
    }
    assert_eq!(decoded(&s, 0), Ok(difference(&base, &changed)));
}

#[test]
fn weights_order_by_major_and_are_never_zero() {
    let a = weight(Version::new(7, 1, 0));
    let b = weight(Version::new(8, 0, 0));
    assert!(weight_major(a) < weight_major(b));
    // Clock majors a second apart, on either side of the point where their low 48 bits wrap.
    let wrap = (1u64 << 58) | ((1u64 << 48) - 1);
    let later = wrap + (1_000_000 << 8);
    assert!(later & 0xFFFF_FFFF_FFFF < wrap & 0xFFFF_FFFF_FFFF);
    let (early, late) = (
        weight(Version::new(wrap, 1, 0)),
        weight(Version::new(later, 1, 0)),
    );
    assert!(weight_major(early) < weight_major(late));
    assert_ne!(weight(Version::new(7, 1, 0)), weight(Version::new(7, 2, 0)));
    assert_ne!(weight(Version::default()), 0);
}

#[test]
fn hostile_syndromes_fail_or_decode_consistently() {
    for seed in 0..200u64 {
        let s: Vec<u64> = (0..9).map(|i| crate::rng::mix(seed * 31 + i)).collect();
        if let Ok(t) = decoded(&s, seed) {
            assert_eq!(sketch_of(&t, 4), s);
        }
    }
    assert_eq!(decoded(&[0u64; 67], 0), Err(DecodeError::TooLarge));
    let mut short = [Difference::default(); 1];
    assert_eq!(
        decode(&[1, 2, 3, 4, 5], 0, &mut short),
        Err(DecodeError::TooLarge)
    );
    // One syndrome is a check alone: capacity 0.
    assert_eq!(decoded(&[9], 0), Err(DecodeError::TooMany));
}

quickcheck! {
    /// A larger major never weighs less, over the whole range: counters, and a wall clock's
    /// `unix_us << 8 | counter` across any boundary of its low bits.
    fn weights_never_reverse_the_order_of_majors(a: u64, gap: u64, shift: u8) -> bool {
        let a = a >> (shift % 64);
        let b = a.saturating_add(gap >> (shift % 64));
        let (wa, wb) = (weight(Version::new(a, 1, 0)), weight(Version::new(b, 2, 0)));
        weight_major(wa) <= weight_major(wb)
    }

    /// Two replicas whose difference fits the capacity: their sketches' XOR names it exactly.
    fn within_capacity_the_difference_decodes(shared: Vec<(u64, u64)>, a: Vec<(u64, u64)>, b: Vec<(u64, u64)>, seed: u64) -> TestResult {
        let cap = 12;
        let clean = |v: Vec<(u64, u64)>| -> Terms {
            v.into_iter().filter(|&(x, w)| x != 0 && w != 0).collect()
        };
        let shared = clean(shared);
        let mut ta = shared.clone();
        ta.extend(clean(a));
        let mut tb = shared;
        tb.extend(clean(b));
        let diff = difference(&ta, &tb);
        if diff.len() > cap {
            return TestResult::discard();
        }
        let mut s = sketch_of(&ta, cap);
        for (x, y) in s.iter_mut().zip(sketch_of(&tb, cap)) {
            *x ^= y;
        }
        TestResult::from_bool(decoded(&s, seed) == Ok(diff))
    }

    /// Beyond the capacity the failure is detected: never a wrong answer.
    fn beyond_capacity_never_a_wrong_answer(t: Vec<(u64, u64)>, seed: u64) -> TestResult {
        let t: Terms = t.into_iter().filter(|&(x, w)| x != 0 && w != 0).collect();
        let cap = 3;
        if t.len() <= cap {
            return TestResult::discard();
        }
        TestResult::from_bool(decoded(&sketch_of(&t, cap), seed) == Err(DecodeError::TooMany))
    }
}
