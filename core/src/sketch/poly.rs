//! Decoding a sketch: Berlekamp–Massey finds the locator polynomial whose roots are the differing
//! positions, Berlekamp's trace algorithm splits it into its roots, and Forney's formula gives the
//! weight difference at each. Every loop is bounded by the number of syndromes and the field's 64
//! bits, and all memory is on the stack.

// Indices below stay within 2 * MAX_CAPACITY + 2 by construction (degrees are at most twice the
// capacity); they are checked anyway through `at` and `xor_at`.
#![allow(clippy::arithmetic_side_effects)]

use super::field::{inverse, mul, square, Times};
use super::{DecodeError, Difference, MAX_CAPACITY, MAX_SYNDROMES};

const N: usize = 2 * MAX_SYNDROMES + 2;

/// A polynomial over GF(2^64), coefficient `i` of `x^i` at index `i`.
#[derive(Clone)]
struct Poly {
    c: [u64; N],
}

impl Poly {
    fn zero() -> Self {
        Poly { c: [0; N] }
    }

    fn monomial(coef: u64, power: usize) -> Self {
        let mut p = Self::zero();
        p.set(power, coef);
        p
    }

    fn at(&self, i: usize) -> u64 {
        self.c.get(i).copied().unwrap_or(0)
    }

    fn set(&mut self, i: usize, v: u64) {
        if let Some(x) = self.c.get_mut(i) {
            *x = v;
        }
    }

    fn xor_at(&mut self, i: usize, v: u64) {
        if let Some(x) = self.c.get_mut(i) {
            *x ^= v;
        }
    }

    fn degree(&self) -> Option<usize> {
        self.c.iter().rposition(|&x| x != 0)
    }

    /// `self -= coef * x^shift * other`.
    fn sub_scaled(&mut self, coef: u64, shift: usize, other: &Poly) {
        if coef == 0 {
            return;
        }
        for i in 0..=other.degree().unwrap_or(0) {
            let o = other.at(i);
            if o != 0 {
                self.xor_at(i + shift, mul(coef, o));
            }
        }
    }

    /// The remainder modulo `m` (any non-zero leading coefficient), in place.
    fn reduce(&mut self, m: &Poly) {
        let Some(dm) = m.degree() else { return };
        let inv = inverse(m.at(dm));
        let Some(top) = self.degree() else { return };
        for k in (dm..=top).rev() {
            let c = mul(self.at(k), inv);
            self.sub_scaled(c, k - dm, m);
        }
    }

    /// The monic multiple of `self`.
    fn monic(mut self) -> Poly {
        if let Some(d) = self.degree() {
            let inv = inverse(self.at(d));
            for x in self.c.iter_mut() {
                *x = mul(*x, inv);
            }
        }
        self
    }
}

/// The connection polynomial of the syndromes `S_1..S_n` (`s[0]` is `S_1`) and its length `L`:
/// `C(z) = prod (1 - x z)` over the differing positions `x` when there are few enough of them.
fn connection(s: &[u64]) -> (Poly, usize) {
    let mut c = Poly::monomial(1, 0);
    let mut b = Poly::monomial(1, 0);
    let (mut l, mut m, mut last) = (0usize, 1usize, 1u64);
    for (n, &sn) in s.iter().enumerate() {
        let mut d = sn;
        for i in 1..=l.min(n) {
            d ^= mul(c.at(i), s.get(n - i).copied().unwrap_or(0));
        }
        if d == 0 {
            m += 1;
            continue;
        }
        let coef = mul(d, inverse(last));
        let before = c.clone();
        c.sub_scaled(coef, m, &b);
        if 2 * l <= n {
            l = n + 1 - l;
            b = before;
            last = d;
            m = 1;
        } else {
            m += 1;
        }
    }
    (c, l)
}

/// Reduction modulo one monic polynomial `f` of degree `d`, with a multiplication table for each
/// of its coefficients: root finding multiplies by them tens of thousands of times.
struct Modulus {
    d: usize,
    times: [Times; MAX_CAPACITY],
}

impl Modulus {
    fn new(f: &Poly) -> Self {
        Modulus {
            d: f.degree().unwrap_or(0),
            times: core::array::from_fn(|i| Times::new(f.at(i))),
        }
    }

