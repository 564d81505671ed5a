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
    // An odd first byte runs the node with a keyring; well-formed datagrams are then signed.
    let ring = Keyring::new([5; 32]);
    let keyed = bytes.first().is_some_and(|b| b % 2 == 1);
    if keyed {
        config.auth = Some(ring);
    }
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
                let _ = node.handle_datagram(now, from, &rest[..n]);
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
                let mut e = Encoder::new(&mut buf[..1200 - TAG_RESERVE], &header, kind).unwrap();
                if kind == Kind::Ping {
                    e.push(&Probe {
                        seq: 1,
                        target: NodeId(1),
                    });
                }
                e.push_raw(&rest[..n]);
                let mut len = e.finish();
                if keyed {
                    let tag = ring.tag(&buf[..len]);
                    buf[len..len + TAG_RESERVE].copy_from_slice(&tag);
                    len += TAG_RESERVE;
                }
                let _ = node.handle_datagram(now, from, &buf[..len]);
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
            let body = if keyed {
                assert!(t.len <= node.config().sync.max_datagram);
                let (body, tag) = out[..t.len].split_at(t.len - TAG_RESERVE);
                assert!(
                    ring.verify(body, tag),
                    "the node sent a datagram with a bad tag"
                );
                body
            } else {
                assert!(t.len <= node.config().sync.max_datagram - TAG_RESERVE);
                &out[..t.len]
            };
            assert!(
                wire::decode(body, CLUSTER, 1200).is_ok(),
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
