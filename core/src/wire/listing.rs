//! The compact lists of anti-entropy: listings of (short key hash, version) and fetches by position.
//!
//! A listing group names a tree node (or a part of its key-hash range), so every key hash in it shares
//! the node's prefix: a summary carries only the next `width` bytes of the hash, chosen by the sender
//! for the group's size. Two keys may then share a short hash; the receiver treats such a short hash as
//! unknown on both sides (it pushes all of its own and fetches all of the sender's), so a collision costs
//! a few entries, never a missed one.
//!
//! A fetch answers a group by position: the group's head again, and a bitmap of the summaries wanted.
//! The lister walks the same range in the same order to find them, with no per-peer state.

use super::run::{Part, Run};
use super::{fingerprint, Encoder, Hash8};
use crate::tree::BITS;
use crate::Version;

/// Most summaries in one listing group, and so bits in one fetch bitmap.
pub const MAX_GROUP: usize = u8::MAX as usize;

/// Bytes of the largest fetch bitmap.
pub const BITMAP_BYTES: usize = MAX_GROUP.div_ceil(8);

/// The start of one listing or fetch group: the sender's entries in `node`, or in `part` of it.
///
/// In a listing it is followed by the width byte (bytes of key hash per summary, 1 to 8, after the
/// bits the node's level fixes, plus [`CHECKED`] when each summary carries a check byte) and `count`
/// summaries. In a fetch it repeats the listing group's head, followed by a bitmap of
/// `count.div_ceil(8)` bytes, bit `i` (least significant first) asking for the `i`-th summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GroupHead {
    /// The tree node whose entries are listed.
    pub node: u32,
    /// When a listing spans datagrams: the inclusive key-hash range this group covers.
    pub part: Option<(Hash8, Hash8)>,
    /// Number of summaries in the listing group (fixed width).
    pub count: u8,
}

impl GroupHead {
    /// Largest encoded head: the node as a varint, a part flag, the part, the count.
    pub const MAX: usize = 5 + 1 + 16 + 1;

    /// Encodes the head into `out` (at least [`GroupHead::MAX`] bytes): its length.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        // Written by hand, as postcard would write it: its generic decoder for this shape is a few
        // hundred bytes of a microcontroller's flash.
        let n = postcard::to_slice(&self.node, out).ok()?.len();
        let (flag, rest) = out.get_mut(n..)?.split_first_mut()?;
        let mut len = n.checked_add(1)?;
        *flag = u8::from(self.part.is_some());
        if let Some((lo, hi)) = self.part {
            rest.get_mut(..8)?.copy_from_slice(&lo);
            rest.get_mut(8..16)?.copy_from_slice(&hi);
            len = len.checked_add(16)?;
        }
        *out.get_mut(len)? = self.count;
        len.checked_add(1)
    }

    /// Appends the head, whole or not at all.
    pub fn push(&self, enc: &mut Encoder<'_>) -> bool {
        let mut buf = [0u8; GroupHead::MAX];
        self.write(&mut buf)
            .and_then(|n| buf.get(..n))
            .is_some_and(|b| enc.push_raw(b))
    }
}

/// Largest encoded listing group head: the head and its width byte.
pub const LISTING_HEAD_MAX: usize = GroupHead::MAX + 1;

/// Encodes a listing group's head, [`GroupHead`] and the width byte, into `out`: its length.
pub fn write_group_head(head: &GroupHead, width: u8, out: &mut [u8]) -> Option<usize> {
    let n = head.write(out)?;
    *out.get_mut(n)? = width;
    n.checked_add(1)
}

/// Appends a listing group's head: [`GroupHead`] and the width byte.
pub fn push_group_head(enc: &mut Encoder<'_>, head: &GroupHead, width: u8) -> bool {
    let mut buf = [0u8; LISTING_HEAD_MAX];
    write_group_head(head, width, &mut buf)
        .and_then(|n| buf.get(..n))
        .is_some_and(|b| enc.push_raw(b))
}

fn take_head(bytes: &[u8]) -> Option<(GroupHead, &[u8])> {
    let (node, rest) = postcard::take_from_bytes::<u32>(bytes).ok()?;
    let (&flag, mut rest) = rest.split_first()?;
    let part = match flag {
        0 => None,
        1 => {
            let (lo, hi) = (rest.get(..8)?, rest.get(8..16)?);
            rest = rest.get(16..)?;
            let (lo, hi): (Hash8, Hash8) = (lo.try_into().ok()?, hi.try_into().ok()?);
            (u64::from_be_bytes(lo) <= u64::from_be_bytes(hi)).then_some((lo, hi))?;
            Some((lo, hi))
        }
        _ => return None,
    };
    let (&count, rest) = rest.split_first()?;
    Some((GroupHead { node, part, count }, rest))
}

/// The `width`-byte short form of `hash` in a group of a node at `level`: the bits that follow the
/// prefix every hash below the node shares. Order-preserving within the node.
pub fn short_hash(hash: u64, level: u8, width: u8) -> u64 {
    let bits = 8 * u32::from(width.clamp(1, 8));
    let rest = 64u32.saturating_sub(bits);
    let shift = (BITS * u32::from(level)).min(rest);
    hash.wrapping_shl(shift).wrapping_shr(rest)
}

