//! The digest tree: a fixed-shape 16-ary tree over key-hash buckets.
//!
//! Every entry lands in the leaf named by the top `4 * depth` bits of its key hash. A node's digest is the
//! XOR of the 64-bit digests of all entries below it, so adding, removing or re-versioning an entry
//! touches exactly one node per level (`depth + 1` XORs) and nothing is ever rebuilt. The root is 32 bytes:
//! SHA-256 over a 128-bit XOR accumulator of every entry, the entry count and the shape.
//!
//! Nodes are numbered breadth-first: the root is 0, its children 1..=16, theirs 17..=272, and so on.
//!
//! ```
//! use tidings::{tree::Tree, DigestKey, Version, ClusterId};
//! let key = DigestKey::from_cluster(ClusterId(*b"demo"));
//! let mut a = Tree::new([0u64; tidings::tree::tree_size(2)]).unwrap();
//! let mut b = Tree::new([0u64; tidings::tree::tree_size(2)]).unwrap();
//! let h = key.key_hash(1, b"k");
//! a.insert(h, key.entry_digest(h, Version::new(1, 1, 0)));
//! assert_ne!(a.root(), b.root());
//! b.insert(h, key.entry_digest(h, Version::new(1, 1, 0)));
//! assert_eq!(a.root(), b.root());
//! ```

use crate::hash::EntryDigest;
use sha2::{Digest, Sha256};

/// Children per inner node.
pub const FANOUT: usize = 16;
pub(crate) const BITS: u32 = 4;
/// The deepest tree supported: 16^5 = 1,048,576 leaves, 9 MiB of digests.
pub const MAX_DEPTH: u8 = 5;

// Tree arithmetic is bounded by the shape: depth <= MAX_DEPTH (5) keeps every node number below
// tree_size(5) = 1,118,481, and node numbers from the wire are checked against the shape by
// `Shape::level` before any other arithmetic touches them.

/// Number of nodes (64-bit digests) in a tree of `depth` levels below the root.
#[allow(clippy::arithmetic_side_effects)]
pub const fn tree_size(depth: u8) -> usize {
    let mut total = 0usize;
    let mut width = 1usize;
    let mut level = 0u8;
    while level <= depth {
        total += width;
        width *= FANOUT;
        level += 1;
    }
    total
}

/// The tree depth that keeps about `per_leaf` entries in each leaf for `entries` entries.
#[allow(clippy::arithmetic_side_effects)]
pub const fn depth_for(entries: u64, per_leaf: u64) -> u8 {
    let mut depth = 0u8;
    let mut leaves = 1u64;
    while depth < MAX_DEPTH && leaves.saturating_mul(per_leaf) < entries {
        depth += 1;
        leaves = leaves.saturating_mul(FANOUT as u64);
    }
    depth
}

/// The shape of a tree: how deep it is, and how node numbers map to levels and hash ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    depth: u8,
}

#[allow(clippy::arithmetic_side_effects)]
impl Shape {
    /// A shape of `depth` levels below the root, if supported.
    pub const fn new(depth: u8) -> Option<Self> {
        if depth <= MAX_DEPTH {
            Some(Shape { depth })
        } else {
            None
        }
    }

    /// Levels below the root; leaves are at this level.
    pub const fn depth(self) -> u8 {
        self.depth
    }

    /// Number of nodes in the tree.
    pub const fn nodes(self) -> usize {
        tree_size(self.depth)
    }

    const fn offset(level: u8) -> u32 {
        if level == 0 {
            0
        } else {
            tree_size(level - 1) as u32
        }
    }

    /// The level of `node`, or `None` if the tree has no such node.
    pub fn level(self, node: u32) -> Option<u8> {
        (0..=self.depth).find(|&l| node < Self::offset(l + 1))
    }

    /// Whether `node` is a leaf.
    pub fn is_leaf(self, node: u32) -> bool {
        self.level(node) == Some(self.depth)
    }

    /// The first of the 16 children of `node`; `None` for leaves and unknown nodes.
    pub fn first_child(self, node: u32) -> Option<u32> {
        let level = self.level(node)?;
        if level >= self.depth {
            return None;
        }
        let index = node - Self::offset(level);
        Some(Self::offset(level + 1) + index * FANOUT as u32)
    }

