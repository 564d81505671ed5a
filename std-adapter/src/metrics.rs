//! Counters of a running agent, and their Prometheus text form.

use crate::CommitStats;
use serde::Serialize;
use std::fmt::Write;
use tidings::data::DataStats;
use tidings::members::MembersStats;
use tidings::node::{GossipStats, NodeStats};
use tidings::sync::SyncStats;

/// A point-in-time copy of an agent's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Metrics {
    /// This node's id.
    pub node: u64,
    /// This node's generation.
    pub generation: u32,
    /// Members alive, ourselves included.
    pub members_alive: usize,
    /// Members suspected.
    pub members_suspect: usize,
    /// Members held dead.
    pub members_dead: usize,
    /// Members that left.
    pub members_left: usize,
    /// Live keys.
    pub keys: usize,
    /// Lifeguard's local-health score (0 is healthy).
    pub health_score: u32,
    /// Datagrams that could not be sent (socket errors).
    pub send_errors: u64,
    /// The data is being refilled from peers after `--recover`.
    pub recovering: bool,
    /// Damaged files moved aside by `--recover` when this agent started.
    pub moved_aside: u64,
    /// Writes waiting for a commit or on their way to disk.
    pub commit_backlog: usize,
    /// The commits to the data directory (none without one).
    pub commits: Option<CommitStats>,
    /// The node's own counters.
    #[serde(skip)]
    pub node_stats: NodeStats,
    /// Anti-entropy counters.
    #[serde(skip)]
    pub sync: SyncStats,
    /// The data map's counters: every write applied, local or from a peer.
    #[serde(skip)]
    pub data: DataStats,
    /// The gossip queue's counters.
    #[serde(skip)]
    pub gossip: GossipStats,
    /// The member table's counters.
    #[serde(skip)]
    pub members: MembersStats,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP tidings_{name} {help}");
    let _ = writeln!(out, "# TYPE tidings_{name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "tidings_{name} {v}");
        } else {
            let _ = writeln!(out, "tidings_{name}{{{labels}}} {v}");
        }
    }
}

