//! Versions: the total order that decides which of two copies of an entry wins.

use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// The version of one replicated entry, compared lexicographically by (`major`, `minor`, `tie`).
///
/// Anti-entropy only needs to know which of two copies is newer, so every replicated table maps its own
/// notion of "newer" onto this triple:
/// - key-value data: (Lamport counter, writer [`NodeId`](crate::NodeId), writer generation). The writer
///   makes each version unique cluster-wide; the generation keeps a restarted writer that lost its
///   counter from reusing an old version for a new value.
/// - membership: (generation, version, status precedence).
///
/// Two copies of an entry with equal versions are the same write.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    MaxSize,
)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Version {
    /// Most significant part: a Lamport counter or a generation.
    pub major: u64,
    /// Second part: a writer id or a version within a generation.
    pub minor: u64,
    /// Least significant part: a final tie-breaker.
    pub tie: u32,
}

impl Version {
    /// A version from its three parts.
    pub const fn new(major: u64, minor: u64, tie: u32) -> Self {
        Version { major, minor, tie }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_lexicographic() {
        assert!(Version::new(2, 0, 0) > Version::new(1, 9, 9));
        assert!(Version::new(1, 2, 0) > Version::new(1, 1, 9));
        assert!(Version::new(1, 1, 2) > Version::new(1, 1, 1));
    }
}
