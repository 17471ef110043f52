//! An in-process fake Qdrant REST server for tests and benchmarks.
//!
//! [`FakeQdrant::start`] serves HTTP on `127.0.0.1:<free port>` (axum) and implements only what
//! the operator calls, with the wire shapes and status codes of Qdrant 1.18 (read from its
//! sources: `src/actix/auth.rs`, `src/common/auth/mod.rs`, `src/actix/helpers.rs`,
//! `src/actix/api/service_api.rs`, `lib/storage/src/types.rs`):
//!
//! | endpoint        | reply                                                                  |
//! |-----------------|------------------------------------------------------------------------|
//! | `GET /`         | `{"title": "qdrant - vector search engine", "version": "1.18.3"}`      |
//! | `GET /healthz`  | 200 text `healthz check passed`                                        |
//! | `GET /livez`    | 200 text `healthz check passed`                                        |
//! | `GET /readyz`   | 200 text `all shards are ready` / 503 `some shards are not ready`      |
//! | `GET /cluster`  | `{"result": {"status": "enabled", "peer_id", "peers", "raft_info", ...}, "status": "ok", "time"}` or `{"result": {"status": "disabled"}, ...}` |
//! | anything else   | 404, empty body (actix's default)                                      |
//!
//! Authentication, when a key is set: the key is read from the `api-key` header, else from
//! `Authorization: Bearer <key>`; none → 401 text `Must provide an API key or an Authorization
//! bearer token`; unknown → 401 text `Invalid API key or JWT`; the read-only key on a write →
//! 403 JSON `Forbidden: Global manage access is required`. `/`, `/healthz`, `/readyz`,
//! `/livez` need no key. Errors from handlers use Qdrant's envelope
//! `{"status": {"error": "<message>"}, "time": <seconds>}`.
//!
//! Extending it (collections, shards, snapshots, transfers): add fields to the private `State`,
//! a `*_routes()` function returning a `Router<Arc<Shared>>`, merge it in `router()`, and
//! answer with `ok()` / `error()` so the envelope stays right. Routes usable with the read-only
//! key other than GETs (search, scroll, ...) go into `READ_ONLY_POST_SUFFIXES`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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

use crate::qdrant::RaftRole;

/// The Qdrant version the fake reports on `GET /`.
pub const FAKE_QDRANT_VERSION: &str = "1.18.3";

/// Qdrant's 401 body when no key is sent.
pub const MISSING_KEY_MESSAGE: &str = "Must provide an API key or an Authorization bearer token";
/// Qdrant's 401 body when the key matches neither configured key.
pub const WRONG_KEY_MESSAGE: &str = "Invalid API key or JWT";
/// Qdrant's 403 error message when the read-only key is used for a write.
pub const READ_ONLY_DENIED_MESSAGE: &str = "Forbidden: Global manage access is required";

/// Path suffixes of the POST routes the read-only key may call (reads such as
/// `/points/search` and `/points/scroll`); none is implemented yet.
const READ_ONLY_POST_SUFFIXES: &[&str] = &[];

/// Paths Qdrant serves without a key (its auth whitelist).
const UNAUTHENTICATED_PATHS: &[&str] = &["/", "/healthz", "/readyz", "/livez"];

/// How a [`FakeQdrant`] starts.
#[derive(Clone, Debug)]
pub struct FakeQdrantOptions {
    /// `service.api_key`: when set, every non-health request needs it (or the read-only key).
    pub api_key: Option<String>,
    /// `service.read_only_api_key`: allows GETs only.
    pub read_only_api_key: Option<String>,
    /// Cluster mode state; `None` answers `{"status": "disabled"}` on `GET /cluster`.
    pub cluster: Option<ClusterState>,
    /// Whether `GET /readyz` answers 200 (true) or 503 (false).
    pub ready: bool,
}

impl Default for FakeQdrantOptions {
    /// No keys, a single-node cluster ([`ClusterState::default`]), ready.
    fn default() -> Self {
        Self {
            api_key: None,
            read_only_api_key: None,
            cluster: Some(ClusterState::default()),
            ready: true,
        }
    }
}

/// What `GET /cluster` reports in cluster mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterState {
    /// The answering peer's id.
    pub peer_id: u64,
    /// Every peer: (peer id, p2p URI such as `http://qdrant-0.qdrant-headless:6335/`).
    pub peers: Vec<(u64, String)>,
    /// `raft_info.leader` (`null` when `None`).
    pub leader: Option<u64>,
    /// `raft_info.role` of the answering peer (`null` when `None`).
    pub role: Option<RaftRole>,
    /// `raft_info.term`.
    pub term: u64,
    /// `raft_info.commit`.
    pub commit: u64,
    /// `raft_info.pending_operations`.
    pub pending_operations: u64,
}

