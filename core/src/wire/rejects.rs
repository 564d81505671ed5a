//! Counters of rejected datagrams.

use super::WireError;

/// Counts of rejected datagrams by reason, for a node's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rejects {
    /// [`WireError::Truncated`].
    pub truncated: u64,
    /// [`WireError::Oversized`].
    pub oversized: u64,
    /// [`WireError::BadMagic`].
    pub bad_magic: u64,
    /// [`WireError::UnsupportedProtocol`].
    pub unsupported_protocol: u64,
    /// [`WireError::ForeignCluster`].
    pub foreign_cluster: u64,
    /// [`WireError::UnknownKind`].
    pub unknown_kind: u64,
    /// [`WireError::Malformed`].
    pub malformed: u64,
    /// [`WireError::Unauthenticated`].
    pub unauthenticated: u64,
    /// [`WireError::EncryptionMismatch`].
    pub encryption_mismatch: u64,
}

impl Rejects {
    /// Counts one rejection.
    pub fn count(&mut self, e: WireError) {
        let c = match e {
            WireError::Truncated => &mut self.truncated,
            WireError::Oversized => &mut self.oversized,
            WireError::BadMagic => &mut self.bad_magic,
            WireError::UnsupportedProtocol => &mut self.unsupported_protocol,
            WireError::ForeignCluster => &mut self.foreign_cluster,
            WireError::UnknownKind => &mut self.unknown_kind,
            WireError::Malformed => &mut self.malformed,
            WireError::Unauthenticated => &mut self.unauthenticated,
            WireError::EncryptionMismatch => &mut self.encryption_mismatch,
        };
        *c = c.saturating_add(1);
    }

    /// All rejections.
    pub fn total(&self) -> u64 {
        [
            self.truncated,
            self.oversized,
            self.bad_magic,
            self.unsupported_protocol,
            self.foreign_cluster,
            self.unknown_kind,
            self.malformed,
            self.unauthenticated,
            self.encryption_mismatch,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}
