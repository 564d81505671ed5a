//! Datagrams per second: one agent on loopback against the same work through the core alone,
//! measured side by side in one run and reported as a ratio.
//!
//! The work is a stream of pings from a known member, each answered with an ack: the commonest
//! datagram a node handles. The core alone is also measured with a signing and an encrypting
//! keyring (each ping opened, each ack sealed). `cargo bench -p tidings-tokio --bench throughput`

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tidings::auth::Keyring;
use tidings::config::Config;
use tidings::members::{Status, WireMember};
use tidings::node::{AllocStorage, Node, Rumor};
use tidings::wire::{self, Encoder, Header, Kind, Nonce, Probe};
use tidings::{ClusterId, NodeId};
use tidings_tokio::{Agent, AgentConfig};

const CLUSTER: &str = "bench";

fn config() -> Config {
    Config::lan(ClusterId::from_name(CLUSTER), NodeId(1))
}

/// Seals the datagram of `len` bytes in `buf` as member 2 would under `ring`, the `n`th it sends.
fn sealed(ring: Option<&Keyring>, mut buf: Vec<u8>, len: usize, n: u64) -> Vec<u8> {
    let nonce = Nonce {
        generation: 0,
        counter: n,
    };
    let len = wire::seal(ring, nonce, &mut buf, len).unwrap();
    buf.truncate(len);
    buf
}

/// A gossip datagram introducing member 2 at `addr`, and pings from it to node 1, sealed under `ring`.
fn workload(addr: SocketAddr, pings: u32, ring: Option<&Keyring>) -> (Vec<u8>, Vec<Vec<u8>>) {
    let header = Header::new(ClusterId::from_name(CLUSTER), NodeId(2));
    let mut buf = vec![0u8; 1200];
    let mut e = Encoder::new(&mut buf[..1100], &header, Kind::Gossip).unwrap();
    e.push(&Rumor::Member(WireMember {
        id: NodeId(2),
        addr,
        generation: 0,
        version: 0,
        status: Status::Alive,
        meta: b"",
        age_ms: 0,
    }));
    let len = e.finish();
    let intro = sealed(ring, buf, len, u64::from(pings));
    let pings = (0..pings)
        .map(|seq| {
            let mut buf = vec![0u8; 128];
            let mut e = Encoder::new(&mut buf[..64], &header, Kind::Ping).unwrap();
            e.push(&Probe {
                seq,
                target: NodeId(1),
            });
            let len = e.finish();
            sealed(ring, buf, len, u64::from(seq))
        })
        .collect();
    (intro, pings)
}

fn core_rate(secs: f64, ring: Option<Keyring>) -> f64 {
    let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (intro, pings) = workload(from, 10_000, ring.as_ref());
    let start = Instant::now();
    let now = || tidings::Instant::from_millis(start.elapsed().as_millis() as u64);
    let config = Config {
        auth: ring,
        ..config()
    };
    let mut node =
        Node::<AllocStorage>::new(config, now(), "127.0.0.1:8".parse().unwrap(), b"", 1).unwrap();
    // Each datagram is copied in first, as a driver receives it: an encrypted one is opened where
    // it lies.
    let mut rx = [0u8; 1500];
    let mut handle = |node: &mut Node<AllocStorage>, t, d: &[u8]| {
        rx[..d.len()].copy_from_slice(d);
        node.handle_datagram(t, from, &mut rx[..d.len()]).unwrap();
    };
    handle(&mut node, now(), &intro);
    let mut out = [0u8; 1500];
    let mut handled = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for p in &pings {
            let t = now();
            handle(&mut node, t, p);
            while node.poll_transmit(t, &mut out).is_some() {}
            while node.poll_event().is_some() {}
        }
        node.handle_timeout(now());
        handled += pings.len() as u64;
    }
    handled as f64 / start.elapsed().as_secs_f64()
}

async fn agent_rate(secs: f64) -> f64 {
    let agent = Agent::start(AgentConfig::new(config(), "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let target = agent.local_addr();
    let h = agent.handle();
    let socket = std::sync::Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let (intro, pings) = workload(socket.local_addr().unwrap(), 10_000, None);
    socket.send_to(&intro, target).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Acks come back to the sender; drain them so its buffer never stalls the kernel.
    let rx = socket.clone();
    let drain = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let _ = rx.recv_from(&mut buf).await;
        }
    });
    let before = h.metrics().await.unwrap().node_stats.datagrams_in;
    let start = Instant::now();
    'send: loop {
        for chunk in pings.chunks(64) {
            for p in chunk {
                socket.send_to(p, target).await.unwrap();
            }
            // Let the agent's task run between bursts (datagrams beyond its socket buffer are lost,
            // and only those it handled count).
            tokio::task::yield_now().await;
            if start.elapsed().as_secs_f64() >= secs {
                break 'send;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let handled = h.metrics().await.unwrap().node_stats.datagrams_in - before;
    let rate = handled as f64 / start.elapsed().as_secs_f64();
    drain.abort();
    h.shutdown().await;
    rate
}

fn main() {
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let core = core_rate(secs, None);
    let ring = Keyring::new([7; 32]);
    let signed = core_rate(secs, Some(ring));
    let encrypted = core_rate(secs, Some(ring.with_encryption()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let agent = rt.block_on(agent_rate(secs));
    println!(
        "{{\"core_datagrams_per_sec\":{core:.0},\"agent_datagrams_per_sec\":{agent:.0},\"agent_to_core_ratio\":{:.3},\
         \"core_signed_datagrams_per_sec\":{signed:.0},\"core_encrypted_datagrams_per_sec\":{encrypted:.0},\
         \"encrypted_to_signed_ratio\":{:.3}}}",
        agent / core,
        encrypted / signed
    );
}
