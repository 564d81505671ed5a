//! The sketch round of an exchange: a differing root answered with the table's sketch, decoded by
//! the exchange's initiator into the exact keys that differ.
//!
//! 1. A's root says A decodes sketches. B, whose root differs, answers with its sketch instead of
//!    describing its root, unless the entry counts already differ by more than the capacity.
//! 2. A XORs it with its own sketch and decodes the difference: every differing key hash, and the
//!    XOR of the two sides' weights there. With its own entry's weight, A knows B's, hence which
//!    side is newer: A pushes what it has newer at once, as `Entries`, and asks for the rest with
//!    a `Want` of key hashes, which B answers with `Entries`. Two round trips, values included.
//! 3. When the difference does not decode (more keys differ than the capacity), A describes its
//!    own root and the drill-down takes over: one message more than without a sketch.

use super::plan::Plan;
use super::{describe, Engine, Handled, SyncError, Work};
use crate::sketch::{
    decode, odd_prefix, weight, weight_major, Difference, MAX_CAPACITY, MAX_SYNDROMES,
};
use crate::sync::Replica;
use crate::wire::{Encoder, RootMsg, TreeId, Words};
use core::cmp::Ordering;
use core::net::SocketAddr;
use heapless::Vec;

/// Whether to answer `m`, a root that differs from ours, with our sketch: the peer decodes them,
/// we keep one, and the counts leave the difference within its capacity.
pub(super) fn answers_with_sketch(m: &RootMsg, replica: &dyn Replica) -> bool {
    let view = replica.tree();
    let ours = view.sketch();
    let capacity = crate::sketch::capacity_of(ours.len()) as u64;
    m.sketch && !ours.is_empty() && m.count.abs_diff(view.count()) <= capacity
}

/// Appends as many of our syndromes as fit, an odd number: a prefix of a sketch is a sketch of
/// smaller capacity. False if not even one fits.
pub(super) fn write_sketch(replica: &dyn Replica, enc: &mut Encoder<'_>) -> bool {
    let ours = replica.tree().sketch();
    let fit = (enc.remaining() / 8).min(ours.len());
    let n = odd_prefix(fit);
    if n == 0 {
        return false;
    }
    ours.iter().take(n).all(|s| enc.push_raw(&s.to_le_bytes()))
}

/// Key hashes a want task names: one decoded sketch's worth.
pub(super) type Wanted = Vec<u64, MAX_CAPACITY>;

impl<const TASKS: usize> Engine<TASKS> {
    /// A peer's sketch, answering our root: decode the difference and settle it, or fall back to
    /// the drill-down.
    pub(super) fn sketch(
        &mut self,
        from: SocketAddr,
        tree: TreeId,
        theirs: Words<'_>,
        replica: &dyn Replica,
    ) -> Result<Handled, SyncError> {
        let ours = replica.tree().sketch();
        let mut diff = [0u64; MAX_SYNDROMES];
        for ((d, o), t) in diff.iter_mut().zip(ours).zip(theirs.le()) {
            *d = o ^ t;
        }
        // Sketches of different capacities share their first syndromes.
        let n = odd_prefix(ours.len().min(theirs.len()).min(MAX_SYNDROMES));
        let mut out = [Difference::default(); MAX_CAPACITY];
        let seed = u64::from(self.salt);
        let decoded = diff
            .get(..n)
            .filter(|_| n > 0)
            .map(|d| decode(d, seed, &mut out));
        let mut handled = Handled {
            described: true,
            ..Handled::default()
        };
        match decoded {
            // Zero differences with differing roots: an entry the sketch cannot see (key hash 0,
            // or weights that coincide). The drill-down finds it.
            Some(Ok(found)) if found > 0 => {
                self.stats.sketches_decoded = self.stats.sketches_decoded.saturating_add(1);
                let differences = out.get(..found).unwrap_or(&[]);
                handled.behind = self.settle(from, tree, differences, replica);
            }
            _ => {
                self.stats.sketches_failed = self.stats.sketches_failed.saturating_add(1);
                self.enqueue(from, tree, describe(0, 1, false));
            }
        }
        Ok(handled)
    }

    /// Pushes what we have newer and wants what the peer has newer. Whether we want anything.
    fn settle(
        &mut self,
        from: SocketAddr,
        tree: TreeId,
        differences: &[Difference],
        replica: &dyn Replica,
    ) -> bool {
        let mut plan = Plan::new(from, tree);
        let mut wanted = Wanted::new();
        for d in differences {
            let (push, want) = match replica.first_in(d.position, d.position) {
                Some((_, v)) if d.delta == weight(v) => (true, false),
                Some((_, v)) => {
                    let (ours, theirs) = (weight(v), d.delta ^ weight(v));
                    match weight_major(theirs).cmp(&weight_major(ours)) {
                        Ordering::Greater => (false, true),
                        Ordering::Less => (true, false),
                        // Same major: which is newer is not known here; both travel and the
                        // newest wins on each side.
                        Ordering::Equal => (true, true),
                    }
                }
                None => (false, true),
            };
            if push && !plan.push(self, d.position) {
                break;
            }
            if want {
                let _ = wanted.push(d.position);
            }
        }
        plan.flush(self);
        let behind = !wanted.is_empty();
        if behind {
            self.stats.wanted = self.stats.wanted.saturating_add(wanted.len() as u64);
            self.enqueue(from, tree, Work::Want { hashes: wanted });
        }
        behind
    }

    /// A peer's want: the entries under the key hashes it names.
    pub(super) fn want(&mut self, from: SocketAddr, tree: TreeId, hashes: Words<'_>) {
        let mut plan = Plan::new(from, tree);
        for h in hashes.be() {
            if !plan.push(self, h) {
                return;
            }
        }
        plan.flush(self);
    }
}
