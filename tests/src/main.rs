//! `tidings-sim`: reproducible measurements of tidings through its real message path.

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use tidings::Duration;
use tidings_sim::compare;
use tidings_sim::plot::Chart;
use tidings_sim::reconcile;
use tidings_sim::scenario::{detect, disseminate, join, partition, steady, Common, Seal};

#[derive(Parser)]
#[command(
    name = "tidings-sim",
    version,
    about = "Deterministic simulator and benchmarks for tidings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile two replicas that differ in a few keys and report what crossed the wire.
    Reconcile {
        /// Keys in each replica.
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
        /// Keys changed on one side only.
        #[arg(long, default_value_t = 16)]
        diff: u64,
        /// Bytes per value.
        #[arg(long, default_value_t = 1024)]
        value_bytes: usize,
        /// Seed of the run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Datagram loss probability, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Digest tree depth (default: about 16 keys per leaf).
        #[arg(long)]
        depth: Option<u8>,
        /// Anti-entropy pacing of each side, bytes per second (0: unpaced, so round trips count
        /// only the protocol's, not the time the transfer takes).
        #[arg(long, default_value_t = tidings::sync::SyncConfig::server().bytes_per_sec)]
        rate: u32,
        /// Differing keys each side's sketch names in one message (0: no sketch, the drill-down
        /// alone; at most 32).
        #[arg(long, default_value_t = tidings::data::DEFAULT_SKETCH_CAPACITY)]
        sketch: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Spread one write from a random node to a settled cluster, `--trials` times.
    Disseminate {
        /// Nodes in the cluster.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Writes to spread, one after another.
        #[arg(long, default_value_t = 20)]
        trials: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Count what a settled cluster sends while nothing happens.
    Steady {
        /// Nodes in the cluster.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Simulated seconds to measure.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Split the cluster, join and crash nodes on both sides, heal, and time the convergence.
    Partition {
        /// Nodes before the split.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Nodes on side A; the rest are on side B.
        #[arg(long, default_value_t = 700)]
        split: usize,
        /// Seconds the sides are apart.
        #[arg(long, default_value_t = 60)]
        partition_secs: u64,
        /// Nodes joining side A and side B while apart, as A,B.
        #[arg(long, default_value = "20,10", value_parser = pair)]
        joins: (usize, usize),
        /// Nodes crashing on side A and side B while apart, as A,B.
        #[arg(long, default_value = "5,3", value_parser = pair)]
        deaths: (usize, usize),
        #[command(flatten)]
        run: RunArgs,
    },
    /// Crash nodes at random instants and time their detection.
    Detect {
        /// Nodes in the cluster.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Nodes that crash.
        #[arg(long, default_value_t = 5)]
        crashes: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// tidings beside foca on the same simulated network: join storm, steady state,
    /// dissemination and detection, each library with its LAN preset.
    Compare {
        /// Nodes in each cluster.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        /// Updates spread, one after another.
        #[arg(long, default_value_t = 10)]
        trials: usize,
        /// Nodes crashed, at random instants within 30 s.
        #[arg(long, default_value_t = 20)]
        crashes: usize,
        /// Simulated seconds of steady state measured (foca announces every 30 s: keep a multiple).
        #[arg(long, default_value_t = 60)]
        steady_secs: u64,
        #[command(flatten)]
        run: RunArgs,
    },
    /// tidings beside chitchat: steady-state bytes per node at the same sizes and gossip interval.
    Chitchat {
        /// Cluster sizes, comma-separated.
        #[arg(long, default_value = "10,50,100", value_delimiter = ',')]
        nodes: Vec<usize>,
        /// Gossip interval of both, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        gossip_ms: u64,
        /// Seconds measured, once every node knows every other.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Start every node at once through one seed and time until every node knows every other.
    Join {
        /// Nodes in the storm, the seed included.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Longest the storm may take, in simulated seconds.
        #[arg(long, default_value_t = 300)]
        limit_secs: u64,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// Options every cluster scenario takes.
#[derive(Args, Clone, Debug)]
struct RunArgs {
    /// Seed of the run: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Datagram loss probability, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the scenario's main series over time to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// What every datagram carries: no keyring, a signing keyring (a 16-byte tag), or an
    /// encrypting one (the tag and a 12-byte nonce).
    #[arg(long, value_enum, default_value_t = Seal::None)]
    keyring: Seal,
}

fn pair(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("expected two counts as A,B, got {s:?}"))?;
    let n = |x: &str| {
        x.trim()
            .parse::<usize>()
            .map_err(|e| format!("{x:?} is not a count: {e}"))
    };
    Ok((n(a)?, n(b)?))
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2);
}

impl RunArgs {
    fn common(&self) -> Common {
        if !(0.0..=1.0).contains(&self.loss) {
            fail("--loss must be between 0 and 1");
        }
        Common {
            seed: self.seed,
            loss: self.loss,
            progress: !self.json,
            seal: self.keyring,
        }
    }

    /// Prints `report` as JSON or as a table, and writes the plot if asked.
    fn finish(
        &self,
        title: &str,
        report: &impl Serialize,
        chart: &Chart,
        started: std::time::Instant,
    ) {
        write_plot(self, chart);
        if self.json {
            println!(
                "{}",
                serde_json::to_string(report).expect("report serializes")
            );
            return;
        }
        println!("{title} (seed {}, loss {})", self.seed, self.loss);
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(report) {
            for (k, v) in fields {
                println!("  {k:<36} {v:>10}");
            }
        }
        println!("  (wall time {:.1} s)", started.elapsed().as_secs_f64());
        if let Some(path) = &self.plot {
            println!("  plot written to {}", path.display());
        }
    }
}

fn empty_chart() -> Chart {
    Chart {
        title: String::new(),
        x_label: String::new(),
        y_label: String::new(),
        series: Vec::new(),
        y_from_zero: true,
        y_log: false,
    }
}

fn at_least(name: &str, v: usize, min: usize) {
    if v < min {
        fail(&format!("--{name} must be at least {min}"));
    }
}

/// Writes `chart` where `--plot` asked.
fn write_plot(run: &RunArgs, chart: &Chart) {
    if let Some(path) = &run.plot {
        if let Err(e) = chart.write(path) {
            fail(&format!("cannot write {}: {e}", path.display()));
        }
    }
}

/// The comparison as a table: one row per figure, a column per library.
fn print_comparison(r: &compare::Report, run: &RunArgs, started: std::time::Instant) {
    println!(
        "compare: {} nodes (seed {}, loss {})",
        r.nodes, run.seed, run.loss
    );
    println!("  {:<30} {:>12} {:>12}", "", "tidings", "foca");
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) = (
        serde_json::to_value(&r.tidings),
        serde_json::to_value(&r.foca),
    ) else {
        return;
    };
    for (k, v) in &a {
        let w = b.get(k).cloned().unwrap_or_default();
        println!("  {k:<30} {:>12} {:>12}", v.to_string(), w.to_string());
    }
    println!("  (wall time {:.1} s)", started.elapsed().as_secs_f64());
}

fn main() {
    match Cli::parse().command {
        Command::Reconcile {
            keys,
            diff,
            value_bytes,
            seed,
            loss,
            depth,
            rate,
            sketch,
            json,
        } => {
            if sketch > tidings::sketch::MAX_CAPACITY {
                eprintln!(
                    "error: --sketch must be at most {}",
                    tidings::sketch::MAX_CAPACITY
                );
                std::process::exit(2);
            }
            if !(0.0..=1.0).contains(&loss) {
                eprintln!("error: --loss must be between 0 and 1");
                std::process::exit(2);
            }
            if depth.is_some_and(|d| d > tidings::tree::MAX_DEPTH) {
                eprintln!(
                    "error: --depth must be at most {}",
                    tidings::tree::MAX_DEPTH
                );
                std::process::exit(2);
            }
            let started = std::time::Instant::now();
            if !json && keys >= 200_000 {
                eprintln!("building two replicas of {keys} keys ...");
            }
            let r = reconcile::run(reconcile::Params {
                keys,
                diff,
                value_bytes,
                seed,
                loss,
                depth,
                rate,
                sketch,
            });
            if json {
                println!("{}", serde_json::to_string(&r).expect("report serializes"));
            } else {
                println!(
                    "reconcile: {} keys, {} differing, {} B values, seed {seed}, loss {loss}, \
                     {rate} B/s, sketch of {sketch}",
                    r.keys, r.diff, value_bytes
                );
                println!("  identify bytes   {:>10}", r.identify_bytes);
                println!("  payload bytes    {:>10}", r.payload_bytes);
                println!("  total bytes      {:>10}", r.total_bytes);
                println!("  round trips      {:>10}", r.round_trips);
                println!("  seconds          {:>10.3}", r.secs);
                if rate > 0 {
                    println!("  paced floor secs {:>10.3}", r.paced_floor_secs);
                }
                println!("  datagrams        {:>10}", r.datagrams);
                println!("  largest datagram {:>10}", r.max_datagram);
                println!("  converged        {:>10}", r.converged);
                println!("  (wall time {:.1} s)", started.elapsed().as_secs_f64());
            }
            if !r.converged {
                std::process::exit(1);
            }
        }
        Command::Disseminate { nodes, trials, run } => {
            at_least("nodes", nodes, 2);
            at_least("trials", trials, 1);
            let started = std::time::Instant::now();
            let mut chart = empty_chart();
            let p = disseminate::Params {
                nodes,
                trials,
                limit: Duration::from_secs(120),
            };
            let r = disseminate::run(p, &run.common(), Some(&mut chart));
            run.finish(
                &format!("disseminate: {nodes} nodes, {trials} trials"),
                &r,
                &chart,
                started,
            );
            if !r.reached_all {
                std::process::exit(1);
            }
        }
        Command::Steady { nodes, secs, run } => {
            at_least("nodes", nodes, 2);
            let started = std::time::Instant::now();
            let mut chart = empty_chart();
            let r = steady::run(nodes, secs, &run.common(), Some(&mut chart));
            run.finish(
                &format!("steady: {nodes} nodes for {secs} s"),
                &r,
                &chart,
                started,
            );
        }
        Command::Partition {
            nodes,
            split,
            partition_secs,
            joins,
            deaths,
            run,
        } => {
            at_least("nodes", nodes, 2);
            if split == 0 || split >= nodes {
                fail("--split must leave nodes on both sides");
            }
            let started = std::time::Instant::now();
            let mut chart = empty_chart();
            let p = partition::Params {
                nodes,
                split,
                partition: Duration::from_secs(partition_secs),
                joins,
                deaths,
                limit: Duration::from_secs(600),
            };
            let r = partition::run(p, &run.common(), Some(&mut chart));
            run.finish(
                &format!(
                    "partition: {nodes} nodes split {split}/{} for {partition_secs} s, joins {},{} deaths {},{}",
                    nodes - split,
                    joins.0,
                    joins.1,
                    deaths.0,
                    deaths.1
                ),
                &r,
                &chart,
                started,
            );
            if !r.converged {
                std::process::exit(1);
            }
        }
        Command::Detect {
            nodes,
            crashes,
            run,
        } => {
            at_least("nodes", nodes, 3);
            if crashes >= nodes {
                fail("--crashes must leave some nodes running");
            }
            let started = std::time::Instant::now();
            let mut chart = empty_chart();
            let p = detect::Params {
                nodes,
                crashes,
                window: Duration::from_secs(30),
                limit: Duration::from_secs(180),
            };
            let r = detect::run(p, &run.common(), Some(&mut chart));
            run.finish(
                &format!("detect: {nodes} nodes, {crashes} crashes"),
                &r,
                &chart,
                started,
            );
        }
        Command::Compare {
            nodes,
            trials,
            crashes,
            steady_secs,
            run,
        } => {
            at_least("nodes", nodes, 3);
            at_least("trials", trials, 1);
            if crashes + 2 > nodes {
                fail("--crashes must leave at least two nodes running");
            }
            let started = std::time::Instant::now();
            let p = compare::Params {
                trials,
                crashes,
                steady_secs,
                ..compare::Params::new(nodes)
            };
            let mut chart = empty_chart();
            let r = compare::run(p, &run.common(), Some(&mut chart));
            write_plot(&run, &chart);
            if run.json {
                println!("{}", serde_json::to_string(&r).expect("report serializes"));
            } else {
                print_comparison(&r, &run, started);
            }
        }
        Command::Chitchat {
            nodes,
            gossip_ms,
            secs,
            run,
        } => {
            for &n in &nodes {
                at_least("nodes", n, 2);
            }
            at_least("secs", secs as usize, 1);
            if gossip_ms == 0 {
                fail("--gossip-ms must be positive");
            }
            let started = std::time::Instant::now();
            let mut chart = empty_chart();
            let r = compare::chitchat_bench::run(
                &nodes,
                Duration::from_millis(gossip_ms),
                secs,
                &run.common(),
                Some(&mut chart),
            )
            .unwrap_or_else(|e| fail(&format!("chitchat: {e:#}")));
            write_plot(&run, &chart);
            if run.json {
                println!("{}", serde_json::to_string(&r).expect("report serializes"));
            } else {
                println!(
                    "chitchat beside tidings: gossip every {gossip_ms} ms, {secs} s measured (seed {}, loss {})",
                    run.seed, run.loss
                );
                println!(
                    "  {:>6} {:>14} {:>14} {:>16} {:>12}",
                    "nodes", "chitchat B/s", "tidings B/s", "tidings/chitchat", "foca B/s"
                );
                for row in &r.rows {
                    println!(
                        "  {:>6} {:>14} {:>14} {:>16} {:>12}",
                        row.nodes,
                        row.chitchat_bytes_per_node_per_sec,
                        row.tidings_bytes_per_node_per_sec,
                        row.tidings_over_chitchat,
                        row.foca_bytes_per_node_per_sec
                    );
                }
                println!("  (wall time {:.1} s)", started.elapsed().as_secs_f64());
            }
        }
        Command::Join {
            nodes,
            limit_secs,
            run,
        } => {
            at_least("nodes", nodes, 2);
            let started = std::time::Instant::now();
            let r = join::run(nodes, Duration::from_secs(limit_secs), &run.common());
            run.finish(
                &format!("join: {nodes} nodes at once through one seed"),
                &r,
                &empty_chart(),
                started,
            );
            if r.join_converge_secs.is_none() {
                std::process::exit(1);
            }
        }
    }
}
