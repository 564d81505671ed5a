//! Encrypted clusters: nothing readable leaves a node, a cluster is encrypted or not, any change to
//! a datagram is refused and leaves it as it was, keys rotate, and nonces never repeat.

use super::*;
use crate::auth::Keyring;
use crate::wire::{ENCRYPTED, NONCE_LEN};
use std::collections::HashSet;

const KEY: &[u8] = b"k-recognisable-key";
const VALUE: &[u8] = b"v-recognisable-value-4242";

fn sealed(id: u64, ring: Keyring) -> Node<Small> {
    keyed(id, ring.with_encryption())
}

/// `b` joins `a` and writes [`KEY`]; they talk for four seconds. Every datagram that crossed, as
/// it was sent.
fn converse(a: &mut Node<Small>, b: &mut Node<Small>) -> StdVec<StdVec<u8>> {
    b.join(addr(0));
    let mut seen = StdVec::new();
    let mut t = Instant::from_millis(1_000);
    for step in 0..40 {
        t = t + Duration::from_millis(100);
        if step == 10 {
            b.set(t, KEY, VALUE).unwrap();
        }
        a.handle_timeout(t);
        b.handle_timeout(t);
        for d in outbox(b, t) {
            a.handle_datagram(t, addr(1), &mut d.clone()).unwrap();
            seen.push(d);
        }
        for d in outbox(a, t) {
            b.handle_datagram(t, addr(0), &mut d.clone()).unwrap();
            seen.push(d);
        }
    }
    seen
}

fn shows(datagram: &[u8], needle: &[u8]) -> bool {
    datagram.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_encrypted_cluster_never_shows_a_key_or_value_on_the_wire() {
    let ring = Keyring::new([7; 32]);
    let (mut a, mut b) = (sealed(1, ring), sealed(2, ring));
    let seen = converse(&mut a, &mut b);
    assert_eq!(a.get(KEY), Some(VALUE), "the write crossed");
    assert!(seen.len() > 20, "{} datagrams", seen.len());
    for d in &seen {
        assert_ne!(d[2] & ENCRYPTED, 0, "marked encrypted");
        assert!(d.len() <= 1200, "within the datagram limit, nonce included");
        assert!(!shows(d, KEY) && !shows(d, VALUE), "readable: {d:?}");
    }
    // The search is a real one: signed but not encrypted, the same run shows both.
    let (mut a, mut b) = (keyed(1, ring), keyed(2, ring));
    let seen = converse(&mut a, &mut b);
    assert!(seen.iter().any(|d| shows(d, KEY) && shows(d, VALUE)));
}

#[test]
fn a_cluster_is_encrypted_or_not_and_mixed_datagrams_are_refused_and_counted() {
    let ring = Keyring::new([7; 32]);
    let now = Instant::from_millis(1_000);
    let mut encrypted = sealed(1, ring);
    let mut signed = keyed(2, ring);
    let mut keyless =
        Node::<Small>::new(lan(ClusterId(*b"test"), NodeId(3)), now, addr(2), b"", 3).unwrap();
    let roots = |n: &Node<Small>| (n.members().root(), n.data().root());
    let before = [roots(&encrypted), roots(&signed), roots(&keyless)];
    let mismatch = Err(RecvError::Wire(WireError::EncryptionMismatch));
    for other in [&mut signed, &mut keyless] {
        other.join(addr(0));
        for d in outbox(other, now) {
            assert_eq!(
                encrypted.handle_datagram(now, addr(1), &mut d.clone()),
                mismatch
            );
        }
    }
    encrypted.join(addr(1));
    encrypted.join(addr(2));
    for d in outbox(&mut encrypted, now) {
        assert_eq!(
            signed.handle_datagram(now, addr(0), &mut d.clone()),
            mismatch
        );
        assert_eq!(
            keyless.handle_datagram(now, addr(0), &mut d.clone()),
            mismatch
        );
    }
    assert_eq!(before, [roots(&encrypted), roots(&signed), roots(&keyless)]);
    assert!(encrypted.stats().rejects.encryption_mismatch >= 2);
    assert!(signed.stats().rejects.encryption_mismatch >= 1);
    assert!(keyless.stats().rejects.encryption_mismatch >= 1);
}

#[test]
fn every_changed_bit_is_refused_and_leaves_the_datagram_as_it_was() {
    let ring = Keyring::new([7; 32]);
    let (mut a, mut b) = (sealed(1, ring), sealed(2, ring));
    let seen = converse(&mut a, &mut b);
    let sample = seen.iter().max_by_key(|d| d.len()).unwrap().clone();
    let t = Instant::from_millis(9_000);
    let roots = (a.members().root(), a.data().root());
    for bit in 0..sample.len() * 8 {
        let mut d = sample.clone();
        d[bit / 8] ^= 1 << (bit % 8);
        let changed = d.clone();
        assert!(a.handle_datagram(t, addr(1), &mut d).is_err(), "bit {bit}");
        assert_eq!(d, changed, "bit {bit}: the refused datagram was altered");
    }
    // Under another key, whole.
    let mut other = sealed(2, Keyring::new([8; 32]));
    other.join(addr(0));
    for d in outbox(&mut other, t) {
        assert_eq!(
            a.handle_datagram(t, addr(1), &mut d.clone()),
            Err(RecvError::Wire(WireError::Unauthenticated))
        );
    }
    assert_eq!(roots, (a.members().root(), a.data().root()));
    // The unchanged datagram still opens: only the changes were refused.
    assert!(a.handle_datagram(t, addr(1), &mut sample.clone()).is_ok());
}

#[test]
fn encrypted_keys_rotate_without_a_gap() {
    let (k1, k2) = ([1; 32], [2; 32]);
    // Mid-rotation: a already encrypts under k2, b still under k1; each opens both.
    let mut a = sealed(1, Keyring::new(k2).with(k1).unwrap().with_digest_secret(k1));
    let mut b = sealed(2, Keyring::new(k1).with(k2).unwrap());
    converse(&mut a, &mut b);
    assert_eq!(a.get(KEY), Some(VALUE));
    assert_eq!(a.members().live(), 2);
    assert_eq!(b.members().live(), 2);
    assert_eq!(a.stats().rejects.total() + b.stats().rejects.total(), 0);
}

/// The wire nonce of every datagram `node` (id 2) sends while it joins node 1 and writes.
fn nonces(mut node: Node<Small>) -> StdVec<[u8; NONCE_LEN]> {
    let mut peer = sealed(1, Keyring::new([7; 32]));
    let seen = converse(&mut peer, &mut node);
    let sent = seen.iter().filter(|d| d[7] == 2);
    sent.map(|d| {
        let at = d.len() - NONCE_LEN - TAG_RESERVE;
        d[at..at + NONCE_LEN].try_into().unwrap()
    })
    .collect()
}

#[test]
fn nonces_never_repeat_across_restarts_or_between_nodes_sharing_an_id() {
    let ring = Keyring::new([7; 32]).with_encryption();
    let node = |generation: u32, seed: u64| {
        let config = Config {
            auth: Some(ring),
            generation,
            ..lan(ClusterId(*b"test"), NodeId(2))
        };
        Node::<Small>::new(config, Instant::from_millis(1_000), addr(1), b"", seed).unwrap()
    };
    let mut all = StdVec::new();
    // A node, the same node restarted with the same seed, and a twin with its id and generation.
    for (generation, seed) in [(0, 2), (1, 2), (0, 3)] {
        let sent = nonces(node(generation, seed));
        assert!(sent.len() > 20);
        all.extend(sent);
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "a nonce repeated");
}
