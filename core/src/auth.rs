//! Authentication: an HMAC-SHA-256 tag, truncated to 16 bytes, on every datagram, under a keyring;
//! or, with the `encrypt` feature and a ring made with [`Keyring::with_encryption`], encryption:
//! XChaCha20-Poly1305 seals every datagram's message, and its 16-byte tag takes the HMAC's place.
//!
//! One key signs; every key of the ring is accepted, so keys rotate without downtime: add the new key
//! to every node's ring, then make it the signing key everywhere, then drop the old one. With a ring
//! configured, a datagram without a valid tag is refused before anything in it is looked at.
//!
//! The ring also keys the digest tree, so that an outsider who can choose keys and values written
//! through an application still cannot steer entries into one bucket or craft digests that cancel
//! out. That key comes from a separate digest secret (by default the ring's first key), which all
//! nodes must share and which does not rotate with the signing keys: trees under different digest
//! keys never agree, so changing it makes anti-entropy find differences everywhere until every node
//! has the new secret.
//!
//! An encrypted datagram's nonce is the sender's id, its generation and a 64-bit counter that starts
//! at a random point when the node starts: a node never repeats one within a generation, a restart
//! bumps the generation, and the random start keeps two nodes that share an id and a generation (a
//! misconfiguration, or a generation not persisted) apart. `SECURITY.md` says what this protects.

use crate::hash::DigestKey;
use crate::ClusterId;
#[cfg(feature = "encrypt")]
use chacha20poly1305::AeadInPlace;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes of the tag appended to an authenticated datagram.
pub const TAG_LEN: usize = crate::wire::TAG_RESERVE;
/// Most keys a ring holds.
pub const MAX_KEYS: usize = 4;

/// A shared secret.
pub type Key = [u8; KEY_LEN];

/// The keys of a cluster: the first signs, all are accepted.
///
/// ```
/// use tidings::auth::Keyring;
/// let ring = Keyring::new([7; 32]).with([9; 32]).unwrap();
/// let tag = ring.tag(b"datagram");
/// assert!(ring.verify(b"datagram", &tag));
/// assert!(!Keyring::new([8; 32]).verify(b"datagram", &tag));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Keyring {
    keys: [Key; MAX_KEYS],
    len: u8,
    digest: Key,
    #[cfg(feature = "encrypt")]
    encrypt: bool,
}

/// A keyring already holds [`MAX_KEYS`] keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KeyringFull;

impl core::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Keyring({} keys)", self.len)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Keyring {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Keyring({=u8} keys)", self.len)
    }
}

fn mac(key: &Key) -> Hmac<Sha256> {
    // HMAC pads a short key with zeros to the hash's 64-byte block: do that here, infallibly.
    let mut block = [0u8; 64];
    block[..KEY_LEN].copy_from_slice(key);
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into())
}

/// An encrypted datagram's whole nonce (XChaCha20-Poly1305 takes 24 bytes).
#[cfg(feature = "encrypt")]
pub(crate) type Nonce = [u8; 24];

#[cfg(feature = "encrypt")]
fn aead(key: &Key) -> chacha20poly1305::XChaCha20Poly1305 {
    <chacha20poly1305::XChaCha20Poly1305 as chacha20poly1305::KeyInit>::new(&(*key).into())
}

impl Keyring {
    /// A ring whose only key, `signing`, signs and is accepted; it is also the digest secret.
    pub const fn new(signing: Key) -> Self {
        Keyring {
            keys: [signing; MAX_KEYS],
            len: 1,
            digest: signing,
            #[cfg(feature = "encrypt")]
            encrypt: false,
        }
    }

    /// The ring, encrypting every datagram under its signing key instead of only signing it; every
    /// key of the ring still opens, so rotation works as without encryption. A cluster is encrypted
    /// or not: a node whose ring encrypts refuses plain datagrams, and a node whose ring does not
    /// refuses encrypted ones (both counted as [`crate::wire::WireError::EncryptionMismatch`]).
    #[cfg(feature = "encrypt")]
    pub const fn with_encryption(mut self) -> Self {
        self.encrypt = true;
        self
    }

    /// Whether datagrams are encrypted under this ring.
    pub const fn encrypts(&self) -> bool {
        #[cfg(feature = "encrypt")]
        return self.encrypt;
        #[cfg(not(feature = "encrypt"))]
        false
    }

