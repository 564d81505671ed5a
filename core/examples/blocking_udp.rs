//! Driving a node with nothing but a blocking `std::net::UdpSocket` and a loop: no async runtime.
//! The same few lines work under smol, async-std, glommio or plain threads.
//!
//! ```sh
//! cargo run -p tidings --example blocking_udp --features alloc -- 1 127.0.0.1:7001
//! cargo run -p tidings --example blocking_udp --features alloc -- 2 127.0.0.1:7002 127.0.0.1:7001
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as Clock};
use tidings::config::Config;
use tidings::node::{AllocStorage, Node};
use tidings::{ClusterId, Instant, NodeId};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let id: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let bind: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(([127, 0, 0, 1], 7001).into());
    let seed: Option<SocketAddr> = args.next().and_then(|a| a.parse().ok());

    let socket = UdpSocket::bind(bind)?;
    let config = Config::lan(ClusterId::from_name("example"), NodeId(id));
    let start = Clock::now();
    let now = || Instant::from_millis(start.elapsed().as_millis() as u64);
    let mut node = Node::<AllocStorage>::new(config, now(), bind, b"", id).expect("valid config");
    if let Some(seed) = seed {
        node.join(seed);
    }
    node.set(now(), format!("hello-from-{id}").as_bytes(), b"hi")
        .expect("a small write");

    let (mut buf, mut out) = ([0u8; 65_536], [0u8; 1_500]);
    loop {
        // Sleep in recv until the node's next deadline; a datagram wakes us earlier.
        let wait = node.poll_timeout().map_or(Duration::from_secs(1), |t| {
            Duration::from_millis(t.as_millis().saturating_sub(now().as_millis()))
        });
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = node.handle_datagram(now(), from, &mut buf[..n]); // refusals are counted in stats()
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        node.handle_timeout(now());
        while let Some(t) = node.poll_transmit(now(), &mut out) {
            socket.send_to(&out[..t.len], t.to)?;
        }
        while let Some(event) = node.poll_event() {
            println!("{event:?}");
        }
    }
}
