//! Group commit: the writes waiting for the disk, the one commit on it, and what happens when it
//! returns.
//!
//! A local write is prepared by the node (its version and, for a new key, a table slot reserved;
//! nothing applied), waits here, goes to disk in the next commit with every other write that arrived
//! meanwhile, and only then is applied to the node and acknowledged. If the commit fails, the file is
//! opened again and read back: a write that reached the disk after all is applied and acknowledged,
//! one that did not is answered with the error and given up; if the file cannot be read back, the
//! write is answered "outcome unknown" and written again by the next commit that works, so memory
//! and disk never disagree.
//!
//! Keys changed by peers are already applied in memory (anti-entropy would bring them back after a
//! crash); they ride in the same commits, and a failed commit keeps them for the next. A key that a
//! peer's write removed from memory (a tombstone that expired on its way) is removed from disk too.
//! The versions on disk are kept here, so that when the node dropped change events
//! ([`tidings::node::Event::Lagged`]) memory and disk can be compared whole.
//!
//! A commit starts as soon as there is anything to commit and no commit is on disk: a lone write
//! pays one commit and no wait, and under load each commit takes everything that came in during the
//! previous one.

use crate::store::{unix_ms, Batch, CommitFailed, Committed, Saved, Store};
use crate::{AgentError, Deleted};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidings::data::{DataError, Prepared};
use tidings::Version;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often expired tombstones are dropped from disk.
const COLLECT_EVERY: Duration = Duration::from_secs(600);

use crate::driver::AgentNode;

/// Who waits for a local write.
pub(crate) enum Reply {
    Set(oneshot::Sender<Result<Version, AgentError>>),
    Delete {
        existed: bool,
        reply: oneshot::Sender<Result<Deleted, AgentError>>,
    },
    /// Nobody: the client was told the outcome was unknown.
    Gone,
}

impl Reply {
    fn send(&mut self, r: Result<Version, AgentError>) {
        // A client that went away does not need its answer.
        match std::mem::replace(self, Reply::Gone) {
            Reply::Set(tx) => {
                let _ = tx.send(r);
            }
            Reply::Delete { existed, reply } => {
                let _ = reply.send(r.map(|version| Deleted { version, existed }));
            }
            Reply::Gone => {}
        }
    }
}

/// A local write, prepared, waiting for its commit.
pub(crate) struct Pending {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub prepared: Prepared,
    pub reply: Reply,
}

impl Pending {
    fn saved(&self, unix: u64) -> Saved {
        Saved {
            key: self.key.clone(),
            version: self.prepared.version,
            value: self.value.clone(),
            deleted_at_ms: if self.value.is_none() { unix } else { 0 },
        }
    }
}

type CommitResult = Result<Committed, CommitFailed>;

struct InFlight {
    task: JoinHandle<CommitResult>,
    /// The batch's writes and removals, to record what reached the disk.
    written: Vec<(Vec<u8>, Version)>,
    removed: Vec<Vec<u8>>,
    local: Vec<Pending>,
    peer_keys: Vec<Vec<u8>>,
    recovered: bool,
}

/// Counters of the commits, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CommitStats {
    /// Commits made.
    pub commits: u64,
    /// Commits that failed.
    pub failed: u64,
    /// Local writes committed and applied.
    pub local_writes: u64,
    /// Local writes refused: their commit failed and they are not on disk, or (after their commit)
    /// a limit refused them. Nothing of them was applied.
    pub local_refused: u64,
    /// Local writes whose commit failed and whose file could not be read back: answered "outcome
    /// unknown", written again by the next commit that works.
    pub local_unknown: u64,
    /// Records of peers' writes committed.
    pub peer_writes: u64,
    /// Records removed from disk because a peer's write removed them from memory.
    pub removed: u64,
    /// Times memory and disk were compared whole, after the node dropped change events.
    pub resyncs: u64,
    /// The largest number of records in one commit.
    pub largest_batch: u64,
    /// Expired tombstones dropped from disk.
    pub collected: u64,
}

