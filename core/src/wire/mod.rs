//! The wire format: a header, a message kind, and a postcard-encoded body, in one UDP datagram.
//!
//! ```text
//! magic "td" | protocol u8 | cluster [u8; 4] | sender varint | kind u8 | body
//! ```
//! Bodies with lists (digests, listings, hashes, entries) end with a run of postcard-encoded items that
//! fills the rest of the datagram: the encoder packs items until the next one would not fit, and the
//! decoder walks them lazily, without copying or allocating. [`decode`] validates a whole datagram before
//! anything acts on it, so a handler never meets a malformed item halfway through.
//!
//! Every fixed part has a compile-time bound ([`MaxSize`]); [`MIN_DATAGRAM`] is checked against them at
//! build time, and configuration refuses a maximum datagram below it.

use crate::{ClusterId, NodeId, Version};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

pub mod addr;
mod digests;
mod frame;
mod listing;
mod rejects;
mod run;
#[cfg(feature = "sketch")]
mod words;

pub use digests::{fingerprint, DigestItem, DigestItems, Fp, DIGEST_ITEM_MAX};
pub use frame::{message_limit, nonce_room, open, seal, Nonce, Transmit, ENCRYPTED, NONCE_LEN};
pub use listing::{
    check_byte, push_group_head, push_summary, short_hash, write_group_head, FetchGroup, Fetches,
    GroupHead, Listing, ListingGroup, Summaries, Summary, BITMAP_BYTES, CHECKED, LISTING_HEAD_MAX,
    MAX_GROUP,
};
pub use rejects::Rejects;
pub use run::{Part, Run, RunIter};
#[cfg(feature = "sketch")]
pub use words::Words;

/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"td";
/// The protocol version this build speaks. 3: salted 4-byte child fingerprints, listings of short
/// key hashes, fetches by position. 4: a root says whether its sender decodes sketches. 5: listings
/// carry a salt, and groups of tables whose versions do not tell keys apart a check byte per summary.
pub const PROTOCOL: u8 = 5;
/// Most key hashes one want may name.
pub const MAX_WANTED: usize = 128;
/// Default maximum datagram: fits a 1,280-byte IPv6 minimum MTU with room for IP and UDP headers.
pub const DEFAULT_MAX_DATAGRAM: usize = 1200;
/// Smallest maximum datagram that configuration accepts.
pub const MIN_DATAGRAM: usize = 512;
/// Most items or groups one datagram may hold: more than any datagram has bytes, so the encoder can
/// never pack more than the decoder accepts.
pub const MAX_ITEMS: usize = 65_536;
/// Bytes reserved at the end of every datagram for an authentication tag.
pub const TAG_RESERVE: usize = 16;

/// Which replicated table a sync message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TreeId(pub u8);

impl TreeId {
    /// The membership table.
    pub const MEMBERS: TreeId = TreeId(0);
    /// The key-value data.
    pub const DATA: TreeId = TreeId(1);
}

/// The header that starts every datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    magic: [u8; 2],
    protocol: u8,
    /// The sender's cluster.
    pub cluster: ClusterId,
    /// The sending node.
    pub sender: NodeId,
}

impl Header {
    /// A header for this build's protocol.
    pub const fn new(cluster: ClusterId, sender: NodeId) -> Self {
        Header {
            magic: MAGIC,
            protocol: PROTOCOL,
            cluster,
            sender,
        }
    }
}

/// An 8-byte hash or digest, fixed width on the wire (a varint would spend 10 bytes on a random u64).
pub type Hash8 = [u8; 8];

/// "Here is my root": starts an anti-entropy exchange, or answers one whose roots matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RootMsg {
    /// The table.
    pub tree: TreeId,
    /// The sender's tree depth; peers must agree on it.
    pub depth: u8,
    /// Entries in the sender's table.
    pub count: u64,
    /// The sender's 32-byte root.
    pub root: [u8; 32],
    /// Whether the receiver should answer even when the roots match.
    pub reply: bool,
    /// Whether the sender decodes sketches: a receiver whose root differs may answer with its
    /// sketch ([`Message::Sketch`]) instead of describing its root.
    pub sketch: bool,
}

