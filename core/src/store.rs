//! Storage backends: tables keyed by 64-bit key hash, and byte buffers for keys and values.
//!
//! Every replicated table in tidings is a [`Table`] keyed by the keyed hash of its key, which is also
//! how entries are named on the wire. Two backends ship with the crate:
//! - [`HeaplessTable`]: fixed capacity chosen by a const generic, no allocator (microcontrollers);
//! - `HashTable` (feature `alloc`): hashbrown plus an ordered index, for
//!   servers with millions of entries, optionally capped.
//!
//! A full table refuses new entries with [`Full`]; it never grows past its bound.

use heapless::index_map::FnvIndexMap;

/// The table refused a new entry because it is at capacity; the value is handed back unchanged.
#[derive(Debug, PartialEq, Eq)]
pub struct Full<V>(pub V);

/// A map from 64-bit key hash to `Self::Value`, with ordered range walks for tree leaf listings.
pub trait Table {
    /// What the table stores per key hash.
    type Value;

    /// The value stored under `hash`.
    fn get(&self, hash: u64) -> Option<&Self::Value>;
    /// The value stored under `hash`, mutable.
    fn get_mut(&mut self, hash: u64) -> Option<&mut Self::Value>;
    /// Stores `value` under `hash`, returning the value it replaced. A new hash in a full table is
    /// refused and `value` is handed back.
    fn insert(
        &mut self,
        hash: u64,
        value: Self::Value,
    ) -> Result<Option<Self::Value>, Full<Self::Value>>;
    /// Removes and returns the value under `hash`.
    fn remove(&mut self, hash: u64) -> Option<Self::Value>;
    /// Number of entries.
    fn len(&self) -> usize;
    /// Whether the table is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The most entries the table will hold.
    fn capacity(&self) -> usize;
    /// The entry with the smallest hash in `from..=to`.
    fn first_in(&self, from: u64, to: u64) -> Option<(u64, &Self::Value)>;
    /// The entry at position `i` of an order that holds until the next change (`None` past the end):
    /// for picking members uniformly at random. Backends override the O(n) default.
    fn nth(&self, i: usize) -> Option<(u64, &Self::Value)> {
        self.iter().nth(i)
    }
    /// Every entry, in no particular order.
    fn iter(&self) -> impl Iterator<Item = (u64, &Self::Value)> + '_;
    /// Keeps the entries for which `keep` returns true.
    fn retain(&mut self, keep: impl FnMut(u64, &mut Self::Value) -> bool);
}

/// Owned bytes of bounded length: keys and values in a table.
pub trait ByteBuf: core::ops::Deref<Target = [u8]> + Sized {
    /// The most bytes it holds.
    const CAPACITY: usize;
    /// A copy of `bytes`, or `None` if they do not fit this buffer.
    fn from_slice(bytes: &[u8]) -> Option<Self>;
}

impl<const N: usize> ByteBuf for heapless::Vec<u8, N> {
    const CAPACITY: usize = N;
    fn from_slice(bytes: &[u8]) -> Option<Self> {
        heapless::Vec::from_slice(bytes).ok()
    }
}

#[cfg(feature = "alloc")]
impl ByteBuf for alloc::vec::Vec<u8> {
    const CAPACITY: usize = usize::MAX;
    fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

/// A fixed-capacity table without an allocator. `N` must be a power of two.
pub struct HeaplessTable<V, const N: usize> {
    map: FnvIndexMap<u64, V, N>,
}

impl<V, const N: usize> Default for HeaplessTable<V, N> {
    fn default() -> Self {
        HeaplessTable {
            map: FnvIndexMap::new(),
        }
    }
}

impl<V, const N: usize> HeaplessTable<V, N> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<V, const N: usize> Table for HeaplessTable<V, N> {
    type Value = V;

    fn get(&self, hash: u64) -> Option<&V> {
        self.map.get(&hash)
    }
    fn get_mut(&mut self, hash: u64) -> Option<&mut V> {
        self.map.get_mut(&hash)
    }
    fn insert(&mut self, hash: u64, value: V) -> Result<Option<V>, Full<V>> {
        self.map.insert(hash, value).map_err(|(_, v)| Full(v))
    }
    fn remove(&mut self, hash: u64) -> Option<V> {
        self.map.swap_remove(&hash)
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn capacity(&self) -> usize {
        N
    }
    fn first_in(&self, from: u64, to: u64) -> Option<(u64, &V)> {
        // A linear scan: heapless tables are small, and this keeps inserts O(1).
        self.map
            .iter()
            .filter(|(&h, _)| from <= h && h <= to)
            .min_by_key(|(&h, _)| h)
            .map(|(&h, v)| (h, v))
    }
    fn nth(&self, i: usize) -> Option<(u64, &V)> {
        self.map.get_index(i).map(|(&h, v)| (h, v))
    }
    fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        self.map.iter().map(|(&h, v)| (h, v))
    }
    fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        self.map.retain(|&h, v| keep(h, v));
    }
}

#[cfg(feature = "alloc")]
pub use self::hashed::HashTable;

#[cfg(feature = "alloc")]
mod hashed {
    use super::{Full, Table};
    use alloc::collections::BTreeSet;
    use alloc::vec::Vec;

