//! The driver task: datagrams, timers and commands in; datagrams, events and replies out.

use crate::durable::{unix_ms, DataDir, Saved};
use crate::{
    status_name, Agent, AgentConfig, AgentError, AgentEvent, Command, Handle, LeaveOutcome,
    MemberInfo, Metrics, StartError,
};
use std::time::Duration;
use tidings::members::Status;
use tidings::node::{AllocStorage, Event, Node};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant as Clock;

type AgentNode = Node<AllocStorage>;

pub(crate) async fn start(config: AgentConfig) -> Result<Agent, StartError> {
    let mut node_config = config.node;
    let mut dir = match &config.data_dir {
        Some(path) => {
            let d = DataDir::open(path).map_err(StartError::DataDir)?;
            node_config.generation = d.next_generation().map_err(StartError::DataDir)?;
            Some(d)
        }
        None => None,
    };
    let socket = UdpSocket::bind(config.bind)
        .await
        .map_err(StartError::Bind)?;
    let local_addr = socket.local_addr().map_err(StartError::Bind)?;
    let epoch = Clock::now();
    let seed = unix_ms() ^ node_config.node.0.rotate_left(17) ^ u64::from(node_config.generation);
    let mut node = AgentNode::new(
        node_config,
        tidings::Instant::ZERO,
        local_addr,
        &config.meta,
        seed,
    )
    .map_err(StartError::Node)?;
    if let Some(d) = dir.as_mut() {
        let records = d.load().map_err(StartError::DataDir)?;
        let now_ms = unix_ms();
        let mut restored = 0usize;
        for r in &records {
            if node
                .restore(tidings::Instant::ZERO, &r.to_wire(now_ms))
                .is_ok()
            {
                restored += 1;
            }
        }
        tracing::info!(dir = %d.path().display(), restored, "restored data");
    }
    for &seed in &config.seeds {
        node.join(seed);
    }
    let (commands, rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(config.events_capacity.max(1));
    let handle = Handle {
        commands,
        events: events.clone(),
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
        dir,
        events,
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

struct Driver {
    node: AgentNode,
    socket: UdpSocket,
    epoch: Clock,
    dir: Option<DataDir>,
    events: broadcast::Sender<AgentEvent>,
    send_errors: u64,
    leaving: Option<(Clock, oneshot::Sender<Result<LeaveOutcome, AgentError>>)>,
    out: Vec<u8>,
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
        let mut flush = tokio::time::interval(Duration::from_secs(1));
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
                        if let Err(e) = self.node.handle_datagram(now, from, &buf[..n]) {
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
                _ = flush.tick() => self.flush_data(),
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown) | None => {
                        self.flush_data();
                        tracing::info!("agent stopped");
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                },
            }
            self.drain().await;
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
                    self.flush_data();
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
            if let Event::DataChanged(key) = &event {
                let _ = self.persist(key, false);
            }
            match &event {
                Event::DataChanged(_) => tracing::trace!(?event),
                _ => tracing::info!(?event, "membership"),
            }
            // No subscriber is fine; a lagging one learns how much it missed from the channel.
            let _ = self.events.send(event);
        }
    }

    fn persist(&mut self, key: &[u8], sync: bool) -> std::io::Result<()> {
        let Some(dir) = self.dir.as_mut() else {
            return Ok(());
        };
        let now = tidings::Instant::from_millis(self.epoch.elapsed().as_millis() as u64);
        let data = self.node.data();
        let Some(record) = data.record(key) else {
            return Ok(());
        };
        let saved = Saved::from_wire(&data.to_wire(record, now), unix_ms());
        let r = dir.append(&saved, sync);
        if let Err(e) = &r {
            tracing::error!(error = %e, "cannot write the data log");
        }
        r
    }

    fn flush_data(&mut self) {
        let now = self.now();
        let Some(dir) = self.dir.as_mut() else {
            return;
        };
        if let Err(e) = dir.flush() {
            tracing::error!(error = %e, "cannot flush the data log");
        }
        if dir.should_compact() {
            let data = self.node.data();
            let unix = unix_ms();
            let all = data
                .records()
                .map(|r| Saved::from_wire(&data.to_wire(r, now), unix))
                .collect::<Vec<_>>();
            match dir.compact(all.into_iter()) {
                Ok(()) => tracing::info!("data log compacted"),
                Err(e) => tracing::error!(error = %e, "cannot compact the data log"),
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Set(key, value, reply) => {
                let r = match self.node.set(now, &key, &value) {
                    Ok(v) => self.persist(&key, true).map(|()| v).map_err(AgentError::Io),
                    Err(e) => Err(AgentError::Data(e)),
                };
                let _ = reply.send(r);
            }
            Command::Delete(key, reply) => {
                let r = match self.node.delete(now, &key) {
                    Ok(Some(v)) => self
                        .persist(&key, true)
                        .map(|()| Some(v))
                        .map_err(AgentError::Io),
                    Ok(None) => Ok(None),
                    Err(e) => Err(AgentError::Data(e)),
                };
                let _ = reply.send(r);
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
            node_stats: *self.node.stats(),
            sync: *self.node.sync_stats(),
        }
    }
}
