//! Clients: PUTs and DELETEs against every agent, each recorded with when it started, when it was
//! answered, and how.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What an operation was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Put { value: String },
    Delete,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 200: acknowledged.
    Ok,
    /// Certainly not applied: the connection was refused, or the agent answered with an error.
    Failed(String),
    /// Sent, but no answer: it may or may not have taken effect.
    Unknown(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub key: String,
    pub kind: Kind,
    pub agent: usize,
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
}

/// One HTTP/1.1 request on a fresh connection; `Err(true)` if the request may have been received.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), (bool, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| (false, format!("connect: {e}")))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| (true, format!("send: {e}")))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .map_err(|e| (true, format!("receive: {e}")))?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| (true, format!("no status line: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|p| p.1.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Runs `kind` on `key` against agent `agent` at `addr`, and records it.
pub fn run(agent: usize, addr: SocketAddr, key: &str, kind: Kind) -> Op {
    let start = Instant::now();
    let (method, body) = match &kind {
        Kind::Put { value } => ("PUT", value.as_str()),
        Kind::Delete => ("DELETE", ""),
    };
    let outcome = match request(addr, method, &format!("/v1/kv/{key}"), body) {
        Ok((200, _)) => Outcome::Ok,
        // The agent answered: the write was refused and changed nothing.
        Ok((code, body)) => Outcome::Failed(format!("{code} {body}")),
        Err((false, e)) => Outcome::Failed(e),
        Err((true, e)) => Outcome::Unknown(e),
    };
    Op {
        key: key.to_string(),
        kind,
        agent,
        start,
        end: Instant::now(),
        outcome,
    }
}

/// Every live key and value an agent holds, or `None` if it does not answer.
pub fn list(addr: SocketAddr) -> Option<Vec<(String, String)>> {
    let (code, body) = request(addr, "GET", "/v1/kv", "").ok()?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v.as_array()?
        .iter()
        .map(|e| {
            Some((
                e["key"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// A small seeded generator (xorshift64*): the run's choices follow its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
