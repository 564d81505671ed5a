//! Set reconciliation in one message: a sketch of weighted power sums over GF(2^64).
//!
//! Every entry is a point of the field, its *position* (its 64-bit key hash), carrying a *weight*
//! (drawn from its version). A replica's sketch is the `n = 2c + 1` syndromes
//! `S_j = sum(weight * position^j)`, `j = 1..n`. Addition in the field is XOR, so the XOR of two
//! replicas' sketches is the sketch of their difference: one term per key whose versions differ
//! (or that only one side holds), weighted by the XOR of the two weights. Decoding it, as a
//! Reed–Solomon decoder finds errors (Berlekamp–Massey, then roots, then Forney's formula), gives
//! every differing key hash and the weight difference whenever at most `c` keys differ: `8 * n`
//! bytes name up to `c` differing keys, whatever the size of the replicas.
//!
//! This is PinSketch's algebra with weights: where PinSketch holds a set of (key, version)
//! elements, so that a key changed on one side is two elements, here it is one term. A sketch of
//! the same size therefore names twice as many changed keys, an update costs one chain of `n`
//! multiplications instead of two, and a decoded difference names its key exactly and, through its
//! weight, tells which side holds the newer version.
//!
//! A change costs `n` field multiplications and nothing is ever rebuilt: a new version adds the
//! XOR of its old and new weights at the key's position. The syndrome beyond `2c` is a check:
//! more differences than the capacity pass for a decodable set with odds of about 2^-64, and the
//! decoded differences are checked against every syndrome before they are returned, so a failure
//! is reported as [`DecodeError::TooMany`], never as a wrong answer.
//!
//! Positions are keyed key hashes ([`DigestKey`](crate::DigestKey)): an outsider cannot choose keys
//! whose terms cancel or collide.
//!
//! Decoding runs on the stack: about 90 KB at the largest capacity (tables of multiples of the
//! locator's coefficients make root finding some twenty times faster). Servers have it; a
//! microcontroller that turns the feature on needs a stack that large where it handles datagrams.
//!
//! ```
//! use tidings::sketch::{decode, syndromes_for, Difference, Sketch};
//! const N: usize = syndromes_for(4);
//! let (mut a, mut b) = (Sketch::<N>::new(), Sketch::<N>::new());
//! for key in [11u64, 22, 33] {
//!     a.add(key, 5);
//!     b.add(key, 5);
//! }
//! a.add(22, 5 ^ 9); // a re-weights key 22 from 5 to 9
//! b.add(44, 7); // b alone holds key 44
//! let mut diff = a.clone();
//! diff.merge(b.syndromes());
//! let mut out = [Difference::default(); 4];
//! let n = decode(diff.syndromes(), 0, &mut out).unwrap();
//! let mut found: Vec<(u64, u64)> = out[..n].iter().map(|d| (d.position, d.delta)).collect();
//! found.sort();
//! assert_eq!(found, [(22, 5 ^ 9), (44, 7)]);
//! ```

mod field;
mod poly;

use crate::Version;
use field::Times;

/// The largest capacity supported: 32 differing keys, 65 syndromes, 520 bytes on the wire.
pub const MAX_CAPACITY: usize = 32;
/// Syndromes of a sketch of the largest capacity.
pub const MAX_SYNDROMES: usize = syndromes_for(MAX_CAPACITY);

/// The number of syndromes of a sketch of capacity `c`: `2c + 1`.
pub const fn syndromes_for(capacity: usize) -> usize {
    capacity.saturating_mul(2).saturating_add(1)
}

/// The largest odd number of syndromes at most `n` (0 for 0): a prefix of a sketch is a sketch of
/// smaller capacity, so one of any length can be cut to an odd one and compared.
pub const fn odd_prefix(n: usize) -> usize {
    if n % 2 == 1 {
        n
    } else {
        n.saturating_sub(1)
    }
}

/// The capacity of a sketch of `n` syndromes.
pub const fn capacity_of(syndromes: usize) -> usize {
    syndromes.saturating_sub(1) / 2
}