/// [`RootMsg::reply`] in the flags byte.
const ROOT_REPLY: u8 = 1;
/// [`RootMsg::sketch`] in the flags byte.
const ROOT_SKETCH: u8 = 2;

fn root_flags(reply: bool, sketch: bool) -> u8 {
    (if reply { ROOT_REPLY } else { 0 }) | (if sketch { ROOT_SKETCH } else { 0 })
}

impl RootMsg {
    /// Appends the message, laid out as postcard would (tree, depth, count varint, root, flags),
    /// by hand: postcard's generic code for a 32-byte array is large in a microcontroller's flash.
    pub fn push(&self, enc: &mut Encoder<'_>) -> bool {
        let at = enc.len();
        let ok = enc.push_raw(&[self.tree.0, self.depth])
            && enc.push(&self.count)
            && enc.push_raw(&self.root)
            && enc.push_raw(&[root_flags(self.reply, self.sketch)]);
        if !ok {
            enc.truncate(at);
        }
        ok
    }

    fn take(bytes: &[u8]) -> Option<(RootMsg, &[u8])> {
        let (&[tree, depth], rest) = bytes.split_first_chunk::<2>()?;
        let (count, rest) = postcard::take_from_bytes::<u64>(rest).ok()?;
        let (root, rest) = rest.split_first_chunk::<32>()?;
        let (&flags, rest) = rest.split_first()?;
        if flags & !(ROOT_REPLY | ROOT_SKETCH) != 0 {
            return None;
        }
        let m = RootMsg {
            tree: TreeId(tree),
            depth,
            count,
            root: *root,
            reply: flags & ROOT_REPLY != 0,
            sketch: flags & ROOT_SKETCH != 0,
        };
        Some((m, rest))
    }
}

/// A probe: "are you there?", answered by an [`Message::Ack`] with the same `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Probe {
    /// Matches the ack to the probe.
    pub seq: u32,
    /// The member the probe is for: a node that took over a dead member's address ignores it.
    pub target: NodeId,
}

/// "Probe `target` at `addr` for me": an indirect probe through a third member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// The requester's probe, echoed in the relayed ack.
    pub seq: u32,
    /// The member to probe.
    pub target: NodeId,
    /// Where it listens.
    #[serde(with = "addr")]
    pub addr: core::net::SocketAddr,
}

/// Largest encoded [`ProbeRequest`]: seq, target and an IPv6 socket address ([`addr`]: a length
/// byte and 18 bytes).
pub const PROBE_REQUEST_MAX: usize = u32::POSTCARD_MAX_SIZE + NodeId::POSTCARD_MAX_SIZE + 1 + 18;

/// A message kind byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Kind {
    /// [`Message::Root`].
    Root = 1,
    /// [`Message::Digests`].
    Digests = 2,
    /// [`Message::Listing`].
    Listing = 3,
    /// [`Message::Fetch`].
    Fetch = 4,
    /// [`Message::Entries`].
    Entries = 5,
    /// [`Message::Sketch`].
    #[cfg(feature = "sketch")]
    Sketch = 6,
    /// [`Message::Want`].
    #[cfg(feature = "sketch")]
    Want = 7,
    /// [`Message::Ping`].
    Ping = 16,
    /// [`Message::Ack`].
    Ack = 17,
    /// [`Message::PingReq`].
    PingReq = 18,
    /// [`Message::Gossip`].
    Gossip = 19,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Root,
            2 => Kind::Digests,
            3 => Kind::Listing,
            4 => Kind::Fetch,
            5 => Kind::Entries,
            #[cfg(feature = "sketch")]
            6 => Kind::Sketch,
            #[cfg(feature = "sketch")]
            7 => Kind::Want,
            16 => Kind::Ping,
            17 => Kind::Ack,
            18 => Kind::PingReq,
            19 => Kind::Gossip,
            _ => return None,
        })
    }
}

