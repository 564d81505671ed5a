//! Comparing a peer's listing with our entries: what to push, and what to fetch by position.

use super::replica::{OursFrom, Replica};
use super::{group_range, Engine, Work, FETCH_BYTES, HASHES_PER_TASK};
use crate::wire::{
    check_byte, short_hash, GroupHead, Summaries, TreeId, BITMAP_BYTES, LISTING_HEAD_MAX,
};
use crate::Version;
use core::cmp::Ordering;
use core::net::SocketAddr;
use heapless::Vec;

/// Entries to push and to fetch, gathered while comparing a listing: pushes in tasks of
/// [`HASHES_PER_TASK`], fetches as one bitmap per listing group.
pub(super) struct Plan {
    to: SocketAddr,
    tree: TreeId,
    send: Vec<u64, HASHES_PER_TASK>,
    fetch: Vec<u8, FETCH_BYTES>,
    /// Positions wanted in the listing group being compared.
    bits: [u8; BITMAP_BYTES],
    /// Whether anything was planned for fetching: the peer is ahead.
    pub(super) pulled: bool,
}

impl Plan {
    pub(super) fn new(to: SocketAddr, tree: TreeId) -> Self {
        Plan {
            to,
            tree,
            send: Vec::new(),
            fetch: Vec::new(),
            bits: [0; BITMAP_BYTES],
            pulled: false,
        }
    }

    /// Plans to send `hash`; false once the engine's queue is full (the rest waits for the next
    /// exchange).
    pub(super) fn push<const T: usize>(&mut self, engine: &mut Engine<T>, hash: u64) -> bool {
        let (to, tree) = (self.to, self.tree);
        if self.send.is_full()
            && !engine.enqueue(
                to,
                tree,
                Work::Send {
                    hashes: core::mem::take(&mut self.send),
                },
            )
        {
            return false;
        }
        let _ = self.send.push(hash);
        true
    }

    /// Merges the peer's summaries of one listing group with our entries of its range; false if
    /// the queue filled up. When a short hash repeats on either side (two keys share it), or the
    /// check bytes of equal short hashes differ (two keys, one on each side), versions are not
    /// compared: both entries travel, so nothing is missed. So too for an unchecked group of a table
    /// whose versions do not tell keys apart (only a faulty peer sends one).
    ///
    /// Both sides are in short-hash order, so a repeat sits next to its twin: it is seen from the
    /// neighbours of each equal pair, and the walk stops once the queue is full, however many of our
    /// entries the group's range holds.
    pub(super) fn compare<const T: usize>(
        &mut self,
        engine: &mut Engine<T>,
        replica: &dyn Replica,
        (head, salt): (&GroupHead, u32),
        theirs: Summaries<'_>,
    ) -> bool {
        let shape = replica.tree().shape();
        let level = shape.level(head.node).unwrap_or(0);
        let Some((lo, hi)) = group_range(shape, head.node, head.part) else {
            return true;
        };
        let (width, unique) = (theirs.width(), replica.versions_unique());
        let short = |(h, v): (u64, Version)| (short_hash(h, level, width), h, v);
        let mut ours = OursFrom {
            replica,
            next: Some(lo),
            hi,
        };
        self.bits = [0; BITMAP_BYTES];
        let mut theirs = theirs.enumerate();
        let (mut o, mut t) = (ours.next().map(short), theirs.next());
        let (mut our_last, mut their_last) = (None, None);
        loop {
            let ord = match (o, t) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((os, ..)), Some((_, ts))) => os.cmp(&ts.short),
            };
            let (push, pull) = match (ord, o, t) {
                (Ordering::Equal, Some((s, h, v)), Some((_, ts))) => {
                    let two = our_last == Some(s)
                        || their_last == Some(s)
                        || ours.clone().next().is_some_and(|n| short(n).0 == s)
                        || theirs.clone().next().is_some_and(|(_, n)| n.short == s)
                        || match ts.check {
                            Some(c) => c != check_byte(h, salt),
                            None => !unique,
                        };
                    (two || v > ts.version, two || v < ts.version)
                }
                _ => (ord == Ordering::Less, ord == Ordering::Greater),
            };
            if let (true, Some((_, h, _))) = (push, o) {
                if !self.push(engine, h) {
                    return false;
                }
            }
            if let (true, Some((i, _))) = (pull, t) {
                self.pull(engine, i);
            }
            if ord != Ordering::Greater {
                our_last = o.map(|(s, ..)| s);
                o = ours.next().map(short);
            }
            if ord != Ordering::Less {
                their_last = t.map(|(_, ts)| ts.short);
                t = theirs.next();
            }
        }
        self.want(engine, head)
    }

    /// Adds the positions marked in `bits` as a fetch group, if any.
    fn want<const T: usize>(&mut self, engine: &mut Engine<T>, head: &GroupHead) -> bool {
        if self.bits.iter().all(|&b| b == 0) {
            return true;
        }
        let mut buf = [0u8; LISTING_HEAD_MAX];
        let Some(h) = head.write(&mut buf).and_then(|n| buf.get(..n)) else {
            return true;
        };
        let bits = self
            .bits
            .get(..usize::from(head.count).div_ceil(8))
            .unwrap_or(&[]);
        if self
            .fetch
            .len()
            .saturating_add(h.len())
            .saturating_add(bits.len())
            > FETCH_BYTES
        {
            let groups = core::mem::take(&mut self.fetch);
            if !engine.enqueue(self.to, self.tree, Work::Fetch { groups }) {
                return false;
            }
        }
        let _ = self.fetch.extend_from_slice(h);
        let _ = self.fetch.extend_from_slice(bits);
        true
    }

    /// Marks position `i` of the group being compared as wanted.
    fn pull<const T: usize>(&mut self, engine: &mut Engine<T>, i: usize) {
        engine.stats.wanted = engine.stats.wanted.saturating_add(1);
        self.pulled = true;
        if let Some(b) = self.bits.get_mut(i / 8) {
            *b |= 1 << (i % 8);
        }
    }

    pub(super) fn flush<const T: usize>(self, engine: &mut Engine<T>) {
        if !self.fetch.is_empty() {
            engine.enqueue(self.to, self.tree, Work::Fetch { groups: self.fetch });
        }
        if !self.send.is_empty() {
            engine.enqueue(self.to, self.tree, Work::Send { hashes: self.send });
        }
    }
}
