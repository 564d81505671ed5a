//! Arithmetic in GF(2^64), modulo x^64 + x^4 + x^3 + x + 1, in safe portable code.
//!
//! Addition is XOR. Multiplication is carry-less, four bits at a time from a table of the other
//! operand's sixteen multiples, then reduced. A sketch update multiplies many times by one fixed
//! element, so [`Times`] tabulates that element once and multiplies with sixteen lookups and no
//! reduction at all.

// XOR, and shifts by constants below the operand's width: nothing here can overflow.
#![allow(clippy::arithmetic_side_effects)]

/// The low terms of the modulus: x^64 = x^4 + x^3 + x + 1.
const LOW: u64 = 0x1B;

/// `a * x`, reduced.
pub(crate) const fn xtime(a: u64) -> u64 {
    (a << 1) ^ ((a >> 63).wrapping_neg() & LOW)
}

/// Reduces a 128-bit carry-less product.
fn reduce(r: u128) -> u64 {
    let hi = (r >> 64) as u64;
    let wide = u128::from(hi);
    // hi * x^64 = hi * (x^4 + x^3 + x + 1): at most 68 bits.
    let t = wide ^ (wide << 1) ^ (wide << 3) ^ (wide << 4);
    let over = (t >> 64) as u64;
    // The 4 bits above 64 once more: below 256, so no further overflow.
    let u = over ^ (over << 1) ^ (over << 3) ^ (over << 4);
    (r as u64) ^ (t as u64) ^ u
}

/// `a * b`.
pub(crate) fn mul(a: u64, b: u64) -> u64 {
    let a = u128::from(a);
    let mut table = [0u128; 16];
    let mut i = 1;
    while i < 16 {
        // table[i] = table[i with its top bit cleared] ^ (a << that bit).
        let top = 63 - (i as u64).leading_zeros();
        let rest = i & !(1 << top);
        let base = table.get(rest).copied().unwrap_or(0);
        if let Some(t) = table.get_mut(i) {
            *t = base ^ (a << top);
        }
        i += 1;
    }
    let mut r = 0u128;
    let mut shift = 64;
    while shift > 0 {
        shift -= 4;
        let nibble = ((b >> shift) & 15) as usize;
        r = (r << 4) ^ table.get(nibble).copied().unwrap_or(0);
    }
    reduce(r)
}

/// `a * a` the slow way: spread the bits, then reduce. Builds [`SQUARES`].
const fn square_bits(a: u64) -> u64 {
    let mut r = 0u128;
    let mut i = 0;
    while i < 64 {
        r |= ((a >> i) as u128 & 1) << (2 * i);
        i += 1;
    }
    let hi = (r >> 64) as u64;
    let wide = hi as u128;
    let t = wide ^ (wide << 1) ^ (wide << 3) ^ (wide << 4);
    let over = (t >> 64) as u64;
    (r as u64) ^ (t as u64) ^ over ^ (over << 1) ^ (over << 3) ^ (over << 4)
}

/// Squaring is linear in characteristic 2: `SQUARES[j][n]` is the square of `n * x^(4j)`, so a
/// square is the XOR of sixteen lookups.
const SQUARES: [[u64; 16]; 16] = squares();

// Called at compile time only: an index out of bounds would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
const fn squares() -> [[u64; 16]; 16] {
    let mut t = [[0u64; 16]; 16];
    let mut j = 0;
    while j < 16 {
        let mut n = 0;
        while n < 16 {
            t[j][n] = square_bits((n as u64) << (4 * j));
            n += 1;
        }
        j += 1;
    }
    t
}

/// `a * a`.
pub(crate) fn square(a: u64) -> u64 {
    let mut out = 0;
    for (j, row) in SQUARES.iter().enumerate() {
        let nibble = ((a >> (4 * j)) & 15) as usize;
        out ^= row.get(nibble).copied().unwrap_or(0);
    }
    out
}

