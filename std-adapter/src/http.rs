//! The agent's HTTP API: JSON in and out, a Prometheus endpoint, and JSON errors with 4xx codes.
//!
//! | route | does |
//! |---|---|
//! | `GET /v1/members` | `[{"id","addr","status","generation","version"}]`, sorted by id |
//! | `GET /v1/kv` | `[{"key","value"}]`, sorted by key; `?prefix=P` keeps the keys that start with `P` |
//! | `GET /v1/kv/{key}` | `{"key","value"}`, or 404; `?raw` answers the value's exact bytes (`application/octet-stream`); `?index=N&wait=30s` blocks until the key changed after event `N` or the wait ends (at most 10 minutes, default 5) |
//! | `PUT /v1/kv/{key}` | the body is the value; durable when answered: `{"key","version"}` |
//! | `DELETE /v1/kv/{key}` | a tombstone, durable when answered, whether or not the key is held here: `{"key","version","deleted":true,"existed"}` |
//! | `GET /v1/health` | `{"status","node","generation","members_alive","health_score","recovering"}` (liveness) |
//! | `GET /v1/ready` | 200 `{"ready":true}`, or 503 `{"ready":false,"reason":"recovering"}` while the data is refilled from peers |
//! | `GET /v1/events` | Server-Sent Events: `event: member` and `event: kv` with JSON data and an `id:`; a client resumes with `Last-Event-ID`; `event: reset` when events it asked for are gone (re-read the state) |
//! | `GET /metrics` | Prometheus text format |
//!
//! Every `GET /v1/kv/...` answer has an `X-Tidings-Index` header: the id of the newest event, to pass
//! as `?index=` to wait for the next change.
//!
//! Keys may hold `/` (`/v1/kv/app/config`); other bytes outside the URL's unreserved set are
//! percent-encoded. Values are bytes. A PUT stores the body exactly; JSON answers carry `value` when the bytes are
//! UTF-8 and `value_base64` (standard alphabet, padded) when they are not, and likewise `key` or
//! `key_base64` for keys written by peers through the library; `?raw` reads the bytes themselves.
//!
//! A write that could not be made durable is answered `507` (disk full) or `500`, with
//! `{"error": "write not durable: ..."}`, and changed nothing: it is not stored, not applied, not
//! spread, and a later read does not see it.

use crate::{AgentError, Handle, Readiness};
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tidings::data::DataError;

/// An error answer: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        let status = match &e {
            AgentError::Data(DataError::KeyTooLong) => StatusCode::BAD_REQUEST,
            AgentError::Data(DataError::ValueTooLong) => StatusCode::PAYLOAD_TOO_LARGE,
            AgentError::Data(DataError::Full) => StatusCode::INSUFFICIENT_STORAGE,
            AgentError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            AgentError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

/// `{"key"|"key_base64", "value"|"value_base64"}`: text when the bytes are UTF-8, base64 otherwise,
/// so every value reads back byte for byte.
fn entry_json(key: &[u8], value: &[u8]) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    put_bytes(&mut o, "key", key);
    put_bytes(&mut o, "value", value);
    serde_json::Value::Object(o)
}

pub(crate) fn put_bytes(o: &mut serde_json::Map<String, serde_json::Value>, name: &str, b: &[u8]) {
    use base64::Engine as _;
    match std::str::from_utf8(b) {
        Ok(t) => o.insert(name.into(), t.into()),
        Err(_) => o.insert(
            format!("{name}_base64"),
            base64::engine::general_purpose::STANDARD.encode(b).into(),
        ),
    };
}

/// `GET /v1/kv?prefix=P`.
#[derive(Deserialize)]
struct ListParams {
    prefix: Option<String>,
}

/// `GET /v1/kv/{key}?raw`, `?index=N&wait=D`.
#[derive(Deserialize)]
struct ReadParams {
    raw: Option<String>,
    index: Option<u64>,
    wait: Option<String>,
}

/// The header that carries the journal's newest event id.
pub const INDEX_HEADER: &str = "x-tidings-index";

/// The longest blocking read.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// `500ms`, `30s`, `5m`, or a number of seconds.
fn parse_wait(w: &str) -> Option<Duration> {
    let w = w.trim();
    let (num, unit) = w
        .find(|c: char| !c.is_ascii_digit())
        .map_or((w, ""), |i| w.split_at(i));
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    Some(d.min(MAX_WAIT))
}

/// The API over `handle`.
pub fn router(handle: Handle) -> Router {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/kv", get(list))
        .route("/v1/kv/{*key}", get(read).put(write).delete(remove))
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
        .route("/v1/events", get(events))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here".into(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::map_response(json_errors))
        .with_state(handle)
}

/// The largest request body read: far above any value the node accepts (1 KiB by default), far
/// below what a stalled upload could pin in memory.
pub const MAX_BODY: usize = 64 << 10;

