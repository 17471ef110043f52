//! The HTTP side: listeners, the shared state, routing, authentication, Qdrant's reply envelopes
//! and the service routes (`/`, `/healthz`, `/livez`, `/readyz`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use url::Url;

use super::cluster::cluster_routes;
use super::collections::{FakeCollection, collection_routes};
use super::faults::{Fault, FaultKind, RecordedRequest, record};
use super::options::ClusterState;
use super::points::point_routes;
use super::recovery::FakeRecovery;
use super::snapshot_file::{FakeSnapshot, SnapshotDir};
use super::snapshots::snapshot_routes;
use super::{MISSING_KEY_MESSAGE, READ_ONLY_DENIED_MESSAGE, WRONG_KEY_MESSAGE};

/// Path suffixes of the POST routes the read-only key may call (reads such as
/// `/points/search` and `/points/scroll`): of those, the fake implements `/points/count`,
/// `/points/scroll`, `/points/query` and `/points` (retrieve by id).
const READ_ONLY_POST_SUFFIXES: &[&str] = &[
    "/points/count",
    "/points/scroll",
    "/points/query",
    "/points",
];

/// Paths Qdrant serves without a key (its auth whitelist).
const UNAUTHENTICATED_PATHS: &[&str] = &["/", "/healthz", "/readyz", "/livez"];

/// One listener of the fake: the shared state and the peer it answers as.
pub(super) struct Listener {
    pub(super) shared: Arc<Shared>,
    /// 0 for the main listener.
    pub(super) id: usize,
    /// `None`: [`ClusterState::peer_id`] (or the standalone peer).
    pub(super) peer: Option<u64>,
}

/// Who answers a request, put into request extensions by `gate`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Answering {
    pub(super) listener: usize,
    pub(super) peer: u64,
}

/// Binds `127.0.0.1:0` and serves `listener` on it.
pub(super) async fn serve(listener: Arc<Listener>) -> std::io::Result<(Url, JoinHandle<()>)> {
    let tcp = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr: SocketAddr = tcp.local_addr()?;
    let url = Url::parse(&format!("http://{addr}/"))
        .map_err(|e| std::io::Error::other(format!("bad listener address {addr}: {e}")))?;
    let app = router(listener);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(tcp, app).await {
            tracing::error!(error = %e, "fake Qdrant server stopped");
        }
    });
    Ok((url, server))
}

/// State shared between the handle and the server.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
}

impl Shared {
    /// Locks the state; a panic in another test thread does not poison the fake.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the fake Qdrant knows. Never held across an `.await`.
pub(super) struct State {
    pub(super) api_key: Option<String>,
    pub(super) read_only_api_key: Option<String>,
    pub(super) cluster: Option<ClusterState>,
    /// The peer id the fake answers as outside cluster mode (a standalone Qdrant has one
    /// too): the last cluster state's, else 1.
    pub(super) standalone_peer_id: u64,
    /// Whether transfers finish before `POST /collections/{c}/cluster` answers.
    pub(super) transfers_complete_instantly: bool,
    pub(super) ready: bool,
    /// What `GET /` reports.
    pub(super) version: String,
    /// Whether the version is 1.19 or later ([`is_1_19_or_later`]): it takes `memory` and
    /// `payload` placements and serves `/quotas`.
    pub(super) since_1_19: bool,
    /// Qdrant 1.19's cluster-wide quota config (`PUT /quotas`); `None` until first set.
    pub(super) quotas: Option<Value>,
    pub(super) requests: Vec<RecordedRequest>,
    pub(super) faults: Vec<Fault>,
    /// Collections by name.
    pub(super) collections: BTreeMap<String, FakeCollection>,
    /// Alias name → collection name.
    pub(super) aliases: BTreeMap<String, String>,
    /// The highest listener id handed out.
    pub(super) next_listener: usize,
    /// Each peer's snapshot directories: (peer, collection directory, shard) → name → file.
    pub(super) snapshots: BTreeMap<SnapshotDir, BTreeMap<String, FakeSnapshot>>,
    /// Padding bytes of new snapshots.
    pub(super) snapshot_padding: u64,
    /// `service.enable_snapshot_url_recovery`.
    pub(super) snapshot_url_recovery: bool,
    /// (listener, bytes): the next download from that listener breaks after so many bytes.
    pub(super) download_faults: Vec<(usize, u64)>,
    /// Successful recoveries, in order.
    pub(super) recoveries: Vec<FakeRecovery>,
    /// Uploads received without a file name so far (to name them).
    pub(super) uploads: u64,
    /// Cluster metadata (`/cluster/metadata/keys`): key → JSON value; a `null` value is never
    /// stored (writing `null` removes the key, as in Qdrant).
    pub(super) cluster_metadata: BTreeMap<String, Value>,
}

/// What the request's key allows, put into request extensions by `gate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Read and write (no key configured, the read-write key, or a whitelisted path).
    Full,
    /// The read-only key.
    ReadOnly,
}

