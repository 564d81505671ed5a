//! An arbitrary sequence of datagrams, timeouts and commands into a Node. After every step: no panic,
//! every datagram within the maximum, tables within their bounds, and no member's (generation,
//! version) going backwards while the node holds it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::net::SocketAddr;
use tidings::auth::Keyring;
use tidings::config::Config;
use tidings::node::{HeaplessStorage, Node};
use tidings::tree::tree_size;
use tidings::wire::{self, Encoder, Header, Kind, Probe, TAG_RESERVE};
use tidings::{ClusterId, Duration, Instant, NodeId};

type Small = HeaplessStorage<8, 8, { tree_size(1) }, 16, 8, 16, { tree_size(1) }>;
const CLUSTER: ClusterId = ClusterId(*b"fuzz");

fuzz_target!(|bytes: &[u8]| {
    let mut now = Instant::from_millis(1);
    let mut config = Config::lan(CLUSTER, NodeId(1));
    (config.members_depth, config.data_depth) = (1, 1);
    // The first byte picks the keyring: none, signing, or encrypting; well-formed datagrams are
    // then sealed as a peer would seal them.
    let ring = match bytes.first().map(|b| b % 3) {
        Some(1) => Some(Keyring::new([5; 32])),
        Some(2) => Some(Keyring::new([5; 32]).with_encryption()),
        _ => None,
    };
    config.auth = ring;
    let mut sealed = 0u64;
    let me: SocketAddr = "10.0.0.1:7946".parse().unwrap();
    let Ok(mut node) = Node::<Small>::new(config, now, me, b"m", 7) else {
        return;
    };
    let mut seen: HashMap<u64, (u32, u64)> = HashMap::new();
    let mut out = [0u8; 1500];
    let mut rest = bytes;
    while let [op, arg, tail @ ..] = rest {
        rest = tail;
        let from: SocketAddr = SocketAddr::from(([10, 0, 0, 2 + arg % 4], 7946));
        match op % 6 {
            0 => {
                // A raw datagram of `arg` bytes from the input.
                let n = usize::from(*arg).min(rest.len());
                let _ = node.handle_datagram(now, from, &mut rest[..n].to_vec());
                rest = &rest[n..];
            }
            1 => {
                // A well-formed header and kind with a fuzzed body, to get past the decoder.
                let n = usize::from(*arg).min(rest.len());
                let mut buf = [0u8; 1200];
                let kinds = [
                    Kind::Ping,
                    Kind::Ack,
                    Kind::PingReq,
                    Kind::Gossip,
                    Kind::Entries,
                    Kind::Listing,
                    Kind::Digests,
                    Kind::Fetch,
                    Kind::Root,
                ];
                let kind = kinds[usize::from(*arg) % kinds.len()];
                let header = Header::new(CLUSTER, NodeId(u64::from(arg % 5)));
                let room = 1200 - TAG_RESERVE - wire::nonce_room(ring.as_ref());
                let mut e = Encoder::new(&mut buf[..room], &header, kind).unwrap();
                if kind == Kind::Ping {
                    e.push(&Probe {
                        seq: 1,
                        target: NodeId(1),
                    });
                }
                e.push_raw(&rest[..n]);
                let len = e.finish();
                sealed += 1;
                let nonce = wire::Nonce {
                    generation: 9,
                    counter: sealed,
                };
                let len = wire::seal(ring.as_ref(), nonce, &mut buf, len).unwrap();
                let _ = node.handle_datagram(now, from, &mut buf[..len]);
                rest = &rest[n..];
            }
            2 => {
                now = now + Duration::from_millis(u64::from(*arg) * 100);
                node.handle_timeout(now);
            }
            3 => {
                let _ = node.set(now, &[b'k', arg % 20], &[*arg; 3]);
            }
            4 => {
                let _ = node.delete(now, &[b'k', arg % 20]);
            }
            _ => node.join(from),
        }
        while let Some(t) = node.poll_transmit(now, &mut out) {
            let limit = match ring {
                Some(_) => node.config().sync.max_datagram,
                None => node.config().sync.max_datagram - TAG_RESERVE,
            };
            assert!(t.len <= limit, "the node sent an oversized datagram");
            // Opened as a peer with the same keyring opens it: tag, decryption, every field.
            assert!(
                wire::open(&mut out[..t.len], CLUSTER, 1200, ring.as_ref()).is_ok(),
                "the node sent a datagram it would refuse"
            );
        }
        while node.poll_event().is_some() {}
        assert!(node.members().len() <= 8);
        assert!(node.data().records().count() <= 16);
        // A member forgotten once its tombstone's retention passed may be learned afresh (the
        // documented limit of retention); only members still held must never go back.
        seen.retain(|id, _| node.members().get(NodeId(*id)).is_some());
        for m in node.members().iter() {
            let now_v = (m.generation(), m.version());
            if let Some(prev) = seen.insert(m.id().0, now_v) {
                assert!(
                    now_v >= prev,
                    "member {} went back from {prev:?} to {now_v:?}",
                    m.id()
                );
            }
        }
    }
});