/// Error answers that the framework wrote as plain text (a body too large, a malformed path) become
/// the documented `{"error": "..."}` JSON, with the same status.
async fn json_errors(r: Response) -> Response {
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(r.status().is_client_error() || r.status().is_server_error()) || is_json {
        return r;
    }
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    ApiError(status, text).into_response()
}

async fn members(State(h): State<Handle>) -> Result<Response, ApiError> {
    Ok(Json(h.members().await?).into_response())
}

async fn list(State(h): State<Handle>, Query(p): Query<ListParams>) -> Result<Response, ApiError> {
    let prefix = p.prefix.unwrap_or_default();
    let all: Vec<serde_json::Value> = h
        .entries()
        .await?
        .into_iter()
        .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
        .map(|(k, v)| entry_json(&k, &v))
        .collect();
    Ok(Json(all).into_response())
}

async fn read(
    State(h): State<Handle>,
    Path(key): Path<String>,
    Query(p): Query<ReadParams>,
) -> Result<Response, ApiError> {
    if let Some(after) = p.index {
        let wait = match p.wait.as_deref() {
            Some(w) => parse_wait(w).ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("wait {w:?} is not a duration like 500ms, 30s or 5m"),
                )
            })?,
            None => Duration::from_secs(300),
        };
        wait_for_change(&h, key.as_bytes(), after, wait).await;
    }
    let index = h.journal().latest().to_string();
    let index = [(header::HeaderName::from_static(INDEX_HEADER), index)];
    match h.get(key.as_bytes()).await? {
        Some(v) if p.raw.is_some() => Ok((
            index,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            v,
        )
            .into_response()),
        Some(v) => Ok((index, Json(entry_json(key.as_bytes(), &v))).into_response()),
        None => Ok((
            index,
            ApiError(StatusCode::NOT_FOUND, format!("no key {key:?}")),
        )
            .into_response()),
    }
}

/// Returns once `key` changed after event `after` (or the history no longer tells), or `wait` ends.
async fn wait_for_change(h: &Handle, key: &[u8], after: u64, wait: Duration) {
    let journal = h.journal();
    let mut changes = journal.watch();
    let deadline = tokio::time::Instant::now() + wait;
    while journal.key_changed_after(key, after) == Some(false) {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// `GET /v1/events`: the journal as Server-Sent Events, from the event after `Last-Event-ID` (or
/// from now).
async fn events(
    State(h): State<Handle>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let journal = h.journal();
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| journal.latest());
    let changes = journal.watch();
    let state = (journal, changes, last, VecDeque::new());
    let stream = futures_util::stream::unfold(
        state,
        |(journal, mut changes, mut last, mut pending)| async move {
            loop {
                if let Some(ev) = pending.pop_front() {
                    return Some((Ok(ev), (journal, changes, last, pending)));
                }
                let since = journal.since(last, 256);
                if since.gap {
                    let resume = since.entries.first().map_or(journal.latest(), |e| e.id - 1);
                    pending.push_back(
                        SseEvent::default()
                            .event("reset")
                            .id(resume.to_string())
                            .data(json!({ "reason": "behind", "resume": resume }).to_string()),
                    );
                    last = resume;
                }
                for e in since.entries {
                    last = e.id;
                    pending.push_back(
                        SseEvent::default()
                            .event(e.kind)
                            .id(e.id.to_string())
                            .data(e.data.to_string()),
                    );
                }
                if pending.is_empty() && changes.changed().await.is_err() {
                    return None;
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn write(
    State(h): State<Handle>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = h.set(key.as_bytes(), &body).await?;
    Ok(Json(json!({ "key": key, "version": version_text(v) })).into_response())
}

async fn remove(State(h): State<Handle>, Path(key): Path<String>) -> Result<Response, ApiError> {
    let d = h.delete(key.as_bytes()).await?;
    Ok(Json(json!({
        "key": key,
        "version": version_text(d.version),
        "deleted": true,
        "existed": d.existed,
    }))
    .into_response())
}

pub(crate) fn version_text(v: tidings::Version) -> String {
    format!("{}.{}.{}", v.major, v.minor, v.tie)
}

async fn ready(State(h): State<Handle>) -> Result<Response, ApiError> {
    Ok(match h.ready().await? {
        Readiness::Ready => Json(json!({ "ready": true })).into_response(),
        Readiness::Recovering => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": "recovering" })),
        )
            .into_response(),
    })
}

async fn health(State(h): State<Handle>) -> Result<Response, ApiError> {
    let m = h.metrics().await?;
    Ok(Json(json!({
        "status": "ok",
        "node": m.node,
        "generation": m.generation,
        "members_alive": m.members_alive,
        "health_score": m.health_score,
        "recovering": m.recovering,
    }))
    .into_response())
}

async fn metrics(State(h): State<Handle>) -> Result<Response, ApiError> {
    let m = h.metrics().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.prometheus(),
    )
        .into_response())
}

/// Serves the API on `addr` until the task is dropped.
pub async fn serve(addr: std::net::SocketAddr, handle: Handle) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "HTTP API listening");
    axum::serve(listener, router(handle)).await
}
