//! The agent's durable replica: the node's generation and every entry of its data, in a data
//! directory.
//!
//! - `data.redb` is a [redb](https://www.redb.org) database: copy-on-write B-trees with a checksum on
//!   every page and atomic commits. Every commit is made in two phases and fsynced before it returns,
//!   so a crash at any moment leaves the last commit or the one before it, never a part of one, and a
//!   damaged primary commit is reported rather than rolled back. The whole file is verified at every
//!   open: a byte flipped on disk stops the agent with an error naming the file.
//! - `generation` holds the last generation used, written atomically after the database records it.
//!   It is the witness that data existed: a data file missing, replaced by an empty one, or older than
//!   the generation says, is refused the same way.
//!
//! A refused data directory keeps all it holds: nothing is moved, truncated or rewritten (redb's
//! own check may rewrite its allocator bookkeeping). [`Store::open`] with `recover` moves the damaged files
//! aside (`*.damaged-<unix ms>`), starts an empty replica marked as recovering, and the agent refills
//! it from its peers; the mark is cleared by the first commit after a peer's data root matched ours.
//!
//! Writes arrive in [`Batch`]es: the agent groups every write that came in while the previous commit
//! was on disk, so concurrent writers share one fsync. A batch keeps the newest version of each key
//! (an older version never replaces a newer one on disk, whatever order batches come in) and the
//! clock's high-water mark, so a restart never makes a version below one already used.

use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tidings::data::{WireEntry, WireValue};
use tidings::Version;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

/// The database file in a data directory.
pub const DATA_FILE: &str = "data.redb";
/// The generation file in a data directory.
pub const GENERATION_FILE: &str = "generation";
/// Files of the append-only log that earlier versions kept.
const LEGACY_FILES: [&str; 2] = ["data.log", "data.snap"];

/// key -> [`Stored`].
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// (deletion time in Unix ms, big-endian) ++ key -> (): tombstones in the order they expire.
const TOMBSTONES: TableDefinition<&[u8], ()> = TableDefinition::new("tombstones");
/// Counters of the replica: `generation`, `clock`, `recovering`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Page cache of the database. The node holds the replica in memory; the cache serves commits.
const CACHE_BYTES: usize = 32 << 20;

/// One key as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The key.
    pub key: Vec<u8>,
    /// The write's version.
    pub version: Version,
    /// The value, or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// For tombstones: when the delete happened, in Unix milliseconds.
    pub deleted_at_ms: u64,
}

/// A record's value in the database.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    version: Version,
    #[serde(borrow)]
    value: Option<&'a [u8]>,
    deleted_at_ms: u64,
}

impl Saved {
    /// The record of `entry` as of Unix time `now_ms`.
    pub fn from_wire(entry: &WireEntry<'_>, now_ms: u64) -> Self {
        let (value, deleted_at_ms) = match entry.value {
            WireValue::Live(v) => (Some(v.to_vec()), 0),
            WireValue::Deleted { age_ms } => (None, now_ms.saturating_sub(age_ms)),
        };
        Saved {
            key: entry.key.to_vec(),
            version: entry.version,
            value,
            deleted_at_ms,
        }
    }

    /// The entry to merge, as of Unix time `now_ms`.
    pub fn to_wire(&self, now_ms: u64) -> WireEntry<'_> {
        WireEntry {
            key: &self.key,
            version: self.version,
            value: match &self.value {
                Some(v) => WireValue::Live(v),
                None => WireValue::Deleted {
                    age_ms: now_ms.saturating_sub(self.deleted_at_ms),
                },
            },
        }
    }

    fn encode(&self) -> Vec<u8> {
        let stored = Stored {
            version: self.version,
            value: self.value.as_deref(),
            deleted_at_ms: self.deleted_at_ms,
        };
        // Serializing plain integers and bytes into a vector cannot fail.
        postcard::to_allocvec(&stored).unwrap_or_default()
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<Saved, postcard::Error> {
        let s: Stored<'_> = postcard::from_bytes(bytes)?;
        Ok(Saved {
            key: key.to_vec(),
            version: s.version,
            value: s.value.map(<[u8]>::to_vec),
            deleted_at_ms: s.deleted_at_ms,
        })
    }
}

fn tombstone_key(deleted_at_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&deleted_at_ms.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    unix_us() / 1000
}

