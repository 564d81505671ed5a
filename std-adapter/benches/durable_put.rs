//! Durable PUTs per second through the agent's HTTP API on loopback: one agent with a data directory,
//! `CONNS` keep-alive connections each sending PUTs of distinct keys back to back. Every answer is
//! checked to be a 200: an acknowledged PUT is on disk.
//!
//! `cargo bench -p tidings-tokio --bench durable_put` (`BENCH_SECS`, `BENCH_CONNS`, `BENCH_VALUE`)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidings::config::Config;
use tidings::{ClusterId, NodeId};
use tidings_tokio::{Agent, AgentConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Sends PUTs on one connection until `until`; returns how many were answered 200.
async fn client(addr: SocketAddr, conn: usize, value: Arc<Vec<u8>>, until: Instant) -> u64 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut done = 0u64;
    let mut line = String::new();
    let mut body = Vec::new();
    while Instant::now() < until {
        let head = format!(
            "PUT /v1/kv/c{conn}-{done} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n",
            value.len()
        );
        w.write_all(head.as_bytes()).await.expect("write");
        w.write_all(&value).await.expect("write");
        line.clear();
        r.read_line(&mut line).await.expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "answer: {line}");
        let mut len = 0usize;
        loop {
            line.clear();
            r.read_line(&mut line).await.expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l
                .to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
            {
                len = v.parse().expect("content-length");
            }
        }
        body.resize(len, 0);
        r.read_exact(&mut body).await.expect("body");
        done += 1;
    }
    done
}

async fn run(secs: f64, conns: usize, value_len: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Config::lan(ClusterId::from_name("bench"), NodeId(1));
    let mut config = AgentConfig::new(node, "127.0.0.1:0".parse().expect("addr"));
    config.data_dir = Some(dir.path().to_path_buf());
    let agent = Agent::start(config).await.expect("agent");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = tidings_tokio::http::router(agent.handle());
    let api = tokio::spawn(async move { axum::serve(listener, router).await });
    let value = Arc::new(vec![b'v'; value_len]);
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let (value, total) = (value.clone(), total.clone());
            tokio::spawn(async move {
                let n = client(addr, c, value, until).await;
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    let rate = total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    api.abort();
    agent.handle().shutdown().await;
    rate
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let secs = env("BENCH_SECS", 5.0);
    let conns = env("BENCH_CONNS", 16usize);
    let value = env("BENCH_VALUE", 100usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rate = rt.block_on(run(secs, conns, value));
    println!(
        "{{\"connections\":{conns},\"value_bytes\":{value},\"secs\":{secs},\"durable_puts_per_sec\":{rate:.0}}}"
    );
}
