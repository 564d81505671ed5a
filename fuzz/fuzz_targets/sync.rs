//! Two arbitrary replicas, reconciled through a lossy link whose losses the fuzzer controls, end with
//! equal roots and equal maps, and no datagram exceeds the maximum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::data::{AllocData, DataConfig};
use tidings::sync::SyncConfig;
use tidings::wire::TreeId;
use tidings::{DigestKey, Duration, Instant, NodeId};
use tidings_sim::pair::{self, Link, Peer};
use tidings_sim::reconcile::same_records;
use tidings_sim::rng::Rng;

fuzz_target!(|bytes: &[u8]| {
    let [depth, loss, small, s0, s1, rest @ ..] = bytes else {
        return;
    };
    let dk = DigestKey::from_cluster(pair::CLUSTER);
    let config = DataConfig {
        max_value_len: 255,
        ..DataConfig::default()
    };
    let mk = |id| AllocData::with_depth(config, NodeId(id), 0, dk, depth % 4, 4096).unwrap();
    let (mut a, mut b) = (mk(1), mk(2));
    let now = Instant::from_millis(1);
    // Each 3-byte chunk is one operation: side and kind, key, value length.
    for op in rest.chunks_exact(3) {
        let side = if op[0] & 1 == 0 { &mut a } else { &mut b };
        let key = [b'k', op[1] % 64];
        if op[0] & 2 == 0 {
            side.set(now, &key, &vec![op[0]; usize::from(op[2])])
                .unwrap();
        } else {
            side.delete(now, &key).unwrap();
        }
    }
    let max = if small % 2 == 0 { 512 } else { 1200 };
    let sync = SyncConfig {
        max_datagram: max,
        ..SyncConfig::default()
    };
    let (mut pa, mut pb) = (Peer::new(1, a, sync), Peer::new(2, b, sync));
    let link = Link {
        jitter: Duration::from_millis(u64::from(*s1 % 8)),
        duplicate: f64::from(*s0 % 10) / 100.0,
        latency: Duration::from_millis(2),
        loss: f64::from(loss % 40) / 100.0,
        max_datagram: max,
    };
    let mut rng = Rng::new(u64::from(*s0) << 8 | u64::from(*s1));
    let (t, _) = pair::reconcile(&mut pa, &mut pb, TreeId::DATA, link, &mut rng, 500, now);
    assert_eq!(pa.replica.root(), pb.replica.root(), "{t:?}");
    assert!(same_records(&pa.replica, &pb.replica));
    assert!(t.max_datagram <= max - tidings::wire::TAG_RESERVE);
    assert_eq!(t.rejected, 0);
});