/// Microseconds since the Unix epoch.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Why a data directory was refused. Nothing in it was changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// A file could not be read or written (permissions, a failing disk, a full one).
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file failed its checks: its bytes changed on disk, or it is not what the directory says.
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The data file is missing, or empty, while the generation file says this node has run.
    Missing {
        /// The data file.
        path: PathBuf,
        /// The last generation recorded.
        generation: u32,
    },
    /// Another process has the data directory open.
    InUse {
        /// The data file.
        path: PathBuf,
    },
}

const WAY_OUT: &str = "refusing to start, so that no acknowledged write is lost silently. \
     Restore the file from a backup, or start with --recover: the damaged files are moved aside \
     and this node refills its data from its peers (writes that never reached a peer are lost)";

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            OpenError::Damaged { path, detail } => {
                write!(f, "{} is damaged ({detail}); {WAY_OUT}", path.display())
            }
            OpenError::Missing { path, generation } => write!(
                f,
                "{} is missing or empty, but {GENERATION_FILE} says this node has already run \
                 (generation {generation}); {WAY_OUT}",
                path.display()
            ),
            OpenError::InUse { path } => write!(
                f,
                "{} is in use by another process (another agent on this data directory?)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {}

/// What a data directory held when it was opened.
pub struct Opened {
    /// The store, ready for commits.
    pub store: Store,
    /// This life's generation: one above every generation used before.
    pub generation: u32,
    /// Every record, tombstones included.
    pub records: Vec<Saved>,
    /// The clock's high-water mark: every version made or accepted before is at or below it.
    pub clock: u64,
    /// The replica is being refilled after `--recover` (here or at an earlier start).
    pub recovering: bool,
    /// Files moved aside by this open (with `recover`).
    pub moved_aside: Vec<PathBuf>,
}

/// Writes to make durable together.
#[derive(Debug, Default)]
pub struct Batch {
    /// Records to store; an older version than the stored one is skipped.
    pub writes: Vec<Saved>,
    /// Keys to remove, each unless the stored version is newer than the one given.
    pub removals: Vec<(Vec<u8>, Version)>,
    /// The clock's high-water mark.
    pub clock: u64,
    /// A peer's data root matched ours: the replica has been refilled.
    pub recovered: bool,
    /// Drop tombstones deleted before this Unix time (their grace period is over).
    pub collect_before_ms: Option<u64>,
}

/// What a commit did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Records written.
    pub written: usize,
    /// Records skipped: the stored version was as new or newer.
    pub skipped: usize,
    /// Expired tombstones dropped.
    pub collected: usize,
    /// Records removed.
    pub removed: usize,
}

/// A commit that failed.
#[derive(Debug)]
pub struct CommitFailed {
    /// Why.
    pub error: io::Error,
    /// For each write of the batch, whether it is on disk after all (a commit can fail after its
    /// pages were written), read back from the file opened again; `None` if it could not be.
    pub landed: Option<Vec<bool>>,
}

