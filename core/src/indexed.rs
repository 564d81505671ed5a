//! A table and its digest tree, kept in lockstep: the storage of every replicated table.

use crate::hash::EntryDigest;
use crate::store::{Full, Table};
use crate::tree::{Tree, TreeBuf};
use crate::Version;

/// What a replicated table stores per entry: its version and the digest it put in the tree.
pub(crate) trait Digested {
    /// The entry's version.
    fn version(&self) -> Version;
    /// The entry's digest, as inserted in the tree.
    fn digest(&self) -> EntryDigest;
}

/// A [`Table`] whose every change is mirrored in a digest [`Tree`].
pub(crate) struct Indexed<T, B> {
    table: T,
    tree: Tree<B>,
}

impl<T, B> Indexed<T, B>
where
    T: Table,
    T::Value: Digested,
    B: TreeBuf,
{
    /// An index over `table`, emptied, and `tree`.
    pub(crate) fn new(mut table: T, tree: Tree<B>) -> Self {
        table.retain(|_, _| false);
        Indexed { table, tree }
    }

    /// The table, read-only: writes go through the index so the tree stays current.
    pub(crate) fn table(&self) -> &T {
        &self.table
    }

    /// The digest tree.
    pub(crate) fn tree(&self) -> &Tree<B> {
        &self.tree
    }

    /// The entry under `hash`.
    pub(crate) fn get(&self, hash: u64) -> Option<&T::Value> {
        self.table.get(hash)
    }

    /// Stores `value` under `hash`, returning the entry it replaced.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        value: T::Value,
    ) -> Result<Option<T::Value>, Full<T::Value>> {
        let digest = value.digest();
        let version = value.version();
        let old = self.table.insert(hash, value)?;
        match &old {
            Some(o) => {
                self.tree.replace(hash, o.digest(), digest);
                self.sketch(hash, Some(o.version()), version);
            }
            None => {
                self.tree.insert(hash, digest);
                self.sketch(hash, None, version);
            }
        }
        Ok(old)
    }

    /// Removes the entry under `hash`.
    pub(crate) fn remove(&mut self, hash: u64) -> Option<T::Value> {
        let old = self.table.remove(hash)?;
        self.tree.remove(hash, old.digest());
        self.sketch(hash, None, old.version());
        Some(old)
    }

    /// Moves the sketch from `old` (if any) to `new` at `hash`; a no-op when the tree has none.
    fn sketch(&mut self, hash: u64, old: Option<Version>, new: Version) {
        #[cfg(feature = "sketch")]
        if self.tree.has_sketch() {
            let w = old.map_or(0, crate::sketch::weight) ^ crate::sketch::weight(new);
            self.tree.sketch_add(hash, w);
        }
        #[cfg(not(feature = "sketch"))]
        let _ = (hash, old, new);
    }

    /// Keeps the entries for which `keep` returns true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64, &T::Value) -> bool) {
        let tree = &mut self.tree;
        self.table.retain(|hash, v| {
            let k = keep(hash, v);
            if !k {
                tree.remove(hash, v.digest());
                #[cfg(feature = "sketch")]
                if tree.has_sketch() {
                    tree.sketch_add(hash, crate::sketch::weight(v.version()));
                }
            }
            k
        });
    }

    /// The entry with the smallest hash in `from..=to`, with its version.
    pub(crate) fn first_in(&self, from: u64, to: u64) -> Option<(u64, Version)> {
        self.table.first_in(from, to).map(|(h, v)| (h, v.version()))
    }
}

/// Walks a run of postcard-encoded entries of type `E`, calling `f` on each; stops at the first that
/// does not decode and reports it.
pub(crate) fn each_entry<'a, E, X>(
    bytes: &'a [u8],
    mut f: impl FnMut(E) -> Result<(), X>,
    malformed: X,
) -> Result<usize, X>
where
    E: serde::Deserialize<'a>,
{
    let mut rest = bytes;
    let mut n = 0usize;
    while !rest.is_empty() {
        let Ok((e, after)) = postcard::take_from_bytes::<E>(rest) else {
            return Err(malformed);
        };
        f(e)?;
        rest = after;
        n = n.saturating_add(1);
    }
    Ok(n)
}