impl Metrics {
    /// The counters in the Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let s = &self.node_stats;
        let r = &s.rejects;
        let d = &self.data;
        let mut out = String::new();
        let m = &mut out;
        metric(
            m,
            "datagrams_in_total",
            "counter",
            "Datagrams received.",
            &[("", s.datagrams_in)],
        );
        metric(
            m,
            "bytes_in_total",
            "counter",
            "Bytes received.",
            &[("", s.bytes_in)],
        );
        metric(
            m,
            "datagrams_out_total",
            "counter",
            "Datagrams sent.",
            &[("", s.datagrams_out)],
        );
        metric(
            m,
            "bytes_out_total",
            "counter",
            "Bytes sent.",
            &[("", s.bytes_out)],
        );
        metric(
            m,
            "rejected_datagrams_total",
            "counter",
            "Datagrams rejected before decoding finished, by reason.",
            &[
                ("reason=\"truncated\"", r.truncated),
                ("reason=\"oversized\"", r.oversized),
                ("reason=\"bad_magic\"", r.bad_magic),
                ("reason=\"unsupported_protocol\"", r.unsupported_protocol),
                ("reason=\"foreign_cluster\"", r.foreign_cluster),
                ("reason=\"unknown_kind\"", r.unknown_kind),
                ("reason=\"malformed\"", r.malformed),
                ("reason=\"unauthenticated\"", r.unauthenticated),
                ("reason=\"encryption_mismatch\"", r.encryption_mismatch),
            ],
        );
        metric(
            m,
            "refused_datagrams_total",
            "counter",
            "Datagrams refused after decoding (bad sync messages or rumors).",
            &[("", s.refused)],
        );
        metric(
            m,
            "versions_ahead_total",
            "counter",
            "Peers' writes refused because their version was more than max_clock_ahead ahead of our wall clock (accepted once it catches up).",
            &[("", d.ahead)],
        );
        metric(
            m,
            "tombstones_collected_total",
            "counter",
            "Tombstones of deleted keys collected after their grace period.",
            &[("", d.collected)],
        );
        metric(
            m,
            "probes_total",
            "counter",
            "Probes sent.",
            &[("", s.probes)],
        );
        metric(
            m,
            "indirect_probes_total",
            "counter",
            "Indirect probe requests sent.",
            &[("", s.indirect_probes)],
        );
        metric(
            m,
            "missed_acks_total",
            "counter",
            "Probes that went unanswered.",
            &[("", s.missed_acks)],
        );
        metric(
            m,
            "send_errors_total",
            "counter",
            "Datagrams the socket refused to send.",
            &[("", self.send_errors)],
        );
        metric(
            m,
            "out_dropped_total",
            "counter",
            "Datagrams the node could not queue because its outgoing queue was full.",
            &[("", s.out_dropped)],
        );
        metric(
            m,
            "events_dropped_total",
            "counter",
            "Events the node dropped because they were not drained in time.",
            &[("", s.events_dropped)],
        );
        metric(
            m,
            "changes_deferred_total",
            "counter",
            "Changes heard while the node's event queue was full, applied when they came again.",
            &[("", s.changes_deferred)],
        );
        metric(
            m,
            "members",
            "gauge",
            "Members by status.",
            &[
                ("status=\"alive\"", self.members_alive as u64),
                ("status=\"suspect\"", self.members_suspect as u64),
                ("status=\"dead\"", self.members_dead as u64),
                ("status=\"left\"", self.members_left as u64),
            ],
        );
        metric(
            m,
            "keys",
            "gauge",
            "Live keys held.",
            &[("", self.keys as u64)],
        );
        metric(
            m,
            "health_score",
            "gauge",
            "Lifeguard local-health score (0 is healthy).",
            &[("", u64::from(self.health_score))],
        );
        metric(
            m,
            "generation",
            "gauge",
            "This node's generation.",
            &[("", u64::from(self.generation))],
        );
        let y = &self.sync;
        metric(
            m,
            "sync_exchanges_total",
            "counter",
            "Anti-entropy exchanges, by outcome.",
            &[
                ("outcome=\"started\"", y.started),
                ("outcome=\"retried\"", y.retried),
                ("outcome=\"in_sync\"", y.in_sync),
                ("outcome=\"mismatched\"", y.mismatched),
                ("outcome=\"described\"", y.root_described),
                ("outcome=\"refused\"", y.refused),
            ],
        );
        metric(
            m,
            "sync_work_dropped_total",
            "counter",
            "Anti-entropy work refused because the engine's queue was full (a later exchange finds it again).",
            &[("", y.dropped)],
        );
        metric(
            m,
            "sync_sketches_total",
            "counter",
            "Sketches of the data table: sent in answer to a differing root; decoded (the differing keys were known at once); failed (more keys differed than the capacity, so the drill-down took over).",
            &[
                ("outcome=\"sent\"", y.sketches_sent),
                ("outcome=\"decoded\"", y.sketches_decoded),
                ("outcome=\"failed\"", y.sketches_failed),
            ],
        );
        metric(
            m,
            "sync_entries_total",
            "counter",
            "Entries moved by anti-entropy.",
            &[
                ("dir=\"sent\"", y.entries_sent),
                ("dir=\"wanted\"", y.wanted),
                ("dir=\"applied\"", y.applied),
                ("dir=\"stale\"", y.stale),
                ("dir=\"full\"", y.full),
            ],
        );
        let g = &self.gossip;
        metric(
            m,
            "gossip_changes_total",
            "counter",
            "Changes queued for gossip; evicted: gave way in a full queue before their retransmit budget was spent (anti-entropy then starts at once).",
            &[
                ("state=\"queued\"", g.queued),
                ("state=\"evicted\"", g.evicted),
                ("state=\"sent\"", g.sent),
            ],
        );
        let b = &self.members;
        metric(
            m,
            "member_claims_total",
            "counter",
            "Member records received, by outcome; refuted: claims about this node it outranked; twin: claims about this node's id from another address (two nodes with one id or name); forgotten: tombstones dropped after their retention.",
            &[
                ("outcome=\"applied\"", b.applied),
                ("outcome=\"stale\"", b.stale),
                ("outcome=\"full\"", b.full),
                ("outcome=\"refuted\"", b.refuted),
                ("outcome=\"twin\"", b.twins),
                ("outcome=\"forgotten\"", b.forgotten),
            ],
        );
        metric(
            m,
            "feeds_total",
            "counter",
            "Samples of members sent to newcomers; withheld: over the feed budget.",
            &[
                ("state=\"sent\"", s.feeds),
                ("state=\"withheld\"", s.feeds_withheld),
            ],
        );
        metric(
            m,
            "data_writes_total",
            "counter",
            "Writes applied to the data, by origin; and peers' writes not newer than ours.",
            &[
                ("origin=\"local\"", d.local_writes),
                ("origin=\"peer\"", d.applied),
                ("origin=\"stale\"", d.stale),
            ],
        );
        metric(
            m,
            "data_full_total",
            "counter",
            "Peers' writes of new keys refused because the table was full.",
            &[("", d.full)],
        );
        metric(
            m,
            "recovering",
            "gauge",
            "1 while the data is refilled from peers after --recover (not ready).",
            &[("", u64::from(self.recovering))],
        );
        metric(
            m,
            "store_moved_aside",
            "gauge",
            "Damaged data files moved aside by --recover when this agent started.",
            &[("", self.moved_aside)],
        );
        if let Some(c) = &self.commits {
            metric(
                m,
                "store_commits_total",
                "counter",
                "Commits to the data directory, by outcome.",
                &[
                    ("outcome=\"ok\"", c.commits),
                    ("outcome=\"failed\"", c.failed),
                ],
            );
            metric(
                m,
                "store_writes_total",
                "counter",
                "Records committed, by origin; local writes refused (not on disk) or of unknown outcome; records removed.",
                &[
                    ("origin=\"local\"", c.local_writes),
                    ("origin=\"peer\"", c.peer_writes),
                    ("origin=\"refused\"", c.local_refused),
                    ("origin=\"unknown\"", c.local_unknown),
                    ("origin=\"removed\"", c.removed),
                ],
            );
            metric(
                m,
                "store_resyncs_total",
                "counter",
                "Whole comparisons of memory and disk, after the node dropped change events.",
                &[("", c.resyncs)],
            );
            metric(
                m,
                "store_largest_batch",
                "gauge",
                "The most records made durable by one commit.",
                &[("", c.largest_batch)],
            );
            metric(
                m,
                "store_backlog",
                "gauge",
                "Writes waiting for a commit or on their way to disk.",
                &[("", self.commit_backlog as u64)],
            );
            metric(
                m,
                "store_tombstones_collected_total",
                "counter",
                "Expired tombstones dropped from disk.",
                &[("", c.collected)],
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let mut m = Metrics {
            members_alive: 3,
            ..Metrics::default()
        };
        m.node_stats.rejects.bad_magic = 7;
        m.node_stats.rejects.unauthenticated = 5;
        let text = m.prometheus();
        assert!(text.contains("tidings_rejected_datagrams_total{reason=\"unauthenticated\"} 5\n"));
        assert!(text.contains("tidings_members{status=\"alive\"} 3\n"));
        assert!(text.contains("tidings_rejected_datagrams_total{reason=\"bad_magic\"} 7\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("tidings_"), "{line}");
            value.parse::<u64>().unwrap();
        }
    }
}

#[cfg(test)]
mod completeness {
    use super::*;

    /// The field names of a struct from its `Debug` rendering (not those of structs inside it).
    fn fields(debug: &str) -> Vec<String> {
        let (mut depth, mut word, mut out) = (0u32, String::new(), Vec::new());
        for c in debug.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ':' if depth == 1 && !word.is_empty() => out.push(std::mem::take(&mut word)),
                c if depth == 1 && (c.is_ascii_lowercase() || c == '_') => word.push(c),
                _ => word.clear(),
            }
        }
        out
    }

    #[test]
    fn every_counter_the_core_keeps_is_exported() {
        let source = include_str!("metrics.rs");
        let source = &source[..source.find("mod completeness").unwrap_or(source.len())];
        // Each struct is read through one variable in `prometheus`: `s` (the node), `r` (its
        // rejects), `y` (sync), `d` (data), `g` (gossip), `b` (members).
        let structs = [
            ("s", format!("{:?}", NodeStats::default())),
            ("r", format!("{:?}", NodeStats::default().rejects)),
            ("y", format!("{:?}", SyncStats::default())),
            ("d", format!("{:?}", DataStats::default())),
            ("g", format!("{:?}", GossipStats::default())),
            ("b", format!("{:?}", MembersStats::default())),
        ];
        let mut missing = Vec::new();
        for (var, debug) in &structs {
            for field in fields(debug) {
                if field == "rejects" && *var == "s" {
                    continue;
                }
                if !source.contains(&format!("{var}.{field})")) {
                    missing.push(format!("{var}.{field}"));
                }
            }
        }
        assert!(missing.is_empty(), "not in /metrics: {missing:?}");
    }
}