/// A data directory, open.
pub struct Store {
    dir: PathBuf,
    /// `None` after a failed commit: redb refuses every operation after an I/O error until the file
    /// is opened again, which the next commit does (and so verifies it again).
    db: Mutex<Option<Database>>,
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An I/O error from redb's error, keeping the system's error (disk full stays `StorageFull`).
pub fn io_error(e: impl Into<redb::Error>) -> io::Error {
    match e.into() {
        redb::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically: a reader sees the old file or the new one, never a part.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Moves `path` aside as `path.damaged-<unix ms>`; returns the new name.
fn move_aside(path: &Path) -> Result<PathBuf, OpenError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{}", unix_ms()));
    let to = PathBuf::from(name);
    fs::rename(path, &to).map_err(io_at(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(io_at(dir))?;
    }
    Ok(to)
}

fn read_generation(path: &Path) -> Result<Option<u32>, OpenError> {
    match fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse::<u32>()
            .map(Some)
            .map_err(|e| OpenError::Damaged {
                path: path.to_path_buf(),
                detail: format!("not a generation number: {e}"),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OpenError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn open_db(path: &Path) -> Result<Database, OpenError> {
    let r = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(true)
        .create(path);
    r.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse {
            path: path.to_path_buf(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if source.kind() != io::ErrorKind::InvalidData =>
        {
            OpenError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
        other => OpenError::Damaged {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    })
}

/// What the database holds.
struct Contents {
    generation: Option<u32>,
    clock: u64,
    recovering: bool,
    records: Vec<Saved>,
}

fn read_contents(db: &Database, path: &Path) -> Result<Contents, OpenError> {
    let damaged = |detail: String| OpenError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let tx = db.begin_read().map_err(|e| damaged(e.to_string()))?;
    let meta = |name: &str| -> Result<Option<u64>, OpenError> {
        match tx.open_table(META) {
            Ok(t) => Ok(t
                .get(name)
                .map_err(|e| damaged(e.to_string()))?
                .map(|g| g.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(damaged(e.to_string())),
        }
    };
    let generation = meta("generation")?
        .map(|g| u32::try_from(g).map_err(|_| damaged(format!("generation {g} out of range"))))
        .transpose()?;
    let clock = meta("clock")?.unwrap_or(0);
    let recovering = meta("recovering")?.unwrap_or(0) != 0;
    let mut records = Vec::new();
    match tx.open_table(RECORDS) {
        Ok(t) => {
            for row in t.iter().map_err(|e| damaged(e.to_string()))? {
                let (k, v) = row.map_err(|e| damaged(e.to_string()))?;
                let saved = Saved::decode(k.value(), v.value())
                    .map_err(|e| damaged(format!("a record does not decode: {e}")))?;
                records.push(saved);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(damaged(e.to_string())),
    }
    Ok(Contents {
        generation,
        clock,
        recovering,
        records,
    })
}

impl Store {
    /// Opens (creating if needed) the data directory `dir`, verifies it whole, and raises the
    /// generation by one, durably. With `recover`, damaged or missing data is moved aside and
    /// replaced by an empty replica marked as recovering, instead of refusing to start.
    pub fn open(dir: impl Into<PathBuf>, recover: bool) -> Result<Opened, OpenError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let gen_path = dir.join(GENERATION_FILE);
        let data_path = dir.join(DATA_FILE);
        let mut moved_aside = Vec::new();
        let mut recovering = false;
        let file_gen = match read_generation(&gen_path) {
            Err(OpenError::Damaged { .. }) if recover => {
                moved_aside.push(move_aside(&gen_path)?);
                None
            }
            other => other?,
        };
        for name in LEGACY_FILES {
            let path = dir.join(name);
            if path.exists() {
                if !recover {
                    return Err(OpenError::Damaged {
                        path,
                        detail: "a data log of an earlier tidings, which this one does not read"
                            .into(),
                    });
                }
                moved_aside.push(move_aside(&path)?);
                recovering = true;
            }
        }
        let mut expected_gen = file_gen;
        if let (false, Some(generation)) = (data_path.exists(), file_gen) {
            if !recover {
                return Err(OpenError::Missing {
                    path: data_path,
                    generation,
                });
            }
            recovering = true;
            expected_gen = None;
        }
        let (db, contents) = match Self::verified(&data_path, expected_gen) {
            Ok(found) => found,
            Err(OpenError::Damaged { .. } | OpenError::Missing { .. }) if recover => {
                moved_aside.push(move_aside(&data_path)?);
                recovering = true;
                Self::verified(&data_path, None)?
            }
            Err(e) => return Err(e),
        };
        let generation = match file_gen.max(contents.generation) {
            None => 0,
            Some(g) => g.checked_add(1).ok_or_else(|| OpenError::Damaged {
                path: gen_path.clone(),
                detail: "the generation number is exhausted".into(),
            })?,
        };
        let recovering = recovering || contents.recovering;
        let store = Store {
            dir,
            db: Mutex::new(Some(db)),
        };
        store
            .begin(generation, recovering)
            .map_err(io_at(&data_path))?;
        replace(
            &store.dir,
            GENERATION_FILE,
            format!("{generation}\n").as_bytes(),
        )
        .map_err(io_at(&gen_path))?;
        Ok(Opened {
            store,
            generation,
            records: contents.records,
            clock: contents.clock,
            recovering,
            moved_aside,
        })
    }

    /// Opens and verifies the data file, and checks it against the generation file.
    fn verified(path: &Path, file_gen: Option<u32>) -> Result<(Database, Contents), OpenError> {
        let db = open_db(path)?;
        let contents = read_contents(&db, path)?;
        match (file_gen, contents.generation) {
            (Some(generation), None) => Err(OpenError::Missing {
                path: path.to_path_buf(),
                generation,
            }),
            (Some(file), Some(data)) if data < file => Err(OpenError::Damaged {
                path: path.to_path_buf(),
                detail: format!(
                    "it was last written in generation {data}, but {GENERATION_FILE} says \
                     {file}: an older copy of the file"
                ),
            }),
            _ => Ok((db, contents)),
        }
    }

    /// Records this life's generation and the recovering mark, in one commit.
    fn begin(&self, generation: u32, recovering: bool) -> io::Result<()> {
        self.with_db(|db| {
            let tx = Self::write_tx(db)?;
            {
                let mut meta = tx.open_table(META)?;
                meta.insert("generation", u64::from(generation))?;
                meta.insert("recovering", u64::from(recovering))?;
                tx.open_table(RECORDS)?;
                tx.open_table(TOMBSTONES)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn write_tx(db: &Database) -> Result<redb::WriteTransaction, redb::Error> {
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate)
            .map_err(|e| redb::Error::from(redb::StorageError::Io(io::Error::other(e))))?;
        // A damaged primary commit is then an error at the next open, never a silent rollback.
        tx.set_two_phase_commit(true);
        Ok(tx)
    }

    /// Runs `f` on the database, opening it again first if the last commit failed. On an error the
    /// database is closed, to be opened (and verified) again by the next call.
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T, redb::Error>) -> io::Result<T> {
        let mut guard = self
            .db
            .lock()
            .map_err(|_| io::Error::other("the data store's lock was poisoned"))?;
        if guard.is_none() {
            let path = self.dir.join(DATA_FILE);
            let db = open_db(&path).map_err(|e| io::Error::other(e.to_string()))?;
            tracing::info!(file = %path.display(), "data file opened again after a failed commit");
            *guard = Some(db);
        }
        let db = guard
            .as_ref()
            .ok_or_else(|| io::Error::other("the data store is closed"))?;
        match f(db) {
            Ok(t) => Ok(t),
            Err(e) => {
                *guard = None;
                Err(io_error(e))
            }
        }
    }

    /// Makes `batch` durable: when this returns `Ok`, every record of it (or a newer version of its
    /// key) is on disk. On an error, the file is opened again and read back to tell which writes
    /// reached it all the same.
    pub fn commit(&self, batch: &Batch) -> Result<Committed, CommitFailed> {
        self.write(batch).map_err(|error| CommitFailed {
            error,
            landed: self.read_back(&batch.writes).ok(),
        })
    }

    /// Whether each of `writes` is on disk (at its version or a newer one).
    fn read_back(&self, writes: &[Saved]) -> io::Result<Vec<bool>> {
        self.with_db(|db| {
            let tx = db.begin_read()?;
            let records = tx.open_table(RECORDS)?;
            writes
                .iter()
                .map(|w| {
                    Ok(match records.get(w.key.as_slice())? {
                        Some(g) => {
                            Saved::decode(&w.key, g.value()).is_ok_and(|s| s.version >= w.version)
                        }
                        None => false,
                    })
                })
                .collect()
        })
    }

    fn write(&self, batch: &Batch) -> io::Result<Committed> {
        self.with_db(|db| {
            let tx = Self::write_tx(db)?;
            let mut done = Committed::default();
            {
                let mut records = tx.open_table(RECORDS)?;
                let mut tombstones = tx.open_table(TOMBSTONES)?;
                let mut meta = tx.open_table(META)?;
                for (key, upto) in &batch.removals {
                    let old = match records.get(key.as_slice())? {
                        Some(g) => Saved::decode(key, g.value()).ok(),
                        None => continue,
                    };
                    if old.as_ref().is_some_and(|o| o.version > *upto) {
                        continue;
                    }
                    records.remove(key.as_slice())?;
                    if let Some(o) = old.filter(|o| o.value.is_none()) {
                        tombstones.remove(tombstone_key(o.deleted_at_ms, key).as_slice())?;
                    }
                    done.removed += 1;
                }
                for w in &batch.writes {
                    let old = match records.get(w.key.as_slice())? {
                        Some(g) => Some(Saved::decode(&w.key, g.value()).map_err(|e| {
                            redb::Error::Corrupted(format!("a record does not decode: {e}"))
                        })?),
                        None => None,
                    };
                    if let Some(old) = &old {
                        if old.version >= w.version {
                            done.skipped += 1;
                            continue;
                        }
                        if old.value.is_none() {
                            tombstones
                                .remove(tombstone_key(old.deleted_at_ms, &w.key).as_slice())?;
                        }
                    }
                    records.insert(w.key.as_slice(), w.encode().as_slice())?;
                    if w.value.is_none() {
                        tombstones.insert(tombstone_key(w.deleted_at_ms, &w.key).as_slice(), ())?;
                    }
                    done.written += 1;
                }
                let clock = meta.get("clock")?.map_or(0, |g| g.value());
                meta.insert("clock", clock.max(batch.clock))?;
                if batch.recovered {
                    meta.insert("recovering", 0)?;
                }
                if let Some(before) = batch.collect_before_ms {
                    let end = before.to_be_bytes();
                    let expired: Vec<Vec<u8>> = tombstones
                        .range::<&[u8]>(..end.as_slice())?
                        .map(|row| row.map(|(k, _)| k.value().to_vec()))
                        .collect::<Result<_, _>>()?;
                    for t in expired {
                        tombstones.remove(t.as_slice())?;
                        let key = t.get(8..).unwrap_or_default();
                        let still_that_tombstone = match records.get(key)? {
                            Some(g) => Saved::decode(key, g.value())
                                .is_ok_and(|s| s.value.is_none() && s.deleted_at_ms < before),
                            None => false,
                        };
                        if still_that_tombstone {
                            records.remove(key)?;
                            done.collected += 1;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(key: &str, major: u64, value: Option<&str>) -> Saved {
        Saved {
            key: key.as_bytes().to_vec(),
            version: Version::new(major, 1, 0),
            value: value.map(|v| v.as_bytes().to_vec()),
            deleted_at_ms: if value.is_none() { 1_000 } else { 0 },
        }
    }

    fn batch(writes: Vec<Saved>) -> Batch {
        Batch {
            writes,
            clock: 99,
            ..Batch::default()
        }
    }

    fn sorted(mut v: Vec<Saved>) -> Vec<Saved> {
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    #[test]
    fn generations_rise_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        for want in 0..3 {
            let o = Store::open(dir.path(), false).unwrap();
            assert_eq!(o.generation, want);
        }
    }

    #[test]
    fn records_and_the_clock_survive_reopen_and_the_newest_version_wins_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let o = Store::open(dir.path(), false).unwrap();
        o.store
            .commit(&batch(vec![
                saved("a", 5, Some("new")),
                saved("b", 2, None),
            ]))
            .unwrap();
        let c = o
            .store
            .commit(&batch(vec![saved("a", 3, Some("old"))]))
            .unwrap();
        assert_eq!((c.written, c.skipped), (0, 1));
        drop(o);
        let o = Store::open(dir.path(), false).unwrap();
        assert_eq!(
            sorted(o.records),
            vec![saved("a", 5, Some("new")), saved("b", 2, None)]
        );
        assert_eq!((o.clock, o.recovering), (99, false));
    }

    #[test]
    fn expired_tombstones_are_collected_and_overwritten_ones_leave_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let o = Store::open(dir.path(), false).unwrap();
        let mut gone = saved("gone", 1, None);
        gone.deleted_at_ms = 500;
        let mut kept = saved("kept", 1, None);
        kept.deleted_at_ms = 5_000;
        let mut revived = saved("revived", 1, None);
        revived.deleted_at_ms = 400;
        o.store
            .commit(&batch(vec![gone, kept.clone(), revived]))
            .unwrap();
        o.store
            .commit(&batch(vec![saved("revived", 2, Some("back"))]))
            .unwrap();
        let c = o
            .store
            .commit(&Batch {
                collect_before_ms: Some(1_000),
                ..Batch::default()
            })
            .unwrap();
        assert_eq!(c.collected, 1);
        drop(o);
        let o = Store::open(dir.path(), false).unwrap();
        assert_eq!(
            sorted(o.records),
            vec![kept, saved("revived", 2, Some("back"))]
        );
    }

    #[test]
    fn a_removal_leaves_a_newer_record_alone() {
        let dir = tempfile::tempdir().unwrap();
        let o = Store::open(dir.path(), false).unwrap();
        o.store
            .commit(&batch(vec![saved("a", 5, Some("x")), saved("b", 5, None)]))
            .unwrap();
        let c = o
            .store
            .commit(&Batch {
                removals: vec![
                    (b"a".to_vec(), Version::new(4, 1, 0)),
                    (b"b".to_vec(), Version::new(5, 1, 0)),
                    (b"never".to_vec(), Version::new(5, 1, 0)),
                ],
                ..Batch::default()
            })
            .unwrap();
        assert_eq!(c.removed, 1);
        drop(o);
        let o = Store::open(dir.path(), false).unwrap();
        assert_eq!(o.records, vec![saved("a", 5, Some("x"))]);
    }

    fn flip_a_byte_in_the_middle(path: &Path) {
        let mut bytes = fs::read(path).unwrap();
        // The records live past the header; flip every byte of one 4 KiB page in the middle of
        // the used pages, so the corruption lands on a page that holds data, not on free space.
        let mid = bytes.len() / 2 / 4096 * 4096;
        for b in &mut bytes[mid..mid + 4096] {
            *b ^= 0x5a;
        }
        fs::write(path, bytes).unwrap();
    }

    fn filled(dir: &Path) {
        let o = Store::open(dir, false).unwrap();
        for chunk in 0..20 {
            let writes = (0..100)
                .map(|i| Saved {
                    key: format!("key-{chunk}-{i}").into_bytes(),
                    version: Version::new(chunk * 100 + i, 1, 0),
                    value: Some(vec![b'x'; 200]),
                    deleted_at_ms: 0,
                })
                .collect();
            o.store.commit(&batch(writes)).unwrap();
        }
    }

    #[test]
    fn a_damaged_data_file_is_refused_by_name_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let path = dir.path().join(DATA_FILE);
        flip_a_byte_in_the_middle(&path);
        let before = fs::read(&path).unwrap();
        let gen_before = fs::read(dir.path().join(GENERATION_FILE)).unwrap();
        let e = Store::open(dir.path(), false).err().expect("refused");
        assert!(matches!(e, OpenError::Damaged { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(DATA_FILE) && text.contains("--recover"),
            "{text}"
        );
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(
            fs::read(dir.path().join(GENERATION_FILE)).unwrap(),
            gen_before
        );
    }

    #[test]
    fn recover_moves_a_damaged_file_aside_and_starts_empty_and_recovering() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        flip_a_byte_in_the_middle(&dir.path().join(DATA_FILE));
        let o = Store::open(dir.path(), true).unwrap();
        assert!(o.recovering && o.records.is_empty());
        assert_eq!(o.generation, 1);
        assert_eq!(o.moved_aside.len(), 1);
        assert!(o.moved_aside[0].exists());
        // Still recovering after a restart, until a commit says the replica was refilled.
        drop(o);
        let o = Store::open(dir.path(), false).unwrap();
        assert!(o.recovering);
        o.store
            .commit(&Batch {
                recovered: true,
                ..Batch::default()
            })
            .unwrap();
        drop(o);
        assert!(!Store::open(dir.path(), false).unwrap().recovering);
    }

    #[test]
    fn a_missing_or_replaced_data_file_is_refused_while_the_generation_says_data_existed() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let path = dir.path().join(DATA_FILE);
        let saved_copy = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        let e = Store::open(dir.path(), false).err().expect("refused");
        assert!(matches!(e, OpenError::Missing { .. }), "{e}");
        assert!(!path.exists(), "a refused open creates nothing");
        // An empty database in its place is no better.
        drop(Database::create(&path).unwrap());
        let e = Store::open(dir.path(), false).err().expect("refused");
        assert!(matches!(e, OpenError::Missing { .. }), "{e}");
        // An older copy of the file (restored from an old backup) is refused too.
        fs::write(&path, &saved_copy).unwrap();
        let o = Store::open(dir.path(), false).unwrap();
        drop(o);
        fs::write(&path, &saved_copy).unwrap();
        let e = Store::open(dir.path(), false).err().expect("refused");
        assert!(e.to_string().contains("older copy"), "{e}");
        let o = Store::open(dir.path(), true).unwrap();
        assert!(o.recovering);
    }

    #[test]
    fn a_log_of_an_earlier_version_is_refused_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("data.log"), b"old").unwrap();
        let e = Store::open(dir.path(), false).err().expect("refused");
        assert!(e.to_string().contains("data.log"), "{e}");
        let o = Store::open(dir.path(), true).unwrap();
        assert!(o.recovering);
    }

    #[test]
    fn two_stores_on_one_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), false).unwrap();
        let e = Store::open(dir.path(), false).err().expect("refused");
        assert!(matches!(e, OpenError::InUse { .. }), "{e}");
    }
}
