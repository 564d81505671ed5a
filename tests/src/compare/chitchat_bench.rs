//! tidings beside chitchat: the steady-state bytes each node sends, at the same cluster size and
//! gossip interval.
//!
//! chitchat is not sans-IO: its nodes are tokio tasks. They run here in one process over chitchat's
//! own in-process transport (`ChannelTransport`, which counts every serialized message), on a
//! single-threaded runtime whose clock is paused: time advances only when every task waits, so
//! the figures do not depend on how busy the machine is, as with the simulator. tidings runs on the
//! simulator with [`Config::lan`] and the same gossip interval.
//!
//! Both count UDP payload bytes, from the moment every node knows every other, for `secs` seconds,
//! with no application writes. foca's figure (its LAN preset, on the simulator) is measured
//! beside them.

use super::foca_swarm::FocaSwarm;
use super::tidings_swarm::TidingsSwarm;
use super::{steady, Swarm};
use crate::plot::{Chart, Series};
use crate::scenario::{lan, ms, template, Common};
use chitchat::transport::ChannelTransport;
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatId, FailureDetectorConfig, ProtocolVersion,
};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration as StdDuration;
use tidings::Duration;

/// One cluster size, both libraries.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Nodes in each cluster.
    pub nodes: usize,
    /// chitchat: bytes sent per node per second.
    pub chitchat_bytes_per_node_per_sec: f64,
    /// chitchat: seconds until every node saw every other live.
    pub chitchat_converge_secs: f64,
    /// tidings: bytes sent per node per second.
    pub tidings_bytes_per_node_per_sec: f64,
    /// tidings' bytes as a fraction of chitchat's.
    pub tidings_over_chitchat: f64,
    /// foca (`Config::new_lan`, on the simulator like tidings): bytes sent per node per second.
    pub foca_bytes_per_node_per_sec: f64,
}

/// What `tidings-sim chitchat` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The gossip interval of both, in milliseconds.
    pub gossip_interval_ms: u64,
    /// Seconds measured.
    pub secs: u64,
    /// One row per cluster size.
    pub rows: Vec<Row>,
}

/// Runs chitchat, tidings and foca at every size in `sizes`; `chart` receives bytes per node against
/// cluster size for the three.
pub fn run(
    sizes: &[usize],
    gossip: Duration,
    secs: u64,
    common: &Common,
    chart: Option<&mut Chart>,
) -> anyhow::Result<Report> {
    let mut rows = Vec::new();
    for &n in sizes {
        let (chitchat, converge) = chitchat_steady(n, gossip, secs)?;
        let mut config = template(n);
        config.swim.gossip_interval = gossip;
        let mut s = TidingsSwarm::converged_with(config, n, lan(common.loss), common.seed);
        s.settle(Duration::from_secs(60));
        let tidings = steady(&mut s, secs);
        let mut f = FocaSwarm::converged(n, lan(common.loss), common.seed);
        f.settle(Duration::from_secs(60));
        let foca = steady(&mut f, secs);
        rows.push(Row {
            nodes: n,
            chitchat_bytes_per_node_per_sec: chitchat,
            chitchat_converge_secs: converge,
            tidings_bytes_per_node_per_sec: tidings,
            tidings_over_chitchat: (tidings / chitchat * 1e5).round() / 1e5,
            foca_bytes_per_node_per_sec: foca,
        });
    }
    if let Some(chart) = chart {
        let series = |name: &str, y: fn(&Row) -> f64| Series {
            name: name.into(),
            points: rows.iter().map(|r| (r.nodes as f64, y(r))).collect(),
        };
        *chart = Chart {
            title: format!(
                "Steady-state cost against cluster size (gossip every {} ms)",
                gossip.as_millis()
            ),
            x_label: "nodes".into(),
            y_label: "bytes sent per node per second (log)".into(),
            series: vec![
                series("chitchat 0.13", |r| r.chitchat_bytes_per_node_per_sec),
                series("foca 2 (new_lan)", |r| r.foca_bytes_per_node_per_sec),
                series("tidings (lan)", |r| r.tidings_bytes_per_node_per_sec),
            ],
            y_from_zero: false,
            y_log: true,
        };
    }
    Ok(Report {
        gossip_interval_ms: gossip.as_millis(),
        secs,
        rows,
    })
}

/// `n` chitchat nodes seeded by the first: bytes per node per second once all see each other, and
/// how long that took.
pub fn chitchat_steady(n: usize, gossip: Duration, secs: u64) -> anyhow::Result<(f64, f64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(async move {
        let interval = StdDuration::from_millis(gossip.as_millis());
        let transport = ChannelTransport::with_mtu(65_507);
        let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16));
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let config = ChitchatConfig {
                chitchat_id: ChitchatId::new(format!("node-{i}"), 0, addr(i)),
                cluster_id: "bench".into(),
                gossip_interval: interval,
                listen_addr: addr(i),
                seed_nodes: vec![addr(0).to_string()],
                failure_detector_config: FailureDetectorConfig {
                    initial_interval: interval,
                    ..FailureDetectorConfig::default()
                },
                marked_for_deletion_grace_period: StdDuration::from_secs(3600),
                catchup_callback: None,
                extra_liveness_predicate: None,
                protocol_version: ProtocolVersion::V0,
            };
            handles.push(spawn_chitchat(config, Vec::new(), &transport).await?);
        }
        let start = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(interval).await;
            let mut all = true;
            for h in &handles {
                all &= h.chitchat().lock().await.live_nodes().count() >= n;
            }
            if all {
                break;
            }
            if start.elapsed() > StdDuration::from_secs(300) {
                anyhow::bail!("{n} chitchat nodes did not all see each other within 300 s");
            }
        }
        let converge = start.elapsed().as_secs_f64();
        let before = transport.statistics().num_bytes_total;
        tokio::time::sleep(StdDuration::from_secs(secs)).await;
        let sent = transport.statistics().num_bytes_total - before;
        for h in handles {
            h.shutdown().await?;
        }
        Ok((
            ms(sent as f64 / n as f64 / secs.max(1) as f64),
            ms(converge),
        ))
    })
}
