//! Lazily decoded runs of items that fill the rest of a datagram.

use super::{GroupHead, Summary, WireError};
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

/// A validated listing: groups, each a [`GroupHead`] followed by its summaries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Listing<'a> {
    bytes: &'a [u8],
}

impl core::fmt::Debug for Listing<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Listing({} bytes)", self.bytes.len())
    }
}

impl<'a> Listing<'a> {
    pub(super) fn validate(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut rest = bytes;
        for _ in 0..MAX_ITEMS {
            if rest.is_empty() {
                return Ok(Listing { bytes });
            }
            let (head, after) =
                postcard::take_from_bytes::<GroupHead>(rest).map_err(|_| WireError::Malformed)?;
            let count = usize::from(u16::from_le_bytes(head.count));
            let (_, after) = Items::<Summary>::validate(after, count)?;
            if let Some((lo, hi)) = head.part {
                if u64::from_be_bytes(lo) > u64::from_be_bytes(hi) {
                    return Err(WireError::Malformed);
                }
            }
            rest = after;
        }
        Err(WireError::Malformed)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The groups, each with its summaries.
    pub fn groups(&self) -> GroupIter<'a> {
        GroupIter { rest: self.bytes }
    }
}

/// Iterator over the groups of a [`Listing`].
pub struct GroupIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for GroupIter<'a> {
    type Item = (GroupHead, Items<'a, Summary>);
    fn next(&mut self) -> Option<Self::Item> {
        let (head, after) = postcard::take_from_bytes::<GroupHead>(self.rest).ok()?;
        let count = usize::from(u16::from_le_bytes(head.count));
        let (items, rest) = Items::<Summary>::validate(after, count).ok()?;
        self.rest = rest;
        Some((head, items))
    }
}
