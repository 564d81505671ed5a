//! Identities: who a node is and which cluster it belongs to.

use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// A node's identity, unique within its cluster and stable across restarts.
///
/// Small numbers encode shortest on the wire (postcard varints): ids below 128 cost one byte.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, MaxSize,
)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeId(pub u64);

/// The cluster a datagram belongs to: four bytes in every header.
///
/// Datagrams whose cluster id differs from ours are rejected and counted, so two clusters sharing a
/// network, or a port reused by another deployment, never merge. [`ClusterId::from_name`] derives
/// one from a human-readable name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClusterId(pub [u8; 4]);

impl ClusterId {
    /// The cluster id for `name`: the first four bytes of SHA-256("tidings cluster" || name).
    pub fn from_name(name: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"tidings cluster\0")
            .chain_update(name.as_bytes())
            .finalize();
        let mut id = [0u8; 4];
        id.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
        ClusterId(id)
    }
}

impl core::fmt::Display for NodeId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_map_to_distinct_ids() {
        assert_eq!(ClusterId::from_name("prod"), ClusterId::from_name("prod"));
        assert_ne!(
            ClusterId::from_name("prod"),
            ClusterId::from_name("staging")
        );
    }
}
