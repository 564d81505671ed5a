//! Framing: what a whole datagram is around its message, in one place. A datagram is the header,
//! the message, and with a keyring the authentication tag over both; room for the tag is kept
//! whether or not a keyring is set, so a keyed and a keyless datagram carry the same load.

use super::{decode_header, decode_message, Header, Kind, Message, WireError, TAG_RESERVE};
use crate::auth::{Keyring, TAG_LEN};
use crate::ClusterId;
use core::net::SocketAddr;

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

/// How many bytes of a `buf_len`-byte buffer a datagram's header and message may take, under a
/// configured maximum of `max_datagram`: the rest is the tag's room.
pub fn message_limit(max_datagram: usize, buf_len: usize) -> usize {
    max_datagram.min(buf_len).saturating_sub(TAG_RESERVE)
}

/// Seals the datagram of `len` bytes at the start of `buf`: with a keyring, appends the tag over
/// it. The sealed length, or `None` if `buf` has no room for the tag (nothing was written then).
pub fn seal(ring: Option<&Keyring>, buf: &mut [u8], len: usize) -> Option<usize> {
    let Some(ring) = ring else {
        return Some(len);
    };
    let end = len.checked_add(TAG_LEN)?;
    let tag = ring.tag(buf.get(..len)?);
    buf.get_mut(len..end)?.copy_from_slice(&tag);
    Some(end)
}

/// Opens a datagram: checks its header (magic, protocol, cluster, size), then with a keyring its
/// tag, then decodes its message.
pub fn open<'b>(
    bytes: &'b [u8],
    cluster: ClusterId,
    max_datagram: usize,
    ring: Option<&Keyring>,
) -> Result<(Header, Message<'b>), WireError> {
    let (header, rest) = decode_header(bytes, cluster, max_datagram)?;
    let message = match ring {
        None => rest,
        Some(ring) => {
            let split = bytes
                .len()
                .checked_sub(TAG_LEN)
                .ok_or(WireError::Unauthenticated)?;
            let (signed, tag) = bytes.split_at(split);
            if !ring.verify(signed, tag) {
                return Err(WireError::Unauthenticated);
            }
            // The tag follows the message: the message is what the header left, less the tag.
            let len = rest
                .len()
                .checked_sub(TAG_LEN)
                .ok_or(WireError::Unauthenticated)?;
            rest.get(..len).ok_or(WireError::Unauthenticated)?
        }
    };
    Ok((header, decode_message(message)?))
}
