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
//! | `GET /v1/health/ready` (or `/v1/ready`) | 200 `{"ready":true}`; 503 `{"ready":false,"reason":"joining"}` until an agent given seeds has joined and an anti-entropy exchange found a peer's data equal to its own, `"recovering"` while its data is refilled from peers |
//! | `GET /v1/events` | Server-Sent Events: `event: member` and `event: kv` with JSON data and an `id:`; a client resumes with `Last-Event-ID`; `event: reset` when events it asked for are gone (re-read the state) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /ui` | a live view of the cluster: members, keys, events and traffic (one page, from the binary) |
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tidings::data::DataError;
use tokio::sync::Semaphore;

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
        .route("/v1/health/ready", get(ready))
        .route("/v1/events", get(events))
        .route("/ui", get(ui))
        .route(
            "/",
            get(|| async { axum::response::Redirect::temporary("/ui") }),
        )
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

/// The live view: one page, fed by this API (members, keys, `/v1/events`, `/metrics`).
const UI: &str = include_str!("ui.html");

async fn ui() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src 'self' data:",
            ),
        ],
        UI,
    )
        .into_response()
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
        Readiness::Joining => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": "joining" })),
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
    let text = m.prometheus() + &h.http_stats().prometheus();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Limits of the HTTP server ([`serve_on`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; one more is closed as soon as it is accepted (counted in
    /// `tidings_http_connections_refused_total`).
    pub max_connections: usize,
    /// Time a client has to send a request's headers once connected: idle and stalled connections
    /// are closed after it.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of the HTTP server.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    /// Requests whose body did not arrive within `body_timeout`.
    pub body_timeouts: AtomicU64,
}

impl HttpStats {
    /// The counters in Prometheus text format.
    pub fn prometheus(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP tidings_http_connections Connections to the HTTP API open now.\n\
             # TYPE tidings_http_connections gauge\n\
             tidings_http_connections {}\n\
             # HELP tidings_http_connections_refused_total Connections closed at once: the API had its maximum open.\n\
             # TYPE tidings_http_connections_refused_total counter\n\
             tidings_http_connections_refused_total {}\n\
             # HELP tidings_http_body_timeouts_total Requests whose body did not arrive in time.\n\
             # TYPE tidings_http_body_timeouts_total counter\n\
             tidings_http_body_timeouts_total {}\n",
            get(&self.open),
            get(&self.refused),
            get(&self.body_timeouts)
        )
    }
}

/// Serves the API on `addr` with the default [`Limits`] until the task is dropped.
pub async fn serve(addr: std::net::SocketAddr, handle: Handle) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "HTTP API listening");
    serve_on(listener, handle, Limits::default()).await
}

/// Serves the API on `listener` until the task is dropped: at most `limits.max_connections` at
/// once, each closed when its client takes longer than `limits.header_timeout` to send a request's
/// headers (an idle kept-alive connection included), each request's body read within
/// `limits.body_timeout` and capped at [`MAX_BODY`]. Event streams and blocking reads are long on
/// purpose and are not cut. Failing accepts (out of file descriptors) are retried after a pause.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    handle: Handle,
    limits: Limits,
) -> std::io::Result<()> {
    let stats = handle.http_stats();
    let app = router(handle).layer(middleware::from_fn_with_state(
        (limits.body_timeout, stats.clone()),
        body_deadline,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let stats = stats.clone();
        stats.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut conn = hyper::server::conn::http1::Builder::new();
            conn.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = conn.serve_connection(io, service).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

/// Reads the request's body within the deadline (and at most [`MAX_BODY`] bytes), so a stalled
/// upload holds its connection no longer than that: `408` JSON when it does not arrive in time.
async fn body_deadline(
    State((limit, stats)): State<(Duration, Arc<HttpStats>)>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Ok(Err(_)) => ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY} bytes"),
        )
        .into_response(),
        Err(_) => {
            stats.body_timeouts.fetch_add(1, Ordering::Relaxed);
            ApiError(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {limit:?}"),
            )
            .into_response()
        }
    }
}
