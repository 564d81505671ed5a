//! Configuration: one [`Config`] per node, checked by [`Config::validate`] before use.

use crate::data::DataConfig;
use crate::members::MembersConfig;
use crate::sync::SyncConfig;
use crate::tree::MAX_DEPTH;
use crate::wire::{Header, LIST_PREFIX_MAX, MIN_DATAGRAM, TAG_RESERVE};
use crate::{ClusterId, DigestKey, Duration, NodeId, Version};
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
    /// Member-table settings.
    pub members: MembersConfig,
    /// Depth of the member digest tree (2 suits up to about 4,000 members, 3 up to 65,000).
    pub members_depth: u8,
    /// Most members (tombstones included) a heap-backed node holds.
    pub max_members: usize,
    /// Most keys (tombstones included) a heap-backed node holds.
    pub max_keys: usize,
    /// Differing keys the data table's sketch names in one message (feature `sketch`, heap-backed
    /// nodes; at most [`MAX_CAPACITY`](crate::sketch::MAX_CAPACITY)): `8 * (2c + 1)` bytes, and
    /// `2c + 1` field multiplications per write. 0 keeps no sketch; the drill-down alone reconciles.
    #[cfg(feature = "sketch")]
    pub sketch_capacity: u8,
    /// Failure detection and dissemination.
    pub swim: SwimConfig,
    /// With a keyring, every datagram carries an HMAC tag and datagrams without a valid one are
    /// refused; the digest tree is keyed by the ring's digest secret. `None` trusts the network.
    pub auth: Option<crate::auth::Keyring>,
}

/// Failure detection (SWIM with Lifeguard) and dissemination timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SwimConfig {
    /// Time between probes of one member by this node.
    pub probe_interval: Duration,
    /// Time to wait for a direct ack before asking others to probe indirectly.
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly.
    pub indirect_checks: u8,
    /// Suspicion lasts `suspicion_mult * max(1, log10(n)) * probe_interval` once fully confirmed.
    pub suspicion_mult: u32,
    /// An unconfirmed suspicion lasts up to this multiple of the confirmed one.
    pub suspicion_max_timeout_mult: u32,
    /// A change is piggybacked `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// Time between pushes of news to `gossip_nodes` random members, while there is news.
    pub gossip_interval: Duration,
    /// Members each gossip round sends to.
    pub gossip_nodes: u8,
    /// Time between anti-entropy exchanges with one random member.
    pub sync_interval: Duration,
    /// Lifeguard: the probe interval and timeout stretch up to this factor while this node itself
    /// seems unhealthy (missed acks, refuted suspicions).
    pub awareness_max_multiplier: u32,
}

impl SwimConfig {
    /// memberlist's LAN defaults: probe every 1 s with a 500 ms timeout through 3 indirect checks,
    /// suspicion 4 (max 6x), retransmit 4, gossip every 200 ms to 3 members, sync every 30 s.
    pub const fn lan() -> Self {
        SwimConfig {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            retransmit_mult: 4,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            sync_interval: Duration::from_secs(30),
            awareness_max_multiplier: 8,
        }
    }

    /// For members across wide-area links: slower probes and longer suspicion.
    pub const fn wan() -> Self {
        SwimConfig {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_mult: 6,
            gossip_interval: Duration::from_millis(500),
            gossip_nodes: 4,
            sync_interval: Duration::from_secs(60),
            ..Self::lan()
        }
    }

    /// For members on one host or one switch: fast and lean.
    pub const fn local() -> Self {
        SwimConfig {
            probe_timeout: Duration::from_millis(200),
            indirect_checks: 1,
            suspicion_mult: 3,
            retransmit_mult: 2,
            gossip_interval: Duration::from_millis(100),
            sync_interval: Duration::from_secs(15),
            ..Self::lan()
        }
    }

