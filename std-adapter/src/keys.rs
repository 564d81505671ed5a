//! Key files: the cluster's keyring as text.
//!
//! One base64 key (32 bytes) per line; the first signs, all are accepted. Blank lines and lines
//! starting with `#` are ignored. A line `digest: <base64>` sets the secret that keys the digest tree;
//! without one it is the first key. Pin it when you plan to rotate keys (see SECURITY.md): nodes with
//! different digest secrets cannot compare trees.
//!
//! ```text
//! # signs
//! 8n2kVdZ0J3o6Yj0m0l5mVY4c8m6Qe3aM2H3q0pN1xTw=
//! # still accepted while the rotation rolls out
//! p9fS1d0V8Yb3l2a8cQ5t2w7o1x4z6C8e0G2i4K6m8O0=
//! digest: p9fS1d0V8Yb3l2a8cQ5t2w7o1x4z6C8e0G2i4K6m8O0=
//! ```

use base64::Engine;
use std::io::Read;
use std::path::Path;
use tidings::auth::{Key, Keyring, KEY_LEN, MAX_KEYS};

fn decode(text: &str, line: usize) -> Result<Key, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("line {line}: not base64: {e}"))?;
    Key::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "line {line}: a key is {KEY_LEN} bytes, this one is {}",
            bytes.len()
        )
    })
}

/// Whether a key file's text pins the digest secret with a `digest:` line. Without one the digest
/// secret is the signing key, and rotating the signing key changes every node's digest tree: the
/// agent warns at start (SECURITY.md, "Keys and rotation").
pub fn pins_digest(text: &str) -> bool {
    text.lines().any(|l| l.trim().starts_with("digest:"))
}

/// Parses a key file's text.
pub fn parse(text: &str) -> Result<Keyring, String> {
    let mut keys = Vec::new();
    let mut digest = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_prefix("digest:") {
            Some(rest) => digest = Some(decode(rest, i + 1)?),
            None => keys.push(decode(line, i + 1)?),
        }
    }
    let (&first, rest) = keys.split_first().ok_or("no key in the key file")?;
    if keys.len() > MAX_KEYS {
        return Err(format!(
            "{} keys: a keyring holds at most {MAX_KEYS}",
            keys.len()
        ));
    }
    let mut ring = Keyring::new(first);
    for &k in rest {
        ring = ring
            .with(k)
            .map_err(|_| format!("a keyring holds at most {MAX_KEYS} keys"))?;
    }
    Ok(match digest {
        Some(d) => ring.with_digest_secret(d),
        None => ring,
    })
}

/// Reads a key file, refusing one that others can read; warns when it does not pin the digest
/// secret ([`pins_digest`]).
pub fn read(path: &Path) -> Result<Keyring, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{}: readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ring = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if !pins_digest(&text) {
        tracing::warn!(
            file = %path.display(),
            "the key file has no `digest:` line, so the digest secret is the signing key: rotating \
             that key gives every node a different digest tree, and anti-entropy then finds \
             differences everywhere (about a thousand times its traffic) until all have rotated; \
             pin it with `digest: <base64 of the current key>` before the first rotation \
             (SECURITY.md)"
        );
    }
    Ok(ring)
}

/// A new random key, as base64 text.
pub fn generate() -> std::io::Result<String> {
    let mut key = [0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_from_text() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        let ring = parse(&format!("# comment\n{a}\n\n{b}\n")).unwrap();
        assert_eq!(ring.keys().len(), 2);
        let signed_by_b = parse(&b).unwrap().tag(b"x");
        assert!(ring.verify(b"x", &signed_by_b));
        let text = format!("{b}\ndigest: {a}\n");
        assert!(pins_digest(&text) && !pins_digest(&a));
        let pinned = parse(&text).unwrap();
        let c = tidings::ClusterId(*b"test");
        assert_eq!(
            pinned.digest_key(c),
            ring.digest_key(c),
            "digest secret: first key, or pinned"
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("").unwrap_err().contains("no key"));
        assert!(parse("not base64!").unwrap_err().contains("line 1"));
        assert!(parse("AAAA").unwrap_err().contains("32 bytes"));
        let k = generate().unwrap();
        assert!(parse(&[k.as_str(); 5].join("\n"))
            .unwrap_err()
            .contains("at most"));
    }
}
