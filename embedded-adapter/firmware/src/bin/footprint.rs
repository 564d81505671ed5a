//! The core alone, for its footprint: one node (32 members, 64 keys) with postcard and sha2, and no
//! network stack. Everything a node does is reachable from here, fed from opaque inputs so nothing is
//! optimised away; under QEMU it runs once and exits 0.
#![no_std]
#![no_main]

use core::hint::black_box;
use cortex_m_semihosting::hprintln;
use static_cell::StaticCell;
use tidings::config::Config;
use tidings::node::{HeaplessStorage, Node};
use tidings::tree::tree_size;
use tidings::{ClusterId, Instant, NodeId};
use tidings_firmware::exit;

/// 32 members with 8-byte metadata; 64 keys of up to 16 bytes with 16-byte values (sensor readings).
type Storage = HeaplessStorage<32, 8, { tree_size(1) }, 64, 16, 16, { tree_size(1) }>;
/// Capacities for a small cluster: 4 exchanges at once, queues of 8, 32 rumors, 8 suspicions.
type McuNode = Node<Storage, 4, 8, 32, 8>;

static NODE: StaticCell<McuNode> = StaticCell::new();

#[cortex_m_rt::entry]
fn main() -> ! {
    #[allow(unused_mut)]
    let mut config = Config::mcu(ClusterId::from_name("size"), NodeId(1));
    // With encryption, the ring is one the optimiser cannot see through: both paths are linked.
    #[cfg(feature = "encrypt")]
    {
        let ring = tidings::auth::Keyring::new(black_box([7; 32])).with_encryption();
        config.auth = black_box(Some(ring));
    }
    let me = core::net::SocketAddr::from(([10, 0, 0, 1], 7946));
    let Ok(node) = McuNode::new(black_box(config), Instant::ZERO, me, b"", 1) else {
        exit(1)
    };
    let node = NODE.init(node);
    let peer = core::net::SocketAddr::from(([10, 0, 0, 2], 7946));
    node.join(black_box(peer));
    let mut out = [0u8; 512];
    let mut t = 0u64;
    for round in 0..black_box(50u32) {
        t += 100;
        let now = Instant::from_millis(t);
        node.handle_timeout(now);
        if round % 7 == 0 {
            let _ = node.set(now, black_box(b"sensor"), black_box(&[round as u8; 8]));
        }
        while let Some(tx) = node.poll_transmit(now, &mut out) {
            // Whatever went out comes back as if from the peer: every decoder path is linked.
            let echo = black_box(&out[..tx.len]);
            let _ = node.handle_datagram(now, peer, &mut echo.to_vec_free());
        }
        while node.poll_event().is_some() {}
    }
    let _ = node.delete(Instant::from_millis(t), b"sensor");
    // No formatting here: core::fmt is not part of the footprint.
    let ok = node.stats().datagrams_out > 0 && !node.members().is_empty();
    hprintln!("footprint firmware ran");
    exit(if ok { 0 } else { 1 })
}

/// A copy without a heap: datagrams here are at most 512 bytes.
trait CopyFree {
    fn to_vec_free(&self) -> heapless::Vec<u8, 512>;
}

impl CopyFree for [u8] {
    fn to_vec_free(&self) -> heapless::Vec<u8, 512> {
        heapless::Vec::from_slice(self).unwrap_or_default()
    }
}