impl ClusterState {
    /// A one-peer cluster whose only peer `peer_id` at `uri` is the leader (term 1, commit 1).
    pub fn single(peer_id: u64, uri: impl Into<String>) -> Self {
        Self {
            peer_id,
            peers: vec![(peer_id, uri.into())],
            leader: Some(peer_id),
            role: Some(RaftRole::Leader),
            term: 1,
            commit: 1,
            pending_operations: 0,
        }
    }
}

impl Default for ClusterState {
    /// [`ClusterState::single`] with peer 1 at `http://qdrant-0.qdrant-headless:6335/`.
    fn default() -> Self {
        Self::single(1, "http://qdrant-0.qdrant-headless:6335/")
    }
}

/// One request as the fake received it (recorded before authentication, so refused requests
/// are included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// The `api-key` header, if sent.
    pub api_key: Option<String>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
}

/// A running fake Qdrant; stops when dropped. All setters take effect on the next request.
pub struct FakeQdrant {
    url: Url,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeQdrant {
    /// Starts the fake on `127.0.0.1` on a free port, in the current tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound (a broken test environment); see [`Self::try_start`].
    pub async fn start(opts: FakeQdrantOptions) -> Self {
        match Self::try_start(opts).await {
            Ok(fake) => fake,
            Err(e) => panic!("cannot start the fake Qdrant on 127.0.0.1: {e}"),
        }
    }

    /// Like [`Self::start`], returning the bind error instead of panicking.
    ///
    /// # Errors
    /// The I/O error from binding or inspecting the listener.
    pub async fn try_start(opts: FakeQdrantOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr: SocketAddr = listener.local_addr()?;
        let url = Url::parse(&format!("http://{addr}/"))
            .map_err(|e| std::io::Error::other(format!("bad listener address {addr}: {e}")))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                api_key: opts.api_key,
                read_only_api_key: opts.read_only_api_key,
                cluster: opts.cluster,
                ready: opts.ready,
                requests: Vec::new(),
                faults: Vec::new(),
            }),
        });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake Qdrant server stopped");
            }
        });
        Ok(Self {
            url,
            shared,
            server,
        })
    }

    /// Base URL, `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// Sets or clears `service.api_key`.
    pub fn set_api_key(&self, key: Option<&str>) {
        self.shared.lock().api_key = key.map(str::to_owned);
    }

    /// Sets or clears `service.read_only_api_key`.
    pub fn set_read_only_api_key(&self, key: Option<&str>) {
        self.shared.lock().read_only_api_key = key.map(str::to_owned);
    }

    /// Switches to cluster mode with this state.
    pub fn set_cluster(&self, cluster: ClusterState) {
        self.shared.lock().cluster = Some(cluster);
    }

    /// Switches cluster mode off (`GET /cluster` answers `{"status": "disabled"}`).
    pub fn set_cluster_disabled(&self) {
        self.shared.lock().cluster = None;
    }

    /// Makes `GET /readyz` answer 200 (true) or 503 (false).
    pub fn set_ready(&self, ready: bool) {
        self.shared.lock().ready = ready;
    }

    /// The next `times` requests whose path contains `path_contains` (after authentication)
    /// fail with `status` and Qdrant's error shape for it: a JSON envelope whose message is
    /// prefixed as Qdrant does (`Service internal error: ` for 500, `Not found: ` for 404,
    /// ...), or the plain-text body for 401. An invalid status code is treated as 500.
    pub fn fail_next(&self, path_contains: &str, status: u16, times: usize) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.add_fault(path_contains, FaultKind::Status(status), times);
    }

    /// The next `times` requests whose path contains `path_contains` (after authentication)
    /// are answered normally, but only after `delay` (to exercise client timeouts).
    pub fn delay_next(&self, path_contains: &str, delay: Duration, times: usize) {
        self.add_fault(path_contains, FaultKind::Delay(delay), times);
    }

    fn add_fault(&self, path_contains: &str, kind: FaultKind, times: usize) {
        if times > 0 {
            self.shared.lock().faults.push(Fault {
                path_contains: path_contains.to_owned(),
                kind,
                remaining: times,
            });
        }
    }

    /// Every request so far as (method, path), in arrival order.
    pub fn requests(&self) -> Vec<(Method, String)> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect()
    }

    /// Every request so far with the headers that matter, in arrival order.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }
}

