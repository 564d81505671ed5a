//! Durability: the node's generation and its replica of the data, in a data directory.
//!
//! - `generation` holds the last generation used. Before a node first speaks, it is raised by one and
//!   written atomically (temporary file, fsync, rename, fsync of the directory), so a restarted node
//!   always outranks its previous life.
//! - `data.log` is an append-only log of every write the node holds: its own writes are fsynced
//!   before they are acknowledged, so a crash at any moment loses no acknowledged write; writes
//!   learned from peers are flushed within a second (anti-entropy repairs anything lost).
//! - `data.snap` is a compacted image of the whole replica, written atomically when the log grows
//!   past twice its size; the log then starts over.
//!
//! Every log and snapshot record is framed as length, CRC-32 and postcard payload; loading stops at
//! the first torn or corrupt frame (the tail a crash may leave) and cuts the log back to it.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tidings::data::{WireEntry, WireValue};
use tidings::Version;

/// One key as stored on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A data directory, open for appending.
pub struct DataDir {
    dir: PathBuf,
    log: File,
    log_len: u64,
    snapshot_len: u64,
    dirty: bool,
}

const LOG: &str = "data.log";
const SNAPSHOT: &str = "data.snap";
const GENERATION: &str = "generation";
/// A frame larger than this is corruption, not data.
const MAX_FRAME: u32 = 16 << 20;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// The records of `bytes` up to the first bad frame, and where that good prefix ends.
fn frames(bytes: &[u8]) -> (Vec<Saved>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_FRAME {
            break;
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + len as usize) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        match postcard::from_bytes::<Saved>(payload) {
            Ok(s) => out.push(s),
            Err(_) => break,
        }
        at += 8 + len as usize;
    }
    (out, at)
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

impl DataDir {
    /// Opens (creating if needed) the data directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG))?;
        let log_len = log.metadata()?.len();
        let snapshot_len = fs::metadata(dir.join(SNAPSHOT)).map_or(0, |m| m.len());
        Ok(DataDir {
            dir,
            log,
            log_len,
            snapshot_len,
            dirty: false,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Raises the stored generation by one, durably, and returns it (0 for a new directory).
    pub fn next_generation(&self) -> io::Result<u32> {
        let path = self.dir.join(GENERATION);
        let next = match fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse::<u32>()
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?
                .checked_add(1)
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "generation exhausted")
                })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        replace(&self.dir, GENERATION, format!("{next}\n").as_bytes())?;
        Ok(next)
    }

    /// Every record stored: the snapshot, then the log (later records win when merged in order).
    /// A torn or corrupt log tail is cut off.
    pub fn load(&mut self) -> io::Result<Vec<Saved>> {
        let mut all = match fs::read(self.dir.join(SNAPSHOT)) {
            Ok(bytes) => frames(&bytes).0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        File::open(self.dir.join(LOG))?.read_to_end(&mut bytes)?;
        let (log, good) = frames(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                cut = bytes.len() - good,
                "data log ends in a torn or corrupt record; cutting it off"
            );
            let f = OpenOptions::new().write(true).open(self.dir.join(LOG))?;
            f.set_len(good as u64)?;
            f.sync_all()?;
            self.log_len = good as u64;
        }
        all.extend(log);
        Ok(all)
    }

    /// Appends `record`; with `sync`, it is on disk when this returns.
    pub fn append(&mut self, record: &Saved, sync: bool) -> io::Result<()> {
        let payload = postcard::to_allocvec(record)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let f = frame(&payload);
        self.log.write_all(&f)?;
        self.log_len += f.len() as u64;
        if sync {
            self.log.sync_data()?;
            self.dirty = false;
        } else {
            self.dirty = true;
        }
        Ok(())
    }

    /// Puts appended records on disk.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.dirty {
            self.log.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Whether the log has grown enough to be worth compacting.
    pub fn should_compact(&self) -> bool {
        self.log_len > (4 << 20).max(2 * self.snapshot_len)
    }

    /// Writes `records` as the new snapshot and empties the log.
    pub fn compact(&mut self, records: impl Iterator<Item = Saved>) -> io::Result<()> {
        let mut bytes = Vec::new();
        for r in records {
            let payload = postcard::to_allocvec(&r)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            bytes.extend_from_slice(&frame(&payload));
        }
        replace(&self.dir, SNAPSHOT, &bytes)?;
        self.snapshot_len = bytes.len() as u64;
        // A crash before this leaves the old log beside the new snapshot: replaying it is harmless.
        self.log.set_len(0)?;
        self.log.sync_all()?;
        self.log_len = 0;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(key: &str, major: u64, value: Option<&str>) -> Saved {
        Saved {
            key: key.as_bytes().to_vec(),
            version: Version {
                major,
                minor: 1,
                tie: 0,
            },
            value: value.map(|v| v.as_bytes().to_vec()),
            deleted_at_ms: if value.is_none() { 1_000 } else { 0 },
        }
    }

    #[test]
    fn generations_rise_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            DataDir::open(dir.path())
                .unwrap()
                .next_generation()
                .unwrap(),
            0
        );
        assert_eq!(
            DataDir::open(dir.path())
                .unwrap()
                .next_generation()
                .unwrap(),
            1
        );
        assert_eq!(
            DataDir::open(dir.path())
                .unwrap()
                .next_generation()
                .unwrap(),
            2
        );
    }

    #[test]
    fn records_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DataDir::open(dir.path()).unwrap();
        d.append(&saved("a", 1, Some("x")), true).unwrap();
        d.append(&saved("b", 2, None), false).unwrap();
        d.flush().unwrap();
        drop(d);
        let mut d = DataDir::open(dir.path()).unwrap();
        assert_eq!(
            d.load().unwrap(),
            vec![saved("a", 1, Some("x")), saved("b", 2, None)]
        );
        d.compact([saved("a", 3, Some("y"))].into_iter()).unwrap();
        d.append(&saved("c", 4, Some("z")), true).unwrap();
        drop(d);
        let mut d = DataDir::open(dir.path()).unwrap();
        assert_eq!(
            d.load().unwrap(),
            vec![saved("a", 3, Some("y")), saved("c", 4, Some("z"))]
        );
    }

    #[test]
    fn a_torn_tail_is_cut_and_appending_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DataDir::open(dir.path()).unwrap();
        d.append(&saved("a", 1, Some("x")), true).unwrap();
        d.append(&saved("b", 2, Some("y")), true).unwrap();
        drop(d);
        let log = dir.path().join(LOG);
        let len = fs::metadata(&log).unwrap().len();
        // A crash in the middle of the second record.
        OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut d = DataDir::open(dir.path()).unwrap();
        assert_eq!(d.load().unwrap(), vec![saved("a", 1, Some("x"))]);
        d.append(&saved("c", 3, Some("z")), true).unwrap();
        drop(d);
        let mut d = DataDir::open(dir.path()).unwrap();
        assert_eq!(
            d.load().unwrap(),
            vec![saved("a", 1, Some("x")), saved("c", 3, Some("z"))]
        );
    }

    #[test]
    fn a_flipped_bit_stops_loading_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DataDir::open(dir.path()).unwrap();
        d.append(&saved("a", 1, Some("x")), true).unwrap();
        d.append(&saved("b", 2, Some("y")), true).unwrap();
        drop(d);
        let log = dir.path().join(LOG);
        let mut bytes = fs::read(&log).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&log, bytes).unwrap();
        let mut d = DataDir::open(dir.path()).unwrap();
        assert_eq!(d.load().unwrap(), vec![saved("a", 1, Some("x"))]);
    }
}
