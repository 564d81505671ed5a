//! Reconciling a store of your own: implement `tidings::sync::Replica` for it and let the engine find
//! and ship the differences.
//!
//! Here the store is an inventory: item name -> (stock count, revision). Two warehouses drift apart, then
//! reconcile over an in-memory "network" in a few datagrams.
//!
//! Run with `cargo run -p tidings --example custom_replica --features alloc`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tidings::sync::{Encoded, Engine, EntryError, Merged, Replica, SyncConfig};
use tidings::tree::{Tree, TreeView};
use tidings::wire::{self, Encoder, Header, TreeId};
use tidings::{ClusterId, DigestKey, Instant, NodeId, Version};

const CLUSTER: ClusterId = ClusterId(*b"inv!");
const INVENTORY: TreeId = TreeId(7);

/// One item as it travels.
#[derive(Serialize, Deserialize)]
struct Item<'a> {
    name: &'a str,
    stock: u32,
    revision: u64,
}

/// The user's store: entries ordered by key hash, plus the digest tree tidings needs.
struct Inventory {
    key: DigestKey,
    items: BTreeMap<u64, (String, u32, u64)>,
    tree: Tree<Vec<u64>>,
}

impl Inventory {
    fn new() -> Self {
        Inventory {
            key: DigestKey::from_cluster(CLUSTER),
            items: BTreeMap::new(),
            tree: Tree::new(vec![0; tidings::tree::tree_size(2)]).expect("valid size"),
        }
    }

    /// Sets an item if `revision` is newer than what we hold; keeps the tree in step.
    fn put(&mut self, name: &str, stock: u32, revision: u64) -> bool {
        let hash = self.key.key_hash(INVENTORY.0, name.as_bytes());
        let new = self.key.entry_digest(hash, Version::new(revision, 0, 0));
        match self.items.get(&hash) {
            Some(&(_, _, old)) if old >= revision => return false,
            Some(&(_, _, old)) => self.tree.replace(
                hash,
                self.key.entry_digest(hash, Version::new(old, 0, 0)),
                new,
            ),
            None => self.tree.insert(hash, new),
        }
        self.items.insert(hash, (name.to_string(), stock, revision));
        true
    }
}

impl Replica for Inventory {
    fn tree(&self) -> TreeView<'_> {
        self.tree.view()
    }
    fn first_in(&self, from: u64, to: u64) -> Option<(u64, Version)> {
        if from > to {
            return None;
        }
        self.items
            .range(from..=to)
            .next()
            .map(|(&h, &(_, _, r))| (h, Version::new(r, 0, 0)))
    }
    fn encode_entry(&self, _now: Instant, hash: u64, enc: &mut Encoder<'_>) -> Encoded {
        match self.items.get(&hash) {
            None => Encoded::Missing,
            Some((name, stock, revision)) => {
                if enc.push(&Item {
                    name,
                    stock: *stock,
                    revision: *revision,
                }) {
                    Encoded::Written
                } else {
                    Encoded::NoRoom
                }
            }
        }
    }
    fn check_entries(&self, mut bytes: &[u8]) -> Result<usize, EntryError> {
        let mut n = 0;
        while !bytes.is_empty() {
            bytes = postcard::take_from_bytes::<Item<'_>>(bytes)
                .map_err(|_| EntryError::Malformed)?
                .1;
            n += 1;
        }
        Ok(n)
    }
    fn merge_entries(&mut self, _now: Instant, mut bytes: &[u8]) -> Merged {
        let mut merged = Merged::default();
        while let Ok((item, rest)) = postcard::take_from_bytes::<Item<'_>>(bytes) {
            if self.put(item.name, item.stock, item.revision) {
                merged.applied += 1;
            } else {
                merged.stale += 1;
            }
            bytes = rest;
        }
        merged
    }
}

fn main() {
    let (mut north, mut south) = (Inventory::new(), Inventory::new());
    for i in 0..500 {
        let name = format!("part-{i:04}");
        north.put(&name, 100, 1);
        south.put(&name, 100, 1);
    }
    north.put("part-0042", 97, 2);
    south.put("part-0311", 0, 2);
    south.put("part-9999", 12, 1);

    let addrs: [SocketAddr; 2] = [
        "10.0.0.1:7946".parse().unwrap(),
        "10.0.0.2:7946".parse().unwrap(),
    ];
    let headers = [
        Header::new(CLUSTER, NodeId(1)),
        Header::new(CLUSTER, NodeId(2)),
    ];
    let mut engines: [Engine; 2] = [
        Engine::new(SyncConfig::default()),
        Engine::new(SyncConfig::default()),
    ];
    engines[0].start(addrs[1], INVENTORY);

    let (mut datagrams, mut bytes) = (0, 0);
    let mut buf = [0u8; 1500];
    let now = Instant::ZERO;
    loop {
        let mut moved = false;
        for from in 0..2 {
            let to = 1 - from;
            let replica: &Inventory = if from == 0 { &north } else { &south };
            let mut out = Vec::new();
            while let Some(t) = engines[from].poll_transmit(now, &headers[from], replica, &mut buf)
            {
                out.push(buf[..t.len].to_vec());
            }
            for d in out {
                datagrams += 1;
                bytes += d.len();
                moved = true;
                let (_, msg) = wire::decode(&d, CLUSTER, 1200).expect("valid datagram");
                let target = if to == 0 { &mut north } else { &mut south };
                engines[to]
                    .handle(now, addrs[from], &msg, target)
                    .expect("accepted");
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(north.tree.root(), south.tree.root());
    assert_eq!(north.items, south.items);
    println!("reconciled 500-item inventories differing in 3 items: {datagrams} datagrams, {bytes} bytes");
}
