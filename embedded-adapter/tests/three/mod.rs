//! Three embassy-net stacks in one process, joined by `embassy-net-driver-channel` through a small
//! IP hub, each running a tidings node under a shared key: they join, agree on membership, replicate
//! keys, and notice a node that stopped. Over IPv4 (`host.rs`) or IPv6 (`host_ipv6.rs`); every
//! datagram signed, or with the `encrypt` feature encrypted (`cargo test -p tidings-embassy
//! --features encrypt --test host`).

use core::net::IpAddr;
use embassy_executor::{Executor, Spawner};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_driver_channel as ch;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use static_cell::StaticCell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use tidings::config::{Config, SwimConfig};
use tidings::node::{HeaplessStorage, Node};
use tidings::tree::tree_size;
use tidings::{ClusterId, NodeId};
use tidings_embassy::{Handle, Runner, Shared};

const MTU: usize = 1500;
const N: usize = 3;
type Storage = HeaplessStorage<8, 8, { tree_size(1) }, 16, 32, 128, { tree_size(1) }>;
type M = CriticalSectionRawMutex;
type NodeRunner = Runner<'static, Storage, M, 32, 128, 8>;
type NodeHandle = Handle<'static, M, 32, 128, 8>;

static SHARED: [Shared<M, 32, 128, 8>; N] = [const { Shared::new() }; N];
static CHANNELS: [StaticCell<ch::State<MTU, 4, 4>>; N] = [const { StaticCell::new() }; N];
static RESOURCES: [StaticCell<StackResources<2>>; N] = [const { StaticCell::new() }; N];
static BUFFERS: [StaticCell<Buffers>; N] = [const { StaticCell::new() }; N];
static STOPPED: [AtomicBool; N] = [const { AtomicBool::new(false) }; N];
/// 0 running, 1 passed, 2 failed.
static OUTCOME: AtomicU8 = AtomicU8::new(0);

struct Buffers {
    rx_meta: [PacketMetadata; 8],
    rx: [u8; 4096],
    tx_meta: [PacketMetadata; 8],
    tx: [u8; 4096],
}

#[embassy_executor::task(pool_size = 3)]
async fn net(mut runner: embassy_net::Runner<'static, ch::Device<'static, MTU>>) -> ! {
    runner.run().await
}

#[embassy_executor::task(pool_size = 3)]
async fn node(mut runner: NodeRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn hub(ends: [ch::Runner<'static, MTU>; N]) -> ! {
    tidings_embassy::hub::run(ends, &STOPPED).await
}

/// Whether the stacks speak IPv6 (set once, before the executor starts).
static V6: AtomicBool = AtomicBool::new(false);

/// Host `i`'s address: 10.0.0.(i + 1), or fd00::(i + 1) over IPv6.
fn addr(i: usize) -> IpAddr {
    if V6.load(Ordering::SeqCst) {
        IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, i as u16 + 1])
    } else {
        IpAddr::from(Ipv4Address::new(10, 0, 0, i as u8 + 1))
    }
}

fn net_config(i: usize) -> embassy_net::Config {
    match addr(i) {
        IpAddr::V4(a) => embassy_net::Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(a, 24),
            gateway: None,
            dns_servers: Default::default(),
        }),
        #[cfg(feature = "ipv6")]
        IpAddr::V6(a) => embassy_net::Config::ipv6_static(embassy_net::StaticConfigV6 {
            address: embassy_net::Ipv6Cidr::new(a, 64),
            gateway: None,
            dns_servers: Default::default(),
        }),
        #[cfg(not(feature = "ipv6"))]
        IpAddr::V6(_) => unreachable!("IPv6 needs the ipv6 feature"),
    }
}

#[embassy_executor::task]
async fn script(handles: [NodeHandle; N]) {
    let ok = tidings_embassy::hub::exercise(&handles, &STOPPED, |(what, ms)| match ms {
        Some(ms) => println!("ok: {what} ({ms} ms)"),
        None => println!("FAILED: {what}"),
    })
    .await;
    OUTCOME.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
}

fn start(spawner: Spawner) {
    let mut ends = Vec::new();
    let mut handles = Vec::new();
    for i in 0..N {
        let (end, device) = ch::new(
            CHANNELS[i].init(ch::State::new()),
            ch::driver::HardwareAddress::Ip,
        );
        ends.push(end);
        let (stack, runner) = embassy_net::new(
            device,
            net_config(i),
            RESOURCES[i].init(StackResources::new()),
            i as u64 + 1,
        );
        spawner.spawn(net(runner).unwrap());
        let b = BUFFERS[i].init(Buffers {
            rx_meta: [PacketMetadata::EMPTY; 8],
            rx: [0; 4096],
            tx_meta: [PacketMetadata::EMPTY; 8],
            tx: [0; 4096],
        });
        let socket = UdpSocket::new(stack, &mut b.rx_meta, &mut b.rx, &mut b.tx_meta, &mut b.tx);
        let mut c = Config::mcu(ClusterId::from_name("embassy"), NodeId(i as u64 + 1));
        // The protocol of the mcu preset at the pace of local(), so the test takes seconds; every
        // datagram authenticated, as a deployment should run; with the `encrypt` feature, encrypted.
        c.swim = SwimConfig::local();
        let ring = tidings::auth::Keyring::new([0x5a; 32]);
        #[cfg(feature = "encrypt")]
        let ring = ring.with_encryption();
        c.auth = Some(ring);
        let me = core::net::SocketAddr::from((addr(i), 7946));
        let mut n = Node::<Storage>::new(c, tidings_embassy::now(), me, b"", i as u64 + 1).unwrap();
        if i > 0 {
            n.join(core::net::SocketAddr::from((addr(0), 7946)));
        }
        let runner = Runner::new(n, socket, 7946, &SHARED[i]).unwrap();
        spawner.spawn(node(runner).unwrap());
        handles.push(Handle::new(&SHARED[i]));
    }
    let ends: [_; N] = ends.try_into().ok().unwrap();
    spawner.spawn(hub(ends).unwrap());
    spawner.spawn(script(handles.try_into().ok().unwrap()).unwrap());
}

/// Runs the three nodes over IPv6 when `v6`, else IPv4, and asserts the script passed.
pub fn run(v6: bool) {
    V6.store(v6, Ordering::SeqCst);
    static EXECUTOR: StaticCell<Executor> = StaticCell::new();
    let executor = EXECUTOR.init(Executor::new());
    executor.run_until(start, || OUTCOME.load(Ordering::SeqCst) != 0);
    assert_eq!(
        OUTCOME.load(Ordering::SeqCst),
        1,
        "see the FAILED line above"
    );
}
