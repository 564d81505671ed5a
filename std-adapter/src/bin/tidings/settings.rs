//! The agent's settings: a TOML file (`--config`), then command-line flags over it.
//!
//! ```toml
//! name = "web-1"          # default: the host name
//! node_id = 1             # default: derived from the name
//! bind = "0.0.0.0:7946"
//! seeds = ["10.0.0.2:7946", "tidings.default.svc.cluster.local:7946"]
//! seeds_file = "/etc/tidings/seeds"   # one HOST:PORT per line, read again on SIGHUP
//! http = "127.0.0.1:7947"
//! data_dir = "/var/lib/tidings"
//! cluster = "prod"
//! preset = "lan"          # lan, wan, local, or mcu (to join microcontrollers)
//! meta = "rack=a"
//! key_file = "/etc/tidings/keys"   # base64 keys, one per line, the first signs
//! encrypt = true          # encrypt datagrams under the keys (every node must say the same)
//! sketch_capacity = 16    # differing keys one anti-entropy message names (0 to 32; 0: none)
//!
//! [swim]                  # optional: override the preset's timing
//! probe_interval_ms = 1000
//! probe_timeout_ms = 500
//! indirect_checks = 3
//! suspicion_mult = 4
//! suspicion_max_timeout_mult = 6
//! retransmit_mult = 4
//! gossip_interval_ms = 200
//! gossip_nodes = 3
//! sync_interval_ms = 30000
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tidings::config::Config;
use tidings::{ClusterId, Duration, NodeId};

/// Everything the file may say; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub name: Option<String>,
    pub node_id: Option<u64>,
    pub bind: Option<SocketAddr>,
    #[serde(default)]
    pub seeds: Vec<String>,
    pub seeds_file: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub cluster: Option<String>,
    pub preset: Option<String>,
    pub meta: Option<String>,
    pub key_file: Option<PathBuf>,
    pub encrypt: Option<bool>,
    pub sketch_capacity: Option<u8>,
    pub swim: Option<Swim>,
}

/// Timing overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swim {
    pub probe_interval_ms: Option<u64>,
    pub probe_timeout_ms: Option<u64>,
    pub indirect_checks: Option<u8>,
    pub suspicion_mult: Option<u32>,
    pub suspicion_max_timeout_mult: Option<u32>,
    pub retransmit_mult: Option<u32>,
    pub gossip_interval_ms: Option<u64>,
    pub gossip_nodes: Option<u8>,
    pub sync_interval_ms: Option<u64>,
}

impl File {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<File, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Member metadata an agent carries on every preset but `mcu` (whose boards take 32 bytes): a name
/// of up to 64 bytes and the user's metadata. Library nodes sharing a cluster with agents set
/// `members.max_meta_len` as high, or they refuse agents whose metadata is longer than theirs.
pub const AGENT_META: usize = 256;

/// The node's settings for `preset` (lan, wan, local, mcu), with the file's overrides, validated.
pub fn node_config(
    cluster: &str,
    node: u64,
    preset: &str,
    swim: Option<&Swim>,
    sketch_capacity: Option<u8>,
) -> Result<Config, String> {
    let cluster = ClusterId::from_name(cluster);
    let mut c = match preset {
        "lan" => Config::lan(cluster, NodeId(node)),
        "wan" => Config::wan(cluster, NodeId(node)),
        "local" => Config::local(cluster, NodeId(node)),
        "mcu" => Config::mcu(cluster, NodeId(node)),
        other => {
            return Err(format!(
                "unknown preset {other:?}: expected lan, wan, local or mcu"
            ))
        }
    };
    if let Some(o) = swim {
        let s = &mut c.swim;
        let ms = Duration::from_millis;
        s.probe_interval = o.probe_interval_ms.map_or(s.probe_interval, ms);
        s.probe_timeout = o.probe_timeout_ms.map_or(s.probe_timeout, ms);
        s.indirect_checks = o.indirect_checks.unwrap_or(s.indirect_checks);
        s.suspicion_mult = o.suspicion_mult.unwrap_or(s.suspicion_mult);
        s.suspicion_max_timeout_mult = o
            .suspicion_max_timeout_mult
            .unwrap_or(s.suspicion_max_timeout_mult);
        s.retransmit_mult = o.retransmit_mult.unwrap_or(s.retransmit_mult);
        s.gossip_interval = o.gossip_interval_ms.map_or(s.gossip_interval, ms);
        s.gossip_nodes = o.gossip_nodes.unwrap_or(s.gossip_nodes);
        s.sync_interval = o.sync_interval_ms.map_or(s.sync_interval, ms);
    }
    if preset != "mcu" {
        // Room for a name of 64 bytes beside the user's metadata.
        c.members.max_meta_len = AGENT_META;
    }
    c.sketch_capacity = sketch_capacity.unwrap_or(c.sketch_capacity);
    c.validate()
        .map_err(|e| format!("inconsistent settings: {e}"))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_overrides_parses_and_validates() {
        let f: File = toml::from_str(
            "node_id = 4\nbind = \"127.0.0.1:7000\"\nseeds = [\"127.0.0.1:7001\"]\npreset = \"local\"\n\
             [swim]\nprobe_interval_ms = 2000\n",
        )
        .unwrap();
        assert_eq!(f.node_id, Some(4));
        let c = node_config("x", 4, f.preset.as_deref().unwrap(), f.swim.as_ref(), None).unwrap();
        assert_eq!(c.swim.probe_interval, Duration::from_secs(2));
        assert_eq!(
            c.swim.probe_timeout,
            Config::local(ClusterId::from_name("x"), NodeId(4))
                .swim
                .probe_timeout
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert!(toml::from_str::<File>("node_idd = 1")
            .unwrap_err()
            .to_string()
            .contains("node_idd"));
        assert!(node_config("x", 1, "fast", None, None)
            .unwrap_err()
            .contains("fast"));
        // Every preset `--help` offers is taken.
        for preset in ["lan", "wan", "local", "mcu"] {
            assert!(node_config("x", 1, preset, None, None).is_ok(), "{preset}");
        }
        let timeout_past_interval = Swim {
            probe_timeout_ms: Some(5_000),
            ..Swim::default()
        };
        assert!(node_config("x", 1, "lan", Some(&timeout_past_interval), None).is_err());
        let too_large = node_config("x", 1, "lan", None, Some(33)).unwrap_err();
        assert!(
            too_large.contains("sketch_capacity must be at most 32"),
            "{too_large}"
        );
        let none = node_config("x", 1, "lan", None, Some(0)).unwrap();
        assert_eq!(none.sketch_capacity, 0);
        assert_eq!(
            node_config("x", 1, "mcu", None, None)
                .unwrap()
                .sketch_capacity,
            0
        );
    }
}
