//! A tidings node on an ESP32-C3 over Wi-Fi (station mode), with an address from DHCP. It joins the
//! nodes listed in `SEEDS`, writes its uptime under its own key every ten seconds, and prints every
//! membership and data event over the USB serial console. The network's name and password come from
//! `SSID` and `PASSWORD` in the environment at build time.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::Timer;
use esp_backtrace as _;
use esp_hal::rng::Rng;
use esp_hal::timer::timg::TimerGroup;
use esp_println::println;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, Interface, WifiController,
};
use static_cell::StaticCell;
use tidings::config::Config;
use tidings::node::HeaplessStorage;
use tidings::tree::tree_size;
use tidings::{ClusterId, NodeId};
use tidings_embassy::{Handle, McuNode, McuRunner, Runner, Shared};

esp_bootloader_esp_idf::esp_app_desc!();

/// The Wi-Fi network: `SSID=... PASSWORD=... cargo run --release`.
const SSID: &str = match option_env!("SSID") {
    Some(s) => s,
    None => "tidings",
};
const PASSWORD: &str = match option_env!("PASSWORD") {
    Some(s) => s,
    None => "",
};
/// Other nodes to join through (a tidings agent, or another board). Edit for your network.
const SEEDS: &[([u8; 4], u16)] = &[([192, 168, 1, 10], 7946)];
/// The cluster's name: the same on every node.
const CLUSTER: &str = "tidings";
const PORT: u16 = 7946;

/// 16 members, 32 keys: the trees of the mcu preset (depth 1).
type Storage = HeaplessStorage<16, 32, { tree_size(1) }, 32, 32, 128, { tree_size(1) }>;
type M = CriticalSectionRawMutex;
/// `Config::mcu` at MCU capacities.
type BoardRunner = McuRunner<'static, Storage, M, 32, 128, 16>;

static SHARED: Shared<M, 32, 128, 16> = Shared::new();

/// Receive metadata and bytes, send metadata and bytes.
type SocketBuffers = (
    [PacketMetadata; 8],
    [u8; 4096],
    [PacketMetadata; 8],
    [u8; 4096],
);

#[embassy_executor::task]
async fn net(mut runner: embassy_net::Runner<'static, Interface>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn node(runner: &'static mut BoardRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn wifi(mut controller: WifiController<'static>) {
    loop {
        match controller.connect_async().await {
            Ok(_) => {
                println!("wifi: connected to {}", SSID);
                let _ = controller.wait_for_disconnect_async().await;
                println!("wifi: disconnected");
            }
            Err(e) => println!("wifi: cannot connect: {:?}", e),
        }
        Timer::after_secs(5).await;
    }
}

#[embassy_executor::task]
async fn events() {
    let h = Handle::new(&SHARED);
    loop {
        println!("{:?}", h.event().await);
    }
}

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    let p = esp_hal::init(esp_hal::Config::default());
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_rtos::start(TimerGroup::new(p.TIMG0).timer0, p.FROM_CPU_INTR0);

    let Ok(mut controller) = WifiController::new(p.WIFI, Default::default()) else {
        halt("the Wi-Fi driver did not start").await
    };
    let (Ok(ssid), Ok(password)) = (SSID.try_into(), PASSWORD.try_into()) else {
        halt("SSID or PASSWORD too long").await
    };
    let station = StationConfig::default()
        .with_ssid(ssid)
        .with_authentication(AuthenticationMethodConfig::Wpa2Personal(password));
    if controller
        .set_config(&WifiConfig::Station(station))
        .is_err()
    {
        halt("the Wi-Fi settings were refused").await
    }

    // The hardware generator seeds the node: its id, its random choices, its nonces.
    let rng = Rng::new();
    let id = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        Interface::station(),
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        id,
    );
    spawner.spawn(net(runner).unwrap());
    spawner.spawn(wifi(controller).unwrap());
    println!("waiting for DHCP");
    stack.wait_config_up().await;
    let Some(v4) = stack.config_v4() else {
        halt("no IPv4 address").await
    };
    let ip = v4.address.address();
    println!("address {}", ip);

    static BUFS: StaticCell<SocketBuffers> = StaticCell::new();
    let (rm, rb, tm, tb) = BUFS.init((
        [PacketMetadata::EMPTY; 8],
        [0; 4096],
        [PacketMetadata::EMPTY; 8],
        [0; 4096],
    ));
    let socket = UdpSocket::new(stack, rm, rb, tm, tb);
    let me = core::net::SocketAddr::from((ip, PORT));
    let Ok(mut n) = McuNode::<Storage>::new(
        Config::mcu(ClusterId::from_name(CLUSTER), NodeId(id)),
        tidings_embassy::now(),
        me,
        b"esp32c3",
        id,
    ) else {
        halt("invalid node settings").await
    };
    for &(ip, port) in SEEDS {
        n.join(core::net::SocketAddr::from((ip, port)));
    }
    static RUNNER: StaticCell<BoardRunner> = StaticCell::new();
    let Ok(runner) = Runner::new(n, socket, PORT, &SHARED) else {
        halt("the node's port is taken").await
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
            println!("write refused: {:?}", e);
        }
        let members = h.members().await.map(|m| m.len()).unwrap_or(0);
        println!("{} members known", members);
        Timer::after_secs(10).await;
    }
}

/// Says why the node cannot run, and waits for a reset.
async fn halt(why: &str) -> ! {
    println!("stopped: {}", why);
    loop {
        Timer::after_secs(3600).await;
    }
}