    /// The node at `level` whose range holds `hash`.
    pub fn node_at(self, hash: u64, level: u8) -> u32 {
        let level = level.min(self.depth);
        if level == 0 {
            return 0;
        }
        Self::offset(level) + (hash >> (64 - BITS * u32::from(level))) as u32
    }

    /// The leaf that holds `hash`.
    pub fn leaf_of(self, hash: u64) -> u32 {
        self.node_at(hash, self.depth)
    }

    /// The inclusive range of key hashes below `node`.
    pub fn range(self, node: u32) -> Option<(u64, u64)> {
        let level = self.level(node)?;
        if level == 0 {
            return Some((0, u64::MAX));
        }
        let span = 64 - BITS * u32::from(level);
        let index = u64::from(node - Self::offset(level));
        let lo = index << span;
        Some((lo, lo | ((1u64 << span) - 1)))
    }
}

/// Storage for a tree's digests: a fixed array on microcontrollers, a `Vec` with `alloc`; and, in
/// a [`Sketched`] buffer (feature `sketch`), the syndromes of the table's sketch beside them.
pub trait TreeBuf {
    /// The digests, breadth-first.
    fn nodes(&self) -> &[u64];
    /// The digests, breadth-first, mutable.
    fn nodes_mut(&mut self) -> &mut [u64];
    /// The sketch's syndromes: none unless the buffer holds a sketch.
    fn sketch(&self) -> &[u64] {
        &[]
    }
    /// The sketch's syndromes, mutable.
    fn sketch_mut(&mut self) -> &mut [u64] {
        &mut []
    }
}

/// Tree storage with a sketch of the table beside the digests ([`crate::sketch`]): `nodes` as any
/// [`TreeBuf`] holds them, and `syndromes` (`[u64; N]` without a heap, a `Vec` with one) of
/// [`syndromes_for`](crate::sketch::syndromes_for)`(capacity)` words, kept current on every change.
#[cfg(feature = "sketch")]
#[derive(Clone, Debug)]
pub struct Sketched<B, S> {
    /// The digests.
    pub nodes: B,
    /// The syndromes: an odd number of them, at most [`MAX_SYNDROMES`](crate::sketch::MAX_SYNDROMES).
    pub syndromes: S,
}

#[cfg(feature = "sketch")]
impl<B: TreeBuf, S: AsRef<[u64]> + AsMut<[u64]>> TreeBuf for Sketched<B, S> {
    fn nodes(&self) -> &[u64] {
        self.nodes.nodes()
    }
    fn nodes_mut(&mut self) -> &mut [u64] {
        self.nodes.nodes_mut()
    }
    fn sketch(&self) -> &[u64] {
        let s = self.syndromes.as_ref();
        s.get(..usable(s.len())).unwrap_or(&[])
    }
    fn sketch_mut(&mut self) -> &mut [u64] {
        let s = self.syndromes.as_mut();
        let n = usable(s.len());
        s.get_mut(..n).unwrap_or(&mut [])
    }
}

/// The syndromes of a buffer of `len` words that a sketch uses: an odd number, at most the largest.
#[cfg(feature = "sketch")]
fn usable(len: usize) -> usize {
    crate::sketch::odd_prefix(len.min(crate::sketch::MAX_SYNDROMES))
}

/// Heap tree storage with a sketch of `capacity` differing keys.
#[cfg(all(feature = "sketch", feature = "alloc"))]
pub type HeapSketched = Sketched<alloc::vec::Vec<u64>, alloc::vec::Vec<u64>>;

#[cfg(all(feature = "sketch", feature = "alloc"))]
impl HeapSketched {
    /// Storage for a tree of `depth` (at most [`MAX_DEPTH`]) with a sketch of `capacity` keys (at
    /// most [`MAX_CAPACITY`](crate::sketch::MAX_CAPACITY); 0 for none).
    pub fn with_capacity(depth: u8, capacity: usize) -> Self {
        let nodes = Shape::new(depth.min(MAX_DEPTH)).map_or(1, Shape::nodes);
        let capacity = capacity.min(crate::sketch::MAX_CAPACITY);
        let syndromes = if capacity == 0 {
            0
        } else {
            crate::sketch::syndromes_for(capacity)
        };
        Sketched {
            nodes: alloc::vec![0; nodes],
            syndromes: alloc::vec![0; syndromes],
        }
    }
}

