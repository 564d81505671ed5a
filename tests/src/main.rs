//! `tidings-sim`: reproducible measurements of tidings through its real message path.

use clap::{Parser, Subcommand};
use tidings_sim::reconcile;

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
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
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
            json,
        } => {
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
            });
            if json {
                println!("{}", serde_json::to_string(&r).expect("report serializes"));
            } else {
                println!(
                    "reconcile: {} keys, {} differing, {} B values, seed {seed}, loss {loss}",
                    r.keys, r.diff, value_bytes
                );
                println!("  identify bytes   {:>10}", r.identify_bytes);
                println!("  payload bytes    {:>10}", r.payload_bytes);
                println!("  total bytes      {:>10}", r.total_bytes);
                println!("  round trips      {:>10}", r.round_trips);
                println!("  datagrams        {:>10}", r.datagrams);
                println!("  largest datagram {:>10}", r.max_datagram);
                println!("  converged        {:>10}", r.converged);
                println!("  (wall time {:.1} s)", started.elapsed().as_secs_f64());
            }
            if !r.converged {
                std::process::exit(1);
            }
        }
    }
}
