//! The agent's HTTP API under abuse, as a process: 200 uploads that stall mid-body and 1,100
//! connections that never send a byte, against an agent started with a soft limit of 1,024 open
//! files. It keeps answering other clients, stays small, and closes the stalled and idle
//! connections after its timeouts.

mod common;

use common::{free_port, tcp_port, Proc};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The agent's resident memory, from /proc.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn get(api: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", api)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn stalled_uploads_and_idle_connections_neither_starve_others_nor_grow_the_agent() {
    // This test holds 1,300 sockets itself.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if nofile.maximum.is_some_and(|m| m < 4096) {
        eprintln!("SKIPPED limits test: the hard open-file limit is below 4,096");
        return;
    }
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: nofile.maximum,
            maximum: nofile.maximum,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (gossip, api) = (free_port(), tcp_port());
    let agent = format!(
        "ulimit -Sn 1024 && exec {} agent --preset local --name limits --bind 127.0.0.1:{gossip} \
         --http 127.0.0.1:{api} --data-dir {}",
        env!("CARGO_BIN_EXE_tidings"),
        dir.path().display()
    );
    let agent = Proc(
        Command::new("sh")
            .args(["-c", &agent])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    let until = Instant::now() + Duration::from_secs(20);
    while get(api, "/v1/health").is_none() {
        assert!(Instant::now() < until, "the agent never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = rss_mb(pid);

    let mut held = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(("127.0.0.1", api)).unwrap();
        write!(
            s,
            "PUT /v1/kv/stall{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\n\r\nonly a start"
        )
        .unwrap();
        held.push(s);
    }
    for _ in 0..1100 {
        held.push(TcpStream::connect(("127.0.0.1", api)).unwrap());
    }
    // Others are answered meanwhile, at once.
    let started = Instant::now();
    let answer = get(api, "/v1/health").expect("an answer while 1,300 connections are held");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let during = rss_mb(pid);
    assert!(
        during < 64.0,
        "{during:.1} MB with 1,300 connections held (was {before:.1})"
    );

    // The stalled uploads get a JSON 408 after the body timeout; idle connections are closed.
    std::thread::sleep(Duration::from_secs(11));
    let mut stalled = held.swap_remove(0);
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut out = String::new();
    let _ = stalled.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("\"error\""), "{out}");
    let metrics = get(api, "/metrics").unwrap();
    let timeouts = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tidings_http_body_timeouts_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(timeouts, Some(200), "{metrics}");
    let open = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tidings_http_connections "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap();
    assert!(
        open < 50,
        "{open} connections still open after the timeouts"
    );
    eprintln!(
        "agent RSS: {before:.1} MB idle, {during:.1} MB with 200 stalled uploads and 1,100 idle \
         connections"
    );
}
