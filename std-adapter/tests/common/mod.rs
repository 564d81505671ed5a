//! Helpers shared by the agent tests: agents on loopback, waiting for a condition, raw HTTP.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tidings::config::Config;
use tidings::{ClusterId, NodeId};
use tidings_tokio::{Agent, AgentConfig, Handle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `local` preset keeps failure detection to seconds; the protocol is the same.
pub fn config(id: u64, seed: Option<SocketAddr>, dir: Option<&Path>) -> AgentConfig {
    let node = Config::local(ClusterId::from_name("agents-test"), NodeId(id));
    let mut c = AgentConfig::new(node, "127.0.0.1:0".parse().unwrap());
    c.seeds.extend(seed);
    c.data_dir = dir.map(Path::to_path_buf);
    c
}

pub async fn cluster(n: u64, root: Option<&Path>) -> Vec<Agent> {
    let dir = |i: u64| root.map(|r| r.join(format!("n{i}")));
    let first = Agent::start(config(1, None, dir(1).as_deref()))
        .await
        .unwrap();
    let seed = first.local_addr();
    let mut all = vec![first];
    for i in 2..=n {
        all.push(
            Agent::start(config(i, Some(seed), dir(i).as_deref()))
                .await
                .unwrap(),
        );
    }
    all
}

pub async fn eventually(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within {limit:?}");
}

pub async fn status(h: &Handle, id: u64) -> Option<(&'static str, u32)> {
    h.members()
        .await
        .ok()?
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| (m.status, m.generation))
}

pub async fn all_alive(handles: &[Handle], n: usize) -> bool {
    for h in handles {
        let m = h.members().await.unwrap_or_default();
        if m.iter().filter(|m| m.status == "alive").count() != n {
            return false;
        }
    }
    true
}

pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (code, _, body) = http_bytes(addr, method, path, body.as_bytes()).await;
    (code, String::from_utf8(body).unwrap())
}

/// One request with a body of any bytes: the status, the headers (as text) and the body's bytes.
#[allow(dead_code)]
pub async fn http_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let code = std::str::from_utf8(&out[9..12]).unwrap().parse().unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let headers = String::from_utf8_lossy(&out[..split]).into_owned();
    let body = out.get(split + 4..).unwrap_or_default().to_vec();
    (code, headers, body)
}

/// `tidings ARGS --http 127.0.0.1:API`, with `stdin` as its input.
pub fn cli(api: u16, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .args(["--http", &format!("127.0.0.1:{api}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn members(api: u16) -> Vec<serde_json::Value> {
    let out = cli(api, &["members", "--json"], b"");
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// A child process, killed when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A UDP port free on loopback now.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A TCP port free on loopback now.
pub fn tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}
