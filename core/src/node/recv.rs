//! Datagrams in: the tag check, decoding, dispatch to the failure detector, the rumors and the sync
//! engine, and what a datagram tells about its sender (a newcomer to feed, a table to compare).

use super::{Event, Node, Out, Probe, RecvError, Relay, Rumor, Storage};
use crate::data::{MergeOutcome, WireEntry};
use crate::indexed::each_entry;
use crate::members::{Status, WireMember};
use crate::store::ByteBuf;
use crate::sync::{EntryError, Merged, Replica, SyncError};
use crate::wire::{self, Message, TreeId, WireError};
use crate::{Instant, NodeId};
use core::net::SocketAddr;

impl<
        S: Storage,
        const SYNC: usize,
        const QUEUE: usize,
        const RUMORS: usize,
        const SUSPECTS: usize,
    > Node<S, SYNC, QUEUE, RUMORS, SUSPECTS>
{
    /// Handles one datagram from `from`. On error nothing changed, and the reason is counted.
    ///
    /// `bytes` is mutable so that an encrypted datagram can be decrypted where it lies: once it
    /// opened it holds the plain message; one refused as unauthentic is left as it was.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &mut [u8],
    ) -> Result<(), RecvError> {
        self.stats.datagrams_in = self.stats.datagrams_in.saturating_add(1);
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(bytes.len() as u64);
        let (header, msg) = match self.open(bytes) {
            Ok(d) => d,
            Err(e) => {
                self.stats.rejects.count(e);
                return Err(RecvError::Wire(e));
            }
        };
        let stranger = self.members.get(header.sender).is_none();
        let alone = self.members.live() <= 1;
        let r = self.dispatch(now, from, &msg);
        if r.is_err() {
            self.stats.refused = self.stats.refused.saturating_add(1);
        }
        if core::mem::take(&mut self.deferred) {
            // The sender holds changes we could not take yet: compare with it at once, and until
            // the tables match, rather than wait for its retransmits or the sync interval.
            self.sync.start(from, TreeId::MEMBERS);
            self.sync.start(from, TreeId::DATA);
            self.sync_soon(now);
        }
        let known = self
            .members
            .get(header.sender)
            .map(|m| (m.status(), m.addr()));
        if r.is_ok() && header.sender != self.config.node {
            match known {
                Some((status, addr)) if stranger && !alone && !status.is_gone() && addr == from => {
                    self.feed(now, from, header.sender);
                }
                None | Some((Status::Dead, _)) => {
                    // A stranger, or a member we hold dead that is talking (a healed partition):
                    // compare member tables, so each side learns the other's view and refutes
                    // what is wrong about it.
                    self.sync.start(from, TreeId::MEMBERS);
                }
                Some(_) => {}
            }
        }
        if alone && self.members.live() > 1 {
            // Just joined: fetch the rest of the table from random members, soon and until a
            // root matches ours.
            self.sync_soon(now);
        }
        r
    }

    /// A newcomer introduced itself from the address its own record gives: a feed of members
    /// lets it spread its anti-entropy over the cluster (a join storm would otherwise queue every
    /// newcomer's whole-table exchange behind its seed). Feeds are paced like the sync engine's
    /// answers (half of `SyncConfig::burst_bytes`, an eighth of `bytes_per_sec`, each feed counted
    /// as a full datagram), with a budget of their own so a busy engine does not starve them: forged introductions draw
    /// no more than that.
    fn feed(&mut self, now: Instant, to: SocketAddr, newcomer: NodeId) {
        if self.out.is_full() || !self.feeds.try_take(now) {
            self.stats.feeds_withheld = self.stats.feeds_withheld.saturating_add(1);
            return;
        }
        self.queue(Out::Feed { to, newcomer });
        self.stats.feeds = self.stats.feeds.saturating_add(1);
    }

    /// News (an exchange brought entries, showed we are behind, or we just joined): compare again
    /// soon, and keep comparing.
    fn sync_soon(&mut self, now: Instant) {
        self.sync_at.soon(now, &self.config.swim);
    }

    /// Checks the header, then the tag or decrypts (with a keyring), then decodes the message.
    fn open<'b>(&self, bytes: &'b mut [u8]) -> Result<(wire::Header, Message<'b>), WireError> {
        let c = &self.config;
        wire::open(bytes, c.cluster, c.sync.max_datagram, c.auth.as_ref())
    }

    fn dispatch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<(), RecvError> {
        match *msg {
            Message::Ping { probe, rumors } => {
                self.rumors(now, rumors)?;
                if probe.target == self.config.node {
                    self.queue(Out::Ack {
                        to: from,
                        seq: probe.seq,
                    });
                }
            }
            Message::Ack { seq, rumors } => {
                self.rumors(now, rumors)?;
                self.on_ack(seq);
            }
            Message::PingReq { request, rumors } => {
                self.rumors(now, rumors)?;
                self.fd.seq = self.fd.seq.wrapping_add(1);
                let relay = Relay {
                    seq: self.fd.seq,
                    requester: from,
                    their_seq: request.seq,
                    until: now.saturating_add(self.config.swim.probe_interval),
                };
                if !self.out.is_full() && self.fd.relays.push(relay).is_ok() {
                    let probe = Probe {
                        seq: self.fd.seq,
                        target: request.target,
                    };
                    self.queue(Out::Ping {
                        to: request.addr,
                        probe,
                    });
                }
            }
            Message::Gossip { rumors } => self.rumors(now, rumors)?,
            Message::Entries { tree, bytes } => self.entries(now, tree, bytes)?,
            Message::Root(_)
            | Message::Digests { .. }
            | Message::Listing { .. }
            | Message::Fetch { .. } => self.exchange(now, from, msg)?,
            #[cfg(feature = "sketch")]
            Message::Sketch { .. } | Message::Want { .. } => self.exchange(now, from, msg)?,
        }
        Ok(())
    }

    /// A message of an anti-entropy exchange, about the table it names.
    fn exchange(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<(), RecvError> {
        let tree = match *msg {
            Message::Root(m) => m.tree,
            Message::Digests { tree, .. }
            | Message::Listing { tree, .. }
            | Message::Fetch { tree, .. } => tree,
            #[cfg(feature = "sketch")]
            Message::Sketch { tree, .. } | Message::Want { tree, .. } => tree,
            _ => TreeId(u8::MAX),
        };
        let r = match tree {
            TreeId::MEMBERS => self
                .sync
                .handle_exchange(now, from, msg, &self.members)
                .map(|h| {
                    if h.behind {
                        // We are behind that peer: pull from another soon, even if the entries
                        // themselves are lost on the way.
                        self.sync_soon(now);
                    } else if h.mismatched || h.described {
                        self.sync_at.diverged(now, &self.config.swim);
                    } else if h.in_sync {
                        self.sync_at.calm();
                    }
                }),
            TreeId::DATA => self
                .sync
                .handle_exchange(now, from, msg, &self.data)
                .map(|h| {
                    if h.in_sync {
                        self.data_in_sync_at = Some(now);
                    }
                }),
            _ => Err(SyncError::BadNode),
        };
        r.map_err(RecvError::Sync)
    }

    /// Checks every rumor, then applies them all.
    fn rumors(&mut self, now: Instant, bytes: &[u8]) -> Result<(), RecvError> {
        each_entry(
            bytes,
            |r: Rumor<'_>| match r {
                Rumor::Member(m) => self.members.check(&m),
                Rumor::Data(e) => self.data.check(&e),
                Rumor::Suspect(_) => Ok(()),
            },
            EntryError::Malformed,
        )
        .map_err(RecvError::Rumor)?;
        let _ = each_entry(
            bytes,
            |r: Rumor<'_>| {
                match r {
                    Rumor::Member(m) => {
                        self.apply_member(now, &m);
                    }
                    Rumor::Data(e) => {
                        self.apply_data(now, &e);
                    }
                    Rumor::Suspect(c) => self.apply_suspect(now, &c),
                }
                Ok::<(), ()>(())
            },
            (),
        );
        Ok(())
    }

    /// Entries from an exchange, merged here rather than by the engine so that each change is
    /// reported and spread like news; counted in the engine's [`crate::sync::SyncStats`] all the same.
    fn entries(&mut self, now: Instant, tree: TreeId, bytes: &[u8]) -> Result<(), RecvError> {
        let bad = |e| RecvError::Sync(SyncError::Entry(e));
        let mut merged = Merged::default();
        let mut tally = |changed: bool| {
            let n = if changed {
                &mut merged.applied
            } else {
                &mut merged.stale
            };
            *n = n.saturating_add(1);
        };
        match tree {
            TreeId::MEMBERS => {
                self.members.check_entries(bytes).map_err(bad)?;
                let _ = each_entry(
                    bytes,
                    |m: WireMember<'_>| {
                        if let Some(changed) = self.apply_member(now, &m) {
                            tally(changed);
                        }
                        Ok::<(), ()>(())
                    },
                    (),
                );
            }
            TreeId::DATA => {
                self.data.check_entries(bytes).map_err(bad)?;
                let _ = each_entry(
                    bytes,
                    |e: WireEntry<'_>| {
                        if let Some(changed) = self.apply_data(now, &e) {
                            tally(changed);
                        }
                        Ok::<(), ()>(())
                    },
                    (),
                );
            }
            _ => return Err(RecvError::Sync(SyncError::BadNode)),
        }
        self.sync.count_merged(merged);
        if merged.applied > 0 {
            // Anti-entropy found a difference: the cluster is diverged (a healed partition, a
            // restart), so compare with another member soon rather than a whole interval later.
            self.sync_soon(now);
        }
        Ok(())
    }

    /// Merges one member claim; whether it changed anything, or `None` when it waits for room in
    /// the event queue.
    fn apply_member(&mut self, now: Instant, m: &WireMember<'_>) -> Option<bool> {
        if !self.room_for_event() {
            return None;
        }
        let Ok(Some(change)) = self.members.merge(now, m) else {
            return Some(false);
        };
        let h = self.members.hash_of(m.id);
        self.spread(TreeId::MEMBERS, h);
        self.on_change(now, m.id, change);
        Some(true)
    }

    /// Merges one data entry; whether it changed anything, or `None` when it waits for room in the
    /// event queue.
    fn apply_data(&mut self, now: Instant, e: &WireEntry<'_>) -> Option<bool> {
        if !self.room_for_event() {
            return None;
        }
        let Ok(MergeOutcome::Applied) = self.data.merge(now, e) else {
            return Some(false);
        };
        let h = self.data.hash_of(e.key);
        self.spread(TreeId::DATA, h);
        if let Some(k) = S::Key::from_slice(e.key) {
            self.event(Event::DataChanged(k));
        }
        Some(true)
    }

    /// Whether a change heard now may be applied: with the event queue full it waits, counted, and
    /// is applied when it comes again (an exchange with the sender starts at once). So one input never queues more events than there is room for, and an application
    /// that takes events after every input never loses one, whatever the queue's capacity.
    fn room_for_event(&mut self) -> bool {
        let room = !self.events.is_full();
        if !room {
            self.stats.changes_deferred = self.stats.changes_deferred.saturating_add(1);
            self.deferred = true;
        }
        room
    }

    fn on_ack(&mut self, seq: u32) {
        if let Some(p) = self.fd.probing.as_mut().filter(|p| p.seq == seq) {
            p.acked = true;
            return;
        }
        if let Some((_, acked)) = self.fd.leave.as_mut().filter(|l| l.0 == seq) {
            *acked = true;
            return;
        }
        if let Some(i) = self.fd.relays.iter().position(|r| r.seq == seq) {
            let r = self.fd.relays.swap_remove(i);
            self.queue(Out::Ack {
                to: r.requester,
                seq: r.their_seq,
            });
        }
    }
}
