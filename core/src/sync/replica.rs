//! What the engine reconciles: the [`Replica`] trait, and the outcomes of encoding and merging
//! entries.

use crate::tree::TreeView;
use crate::wire::Encoder;
use crate::{Instant, Version};

/// A replicated table the engine can reconcile.
///
/// The engine takes replicas as trait objects (`&dyn Replica`): its code exists once, however many
/// table types a node holds, which matters in a microcontroller's flash.
pub trait Replica {
    /// The table's digest tree, kept current on every change ([`crate::tree::Tree::view`]).
    fn tree(&self) -> TreeView<'_>;
    /// The entry with the smallest key hash in `from..=to`.
    fn first_in(&self, from: u64, to: u64) -> Option<(u64, Version)>;
    /// Appends the entry under `hash` to `enc`, as of `now`.
    fn encode_entry(&self, now: Instant, hash: u64, enc: &mut Encoder<'_>) -> Encoded;
    /// Checks a run of encoded entries without applying any: the number of entries, or why the run
    /// must be refused as a whole.
    fn check_entries(&self, bytes: &[u8]) -> Result<usize, EntryError>
    where
        Self: Sized;
    /// Applies a run that [`Replica::check_entries`] accepted; newest wins per entry.
    ///
    /// Neither method is called through `dyn Replica`: a node that merges entries itself (to report
    /// each change) leaves them out of its firmware.
    fn merge_entries(&mut self, now: Instant, bytes: &[u8]) -> Merged
    where
        Self: Sized;
    /// Whether no two entries ever share a version, as in key-value data where a version names one
    /// write. Listings of other tables carry a check byte beside each short key hash: there, two
    /// keys that share a short hash may also share a version, and only the check byte (salted anew
    /// in every message) tells them apart.
    fn versions_unique(&self) -> bool {
        false
    }
}

/// What [`Replica::encode_entry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoded {
    /// The entry was appended.
    Written,
    /// There is no entry under that hash (any more).
    Missing,
    /// The entry does not fit in the room left.
    NoRoom,
}

/// Why a run of entries was refused. Nothing of the run was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EntryError {
    /// An entry does not decode.
    Malformed,
    /// A key longer than this replica accepts.
    KeyTooLong,
    /// A value longer than this replica accepts.
    ValueTooLong,
    /// A version implausibly far ahead of ours.
    VersionTooFar,
}

/// The outcome of merging a run of entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Entries that were newer and replaced or added to ours.
    pub applied: u32,
    /// Entries no newer than ours, ignored.
    pub stale: u32,
    /// New entries refused because the table is full.
    pub full: u32,
}

/// How one merged entry counts in [`Merged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Newer, and applied.
    Applied,
    /// Not newer, or refused as invalid.
    Stale,
    /// New, and refused because the table is full.
    Full,
}

impl Merged {
    /// Merges every entry of a checked run with `merge`, counting the outcomes.
    pub fn run<'a, E: serde::Deserialize<'a>>(
        bytes: &'a [u8],
        mut merge: impl FnMut(E) -> Tally,
    ) -> Merged {
        let mut out = Merged::default();
        let _ = crate::indexed::each_entry(
            bytes,
            |e: E| {
                let n = match merge(e) {
                    Tally::Applied => &mut out.applied,
                    Tally::Stale => &mut out.stale,
                    Tally::Full => &mut out.full,
                };
                *n = n.saturating_add(1);
                Ok::<(), ()>(())
            },
            (),
        );
        out
    }
}

/// Our entries in a hash range, ascending.
#[derive(Clone)]
pub(super) struct OursFrom<'r> {
    pub(super) replica: &'r dyn Replica,
    pub(super) next: Option<u64>,
    pub(super) hi: u64,
}

impl Iterator for OursFrom<'_> {
    type Item = (u64, Version);
    fn next(&mut self) -> Option<(u64, Version)> {
        let from = self.next.filter(|&n| n <= self.hi)?;
        let (h, v) = self.replica.first_in(from, self.hi)?;
        self.next = h.checked_add(1);
        Some((h, v))
    }
}
