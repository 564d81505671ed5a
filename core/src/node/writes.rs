//! The data API of a node: local writes (in one step, or prepared and applied once durable), the
//! wall clock behind their versions, and restoring from durable storage.

use super::{Node, Storage};
use crate::data::{DataError, MergeOutcome, Prepared, WireEntry};
use crate::sync::EntryError;
use crate::wire::TreeId;
use crate::Instant;

impl<
        S: Storage,
        const SYNC: usize,
        const QUEUE: usize,
        const RUMORS: usize,
        const SUSPECTS: usize,
    > Node<S, SYNC, QUEUE, RUMORS, SUSPECTS>
{
    /// Loads one entry of the data from this node's durable storage at startup: merged like a
    /// peer's write (newest wins, the clock moves past it, no version is too far ahead), but neither
    /// gossiped nor reported as an event. Anti-entropy later repairs whatever differs from the cluster.
    pub fn restore(
        &mut self,
        now: Instant,
        entry: &WireEntry<'_>,
    ) -> Result<MergeOutcome, EntryError> {
        self.data.restore(now, entry)
    }

    /// Tells the node that `now` is `unix_us` (Unix microseconds) on the wall clock, so data
    /// versions follow real time (see [`crate::clock`]); without it they are Lamport counters. Call
    /// it at start, before any write, and whenever the wall clock may have been stepped; call it just
    /// before a write for a version precise to the microsecond.
    pub fn set_wall_clock(&mut self, now: Instant, unix_us: u64) {
        self.data.set_wall_clock(now, unix_us);
    }

    /// Moves the data clock past `major`: at startup, the high-water mark persisted with the data, so
    /// no write of this life gets a version below one already used.
    pub fn observe_clock(&mut self, major: u64) {
        self.data.observe_clock(major);
    }

    /// When a peer's data root last equalled ours (the replicas were identical): `None` until then.
    /// A node refilled from its peers after losing its data is whole again from that moment.
    pub fn data_in_sync_at(&self) -> Option<Instant> {
        self.data_in_sync_at
    }

    /// Sets `key` to `value` and spreads the write.
    pub fn set(
        &mut self,
        now: Instant,
        key: &[u8],
        value: &[u8],
    ) -> Result<crate::Version, DataError> {
        self.write(now, key, Some(value))
    }

    /// Deletes `key` and spreads the delete: a tombstone with a fresh version, whether or not this
    /// node holds the key.
    pub fn delete(&mut self, now: Instant, key: &[u8]) -> Result<crate::Version, DataError> {
        self.write(now, key, None)
    }

    /// Sets (`Some`) or deletes (`None`) `key` in one step, and spreads the write.
    pub fn write(
        &mut self,
        now: Instant,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<crate::Version, DataError> {
        let p = self.prepare_write(now, key, value)?;
        self.apply_write(now, key, value, p)
    }

    /// The first half of a write that must be durable before it takes effect: checks `value`
    /// (`None`: a delete) for `key`, reserves its version and, for a new key, a table slot. Nothing
    /// else changes; make the write durable, then call [`Self::apply_write`], or
    /// [`Self::abandon_write`] if that failed.
    pub fn prepare_write(
        &mut self,
        now: Instant,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Prepared, DataError> {
        self.data.prepare(now, key, value)
    }

    /// The second half: applies a prepared write and spreads it. [`DataError::Superseded`] if a
    /// newer write of the key arrived meanwhile (nothing changed).
    pub fn apply_write(
        &mut self,
        now: Instant,
        key: &[u8],
        value: Option<&[u8]>,
        prepared: Prepared,
    ) -> Result<crate::Version, DataError> {
        let v = self.data.apply(now, key, value, prepared)?;
        let h = self.data.hash_of(key);
        // Our own writes outran the gossip queue (a burst): the next gossip round's members start
        // anti-entropy with us at once. Changes learned from peers spread the same way from their
        // writer, so only the writer does this.
        if self.spread(TreeId::DATA, h) == Some(TreeId::DATA) {
            self.data_outran = true;
        }
        Ok(v)
    }

    /// Gives up a prepared write that will never be applied (it could not be made durable).
    pub fn abandon_write(&mut self, prepared: Prepared) {
        self.data.abandon(prepared);
    }
}
