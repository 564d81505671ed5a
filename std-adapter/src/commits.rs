//! Group commit: the writes waiting for the disk, the one commit on it, and what happens when it
//! returns.
//!
//! A local write is prepared by the node (its version reserved, nothing applied), waits here, goes
//! to disk in the next commit with every other write that arrived meanwhile, and only then is
//! applied to the node and acknowledged; if the commit fails it is answered with the error and never
//! applied. Keys changed by peers are already applied in memory (anti-entropy would bring them back
//! after a crash); they ride in the same commits, and a failed commit keeps them for the next.
//!
//! A commit starts as soon as there is anything to commit and no commit is on disk: a lone write
//! pays one fsync and no wait, and under load each commit takes everything that came in during the
//! previous one.

use crate::store::{unix_ms, Batch, Committed, Saved, Store};
use crate::{AgentError, Deleted};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidings::node::{AllocStorage, Node};
use tidings::{data::DataError, Version};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often expired tombstones are dropped from disk.
const COLLECT_EVERY: Duration = Duration::from_secs(600);

/// Who waits for a local write.
pub(crate) enum Reply {
    Set(oneshot::Sender<Result<Version, AgentError>>),
    Delete {
        existed: bool,
        reply: oneshot::Sender<Result<Deleted, AgentError>>,
    },
}

impl Reply {
    fn send(self, r: Result<Version, AgentError>) {
        // A client that went away does not need its answer.
        match self {
            Reply::Set(tx) => {
                let _ = tx.send(r);
            }
            Reply::Delete { existed, reply } => {
                let _ = reply.send(r.map(|version| Deleted { version, existed }));
            }
        }
    }
}

/// A local write, prepared, waiting for its commit.
pub(crate) struct Pending {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub version: Version,
    pub reply: Reply,
}

struct InFlight {
    task: JoinHandle<std::io::Result<Committed>>,
    local: Vec<Pending>,
    peer_keys: Vec<Vec<u8>>,
    recovered: bool,
}

/// Counters of the commits, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CommitStats {
    /// Commits made.
    pub commits: u64,
    /// Commits that failed (their local writes were answered with the error, nothing applied).
    pub failed: u64,
    /// Local writes committed and applied.
    pub local_writes: u64,
    /// Local writes refused because their commit failed.
    pub local_refused: u64,
    /// Records of peers' writes committed.
    pub peer_writes: u64,
    /// The largest number of records in one commit.
    pub largest_batch: u64,
    /// Expired tombstones dropped from disk.
    pub collected: u64,
}

pub(crate) struct Commits {
    store: Arc<Store>,
    local: Vec<Pending>,
    peer: HashSet<Vec<u8>>,
    in_flight: Option<InFlight>,
    next_collect: Instant,
    recovered: bool,
    /// The recovered mark has not been committed yet.
    recovered_unsaved: bool,
    failing_since: Option<Instant>,
    pub stats: CommitStats,
}

impl Commits {
    pub fn new(store: Store) -> Self {
        let now = Instant::now();
        Commits {
            store: Arc::new(store),
            local: Vec::new(),
            peer: HashSet::new(),
            in_flight: None,
            next_collect: now,
            recovered: false,
            recovered_unsaved: false,
            failing_since: None,
            stats: CommitStats::default(),
        }
    }

    pub fn local(&mut self, write: Pending) {
        self.local.push(write);
    }

    pub fn peer_changed(&mut self, key: Vec<u8>) {
        self.peer.insert(key);
    }

    /// Clears the recovering mark with the next commit.
    pub fn recovered(&mut self) {
        self.recovered = true;
        self.recovered_unsaved = true;
    }

    /// Writes waiting, and in the commit on disk.
    pub fn backlog(&self) -> usize {
        let on_disk = self
            .in_flight
            .as_ref()
            .map_or(0, |f| f.local.len() + f.peer_keys.len());
        self.local.len() + self.peer.len() + on_disk
    }

