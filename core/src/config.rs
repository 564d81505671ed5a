//! Configuration: one [`Config`] per node, checked by [`Config::validate`] before use.

use crate::data::DataConfig;
use crate::sync::SyncConfig;
use crate::tree::MAX_DEPTH;
use crate::wire::{Header, LIST_PREFIX_MAX, MIN_DATAGRAM, TAG_RESERVE};
use crate::{ClusterId, DigestKey, NodeId, Version};
use postcard::experimental::max_size::MaxSize;

/// Largest UDP payload over IPv4.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// A node's settings.
///
/// ```
/// use tidings::config::Config;
/// use tidings::{ClusterId, NodeId};
/// let config = Config::new(ClusterId::from_name("prod"), NodeId(7));
/// config.validate().unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// The cluster this node belongs to; datagrams of other clusters are rejected.
    pub cluster: ClusterId,
    /// This node's id.
    pub node: NodeId,
    /// This node's generation: bumped (and persisted) at every restart.
    pub generation: u32,
    /// Anti-entropy settings, including the maximum datagram.
    pub sync: SyncConfig,
    /// Key-value settings.
    pub data: DataConfig,
    /// Depth of the data digest tree: about 16 keys per leaf is a good fit
    /// ([`depth_for`](crate::tree::depth_for)).
    pub data_depth: u8,
}

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `sync.max_datagram` is below [`MIN_DATAGRAM`] or above [`MAX_UDP_PAYLOAD`].
    DatagramSize {
        /// The configured size.
        configured: usize,
    },
    /// A key of `max_key_len` with a value of `max_value_len` would not fit one datagram.
    EntryTooLarge {
        /// Bytes the largest entry needs, with its datagram's header and tag.
        needed: usize,
        /// The maximum datagram.
        max_datagram: usize,
    },
    /// `data.tombstone_grace` is zero: deletes would be forgotten before they spread.
    ZeroTombstoneGrace,
    /// `sync.burst` is zero: nothing could ever be sent.
    ZeroBurst,
    /// `data_depth` is above [`MAX_DEPTH`].
    TreeTooDeep,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::DatagramSize { configured } => write!(
                f,
                "max_datagram {configured} is outside {MIN_DATAGRAM}..={MAX_UDP_PAYLOAD} bytes"
            ),
            ConfigError::EntryTooLarge { needed, max_datagram } => write!(
                f,
                "the largest entry needs a {needed}-byte datagram but max_datagram is {max_datagram}: \
                 lower max_key_len or max_value_len"
            ),
            ConfigError::ZeroTombstoneGrace => f.write_str("tombstone_grace must be above zero"),
            ConfigError::ZeroBurst => f.write_str("sync burst must be at least 1 datagram"),
            ConfigError::TreeTooDeep => write!(f, "data_depth must be at most {MAX_DEPTH}"),
        }
    }
}

const fn varint_len(n: usize) -> usize {
    let mut len = 1;
    let mut n = n >> 7;
    while n > 0 {
        len += 1;
        n >>= 7;
    }
    len
}

impl Config {
    /// Defaults for `node` in `cluster`: 1,200-byte datagrams, keys up to 64 bytes, values up to
    /// 1,024, tombstones kept for 24 hours, a depth-2 data tree (good to about 4,000 keys).
    pub fn new(cluster: ClusterId, node: NodeId) -> Self {
        Config {
            cluster,
            node,
            generation: 0,
            sync: SyncConfig::default(),
            data: DataConfig::default(),
            data_depth: 2,
        }
    }

    /// The header of this node's datagrams.
    pub fn header(&self) -> Header {
        Header::new(self.cluster, self.node)
    }

    /// The digest key of this cluster (without a secret).
    pub fn digest_key(&self) -> DigestKey {
        DigestKey::from_cluster(self.cluster)
    }

    /// Bytes of the largest data entry, in a datagram of its own, tag included.
    pub fn largest_entry_datagram(&self) -> usize {
        let d = &self.data;
        LIST_PREFIX_MAX
            + varint_len(d.max_key_len)
            + d.max_key_len
            + Version::POSTCARD_MAX_SIZE
            + 1
            + (varint_len(d.max_value_len) + d.max_value_len).max(u64::POSTCARD_MAX_SIZE)
            + TAG_RESERVE
    }

    /// Checks that the settings are consistent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max = self.sync.max_datagram;
        if !(MIN_DATAGRAM..=MAX_UDP_PAYLOAD).contains(&max) {
            return Err(ConfigError::DatagramSize { configured: max });
        }
        let needed = self.largest_entry_datagram();
        if needed > max {
            return Err(ConfigError::EntryTooLarge {
                needed,
                max_datagram: max,
            });
        }
        if self.data.tombstone_grace.as_millis() == 0 {
            return Err(ConfigError::ZeroTombstoneGrace);
        }
        if self.sync.burst == 0 {
            return Err(ConfigError::ZeroBurst);
        }
        if self.data_depth > MAX_DEPTH {
            return Err(ConfigError::TreeTooDeep);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{WireEntry, WireValue};
    use crate::wire::{Encoder, Kind, TreeId};
    use crate::Duration;

    fn config() -> Config {
        Config::new(ClusterId(*b"test"), NodeId(u64::MAX))
    }

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.sync.max_datagram = 100;
        assert_eq!(
            c.validate(),
            Err(ConfigError::DatagramSize { configured: 100 })
        );
        let mut c = config();
        c.data.max_value_len = 1200;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::EntryTooLarge { .. })
        ));
        let mut c = config();
        c.data.tombstone_grace = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::ZeroTombstoneGrace));
        let mut c = config();
        c.data_depth = 9;
        assert_eq!(c.validate(), Err(ConfigError::TreeTooDeep));
    }

    #[test]
    fn the_largest_entry_really_fits() {
        let c = config();
        let key = [0xFFu8; 64];
        let value = [0xFFu8; 1024];
        let entry = WireEntry {
            key: &key,
            version: Version::new(u64::MAX, u64::MAX, u32::MAX),
            value: WireValue::Live(&value),
        };
        let mut buf = [0u8; 1200];
        let limit = c.sync.max_datagram - TAG_RESERVE;
        let mut e = Encoder::new(&mut buf[..limit], &c.header(), Kind::Entries).unwrap();
        assert!(e.push(&TreeId::DATA));
        assert!(e.push(&entry), "largest entry does not fit");
        assert!(e.len() + TAG_RESERVE <= c.largest_entry_datagram());
    }
}
