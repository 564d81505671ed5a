//! An IP hub for tests and emulated firmware: it joins several `embassy-net` stacks built on
//! `embassy-net-driver-channel` devices, as a switch would, so they can talk inside one program.
//!
//! Host `i` of the hub owns address `10.0.0.(i + 1)`, or any IPv6 address ending in `i + 1` (such as
//! `fd00::(i + 1)`); a packet goes to the host its destination address names. A host flagged in
//! `stopped` neither sends nor receives: to the others it has failed.

use crate::Handle;
use core::sync::atomic::{AtomicBool, Ordering};
use embassy_futures::select::select_array;
use embassy_net_driver_channel as ch;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{Duration, Instant, Timer};
use tidings::members::Status;
use tidings::NodeId;

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
        // The last byte of the header's destination picks the host: byte 19 of an IPv4 header,
        // byte 39 of an IPv6 one.
        let last = match packet[0] >> 4 {
            4 if len >= 20 => packet[19],
            6 if len >= 40 => packet[39],
            _ => continue,
        };
        let to = usize::from(last).wrapping_sub(1);
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

/// A step of [`exercise`]: what was awaited, and how long it took (`None`: not within its limit).
pub type Step<'s> = (&'s str, Option<u64>);

async fn within(
    what: &str,
    secs: u64,
    report: &mut impl FnMut(Step<'_>),
    mut check: impl AsyncFnMut() -> bool,
) -> bool {
    let start = Instant::now();
    loop {
        if check().await {
            report((what, Some(start.elapsed().as_millis())));
            return true;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            report((what, None));
            return false;
        }
        Timer::after_millis(50).await;
    }
}

async fn sees<M: RawMutex, const K: usize, const V: usize, const MS: usize>(
    h: &Handle<'_, M, K, V, MS>,
    id: u64,
    status: Status,
) -> bool {
    h.members()
        .await
        .is_ok_and(|m| m.iter().any(|m| m.id == NodeId(id) && m.status == status))
}

/// Puts the nodes behind a hub through their paces: node `i` must have id `i + 1`. All agree that
/// all are alive; a key written on the first and one on the last reach every node; the last is
/// stopped and every other node declares it dead. Each step is reported; false at the first that
/// fails.
pub async fn exercise<
    M: RawMutex,
    const K: usize,
    const V: usize,
    const MS: usize,
    const N: usize,
>(
    h: &[Handle<'_, M, K, V, MS>; N],
    stopped: &[AtomicBool; N],
    mut report: impl FnMut(Step<'_>),
) -> bool {
    let (Some(first), Some(last)) = (h.first(), h.last()) else {
        return true;
    };
    let all_alive = async || {
        for x in h {
            for id in 1..=N as u64 {
                if !sees(x, id, Status::Alive).await {
                    return false;
                }
            }
        }
        true
    };
    if !within("all nodes agree, all alive", 30, &mut report, all_alive).await {
        return false;
    }
    if first.set(b"led", b"on").await.is_err() || last.set(b"temp", b"21.5").await.is_err() {
        report(("writes accepted", None));
        return false;
    }
    let replicated = async || {
        for x in h {
            let led = x.get(b"led").await.ok().flatten();
            let temp = x.get(b"temp").await.ok().flatten();
            if led.as_deref() != Some(&b"on"[..]) || temp.as_deref() != Some(&b"21.5"[..]) {
                return false;
            }
        }
        true
    };
    if !within("both keys on every node", 15, &mut report, replicated).await {
        return false;
    }
    if let Some(s) = stopped.last() {
        s.store(true, Ordering::Relaxed);
    }
    let dead = async || {
        for x in h.iter().take(N.saturating_sub(1)) {
            if !sees(x, N as u64, Status::Dead).await {
                return false;
            }
        }
        true
    };
    within(
        "the stopped node declared dead by the others",
        30,
        &mut report,
        dead,
    )
    .await
}
