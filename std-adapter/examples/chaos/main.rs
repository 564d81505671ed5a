//! A chaos check of the `tidings` agent: agents as separate processes, clients writing and deleting
//! unique and shared keys against all of them, while agents are SIGKILLed and restarted and (with
//! network namespaces) cut off from each other and healed. Then every agent is brought back, the
//! cluster is left to converge, and the checker compares what the agents hold with what they
//! acknowledged (see `check.rs`).
//!
//! `bash std-adapter/scripts/chaos.sh [--secs 60] [--agents 3] [--seed 1] [--json]`
//!
//! Prints attempts, acknowledged, lost, superseded, divergent (and more); exits 1 if any
//! acknowledged write was lost, any refused write took effect, or the agents differ.

mod check;
mod client;
mod cluster;

use clap::Parser;
use client::{Kind, Op, Rng};
use cluster::Cluster;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Chaos check: acknowledged writes survive kills, restarts and partitions")]
struct Args {
    /// The `tidings` binary.
    #[arg(long)]
    bin: PathBuf,
    /// Agents (separate processes).
    #[arg(long, default_value_t = 3)]
    agents: usize,
    /// Seconds of writes under faults.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Shared keys that clients overwrite and delete.
    #[arg(long, default_value_t = 40)]
    shared_keys: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Loopback only, even where network namespaces can be made.
    #[arg(long)]
    no_netns: bool,
    /// The most seconds to wait for the agents to agree after the faults end.
    #[arg(long, default_value_t = 150)]
    converge_secs: u64,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(ok) => std::process::exit(if ok { 0 } else { 1 }),
        Err(e) => {
            eprintln!("chaos: {e}");
            std::process::exit(2);
        }
    }
}

fn say(args: &Args, what: impl std::fmt::Display) {
    if !args.json {
        eprintln!("[chaos] {what}");
    }
}

/// One client: writes until `until`, against a random live-or-not agent each time.
fn client(
    id: usize,
    seed: u64,
    shared: u64,
    apis: Vec<std::net::SocketAddr>,
    until: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
) {
    let mut rng = Rng::new(seed ^ (id as u64).wrapping_mul(0x1000_0001));
    let mut n = 0u64;
    let record = |op: Op| {
        if let Ok(mut all) = ops.lock() {
            all.push(op);
        }
    };
    while Instant::now() < until {
        n += 1;
        let agent = rng.below(apis.len() as u64) as usize;
        let value = format!("c{id}-{n}");
        let roll = rng.below(100);
        if roll < 55 {
            // A unique key; sometimes deleted at once through another agent, which may not have
            // received the write yet.
            let key = format!("u{id}-{n}");
            let op = client::run(agent, apis[agent], &key, Kind::Put { value });
            let acked = op.outcome == client::Outcome::Ok;
            record(op);
            if acked && rng.chance(20) {
                let other = (agent + 1 + rng.below(apis.len() as u64 - 1) as usize) % apis.len();
                record(client::run(other, apis[other], &key, Kind::Delete));
            }
        } else {
            let key = format!("s{}", rng.below(shared));
            let kind = if roll < 85 {
                Kind::Put { value }
            } else {
                Kind::Delete
            };
            record(client::run(agent, apis[agent], &key, kind));
        }
    }
}

/// Kills, restarts, cuts and heals until `until`.
fn nemesis(cluster: &Mutex<Cluster>, seed: u64, until: Instant, args: &Args) -> (u32, u32) {
    let mut rng = Rng::new(seed ^ 0xDEAD_BEEF);
    let (mut kills, mut cuts) = (0, 0);
    let n = cluster.lock().map(|c| c.len()).unwrap_or(0) as u64;
    while Instant::now() + Duration::from_secs(2) < until {
        std::thread::sleep(Duration::from_millis(1_000 + rng.below(3_000)));
        let Ok(mut c) = cluster.lock() else {
            break;
        };
        let i = rng.below(n) as usize;
        if c.uses_netns() && rng.chance(40) {
            if c.is_cut(i) {
                let _ = c.link(i, true);
                say(args, format_args!("heal agent {}", i + 1));
            } else if (0..n as usize).all(|j| !c.is_cut(j)) {
                let _ = c.link(i, false);
                cuts += 1;
                say(args, format_args!("cut agent {} off", i + 1));
            }
        } else if c.is_up(i) {
            // At most one agent down at a time: the others keep serving.
            if (0..n as usize).all(|j| c.is_up(j)) {
                c.kill(i);
                kills += 1;
                say(args, format_args!("SIGKILL agent {}", i + 1));
            }
        } else if c.start(i).is_ok() {
            say(args, format_args!("restart agent {}", i + 1));
        }
    }
    (kills, cuts)
}

fn states(cluster: &Cluster) -> Option<Vec<check::State>> {
    (0..cluster.len())
        .map(|i| client::list(cluster.api(i)).map(|kv| kv.into_iter().collect::<BTreeMap<_, _>>()))
        .collect()
}

