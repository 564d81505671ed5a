//! `tidings members`, `tidings kv ...` and `tidings watch`: a client of an agent's HTTP API.
//!
//! Every command prints what it got on stdout and returns 0, or prints `error: ...` on stderr and
//! returns 1 (the agent's own error message when it answered one).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// The agent's HTTP API at one address.
pub struct Client {
    addr: SocketAddr,
}

/// Why a command failed.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing answered at the address.
    Connect(SocketAddr, std::io::Error),
    /// The connection broke, or the answer was not HTTP.
    Http(String),
    /// The agent answered with an error.
    Api(u16, String),
    /// Reading the value from stdin failed.
    Stdin(std::io::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(addr, e) => write!(
                f,
                "cannot reach an agent's HTTP API at {addr}: {e} (is `tidings agent` running? \
                 --http sets the address)"
            ),
            ClientError::Http(e) => write!(f, "HTTP: {e}"),
            ClientError::Api(code, msg) => write!(f, "{msg} (HTTP {code})"),
            ClientError::Stdin(e) => write!(f, "cannot read the value from stdin: {e}"),
        }
    }
}

fn http_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Http(e.to_string())
}

/// A key as a path segment: every byte but the unreserved ones and `/` percent-encoded.
fn key_path(key: &str) -> String {
    let mut out = String::from("/v1/kv/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query value, percent-encoded.
fn query_value(v: &str) -> String {
    key_path(v)
        .trim_start_matches("/v1/kv/")
        .replace('/', "%2F")
}

impl Client {
    /// A client of the agent whose API listens at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Client { addr }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        last_event: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| ClientError::Connect(self.addr, e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_error)?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string());
        if let Some(id) = last_event {
            req = req.header("last-event-id", id);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(http_error)?;
        sender.send_request(req).await.map_err(http_error)
    }

    /// One request; the body of a 2xx answer, or the agent's error.
    async fn call(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Bytes, ClientError> {
        let r = self.send(method, path, body, None).await?;
        let status = r.status();
        let body = r
            .into_body()
            .collect()
            .await
            .map_err(http_error)?
            .to_bytes();
        if status.is_success() {
            return Ok(body);
        }
        let msg = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
        Err(ClientError::Api(status.as_u16(), msg))
    }

    async fn json(&self, path: &str) -> Result<Value, ClientError> {
        let body = self.call(Method::GET, path, Vec::new()).await?;
        serde_json::from_slice(&body).map_err(http_error)
    }
}

/// `tidings members`: a table, or the JSON with `--json`; `--status` keeps one status.
pub async fn members(c: &Client, status: Option<&str>, json: bool) -> Result<(), ClientError> {
    let all = c.json("/v1/members").await?;
    let rows: Vec<&Value> = all
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| status.is_none_or(|s| m["status"] == s))
                .collect()
        })
        .unwrap_or_default();
    if json {
        println!("{}", Value::Array(rows.into_iter().cloned().collect()));
        return Ok(());
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|m| {
            [
                text(&m["name"]),
                text(&m["id"]),
                text(&m["addr"]),
                text(&m["status"]),
                text(&m["generation"]),
            ]
        })
        .collect();
    let head = ["NAME", "ID", "ADDRESS", "STATUS", "GENERATION"].map(String::from);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            std::iter::once(&head)
                .chain(&table)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&head).chain(&table) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

/// `tidings kv get KEY`: the value's exact bytes on stdout (and a newline on a terminal).
pub async fn get(c: &Client, key: &str) -> Result<(), ClientError> {
    let body = c
        .call(Method::GET, &format!("{}?raw", key_path(key)), Vec::new())
        .await?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&body);
    if std::io::stdout().is_terminal() {
        let _ = out.write_all(b"\n");
    }
    Ok(())
}