/// A decoded message. List bodies borrow the datagram and were validated by [`decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Root exchange.
    Root(RootMsg),
    /// Child digests of named nodes: "compare these with yours and describe what differs".
    Digests {
        /// The table.
        tree: TreeId,
        /// The salt of every fingerprint in the message.
        salt: u32,
        /// The items.
        items: DigestItems<'a>,
    },
    /// (short key hash, version) listings of tree nodes.
    Listing {
        /// The table.
        tree: TreeId,
        /// The salt of the check bytes in the message.
        salt: u32,
        /// The groups.
        groups: Listing<'a>,
    },
    /// "Send me these entries": positions in listing groups.
    Fetch {
        /// The table.
        tree: TreeId,
        /// The groups.
        groups: Fetches<'a>,
    },
    /// Full entries, in the table's own encoding (checked by the table before any is applied).
    Entries {
        /// The table.
        tree: TreeId,
        /// The encoded entries, back to back.
        bytes: &'a [u8],
    },
    /// A table's sketch ([`crate::sketch`]): the answer to a root that differs, when its sender
    /// decodes sketches.
    #[cfg(feature = "sketch")]
    Sketch {
        /// The table.
        tree: TreeId,
        /// The syndromes, little-endian: an odd number of them, at most
        /// [`MAX_SYNDROMES`](crate::sketch::MAX_SYNDROMES).
        syndromes: Words<'a>,
    },
    /// "Send me the entries under these key hashes": what a decoded sketch found newer on the
    /// receiver, answered with `Entries`.
    #[cfg(feature = "sketch")]
    Want {
        /// The table.
        tree: TreeId,
        /// The key hashes, big-endian, at most [`MAX_WANTED`].
        hashes: Words<'a>,
    },
    /// A direct probe, with piggybacked rumors.
    Ping {
        /// The probe.
        probe: Probe,
        /// Piggybacked rumors, checked by the node before any is applied.
        rumors: &'a [u8],
    },
    /// The answer to a probe, direct or relayed, with piggybacked rumors.
    Ack {
        /// The probe's sequence number.
        seq: u32,
        /// Piggybacked rumors.
        rumors: &'a [u8],
    },
    /// A request to probe someone indirectly, with piggybacked rumors.
    PingReq {
        /// The request.
        request: ProbeRequest,
        /// Piggybacked rumors.
        rumors: &'a [u8],
    },
    /// Rumors alone, pushed by the gossip timer.
    Gossip {
        /// The rumors.
        rumors: &'a [u8],
    },
}

impl Message<'_> {
    /// This message's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Root(_) => Kind::Root,
            Message::Digests { .. } => Kind::Digests,
            Message::Listing { .. } => Kind::Listing,
            Message::Fetch { .. } => Kind::Fetch,
            Message::Entries { .. } => Kind::Entries,
            #[cfg(feature = "sketch")]
            Message::Sketch { .. } => Kind::Sketch,
            #[cfg(feature = "sketch")]
            Message::Want { .. } => Kind::Want,
            Message::Ping { .. } => Kind::Ping,
            Message::Ack { .. } => Kind::Ack,
            Message::PingReq { .. } => Kind::PingReq,
            Message::Gossip { .. } => Kind::Gossip,
        }
    }
}

/// Why a datagram was rejected. The receiver's state is unchanged by a rejected datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than its header or a field says.
    Truncated,
    /// Longer than the configured maximum datagram.
    Oversized,
    /// Does not start with the magic bytes: not a tidings datagram.
    BadMagic,
    /// A protocol version this build does not speak.
    UnsupportedProtocol,
    /// From another cluster.
    ForeignCluster,
    /// An unknown message kind.
    UnknownKind,
    /// A field that does not decode, or bytes left over after the last item.
    Malformed,
    /// No valid authentication tag under the configured keyring (forged, from a keyless or
    /// differently keyed node, or altered on the way).
    Unauthenticated,
    /// Encrypted at a node whose keyring does not encrypt, or plain at one whose keyring does: a
    /// cluster is encrypted or not.
    EncryptionMismatch,
}

/// Checks a datagram's size, magic, protocol and cluster, and decodes its header; returns the header
/// and what follows it.
pub fn decode_header(
    bytes: &[u8],
    cluster: ClusterId,
    max_len: usize,
) -> Result<(Header, &[u8]), WireError> {
    if bytes.len() > max_len {
        return Err(WireError::Oversized);
    }
    let (from, sender, rest) = split_header(bytes)?;
    if from != cluster.0 {
        return Err(WireError::ForeignCluster);
    }
    Ok((Header::new(cluster, sender), rest))
}

