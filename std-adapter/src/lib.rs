//! tidings on tokio: one task drives a core [`Node`](tidings::node::Node) over a UDP socket.
//!
//! [`Agent::start`] binds the socket, restores the node's data from its data directory (if any),
//! and spawns the driver: it feeds every datagram and timer to the node, sends what the node asks to
//! send, and serves commands from [`Handle`]s. It makes no protocol decision of its own.
//!
//! With a data directory ([`store`]), a write is acknowledged only once it is on disk, and takes
//! effect (in memory, in gossip) only then: a write whose commit failed is answered with an error
//! and changes nothing. Writes that arrive while a commit is on disk are committed together in the
//! next one, so concurrent writers share one fsync; writes learned from peers are committed in the
//! same batches. Versions follow the wall clock ([`tidings::clock`]): a write acknowledged later in
//! real time wins over an earlier one, on any agent, while the agents' clocks agree to within the
//! time between the two writes.
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

mod commits;
pub mod discovery;
mod driver;
pub mod http;
pub mod journal;
pub mod keys;
pub mod metrics;
pub mod names;
pub mod store;

pub use commits::CommitStats;
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
    /// Start even if the data directory is damaged: move the damaged files aside and refill the
    /// data from the peers ([`store::Store::open`]). Readiness ([`Handle::ready`]) stays false until
    /// a peer's data matched ours.
    pub recover: bool,
    /// This member's name ([`names`]: 1 to 64 bytes of UTF-8), seen by all with its record.
    pub name: Option<String>,
    /// This member's metadata, seen by all (with the name, at most `node.members.max_meta_len`
    /// bytes).
    pub meta: Vec<u8>,
    /// Events a slow subscriber may fall behind before it misses some.
    pub events_capacity: usize,
    /// Events the journal keeps for `GET /v1/events` clients that resume (`Last-Event-ID`) and for
    /// blocking reads: a client further behind is told to read the state again.
    pub events_history: usize,
}

