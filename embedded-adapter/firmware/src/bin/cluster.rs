//! Three tidings nodes on one Cortex-M4, each on its own embassy-net stack, the stacks joined by the
//! channel driver through a small IP hub. Exits 0 through semihosting once the three agree on
//! membership and on two keys written on different nodes; 1 on failure or after a minute.
#![no_std]
#![no_main]

use core::sync::atomic::AtomicBool;
use cortex_m_semihosting::hprintln;
use embassy_executor::{Executor, Spawner};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_driver_channel as ch;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use static_cell::StaticCell;
use tidings::config::{Config, SwimConfig};
use tidings::node::HeaplessStorage;
use tidings::tree::tree_size;
use tidings::{ClusterId, NodeId};
use tidings_embassy::{Handle, McuNode, McuRunner, Runner, Shared};
use tidings_firmware::{exit, start_clock};

const MTU: usize = 1500;
const N: usize = 3;
type Storage = HeaplessStorage<8, 8, { tree_size(1) }, 16, 32, 128, { tree_size(1) }>;
type M = CriticalSectionRawMutex;
/// The node the size report measures: MCU capacities.
type NodeRunner = McuRunner<'static, Storage, M, 32, 128, 8>;
type NodeHandle = Handle<'static, M, 32, 128, 8>;

static SHARED: [Shared<M, 32, 128, 8>; N] = [const { Shared::new() }; N];
static CHANNELS: [StaticCell<ch::State<MTU, 4, 4>>; N] = [const { StaticCell::new() }; N];
static RESOURCES: [StaticCell<StackResources<2>>; N] = [const { StaticCell::new() }; N];
static BUFFERS: [StaticCell<Buffers>; N] = [const { StaticCell::new() }; N];
static RUNNERS: [StaticCell<NodeRunner>; N] = [const { StaticCell::new() }; N];
static STOPPED: [AtomicBool; N] = [const { AtomicBool::new(false) }; N];

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
async fn node(runner: &'static mut NodeRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn hub(ends: [ch::Runner<'static, MTU>; N]) -> ! {
    tidings_embassy::hub::run(ends, &STOPPED).await
}

fn addr(i: usize) -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, i as u8 + 1)
}

#[embassy_executor::task]
async fn script(h: [NodeHandle; N]) {
    let ok = tidings_embassy::hub::exercise(&h, &STOPPED, |(what, ms)| match ms {
        Some(ms) => hprintln!("ok: {} ({} ms)", what, ms),
        None => hprintln!("FAILED: {}", what),
    })
    .await;
    if ok {
        hprintln!("three nodes agreed on membership and keys, and detected a stopped node");
    }
    exit(if ok { 0 } else { 1 });
}

fn start(spawner: Spawner) {
    let mut ends: heapless::Vec<ch::Runner<'static, MTU>, N> = heapless::Vec::new();
    let mut handles: heapless::Vec<NodeHandle, N> = heapless::Vec::new();
    for i in 0..N {
        let (end, device) = ch::new(
            CHANNELS[i].init(ch::State::new()),
            ch::driver::HardwareAddress::Ip,
        );
        let _ = ends.push(end);
        let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(addr(i), 24),
            gateway: None,
            dns_servers: Default::default(),
        });
        let (stack, runner) = embassy_net::new(
            device,
            config,
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
        let mut c = Config::mcu(ClusterId::from_name("qemu"), NodeId(i as u64 + 1));
        c.swim = SwimConfig::local();
        let me = core::net::SocketAddr::from((addr(i), 7946));
        let mut n =
            McuNode::<Storage>::new(c, tidings_embassy::now(), me, b"", i as u64 + 1).unwrap();
        if i > 0 {
            n.join(core::net::SocketAddr::from((addr(0), 7946)));
        }
        let runner = RUNNERS[i].init(Runner::new(n, socket, 7946, &SHARED[i]).unwrap());
        spawner.spawn(node(runner).unwrap());
        let _ = handles.push(Handle::new(&SHARED[i]));
    }
    spawner.spawn(hub(ends.into_array().ok().unwrap()).unwrap());
    spawner.spawn(script(handles.into_array().ok().unwrap()).unwrap());
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = cortex_m::Peripherals::take().unwrap();
    start_clock(p.SYST);
    hprintln!("tidings on a Cortex-M4 (mps2-an386): starting three nodes");
    static EXECUTOR: StaticCell<Executor> = StaticCell::new();
    EXECUTOR.init(Executor::new()).run(start)
}