fn router(listener: Arc<Listener>) -> Router {
    let shared = listener.shared.clone();
    Router::new()
        .merge(service_routes())
        .merge(cluster_routes())
        .merge(collection_routes())
        .merge(snapshot_routes())
        .merge(point_routes())
        .route_layer(middleware::from_fn(read_only_gate))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(listener, gate))
        .with_state(shared)
}

fn service_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/quotas", get(get_quotas).put(put_quotas))
}

/// The quota config Qdrant 1.19 reports before any `PUT /quotas`: nothing enforced.
fn default_quotas() -> Value {
    json!({"enabled": false})
}

/// `GET /quotas` (Qdrant 1.19, `src/actix/api/quota_api.rs`): `{"config", "usage", "peers"?}`;
/// the usage is this fake's made-up, fixed reading. 404 before 1.19, as on 1.18.3.
async fn get_quotas(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    if !state.since_1_19 {
        return StatusCode::NOT_FOUND.into_response();
    }
    let config = state.quotas.clone().unwrap_or_else(default_quotas);
    ok(
        json!({"config": config, "usage": {"resident_memory_percent": 10, "disk_usage_percent": 20}}),
        started,
    )
}

/// `PUT /quotas?wait=..` (Qdrant 1.19): replaces the whole config (`QuotaConfig`: `enabled`,
/// `max_resident_memory_percent` and `max_disk_usage_percent` 1–100,
/// `release_margin_percent` 0–100; 422 outside), answers `true`. 404 before 1.19.
async fn put_quotas(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    let started = Instant::now();
    let mut state = shared.lock();
    if !state.since_1_19 {
        return StatusCode::NOT_FOUND.into_response();
    }
    let result = (|| -> Result<Value, Failure> {
        let config: Value = decode(&body)?;
        let mut errors = vec![];
        for (key, min) in [
            ("max_resident_memory_percent", 1),
            ("max_disk_usage_percent", 1),
            ("release_margin_percent", 0),
        ] {
            if let Some(v) = config.get(key).filter(|v| !v.is_null()) {
                let n = v.as_u64().ok_or_else(|| {
                    (
                        StatusCode::BAD_REQUEST,
                        format!("Format error in JSON body: invalid type for {key}"),
                    )
                })?;
                if n < min || n > 100 {
                    errors.push(format!(
                        "{key}: value {n} invalid, must be from {min} to 100"
                    ));
                }
            }
        }
        validated(errors)?;
        let mut stored = serde_json::Map::new();
        stored.insert(
            "enabled".into(),
            config.get("enabled").cloned().unwrap_or(Value::Bool(false)),
        );
        for key in [
            "max_resident_memory_percent",
            "max_disk_usage_percent",
            "release_margin_percent",
        ] {
            if let Some(v) = config.get(key).filter(|v| !v.is_null()) {
                stored.insert(key.into(), v.clone());
            }
        }
        Ok(Value::Object(stored))
    })();
    match result {
        Ok(config) => {
            state.quotas = Some(config);
            ok(json!(true), started)
        }
        Err(failure) => reply(Err::<Value, _>(failure), started),
    }
}

/// Records the request, authenticates it as Qdrant does, then applies injected faults.
async fn gate(
    AxumState(listener): AxumState<Arc<Listener>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let mut recorded = record(&req);
    let path = recorded.path.clone();
    let method = recorded.method.clone();
    let (decision, answering) = {
        let mut state = listener.shared.lock();
        let peer = listener.peer.unwrap_or_else(|| state.this_peer_id());
        recorded.peer_id = peer;
        let access = authenticate(&state, &path, &recorded);
        state.requests.push(recorded);
        let decision = access.map(|access| (access, state.take_fault(listener.id, &method, &path)));
        let answering = Answering {
            listener: listener.id,
            peer,
        };
        (decision, answering)
    };
    req.extensions_mut().insert(answering);
    let access = match decision {
        Err(message) => return (StatusCode::UNAUTHORIZED, Body::from(message)).into_response(),
        Ok((_, Some(FaultKind::Status(status)))) => return injected_failure(status, started),
        Ok((access, Some(FaultKind::Delay(delay)))) => {
            tokio::time::sleep(delay).await;
            access
        }
        Ok((access, Some(FaultKind::Hold(held)))) => {
            // notify_one stores a permit, so a waiter that comes later still returns.
            held.reached.notify_one();
            let _ = held.released.acquire().await;
            access
        }
        Ok((access, None)) => access,
    };
    req.extensions_mut().insert(access);
    next.run(req).await
}

/// Qdrant's key check: `api-key`, else `Authorization: Bearer`; the error is the 401 body.
fn authenticate(state: &State, path: &str, req: &RecordedRequest) -> Result<Access, &'static str> {
    let no_keys = state.api_key.is_none() && state.read_only_api_key.is_none();
    if no_keys || UNAUTHENTICATED_PATHS.contains(&path) {
        return Ok(Access::Full);
    }
    let key = req.api_key.as_deref().or_else(|| {
        req.authorization
            .as_deref()
            .and_then(|v| v.strip_prefix("Bearer "))
    });
    let Some(key) = key else {
        return Err(MISSING_KEY_MESSAGE);
    };
    if state.api_key.as_deref() == Some(key) {
        Ok(Access::Full)
    } else if state.read_only_api_key.as_deref() == Some(key) {
        Ok(Access::ReadOnly)
    } else {
        Err(WRONG_KEY_MESSAGE)
    }
}