impl AgentConfig {
    /// An agent for `node` listening on `bind`, with no seeds, no data directory, no metadata.
    pub fn new(node: Config, bind: SocketAddr) -> Self {
        AgentConfig {
            node,
            bind,
            seeds: Vec::new(),
            data_dir: None,
            recover: false,
            name: None,
            meta: Vec::new(),
            events_capacity: 1024,
            events_history: 4096,
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
    /// The data directory was refused: damaged, missing data, in use, or unreadable. Nothing in it
    /// was changed.
    DataDir(store::OpenError),
    /// The name is not a valid name.
    Name(names::NameError),
    /// No thread could be started to build the node.
    Thread(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Node(e) => write!(f, "invalid node settings: {e:?}"),
            StartError::Bind(e) => write!(f, "cannot bind the UDP socket: {e}"),
            StartError::DataDir(e) => write!(f, "{e}"),
            StartError::Name(e) => write!(f, "invalid name: {e}"),
            StartError::Thread(e) => write!(f, "cannot start a thread: {e}"),
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
    /// The write was refused (key or value too long, table full, ...). Nothing changed.
    Data(tidings::data::DataError),
    /// The write could not be made durable. Nothing changed: it is neither stored, nor applied,
    /// nor spread.
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
    /// Its name, if its metadata carries one ([`names`]).
    pub name: Option<String>,
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
    Delete(Vec<u8>, oneshot::Sender<Result<Deleted, AgentError>>),
    Get(Vec<u8>, oneshot::Sender<Option<Vec<u8>>>),
    Entries(oneshot::Sender<Vec<(Vec<u8>, Vec<u8>)>>),
    Members(oneshot::Sender<Vec<MemberInfo>>),
    Metrics(oneshot::Sender<Metrics>),
    Ready(oneshot::Sender<Readiness>),
    Leave(Duration, oneshot::Sender<Result<LeaveOutcome, AgentError>>),
    Join(Vec<SocketAddr>),
    Shutdown,
}

/// What a delete did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The tombstone's version.
    pub version: Version,
    /// Whether this agent held a live value for the key (a tombstone is written either way, so a
    /// delete of a write that has not arrived yet still wins over it).
    pub existed: bool,
}

/// Whether the agent is ready to serve reads that reflect the cluster's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Serving.
    Ready,
    /// The data was lost locally (`--recover`) and is being refilled from peers: ready once a peer's
    /// data root has matched ours.
    Recovering,
    /// Given seeds, the node has not yet joined, or no anti-entropy exchange has yet found a peer's
    /// data equal to ours: its reads may not reflect the cluster's data yet.
    Joining,
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
    journal: std::sync::Arc<journal::Journal>,
    http: std::sync::Arc<http::HttpStats>,
    addr: SocketAddr,
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

    /// Sets `key` to `value`: durable (with a data directory) and applied when this returns, and
    /// spreading. On an error nothing changed.
    pub async fn set(&self, key: &[u8], value: &[u8]) -> Result<Version, AgentError> {
        let v = self
            .ask(|tx| Command::Set(key.to_vec(), value.to_vec(), tx))
            .await??;
        commit_wait(v).await;
        self.journal.push(
            "kv",
            kv_event(key, Some(value), v, "local"),
            Some(key.to_vec()),
        );
        Ok(v)
    }

    /// Deletes `key`: durable and applied when this returns, whether or not the key was set here.
    /// On an error nothing changed.
    pub async fn delete(&self, key: &[u8]) -> Result<Deleted, AgentError> {
        let d = self.ask(|tx| Command::Delete(key.to_vec(), tx)).await??;
        commit_wait(d.version).await;
        self.journal.push(
            "kv",
            kv_event(key, None, d.version, "local"),
            Some(key.to_vec()),
        );
        Ok(d)
    }

    /// Whether the agent's data reflects the cluster's ([`Readiness`]).
    pub async fn ready(&self) -> Result<Readiness, AgentError> {
        self.ask(Command::Ready).await
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

    /// The numbered events (member and key changes, local writes included) behind
    /// `GET /v1/events` and blocking reads.
    pub fn journal(&self) -> std::sync::Arc<journal::Journal> {
        self.journal.clone()
    }

    /// The address the node's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Joins (again) through these members' addresses: each is remembered as a seed (the node
    /// re-joins through its seeds by itself when it loses every member) and asked at once.
    pub async fn join(&self, seeds: &[SocketAddr]) -> Result<(), AgentError> {
        self.commands
            .send(Command::Join(seeds.to_vec()))
            .await
            .map_err(|_| AgentError::Stopped)
    }

    /// The HTTP API's counters (connections open and refused, bodies that timed out), kept here so
    /// every server of this agent's API adds to the same ones.
    pub fn http_stats(&self) -> std::sync::Arc<http::HttpStats> {
        self.http.clone()
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

/// The JSON of a key event: the key, the value (or `"deleted": true`), the version, and whether the
/// write was made here (`local`) or learned from a peer (`peer`).
pub(crate) fn kv_event(
    key: &[u8],
    value: Option<&[u8]>,
    version: Version,
    origin: &str,
) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    http::put_bytes(&mut o, "key", key);
    match value {
        Some(v) => http::put_bytes(&mut o, "value", v),
        None => {
            o.insert("deleted".into(), true.into());
        }
    }
    o.insert("version".into(), http::version_text(version).into());
    o.insert("origin".into(), origin.into());
    serde_json::Value::Object(o)
}

/// Holds an acknowledgement until the wall clock has passed the microsecond in the write's version.
/// A write that starts after the acknowledgement, on any agent whose clock agrees with ours, then
/// gets a later microsecond and wins; without the wait, two writes within one microsecond on two
/// agents would be ordered by their counters, not by real time. A commit takes longer than that, so
/// the wait is almost always nothing. A version more than a millisecond ahead of our clock came from
/// a peer whose clock is ahead: waiting would not help, and the write is answered at once.
async fn commit_wait(v: Version) {
    let version_us = v.major >> tidings::clock::COUNTER_BITS;
    if version_us >= store::unix_us().saturating_add(1000) {
        return;
    }
    while store::unix_us() <= version_us {
        tokio::task::yield_now().await;
    }
}