/// `1 / a` for non-zero `a` (0 for 0): a^(2^64 - 2), by squaring and multiplying.
pub(crate) fn inverse(a: u64) -> u64 {
    // 2^64 - 2 = 0b111...10: the product of a^(2^i) for i in 1..64.
    let mut power = square(a);
    let mut out = power;
    let mut i = 2;
    while i < 64 {
        power = square(power);
        out = mul(out, power);
        i += 1;
    }
    out
}

/// Multiplication by one fixed element: `rows[j][n]` is the element times `n * x^(4j)`, reduced, so
/// a product is the XOR of sixteen lookups, one per nibble of the other operand.
pub(crate) struct Times {
    rows: [[u64; 16]; 16],
}

impl Times {
    /// The table of `m`.
    pub(crate) fn new(m: u64) -> Self {
        let mut base = m;
        let rows = core::array::from_fn(|_| {
            let (b1, b2) = (base, xtime(base));
            let (b4, b8) = (xtime(b2), xtime(xtime(b2)));
            base = xtime(b8);
            // Entry n is the XOR of the multiples its bits name.
            core::array::from_fn(|n| {
                let pick = |bit: usize, v: u64| if n & bit != 0 { v } else { 0 };
                pick(1, b1) ^ pick(2, b2) ^ pick(4, b4) ^ pick(8, b8)
            })
        });
        Times { rows }
    }

    /// `m * p`.
    pub(crate) fn mul(&self, p: u64) -> u64 {
        let mut out = 0;
        for (j, row) in self.rows.iter().enumerate() {
            let nibble = ((p >> (4 * j)) & 15) as usize;
            out ^= row.get(nibble).copied().unwrap_or(0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    /// Carry-less product, bit by bit: the reference the fast paths are checked against.
    fn slow_mul(a: u64, b: u64) -> u64 {
        let mut r = 0u128;
        for i in 0..64 {
            if (b >> i) & 1 == 1 {
                r ^= u128::from(a) << i;
            }
        }
        for i in (64..128).rev() {
            if (r >> i) & 1 == 1 {
                r ^= (u128::from(LOW) | (1u128 << 64)) << (i - 64);
            }
        }
        r as u64
    }

    /// Remainder of GF(2) polynomials held as bit masks.
    fn rem2(mut a: u128, b: u128) -> u128 {
        let db = 127 - b.leading_zeros();
        while a != 0 && 127 - a.leading_zeros() >= db {
            a ^= b << (127 - a.leading_zeros() - db);
        }
        a
    }

    #[test]
    fn the_modulus_is_irreducible() {
        // Rabin's test for degree 64: x^(2^64) = x mod P, and gcd(x^(2^32) - x, P) = 1.
        let mut x = 2u64;
        for _ in 0..32 {
            x = square(x);
        }
        let (mut a, mut b) = (1u128 << 64 | u128::from(LOW), u128::from(x ^ 2));
        while b != 0 {
            (a, b) = (b, rem2(a, b));
        }
        assert_eq!(a, 1, "x^(2^32) - x shares a factor with the modulus");
        for _ in 0..32 {
            x = square(x);
        }
        assert_eq!(x, 2);
    }

    quickcheck! {
        fn mul_matches_the_bitwise_product(a: u64, b: u64) -> bool {
            mul(a, b) == slow_mul(a, b) && mul(a, b) == mul(b, a)
        }
        fn tables_multiply_as_mul_does(m: u64, p: u64) -> bool {
            Times::new(m).mul(p) == mul(m, p)
        }
        fn squares_and_inverses(a: u64) -> bool {
            square(a) == mul(a, a) && square_bits(a) == mul(a, a) && (a == 0 || mul(a, inverse(a)) == 1)
        }
        fn multiplication_distributes(a: u64, b: u64, c: u64) -> bool {
            mul(a, b ^ c) == mul(a, b) ^ mul(a, c) && mul(mul(a, b), c) == mul(a, mul(b, c))
        }
    }
}