/// Refuses writes with the read-only key on matched routes, as Qdrant's handlers do.
async fn read_only_gate(req: Request, next: Next) -> Response {
    let read_only = req.extensions().get::<Access>() == Some(&Access::ReadOnly);
    let is_read = req.method() == Method::GET
        || req.method() == Method::HEAD
        || (req.method() == Method::POST
            && READ_ONLY_POST_SUFFIXES
                .iter()
                .any(|suffix| req.uri().path().ends_with(suffix)));
    if read_only && !is_read {
        // The upload routes refuse in their first extractor (`ActixAccessManage`), whose
        // error is actix's plain-text response.
        if req.uri().path().ends_with("/snapshots/upload") {
            return text(StatusCode::FORBIDDEN, READ_ONLY_DENIED_MESSAGE);
        }
        return error(
            StatusCode::FORBIDDEN,
            READ_ONLY_DENIED_MESSAGE,
            Instant::now(),
        );
    }
    next.run(req).await
}

fn injected_failure(status: StatusCode, started: Instant) -> Response {
    let prefix = match status.as_u16() {
        401 => return (status, Body::from(WRONG_KEY_MESSAGE)).into_response(),
        400 => "Bad request: ",
        403 => "Forbidden: ",
        404 => "Not found: ",
        408 => "Timeout: ",
        409 => "Wrong input: ",
        429 => "Rate limiting exceeded: ",
        503 => "Shard temporarily unavailable: ",
        500..=599 => "Service internal error: ",
        _ => "",
    };
    error(status, &format!("{prefix}injected failure"), started)
}

/// Qdrant's success envelope: `{"result": .., "status": "ok", "time": <seconds>}`.
pub(super) fn ok(result: Value, started: Instant) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"result": result, "status": "ok", "time": started.elapsed().as_secs_f64()}),
    )
}

/// Qdrant's error envelope: `{"status": {"error": ".."}, "time": <seconds>}`.
pub(super) fn error(status: StatusCode, message: &str, started: Instant) -> Response {
    json_response(
        status,
        &json!({"status": {"error": message}, "time": started.elapsed().as_secs_f64()}),
    )
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

async fn root(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let version = shared.lock().version.clone();
    json_response(
        StatusCode::OK,
        &json!({"title": "qdrant - vector search engine", "version": version}),
    )
}

/// True from version 1.19 on (`major.minor` of `version`), the first to know `memory` and
/// `/quotas`.
pub(super) fn is_1_19_or_later(version: &str) -> bool {
    reconcile_lib::qdrant::minor_version(version).is_some_and(|v| v >= (1, 19))
}

/// What a Qdrant older than 1.19 does with a collection body that carries 1.19's fields: it
/// ignores them (serde's unknown fields). Removes every `memory` key and the `payload` storage
/// params (top level of a create, `params.payload` of an update), leaving `metadata` alone.
/// True when it removed anything.
pub(super) fn drop_1_19_fields(body: &mut Value) -> bool {
    fn walk(v: &mut Value) -> bool {
        match v {
            Value::Object(map) => {
                let mut dropped = map.remove("memory").is_some();
                for (k, child) in map.iter_mut() {
                    if k != "metadata" {
                        dropped |= walk(child);
                    }
                }
                dropped
            }
            Value::Array(items) => items.iter_mut().fold(false, |d, item| walk(item) | d),
            _ => false,
        }
    }
    let mut dropped = false;
    if let Some(map) = body.as_object_mut() {
        dropped |= map.remove("payload").is_some();
        if let Some(params) = map.get_mut("params").and_then(Value::as_object_mut) {
            dropped |= params.remove("payload").is_some();
        }
    }
    walk(body) | dropped
}

async fn healthz() -> Response {
    text(StatusCode::OK, "healthz check passed")
}

async fn readyz(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    if shared.lock().ready {
        text(StatusCode::OK, "all shards are ready")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "some shards are not ready")
    }
}

/// An error reply of a handler: status and Qdrant's message.
pub(super) type Failure = (StatusCode, String);

pub(super) fn reply(result: Result<Value, Failure>, started: Instant) -> Response {
    match result {
        Ok(value) => ok(value, started),
        Err((status, message)) => error(status, &message, started),
    }
}

/// Decodes a JSON body as Qdrant's actix extractor does: a serde failure is 400 `Format error
/// in JSON body: <serde message>`.
pub(super) fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("Format error in JSON body: {e}"),
        )
    })
}

/// 422 `Validation error in JSON body: [path: message; ...]` when `errors` is not empty.
pub(super) fn validated(mut errors: Vec<String>) -> Result<(), Failure> {
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort();
    Err((
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("Validation error in JSON body: [{}]", errors.join("; ")),
    ))
}