/// The cluster bytes and sender of a header whose magic and protocol are ours (sealed or not), and
/// what follows it.
fn split_header(bytes: &[u8]) -> Result<([u8; 4], NodeId, &[u8]), WireError> {
    match bytes {
        [] | [_] | [_, _] => return Err(WireError::Truncated),
        [m0, m1, ..] if [*m0, *m1] != MAGIC => return Err(WireError::BadMagic),
        [_, _, p, ..] if *p & !frame::ENCRYPTED != PROTOCOL => {
            return Err(WireError::UnsupportedProtocol)
        }
        _ => {}
    }
    // Decoded by hand, as postcard lays it out (magic, protocol, cluster bytes, sender varint):
    // postcard's generic decoder for this shape costs flash on a microcontroller.
    let (cluster, rest) = bytes
        .get(3..)
        .and_then(<[u8]>::split_first_chunk::<4>)
        .ok_or(WireError::Truncated)?;
    let (sender, rest) =
        postcard::take_from_bytes::<u64>(rest).map_err(|_| WireError::Truncated)?;
    Ok((*cluster, NodeId(sender), rest))
}

/// Decodes and validates a datagram of at most `max_len` bytes from cluster `cluster`.
pub fn decode(
    bytes: &[u8],
    cluster: ClusterId,
    max_len: usize,
) -> Result<(Header, Message<'_>), WireError> {
    let (header, rest) = decode_header(bytes, cluster, max_len)?;
    Ok((header, decode_message(rest)?))
}

/// Decodes the message that follows a header ([`decode_header`] returns where it starts).
pub fn decode_message(rest: &[u8]) -> Result<Message<'_>, WireError> {
    let (&kind, body) = rest.split_first().ok_or(WireError::Truncated)?;
    let kind = Kind::from_u8(kind).ok_or(WireError::UnknownKind)?;
    let malformed = |_| WireError::Malformed;
    let msg = match kind {
        Kind::Root => {
            let (m, rest) = RootMsg::take(body).ok_or(WireError::Malformed)?;
            if !rest.is_empty() {
                return Err(WireError::Malformed);
            }
            Message::Root(m)
        }
        Kind::Digests => {
            let (tree, rest) = postcard::take_from_bytes::<TreeId>(body).map_err(malformed)?;
            let (salt, rest) = rest.split_first_chunk::<4>().ok_or(WireError::Malformed)?;
            let items = DigestItems::validate(rest)?;
            let salt = u32::from_le_bytes(*salt);
            Message::Digests { tree, salt, items }
        }
        Kind::Listing => {
            let (tree, rest) = postcard::take_from_bytes::<TreeId>(body).map_err(malformed)?;
            let (salt, rest) = rest.split_first_chunk::<4>().ok_or(WireError::Malformed)?;
            Message::Listing {
                tree,
                salt: u32::from_le_bytes(*salt),
                groups: Listing::validate(rest)?,
            }
        }
        Kind::Fetch => {
            let (tree, rest) = postcard::take_from_bytes::<TreeId>(body).map_err(malformed)?;
            Message::Fetch {
                tree,
                groups: Fetches::validate(rest)?,
            }
        }
        Kind::Entries => {
            let (tree, bytes) = postcard::take_from_bytes::<TreeId>(body).map_err(malformed)?;
            Message::Entries { tree, bytes }
        }
        #[cfg(feature = "sketch")]
        Kind::Sketch => {
            let (tree, rest) = postcard::take_from_bytes::<TreeId>(body).map_err(malformed)?;
            let syndromes = Words::validate(rest, crate::sketch::MAX_SYNDROMES)?;
            if syndromes.len() % 2 == 0 {
                return Err(WireError::Malformed);
            }
            Message::Sketch { tree, syndromes }
        }
        #[cfg(feature = "sketch")]
        Kind::Want => {
            let (tree, rest) = postcard::take_from_bytes::<TreeId>(body).map_err(malformed)?;
            Message::Want {
                tree,
                hashes: Words::validate(rest, MAX_WANTED)?,
            }
        }
        Kind::Ping => {
            let (probe, rumors) = postcard::take_from_bytes::<Probe>(body).map_err(malformed)?;
            Message::Ping { probe, rumors }
        }
        Kind::Ack => {
            let (seq, rumors) = postcard::take_from_bytes::<u32>(body).map_err(malformed)?;
            Message::Ack { seq, rumors }
        }
        Kind::PingReq => {
            let (request, rumors) =
                postcard::take_from_bytes::<ProbeRequest>(body).map_err(malformed)?;
            Message::PingReq { request, rumors }
        }
        Kind::Gossip => Message::Gossip { rumors: body },
    };
    Ok(msg)
}

