//! The driver task: datagrams, timers and commands in; datagrams, events and replies out.

use crate::commits::{Commits, Pending, Reply};
use crate::journal::Journal;
use crate::names;
use crate::store::{unix_ms, unix_us, OpenError, Opened, Store};
use crate::{
    kv_event, status_name, Agent, AgentConfig, AgentError, AgentEvent, Command, Deleted, Handle,
    LeaveOutcome, MemberInfo, Metrics, Readiness, StartError,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tidings::data::MergeOutcome;
use tidings::members::Status;
use tidings::node::{AllocStorage, Event, Node};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant as Clock;

/// The agent's node: server storage, room for many anti-entropy exchanges at once (a large
/// divergence, a burst or a restart after downtime, is repaired by many exchanges in flight rather
/// than a few at a time), and an event queue no single datagram can overflow: the agent drains it
/// after every input, and a datagram of 1,200 bytes holds fewer than 256 changes.
pub(crate) type AgentNode = Node<AllocStorage, SYNC_TASKS, QUEUE>;

/// Anti-entropy work items an agent's node holds at once (the core's default is 32).
const SYNC_TASKS: usize = 1024;

/// Events (and outgoing items) an agent's node holds between drains (the core's default is 32).
const QUEUE: usize = 256;

/// Builds the node on a thread of its own with a large stack, and boxes it there. With its work
/// items the node is a few hundred kilobytes, and an unoptimized build keeps several copies of it on
/// the stack while it is built: more than a caller's task or test thread may have.
async fn build_node(
    config: tidings::config::Config,
    addr: std::net::SocketAddr,
    meta: Vec<u8>,
    seed: u64,
) -> Result<Box<AgentNode>, StartError> {
    let (tx, rx) = oneshot::channel();
    let built = std::thread::Builder::new()
        .name("tidings-node-init".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let node = AgentNode::new(config, tidings::Instant::ZERO, addr, &meta, seed);
            let _ = tx.send(node.map(Box::new));
        });
    built.map_err(StartError::Thread)?;
    match rx.await {
        Ok(r) => r.map_err(StartError::Node),
        Err(_) => Err(StartError::Thread(std::io::Error::other(
            "the thread building the node ended without it",
        ))),
    }
}