    /// The ring, with `secret` keying the digest tree instead.
    pub const fn with_digest_secret(mut self, secret: Key) -> Self {
        self.digest = secret;
        self
    }

    /// The ring, also accepting `key`.
    pub fn with(mut self, key: Key) -> Result<Self, KeyringFull> {
        let slot = self
            .keys
            .get_mut(usize::from(self.len))
            .ok_or(KeyringFull)?;
        *slot = key;
        self.len = self.len.saturating_add(1);
        Ok(self)
    }

    /// The keys, the signing key first.
    pub fn keys(&self) -> &[Key] {
        self.keys.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The tag of `bytes` under the signing key.
    pub fn tag(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut m = mac(&self.keys[0]);
        m.update(bytes);
        let full = m.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(full.get(..TAG_LEN).unwrap_or(&[0; TAG_LEN]));
        tag
    }

    /// Whether `tag` is the tag of `bytes` under any key of the ring (compared in constant time).
    pub fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        tag.len() == TAG_LEN
            && self.keys().iter().fold(false, |ok, key| {
                let mut m = mac(key);
                m.update(bytes);
                m.verify_truncated_left(tag).is_ok() | ok
            })
    }

    /// Encrypts `msg` in place under the signing key, with `aad` authenticated beside it; the tag.
    /// `None` only for a message longer than the cipher allows (256 GiB), left as it was.
    #[cfg(feature = "encrypt")]
    pub(crate) fn encrypt(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        msg: &mut [u8],
    ) -> Option<[u8; TAG_LEN]> {
        let tag = aead(&self.keys[0])
            .encrypt_in_place_detached(&(*nonce).into(), aad, msg)
            .ok()?;
        Some(tag.into())
    }

    /// Decrypts `msg` in place if `tag` is its tag, with `aad`, under any key of the ring; `msg` is
    /// left as it was when no key opens it.
    #[cfg(feature = "encrypt")]
    pub(crate) fn decrypt(&self, nonce: &Nonce, aad: &[u8], msg: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag) else {
            return false;
        };
        let (nonce, tag) = ((*nonce).into(), tag.into());
        // The cipher checks the tag before it touches the message, so a key that fails leaves the
        // message for the next one.
        self.keys().iter().any(|key| {
            aead(key)
                .decrypt_in_place_detached(&nonce, aad, msg, &tag)
                .is_ok()
        })
    }

    /// The digest-tree key of `cluster` under this ring's digest secret.
    pub fn digest_key(&self, cluster: ClusterId) -> DigestKey {
        let mut secret = [0u8; 4 + KEY_LEN];
        secret[..4].copy_from_slice(&cluster.0);
        secret[4..].copy_from_slice(&self.digest);
        DigestKey::from_secret(&secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        let out = m.finalize().into_bytes();
        assert_eq!(
            out[..16],
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7
            ]
        );
    }

    #[test]
    fn any_key_of_the_ring_verifies_only_the_first_signs() {
        let old = Keyring::new([1; 32]);
        let rotating = Keyring::new([2; 32]).with([1; 32]).unwrap();
        assert!(
            rotating.verify(b"x", &old.tag(b"x")),
            "the old key is still accepted"
        );
        assert!(!old.verify(b"x", &rotating.tag(b"x")), "the new key signs");
        assert!(!rotating.verify(b"y", &rotating.tag(b"x")));
        assert!(!rotating.verify(b"x", &rotating.tag(b"x")[..15]));
        let full = rotating.with([3; 32]).unwrap().with([4; 32]).unwrap();
        assert_eq!(full.with([5; 32]), Err(KeyringFull));
        assert_eq!(full.keys().len(), MAX_KEYS);
        assert_eq!(
            std::format!("{full:?}"),
            "Keyring(4 keys)",
            "keys never print"
        );
    }

    #[test]
    fn the_digest_key_follows_the_digest_secret_not_the_signing_key() {
        let c = ClusterId(*b"test");
        let before = Keyring::new([1; 32]);
        let rotated = Keyring::new([2; 32])
            .with([1; 32])
            .unwrap()
            .with_digest_secret([1; 32]);
        assert_eq!(before.digest_key(c), rotated.digest_key(c));
        assert_ne!(before.digest_key(c), Keyring::new([2; 32]).digest_key(c));
        assert_ne!(before.digest_key(c), DigestKey::from_cluster(c));
        assert_ne!(before.digest_key(c), before.digest_key(ClusterId(*b"othr")));
    }
}
