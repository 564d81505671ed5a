//! Member names: a name of up to 64 bytes of UTF-8 rides at the start of the member's metadata, so
//! every member learns it with the member record, and the node id can be derived from it.
//!
//! The metadata is `[1, len, name..., meta...]`. Metadata that does not start with byte 1 carries no
//! name (a microcontroller's, or a library node's) and is all the user's; user metadata that does
//! start with byte 1 is written after an empty name, `[1, 0, meta...]`, so it is never misread.

use tidings::NodeId;

/// The longest name, in bytes.
pub const MAX_NAME: usize = 64;

const TAG: u8 = 1;

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Empty.
    Empty,
    /// Longer than [`MAX_NAME`] bytes.
    TooLong(usize),
    /// It holds a control character.
    Control,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => f.write_str("the name is empty"),
            NameError::TooLong(n) => write!(f, "the name has {n} bytes; at most {MAX_NAME}"),
            NameError::Control => f.write_str("the name holds a control character"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name: 1 to 64 bytes of UTF-8, no control characters.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

/// The metadata that carries `name` (if any) and then `meta`.
pub fn encode(name: Option<&str>, meta: &[u8]) -> Result<Vec<u8>, NameError> {
    let name = match name {
        Some(n) => {
            check(n)?;
            n
        }
        None if meta.first() != Some(&TAG) => return Ok(meta.to_vec()),
        None => "",
    };
    let mut out = Vec::with_capacity(2 + name.len() + meta.len());
    out.push(TAG);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(meta);
    Ok(out)
}

/// The name a member's metadata carries, and the rest of it.
pub fn split(meta: &[u8]) -> (Option<&str>, &[u8]) {
    let [TAG, len, rest @ ..] = meta else {
        return (None, meta);
    };
    let len = usize::from(*len);
    match (rest.get(..len), rest.get(len..)) {
        (Some(name), Some(after)) => match std::str::from_utf8(name) {
            Ok("") => (None, after),
            Ok(n) => (Some(n), after),
            Err(_) => (None, meta),
        },
        _ => (None, meta),
    }
}

/// The node id of a name: the same name gives the same id on every start and every machine (a
/// restarted agent keeps its identity, even at a new address), different names different ids.
/// FNV-1a over the name, under a prefix of its own; never 0.
pub fn node_id(name: &str) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"tidings-name\0".iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    NodeId(h.max(1))
}

/// This machine's host name, if it has one that is a valid name.
pub fn host_name() -> Option<String> {
    let from_file = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok();
    let name = from_file
        .or_else(|| std::env::var("HOSTNAME").ok())?
        .trim()
        .to_owned();
    check(&name).is_ok().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_metadata() {
        let m = encode(Some("web-1"), b"rack=a").unwrap();
        assert_eq!(split(&m), (Some("web-1"), &b"rack=a"[..]));
        assert_eq!(split(b"rack=a"), (None, &b"rack=a"[..]));
        assert_eq!(encode(None, b"rack=a").unwrap(), b"rack=a");
        // User metadata that looks like a name record is escaped, and reads back whole.
        let tricky = [1u8, 3, b'a', b'b', b'c'];
        assert_eq!(split(&encode(None, &tricky).unwrap()), (None, &tricky[..]));
        // Truncated or not UTF-8: no name, all metadata.
        assert_eq!(split(&[1, 9, b'x']), (None, &[1u8, 9, b'x'][..]));
        assert_eq!(split(&[1, 1, 0xff]), (None, &[1u8, 1, 0xff][..]));
        let long = "é".repeat(32);
        assert_eq!(
            split(&encode(Some(&long), b"").unwrap()).0,
            Some(long.as_str())
        );
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check(&"x".repeat(65)), Err(NameError::TooLong(65)));
        assert_eq!(check("a\nb"), Err(NameError::Control));
        assert!(encode(Some(""), b"").is_err());
    }

    #[test]
    fn ids_follow_names() {
        assert_eq!(node_id("web-1"), node_id("web-1"));
        assert_ne!(node_id("web-1"), node_id("web-2"));
        assert_ne!(node_id("web-1").0, 0);
    }
}
