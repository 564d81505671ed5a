//! Bursts and catch-up with real agents on loopback: how long after the last acknowledgement every
//! agent holds every key.
//!
//! - burst: `BURST_KEYS` keys written as fast as one agent takes them (`BURST_WRITERS` concurrent
//!   writers), then the time until every agent holds them all;
//! - catch-up: one agent down while `CATCHUP_KEYS` keys are written on another, then restarted from
//!   its data directory: the time from its restart until it holds them all.
//!
//! The burst starts `BURST_IDLE_SECS` (35) after the agents joined, once the exchanges that follow
//! a join have calmed down, as in a cluster that has run for a while.
//!
//! `cargo bench -p tidings-tokio --bench burst` (`BURST_AGENTS`, `BURST_KEYS`, `CATCHUP_KEYS`,
//! `BURST_WRITERS`, `BURST_LIMIT_SECS`, `BURST_IDLE_SECS`, `BURST_PLOT=file.svg`); one JSON object
//! on stdout.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidings::config::Config;
use tidings::{ClusterId, NodeId};
use tidings_tokio::{Agent, AgentConfig, Handle};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config(id: u64, seed: Option<std::net::SocketAddr>, dir: &Path) -> AgentConfig {
    let node = Config::lan(ClusterId::from_name("burst"), NodeId(id));
    let mut c = AgentConfig::new(node, "127.0.0.1:0".parse().expect("addr"));
    c.seeds.extend(seed);
    c.data_dir = Some(dir.join(format!("n{id}")));
    c
}

async fn keys(h: &Handle) -> usize {
    h.metrics().await.map(|m| m.keys).unwrap_or(0)
}

/// Writes `n` keys named `{prefix}{i}` through `h` with `writers` concurrent writers; returns when
/// the last one was acknowledged.
async fn write(h: &Handle, prefix: &str, n: usize, writers: usize) -> Instant {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (h, next, prefix) = (h.clone(), next.clone(), prefix.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let key = format!("{prefix}{i:06}");
                    h.set(key.as_bytes(), b"0123456789abcdef")
                        .await
                        .expect("write");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    Instant::now()
}

/// What [`held`] saw.
struct Held {
    /// Seconds from the start until every agent held every key (`None` past the limit).
    secs: Option<f64>,
    /// The count held by the least-informed agent each second.
    each_sec: Vec<usize>,
    /// (seconds, count) every 100 ms, for the plot.
    points: Vec<(f64, f64)>,
}

/// Seconds from `since` until every one of `handles` holds `want` keys (`None` past `limit`), and
/// the counts seen on the way.
async fn held(handles: &[Handle], want: usize, since: Instant, limit: f64) -> Held {
    let mut h = Held {
        secs: None,
        each_sec: Vec::new(),
        points: Vec::new(),
    };
    let (mut next_sec, mut next_point) = (since, since);
    loop {
        let mut least = usize::MAX;
        for a in handles {
            least = least.min(keys(a).await);
        }
        let t = since.elapsed().as_secs_f64();
        if Instant::now() >= next_sec {
            h.each_sec.push(least);
            next_sec += Duration::from_secs(1);
        }
        if Instant::now() >= next_point || least >= want {
            h.points.push((t, least as f64));
            next_point += Duration::from_millis(100);
        }
        if least >= want {
            h.secs = Some(t);
            return h;
        }
        if t > limit {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn secs(t: Option<f64>) -> String {
    t.map_or("null".into(), |t| format!("{t:.2}"))
}

async fn run() -> String {
    let n = env("BURST_AGENTS", 3u64);
    let burst = env("BURST_KEYS", 50_000usize);
    let catchup = env("CATCHUP_KEYS", 20_000usize);
    let writers = env("BURST_WRITERS", 32usize);
    let limit = env("BURST_LIMIT_SECS", 120.0f64);
    let idle = env("BURST_IDLE_SECS", 35.0f64);
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Agent::start(config(1, None, dir.path()))
        .await
        .expect("agent");
    let seed = first.local_addr();
    let mut agents = vec![first];
    for id in 2..=n {
        agents.push(
            Agent::start(config(id, Some(seed), dir.path()))
                .await
                .expect("agent"),
        );
    }
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    let t0 = Instant::now();
    while handles[0].members().await.map(|m| m.len()).unwrap_or(0) < n as usize {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "agents did not join"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A settled cluster: the exchanges that follow a join have calmed down.
    tokio::time::sleep(Duration::from_secs_f64(idle)).await;
    let start = Instant::now();
    let last_ack = write(&handles[0], "b", burst, writers).await;
    let write_secs = (last_ack - start).as_secs_f64();
    let b = held(&handles, burst, last_ack, limit).await;

    // One agent down while more keys are written, then back from its data directory.
    let down = agents.pop().expect("an agent");
    let down_id = n;
    down.handle().shutdown().await;
    down.stopped().await;
    write(&handles[0], "c", catchup, writers).await;
    let back = Agent::start(config(down_id, Some(seed), dir.path()))
        .await
        .expect("restart");
    let restarted = Instant::now();
    let c = held(&[back.handle()], burst + catchup, restarted, limit).await;
    if let Ok(path) = std::env::var("BURST_PLOT") {
        plot(&path, n, burst, catchup, &b, &c);
    }
    format!(
        "{{\"agents\":{n},\"burst_keys\":{burst},\"writers\":{writers},\"write_secs\":{write_secs:.2},\
         \"burst_all_held_secs_after_last_ack\":{},\"burst_least_held_each_sec\":{burst_trace:?},\
         \"catchup_keys\":{catchup},\"catchup_secs_after_restart\":{},\
         \"catchup_held_each_sec\":{catchup_trace:?}}}",
        secs(b.secs),
        secs(c.secs),
        burst_trace = b.each_sec,
        catchup_trace = c.each_sec,
    )
}

/// Keys held over time: by the least-informed agent after the burst, by the restarted agent after
/// its restart.
fn plot(path: &str, n: u64, burst: usize, catchup: usize, b: &Held, c: &Held) {
    use tidings_sim::plot::{Chart, Series};
    let chart = Chart {
        title: format!("{n} agents on loopback: keys held after a burst and after a restart"),
        x_label: "seconds after the last acknowledgement, or after the restart".into(),
        y_label: "keys held".into(),
        series: vec![
            Series {
                name: format!("burst of {burst}: least-informed agent"),
                points: b.points.clone(),
            },
            Series {
                name: format!("{catchup} written while down: restarted agent"),
                points: c.points.clone(),
            },
        ],
        y_from_zero: true,
        y_log: false,
    };
    if let Err(e) = chart.write(Path::new(path)) {
        eprintln!("cannot write {path}: {e}");
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("{}", rt.block_on(run()));
}
