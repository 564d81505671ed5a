//! The tables a node is built on.

use crate::config::Config;
use crate::data::Record;
use crate::members::Member;
use crate::store::{ByteBuf, Table};
use crate::tree::TreeBuf;

/// The tables a node is built on: pick [`HeaplessStorage`] for firmware or
/// `AllocStorage` (feature `alloc`) for servers.
pub trait Storage {
    /// Member metadata buffer.
    type Meta: ByteBuf;
    /// Member table backend.
    type MemberTable: Table<Value = Member<Self::Meta>>;
    /// Member digest tree storage.
    type MemberTree: TreeBuf;
    /// Key buffer.
    type Key: ByteBuf + Clone;
    /// Value buffer.
    type Value: ByteBuf;
    /// Data table backend.
    type DataTable: Table<Value = Record<Self::Key, Self::Value>>;
    /// Data digest tree storage.
    type DataTree: TreeBuf;

    /// Empty member storage for `config`.
    fn members(config: &Config) -> (Self::MemberTable, Self::MemberTree);
    /// Empty data storage for `config`.
    fn data(config: &Config) -> (Self::DataTable, Self::DataTree);
}

/// Storage without an allocator: `MEMBERS` members (a power of two) with `META`-byte metadata in a tree
/// of `MNODES` digests; `KEYS` keys (a power of two) of `KEY` bytes with `VALUE`-byte values in a tree
/// of `DNODES` digests. `MNODES` must be `tree_size(config.members_depth)` and `DNODES`
/// `tree_size(config.data_depth)` ([`tree_size`](crate::tree::tree_size)); `Node::new` refuses
/// anything else.
pub struct HeaplessStorage<
    const MEMBERS: usize,
    const META: usize,
    const MNODES: usize,
    const KEYS: usize,
    const KEY: usize,
    const VALUE: usize,
    const DNODES: usize,
>;

impl<
        const MEMBERS: usize,
        const META: usize,
        const MNODES: usize,
        const KEYS: usize,
        const KEY: usize,
        const VALUE: usize,
        const DNODES: usize,
    > Storage for HeaplessStorage<MEMBERS, META, MNODES, KEYS, KEY, VALUE, DNODES>
{
    type Meta = heapless::Vec<u8, META>;
    type MemberTable = crate::store::HeaplessTable<Member<Self::Meta>, MEMBERS>;
    type MemberTree = [u64; MNODES];
    type Key = heapless::Vec<u8, KEY>;
    type Value = heapless::Vec<u8, VALUE>;
    type DataTable = crate::store::HeaplessTable<Record<Self::Key, Self::Value>, KEYS>;
    type DataTree = [u64; DNODES];

    fn members(_: &Config) -> (Self::MemberTable, Self::MemberTree) {
        (crate::store::HeaplessTable::new(), [0; MNODES])
    }
    fn data(_: &Config) -> (Self::DataTable, Self::DataTree) {
        (crate::store::HeaplessTable::new(), [0; DNODES])
    }
}

/// The data table's sketch capacity: `Config::sketch_capacity`, or none without the feature.
#[cfg(feature = "alloc")]
fn sketch_capacity(config: &Config) -> usize {
    #[cfg(feature = "sketch")]
    return usize::from(config.sketch_capacity);
    #[cfg(not(feature = "sketch"))]
    {
        let _ = config;
        0
    }
}

/// Storage on the heap, bounded by `Config::max_members` and `Config::max_keys`.
#[cfg(feature = "alloc")]
pub struct AllocStorage;

#[cfg(feature = "alloc")]
impl Storage for AllocStorage {
    type Meta = alloc::vec::Vec<u8>;
    type MemberTable = crate::store::HashTable<Member<Self::Meta>>;
    type MemberTree = alloc::vec::Vec<u64>;
    type Key = alloc::vec::Vec<u8>;
    type Value = alloc::vec::Vec<u8>;
    type DataTable = crate::store::HashTable<Record<Self::Key, Self::Value>>;
    type DataTree = crate::data::AllocTree;

    fn members(config: &Config) -> (Self::MemberTable, Self::MemberTree) {
        let nodes = crate::tree::Shape::new(config.members_depth).map_or(1, |s| s.nodes());
        (
            crate::store::HashTable::with_limit(config.max_members),
            alloc::vec![0; nodes],
        )
    }
    fn data(config: &Config) -> (Self::DataTable, Self::DataTree) {
        (
            crate::store::HashTable::with_limit(config.max_keys),
            crate::data::alloc_tree(config.data_depth, sketch_capacity(config)),
        )
    }
}