/// SIGKILLs every agent at once, then starts each alone (no seeds, every other agent down) and
/// checks that its own disk holds every write it acknowledged; stops it again.
fn crash_all(cluster: &Mutex<Cluster>, ops: &[Op], args: &Args) -> Result<check::Report, String> {
    say(
        args,
        "faults over: SIGKILL every agent at once, then each alone from its disk",
    );
    let mut c = cluster.lock().map_err(|_| "lock")?;
    for i in 0..c.len() {
        c.kill(i);
    }
    let mut total = check::Report::default();
    for i in 0..c.len() {
        c.start_alone(i)?;
        let t0 = Instant::now();
        let state = loop {
            if let Some(kv) = client::list(c.api(i)) {
                break kv.into_iter().collect::<check::State>();
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "agent {} did not start alone:\n{}",
                    i + 1,
                    c.tail(i, 10)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        c.kill(i);
        let r = check::local(ops, i, &state);
        total.lost += r.lost;
        total.phantom += r.phantom;
        total.examples.extend(r.examples);
    }
    Ok(total)
}

fn run(args: &Args) -> Result<bool, String> {
    if args.agents < 2 {
        return Err("at least 2 agents".into());
    }
    let work = std::env::temp_dir().join(format!("tidings-chaos-{}", std::process::id()));
    cluster::clean(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let netns = !args.no_netns && cluster::netns_available();
    say(
        args,
        format_args!(
            "{} agents on {}, {} clients, {} s, seed {}",
            args.agents,
            if netns {
                "network namespaces"
            } else {
                "loopback"
            },
            args.clients,
            args.secs,
            args.seed
        ),
    );
    let cluster = Mutex::new(Cluster::new(
        args.bin.clone(),
        work.clone(),
        args.agents,
        netns,
    )?);
    let apis: Vec<_> = {
        let mut c = cluster.lock().map_err(|_| "lock")?;
        for i in 0..args.agents {
            c.start(i)?;
        }
        (0..args.agents).map(|i| c.api(i)).collect()
    };
    let t0 = Instant::now();
    while states(&*cluster.lock().map_err(|_| "lock")?).is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let c = cluster.lock().map_err(|_| "lock")?;
            let logs: Vec<String> = (0..args.agents).map(|i| c.tail(i, 5)).collect();
            return Err(format!(
                "the agents did not start answering within 30 s:\n{}",
                logs.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let ops = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(args.secs);
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            let (apis, ops, seed, shared) =
                (apis.clone(), ops.clone(), args.seed, args.shared_keys);
            std::thread::spawn(move || client(id, seed, shared, apis, until, ops))
        })
        .collect();
    let (kills, cuts) = nemesis(&cluster, args.seed, until, args);
    for c in clients {
        let _ = c.join();
    }
    let crash = crash_all(&cluster, &ops.lock().map_err(|_| "lock")?, args)?;
    say(args, "healing every link and starting every agent");
    {
        let mut c = cluster.lock().map_err(|_| "lock")?;
        for i in 0..args.agents {
            c.link(i, true)?;
            if !c.is_up(i) {
                c.start(i)?;
            }
        }
    }
    let healed = Instant::now();
    let mut finals = None;
    let mut last: Option<Vec<check::State>> = None;
    while healed.elapsed() < Duration::from_secs(args.converge_secs) {
        std::thread::sleep(Duration::from_secs(1));
        let now = states(&*cluster.lock().map_err(|_| "lock")?);
        if let Some(s) = &now {
            // Identical on every agent, twice in a row.
            if s.windows(2).all(|w| w[0] == w[1]) && last.as_ref() == Some(s) {
                finals = now;
                break;
            }
        }
        last = now;
    }
    let converged = finals.is_some();
    let converge_secs = healed.elapsed().as_secs_f64();
    let finals = match finals.or(last) {
        Some(f) => f,
        None => states(&*cluster.lock().map_err(|_| "lock")?)
            .ok_or("an agent does not answer after the faults")?,
    };
    let ops = ops.lock().map_err(|_| "lock")?.clone();
    let report = check::check(&ops, &finals);
    let ok = report.lost == 0
        && report.divergent == 0
        && report.phantom == 0
        && converged
        && crash.lost == 0
        && crash.phantom == 0;
    if args.json {
        let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        v["lost_after_crash"] = crash.lost.into();
        v["phantom_after_crash"] = crash.phantom.into();
        v["kills"] = kills.into();
        v["cuts"] = cuts.into();
        v["netns"] = netns.into();
        v["converged"] = converged.into();
        v["converge_secs"] = ((converge_secs * 10.0).round() / 10.0).into();
        println!("{v}");
    } else {
        let r = &report;
        println!(
            "attempts {} acknowledged {} failed {} indeterminate {} | kept {} superseded {} lost {} \
             (deletes undone {}) phantom {} divergent {} | keys {} kills {kills} cuts {cuts} | \
             converged {converged} after {converge_secs:.1} s",
            r.attempts,
            r.acknowledged,
            r.failed,
            r.indeterminate,
            r.kept,
            r.superseded,
            r.lost,
            r.resurrected,
            r.phantom,
            r.divergent,
            r.keys
        );
        println!(
            "after SIGKILL of every agent at once, each restarted alone: {} of its own \
             acknowledged writes lost, {} phantom",
            crash.lost, crash.phantom
        );
        for e in r.examples.iter().chain(&crash.examples) {
            println!("  {e}");
        }
    }
    if !ok {
        let c = cluster.lock().map_err(|_| "lock")?;
        for i in 0..args.agents {
            eprintln!("--- agent {} log (last lines)\n{}", i + 1, c.tail(i, 15));
        }
    }
    drop(cluster);
    cluster::clean(&work);
    Ok(ok)
}