/// Why a sketch did not decode. Nothing but the output buffer was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// More keys differ than the sketch's capacity: reconcile by other means.
    TooMany,
    /// More syndromes than [`MAX_SYNDROMES`], or an output buffer smaller than the capacity.
    TooLarge,
}

/// One decoded difference: a key hash, and the XOR of the two sides' weights there (the weight of
/// the only side that holds the key, when one side lacks it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Difference {
    /// The key hash.
    pub position: u64,
    /// The XOR of the weights.
    pub delta: u64,
}

/// The weight of an entry of `version`: an order-preserving 48-bit summary of `major` above 16 bits
/// drawn from `minor` and `tie`. Never zero, so a key held by one side only always shows. A larger
/// major never gets a smaller summary, which is how a decoded difference tells which side is newer;
/// majors too close to be told apart by their summaries count as equal, and then both sides ship.
pub fn weight(version: Version) -> u64 {
    let low = version.minor.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(version.tie);
    let low = low.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 48;
    (order48(version.major) << 16) | low | 1
}

/// A 48-bit summary of a major that keeps its order: how many of its low bits were dropped (6 bits),
/// then its 42 leading bits. Counters below 2^42 are kept exactly; a clock's `unix_us << 8 |
/// counter` (about 2^58) to within 2^17, under a millisecond of real time. Truncating instead would
/// wrap: the low 48 bits of such a major turn over every 2^40 microseconds, about 13 days.
fn order48(major: u64) -> u64 {
    let dropped = (u64::BITS.saturating_sub(major.leading_zeros())).saturating_sub(42);
    (u64::from(dropped) << 42) | major.checked_shr(dropped).unwrap_or(0)
}

/// The part of a weight that orders versions: the summary of the major.
pub fn weight_major(weight: u64) -> u64 {
    weight >> 16
}

/// Adds `weight` at `position`: `S_j ^= weight * position^j` for every syndrome. Adding the same
/// weight again removes it; adding `old ^ new` re-weights a key.
pub fn add(syndromes: &mut [u64], position: u64, weight: u64) {
    let step = Times::new(position);
    let mut p = step.mul(weight);
    for s in syndromes.iter_mut() {
        *s ^= p;
        p = step.mul(p);
    }
}

/// The differences whose sketch is `syndromes` (the XOR of two replicas' sketches), written to
/// `out`; returns how many. `n` syndromes decode at most `(n - 1) / 2` differences. `seed` varies
/// how roots are split, so that no fixed input is slow every time. Time is bounded by the number of
/// syndromes alone, whatever their bytes.
pub fn decode(syndromes: &[u64], seed: u64, out: &mut [Difference]) -> Result<usize, DecodeError> {
    if syndromes.len() > MAX_SYNDROMES || out.len() < capacity_of(syndromes.len()) {
        return Err(DecodeError::TooLarge);
    }
    if syndromes.iter().all(|&s| s == 0) {
        return Ok(0);
    }
    let n = poly::solve(syndromes, seed, out)?;
    let mut check = [0u64; MAX_SYNDROMES];
    let check = check
        .get_mut(..syndromes.len())
        .ok_or(DecodeError::TooLarge)?;
    for d in out.get(..n).unwrap_or(&[]) {
        add(check, d.position, d.delta);
    }
    if check != syndromes {
        return Err(DecodeError::TooMany);
    }
    Ok(n)
}

/// A sketch of `N` syndromes (capacity `(N - 1) / 2`) held by value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sketch<const N: usize> {
    syndromes: [u64; N],
}

impl<const N: usize> Default for Sketch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Sketch<N> {
    /// The sketch of nothing.
    pub const fn new() -> Self {
        Sketch { syndromes: [0; N] }
    }

    /// Adds `weight` at `position` ([`add`]).
    pub fn add(&mut self, position: u64, weight: u64) {
        add(&mut self.syndromes, position, weight);
    }

    /// XORs in another sketch (its first `N` syndromes): the sketch of the difference.
    pub fn merge(&mut self, other: &[u64]) {
        for (s, o) in self.syndromes.iter_mut().zip(other) {
            *s ^= o;
        }
    }

    /// The syndromes.
    pub fn syndromes(&self) -> &[u64] {
        &self.syndromes
    }
}

#[cfg(test)]
mod tests;