    /// `a^2 mod f`, for `a` of degree below `d`.
    fn square(&self, a: &[u64; MAX_CAPACITY]) -> [u64; MAX_CAPACITY] {
        let mut t = [0u64; 2 * MAX_CAPACITY];
        for (i, &c) in a.iter().enumerate().take(self.d) {
            if let Some(x) = t.get_mut(2 * i) {
                *x = square(c);
            }
        }
        for k in (self.d..2 * self.d).rev() {
            let c = t.get(k).copied().unwrap_or(0);
            if c == 0 {
                continue;
            }
            // x^k = x^(k-d) * (x^d - f): the leading 1 cancels t[k].
            for (i, times) in self.times.iter().enumerate().take(self.d) {
                if let Some(x) = t.get_mut(k - self.d + i) {
                    *x ^= times.mul(c);
                }
            }
        }
        let mut out = [0u64; MAX_CAPACITY];
        for (o, &x) in out.iter_mut().zip(t.iter()).take(self.d) {
            *o = x;
        }
        out
    }

    /// `x^(2^i) mod f` for `i` below 64, and `x^(2^64) mod f`.
    fn frobenius(&self) -> ([[u64; MAX_CAPACITY]; 64], [u64; MAX_CAPACITY]) {
        let mut powers = [[0u64; MAX_CAPACITY]; 64];
        let mut u = [0u64; MAX_CAPACITY];
        if let Some(x) = u.get_mut(1) {
            *x = 1;
        }
        for p in powers.iter_mut() {
            *p = u;
            u = self.square(&u);
        }
        (powers, u)
    }
}

/// `Tr(beta x) mod f`: the sum of (beta x)^(2^i) = beta^(2^i) x^(2^i) for i below 64. Every root
/// `r` of `f` makes it 0 or 1 by the trace of `beta r`, so its gcd with `f` parts the roots in two.
fn trace(powers: &[[u64; MAX_CAPACITY]; 64], d: usize, beta: u64) -> Poly {
    let mut acc = Poly::zero();
    let mut b = beta;
    for p in powers {
        for (i, &c) in p.iter().enumerate().take(d) {
            if c != 0 {
                acc.xor_at(i, mul(b, c));
            }
        }
        b = square(b);
    }
    acc
}

fn gcd(a: &Poly, b: &Poly) -> Poly {
    let (mut a, mut b) = (a.clone(), b.clone());
    // Each step lowers b's degree; the bound only guards the loop.
    for _ in 0..N {
        if b.degree().is_none() {
            break;
        }
        a.reduce(&b);
        core::mem::swap(&mut a, &mut b);
    }
    a.monic()
}

/// `f / g` for a monic `g` that divides `f`.
fn quotient(f: &Poly, g: &Poly) -> Poly {
    let (Some(df), Some(dg)) = (f.degree(), g.degree()) else {
        return Poly::zero();
    };
    let mut rest = f.clone();
    let mut q = Poly::zero();
    for k in (dg..=df).rev() {
        let c = rest.at(k);
        q.set(k - dg, c);
        rest.sub_scaled(c, k - dg, g);
    }
    q
}

/// Monic factors waiting to be split, their coefficients below the leading 1 back to back: the
/// degrees add up to the degree of the polynomial being solved, so the capacity bounds the room.
struct Pending {
    coefs: [u64; MAX_CAPACITY],
    degrees: [u8; MAX_CAPACITY],
    len: usize,
    used: usize,
}

impl Pending {
    fn push(&mut self, f: &Poly) -> bool {
        let d = f.degree().unwrap_or(0);
        let (Some(dst), Some(slot)) = (
            self.coefs.get_mut(self.used..self.used + d),
            self.degrees.get_mut(self.len),
        ) else {
            return false;
        };
        for (i, x) in dst.iter_mut().enumerate() {
            *x = f.at(i);
        }
        *slot = d as u8;
        self.len += 1;
        self.used += d;
        true
    }

    fn pop(&mut self) -> Option<Poly> {
        self.len = self.len.checked_sub(1)?;
        let d = usize::from(self.degrees.get(self.len).copied()?);
        self.used = self.used.checked_sub(d)?;
        let mut f = Poly::monomial(1, d);
        for (i, &x) in self.coefs.get(self.used..self.used + d)?.iter().enumerate() {
            f.set(i, x);
        }
        Some(f)
    }
}

