//! Lazily decoded runs of items that fill the rest of a datagram.

use super::WireError;
use core::marker::PhantomData;
use serde::de::DeserializeOwned;

/// A validated run of postcard items of type `T` that fills the rest of a datagram.
pub struct Items<'a, T> {
    bytes: &'a [u8],
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Items<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Items<'_, T> {}
impl<T> PartialEq for Items<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl<T> Eq for Items<'_, T> {}
impl<T> core::fmt::Debug for Items<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Items({} bytes)", self.bytes.len())
    }
}

impl<'a, T: DeserializeOwned> Items<'a, T> {
    pub(super) fn validate(bytes: &'a [u8], limit: usize) -> Result<(Self, &'a [u8]), WireError> {
        let mut rest = bytes;
        for _ in 0..limit {
            if rest.is_empty() {
                break;
            }
            rest = postcard::take_from_bytes::<T>(rest)
                .map_err(|_| WireError::Malformed)?
                .1;
        }
        let used = bytes.len().saturating_sub(rest.len());
        let items = Items {
            bytes: bytes.get(..used).ok_or(WireError::Malformed)?,
            _t: PhantomData,
        };
        Ok((items, rest))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl<'a, T: DeserializeOwned> IntoIterator for Items<'a, T> {
    type Item = T;
    type IntoIter = ItemIter<'a, T>;
    fn into_iter(self) -> ItemIter<'a, T> {
        ItemIter {
            rest: self.bytes,
            _t: PhantomData,
        }
    }
}

/// Iterator over [`Items`].
pub struct ItemIter<'a, T> {
    rest: &'a [u8],
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for ItemIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        // Validated at decode: an error here cannot happen, and ends the walk if it did.
        let (item, rest) = postcard::take_from_bytes::<T>(self.rest).ok()?;
        self.rest = rest;
        Some(item)
    }
}

/// Most items or groups one datagram may hold: more than any datagram has bytes, so the encoder can
/// never pack more than the decoder accepts.
pub const MAX_ITEMS: usize = 65_536;