    /// For microcontrollers on a small network: fewer datagrams, less work per second.
    pub const fn mcu() -> Self {
        SwimConfig {
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            indirect_checks: 2,
            gossip_interval: Duration::from_millis(500),
            gossip_nodes: 2,
            sync_interval: Duration::from_secs(60),
            ..Self::lan()
        }
    }
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
    /// `sync.burst_bytes` is below `sync.max_datagram`: a full datagram could never leave.
    BurstBelowDatagram,
    /// `data_depth` or `members_depth` is above [`MAX_DEPTH`].
    TreeTooDeep,
    /// `probe_timeout` is zero or not shorter than `probe_interval`.
    ProbeTimeout,
    /// A multiplier (`suspicion_mult`, `suspicion_max_timeout_mult`, `retransmit_mult`,
    /// `awareness_max_multiplier`) is zero.
    ZeroMultiplier,
    /// `gossip_interval` or `sync_interval` is zero, or gossip goes to no member.
    ZeroGossip,
    /// `sketch_capacity` is above [`MAX_CAPACITY`](crate::sketch::MAX_CAPACITY).
    #[cfg(feature = "sketch")]
    SketchTooLarge,
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
            ConfigError::BurstBelowDatagram => {
                f.write_str("sync burst_bytes must hold at least one max_datagram")
            }
            ConfigError::TreeTooDeep => write!(f, "data_depth must be at most {MAX_DEPTH}"),
            ConfigError::ProbeTimeout => {
                f.write_str("probe_timeout must be above zero and shorter than probe_interval")
            }
            ConfigError::ZeroMultiplier => f.write_str(
                "suspicion_mult, suspicion_max_timeout_mult, retransmit_mult and \
                 awareness_max_multiplier must be at least 1",
            ),
            ConfigError::ZeroGossip => f.write_str(
                "gossip_interval and sync_interval must be above zero and gossip_nodes at least 1",
            ),
            #[cfg(feature = "sketch")]
            ConfigError::SketchTooLarge => write!(
                f,
                "sketch_capacity must be at most {}",
                crate::sketch::MAX_CAPACITY
            ),
        }
    }
}

const fn varint_len(n: usize) -> usize {
    let mut len = 1usize;
    let mut n = n >> 7;
    while n > 0 {
        len = len.saturating_add(1);
        n >>= 7;
    }
    len
}

impl Config {
    /// The LAN preset ([`Config::lan`]).
    pub fn new(cluster: ClusterId, node: NodeId) -> Self {
        Self::lan(cluster, node)
    }

    /// For a data-center network: [`SwimConfig::lan`], 1,200-byte datagrams, keys up to 64 bytes,
    /// values up to 1,024, tombstones kept 24 hours, a depth-2 data tree (good to about 4,000 keys).
    pub fn lan(cluster: ClusterId, node: NodeId) -> Self {
        Config {
            cluster,
            node,
            generation: 0,
            sync: SyncConfig::default(),
            data: DataConfig::default(),
            data_depth: 2,
            members: MembersConfig::default(),
            members_depth: 2,
            max_members: 65_536,
            max_keys: 1 << 24,
            #[cfg(feature = "sketch")]
            sketch_capacity: 16,
            swim: SwimConfig::lan(),
            auth: None,
        }
    }

    /// For members across wide-area links ([`SwimConfig::wan`]).
    pub fn wan(cluster: ClusterId, node: NodeId) -> Self {
        Config {
            swim: SwimConfig::wan(),
            ..Self::lan(cluster, node)
        }
    }

    /// For members on one host ([`SwimConfig::local`]).
    pub fn local(cluster: ClusterId, node: NodeId) -> Self {
        Config {
            swim: SwimConfig::local(),
            ..Self::lan(cluster, node)
        }
    }

    /// For microcontrollers ([`SwimConfig::mcu`]): 512-byte datagrams, keys up to 32 bytes, values up
    /// to 128, metadata up to 32, tombstones kept an hour, a depth-1 data tree (good to about 256 keys).
    pub fn mcu(cluster: ClusterId, node: NodeId) -> Self {
        Config {
            sync: SyncConfig {
                max_datagram: MIN_DATAGRAM,
                burst_bytes: 2048,
                bytes_per_sec: 32_000,
            },
            data: DataConfig {
                max_key_len: 32,
                max_value_len: 128,
                tombstone_grace: Duration::from_secs(3600),
                ..DataConfig::default()
            },
            data_depth: 1,
            members_depth: 1,
            #[cfg(feature = "sketch")]
            sketch_capacity: 0,
            members: MembersConfig {
                max_meta_len: 32,
                retention: Duration::from_secs(600),
            },
            swim: SwimConfig::mcu(),
            ..Self::lan(cluster, node)
        }
    }