/// The splitting attempts allowed for a polynomial of degree `d`: about two per split are needed,
/// so this bounds the time of a hostile input without failing an honest one but by odds of 2^-64.
fn attempts(d: usize) -> u32 {
    (4 * d + 64) as u32
}

/// The roots of monic `f` of degree `d`, into `out`; `None` unless `f` has `d` distinct roots.
fn roots(f: Poly, d: usize, seed: u64, out: &mut [u64]) -> Option<usize> {
    let mut pending = Pending {
        coefs: [0; MAX_CAPACITY],
        degrees: [0; MAX_CAPACITY],
        len: 0,
        used: 0,
    };
    pending.push(&f).then_some(())?;
    let (mut found, mut tries, mut attempt) = (0usize, attempts(d), seed);
    let mut first = true;
    while let Some(f) = pending.pop() {
        match f.degree()? {
            0 => {}
            1 => {
                // x + r: the root is r.
                *out.get_mut(found)? = f.at(0);
                found += 1;
            }
            deg => {
                let m = Modulus::new(&f);
                let (powers, last) = m.frobenius();
                // Distinct roots, all in GF(2^64), exactly when f divides x^(2^64) - x, the
                // product of (x - a) over the whole field. Its factors inherit it.
                let mut x = [0u64; MAX_CAPACITY];
                if let Some(one) = x.get_mut(1) {
                    *one = 1;
                }
                if core::mem::take(&mut first) && last != x {
                    return None;
                }
                let g = loop {
                    tries = tries.checked_sub(1)?;
                    attempt = attempt.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let g = gcd(&f, &trace(&powers, deg, crate::rng::mix(attempt) | 1));
                    if g.degree().is_some_and(|dg| dg > 0 && dg < deg) {
                        break g;
                    }
                };
                let h = quotient(&f, &g);
                (pending.push(&h) && pending.push(&g)).then_some(())?;
            }
        }
    }
    (found == d).then_some(found)
}

/// `p(z)` at `z`, by Horner's rule.
fn eval(p: &Poly, z: u64) -> u64 {
    let top = p.degree().unwrap_or(0);
    (0..=top).rev().fold(0, |acc, i| mul(acc, z) ^ p.at(i))
}

/// The differences whose weighted power sums are `syndromes`, into `out`.
pub(super) fn solve(
    syndromes: &[u64],
    seed: u64,
    out: &mut [Difference],
) -> Result<usize, DecodeError> {
    let n = syndromes.len();
    if n > MAX_SYNDROMES {
        return Err(DecodeError::TooLarge);
    }
    let (lambda, l) = connection(syndromes);
    // 2L < n: the locator is then unique, and at least one syndrome beyond it checks it.
    if 2 * l >= n || lambda.degree() != Some(l) {
        return Err(DecodeError::TooMany);
    }
    // z^L C(1/z): monic, and its roots are the positions themselves.
    let mut f = Poly::zero();
    for k in 0..=l {
        f.set(k, lambda.at(l - k));
    }
    let mut positions = [0u64; MAX_CAPACITY];
    let found = roots(f, l, seed, &mut positions).ok_or(DecodeError::TooMany)?;
    // Forney: with S(z) = sum S_j z^(j-1) and Omega = S * Lambda mod z^L, the difference at
    // position x is Omega(1/x) / Lambda'(1/x) (characteristic 2: no signs).
    let mut omega = Poly::zero();
    for i in 0..l {
        let mut acc = 0;
        for j in 0..=i {
            acc ^= mul(syndromes.get(j).copied().unwrap_or(0), lambda.at(i - j));
        }
        omega.set(i, acc);
    }
    let mut derivative = Poly::zero();
    for i in (1..=l).step_by(2) {
        derivative.set(i - 1, lambda.at(i));
    }
    for (slot, &x) in out.iter_mut().zip(positions.get(..found).unwrap_or(&[])) {
        let z = inverse(x);
        let d = eval(&derivative, z);
        if x == 0 || d == 0 {
            return Err(DecodeError::TooMany);
        }
        *slot = Difference {
            position: x,
            delta: mul(eval(&omega, z), inverse(d)),
        };
    }
    Ok(found)
}
