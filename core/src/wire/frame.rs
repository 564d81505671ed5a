//! Framing: what a whole datagram is around its message, in one place. A datagram is the header,
//! the message, and with a keyring the authentication tag over both; room for the tag is kept
//! whether or not a keyring is set, so a keyed and a keyless datagram carry the same load.
//!
//! With an encrypting keyring (feature `encrypt`) the message is sealed instead, and the header,
//! still readable, is authenticated beside it:
//!
//! ```text
//! header (protocol byte | ENCRYPTED) | encrypted message | generation u32 | counter u64 | tag [u8; 16]
//! ```
//! The generation and counter (little-endian) are the part of the nonce that travels; the sender's
//! id from the header completes it. An encrypted datagram carries [`NONCE_LEN`] bytes less message.

#[cfg(feature = "encrypt")]
use super::split_header;
use super::{decode_header, decode_message, Header, Kind, Message, WireError, TAG_RESERVE};
use crate::auth::{Keyring, TAG_LEN};
use crate::ClusterId;
use core::net::SocketAddr;

/// Set in the protocol byte of an encrypted datagram.
pub const ENCRYPTED: u8 = 0x80;
/// Bytes of an encrypted datagram's nonce on the wire: the sender's generation and counter.
pub const NONCE_LEN: usize = 12;

/// A datagram written into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub to: SocketAddr,
    /// Its length at the start of the caller's buffer.
    pub len: usize,
    /// Its message kind.
    pub kind: Kind,
}

/// What makes an encrypted datagram's nonce unique under its key, beside the sender's id: the
/// sender's generation and a counter it never repeats within that generation. Ignored when the
/// ring does not encrypt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Nonce {
    /// The sender's generation.
    pub generation: u32,
    /// The sender's datagram counter.
    pub counter: u64,
}

/// How many bytes of a `buf_len`-byte buffer a datagram's header and message may take, under a
/// configured maximum of `max_datagram`: the rest is the tag's room.
pub fn message_limit(max_datagram: usize, buf_len: usize) -> usize {
    max_datagram.min(buf_len).saturating_sub(TAG_RESERVE)
}

/// Bytes a datagram sealed under `ring` needs beyond the tag's room that every datagram keeps:
/// [`NONCE_LEN`] when the ring encrypts, else none.
pub fn nonce_room(ring: Option<&Keyring>) -> usize {
    if ring.is_some_and(Keyring::encrypts) {
        NONCE_LEN
    } else {
        0
    }
}

/// Seals the datagram of `len` bytes at the start of `buf`: with a keyring, appends the tag over
/// it, or with an encrypting one encrypts its message under `nonce` and appends the nonce and the
/// tag. The sealed length, or `None` if `buf` has no room for them (nothing was changed then).
pub fn seal(ring: Option<&Keyring>, nonce: Nonce, buf: &mut [u8], len: usize) -> Option<usize> {
    let Some(ring) = ring else {
        return Some(len);
    };
    if ring.encrypts() {
        return encrypt(ring, nonce, buf, len);
    }
    let end = len.checked_add(TAG_LEN)?;
    let tag = ring.tag(buf.get(..len)?);
    buf.get_mut(len..end)?.copy_from_slice(&tag);
    Some(end)
}

/// Opens a datagram: checks its header (magic, protocol, cluster, size), then with a keyring its
/// tag, or with an encrypting one decrypts it in place, then decodes its message. A datagram
/// refused before its message is decoded (header, tag, encryption) is left as it was; one that
/// opened holds its plain message, even if that then fails to decode.
pub fn open<'b>(
    bytes: &'b mut [u8],
    cluster: ClusterId,
    max_datagram: usize,
    ring: Option<&Keyring>,
) -> Result<(Header, Message<'b>), WireError> {
    let (header, rest) = decode_header(bytes, cluster, max_datagram)?;
    let start = bytes.len().saturating_sub(rest.len());
    let encrypted = bytes.get(2).is_some_and(|p| p & ENCRYPTED != 0);
    if encrypted != ring.is_some_and(Keyring::encrypts) {
        return Err(WireError::EncryptionMismatch);
    }
    let end = match ring {
        None => bytes.len(),
        Some(ring) if encrypted => decrypt(ring, header, start, bytes)?,
        Some(ring) => {
            let split = bytes
                .len()
                .checked_sub(TAG_LEN)
                .filter(|&s| s >= start)
                .ok_or(WireError::Unauthenticated)?;
            let (signed, tag) = bytes.split_at(split);
            if !ring.verify(signed, tag) {
                return Err(WireError::Unauthenticated);
            }
            split
        }
    };
    let bytes: &'b [u8] = bytes;
    let message = bytes.get(start..end).ok_or(WireError::Unauthenticated)?;
    Ok((header, decode_message(message)?))
}

#[cfg(feature = "encrypt")]
fn full_nonce(sender: crate::NodeId, wire: &[u8]) -> crate::auth::Nonce {
    // A label after the sender's part keeps this use of the key apart from any other.
    let mut nonce = [0u8; 24];
    let parts = sender.0.to_le_bytes();
    let parts = parts.iter().chain(wire).chain(b"tdx1");
    for (n, p) in nonce.iter_mut().zip(parts) {
        *n = *p;
    }
    nonce
}

#[cfg(feature = "encrypt")]
fn encrypt(ring: &Keyring, nonce: Nonce, buf: &mut [u8], len: usize) -> Option<usize> {
    let end = len.checked_add(NONCE_LEN + TAG_LEN)?;
    let (sender, start) = {
        let (_, sender, rest) = split_header(buf.get(..len)?).ok()?;
        (sender, len.saturating_sub(rest.len()))
    };
    let (sealed, trailer) = buf.get_mut(..end)?.split_at_mut(len);
    let (wire, tag_room) = trailer.split_at_mut(NONCE_LEN);
    let (g, c) = wire.split_at_mut(4);
    g.copy_from_slice(&nonce.generation.to_le_bytes());
    c.copy_from_slice(&nonce.counter.to_le_bytes());
    let (head, msg) = sealed.split_at_mut(start);
    if let Some(p) = head.get_mut(2) {
        *p |= ENCRYPTED;
    }
    let tag = ring.encrypt(&full_nonce(sender, wire), head, msg)?;
    tag_room.copy_from_slice(&tag);
    Some(end)
}

#[cfg(feature = "encrypt")]
fn decrypt(
    ring: &Keyring,
    header: Header,
    start: usize,
    bytes: &mut [u8],
) -> Result<usize, WireError> {
    let end = bytes
        .len()
        .checked_sub(NONCE_LEN + TAG_LEN)
        .filter(|&e| e >= start)
        .ok_or(WireError::Unauthenticated)?;
    let (sealed, trailer) = bytes.split_at_mut(end);
    let (wire, tag) = trailer.split_at(NONCE_LEN);
    let (head, msg) = sealed.split_at_mut(start);
    if ring.decrypt(&full_nonce(header.sender, wire), head, msg, tag) {
        Ok(end)
    } else {
        Err(WireError::Unauthenticated)
    }
}

#[cfg(not(feature = "encrypt"))]
fn encrypt(_: &Keyring, _: Nonce, _: &mut [u8], _: usize) -> Option<usize> {
    None
}

#[cfg(not(feature = "encrypt"))]
fn decrypt(_: &Keyring, _: Header, _: usize, _: &mut [u8]) -> Result<usize, WireError> {
    Err(WireError::EncryptionMismatch)
}
