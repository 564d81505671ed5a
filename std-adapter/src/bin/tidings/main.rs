//! `tidings`: run a tidings agent, or watch a demo cluster on loopback.

mod client;
mod demo;
mod settings;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tidings_tokio::{discovery, names, Agent, AgentConfig};
use tokio::signal::unix::{signal, SignalKind};

/// The address of another node with our id, if one speaks up while this agent is still joining:
/// then this one is the newcomer. An agent that has joined (or was given no seeds) keeps running,
/// and the conflict shows in the event stream and in `tidings_member_claims_total{outcome="twin"}`.
async fn newcomer_conflict(
    mut events: tokio::sync::broadcast::Receiver<tidings_tokio::AgentEvent>,
    handle: tidings_tokio::Handle,
) -> SocketAddr {
    loop {
        match events.recv().await {
            Ok(tidings::node::Event::IdConflict(addr)) => {
                if matches!(handle.ready().await, Ok(tidings_tokio::Readiness::Joining)) {
                    return addr;
                }
                tracing::warn!(%addr, "another node claims this node's id");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await;
            }
            _ => {}
        }
    }
}

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

// Parsed once at startup: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run an agent: join the cluster through the seeds, serve the HTTP API, leave on SIGINT/SIGTERM.
    /// Flags override the `--config` file.
    Agent {
        /// This node's name, unique in the cluster: 1 to 64 bytes of UTF-8, seen by every member
        /// [default: the host name].
        #[arg(long)]
        name: Option<String>,
        /// This node's id, unique in the cluster [default: derived from the name, the same at every
        /// start].
        #[arg(long)]
        node_id: Option<u64>,
        /// UDP address for the gossip protocol.
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// A member to join through, HOST:PORT: an address or a DNS name, resolved again every 30 s
        /// while needed (repeat for several).
        #[arg(long = "seed")]
        seeds: Vec<String>,
        /// A file of seeds, one HOST:PORT per line, read again on SIGHUP.
        #[arg(long, value_name = "FILE")]
        seeds_file: Option<PathBuf>,
        /// Address of the HTTP API [default: 127.0.0.1:7947].
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Where the generation and the data are kept across restarts.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Start even though the data directory is damaged or its data is missing: move the damaged
        /// files aside, start empty and refill from the peers (`/v1/ready` answers 503 until a
        /// peer's data matches ours). Writes that never reached a peer are lost.
        #[arg(long)]
        recover: bool,
        /// The cluster's name: nodes of other clusters are ignored [default: tidings].
        #[arg(long)]
        cluster: Option<String>,
        /// Preset: lan, wan, local, or mcu (512-byte datagrams and small trees, to join
        /// microcontrollers running `Config::mcu`) [default: lan].
        #[arg(long)]
        preset: Option<String>,
        /// The cluster's keyring: base64 keys, one per line, the first signs (see `tidings keygen`).
        /// Without one, datagrams are not authenticated.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Encrypt every datagram under the keyring (XChaCha20-Poly1305) instead of only signing
        /// it; needs --key-file. Every node of the cluster must say the same: an encrypted node
        /// refuses plain datagrams and the reverse.
        #[arg(long)]
        encrypt: bool,
        /// Differing keys one anti-entropy message names (0 to 32): a small divergence heals in
        /// two round trips through a sketch of 8 * (2n + 1) bytes, at 2n + 1 field multiplications
        /// per write; 0 keeps none [default: 16; 0 on the mcu preset].
        #[arg(long, value_name = "N")]
        sketch_capacity: Option<u8>,
        /// A TOML file with any of these settings, and `[swim]` timing overrides.
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
    },
    /// List the members an agent knows: a table, or JSON.
    Members {
        /// Only members in this status: alive, suspect, dead or left.
        #[arg(long)]
        status: Option<String>,
        /// Print the JSON the agent answers.
        #[arg(long)]
        json: bool,
        /// The agent's HTTP API.
        #[arg(long, default_value_t = DEFAULT_HTTP)]
        http: SocketAddr,
    },
    /// Read and write keys through an agent.
    Kv {
        #[command(subcommand)]
        op: KvCommand,
        /// The agent's HTTP API.
        #[arg(long, default_value_t = DEFAULT_HTTP, global = true)]
        http: SocketAddr,
    },
    /// Print the cluster's member and key events as they happen (reconnects if the agent restarts).
    Watch {
        /// One JSON object per line: `{"event","id","data"}`.
        #[arg(long)]
        json: bool,
        /// The agent's HTTP API.
        #[arg(long, default_value_t = DEFAULT_HTTP)]
        http: SocketAddr,
    },
    /// Print a new random key, base64, for a key file.
    Keygen,
    /// Start a cluster of agents in this process on loopback and show it at work.
    Demo {
        /// Agents to start.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Where node 1 serves its API and the live view (`/ui`) [default: a free port on
        /// loopback].
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Pause a few seconds between steps, and keep the cluster running at the end until
        /// Ctrl-C: time to watch it in the live view.
        #[arg(long)]
        stay: bool,
    },
}

