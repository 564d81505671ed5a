//! tidings on tokio: one task drives a core [`Node`](tidings::node::Node) over a UDP socket.
//!
//! [`Agent::start`] binds the socket, restores the node's data from its data directory (if any),
//! and spawns the driver: it feeds every datagram and timer to the node, sends what the node asks to
//! send, and serves commands from [`Handle`]s. It makes no protocol decision of its own.
//!
//! ```no_run
//! use tidings::{config::Config, ClusterId, NodeId};
//! use tidings_tokio::{Agent, AgentConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Config::lan(ClusterId::from_name("prod"), NodeId(1));
//! let mut config = AgentConfig::new(node, "0.0.0.0:7946".parse()?);
//! config.seeds.push("10.0.0.2:7946".parse()?);
//! config.data_dir = Some("/var/lib/tidings".into());
//! let agent = Agent::start(config).await?;
//! let handle = agent.handle();
//! handle.set(b"color", b"blue").await?;
//! let mut events = handle.subscribe();
//! while let Ok(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod driver;
pub mod durable;
pub mod http;
pub mod keys;
pub mod metrics;

pub use metrics::Metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tidings::config::Config;
use tidings::members::Status;
use tidings::node::Event;
use tidings::{NodeId, Version};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// An event of the cluster, as subscribers see it.
pub type AgentEvent = Event<Vec<u8>>;

/// How to run an agent.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The node's settings (its generation is taken from the data directory when there is one).
    pub node: Config,
    /// The UDP address to listen on.
    pub bind: SocketAddr,
    /// Members to join through; the node keeps asking them until it is in.
    pub seeds: Vec<SocketAddr>,
    /// Where the generation and the data are kept. Without one, every start is generation
    /// `node.generation` and the data starts empty.
    pub data_dir: Option<PathBuf>,
    /// This member's metadata, seen by all (at most `node.members.max_meta_len` bytes).
    pub meta: Vec<u8>,
    /// Events a slow subscriber may fall behind before it misses some.
    pub events_capacity: usize,
}

impl AgentConfig {
    /// An agent for `node` listening on `bind`, with no seeds, no data directory, no metadata.
    pub fn new(node: Config, bind: SocketAddr) -> Self {
        AgentConfig {
            node,
            bind,
            seeds: Vec::new(),
            data_dir: None,
            meta: Vec::new(),
            events_capacity: 1024,
        }
    }
}

/// Why an agent could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The node's settings are inconsistent, or its metadata is too long.
    Node(tidings::node::NodeError),
    /// The socket could not be bound.
    Bind(std::io::Error),
    /// The data directory could not be read or written.
    DataDir(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Node(e) => write!(f, "invalid node settings: {e:?}"),
            StartError::Bind(e) => write!(f, "cannot bind the UDP socket: {e}"),
            StartError::DataDir(e) => write!(f, "data directory: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Why a command failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AgentError {
    /// The agent has stopped.
    Stopped,
    /// The write was refused (key or value too long, table full, ...).
    Data(tidings::data::DataError),
    /// The write could not be made durable; it was not acknowledged.
    Io(std::io::Error),
    /// Leaving failed.
    Leave(tidings::members::MemberError),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Stopped => write!(f, "the agent has stopped"),
            AgentError::Data(e) => write!(f, "write refused: {e:?}"),
            AgentError::Io(e) => write!(f, "write not durable: {e}"),
            AgentError::Leave(e) => write!(f, "leave failed: {e:?}"),
        }
    }
}

impl std::error::Error for AgentError {}

/// A member as the agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberInfo {
    /// Its id.
    pub id: u64,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `alive`, `suspect`, `dead` or `left`.
    pub status: &'static str,
    /// Its generation (raised at every restart).
    pub generation: u32,
    /// Its version within the generation.
    pub version: u64,
}

/// The name of a status in reports.
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Alive => "alive",
        Status::Suspect => "suspect",
        Status::Dead => "dead",
        Status::Left => "left",
    }
}

/// Whether a graceful leave was acknowledged by another member before the timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveOutcome {
    /// A member answered a ping that carried the leave: it holds us as left and will spread it.
    Acknowledged,
    /// Nobody answered in time; the leave still spreads if any datagram got through.
    TimedOut,
    /// There was no other member to tell.
    Alone,
}

enum Command {
    Set(
        Vec<u8>,
        Vec<u8>,
        oneshot::Sender<Result<Version, AgentError>>,
    ),
    Delete(
        Vec<u8>,
        oneshot::Sender<Result<Option<Version>, AgentError>>,
    ),
    Get(Vec<u8>, oneshot::Sender<Option<Vec<u8>>>),
    Entries(oneshot::Sender<Vec<(Vec<u8>, Vec<u8>)>>),
    Members(oneshot::Sender<Vec<MemberInfo>>),
    Metrics(oneshot::Sender<Metrics>),
    Leave(Duration, oneshot::Sender<Result<LeaveOutcome, AgentError>>),
    Shutdown,
}

/// A running agent.
pub struct Agent {
    handle: Handle,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

/// A cloneable handle to a running agent.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<AgentEvent>,
    id: NodeId,
    generation: u32,
}

impl Agent {
    /// Binds the socket, restores the data, and starts driving the node.
    pub async fn start(config: AgentConfig) -> Result<Agent, StartError> {
        driver::start(config).await
    }

    /// A handle to this agent.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the driver at once, without leaving: to the cluster this looks like a crash.
    pub fn abort(self) {
        self.task.abort();
    }

    /// Waits until the driver has stopped (after [`Handle::shutdown`] or [`Handle::leave`]).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

impl Handle {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, AgentError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| AgentError::Stopped)?;
        rx.await.map_err(|_| AgentError::Stopped)
    }

    /// Sets `key` to `value`: durable (with a data directory) when this returns, and spreading.
    pub async fn set(&self, key: &[u8], value: &[u8]) -> Result<Version, AgentError> {
        self.ask(|tx| Command::Set(key.to_vec(), value.to_vec(), tx))
            .await?
    }

    /// Deletes `key`; `None` if it was not set.
    pub async fn delete(&self, key: &[u8]) -> Result<Option<Version>, AgentError> {
        self.ask(|tx| Command::Delete(key.to_vec(), tx)).await?
    }

    /// The value of `key`, if set.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, AgentError> {
        self.ask(|tx| Command::Get(key.to_vec(), tx)).await
    }

    /// Every live key and its value, sorted by key.
    pub async fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, AgentError> {
        self.ask(Command::Entries).await
    }

    /// Every member this node knows, tombstones included, sorted by id.
    pub async fn members(&self) -> Result<Vec<MemberInfo>, AgentError> {
        self.ask(Command::Members).await
    }

    /// The counters.
    pub async fn metrics(&self) -> Result<Metrics, AgentError> {
        self.ask(Command::Metrics).await
    }

    /// Membership and data events from now on. A subscriber that falls more than
    /// `events_capacity` behind misses the oldest ones (and is told how many).
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.events.subscribe()
    }

    /// Leaves gracefully, then stops the agent: waits until another member acknowledged the leave
    /// or `timeout` passed.
    pub async fn leave(&self, timeout: Duration) -> Result<LeaveOutcome, AgentError> {
        self.ask(|tx| Command::Leave(timeout, tx)).await?
    }

    /// Stops the agent without leaving (the cluster will see it fail).
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }
}
