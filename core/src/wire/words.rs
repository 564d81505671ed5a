//! Bodies of 64-bit words: the syndromes of a sketch, and the key hashes of a want.

use super::WireError;

/// A validated run of 8-byte words that borrows the datagram: at least one, at most `MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words<'a> {
    bytes: &'a [u8],
}

impl<'a> Words<'a> {
    /// Checks that `bytes` is one to `max` whole words.
    pub(crate) fn validate(bytes: &'a [u8], max: usize) -> Result<Self, WireError> {
        let n = bytes.len() / 8;
        if bytes.len() % 8 != 0 || n == 0 || n > max {
            return Err(WireError::Malformed);
        }
        Ok(Words { bytes })
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }

    /// Whether there are none (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The words as little-endian numbers (syndromes).
    pub fn le(&self) -> impl Iterator<Item = u64> + 'a {
        self.bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
    }

    /// The words as big-endian numbers (key hashes, as listings carry them).
    pub fn be(&self) -> impl Iterator<Item = u64> + 'a {
        self.bytes
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
    }

    /// The encoded words.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}
