//! Arbitrary bytes into the decoder: never a panic, and whatever decodes re-encodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::wire::{decode, encode, Message};
use tidings::ClusterId;

const CLUSTER: ClusterId = ClusterId(*b"fuzz");

fuzz_target!(|bytes: &[u8]| {
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
    let mut buf = vec![0u8; bytes.len() + 64];
    let len = encode(&header, &msg, &mut buf).expect("a decoded message re-encodes");
    let (h2, m2) = decode(&buf[..len], CLUSTER, 65_507).expect("a re-encoded message decodes");
    assert_eq!(h2, header);
    assert_eq!(m2, msg);
});