/// `tidings kv put KEY VALUE` (`-`: the value is stdin, byte for byte).
pub async fn put(c: &Client, key: &str, value: &str) -> Result<(), ClientError> {
    let bytes = if value == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(ClientError::Stdin)?;
        b
    } else {
        value.as_bytes().to_vec()
    };
    let body = c.call(Method::PUT, &key_path(key), bytes).await?;
    let v: Value = serde_json::from_slice(&body).map_err(http_error)?;
    println!(
        "{key}: written, version {}",
        v["version"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// `tidings kv delete KEY`.
pub async fn delete(c: &Client, key: &str) -> Result<(), ClientError> {
    let body = c.call(Method::DELETE, &key_path(key), Vec::new()).await?;
    let v: Value = serde_json::from_slice(&body).map_err(http_error)?;
    let was = if v["existed"] == true {
        "deleted"
    } else {
        "deleted (it was not set here)"
    };
    println!(
        "{key}: {was}, version {}",
        v["version"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Text for a key or value field of the API's JSON: the text, or `base64:...` for bytes that are
/// not UTF-8.
fn field(o: &Value, name: &str) -> String {
    match (&o[name], &o[format!("{name}_base64")]) {
        (Value::String(s), _) => s.clone(),
        (_, Value::String(b)) => format!("base64:{b}"),
        _ => String::new(),
    }
}

/// `tidings kv list [--prefix P]`: `KEY=VALUE` lines, or the JSON.
pub async fn list(c: &Client, prefix: Option<&str>, json: bool) -> Result<(), ClientError> {
    let path = match prefix {
        Some(p) => format!("/v1/kv?prefix={}", query_value(p)),
        None => "/v1/kv".into(),
    };
    let all = c.json(&path).await?;
    if json {
        println!("{all}");
        return Ok(());
    }
    for e in all.as_array().into_iter().flatten() {
        println!("{}={}", field(e, "key"), field(e, "value"));
    }
    Ok(())
}

/// One event of the stream, as it is printed.
fn describe(kind: &str, data: &Value) -> String {
    match kind {
        "member" => {
            let who = data["name"].as_str().map_or_else(
                || data["id"].to_string(),
                |n| format!("{n} ({})", data["id"]),
            );
            format!(
                "member {who} {} at {}",
                data["event"].as_str().unwrap_or("?"),
                data["addr"].as_str().unwrap_or("?")
            )
        }
        "kv" if data["deleted"] == true => format!(
            "kv {} deleted ({}, version {})",
            field(data, "key"),
            data["origin"].as_str().unwrap_or("?"),
            data["version"].as_str().unwrap_or("?")
        ),
        "kv" => format!(
            "kv {} = {} ({}, version {})",
            field(data, "key"),
            field(data, "value"),
            data["origin"].as_str().unwrap_or("?"),
            data["version"].as_str().unwrap_or("?")
        ),
        "reset" => "reset: events were missed; re-read the state".into(),
        other => format!("{other} {data}"),
    }
}

/// `tidings watch`: prints every event as it comes, one per line (`--json`: `{"event","id","data"}`).
/// When the connection breaks it reconnects, resuming after the last event printed.
pub async fn watch(c: &Client, json: bool) -> Result<(), ClientError> {
    let mut last: Option<String> = None;
    let mut connected_once = false;
    loop {
        let r = match c
            .send(Method::GET, "/v1/events", Vec::new(), last.as_deref())
            .await
        {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                return Err(ClientError::Api(
                    r.status().as_u16(),
                    "no event stream".into(),
                ))
            }
            Err(e) if !connected_once => return Err(e),
            Err(e) => {
                eprintln!("{e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if connected_once {
            eprintln!("reconnected");
        }
        connected_once = true;
        let mut body = r.into_body();
        let mut buf = String::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            buf.push_str(&String::from_utf8_lossy(data));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if let Some(id) = print_event(&block, json) {
                    last = Some(id);
                }
            }
        }
        eprintln!("the event stream ended; reconnecting");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints one Server-Sent Event block; returns its id.
fn print_event(block: &str, json: bool) -> Option<String> {
    let (mut kind, mut id, mut data) = ("message", None, String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim();
        } else if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    if data.is_empty() {
        return id;
    }
    let value: Value = serde_json::from_str(&data).unwrap_or(Value::String(data));
    if json {
        println!(
            "{}",
            serde_json::json!({ "event": kind, "id": id, "data": value })
        );
    } else {
        println!("{}", describe(kind, &value));
    }
    let _ = std::io::stdout().flush();
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_but_slashes_stay() {
        assert_eq!(key_path("app/a b?#"), "/v1/kv/app/a%20b%3F%23");
        assert_eq!(query_value("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn events_print_as_lines() {
        let d = serde_json::json!({"key": "k", "value": "v", "origin": "peer", "version": "1.2.3"});
        assert_eq!(describe("kv", &d), "kv k = v (peer, version 1.2.3)");
        let m = serde_json::json!({"event": "failed", "id": 3, "addr": "127.0.0.1:7003"});
        assert_eq!(describe("member", &m), "member 3 failed at 127.0.0.1:7003");
        let b = serde_json::json!({"key_base64": "/w==", "deleted": true, "origin": "local", "version": "1.0.0"});
        assert_eq!(
            describe("kv", &b),
            "kv base64:/w== deleted (local, version 1.0.0)"
        );
        assert_eq!(
            print_event("id: 7\nevent: kv\ndata: {\"key\":\"k\"}\n\n", true),
            Some("7".into())
        );
    }
}
