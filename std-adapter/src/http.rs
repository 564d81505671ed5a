//! The agent's HTTP API: JSON in and out, a Prometheus endpoint, and JSON errors with 4xx codes.
//!
//! | route | does |
//! |---|---|
//! | `GET /v1/members` | `[{"id","addr","status","generation","version"}]`, sorted by id |
//! | `GET /v1/kv` | `[{"key","value"}]`, sorted by key |
//! | `GET /v1/kv/{key}` | `{"key","value"}`, or 404 |
//! | `PUT /v1/kv/{key}` | the body is the value; durable when answered: `{"key","version"}` |
//! | `DELETE /v1/kv/{key}` | a tombstone, durable when answered, whether or not the key is held here: `{"key","version","deleted":true,"existed"}` |
//! | `GET /v1/health` | `{"status","node","generation","members_alive","health_score","recovering"}` (liveness) |
//! | `GET /v1/ready` | 200 `{"ready":true}`, or 503 `{"ready":false,"reason":"recovering"}` while the data is refilled from peers |
//! | `GET /metrics` | Prometheus text format |
//!
//! Keys and values travel as UTF-8 text (bytes that are not UTF-8 are shown with replacement
//! characters).
//!
//! A write that could not be made durable is answered `507` (disk full) or `500`, with
//! `{"error": "write not durable: ..."}`, and changed nothing: it is not stored, not applied, not
//! spread, and a later read does not see it.

use crate::{AgentError, Handle, Readiness};
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
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

#[derive(Serialize)]
struct KeyValue {
    key: String,
    value: String,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The API over `handle`.
pub fn router(handle: Handle) -> Router {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/kv", get(list))
        .route("/v1/kv/{key}", get(read).put(write).delete(remove))
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
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

async fn list(State(h): State<Handle>) -> Result<Response, ApiError> {
    let all: Vec<KeyValue> = h
        .entries()
        .await?
        .into_iter()
        .map(|(k, v)| KeyValue {
            key: text(&k),
            value: text(&v),
        })
        .collect();
    Ok(Json(all).into_response())
}

async fn read(State(h): State<Handle>, Path(key): Path<String>) -> Result<Response, ApiError> {
    match h.get(key.as_bytes()).await? {
        Some(v) => Ok(Json(KeyValue {
            key,
            value: text(&v),
        })
        .into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no key {key:?}"))),
    }
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

fn version_text(v: tidings::Version) -> String {
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