impl Drop for FakeQdrant {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for FakeQdrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeQdrant")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// State shared between the handle and the server.
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// Locks the state; a panic in another test thread does not poison the fake.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the fake Qdrant knows. Never held across an `.await`.
struct State {
    api_key: Option<String>,
    read_only_api_key: Option<String>,
    cluster: Option<ClusterState>,
    ready: bool,
    requests: Vec<RecordedRequest>,
    faults: Vec<Fault>,
}

impl State {
    /// Consumes one use of the first fault matching `path`.
    fn take_fault(&mut self, path: &str) -> Option<FaultKind> {
        let index = self
            .faults
            .iter()
            .position(|f| f.remaining > 0 && path.contains(&f.path_contains))?;
        let fault = &mut self.faults[index];
        fault.remaining -= 1;
        let kind = fault.kind;
        if fault.remaining == 0 {
            self.faults.remove(index);
        }
        Some(kind)
    }
}

struct Fault {
    path_contains: String,
    kind: FaultKind,
    remaining: usize,
}

#[derive(Clone, Copy)]
enum FaultKind {
    Status(StatusCode),
    Delay(Duration),
}

/// What the request's key allows, put into request extensions by `gate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Read and write (no key configured, the read-write key, or a whitelisted path).
    Full,
    /// The read-only key.
    ReadOnly,
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(service_routes())
        .merge(cluster_routes())
        .route_layer(middleware::from_fn(read_only_gate))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

fn service_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
}

fn cluster_routes() -> Router<Arc<Shared>> {
    Router::new().route("/cluster", get(cluster_status))
}

/// Records the request, authenticates it as Qdrant does, then applies injected faults.
async fn gate(AxumState(shared): AxumState<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let recorded = record(&req);
    let path = recorded.path.clone();
    let decision = {
        let mut state = shared.lock();
        let access = authenticate(&state, &path, &recorded);
        state.requests.push(recorded);
        access.map(|access| (access, state.take_fault(&path)))
    };
    let access = match decision {
        Err(message) => return (StatusCode::UNAUTHORIZED, Body::from(message)).into_response(),
        Ok((_, Some(FaultKind::Status(status)))) => return injected_failure(status, started),
        Ok((access, Some(FaultKind::Delay(delay)))) => {
            tokio::time::sleep(delay).await;
            access
        }
        Ok((access, None)) => access,
    };
    req.extensions_mut().insert(access);
    next.run(req).await
}

fn record(req: &Request) -> RecordedRequest {
    let header_text = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    RecordedRequest {
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        api_key: header_text(crate::qdrant::API_KEY_HEADER),
        authorization: header_text(header::AUTHORIZATION.as_str()),
    }
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
fn ok(result: Value, started: Instant) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"result": result, "status": "ok", "time": started.elapsed().as_secs_f64()}),
    )
}

/// Qdrant's error envelope: `{"status": {"error": ".."}, "time": <seconds>}`.
fn error(status: StatusCode, message: &str, started: Instant) -> Response {
    json_response(
        status,
        &json!({"status": {"error": message}, "time": started.elapsed().as_secs_f64()}),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn text(status: StatusCode, body: &'static str) -> Response {
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

async fn root() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"title": "qdrant - vector search engine", "version": FAKE_QDRANT_VERSION}),
    )
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

async fn cluster_status(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let cluster = shared.lock().cluster.clone();
    let Some(c) = cluster else {
        return ok(json!({"status": "disabled"}), started);
    };
    let peers: serde_json::Map<String, Value> = c
        .peers
        .iter()
        .map(|(id, uri)| (id.to_string(), json!({"uri": uri})))
        .collect();
    let role = c.role.map(|role| match role {
        RaftRole::Leader => "Leader",
        RaftRole::Follower => "Follower",
        RaftRole::Candidate => "Candidate",
        RaftRole::PreCandidate => "PreCandidate",
    });
    ok(
        json!({
            "status": "enabled",
            "peer_id": c.peer_id,
            "peers": peers,
            "raft_info": {
                "term": c.term,
                "commit": c.commit,
                "pending_operations": c.pending_operations,
                "leader": c.leader,
                "role": role,
                "is_voter": true,
            },
            "consensus_thread_status": {
                "consensus_thread_status": "working",
                "last_update": jiff::Timestamp::now().to_string(),
            },
            "message_send_failures": {},
        }),
        started,
    )
}
