//! An IPv4 hub for tests and emulated firmware: it joins several `embassy-net` stacks built on
//! `embassy-net-driver-channel` devices, as a switch would, so they can talk inside one program.
//!
//! Host `i` of the hub owns address `10.0.0.(i + 1)`; a packet goes to the host its destination
//! address names. A host flagged in `stopped` neither sends nor receives: to the others it has
//! failed.

use core::sync::atomic::{AtomicBool, Ordering};
use embassy_futures::select::select_array;
use embassy_net_driver_channel as ch;

/// Carries packets between `ends` forever.
pub async fn run<const MTU: usize, const N: usize>(
    ends: [ch::Runner<'_, MTU>; N],
    stopped: &[AtomicBool; N],
) -> ! {
    let mut ports = ends.map(ch::Runner::split);
    for (state, _, _) in ports.iter() {
        state.set_link_state(ch::driver::LinkState::Up);
    }
    let mut packet = [0u8; MTU];
    loop {
        let (len, from) = {
            let sending = ports.each_mut().map(|(_, _, tx)| tx.tx_buf());
            let (buf, from) = select_array(sending).await;
            let len = buf.len().min(MTU);
            packet[..len].copy_from_slice(&buf[..len]);
            (len, from)
        };
        ports[from].2.tx_done();
        // IPv4, destination 10.0.0.x: the last byte of the header's destination picks the host.
        if len < 20 || packet[0] >> 4 != 4 {
            continue;
        }
        let to = usize::from(packet[19]).wrapping_sub(1);
        let cut = |i: usize| stopped.get(i).is_none_or(|s| s.load(Ordering::Relaxed));
        if to >= N || cut(from) || cut(to) {
            continue;
        }
        let rx = &mut ports[to].1;
        if let Some(buf) = rx.try_rx_buf() {
            let n = len.min(buf.len());
            buf[..n].copy_from_slice(&packet[..n]);
            rx.rx_done(n);
        }
    }
}