    /// The header of this node's datagrams.
    pub fn header(&self) -> Header {
        Header::new(self.cluster, self.node)
    }

    /// The digest key of this cluster: from the keyring's digest secret, or from the cluster id.
    pub fn digest_key(&self) -> DigestKey {
        match &self.auth {
            Some(ring) => ring.digest_key(self.cluster),
            None => DigestKey::from_cluster(self.cluster),
        }
    }

    /// Bytes of the largest data entry, in a datagram of its own, tag (and nonce) included.
    pub fn largest_entry_datagram(&self) -> usize {
        let d = &self.data;
        let value = varint_len(d.max_value_len)
            .saturating_add(d.max_value_len)
            .max(u64::POSTCARD_MAX_SIZE);
        [
            LIST_PREFIX_MAX,
            varint_len(d.max_key_len),
            d.max_key_len,
            Version::POSTCARD_MAX_SIZE,
            1,
            value,
            TAG_RESERVE,
            crate::wire::nonce_room(self.auth.as_ref()),
        ]
        .iter()
        .fold(0usize, |a, b| a.saturating_add(*b))
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
        if usize::try_from(self.sync.burst_bytes).unwrap_or(usize::MAX) < max {
            return Err(ConfigError::BurstBelowDatagram);
        }
        if self.data_depth > MAX_DEPTH || self.members_depth > MAX_DEPTH {
            return Err(ConfigError::TreeTooDeep);
        }
        #[cfg(feature = "sketch")]
        if usize::from(self.sketch_capacity) > crate::sketch::MAX_CAPACITY {
            return Err(ConfigError::SketchTooLarge);
        }
        let w = &self.swim;
        if w.probe_timeout.as_millis() == 0 || w.probe_timeout >= w.probe_interval {
            return Err(ConfigError::ProbeTimeout);
        }
        let multipliers = [
            w.suspicion_mult,
            w.suspicion_max_timeout_mult,
            w.retransmit_mult,
            w.awareness_max_multiplier,
        ];
        if multipliers.contains(&0) {
            return Err(ConfigError::ZeroMultiplier);
        }
        if w.gossip_interval.as_millis() == 0
            || w.sync_interval.as_millis() == 0
            || w.gossip_nodes == 0
        {
            return Err(ConfigError::ZeroGossip);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{WireEntry, WireValue};
    use crate::wire::{Encoder, Kind, TreeId};

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
        c.data.max_key_len = usize::MAX;
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
        let mut c = config();
        c.swim.probe_timeout = c.swim.probe_interval;
        assert_eq!(c.validate(), Err(ConfigError::ProbeTimeout));
        let mut c = config();
        c.swim.retransmit_mult = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroMultiplier));
        let mut c = config();
        c.swim.gossip_nodes = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroGossip));
    }

    #[test]
    fn presets_are_valid_and_lan_matches_the_reference_defaults() {
        let (cl, n) = (ClusterId(*b"test"), NodeId(1));
        for c in [
            Config::lan(cl, n),
            Config::wan(cl, n),
            Config::local(cl, n),
            Config::mcu(cl, n),
        ] {
            assert_eq!(c.validate(), Ok(()), "{c:?}");
        }
        let w = Config::lan(cl, n).swim;
        assert_eq!(
            (
                w.probe_interval.as_millis(),
                w.probe_timeout.as_millis(),
                w.indirect_checks
            ),
            (1000, 500, 3)
        );
        assert_eq!(
            (
                w.suspicion_mult,
                w.suspicion_max_timeout_mult,
                w.retransmit_mult
            ),
            (4, 6, 4)
        );
        assert_eq!((w.gossip_interval.as_millis(), w.gossip_nodes), (200, 3));
        assert_eq!(w.sync_interval.as_millis(), 30_000);
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
