//! Compact node storage for simulating thousands of nodes in one process.
//!
//! A simulated cluster of n nodes holds n² member records: 100 million at 10,000 nodes. The server
//! backend ([`tidings::node::AllocStorage`]) spends a hash slot plus an ordered index on each; here a
//! record is one element of a vector sorted by key hash, reserved up front, so 10,000 nodes fit in
//! about 11 GB. Lookups are binary searches; inserts in hash order append.

use tidings::config::Config;
use tidings::data::Record;
use tidings::members::Member;
use tidings::node::Storage;
use tidings::store::{Full, Table};
use tidings::tree::Shape;

/// A table kept as a vector sorted by key hash, holding at most `limit` entries.
pub struct SortedTable<V> {
    entries: Vec<(u64, V)>,
    limit: usize,
}

impl<V> SortedTable<V> {
    /// An empty table that holds at most `limit` entries, with room reserved for `reserve`.
    pub fn new(limit: usize, reserve: usize) -> Self {
        SortedTable {
            entries: Vec::with_capacity(reserve.min(limit)),
            limit,
        }
    }

    fn find(&self, hash: u64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&hash, |e| e.0)
    }
}

impl<V> Table for SortedTable<V> {
    type Value = V;

    fn get(&self, hash: u64) -> Option<&V> {
        self.find(hash).ok().map(|i| &self.entries[i].1)
    }
    fn get_mut(&mut self, hash: u64) -> Option<&mut V> {
        let i = self.find(hash).ok()?;
        Some(&mut self.entries[i].1)
    }
    fn insert(&mut self, hash: u64, value: V) -> Result<Option<V>, Full<V>> {
        match self.find(hash) {
            Ok(i) => Ok(Some(std::mem::replace(&mut self.entries[i].1, value))),
            Err(_) if self.entries.len() >= self.limit => Err(Full(value)),
            Err(i) => {
                self.entries.insert(i, (hash, value));
                Ok(None)
            }
        }
    }
    fn remove(&mut self, hash: u64) -> Option<V> {
        let i = self.find(hash).ok()?;
        Some(self.entries.remove(i).1)
    }
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn capacity(&self) -> usize {
        self.limit
    }
    fn first_in(&self, from: u64, to: u64) -> Option<(u64, &V)> {
        let i = self.entries.partition_point(|e| e.0 < from);
        self.entries
            .get(i)
            .filter(|e| e.0 <= to)
            .map(|(h, v)| (*h, v))
    }
    fn nth(&self, i: usize) -> Option<(u64, &V)> {
        self.entries.get(i).map(|(h, v)| (*h, v))
    }
    fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        self.entries.iter().map(|(h, v)| (*h, v))
    }
    fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        self.entries.retain_mut(|(h, v)| keep(*h, v));
    }
}

/// Member metadata in the simulator: up to 8 bytes, inline.
pub type SimMeta = heapless::Vec<u8, 8>;

/// Storage of a simulated node: [`SortedTable`]s, member room reserved for `Config::max_members`.
pub struct SimStorage;

impl Storage for SimStorage {
    type Meta = SimMeta;
    type MemberTable = SortedTable<Member<SimMeta>>;
    type MemberTree = Vec<u64>;
    type Key = Vec<u8>;
    type Value = Vec<u8>;
    type DataTable = SortedTable<Record<Vec<u8>, Vec<u8>>>;
    type DataTree = Vec<u64>;

    fn members(config: &Config) -> (Self::MemberTable, Self::MemberTree) {
        let nodes = Shape::new(config.members_depth).map_or(1, |s| s.nodes());
        (
            SortedTable::new(config.max_members, config.max_members),
            vec![0; nodes],
        )
    }
    fn data(config: &Config) -> (Self::DataTable, Self::DataTree) {
        let nodes = Shape::new(config.data_depth).map_or(1, |s| s.nodes());
        (SortedTable::new(config.max_keys, 0), vec![0; nodes])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_an_ordered_bounded_map() {
        let mut t = SortedTable::new(3, 3);
        assert_eq!(t.insert(30, 'c').ok(), Some(None));
        assert_eq!(t.insert(10, 'a').ok(), Some(None));
        assert_eq!(t.insert(20, 'b').ok(), Some(None));
        assert!(t.insert(40, 'd').is_err(), "full");
        assert_eq!(t.insert(20, 'B').ok(), Some(Some('b')));
        assert_eq!(t.first_in(11, 30), Some((20, &'B')));
        assert_eq!(t.first_in(31, u64::MAX), None);
        assert_eq!(t.remove(10), Some('a'));
        t.retain(|h, _| h != 30);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(20, &'B')]);
        assert_eq!(t.get(20), Some(&'B'));
        assert_eq!(t.capacity(), 3);
    }
}
