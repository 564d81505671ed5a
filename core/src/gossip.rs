//! Dissemination: the bounded queue of recent changes that ride on every outgoing datagram.
//!
//! Each change is named by its table and key hash, not copied: when it is sent, its table's current
//! state is encoded, so a change that was superseded goes out as the newer one. A change is sent
//! `retransmit_mult * ceil(log10(n + 1))` times, freshest first; when the queue is full, the change
//! closest to done gives way.

use crate::wire::TreeId;
use heapless::Vec;

/// `mult * ceil(log10(n + 1))`: how often each change is piggybacked in a cluster of `n`.
pub(crate) fn retransmit_limit(mult: u32, n: usize) -> u8 {
    let mut digits = 0u32;
    let mut rest = n;
    while rest > 0 {
        digits = digits.saturating_add(1);
        rest /= 10;
    }
    u8::try_from(mult.saturating_mul(digits)).unwrap_or(u8::MAX)
}

/// What writing one change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Written into the datagram.
    Written,
    /// Its table no longer holds it.
    Gone,
    /// No room left in the datagram.
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rumor {
    tree: TreeId,
    hash: u64,
    left: u8,
}

/// Counters of the gossip queue: the changes piggybacked on outgoing datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GossipStats {
    /// Changes queued.
    pub queued: u64,
    /// Changes that gave way to fresher ones in a full queue (anti-entropy still delivers them).
    pub evicted: u64,
    /// Piggybacked copies sent.
    pub sent: u64,
}

/// Up to `N` changes waiting to be piggybacked.
#[derive(Default)]
pub(crate) struct Broadcasts<const N: usize> {
    rumors: Vec<Rumor, N>,
    stats: GossipStats,
}

impl<const N: usize> Broadcasts<N> {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Broadcasts {
            rumors: Vec::new(),
            stats: GossipStats::default(),
        }
    }

    /// Whether there is news to send.
    pub(crate) fn is_empty(&self) -> bool {
        self.rumors.is_empty()
    }

    /// Changes queued.
    pub(crate) fn len(&self) -> usize {
        self.rumors.len()
    }

    /// The counters.
    pub(crate) fn stats(&self) -> &GossipStats {
        &self.stats
    }

    /// Queues the change of `hash` in `tree`, to be sent `transmits` times (restarting the count if it
    /// was queued already). When the queue is full, the change closest to done gives way, or the new
    /// one if none is closer: returns the table of the change that gave way before its budget was
    /// spent (counted in `evicted`), so the caller can make up for it.
    pub(crate) fn push(&mut self, tree: TreeId, hash: u64, transmits: u8) -> Option<TreeId> {
        if transmits == 0 {
            return None;
        }
        self.stats.queued = self.stats.queued.saturating_add(1);
        let rumor = Rumor {
            tree,
            hash,
            left: transmits,
        };
        if let Some(r) = self
            .rumors
            .iter_mut()
            .find(|r| r.tree == tree && r.hash == hash)
        {
            *r = rumor;
            return None;
        }
        let rumor = self.rumors.push(rumor).err()?;
        self.stats.evicted = self.stats.evicted.saturating_add(1);
        let weakest = self.rumors.iter_mut().min_by_key(|r| r.left);
        match weakest.filter(|w| w.left < rumor.left) {
            Some(w) => Some(core::mem::replace(w, rumor).tree),
            None => Some(rumor.tree),
        }
    }

    /// Offers queued changes, freshest first, to `write` until it reports the datagram full; returns
    /// how many were written.
    pub(crate) fn fill(&mut self, mut write: impl FnMut(TreeId, u64) -> Fill) -> usize {
        // Freshest first. An insertion sort: the queue is short and nearly sorted between calls,
        // and it keeps a general-purpose sort out of small firmware.
        for i in 1..self.rumors.len() {
            let mut j = i;
            while let Some(prev) = j.checked_sub(1) {
                let (Some(a), Some(b)) = (self.rumors.get(prev), self.rumors.get(j)) else {
                    break;
                };
                if a.left >= b.left {
                    break;
                }
                self.rumors.swap(prev, j);
                j = prev;
            }
        }
        let mut written = 0usize;
        for r in self.rumors.iter_mut() {
            match write(r.tree, r.hash) {
                Fill::Written => {
                    r.left = r.left.saturating_sub(1);
                    written = written.saturating_add(1);
                }
                Fill::Gone => r.left = 0,
                Fill::Full => break,
            }
        }
        self.stats.sent = self.stats.sent.saturating_add(written as u64);
        self.rumors.retain(|r| r.left > 0);
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_grow_with_log_n() {
        assert_eq!(retransmit_limit(4, 0), 0);
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 1000), 16);
        assert_eq!(retransmit_limit(4, 10_000), 20);
        assert_eq!(retransmit_limit(200, 1000), u8::MAX);
    }

    #[test]
    fn a_full_queue_says_which_table_gave_way() {
        let mut q: Broadcasts<2> = Broadcasts::new();
        assert_eq!(q.push(TreeId::MEMBERS, 1, 2), None);
        assert_eq!(q.push(TreeId::DATA, 2, 4), None);
        // Full: the member change, closest to done, gives way to a fresher data change.
        assert_eq!(q.push(TreeId::DATA, 3, 4), Some(TreeId::MEMBERS));
        // Nothing closer to done than the newcomer: the newcomer itself gives way.
        assert_eq!(q.push(TreeId::DATA, 4, 1), Some(TreeId::DATA));
        assert_eq!(q.stats().evicted, 2);
        // A change already queued only restarts its count.
        assert_eq!(q.push(TreeId::DATA, 3, 4), None);
    }

    #[test]
    fn each_change_goes_out_its_count_then_leaves() {
        let mut q: Broadcasts<4> = Broadcasts::new();
        q.push(TreeId::DATA, 1, 2);
        q.push(TreeId::MEMBERS, 1, 3);
        let mut sent = std::vec::Vec::new();
        for _ in 0..5 {
            q.fill(|t, h| {
                sent.push((t, h));
                Fill::Written
            });
        }
        assert_eq!(sent.iter().filter(|s| **s == (TreeId::DATA, 1)).count(), 2);
        assert_eq!(
            sent.iter().filter(|s| **s == (TreeId::MEMBERS, 1)).count(),
            3
        );
        assert!(q.is_empty());
    }

    #[test]
    fn freshest_first_and_a_full_datagram_stops_the_fill() {
        let mut q: Broadcasts<4> = Broadcasts::new();
        q.push(TreeId::DATA, 1, 1);
        q.push(TreeId::DATA, 2, 9);
        let mut first = None;
        q.fill(|_, h| {
            first.get_or_insert(h);
            Fill::Full
        });
        assert_eq!(first, Some(2));
        assert_eq!(q.len(), 2);
        q.fill(|_, h| if h == 2 { Fill::Gone } else { Fill::Written });
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_queue_keeps_the_freshest() {
        let mut q: Broadcasts<2> = Broadcasts::new();
        q.push(TreeId::DATA, 1, 1);
        q.push(TreeId::DATA, 2, 5);
        q.push(TreeId::DATA, 3, 5);
        q.push(TreeId::DATA, 4, 1);
        let mut got = std::vec::Vec::new();
        q.fill(|_, h| {
            got.push(h);
            Fill::Written
        });
        got.sort();
        assert_eq!(got, [2, 3]);
        assert_eq!(q.stats().evicted, 2);
    }
}
