//! Validated runs of variable-length parts that fill the rest of a datagram (digests items, listing
//! groups, fetch groups), walked lazily without copying or allocating.

use super::{WireError, MAX_ITEMS};
use core::marker::PhantomData;

/// One kind of part in a [`Run`]: how to take one from the front of the bytes.
pub trait Part {
    /// A decoded part, borrowing the datagram.
    type Item<'a>;
    /// The run's name, for `Debug`.
    const NAME: &'static str;
    /// The first part and what follows it, or `None` when the bytes do not hold a valid one.
    fn take(bytes: &[u8]) -> Option<(Self::Item<'_>, &[u8])>;
}

/// A run of parts `P`, checked whole at decode, so walking it never meets a bad part.
pub struct Run<'a, P> {
    bytes: &'a [u8],
    _p: PhantomData<fn() -> P>,
}

impl<P> Clone for Run<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for Run<'_, P> {}
impl<P> PartialEq for Run<'_, P> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl<P> Eq for Run<'_, P> {}
impl<P: Part> core::fmt::Debug for Run<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}({} bytes)", P::NAME, self.bytes.len())
    }
}

impl<'a, P: Part> Run<'a, P> {
    pub(super) fn validate(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut rest = bytes;
        for _ in 0..MAX_ITEMS {
            if rest.is_empty() {
                return Ok(Run {
                    bytes,
                    _p: PhantomData,
                });
            }
            rest = P::take(rest).ok_or(WireError::Malformed)?.1;
        }
        Err(WireError::Malformed)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<'a, P: Part> IntoIterator for Run<'a, P> {
    type Item = P::Item<'a>;
    type IntoIter = RunIter<'a, P>;
    fn into_iter(self) -> RunIter<'a, P> {
        RunIter {
            rest: self.bytes,
            _p: PhantomData,
        }
    }
}

/// Iterator over a [`Run`].
pub struct RunIter<'a, P> {
    rest: &'a [u8],
    _p: PhantomData<fn() -> P>,
}

impl<'a, P: Part> Iterator for RunIter<'a, P> {
    type Item = P::Item<'a>;
    fn next(&mut self) -> Option<P::Item<'a>> {
        // Validated at decode: a bad part cannot happen here, and would end the walk.
        let (part, rest) = P::take(self.rest)?;
        self.rest = rest;
        Some(part)
    }
}