pub(crate) struct Commits {
    store: Arc<Store>,
    local: Vec<Pending>,
    /// Local writes whose outcome is unknown: they go first into the next commit.
    unsure: Vec<Pending>,
    peer: HashSet<Vec<u8>>,
    /// The version of every record on disk.
    on_disk: HashMap<Vec<u8>, Version>,
    in_flight: Option<InFlight>,
    next_collect: Instant,
    recovered: bool,
    /// The recovered mark has not been committed yet.
    recovered_unsaved: bool,
    failing_since: Option<Instant>,
    pub stats: CommitStats,
}

impl Commits {
    /// Commits to `store`, which holds `records`.
    pub fn new(store: Store, records: &[Saved]) -> Self {
        Commits {
            store: Arc::new(store),
            local: Vec::new(),
            unsure: Vec::new(),
            peer: HashSet::new(),
            on_disk: records.iter().map(|r| (r.key.clone(), r.version)).collect(),
            in_flight: None,
            next_collect: Instant::now(),
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

    /// The node dropped change events: every key whose version in memory differs from the one on
    /// disk goes into the next commit.
    pub fn resync(&mut self, node: &AgentNode) {
        self.stats.resyncs += 1;
        let data = node.data();
        for r in data.records() {
            if self.on_disk.get(r.key()) != Some(&r.version()) {
                self.peer.insert(r.key().to_vec());
            }
        }
        for key in self.on_disk.keys() {
            if data.record(key).is_none() {
                self.peer.insert(key.clone());
            }
        }
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
        self.local.len() + self.unsure.len() + self.peer.len() + on_disk
    }

    /// The batch of everything waiting: the local writes, then the peers' keys as their records
    /// stand in memory now, or as removals for keys no longer held.
    fn batch(&mut self, at: tidings::Instant, node: &AgentNode, collect: bool) -> Batch {
        let unix = unix_ms();
        let data = node.data();
        let mut writes: Vec<Saved> = self
            .unsure
            .iter()
            .chain(&self.local)
            .map(|w| w.saved(unix))
            .collect();
        let mut removals = Vec::new();
        for k in &self.peer {
            match data.record(k) {
                Some(r) => writes.push(Saved::from_wire(&data.to_wire(r, at), unix)),
                None => removals.extend(self.on_disk.get(k).map(|&v| (k.clone(), v))),
            }
        }
        let collect_before_ms = collect.then(|| {
            self.next_collect = Instant::now() + COLLECT_EVERY;
            unix.saturating_sub(node.config().data.tombstone_grace.as_millis())
        });
        Batch {
            writes,
            removals,
            clock: data.clock(),
            recovered: self.recovered,
            collect_before_ms,
        }
    }

    /// Starts a commit of everything waiting, unless one is on disk already or nothing waits.
    pub fn start(&mut self, at: tidings::Instant, node: &AgentNode) {
        let collect = Instant::now() >= self.next_collect;
        let waiting = !self.local.is_empty()
            || !self.unsure.is_empty()
            || !self.peer.is_empty()
            || self.recovered_unsaved;
        if self.in_flight.is_some() || !(waiting || collect) {
            return;
        }
        let batch = self.batch(at, node, collect);
        self.stats.largest_batch = self.stats.largest_batch.max(batch.writes.len() as u64);
        let written = batch
            .writes
            .iter()
            .map(|w| (w.key.clone(), w.version))
            .collect();
        let removed = batch.removals.iter().map(|(k, _)| k.clone()).collect();
        let mut local = std::mem::take(&mut self.unsure);
        local.append(&mut self.local);
        let store = self.store.clone();
        self.recovered_unsaved = false;
        self.in_flight = Some(InFlight {
            task: tokio::task::spawn_blocking(move || store.commit(&batch)),
            written,
            removed,
            local,
            peer_keys: self.peer.drain().collect(),
            recovered: self.recovered,
        });
    }

    /// Waits for the commit on disk; pending forever when there is none.
    pub async fn done(&mut self) -> CommitResult {
        match self.in_flight.as_mut() {
            Some(f) => match (&mut f.task).await {
                Ok(r) => r,
                Err(e) => Err(CommitFailed {
                    error: std::io::Error::other(format!("the commit task failed: {e}")),
                    landed: None,
                }),
            },
            None => std::future::pending().await,
        }
    }

    /// The commit on disk returned `result`: applies and acknowledges what is on disk, answers the
    /// rest with the error.
    pub fn finish(&mut self, now: tidings::Instant, result: CommitResult, node: &mut AgentNode) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        let landed: Vec<bool> = match &result {
            Ok(c) => {
                self.committed(c, &f);
                vec![true; f.written.len()]
            }
            Err(e) => {
                self.failed(&e.error, &f);
                e.landed.clone().unwrap_or_default()
            }
        };
        for ((key, version), _) in f.written.iter().zip(&landed).filter(|(_, &l)| l) {
            let v = self.on_disk.entry(key.clone()).or_insert(*version);
            *v = (*v).max(*version);
        }
        let unknown = matches!(&result, Err(e) if e.landed.is_none());
        // The batch's writes start with its local ones, in order.
        for (i, mut w) in f.local.into_iter().enumerate() {
            if landed.get(i).copied().unwrap_or(false) {
                self.apply(now, &mut w, node);
            } else if unknown {
                self.stats.local_unknown += 1;
                let e = result.as_ref().err().map(|e| e.error.to_string());
                w.reply
                    .send(Err(AgentError::Io(std::io::Error::other(format!(
                        "write outcome unknown (it may yet take effect): {}",
                        e.unwrap_or_default()
                    )))));
                self.unsure.push(w);
            } else {
                self.stats.local_refused += 1;
                node.abandon_write(w.prepared);
                let e = result
                    .as_ref()
                    .err()
                    .map(|e| (e.error.kind(), e.error.to_string()));
                let (kind, text) = e.unwrap_or((std::io::ErrorKind::Other, String::new()));
                w.reply
                    .send(Err(AgentError::Io(std::io::Error::new(kind, text))));
            }
        }
    }

    fn committed(&mut self, c: &Committed, f: &InFlight) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(failing_for = ?since.elapsed(), "the data directory takes writes again");
        }
        self.stats.commits += 1;
        self.stats.peer_writes += f.peer_keys.len() as u64;
        self.stats.collected += c.collected as u64;
        self.stats.removed += c.removed as u64;
        for k in &f.removed {
            self.on_disk.remove(k);
        }
    }

    fn failed(&mut self, e: &std::io::Error, f: &InFlight) {
        self.stats.failed += 1;
        if self.failing_since.is_none() {
            self.failing_since = Some(Instant::now());
            tracing::error!(
                error = %e,
                dir = %self.store.path().display(),
                "cannot commit to the data directory: writes are refused until it can"
            );
        }
        self.peer.extend(f.peer_keys.iter().cloned());
        self.peer.extend(f.removed.iter().cloned());
        if f.recovered {
            self.recovered_unsaved = true;
        }
    }

    /// Applies a local write that is on disk, and acknowledges it.
    fn apply(&mut self, now: tidings::Instant, w: &mut Pending, node: &mut AgentNode) {
        let r = match node.apply_write(now, &w.key, w.value.as_deref(), w.prepared) {
            Ok(v) => Ok(v),
            // Durable, and a newer write of the key arrived meanwhile: last writer wins.
            Err(DataError::Superseded) => Ok(w.prepared.version),
            // Cannot happen for a prepared write (its slot was held); refused and counted if it did.
            Err(e) => Err(AgentError::Data(e)),
        };
        match r {
            Ok(_) => self.stats.local_writes += 1,
            Err(_) => self.stats.local_refused += 1,
        }
        w.reply.send(r);
    }
}
