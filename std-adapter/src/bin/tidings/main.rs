//! `tidings`: run a tidings agent, or watch a demo cluster on loopback.

mod demo;

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tidings::config::Config;
use tidings::{ClusterId, NodeId};
use tidings_tokio::{Agent, AgentConfig};

#[derive(Parser)]
#[command(
    name = "tidings",
    version,
    about = "Cluster membership and replicated key-value state by gossip"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    /// Data-center network: probe every 1 s, suspicion 4 x log10(n) s.
    Lan,
    /// Wide-area links: slower probes, longer suspicion.
    Wan,
    /// One host: fast and lean.
    Local,
}

#[derive(Subcommand)]
enum Command {
    /// Run an agent: join the cluster through the seeds, serve the HTTP API, leave on SIGINT/SIGTERM.
    Agent {
        /// This node's id, unique in the cluster.
        #[arg(long)]
        node_id: u64,
        /// UDP address for the gossip protocol.
        #[arg(long)]
        bind: SocketAddr,
        /// A member to join through (repeat for several).
        #[arg(long = "seed")]
        seeds: Vec<SocketAddr>,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:7947")]
        http: SocketAddr,
        /// Where the generation and the data are kept across restarts.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The cluster's name: nodes of other clusters are ignored.
        #[arg(long, default_value = "tidings")]
        cluster: String,
        /// Timing preset.
        #[arg(long, value_enum, default_value_t = Preset::Lan)]
        preset: Preset,
    },
    /// Start a cluster of agents in this process on loopback and show it at work.
    Demo {
        /// Agents to start.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
    },
}

fn logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() {
    let code = match Cli::parse().command {
        Command::Agent {
            node_id,
            bind,
            seeds,
            http,
            data_dir,
            cluster,
            preset,
        } => {
            logging("info");
            run_agent(node_id, bind, seeds, http, data_dir, &cluster, preset).await
        }
        Command::Demo { nodes } => {
            logging("warn");
            demo::run(nodes).await
        }
    };
    std::process::exit(code);
}

async fn run_agent(
    node_id: u64,
    bind: SocketAddr,
    seeds: Vec<SocketAddr>,
    http: SocketAddr,
    data_dir: Option<PathBuf>,
    cluster: &str,
    preset: Preset,
) -> i32 {
    let cluster = ClusterId::from_name(cluster);
    let node = match preset {
        Preset::Lan => Config::lan(cluster, NodeId(node_id)),
        Preset::Wan => Config::wan(cluster, NodeId(node_id)),
        Preset::Local => Config::local(cluster, NodeId(node_id)),
    };
    let mut config = AgentConfig::new(node, bind);
    config.seeds = seeds;
    config.data_dir = data_dir;
    let agent = match Agent::start(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let handle = agent.handle();
    let listener = match tokio::net::TcpListener::bind(http).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot bind the HTTP API on {http}: {e}");
            return 1;
        }
    };
    tracing::info!(%http, "HTTP API listening");
    let api =
        tokio::spawn(
            async move { axum::serve(listener, tidings_tokio::http::router(handle)).await },
        );
    let handle = agent.handle();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot watch SIGTERM: {e}");
            return 1;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("leaving the cluster");
    let code = match handle.leave(Duration::from_secs(5)).await {
        Ok(outcome) => {
            tracing::info!(?outcome, "left");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    agent.stopped().await;
    api.abort();
    code
}
