//! A tidings node on an STM32 Nucleo-F429ZI, over the board's Ethernet port (RMII, LAN8742A PHY),
//! with an address from DHCP. It joins the nodes listed in `SEEDS`, writes its uptime under its own
//! key every ten seconds, and logs every membership and data event over defmt/RTT.
#![no_std]
#![no_main]

use defmt::{info, warn};
use embassy_executor::Spawner;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::StackResources;
use embassy_stm32::eth::{Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::peripherals::{ETH, ETH_SMA};
use embassy_stm32::time::Hertz;
use embassy_stm32::{bind_interrupts, eth, Config as ChipConfig};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::Timer;
use static_cell::StaticCell;
use tidings::config::Config;
use tidings::node::HeaplessStorage;
use tidings::tree::tree_size;
use tidings::{ClusterId, NodeId};
use tidings_embassy::{Handle, McuNode, McuRunner, Runner, Shared};
use {defmt_rtt as _, panic_probe as _};

/// Other nodes to join through (a tidings agent, or another board). Edit for your network.
const SEEDS: &[([u8; 4], u16)] = &[([192, 168, 1, 10], 7946)];
/// The cluster's name: the same on every node.
const CLUSTER: &str = "tidings";
const PORT: u16 = 7946;

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;
/// 16 members, 32 keys: the trees of the mcu preset (depth 1).
type Storage = HeaplessStorage<16, 32, { tree_size(1) }, 32, 32, 128, { tree_size(1) }>;
type M = CriticalSectionRawMutex;
/// `Config::mcu` at MCU capacities.
type BoardRunner = McuRunner<'static, Storage, M, 32, 128, 16>;

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
});

static SHARED: Shared<M, 32, 128, 16> = Shared::new();

/// Receive metadata and bytes, send metadata and bytes.
type SocketBuffers = (
    [PacketMetadata; 8],
    [u8; 4096],
    [PacketMetadata; 8],
    [u8; 4096],
);

#[embassy_executor::task]
async fn net(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn node(runner: &'static mut BoardRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn events() {
    let h = Handle::new(&SHARED);
    loop {
        info!("{}", h.event().await);
    }
}

/// A 64-bit id from the chip's unique id (FNV-1a).
fn chip_id() -> u64 {
    embassy_stm32::uid::uid()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        })
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let mut chip = ChipConfig::default();
    {
        use embassy_stm32::rcc::*;
        // The ST-LINK's 8 MHz clock in, 168 MHz out (Ethernet needs at least 25 MHz on AHB).
        chip.rcc.hse = Some(Hse {
            freq: Hertz(8_000_000),
            mode: HseMode::Bypass,
        });
        chip.rcc.pll_src = PllSource::HSE;
        chip.rcc.pll = Some(Pll {
            prediv: PllPreDiv::DIV4,
            mul: PllMul::MUL168,
            divp: Some(PllPDiv::DIV2),
            divq: Some(PllQDiv::DIV7),
            divr: None,
        });
        chip.rcc.sys = Sysclk::PLL1_P;
        chip.rcc.ahb_pre = AHBPrescaler::DIV1;
        chip.rcc.apb1_pre = APBPrescaler::DIV4;
        chip.rcc.apb2_pre = APBPrescaler::DIV2;
    }
    let p = embassy_stm32::init(chip);
    let id = chip_id();
    let mac = [
        0x02,
        0x00,
        (id >> 24) as u8,
        (id >> 16) as u8,
        (id >> 8) as u8,
        id as u8,
    ];
    static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
    let device = Ethernet::new(
        PACKETS.init(PacketQueue::new()),
        p.ETH,
        Irqs,
        p.PA1,
        p.PA7,
        p.PC4,
        p.PC5,
        p.PG13,
        p.PB13,
        p.PG11,
        mac,
        p.ETH_SMA,
        p.PA2,
        p.PC1,
    );
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        id,
    );
    spawner.spawn(net(runner).unwrap());
    info!("waiting for DHCP");
    stack.wait_config_up().await;
    let Some(v4) = stack.config_v4() else {
        warn!("no IPv4 address");
        return;
    };
    let ip = v4.address.address();
    info!("address {}", ip);

    static BUFS: StaticCell<SocketBuffers> = StaticCell::new();
    let (rm, rb, tm, tb) = BUFS.init((
        [PacketMetadata::EMPTY; 8],
        [0; 4096],
        [PacketMetadata::EMPTY; 8],
        [0; 4096],
    ));
    let socket = UdpSocket::new(stack, rm, rb, tm, tb);
    let me = core::net::SocketAddr::from((ip, PORT));
    let node_id = NodeId(id);
    let Ok(mut n) = McuNode::<Storage>::new(
        Config::mcu(ClusterId::from_name(CLUSTER), node_id),
        tidings_embassy::now(),
        me,
        b"nucleo-f429zi",
        id,
    ) else {
        warn!("invalid node settings");
        return;
    };
    for &(ip, port) in SEEDS {
        n.join(core::net::SocketAddr::from((ip, port)));
    }
    static RUNNER: StaticCell<BoardRunner> = StaticCell::new();
    let Ok(runner) = Runner::new(n, socket, PORT, &SHARED) else {
        warn!("port {} taken", PORT);
        return;
    };
    spawner.spawn(node(RUNNER.init(runner)).unwrap());
    spawner.spawn(events().unwrap());

    let h = Handle::new(&SHARED);
    let mut key = heapless::String::<32>::new();
    let _ = core::fmt::write(&mut key, format_args!("uptime-{:016x}", id));
    loop {
        let secs = embassy_time::Instant::now().as_secs();
        let mut value = heapless::String::<32>::new();
        let _ = core::fmt::write(&mut value, format_args!("{secs}"));
        if let Err(e) = h.set(key.as_bytes(), value.as_bytes()).await {
            warn!("write refused: {}", e);
        }
        let members = h.members().await.map(|m| m.len()).unwrap_or(0);
        info!("{} members known", members);
        Timer::after_secs(10).await;
    }
}