/// The buffer was too small for the header and message fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall;

/// Writes one datagram into a caller's buffer: header and kind first, then items while they fit.
pub struct Encoder<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Encoder<'b> {
    /// Starts a datagram of `kind` in `buf`. The caller limits `buf` to the maximum datagram size
    /// (less [`TAG_RESERVE`] when datagrams are authenticated).
    pub fn new(buf: &'b mut [u8], header: &Header, kind: Kind) -> Result<Self, BufferTooSmall> {
        let mut e = Encoder { buf, pos: 0 };
        let [m0, m1] = header.magic;
        let [c0, c1, c2, c3] = header.cluster.0;
        let fixed = [m0, m1, header.protocol, c0, c1, c2, c3];
        if !e.push_raw(&fixed) || !e.push(&header.sender.0) || !e.push_raw(&[kind as u8]) {
            return Err(BufferTooSmall);
        }
        Ok(e)
    }

    /// Appends `value` if it fits entirely; otherwise writes nothing and returns false.
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> bool {
        let Some(room) = self.buf.get_mut(self.pos..) else {
            return false;
        };
        match postcard::to_slice(value, room) {
            Ok(written) => {
                self.pos = self.pos.saturating_add(written.len());
                true
            }
            Err(_) => false,
        }
    }

    /// Appends raw bytes if they fit entirely.
    pub fn push_raw(&mut self, bytes: &[u8]) -> bool {
        let Some(end) = self.pos.checked_add(bytes.len()) else {
            return false;
        };
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
                true
            }
            None => false,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been written (never true after [`Encoder::new`]).
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Forgets everything written after the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.pos = self.pos.min(len);
    }

    /// Skips `n` bytes to be filled later by [`Encoder::fill`]; false (nothing skipped) if they do
    /// not fit.
    pub fn reserve(&mut self, n: usize) -> bool {
        let ok = n <= self.remaining();
        if ok {
            self.pos = self.pos.saturating_add(n);
        }
        ok
    }

    /// Fills the `reserved` bytes at `at` with `bytes` (at most that long), closing the gap left
    /// behind: a head written after its items, once they are known.
    pub fn fill(&mut self, at: usize, reserved: usize, bytes: &[u8]) -> bool {
        let end = at.saturating_add(reserved).min(self.pos);
        let n = bytes.len();
        let Some(dst) = self
            .buf
            .get_mut(at..at.saturating_add(n))
            .filter(|_| n <= reserved)
        else {
            return false;
        };
        dst.copy_from_slice(bytes);
        let to = at.saturating_add(n);
        self.buf.copy_within(end..self.pos, to);
        self.pos = self.pos.saturating_sub(end.saturating_sub(to));
        true
    }

    /// Ends the datagram, returning its length.
    pub fn finish(self) -> usize {
        self.pos
    }
}

/// Encodes a whole message: the inverse of [`decode`].
pub fn encode(header: &Header, msg: &Message<'_>, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut e = Encoder::new(buf, header, msg.kind())?;
    let ok = match msg {
        Message::Root(m) => m.push(&mut e),
        Message::Digests { tree, salt, items } => {
            e.push(tree) && e.push_raw(&salt.to_le_bytes()) && e.push_raw(items.as_bytes())
        }
        Message::Listing { tree, salt, groups } => {
            e.push(tree) && e.push_raw(&salt.to_le_bytes()) && e.push_raw(groups.as_bytes())
        }
        Message::Fetch { tree, groups } => e.push(tree) && e.push_raw(groups.as_bytes()),
        Message::Entries { tree, bytes } => e.push(tree) && e.push_raw(bytes),
        #[cfg(feature = "sketch")]
        Message::Sketch { tree, syndromes } => e.push(tree) && e.push_raw(syndromes.as_bytes()),
        #[cfg(feature = "sketch")]
        Message::Want { tree, hashes } => e.push(tree) && e.push_raw(hashes.as_bytes()),
        Message::Ping { probe, rumors } => e.push(probe) && e.push_raw(rumors),
        Message::Ack { seq, rumors } => e.push(seq) && e.push_raw(rumors),
        Message::PingReq { request, rumors } => e.push(request) && e.push_raw(rumors),
        Message::Gossip { rumors } => e.push_raw(rumors),
    };
    if ok {
        Ok(e.finish())
    } else {
        Err(BufferTooSmall)
    }
}

