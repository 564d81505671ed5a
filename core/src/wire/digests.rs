//! Child fingerprints: how two replicas find which subtrees differ.
//!
//! A digests item names an inner tree node and describes its 16 children: a bitmap of the children
//! that hold entries, then a 4-byte fingerprint of each such child's digest under the message's salt.
//! Empty children cost one bit, so a sparse tree (a few keys in a deep tree) is described cheaply.

use super::run::{Part, Run};
use super::Encoder;

/// A 4-byte fingerprint of a tree node's digest under a message's salt ([`fingerprint`]).
pub type Fp = [u8; 4];

/// The fingerprint of a node digest under `salt`. Each digests message picks a new salt, so two
/// different nodes that happen to share a fingerprint are told apart by the next exchange.
pub fn fingerprint(digest: u64, salt: u32) -> Fp {
    // A full 64-bit finalizer: every output bit depends on every input bit, so inputs that differ
    // in a few bits still share a fingerprint (or a check byte) under few salts.
    let mut x = digest ^ u64::from(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^= x >> 33;
    (x as u32).to_be_bytes()
}

/// The sender's description of the 16 children of `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DigestItem {
    /// The inner node.
    pub node: u32,
    /// Bit `i` set when child `i` holds entries (its digest is not zero).
    pub present: u16,
    /// The fingerprints of the children present, `[0; 4]` for the others.
    pub digests: [Fp; 16],
}

/// Largest encoded item: node, bitmap and 16 fingerprints.
pub const DIGEST_ITEM_MAX: usize = 5 + 2 + 16 * 4;

impl DigestItem {
    /// The item for `node` with these child digests under `salt`.
    pub fn new(node: u32, children: &[u64; 16], salt: u32) -> Self {
        let mut item = DigestItem {
            node,
            present: 0,
            digests: [[0; 4]; 16],
        };
        for (i, (&c, d)) in children.iter().zip(item.digests.iter_mut()).enumerate() {
            if c != 0 {
                item.present |= 1 << i;
                *d = fingerprint(c, salt);
            }
        }
        item
    }

    /// Appends the item, whole or not at all.
    pub fn push(&self, enc: &mut Encoder<'_>) -> bool {
        let at = enc.len();
        let mut ok = enc.push(&self.node) && enc.push_raw(&self.present.to_le_bytes());
        for (i, d) in self.digests.iter().enumerate() {
            if self.present & (1 << i) != 0 {
                ok = ok && enc.push_raw(d);
            }
        }
        if !ok {
            enc.truncate(at);
        }
        ok
    }
}

fn take_item(bytes: &[u8]) -> Option<(DigestItem, &[u8])> {
    let (node, rest) = postcard::take_from_bytes::<u32>(bytes).ok()?;
    let (present, mut rest) = (rest.get(..2)?, rest.get(2..)?);
    let mut item = DigestItem {
        node,
        present: u16::from_le_bytes([*present.first()?, *present.get(1)?]),
        digests: [[0; 4]; 16],
    };
    for (i, d) in item.digests.iter_mut().enumerate() {
        if item.present & (1 << i) != 0 {
            d.copy_from_slice(rest.get(..4)?);
            rest = rest.get(4..)?;
        }
    }
    Some((item, rest))
}

impl Part for DigestItem {
    type Item<'a> = DigestItem;
    const NAME: &'static str = "DigestItems";
    fn take(bytes: &[u8]) -> Option<(DigestItem, &[u8])> {
        take_item(bytes)
    }
}

/// A validated run of digests items that fills the rest of a datagram.
pub type DigestItems<'a> = Run<'a, DigestItem>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_children_cost_a_bit_and_items_round_trip() {
        let mut children = [0u64; 16];
        children[3] = 0xdead;
        children[15] = 0xbeef;
        let item = DigestItem::new(7, &children, 42);
        assert_eq!(item.present, (1 << 3) | (1 << 15));
        let mut buf = [0u8; 64];
        let header = super::super::Header::new(crate::ClusterId(*b"test"), crate::NodeId(1));
        let mut enc = Encoder::new(&mut buf, &header, super::super::Kind::Digests).unwrap();
        let start = enc.len();
        assert!(item.push(&mut enc));
        let end = enc.len();
        assert_eq!(end - start, 1 + 2 + 2 * 4);
        let items = DigestItems::validate(&buf[start..end]).unwrap();
        assert_eq!(items.into_iter().collect::<std::vec::Vec<_>>(), [item]);
        assert!(DigestItems::validate(&buf[start..end - 1]).is_err());
    }
}