/// The address the agent's HTTP API listens on unless `--http` says otherwise.
const DEFAULT_HTTP: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    7947,
));

#[derive(Subcommand)]
enum KvCommand {
    /// Print a key's value, byte for byte.
    Get {
        /// The key.
        key: String,
    },
    /// Write a key; durable on the agent when this returns.
    Put {
        /// The key.
        key: String,
        /// The value, or `-` to read it from stdin (byte for byte).
        value: String,
    },
    /// Delete a key (a tombstone, whether or not the agent holds it).
    Delete {
        /// The key.
        key: String,
    },
    /// List keys and values as `KEY=VALUE` lines (values that are not UTF-8 as `base64:...`).
    List {
        /// Only keys that start with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Print the JSON the agent answers.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a client command: 0, or 1 with the error on stderr.
fn exit_code(r: Result<(), client::ClientError>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[tokio::main]
async fn main() {
    let code = match Cli::parse().command {
        Command::Agent {
            name,
            node_id,
            bind,
            seeds,
            seeds_file,
            http,
            data_dir,
            recover,
            cluster,
            preset,
            key_file,
            encrypt,
            sketch_capacity,
            config,
        } => {
            logging("info");
            let file = match config.as_deref().map(settings::File::read).transpose() {
                Ok(f) => f.unwrap_or_default(),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2);
                }
            };
            let merged = settings::File {
                name: name.or(file.name),
                node_id: node_id.or(file.node_id),
                bind: bind.or(file.bind),
                seeds: if seeds.is_empty() { file.seeds } else { seeds },
                seeds_file: seeds_file.or(file.seeds_file),
                http: http.or(file.http),
                data_dir: data_dir.or(file.data_dir),
                cluster: cluster.or(file.cluster),
                preset: preset.or(file.preset),
                key_file: key_file.or(file.key_file),
                encrypt: (encrypt || file.encrypt == Some(true)).then_some(true),
                meta: file.meta,
                sketch_capacity: sketch_capacity.or(file.sketch_capacity),
                swim: file.swim,
            };
            run_agent(merged, recover).await
        }
        Command::Members { status, json, http } => {
            exit_code(client::members(&client::Client::new(http), status.as_deref(), json).await)
        }
        Command::Kv { op, http } => {
            let c = client::Client::new(http);
            exit_code(match op {
                KvCommand::Get { key } => client::get(&c, &key).await,
                KvCommand::Put { key, value } => client::put(&c, &key, &value).await,
                KvCommand::Delete { key } => client::delete(&c, &key).await,
                KvCommand::List { prefix, json } => client::list(&c, prefix.as_deref(), json).await,
            })
        }
        Command::Watch { json, http } => {
            exit_code(client::watch(&client::Client::new(http), json).await)
        }
        Command::Keygen => match tidings_tokio::keys::generate() {
            Ok(k) => {
                println!("{k}");
                0
            }
            Err(e) => {
                eprintln!("error: cannot read random bytes: {e}");
                1
            }
        },
        Command::Demo { nodes, http, stay } => {
            logging("warn");
            let http = http.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
            demo::run(demo::Options { nodes, http, stay }).await
        }
    };
    std::process::exit(code);
}

/// Raises the soft limit of open files to the hard one, as Go programs do at start: the API's
/// connection cap, not a default of 1,024 descriptors, decides when clients are refused.
fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    let (Some(current), Some(max)) = (l.current, l.maximum) else {
        return;
    };
    if current >= max {
        return;
    }
    let raised = Rlimit {
        current: Some(max),
        maximum: Some(max),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(from = current, to = max, "open-file limit raised"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

async fn run_agent(s: settings::File, recover: bool) -> i32 {
    raise_open_files();
    let Some(bind) = s.bind else {
        eprintln!("error: --bind is required (on the command line or in --config)");
        return 2;
    };
    let name = match s.name.clone().or_else(names::host_name) {
        Some(n) => match names::check(&n) {
            Ok(()) => Some(n),
            Err(e) => {
                eprintln!("error: --name {n:?}: {e}");
                return 2;
            }
        },
        None => None,
    };
    let Some(node_id) = s
        .node_id
        .or_else(|| name.as_deref().map(|n| names::node_id(n).0))
    else {
        eprintln!("error: no --name and no host name to take one from: give --name or --node-id");
        return 2;
    };
    let cluster = s.cluster.as_deref().unwrap_or("tidings");
    let preset = s.preset.as_deref().unwrap_or("lan");
    let mut node =
        match settings::node_config(cluster, node_id, preset, s.swim.as_ref(), s.sketch_capacity) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
    let encrypt = s.encrypt == Some(true);
    if let Some(path) = &s.key_file {
        match tidings_tokio::keys::read(path) {
            Ok(ring) if encrypt => node.auth = Some(ring.with_encryption()),
            Ok(ring) => node.auth = Some(ring),
            Err(e) => {
                eprintln!("error: key file {e}");
                return 2;
            }
        }
    } else if encrypt {
        eprintln!(
            "error: --encrypt needs the cluster's keys: give --key-file FILE (`tidings keygen` makes a key)"
        );
        return 2;
    } else {
        tracing::warn!("no --key-file: datagrams are not authenticated; anyone who can reach the port can join");
    }
    let http = s.http.unwrap_or(DEFAULT_HTTP);
    let mut config = AgentConfig::new(node, bind);
    let seeds = discovery::Seeds {
        names: s.seeds.clone(),
        file: s.seeds_file.clone(),
        every: Duration::ZERO,
    };
    config.seeds = discovery::resolve(&seeds.all()).await;
    config.data_dir = s.data_dir;
    config.recover = recover;
    config.meta = s.meta.map(String::into_bytes).unwrap_or_default();
    let carried = names::encode(name.as_deref(), &config.meta).map_or(0, |m| m.len());
    if carried > config.node.members.max_meta_len {
        eprintln!(
            "error: the name and the meta take {carried} bytes of member metadata; the {preset} \
             preset carries at most {}",
            config.node.members.max_meta_len
        );
        return 2;
    }
    tracing::info!(name = name.as_deref().unwrap_or("-"), node_id, "identity");
    let shown = name.clone().unwrap_or_else(|| "-".into());
    config.name = name;
    let agent = match Agent::start(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let conflict = newcomer_conflict(agent.handle().subscribe(), agent.handle());
    let handle = agent.handle();
    let listener = match tokio::net::TcpListener::bind(http).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot bind the HTTP API on {http}: {e}");
            return 1;
        }
    };
    tracing::info!(%http, "HTTP API listening");
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    let discovery = tokio::spawn(discovery::run(agent.handle(), seeds, reloads));
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot watch SIGHUP: {e}");
            return 1;
        }
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let _ = reload.try_send(());
        }
    });
    let api = tokio::spawn(async move {
        tidings_tokio::http::serve_on(listener, handle, Default::default()).await
    });
    let handle = agent.handle();
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot watch SIGTERM: {e}");
            return 1;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        addr = conflict => {
            // No leave: it would tell the cluster that the other agent, which has our id, left.
            eprintln!(
                "error: another agent at {addr} already runs as node {} (name {shown}); every agent \
                 needs its own --name (or --node-id). This one stops; the other keeps running.",
                handle.id().0
            );
            handle.shutdown().await;
            agent.stopped().await;
            api.abort();
            discovery.abort();
            return 1;
        }
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
    discovery.abort();
    code
}