impl<const N: usize> TreeBuf for [u64; N] {
    fn nodes(&self) -> &[u64] {
        self
    }
    fn nodes_mut(&mut self) -> &mut [u64] {
        self
    }
}

#[cfg(feature = "alloc")]
impl TreeBuf for alloc::vec::Vec<u64> {
    fn nodes(&self) -> &[u64] {
        self
    }
    fn nodes_mut(&mut self) -> &mut [u64] {
        self
    }
}

/// A buffer whose length is not [`tree_size`] of any supported depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BadTreeSize {
    /// The length that was given.
    pub len: usize,
}

/// The 32-byte root of a tree, with the entry count it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Root {
    /// SHA-256 over the shape, the count and the 128-bit accumulator.
    pub hash: [u8; 32],
    /// Number of entries in the tree.
    pub count: u64,
}

/// A digest tree over a [`TreeBuf`].
#[derive(Clone, Debug)]
pub struct Tree<B> {
    buf: B,
    shape: Shape,
    acc: (u64, u64),
    count: u64,
}

impl<B: TreeBuf> Tree<B> {
    /// An empty tree over `buf`, whose length picks the depth: it must be [`tree_size`]`(d)` for some
    /// `d <= MAX_DEPTH`.
    pub fn new(mut buf: B) -> Result<Self, BadTreeSize> {
        let len = buf.nodes().len();
        let shape = (0..=MAX_DEPTH)
            .filter_map(Shape::new)
            .find(|s| s.nodes() == len)
            .ok_or(BadTreeSize { len })?;
        buf.nodes_mut().fill(0);
        buf.sketch_mut().fill(0);
        Ok(Tree {
            buf,
            shape,
            acc: (0, 0),
            count: 0,
        })
    }

    /// A read-only view, the same whatever the buffer: what reconciliation reads.
    pub fn view(&self) -> TreeView<'_> {
        TreeView {
            nodes: self.buf.nodes(),
            sketch: self.buf.sketch(),
            shape: self.shape,
            acc: self.acc,
            count: self.count,
        }
    }

    /// The tree's shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Number of entries.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn toggle(&mut self, hash: u64, d: EntryDigest) {
        let nodes = self.buf.nodes_mut();
        for level in 0..=self.shape.depth {
            if let Some(n) = nodes.get_mut(self.shape.node_at(hash, level) as usize) {
                *n ^= d.low;
            }
        }
        self.acc.0 ^= d.low;
        self.acc.1 ^= d.high;
    }

    /// Adds an entry with key hash `hash` and digest `d`.
    pub fn insert(&mut self, hash: u64, d: EntryDigest) {
        self.toggle(hash, d);
        self.count = self.count.wrapping_add(1);
    }

    /// Removes an entry previously inserted with the same `hash` and `d`.
    pub fn remove(&mut self, hash: u64, d: EntryDigest) {
        self.toggle(hash, d);
        self.count = self.count.wrapping_sub(1);
    }

    /// Replaces an entry's digest (a new version of the same key).
    pub fn replace(&mut self, hash: u64, old: EntryDigest, new: EntryDigest) {
        self.toggle(hash, old);
        self.toggle(hash, new);
    }

    /// Adds `weight` at key hash `hash` in the sketch, if the buffer holds one: the XOR of an
    /// entry's old and new weights ([`crate::sketch::weight`]) when it changes, its weight when it
    /// comes or goes.
    pub fn sketch_add(&mut self, hash: u64, weight: u64) {
        #[cfg(feature = "sketch")]
        {
            let s = self.buf.sketch_mut();
            if !s.is_empty() && weight != 0 {
                crate::sketch::add(s, hash, weight);
            }
        }
        #[cfg(not(feature = "sketch"))]
        let _ = (hash, weight);
    }

    /// Whether the buffer holds a sketch.
    pub fn has_sketch(&self) -> bool {
        !self.buf.sketch().is_empty()
    }

    /// The digest of `node`.
    pub fn digest(&self, node: u32) -> Option<u64> {
        self.view().digest(node)
    }

    /// The digests of the 16 children of inner node `node`.
    pub fn children(&self, node: u32) -> Option<[u64; FANOUT]> {
        self.view().children(node)
    }

    /// The 32-byte root.
    pub fn root(&self) -> Root {
        self.view().root()
    }
}

