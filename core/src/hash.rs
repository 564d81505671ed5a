//! Keyed hashing: where an entry lives in the tree, and the digest it contributes.
//!
//! Both hashes are SipHash-1-3 under keys derived from one 32-byte [`DigestKey`]. With a secret key (the
//! cluster secret), an outsider can neither steer keys into one bucket nor craft entries whose digests
//! cancel out; without one, the key is derived from the cluster id and only protects against accidents.

use crate::{ClusterId, Version};
use sha2::{Digest, Sha256};
use siphasher::sip128::{Hasher128, SipHasher13};

/// The keys of the two keyed hashes every replica uses. Peers must use the same key to reconcile.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DigestKey {
    bucket: (u64, u64),
    entry: (u64, u64),
}

/// One entry's contribution to a tree: 64 bits for the tree nodes, 128 for the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryDigest {
    /// XORed into every tree node above the entry.
    pub low: u64,
    /// XORed, with `low`, into the 128-bit root accumulator.
    pub high: u64,
}

impl core::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    /// Derives the hash keys from a secret (the cluster secret, or any shared bytes).
    pub fn from_secret(secret: &[u8]) -> Self {
        let d = Sha256::new()
            .chain_update(b"tidings digest key\0")
            .chain_update(secret)
            .finalize();
        let mut words = [0u64; 4];
        for (w, chunk) in words.iter_mut().zip(d.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        let [b0, b1, e0, e1] = words;
        DigestKey {
            bucket: (b0, b1),
            entry: (e0, e1),
        }
    }

    /// The non-secret key of a cluster without a configured secret.
    pub fn from_cluster(cluster: ClusterId) -> Self {
        Self::from_secret(&cluster.0)
    }

    /// The 64-bit hash that names `key` on the wire and places it in the tree. `domain` separates
    /// tables that share a key (membership and data).
    pub fn key_hash(&self, domain: u8, key: &[u8]) -> u64 {
        // The 128-bit variant for both hashes: one SipHash in a microcontroller's flash, not two.
        let mut h = SipHasher13::new_with_keys(self.bucket.0, self.bucket.1);
        core::hash::Hasher::write_u8(&mut h, domain);
        core::hash::Hasher::write(&mut h, key);
        h.finish128().h1
    }

    /// The digest of one entry: its key hash and version.
    pub fn entry_digest(&self, key_hash: u64, version: Version) -> EntryDigest {
        let mut buf = [0u8; 28];
        let (a, rest) = buf.split_at_mut(8);
        let (b, rest) = rest.split_at_mut(8);
        let (c, d) = rest.split_at_mut(8);
        a.copy_from_slice(&key_hash.to_le_bytes());
        b.copy_from_slice(&version.major.to_le_bytes());
        c.copy_from_slice(&version.minor.to_le_bytes());
        d.copy_from_slice(&version.tie.to_le_bytes());
        let h = SipHasher13::new_with_keys(self.entry.0, self.entry.1).hash(&buf);
        EntryDigest {
            low: h.h1,
            high: h.h2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_clusters_and_domains() {
        let a = DigestKey::from_cluster(ClusterId(*b"aaaa"));
        let b = DigestKey::from_cluster(ClusterId(*b"bbbb"));
        assert_ne!(a.key_hash(0, b"k"), b.key_hash(0, b"k"));
        assert_ne!(a.key_hash(0, b"k"), a.key_hash(1, b"k"));
        assert_eq!(a.key_hash(1, b"k"), a.key_hash(1, b"k"));
        let v = Version::new(1, 2, 3);
        assert_ne!(
            a.entry_digest(7, v),
            a.entry_digest(7, Version::new(1, 2, 4))
        );
        assert_ne!(a.entry_digest(7, v), b.entry_digest(7, v));
    }
}
