//! Arbitrary bytes as a sketch to decode: never a panic, and bounded time (libFuzzer's timeout);
//! whatever decodes is within the capacity and re-encodes to exactly the syndromes given. The same
//! bytes, read as terms of two replicas: a difference within the capacity decodes exactly, and one
//! term beyond it is refused, never answered wrongly (no two differences of at most `c + 1` terms
//! share a sketch of `2c + 1` syndromes). Further beyond, chosen terms can cancel (one syndrome:
//! `(a, b)` and `(b, a)`), which is why positions are keyed hashes an outsider cannot choose, and why
//! the exchange confirms every sketch with the roots.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use tidings::sketch::{add, capacity_of, decode, syndromes_for, Difference, MAX_SYNDROMES};

fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&seed, rest)) = bytes.split_first() else {
        return;
    };
    // Hostile syndromes.
    let mut syndromes = words(rest);
    syndromes.truncate(MAX_SYNDROMES);
    let mut out = vec![Difference::default(); capacity_of(syndromes.len())];
    if let Ok(n) = decode(&syndromes, u64::from(seed), &mut out) {
        assert!(n <= capacity_of(syndromes.len()));
        let mut again = vec![0u64; syndromes.len()];
        for d in &out[..n] {
            add(&mut again, d.position, d.delta);
        }
        assert_eq!(again, syndromes, "a decoded sketch does not re-encode to its syndromes");
    }
    // The same words as (position, weight) terms, alternately one side's and the other's.
    let cap = usize::from(seed % 9);
    let n = syndromes_for(cap);
    let (mut a, mut b) = (vec![0u64; n], vec![0u64; n]);
    let mut diff: BTreeMap<u64, u64> = BTreeMap::new();
    for (i, pair) in words(rest).chunks_exact(2).enumerate().take(64) {
        let (x, w) = (pair[0], pair[1]);
        if x == 0 || w == 0 {
            continue;
        }
        add(if i % 2 == 0 { &mut a } else { &mut b }, x, w);
        *diff.entry(x).or_default() ^= w;
    }
    diff.retain(|_, w| *w != 0);
    for (x, y) in a.iter_mut().zip(&b) {
        *x ^= y;
    }
    let mut out = vec![Difference::default(); cap];
    let got = decode(&a, u64::from(seed), &mut out)
        .map(|k| out[..k].iter().map(|d| (d.position, d.delta)).collect::<BTreeMap<_, _>>());
    if diff.len() <= cap {
        assert_eq!(got, Ok(diff), "a difference within the capacity did not decode exactly");
    } else if diff.len() == cap + 1 {
        assert!(got.is_err(), "one term beyond the capacity decoded: {got:?} for {diff:?}");
    }
});