/// The width byte's flag for checked groups: every summary carries a check byte after its short hash.
pub const CHECKED: u8 = 0x80;

/// The check byte of a whole key hash under a listing's salt: a byte of its [`fingerprint`], so
/// that two keys share it under only about one salt in 256, even when their hashes differ in a few
/// bits.
pub fn check_byte(hash: u64, salt: u32) -> u8 {
    fingerprint(hash, salt)[0]
}

/// One summary of a listing group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The short key hash ([`short_hash`]).
    pub short: u64,
    /// In a checked group, the [`check_byte`] of the whole key hash.
    pub check: Option<u8>,
    /// The entry's version.
    pub version: Version,
}

/// Appends one summary of a group whose width byte is `width` (the bytes of key hash, and
/// [`CHECKED`] when summaries carry a check byte: 0 if `summary` has none), whole or not at all.
pub fn push_summary(enc: &mut Encoder<'_>, width: u8, summary: &Summary) -> bool {
    let w = usize::from((width & !CHECKED).clamp(1, 8));
    let (at, bytes) = (enc.len(), summary.short.to_be_bytes());
    let ok = enc.push_raw(bytes.get(8usize.saturating_sub(w)..).unwrap_or(&bytes))
        && (width & CHECKED == 0 || enc.push_raw(&[summary.check.unwrap_or(0)]))
        && enc.push(&summary.version);
    if !ok {
        enc.truncate(at);
    }
    ok
}

fn take_summary(bytes: &[u8], width: u8, checked: bool) -> Option<(Summary, &[u8])> {
    let w = usize::from(width);
    let (short, mut rest) = (bytes.get(..w)?, bytes.get(w..)?);
    let mut check = None;
    if checked {
        let (&c, after) = rest.split_first()?;
        (check, rest) = (Some(c), after);
    }
    let (version, rest) = postcard::take_from_bytes::<Version>(rest).ok()?;
    let mut b = [0u8; 8];
    b.get_mut(8usize.checked_sub(w)?..)?.copy_from_slice(short);
    let short = u64::from_be_bytes(b);
    Some((
        Summary {
            short,
            check,
            version,
        },
        rest,
    ))
}

/// A listing group: a [`GroupHead`], the width byte, and the group's summaries.
#[derive(Clone, Copy, Debug)]
pub struct ListingGroup;

impl Part for ListingGroup {
    type Item<'a> = (GroupHead, Summaries<'a>);
    const NAME: &'static str = "Listing";
    fn take(bytes: &[u8]) -> Option<((GroupHead, Summaries<'_>), &[u8])> {
        let (head, after) = take_head(bytes)?;
        let (&byte, after) = after.split_first()?;
        let (width, checked) = (byte & !CHECKED, byte & CHECKED != 0);
        if !(1..=8).contains(&width) {
            return None;
        }
        let mut rest = after;
        for _ in 0..head.count {
            rest = take_summary(rest, width, checked)?.1;
        }
        let used = after.len().saturating_sub(rest.len());
        let summaries = Summaries {
            bytes: after.get(..used)?,
            width,
            checked,
        };
        Some(((head, summaries), rest))
    }
}

/// A validated listing: groups, each a [`GroupHead`] followed by its summaries.
pub type Listing<'a> = Run<'a, ListingGroup>;

/// The summaries of one listing group, in the sender's key-hash order.
#[derive(Clone, Copy, Debug)]
pub struct Summaries<'a> {
    bytes: &'a [u8],
    width: u8,
    checked: bool,
}

impl Summaries<'_> {
    /// Bytes of key hash per summary.
    pub fn width(&self) -> u8 {
        self.width
    }
}

impl Iterator for Summaries<'_> {
    type Item = Summary;
    fn next(&mut self) -> Option<Summary> {
        let (s, rest) = take_summary(self.bytes, self.width, self.checked)?;
        self.bytes = rest;
        Some(s)
    }
}

/// A fetch group: the listing group's [`GroupHead`] again, and its bitmap.
#[derive(Clone, Copy, Debug)]
pub struct FetchGroup;

impl Part for FetchGroup {
    type Item<'a> = (GroupHead, &'a [u8]);
    const NAME: &'static str = "Fetches";
    fn take(bytes: &[u8]) -> Option<((GroupHead, &[u8]), &[u8])> {
        let (head, after) = take_head(bytes)?;
        let n = usize::from(head.count).div_ceil(8);
        Some(((head, after.get(..n)?), after.get(n..)?))
    }
}

/// A validated fetch: groups, each a [`GroupHead`] followed by its bitmap.
pub type Fetches<'a> = Run<'a, FetchGroup>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hashes_keep_the_order_below_a_node() {
        // Level 2 fixes the top 8 bits; a 3-byte short hash is the next 24.
        let h = 0xAB_CD_EF_12_34_56_78_9A;
        assert_eq!(short_hash(h, 2, 3), 0xCD_EF_12);
        assert_eq!(short_hash(h, 0, 8), h);
        // Deeper than the width allows: the lowest bytes.
        assert_eq!(short_hash(h, 16, 2), 0x78_9A);
        assert!(short_hash(0xAB10 << 48, 2, 2) < short_hash(0xAB20 << 48, 2, 2));
    }
}
