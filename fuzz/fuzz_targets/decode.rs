//! Arbitrary bytes into the decoder: never a panic, and whatever decodes re-encodes to the same message.
//! Under an encrypting keyring too: arbitrary bytes opened never panic (and are left as they were
//! when refused as unauthentic), and a re-encoded message, sealed, opens to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::auth::Keyring;
use tidings::wire::{
    decode, encode, open, seal, Message, Nonce, WireError, NONCE_LEN, TAG_RESERVE,
};
use tidings::ClusterId;

const CLUSTER: ClusterId = ClusterId(*b"fuzz");

fuzz_target!(|bytes: &[u8]| {
    let ring = Keyring::new([5; 32]).with_encryption();
    let mut copy = bytes.to_vec();
    if let Err(WireError::Unauthenticated | WireError::EncryptionMismatch) =
        open(&mut copy, CLUSTER, 65_507, Some(&ring))
    {
        assert_eq!(copy, bytes, "a datagram refused as unauthentic was altered");
    }
    let Ok((header, msg)) = decode(bytes, CLUSTER, 65_507) else {
        return;
    };
    // Walk every lazily decoded list to the end.
    match msg {
        Message::Digests { items, .. } => assert!(items.into_iter().count() <= bytes.len()),
        Message::Fetch { groups, .. } => {
            for (head, bitmap) in groups {
                assert_eq!(bitmap.len(), usize::from(head.count).div_ceil(8));
            }
        }
        Message::Listing { groups, .. } => {
            for (_, summaries) in groups {
                assert!(summaries.into_iter().count() <= bytes.len());
            }
        }
        _ => {}
    }
    let mut buf = vec![0u8; bytes.len() + 64 + NONCE_LEN + TAG_RESERVE];
    let len = encode(&header, &msg, &mut buf).expect("a decoded message re-encodes");
    let mut sealed = buf.clone();
    let (h2, m2) = decode(&buf[..len], CLUSTER, 65_507).expect("a re-encoded message decodes");
    assert_eq!(h2, header);
    assert_eq!(m2, msg);
    let nonce = Nonce {
        generation: 1,
        counter: bytes.len() as u64,
    };
    let sealed_len = seal(Some(&ring), nonce, &mut sealed, len).expect("room for the seal");
    let max = 65_507 + NONCE_LEN + TAG_RESERVE;
    let (h3, m3) =
        open(&mut sealed[..sealed_len], CLUSTER, max, Some(&ring)).expect("a sealed message opens");
    assert_eq!(h3, header);
    assert_eq!(m3, msg);
});