    /// Starts a commit of everything waiting, unless one is on disk already or nothing waits.
    pub fn start(&mut self, at: tidings::Instant, node: &Node<AllocStorage>) {
        let now = Instant::now();
        let collect_due = now >= self.next_collect;
        let waiting = !self.local.is_empty() || !self.peer.is_empty() || self.recovered_unsaved;
        if self.in_flight.is_some() || !(waiting || collect_due) {
            return;
        }
        let unix = unix_ms();
        let data = node.data();
        let local = std::mem::take(&mut self.local);
        let peer_keys: Vec<Vec<u8>> = self.peer.drain().collect();
        let mut writes = Vec::with_capacity(local.len() + peer_keys.len());
        for w in &local {
            writes.push(Saved {
                key: w.key.clone(),
                version: w.version,
                value: w.value.clone(),
                deleted_at_ms: if w.value.is_none() { unix } else { 0 },
            });
        }
        for k in &peer_keys {
            if let Some(r) = data.record(k) {
                writes.push(Saved::from_wire(&data.to_wire(r, at), unix));
            }
        }
        let collect_before_ms = collect_due.then(|| {
            self.next_collect = now + COLLECT_EVERY;
            unix.saturating_sub(node.config().data.tombstone_grace.as_millis())
        });
        self.stats.largest_batch = self.stats.largest_batch.max(writes.len() as u64);
        let batch = Batch {
            writes,
            clock: data.clock(),
            recovered: self.recovered,
            collect_before_ms,
        };
        let store = self.store.clone();
        self.recovered_unsaved = false;
        self.in_flight = Some(InFlight {
            task: tokio::task::spawn_blocking(move || store.commit(&batch)),
            local,
            peer_keys,
            recovered: self.recovered,
        });
    }

    /// Waits for the commit on disk; pending forever when there is none.
    pub async fn done(&mut self) -> std::io::Result<Committed> {
        match self.in_flight.as_mut() {
            Some(f) => match (&mut f.task).await {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(format!(
                    "the commit task failed: {e}"
                ))),
            },
            None => std::future::pending().await,
        }
    }

    /// The commit on disk returned `result`: applies and acknowledges its local writes, or answers
    /// them with the error.
    pub fn finish(
        &mut self,
        now: tidings::Instant,
        result: std::io::Result<Committed>,
        node: &mut Node<AllocStorage>,
    ) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        match result {
            Ok(c) => {
                if let Some(since) = self.failing_since.take() {
                    tracing::info!(
                        failing_for = ?since.elapsed(),
                        "the data directory takes writes again"
                    );
                }
                self.stats.commits += 1;
                self.stats.peer_writes += f.peer_keys.len() as u64;
                self.stats.collected += c.collected as u64;
                for w in f.local {
                    let r = match node.apply_write(now, &w.key, w.value.as_deref(), w.version) {
                        Ok(v) => Ok(v),
                        // Durable, and a newer write of the key arrived meanwhile: last writer wins.
                        Err(DataError::Superseded) => Ok(w.version),
                        // On disk but not in memory (the table filled meanwhile): refused.
                        Err(e) => Err(AgentError::Data(e)),
                    };
                    self.stats.local_writes += u64::from(r.is_ok());
                    w.reply.send(r);
                }
            }
            Err(e) => {
                self.stats.failed += 1;
                self.stats.local_refused += f.local.len() as u64;
                if self.failing_since.is_none() {
                    self.failing_since = Some(Instant::now());
                    tracing::error!(
                        error = %e,
                        dir = %self.store.path().display(),
                        "cannot commit to the data directory: writes are refused until it can"
                    );
                }
                self.peer.extend(f.peer_keys);
                if f.recovered {
                    self.recovered_unsaved = true;
                }
                for w in f.local {
                    w.reply.send(Err(AgentError::Io(std::io::Error::new(
                        e.kind(),
                        e.to_string(),
                    ))));
                }
            }
        }
    }
}