pub(crate) async fn start(config: AgentConfig) -> Result<Agent, StartError> {
    let mut node_config = config.node;
    let opened = match &config.data_dir {
        Some(path) => {
            let o = Store::open(path, config.recover).map_err(StartError::DataDir)?;
            node_config.generation = o.generation;
            Some(o)
        }
        None => None,
    };
    let meta = names::encode(config.name.as_deref(), &config.meta).map_err(StartError::Name)?;
    let socket = UdpSocket::bind(config.bind)
        .await
        .map_err(StartError::Bind)?;
    let local_addr = socket.local_addr().map_err(StartError::Bind)?;
    let epoch = Clock::now();
    // Random, so that two agents sharing a name and a generation (a misconfiguration, or a start
    // without a data directory) still draw different choices and encryption nonces.
    let seed = os_random() ^ unix_ms() ^ node_config.node.0.rotate_left(17);
    let mut node = build_node(node_config, local_addr, meta, seed).await?;
    node.set_wall_clock(tidings::Instant::ZERO, unix_us());
    let mut recovering = false;
    let mut moved_aside = 0;
    let commits = match opened {
        Some(o) => {
            for file in &o.moved_aside {
                tracing::warn!(file = %file.display(), "damaged data moved aside");
            }
            restore(&mut node, &o)?;
            moved_aside = o.moved_aside.len() as u64;
            recovering = o.recovering;
            if recovering {
                tracing::warn!(
                    dir = %o.store.path().display(),
                    "recovering: this node's data is refilled from its peers; not ready until a \
                     peer's data matches ours"
                );
            }
            Some(Commits::new(o.store, &o.records))
        }
        None => None,
    };
    for &seed in &config.seeds {
        node.join(seed);
    }
    let (commands, rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(config.events_capacity.max(1));
    let journal = Arc::new(Journal::new(config.events_history));
    let handle = Handle {
        commands,
        events: events.clone(),
        journal: journal.clone(),
        http: Default::default(),
        addr: local_addr,
        id: node_config.node,
        generation: node_config.generation,
    };
    tracing::info!(
        node = node_config.node.0,
        generation = node_config.generation,
        addr = %local_addr,
        seeds = config.seeds.len(),
        "agent started"
    );
    let driver = Driver {
        node,
        socket,
        epoch,
        commits,
        recovering,
        moved_aside,
        events,
        journal,
        has_seeds: !config.seeds.is_empty(),
        send_errors: 0,
        leaving: None,
        out: vec![0; 65_536],
    };
    let task = tokio::spawn(driver.run(rx));
    Ok(Agent {
        handle,
        local_addr,
        task,
    })
}

/// Loads the stored records into the node. A record the node refuses (its limits were lowered
/// since it was written) stops the start: dropping it would lose it silently.
fn restore(node: &mut AgentNode, o: &Opened) -> Result<(), StartError> {
    node.observe_clock(o.clock);
    let now_ms = unix_ms();
    let mut refused = 0usize;
    for r in &o.records {
        let outcome = node.restore(tidings::Instant::ZERO, &r.to_wire(now_ms));
        if matches!(outcome, Err(_) | Ok(MergeOutcome::Full)) {
            refused += 1;
        }
    }
    if refused > 0 {
        let path = o.store.path().join(crate::store::DATA_FILE);
        return Err(StartError::DataDir(OpenError::Damaged {
            path,
            detail: format!(
                "{refused} records do not fit this node's limits (key and value lengths, or the \
                 number of keys); start with the limits they were written under"
            ),
        }));
    }
    tracing::info!(
        dir = %o.store.path().display(),
        records = o.records.len(),
        live = node.data().len(),
        "restored data"
    );
    Ok(())
}

struct Driver {
    node: Box<AgentNode>,
    socket: UdpSocket,
    epoch: Clock,
    /// With a data directory: the writes on their way to disk.
    commits: Option<Commits>,
    /// The data is being refilled from peers (`--recover`).
    recovering: bool,
    /// Damaged files moved aside at start.
    moved_aside: u64,
    events: broadcast::Sender<AgentEvent>,
    /// The numbered events behind `GET /v1/events`.
    journal: Arc<Journal>,
    /// It was given seeds: ready only once joined and in sync with a peer.
    has_seeds: bool,
    send_errors: u64,
    leaving: Option<(Clock, oneshot::Sender<Result<LeaveOutcome, AgentError>>)>,
    out: Vec<u8>,
}

/// How often the wall clock is given to the node and peers' writes are considered for a commit.
const TICK: Duration = Duration::from_millis(50);

/// The commit on disk, if any.
async fn committed(
    commits: &mut Option<Commits>,
) -> Result<crate::store::Committed, crate::store::CommitFailed> {
    match commits {
        Some(c) => c.done().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn now(&self) -> tidings::Instant {
        tidings::Instant::from_millis(self.epoch.elapsed().as_millis() as u64)
    }

    fn deadline(&self, t: tidings::Instant) -> Clock {
        self.epoch + Duration::from_millis(t.as_millis())
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 65_536];
        let mut tick = tokio::time::interval(TICK);
        loop {
            let wake = self.node.poll_timeout().map_or_else(
                || Clock::now() + Duration::from_secs(3600),
                |t| self.deadline(t),
            );
            let wake = match &self.leaving {
                Some((until, _)) => wake.min(*until),
                None => wake,
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let now = self.now();
                        if let Err(e) = self.node.handle_datagram(now, from, &mut buf[..n]) {
                            tracing::debug!(%from, error = ?e, "datagram refused");
                        }
                    }
                    // ICMP errors from earlier sends surface here on some systems; keep going.
                    Err(e) => tracing::debug!(error = %e, "recv"),
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = self.now();
                    self.node.handle_timeout(now);
                }
                _ = tick.tick() => {
                    let now = self.now();
                    self.node.set_wall_clock(now, unix_us());
                }
                r = committed(&mut self.commits) => {
                    let now = self.now();
                    if let Some(c) = self.commits.as_mut() {
                        c.finish(now, r, &mut self.node);
                    }
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown) | None => {
                        self.flush().await;
                        tracing::info!("agent stopped");
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                },
            }
            self.drain().await;
            self.check_recovered();
            let now = self.now();
            if let Some(c) = self.commits.as_mut() {
                c.start(now, &self.node);
            }
            if let Some((until, _)) = &self.leaving {
                let outcome = if self.node.members().live() <= 1 {
                    Some(LeaveOutcome::Alone)
                } else if self.node.leave_acknowledged() {
                    Some(LeaveOutcome::Acknowledged)
                } else if Clock::now() >= *until {
                    Some(LeaveOutcome::TimedOut)
                } else {
                    None
                };
                if let Some((outcome, Some((_, reply)))) = outcome.map(|o| (o, self.leaving.take()))
                {
                    self.flush().await;
                    tracing::info!(?outcome, "left the cluster");
                    let _ = reply.send(Ok(outcome));
                    return;
                }
            }
        }
    }

    /// Sends what the node has to send and publishes its events.
    async fn drain(&mut self) {
        let now = self.now();
        while let Some(t) = self.node.poll_transmit(now, &mut self.out) {
            if let Err(e) = self.socket.send_to(&self.out[..t.len], t.to).await {
                self.send_errors += 1;
                tracing::debug!(to = %t.to, error = %e, "send");
            }
        }
        while let Some(event) = self.node.poll_event() {
            match (&event, self.commits.as_mut()) {
                (Event::DataChanged(key), Some(c)) => c.peer_changed(key.clone()),
                // Some changes were not reported: compare memory and disk whole.
                (Event::Lagged(_), Some(c)) => c.resync(&self.node),
                _ => {}
            }
            match &event {
                Event::DataChanged(_) => tracing::trace!(?event),
                _ => tracing::info!(?event, "membership"),
            }
            self.journal_event(&event);
            // No subscriber is fine; a lagging one learns how much it missed from the channel.
            let _ = self.events.send(event);
        }
    }

    /// Numbers the event in the journal, with what the node holds now.
    fn journal_event(&self, event: &AgentEvent) {
        let (what, id) = match event {
            Event::MemberJoined(id) => ("joined", id),
            Event::MemberUpdated(id) => ("updated", id),
            Event::MemberSuspected(id) => ("suspected", id),
            Event::MemberFailed(id) => ("failed", id),
            Event::MemberLeft(id) => ("left", id),
            Event::MemberRestarted(id) => ("restarted", id),
            Event::DataChanged(key) => {
                let data = match self.node.data().record(key) {
                    Some(r) => kv_event(key, r.value(), r.version(), "peer"),
                    None => return,
                };
                self.journal.push("kv", data, Some(key.clone()));
                return;
            }
            Event::Lagged(n) => {
                let data = json!({ "reason": "events lost before the agent", "lost": n });
                self.journal.push("reset", data, None);
                return;
            }
            Event::IdConflict(addr) => {
                let data = json!({
                    "event": "conflict",
                    "id": self.node.id().0,
                    "addr": addr.to_string(),
                    "reason": "another node claims this node's id",
                });
                self.journal.push("member", data, None);
                return;
            }
        };
        let mut data = json!({ "event": what, "id": id.0 });
        if let Some(m) = self.node.members().get(*id) {
            if let Some(name) = names::split(m.meta()).0 {
                data["name"] = name.into();
            }
            data["addr"] = m.addr().to_string().into();
            data["status"] = status_name(m.status()).into();
            data["generation"] = m.generation().into();
        }
        self.journal.push("member", data, None);
    }

    /// A recovering node is refilled once a peer's data root matched ours, and ours is not empty
    /// (an empty peer, another recovering one, proves nothing).
    fn check_recovered(&mut self) {
        let refilled =
            self.node.data_in_sync_at().is_some() && self.node.data().records().next().is_some();
        if self.recovering && refilled {
            self.recovering = false;
            if let Some(c) = self.commits.as_mut() {
                c.recovered();
            }
            tracing::info!(
                keys = self.node.data().len(),
                "recovered: a peer's data matches ours; ready"
            );
        }
    }

    /// Commits everything waiting, and waits for it: at shutdown.
    async fn flush(&mut self) {
        let now = self.now();
        let Some(c) = self.commits.as_mut() else {
            return;
        };
        while c.backlog() > 0 {
            c.start(now, &self.node);
            let r = c.done().await;
            let failed = r.is_err();
            c.finish(now, r, &mut self.node);
            if failed {
                return;
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        if matches!(cmd, Command::Set(..) | Command::Delete(..)) {
            // A version precise to the microsecond, not to the last tick.
            self.node.set_wall_clock(now, unix_us());
        }
        match cmd {
            Command::Set(key, value, reply) => match self.commits.as_mut() {
                None => {
                    let _ = reply.send(self.node.set(now, &key, &value).map_err(AgentError::Data));
                }
                Some(c) => match self.node.prepare_write(now, &key, Some(&value)) {
                    Ok(prepared) => c.local(Pending {
                        key,
                        value: Some(value),
                        prepared,
                        reply: Reply::Set(reply),
                    }),
                    Err(e) => {
                        let _ = reply.send(Err(AgentError::Data(e)));
                    }
                },
            },
            Command::Delete(key, reply) => {
                let existed = self.node.get(&key).is_some();
                match self.commits.as_mut() {
                    None => {
                        let r = self.node.delete(now, &key).map_err(AgentError::Data);
                        let _ = reply.send(r.map(|version| Deleted { version, existed }));
                    }
                    Some(c) => match self.node.prepare_write(now, &key, None) {
                        Ok(prepared) => c.local(Pending {
                            key,
                            value: None,
                            prepared,
                            reply: Reply::Delete { existed, reply },
                        }),
                        Err(e) => {
                            let _ = reply.send(Err(AgentError::Data(e)));
                        }
                    },
                }
            }
            Command::Ready(reply) => {
                let joined =
                    self.node.members().live() > 1 && self.node.data_in_sync_at().is_some();
                let _ = reply.send(if self.recovering {
                    Readiness::Recovering
                } else if self.has_seeds && !joined {
                    Readiness::Joining
                } else {
                    Readiness::Ready
                });
            }
            Command::Get(key, reply) => {
                let _ = reply.send(self.node.get(&key).map(<[u8]>::to_vec));
            }
            Command::Entries(reply) => {
                let mut all: Vec<(Vec<u8>, Vec<u8>)> = self
                    .node
                    .data()
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect();
                all.sort();
                let _ = reply.send(all);
            }
            Command::Members(reply) => {
                let mut all: Vec<MemberInfo> = self
                    .node
                    .members()
                    .iter()
                    .map(|m| MemberInfo {
                        id: m.id().0,
                        name: names::split(m.meta()).0.map(str::to_owned),
                        addr: m.addr(),
                        status: status_name(m.status()),
                        generation: m.generation(),
                        version: m.version(),
                    })
                    .collect();
                all.sort_by_key(|m| m.id);
                let _ = reply.send(all);
            }
            Command::Metrics(reply) => {
                let _ = reply.send(self.metrics());
            }
            Command::Join(seeds) => {
                self.has_seeds |= !seeds.is_empty();
                for seed in seeds {
                    self.node.join(seed);
                }
            }
            Command::Leave(timeout, reply) => match self.node.leave(now) {
                Ok(()) => self.leaving = Some((Clock::now() + timeout, reply)),
                Err(e) => {
                    let _ = reply.send(Err(AgentError::Leave(e)));
                }
            },
            Command::Shutdown => {}
        }
    }

    fn metrics(&self) -> Metrics {
        let members = self.node.members();
        Metrics {
            node: self.node.id().0,
            generation: self.node.config().generation,
            members_alive: members.count(Status::Alive),
            members_suspect: members.count(Status::Suspect),
            members_dead: members.count(Status::Dead),
            members_left: members.count(Status::Left),
            keys: self.node.data().len(),
            health_score: self.node.health_score(),
            send_errors: self.send_errors,
            recovering: self.recovering,
            moved_aside: self.moved_aside,
            commit_backlog: self.commits.as_ref().map_or(0, Commits::backlog),
            commits: self.commits.as_ref().map(|c| c.stats),
            node_stats: *self.node.stats(),
            sync: *self.node.sync_stats(),
            data: *self.node.data().stats(),
            gossip: *self.node.gossip_stats(),
            members: *self.node.members().stats(),
        }
    }
}

/// 64 bits of the operating system's randomness: std keys every `RandomState` from it.
fn os_random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