    /// A table for servers: entries in a dense vector (so [`Table::nth`] is O(1)), a hashbrown index
    /// from hash to position, and an ordered set of hashes for range walks. Capped at `limit` entries
    /// (unbounded by default).
    pub struct HashTable<V> {
        entries: Vec<(u64, V)>,
        index: hashbrown::HashMap<u64, usize>,
        order: BTreeSet<u64>,
        limit: usize,
    }

    impl<V> Default for HashTable<V> {
        fn default() -> Self {
            Self::with_limit(usize::MAX)
        }
    }

    impl<V> HashTable<V> {
        /// An empty table holding at most `limit` entries.
        pub fn with_limit(limit: usize) -> Self {
            HashTable {
                entries: Vec::new(),
                index: hashbrown::HashMap::new(),
                order: BTreeSet::new(),
                limit,
            }
        }

        /// Reserves room for `additional` more entries.
        pub fn reserve(&mut self, additional: usize) {
            self.entries.reserve(additional);
            self.index.reserve(additional);
        }

        fn slot(&self, hash: u64) -> Option<usize> {
            self.index.get(&hash).copied()
        }

        /// Removes the entry at `i`, moving the last entry into its place.
        fn take(&mut self, i: usize) -> Option<(u64, V)> {
            if i >= self.entries.len() {
                return None;
            }
            let (hash, v) = self.entries.swap_remove(i);
            self.index.remove(&hash);
            self.order.remove(&hash);
            if let Some(&(moved, _)) = self.entries.get(i) {
                self.index.insert(moved, i);
            }
            Some((hash, v))
        }
    }

    impl<V> Table for HashTable<V> {
        type Value = V;

        fn get(&self, hash: u64) -> Option<&V> {
            self.entries.get(self.slot(hash)?).map(|e| &e.1)
        }
        fn get_mut(&mut self, hash: u64) -> Option<&mut V> {
            let i = self.slot(hash)?;
            self.entries.get_mut(i).map(|e| &mut e.1)
        }
        fn insert(&mut self, hash: u64, value: V) -> Result<Option<V>, Full<V>> {
            if let Some(slot) = self.get_mut(hash) {
                return Ok(Some(core::mem::replace(slot, value)));
            }
            if self.entries.len() >= self.limit {
                return Err(Full(value));
            }
            self.index.insert(hash, self.entries.len());
            self.entries.push((hash, value));
            self.order.insert(hash);
            Ok(None)
        }
        fn remove(&mut self, hash: u64) -> Option<V> {
            let i = self.slot(hash)?;
            self.take(i).map(|e| e.1)
        }
        fn len(&self) -> usize {
            self.entries.len()
        }
        fn capacity(&self) -> usize {
            self.limit
        }
        fn first_in(&self, from: u64, to: u64) -> Option<(u64, &V)> {
            if from > to {
                return None;
            }
            let &h = self.order.range(from..=to).next()?;
            self.get(h).map(|v| (h, v))
        }
        fn nth(&self, i: usize) -> Option<(u64, &V)> {
            self.entries.get(i).map(|(h, v)| (*h, v))
        }
        fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
            self.entries.iter().map(|(h, v)| (*h, v))
        }
        fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
            let mut i = 0;
            while let Some((h, v)) = self.entries.get_mut(i) {
                if keep(*h, v) {
                    i = i.saturating_add(1);
                } else {
                    self.take(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise<T: Table<Value = u32>>(t: &mut T) {
        assert_eq!(t.insert(30, 3), Ok(None));
        assert_eq!(t.insert(10, 1), Ok(None));
        assert_eq!(t.insert(20, 2), Ok(None));
        assert_eq!(t.insert(20, 22), Ok(Some(2)));
        assert_eq!(t.insert(40, 4), Err(Full(4)));
        assert_eq!(t.len(), 4);
        assert_eq!(t.first_in(0, u64::MAX), Some((10, &1)));
        assert_eq!(t.first_in(11, 30), Some((20, &22)));
        assert_eq!(t.first_in(31, 98), None);
        assert_eq!(t.first_in(31, 30), None);
        assert_eq!(t.first_in(31, u64::MAX), Some((99, &9)));
        t.retain(|h, _| h != 10);
        assert_eq!(t.first_in(0, 25), Some((20, &22)));
        assert_eq!(t.remove(20), Some(22));
        assert_eq!(t.get(30), Some(&3));
        assert_eq!(t.len(), 2);
        let mut all: std::vec::Vec<_> = (0..3).filter_map(|i| t.nth(i)).collect();
        all.sort();
        assert_eq!(all, [(30, &3), (99, &9)]);
        assert_eq!(t.get(99), Some(&9), "positions stay right after removals");
    }

    #[test]
    fn heapless_table_is_bounded_and_ordered() {
        let mut t = HeaplessTable::<u32, 4>::new();
        t.insert(99, 9).unwrap();
        exercise(&mut t);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn hash_table_is_bounded_and_ordered() {
        let mut t = HashTable::with_limit(4);
        t.insert(99, 9).unwrap();
        exercise(&mut t);
    }
}
