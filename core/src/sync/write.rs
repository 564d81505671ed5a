//! Writing the engine's datagrams: child fingerprints, listings and entries, packed while they fit.

use super::nodes::NodeSet;
use super::replica::{Encoded, OursFrom, Replica};
use super::{SyncStats, HASHES_PER_TASK, LIST_WHOLE_MAX};
use crate::wire::{
    check_byte, push_summary, short_hash, write_group_head, DigestItem, Encoder, GroupHead,
    Summary, CHECKED, LISTING_HEAD_MAX, MAX_GROUP,
};
use crate::Instant;
use heapless::Vec;

/// Writes child fingerprints or listings for the pending nodes of a describe task; true when all
/// are done.
pub(super) fn write_describe(
    replica: &dyn Replica,
    enc: &mut Encoder<'_>,
    (salt, start): (u32, usize),
    list: bool,
    nodes: &mut NodeSet,
    cursor: &mut u64,
) -> bool {
    let tree = replica.tree();
    let shape = tree.shape();
    while let Some(node) = nodes.first() {
        if list || shape.is_leaf(node) {
            let Some((lo, hi)) = shape.range(node) else {
                nodes.remove(node);
                continue;
            };
            let from = (*cursor).max(lo);
            // A group that would be split waits for the next datagram, unless it is the first.
            let whole = from == lo && enc.len() > start;
            match write_group(replica, enc, (node, whole, salt), from, (lo, hi)) {
                Some(next) => {
                    *cursor = next;
                    return false;
                }
                None => *cursor = 0,
            }
        } else {
            let Some(children) = tree.children(node) else {
                nodes.remove(node);
                continue;
            };
            if !DigestItem::new(node, &children, salt).push(enc) {
                return false;
            }
        }
        nodes.remove(node);
    }
    true
}

/// Bytes of key hash per summary in a listing of `node`, as few as keep a shared short hash rare for
/// the entries the node is expected to hold (2 bytes up to 4 entries, 3 up to 64, else 4), and
/// whether summaries carry a check byte: where versions do not tell keys apart, a shared short hash
/// would otherwise hide a difference for good.
fn hash_width(replica: &dyn Replica, node: u32) -> (u8, bool) {
    let view = replica.tree();
    let level = view.shape().level(node).unwrap_or(0);
    let expected = view.count().checked_shr(4 * u32::from(level)).unwrap_or(0);
    let width = match expected {
        0..=4 => 2,
        5..=LIST_WHOLE_MAX => 3,
        _ => 4,
    };
    (width, !replica.versions_unique())
}

/// Lists the entries of `node` (range `lo..=hi`) from key hash `from` on. Returns the hash to resume
/// from when the datagram or the group filled up first, `None` when the node is done. With `whole`,
/// a node that does not fit what is left of the datagram is not started.
fn write_group(
    replica: &dyn Replica,
    enc: &mut Encoder<'_>,
    (node, whole, salt): (u32, bool, u32),
    from: u64,
    (lo, hi): (u64, u64),
) -> Option<u64> {
    let level = replica.tree().shape().level(node).unwrap_or(0);
    let (width, checked) = hash_width(replica, node);
    let flagged = if checked { width | CHECKED } else { width };
    // The head goes in front once the summaries say whether the group is whole.
    let at = enc.len();
    if !enc.reserve(LISTING_HEAD_MAX) {
        return Some(from);
    }
    let (mut count, mut last) = (0u8, None);
    let mut ours = OursFrom {
        replica,
        next: Some(from),
        hi,
    };
    let mut next = ours.next();
    while let Some((hash, version)) = next {
        let summary = Summary {
            short: short_hash(hash, level, width),
            check: checked.then(|| check_byte(hash, salt)),
            version,
        };
        if usize::from(count) >= MAX_GROUP || !push_summary(enc, flagged, &summary) {
            break;
        }
        count = count.saturating_add(1);
        last = Some(hash);
        next = ours.next();
    }
    let complete = next.is_none();
    let part = match (complete && from == lo, complete, last) {
        (true, _, _) => None,
        (false, true, _) => Some((from, hi)),
        (false, false, Some(l)) if !whole => Some((from, l)),
        (false, false, _) => {
            enc.truncate(at);
            return Some(from);
        }
    };
    let head = GroupHead {
        node,
        part: part.map(|(a, b)| (a.to_be_bytes(), b.to_be_bytes())),
        count,
    };
    let mut buf = [0u8; LISTING_HEAD_MAX];
    let n = write_group_head(&head, flagged, &mut buf).unwrap_or(0);
    enc.fill(at, LISTING_HEAD_MAX, buf.get(..n).unwrap_or(&[]));
    match (complete, last) {
        (true, _) => None,
        (false, l) => l.and_then(|l| l.checked_add(1)),
    }
}

/// Appends entries while they fit; true when all were written. An entry too large for even an empty
/// datagram is skipped and counted.
pub(super) fn write_entries(
    now: Instant,
    replica: &dyn Replica,
    enc: &mut Encoder<'_>,
    start: usize,
    hashes: &mut Vec<u64, HASHES_PER_TASK>,
    stats: &mut SyncStats,
) -> bool {
    // From the back: the order of entries does not matter, and nothing shifts.
    while let Some(&h) = hashes.last() {
        match replica.encode_entry(now, h, enc) {
            Encoded::Written => stats.entries_sent = stats.entries_sent.saturating_add(1),
            Encoded::Missing => {}
            Encoded::NoRoom if enc.len() == start => {
                stats.dropped = stats.dropped.saturating_add(1)
            }
            Encoded::NoRoom => return false,
        }
        hashes.pop();
    }
    true
}
