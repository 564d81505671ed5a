//! One node as a user would ship it, for its size: the executor, the time driver, embassy-net with
//! one UDP socket, `McuRunner` with the node at MCU capacities under `Config::mcu`, keyed, logging
//! off. The network device is the channel driver, its far end drained by the hub (a board would
//! have its Ethernet or Wi-Fi driver there instead). Built for the size report; it runs forever.
#![no_std]
#![no_main]

use core::sync::atomic::AtomicBool;
use embassy_executor::{Executor, Spawner};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_driver_channel as ch;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use static_cell::StaticCell;
use tidings::auth::Keyring;
use tidings::config::Config;
use tidings::node::HeaplessStorage;
use tidings::tree::tree_size;
use tidings::{ClusterId, NodeId};
use tidings_embassy::{McuNode, McuRunner, Runner, Shared};
use tidings_firmware::{exit, start_clock};

/// One datagram of the `mcu` preset (512 bytes) and headers.
const MTU: usize = 576;
/// 32 members with 8-byte metadata; 64 keys of up to 16 bytes with 16-byte values: the footprint's.
type Storage = HeaplessStorage<32, 8, { tree_size(1) }, 64, 16, 16, { tree_size(1) }>;
type M = CriticalSectionRawMutex;
type NodeRunner = McuRunner<'static, Storage, M, 16, 16, 8>;

static SHARED: Shared<M, 16, 16, 8> = Shared::new();
static CHANNEL: StaticCell<ch::State<MTU, 2, 2>> = StaticCell::new();
static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
static BUFFERS: StaticCell<Buffers> = StaticCell::new();
static RUNNER: StaticCell<NodeRunner> = StaticCell::new();
static STOPPED: [AtomicBool; 1] = [const { AtomicBool::new(false) }];

struct Buffers {
    rx_meta: [PacketMetadata; 4],
    rx: [u8; 1024],
    tx_meta: [PacketMetadata; 4],
    tx: [u8; 1024],
}

#[embassy_executor::task]
async fn net(mut runner: embassy_net::Runner<'static, ch::Device<'static, MTU>>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn node(runner: &'static mut NodeRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn device(end: ch::Runner<'static, MTU>) -> ! {
    tidings_embassy::hub::run([end], &STOPPED).await
}

fn start(spawner: Spawner) {
    let (end, dev) = ch::new(
        CHANNEL.init(ch::State::new()),
        ch::driver::HardwareAddress::Ip,
    );
    let me = Ipv4Address::new(10, 0, 0, 1);
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(me, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(dev, config, RESOURCES.init(StackResources::new()), 1);
    spawner.spawn(net(runner).unwrap());
    spawner.spawn(device(end).unwrap());
    let b = BUFFERS.init(Buffers {
        rx_meta: [PacketMetadata::EMPTY; 4],
        rx: [0; 1024],
        tx_meta: [PacketMetadata::EMPTY; 4],
        tx: [0; 1024],
    });
    let socket = UdpSocket::new(stack, &mut b.rx_meta, &mut b.rx, &mut b.tx_meta, &mut b.tx);
    let mut c = Config::mcu(ClusterId::from_name("size"), NodeId(1));
    let ring = Keyring::new(core::hint::black_box([7; 32]));
    #[cfg(feature = "encrypt")]
    let ring = ring.with_encryption();
    c.auth = Some(ring);
    let addr = core::net::SocketAddr::from((me, 7946));
    let Ok(mut n) = McuNode::<Storage>::new(c, tidings_embassy::now(), addr, b"", 1) else {
        exit(1)
    };
    n.join(core::net::SocketAddr::from(([10, 0, 0, 2], 7946)));
    let Ok(r) = Runner::new(n, socket, 7946, &SHARED) else {
        exit(1)
    };
    spawner.spawn(node(RUNNER.init(r)).unwrap());
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(p) = cortex_m::Peripherals::take() else {
        exit(1)
    };
    start_clock(p.SYST);
    static EXECUTOR: StaticCell<Executor> = StaticCell::new();
    EXECUTOR.init(Executor::new()).run(start)
}
