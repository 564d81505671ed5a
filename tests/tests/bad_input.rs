//! Malformed, truncated, oversized and foreign datagrams are refused with a typed reason, counted, and
//! change nothing.

use tidings::data::{AllocData, DataConfig};
use tidings::sync::{Engine, SyncConfig, SyncError};
use tidings::wire::{self, Encoder, GroupHead, Header, Kind, Rejects, TreeId};
use tidings::{ClusterId, DigestKey, Instant, NodeId, Version};
use tidings_sim::pair::CLUSTER;
use tidings_sim::rng::Rng;

fn replica() -> AllocData {
    let dk = DigestKey::from_cluster(CLUSTER);
    let mut m = AllocData::with_depth(DataConfig::default(), NodeId(1), 0, dk, 2, 1000).unwrap();
    for i in 0..100u32 {
        m.set(Instant::ZERO, format!("k{i}").as_bytes(), b"v")
            .unwrap();
    }
    m
}

/// Feeds one datagram through the real receive path; returns the rejection, if any.
fn receive(
    engine: &mut Engine,
    m: &mut AllocData,
    rejects: &mut Rejects,
    bytes: &[u8],
) -> Option<String> {
    let from = "10.0.0.9:7946".parse().unwrap();
    match wire::decode(bytes, CLUSTER, 1200) {
        Err(e) => {
            rejects.count(e);
            Some(format!("{e:?}"))
        }
        Ok((_, msg)) => engine
            .handle(Instant::ZERO, from, &msg, m)
            .err()
            .map(|e| format!("{e:?}")),
    }
}

#[test]
fn garbage_is_rejected_counted_and_harmless() {
    let mut m = replica();
    let before = (m.root(), m.len());
    let mut engine: Engine = Engine::new(SyncConfig::default());
    let mut rejects = Rejects::default();
    let mut rng = Rng::new(7);
    let header = Header::new(CLUSTER, NodeId(2));
    let mut refused = 0u64;
    for i in 0..5_000 {
        let mut bytes = vec![0u8; rng.below(1400) as usize];
        rng.fill(&mut bytes);
        if i % 2 == 0 && bytes.len() > 9 {
            // A valid header with a random body: exercises every body decoder.
            let mut buf = [0u8; 16];
            let h = Encoder::new(&mut buf, &header, Kind::Root)
                .unwrap()
                .finish()
                - 1;
            bytes[..h].copy_from_slice(&buf[..h]);
            bytes[h] = 1 + (i as u8 % 5);
        }
        if receive(&mut engine, &mut m, &mut rejects, &bytes).is_some() {
            refused += 1;
        }
    }
    assert_eq!((m.root(), m.len()), before, "state changed");
    assert!(rejects.total() + engine.stats().refused >= refused);
    assert!(
        rejects.bad_magic > 2_000 && rejects.oversized > 0 && rejects.malformed > 0,
        "{rejects:?}"
    );
}

#[test]
fn each_kind_of_bad_datagram_gets_its_reason() {
    let mut m = replica();
    let root = m.root();
    let mut engine: Engine = Engine::new(SyncConfig::default());
    let mut rejects = Rejects::default();
    let header = Header::new(CLUSTER, NodeId(2));
    let mut buf = [0u8; 1500];

    // Entries whose bytes do not decode: refused whole by the replica.
    let mut e = Encoder::new(&mut buf, &header, Kind::Entries).unwrap();
    e.push(&TreeId::DATA);
    e.push_raw(&[3, b'a', b'b']);
    let n = e.finish();
    assert_eq!(
        receive(&mut engine, &mut m, &mut rejects, &buf[..n]).as_deref(),
        Some("Entry(Malformed)")
    );

    // A listing that names a node our tree does not have.
    let mut e = Encoder::new(&mut buf, &header, Kind::Listing).unwrap();
    e.push(&TreeId::DATA);
    e.push_raw(&0u32.to_le_bytes());
    wire::push_group_head(
        &mut e,
        &GroupHead {
            node: 9_999,
            part: None,
            count: 1,
        },
        8,
    );
    let summary = wire::Summary {
        short: 0,
        check: None,
        version: Version::new(1, 1, 0),
    };
    wire::push_summary(&mut e, 8, &summary);
    let n = e.finish();
    assert_eq!(
        receive(&mut engine, &mut m, &mut rejects, &buf[..n]).as_deref(),
        Some("BadListing")
    );

    // A root from a tree of another shape.
    let root_msg = wire::Message::Root(wire::RootMsg {
        tree: TreeId::DATA,
        depth: 4,
        count: 1,
        root: [0; 32],
        reply: true,
        sketch: false,
    });
    let n = wire::encode(&header, &root_msg, &mut buf).unwrap();
    let err = receive(&mut engine, &mut m, &mut rejects, &buf[..n]);
    assert_eq!(err, Some(format!("{:?}", SyncError::ShapeMismatch)));

    // Another cluster, an oversized datagram, a truncated one.
    let foreign = Header::new(ClusterId(*b"othr"), NodeId(2));
    let n = wire::encode(&foreign, &root_msg, &mut buf).unwrap();
    assert_eq!(
        receive(&mut engine, &mut m, &mut rejects, &buf[..n]).as_deref(),
        Some("ForeignCluster")
    );
    assert_eq!(
        receive(&mut engine, &mut m, &mut rejects, &[b't'; 1300]).as_deref(),
        Some("Oversized")
    );
    let n = wire::encode(&header, &root_msg, &mut buf).unwrap();
    assert_eq!(
        receive(&mut engine, &mut m, &mut rejects, &buf[..n - 5]).as_deref(),
        Some("Malformed")
    );
    assert_eq!(
        receive(&mut engine, &mut m, &mut rejects, &buf[..5]).as_deref(),
        Some("Truncated")
    );

    assert_eq!(
        rejects,
        Rejects {
            foreign_cluster: 1,
            oversized: 1,
            malformed: 1,
            truncated: 1,
            ..Rejects::default()
        }
    );
    assert_eq!(engine.stats().refused, 3);
    assert_eq!(m.root(), root);
    assert!(engine.is_idle(), "a refused message queued work");
}
