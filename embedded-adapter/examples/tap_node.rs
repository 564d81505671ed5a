//! A tidings node on embassy-net over a Linux TAP device: the embedded stack talking to real Linux
//! UDP. `scripts/tap-interop.sh` runs it in a network namespace beside a `tidings agent`.
//!
//! Usage: `tap_node TAP OWN_IP SEED_ADDR NODE_ID [lan|mcu]` (for example
//! `tap0 10.88.0.2 10.88.0.1:7946 2`). With `lan` (the default) the node runs the agent's lan limits
//! at server capacities; with `mcu` it runs `Config::mcu` at microcontroller capacities (`McuRunner`),
//! as a board does, for an agent started with `--preset mcu`. Writes `from-embassy`, then waits until
//! it sees the seed alive and holds `from-agent`; exits 0, or 1 after 30 s.

use embassy_executor::{Executor, Spawner};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::{Duration, Instant, Timer};
use static_cell::StaticCell;
use std::net::SocketAddr;
use tidings::config::{Config, SwimConfig};
use tidings::members::Status;
use tidings::node::{HeaplessStorage, Node};
use tidings::tree::tree_size;
use tidings::{ClusterId, NodeId};
use tidings_embassy::{Handle, McuRunner, Runner, Shared};

/// The trees of the lan preset (depth 2), which the agent uses: depths must match cluster-wide.
type Storage = HeaplessStorage<8, 64, { tree_size(2) }, 16, 64, 128, { tree_size(2) }>;
/// The trees of the mcu preset (depth 1); `Config::mcu` keeps keys to 32 bytes and metadata to 32.
type McuStorage = HeaplessStorage<8, 64, { tree_size(1) }, 16, 64, 128, { tree_size(1) }>;
type M = CriticalSectionRawMutex;
type TapRunner = Runner<'static, Storage, M, 64, 128, 8>;
type McuTapRunner = McuRunner<'static, McuStorage, M, 64, 128, 8>;

static SHARED: Shared<M, 64, 128, 8> = Shared::new();

/// Receive metadata and bytes, send metadata and bytes.
type SocketBuffers = (
    [PacketMetadata; 8],
    [u8; 8192],
    [PacketMetadata; 8],
    [u8; 8192],
);

#[embassy_executor::task]
async fn net(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn node(runner: &'static mut TapRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn mcu_node(runner: &'static mut McuTapRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn script(seed_id: u64) {
    let h = Handle::new(&SHARED);
    if h.set(b"from-embassy", b"hello from embassy").await.is_err() {
        println!("the write was refused");
        std::process::exit(1);
    }
    let start = Instant::now();
    loop {
        let members = h.members().await.unwrap_or_default();
        let seed_alive = members
            .iter()
            .any(|m| m.id == NodeId(seed_id) && m.status == Status::Alive);
        let got = h.get(b"from-agent").await.ok().flatten();
        if seed_alive && got.is_some() {
            println!(
                "embassy node: sees node {seed_id} alive and holds from-agent = {:?} after {} ms",
                core::str::from_utf8(&got.unwrap_or_default()).unwrap_or("?"),
                start.elapsed().as_millis()
            );
            std::process::exit(0);
        }
        if start.elapsed() > Duration::from_secs(30) {
            println!("embassy node: not converged after 30 s (members: {members:?})");
            std::process::exit(1);
        }
        Timer::after_millis(100).await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (tap, ip, seed, id, mcu) = match args.as_slice() {
        [tap, ip, seed, id] => (tap, ip, seed, id, false),
        [tap, ip, seed, id, mode] if mode == "lan" || mode == "mcu" => {
            (tap, ip, seed, id, mode == "mcu")
        }
        _ => {
            eprintln!("usage: tap_node TAP OWN_IP SEED_ADDR NODE_ID [lan|mcu]");
            std::process::exit(2);
        }
    };
    let ip: Ipv4Address = ip.parse().expect("an IPv4 address");
    let seed: SocketAddr = seed.parse().expect("a socket address");
    let id: u64 = id.parse().expect("a node id");
    let device = TunTapDevice::new(tap).unwrap_or_else(|e| {
        eprintln!("cannot open {tap}: {e}");
        std::process::exit(2)
    });
    static EXECUTOR: StaticCell<Executor> = StaticCell::new();
    EXECUTOR.init(Executor::new()).run(move |spawner: Spawner| {
        let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(ip, 24),
            gateway: None,
            dns_servers: Default::default(),
        });
        static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
        let (stack, runner) =
            embassy_net::new(device, config, RESOURCES.init(StackResources::new()), id);
        spawner.spawn(net(runner).unwrap());
        static BUFS: StaticCell<SocketBuffers> = StaticCell::new();
        let (rm, rb, tm, tb) = BUFS.init((
            [PacketMetadata::EMPTY; 8],
            [0; 8192],
            [PacketMetadata::EMPTY; 8],
            [0; 8192],
        ));
        let socket = UdpSocket::new(stack, rm, rb, tm, tb);
        let me = SocketAddr::from((ip, seed.port()));
        let cluster = ClusterId::from_name("tidings");
        if mcu {
            // A board's settings, unchanged: 512-byte datagrams, depth-1 trees, mcu timing.
            let c = Config::mcu(cluster, NodeId(id));
            let mut n = tidings_embassy::McuNode::<McuStorage>::new(
                c,
                tidings_embassy::now(),
                me,
                b"embassy",
                id,
            )
            .expect("valid config");
            n.join(seed);
            static RUNNER: StaticCell<McuTapRunner> = StaticCell::new();
            let runner = Runner::new(n, socket, seed.port(), &SHARED).expect("port free");
            spawner.spawn(mcu_node(RUNNER.init(runner)).unwrap());
            spawner.spawn(script(1).unwrap());
            return;
        }
        // The agent's lan limits (1,200-byte datagrams), at the pace of local().
        let mut c = Config::lan(cluster, NodeId(id));
        c.swim = SwimConfig::local();
        c.data.max_key_len = 64;
        c.data.max_value_len = 128;
        c.members.max_meta_len = 64;
        let mut n = Node::<Storage>::new(c, tidings_embassy::now(), me, b"embassy", id)
            .expect("valid config");
        n.join(seed);
        static RUNNER: StaticCell<TapRunner> = StaticCell::new();
        let runner = RUNNER.init(Runner::new(n, socket, seed.port(), &SHARED).expect("port free"));
        spawner.spawn(node(runner).unwrap());
        let seed_id = 1;
        spawner.spawn(script(seed_id).unwrap());
    });
}