/// Largest header plus kind byte.
pub const HEADER_MAX: usize = Header::POSTCARD_MAX_SIZE + 1;
/// Largest root datagram.
pub const ROOT_MAX: usize = HEADER_MAX + RootMsg::POSTCARD_MAX_SIZE;
/// Largest fixed prefix of a list datagram (header, kind, tree id).
pub const LIST_PREFIX_MAX: usize = HEADER_MAX + TreeId::POSTCARD_MAX_SIZE;

// Every fixed-size message, and at least one item of every list, fits the smallest datagram we accept.
const _: () = assert!(ROOT_MAX + TAG_RESERVE <= MIN_DATAGRAM);
const _: () = assert!(HEADER_MAX + PROBE_REQUEST_MAX + TAG_RESERVE <= MIN_DATAGRAM);
const _: () = assert!(LIST_PREFIX_MAX + 4 + DIGEST_ITEM_MAX + TAG_RESERVE <= MIN_DATAGRAM);
const _: () = assert!(
    LIST_PREFIX_MAX + LISTING_HEAD_MAX + 8 + Version::POSTCARD_MAX_SIZE + TAG_RESERVE
        <= MIN_DATAGRAM
);
const _: () =
    assert!(LIST_PREFIX_MAX + GroupHead::MAX + BITMAP_BYTES + TAG_RESERVE <= MIN_DATAGRAM);

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{QuickCheck, TestResult};

    const C: ClusterId = ClusterId(*b"test");

    fn header() -> Header {
        Header::new(C, NodeId(42))
    }

    fn qc() -> QuickCheck {
        QuickCheck::new().tests(2000)
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes() {
        fn prop(bytes: std::vec::Vec<u8>) -> bool {
            let _ = decode(&bytes, C, DEFAULT_MAX_DATAGRAM);
            true
        }
        qc().quickcheck(prop as fn(std::vec::Vec<u8>) -> bool);
    }

    #[test]
    fn decode_never_panics_on_mutated_valid_datagrams() {
        fn prop(
            seed: std::vec::Vec<u8>,
            checked: bool,
            at: usize,
            byte: u8,
            cut: usize,
        ) -> TestResult {
            let mut buf = [0u8; DEFAULT_MAX_DATAGRAM];
            let mut e = Encoder::new(&mut buf, &header(), Kind::Listing).unwrap();
            e.push(&TreeId::DATA);
            e.push_raw(&7u32.to_le_bytes());
            let count = seed.len().min(20) as u8;
            let width = if checked { 3 | CHECKED } else { 3 };
            let head = GroupHead {
                node: 3,
                part: None,
                count,
            };
            push_group_head(&mut e, &head, width);
            for (i, b) in seed.iter().take(20).enumerate() {
                let summary = Summary {
                    short: u64::from(*b),
                    check: checked.then_some(*b ^ 0x5A),
                    version: Version::new(i as u64, 1, 0),
                };
                push_summary(&mut e, width, &summary);
            }
            let len = e.finish();
            let mut bytes = buf[..len].to_vec();
            let i = at % len;
            bytes[i] ^= byte;
            bytes.truncate(len - cut % len);
            let _ = decode(&bytes, C, DEFAULT_MAX_DATAGRAM);
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(std::vec::Vec<u8>, bool, usize, u8, usize) -> TestResult);
    }

    #[test]
    fn round_trips() {
        fn prop(
            count: u64,
            root: std::vec::Vec<u8>,
            reply: bool,
            nodes: std::vec::Vec<u32>,
        ) -> bool {
            let mut r = [0u8; 32];
            for (d, s) in r.iter_mut().zip(root.iter()) {
                *d = *s;
            }
            let m = Message::Root(RootMsg {
                tree: TreeId::DATA,
                depth: 3,
                count,
                root: r,
                reply,
                sketch: !reply,
            });
            let mut buf = [0u8; DEFAULT_MAX_DATAGRAM];
            let len = encode(&header(), &m, &mut buf).unwrap();
            let (h, back) = decode(&buf[..len], C, DEFAULT_MAX_DATAGRAM).unwrap();
            if h != header() || back != m {
                return false;
            }
            // A list message: packs items until full, and decodes to the same items.
            let mut e = Encoder::new(&mut buf, &header(), Kind::Digests).unwrap();
            e.push(&TreeId::MEMBERS);
            e.push(&count.to_le_bytes()[..4].try_into().unwrap_or([0u8; 4]));
            let mut written = std::vec::Vec::new();
            for &n in &nodes {
                // Children with and without entries.
                let children = core::array::from_fn(|i| u64::from(n >> (i % 8)) & !1);
                let item = DigestItem::new(n, &children, count as u32);
                if !item.push(&mut e) {
                    break;
                }
                written.push(item);
            }
            let len = e.finish();
            let Ok((_, m @ Message::Digests { tree, salt, items })) =
                decode(&buf[..len], C, DEFAULT_MAX_DATAGRAM)
            else {
                return false;
            };
            let mut again = [0u8; DEFAULT_MAX_DATAGRAM];
            let len2 = encode(&header(), &m, &mut again).unwrap();
            tree == TreeId::MEMBERS
                && salt == count as u32
                && items.into_iter().collect::<std::vec::Vec<_>>() == written
                && buf[..len] == again[..len2]
        }
        qc().quickcheck(prop as fn(u64, std::vec::Vec<u8>, bool, std::vec::Vec<u32>) -> bool);
    }

    #[test]
    fn probes_round_trip_with_their_rumors() {
        fn prop(seq: u32, target: u64, v6: bool, port: u16, rumors: std::vec::Vec<u8>) -> bool {
            let addr = if v6 {
                core::net::SocketAddr::from(([0xfe80, 0, 0, 0, 0, 0, 0, seq as u16], port))
            } else {
                core::net::SocketAddr::from(([10, 0, 0, seq as u8], port))
            };
            let request = ProbeRequest {
                seq,
                target: NodeId(target),
                addr,
            };
            let probe = Probe {
                seq,
                target: NodeId(target),
            };
            let msgs = [
                Message::Ping {
                    probe,
                    rumors: &rumors,
                },
                Message::Ack {
                    seq,
                    rumors: &rumors,
                },
                Message::PingReq {
                    request,
                    rumors: &rumors,
                },
                Message::Gossip { rumors: &rumors },
            ];
            let mut buf = [0u8; 2048];
            let bare = encode(&header(), &Message::Gossip { rumors: &[] }, &mut buf).unwrap();
            msgs.iter().all(|m| {
                let len = encode(&header(), m, &mut buf).unwrap();
                let fixed = len - rumors.len() - bare;
                decode(&buf[..len], C, 2048) == Ok((header(), *m)) && fixed <= PROBE_REQUEST_MAX
            })
        }
        qc().quickcheck(prop as fn(u32, u64, bool, u16, std::vec::Vec<u8>) -> bool);
    }

    #[test]
    fn bad_datagrams_get_typed_errors() {
        let mut buf = [0u8; 256];
        let mut e = Encoder::new(&mut buf, &header(), Kind::Fetch).unwrap();
        e.push(&TreeId::DATA);
        GroupHead {
            node: 1,
            part: None,
            count: 9,
        }
        .push(&mut e);
        e.push_raw(&[0xff, 1]);
        let len = e.finish();
        let good = &buf[..len];
        assert!(decode(good, C, DEFAULT_MAX_DATAGRAM).is_ok());
        assert_eq!(decode(&good[..2], C, 1200), Err(WireError::Truncated));
        assert_eq!(decode(&good[..6], C, 1200), Err(WireError::Truncated));
        assert_eq!(decode(&good[..len - 3], C, 1200), Err(WireError::Malformed));
        assert_eq!(
            decode(good, ClusterId(*b"othr"), 1200),
            Err(WireError::ForeignCluster)
        );
        assert_eq!(decode(good, C, len - 1), Err(WireError::Oversized));
        assert_eq!(decode(b"GET / HTTP/1.1", C, 1200), Err(WireError::BadMagic));
        let mut v = good.to_vec();
        v[2] = PROTOCOL + 1;
        assert_eq!(decode(&v, C, 1200), Err(WireError::UnsupportedProtocol));
        let mut v = good.to_vec();
        let kind_at = len - 7;
        v[kind_at] = 99;
        assert_eq!(decode(&v, C, 1200), Err(WireError::UnknownKind));
        let mut r = Rejects::default();
        r.count(WireError::Truncated);
        r.count(WireError::ForeignCluster);
        assert_eq!((r.truncated, r.foreign_cluster, r.total()), (1, 1, 2));
    }

    #[test]
    fn listing_ranges_must_be_ordered() {
        let mut buf = [0u8; 256];
        let mut e = Encoder::new(&mut buf, &header(), Kind::Listing).unwrap();
        e.push(&TreeId::DATA);
        e.push_raw(&0u32.to_le_bytes());
        push_group_head(
            &mut e,
            &GroupHead {
                node: 1,
                part: Some((9u64.to_be_bytes(), 3u64.to_be_bytes())),
                count: 0,
            },
            8,
        );
        let len = e.finish();
        assert_eq!(decode(&buf[..len], C, 1200), Err(WireError::Malformed));
    }

    #[test]
    fn checked_listings_carry_their_salt_and_check_bytes() {
        fn prop(salt: u32, hashes: std::vec::Vec<u64>, checked: bool) -> bool {
            let mut sent: std::vec::Vec<Summary> = hashes
                .iter()
                .take(40)
                .enumerate()
                .map(|(i, &h)| Summary {
                    short: short_hash(h, 1, 3),
                    check: checked.then(|| check_byte(h, salt)),
                    version: Version::new(i as u64, h, 0),
                })
                .collect();
            sent.sort_by_key(|s| s.short);
            let mut buf = [0u8; DEFAULT_MAX_DATAGRAM];
            let mut e = Encoder::new(&mut buf, &header(), Kind::Listing).unwrap();
            e.push(&TreeId::MEMBERS);
            e.push_raw(&salt.to_le_bytes());
            let head = GroupHead {
                node: 2,
                part: None,
                count: sent.len() as u8,
            };
            let width = if checked { 3 | CHECKED } else { 3 };
            push_group_head(&mut e, &head, width);
            assert!(sent.iter().all(|s| push_summary(&mut e, width, s)));
            let len = e.finish();
            let Ok((
                _,
                Message::Listing {
                    tree,
                    salt: got,
                    groups,
                },
            )) = decode(&buf[..len], C, DEFAULT_MAX_DATAGRAM)
            else {
                return false;
            };
            let mut groups = groups.into_iter();
            let Some((h, summaries)) = groups.next() else {
                return false;
            };
            tree == TreeId::MEMBERS
                && got == salt
                && h == head
                && summaries.width() == 3
                && summaries.eq(sent.iter().copied())
                && groups.next().is_none()
        }
        qc().quickcheck(prop as fn(u32, std::vec::Vec<u64>, bool) -> bool);
    }

    #[test]
    fn width_bytes_beyond_eight_or_with_unknown_flags_are_refused() {
        for width in [0u8, 9, 0x40 | 3, CHECKED] {
            let mut buf = [0u8; 256];
            let mut e = Encoder::new(&mut buf, &header(), Kind::Listing).unwrap();
            e.push(&TreeId::DATA);
            e.push_raw(&0u32.to_le_bytes());
            let head = GroupHead {
                node: 1,
                part: None,
                count: 0,
            };
            push_group_head(&mut e, &head, width);
            let len = e.finish();
            assert_eq!(
                decode(&buf[..len], C, 1200),
                Err(WireError::Malformed),
                "{width:#x}"
            );
        }
    }
}