/// A tree seen through a plain slice: one type whatever the [`TreeBuf`], so the reconciliation
/// engine is compiled once for every table rather than once per table type.
#[derive(Clone, Copy, Debug)]
pub struct TreeView<'a> {
    nodes: &'a [u64],
    sketch: &'a [u64],
    shape: Shape,
    acc: (u64, u64),
    count: u64,
}

impl<'a> TreeView<'a> {
    /// The tree's shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Number of entries.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of `node`.
    pub fn digest(&self, node: u32) -> Option<u64> {
        self.nodes.get(node as usize).copied()
    }

    /// The table's sketch: its syndromes, none if the tree keeps no sketch.
    pub fn sketch(&self) -> &'a [u64] {
        self.sketch
    }

    /// The digests of the 16 children of inner node `node`.
    pub fn children(&self, node: u32) -> Option<[u64; FANOUT]> {
        let first = self.shape.first_child(node)? as usize;
        let slice = self.nodes.get(first..first.saturating_add(FANOUT))?;
        let mut out = [0u64; FANOUT];
        out.copy_from_slice(slice);
        Some(out)
    }

    /// The 32-byte root.
    pub fn root(&self) -> Root {
        let hash = Sha256::new()
            .chain_update(b"tidings root\0")
            .chain_update([self.shape.depth])
            .chain_update(self.count.to_le_bytes())
            .chain_update(self.acc.0.to_le_bytes())
            .chain_update(self.acc.1.to_le_bytes())
            .finalize()
            .into();
        Root {
            hash,
            count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterId, DigestKey, Version};

    #[test]
    fn sizes_and_depths() {
        assert_eq!(tree_size(0), 1);
        assert_eq!(tree_size(1), 17);
        assert_eq!(tree_size(2), 273);
        assert_eq!(tree_size(4), 69_905);
        assert_eq!(depth_for(1_000_000, 16), 4);
        assert_eq!(depth_for(64, 16), 1);
        assert_eq!(depth_for(0, 16), 0);
        assert!(Tree::new([0u64; 18]).is_err());
    }

    #[test]
    fn shape_navigation() {
        let s = Shape::new(2).unwrap();
        assert_eq!(s.level(0), Some(0));
        assert_eq!(s.level(16), Some(1));
        assert_eq!(s.level(17), Some(2));
        assert_eq!(s.level(272), Some(2));
        assert_eq!(s.level(273), None);
        assert_eq!(s.first_child(0), Some(1));
        assert_eq!(s.first_child(2), Some(33));
        assert_eq!(s.first_child(17), None);
        let h = 0xAB00_0000_0000_0001;
        assert_eq!(s.node_at(h, 1), 1 + 0xA);
        assert_eq!(s.leaf_of(h), 17 + 0xAB);
        let (lo, hi) = s.range(s.leaf_of(h)).unwrap();
        assert!(lo <= h && h <= hi);
        assert_eq!(hi - lo, (1u64 << 56) - 1);
        assert_eq!(s.range(0), Some((0, u64::MAX)));
    }

    #[test]
    fn update_touches_one_node_per_level_and_undoes() {
        let key = DigestKey::from_cluster(ClusterId(*b"test"));
        let mut t = Tree::new([0u64; tree_size(2)]).unwrap();
        let empty = t.root();
        let h = key.key_hash(0, b"x");
        let d = key.entry_digest(h, Version::new(3, 1, 0));
        t.insert(h, d);
        assert_eq!(t.buf.iter().filter(|&&n| n != 0).count(), 3);
        assert_eq!(t.digest(0), Some(d.low));
        t.remove(h, d);
        assert_eq!(t.root(), empty);
        assert!(t.buf.iter().all(|&n| n == 0));
    }
}
