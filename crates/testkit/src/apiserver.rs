//! An in-process, stateful fake of the Kubernetes API server for reconcile-loop tests and
//! benchmarks.
//!
//! [`FakeApiServer`] is a [`tower::Service`] over HTTP requests, so the real `kube` client code
//! path (request building, serialization, error handling, watch-stream decoding) runs against it:
//! [`FakeApiServer::client`] returns a [`kube::Client`] talking to it in-process, and
//! [`FakeApiServer::serve`] exposes the same state over HTTP/1 on a local socket so that a
//! benchmark can run the fake in another process.
//!
//! # What is faithful
//!
//! - Paths `/api/v1[/namespaces/{ns}]/{plural}[/{name}[/status]]` and
//!   `/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/status]]`. Storage is keyed by
//!   (API path prefix, plural, namespace, name); the fake needs no knowledge of kinds.
//! - get, list (label and field selectors, `limit`/`continue` paging), watch (`ADDED`,
//!   `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR` 410 for a compacted `resourceVersion`,
//!   `sendInitialEvents` streaming lists), create (`generateName`), replace (optimistic
//!   concurrency), delete (finalizers, background cascading deletion through
//!   `ownerReferences`), delete-collection, and patch: server-side apply, JSON merge patch,
//!   JSON patch and strategic merge patch (treated as a JSON merge patch).
//! - `metadata.uid`, `resourceVersion` (one global, monotonically increasing counter),
//!   `creationTimestamp`, `generation` (bumped when anything outside `metadata` and `status`
//!   changes), `deletionTimestamp`.
//! - A write whose result equals the stored object changes nothing: no new `resourceVersion`,
//!   no watch event (it is still recorded in [`FakeApiServer::requests`]).
//! - The `status` subresource: writes to `/status` change only `.status`; writes to the main
//!   resource never change `.status` of a stored object and drop it on create, except for the
//!   kinds without a status subresource (`configmaps`, `secrets`, `leases`, `events`,
//!   `serviceaccounts`, `endpoints`, `endpointslices`, `roles`, `rolebindings`,
//!   `clusterroles`, `clusterrolebindings`).
//! - Errors are `Status` bodies with the real reasons and codes.
//! - Metadata-only requests (`Accept: ...;as=PartialObjectMetadata[List]`, used by
//!   `kube::runtime::metadata_watcher`) answer `PartialObjectMetadata[List]`.
//!
//! # What is simplified
//!
//! - No defaulting, no validation against schemas, no admission, no namespace existence
//!   checks, no `managedFields` in objects, no `scale` or other subresources.
//! - Server-side apply keeps, per object, the last applied configuration of every field
//!   manager (per main resource and `status` subresource) in the fake's state. Applying
//!   removes the fields that the same manager applied last time and omits now (unless another
//!   manager's last applied configuration still contains them), then deep-merges the new
//!   configuration: maps merge recursively, lists and scalars replace (no associative lists).
//!   Conflicts between managers are never reported, as if `force=true` were always set.
//! - `propagationPolicy` is ignored except `Orphan` for an object removed at once; deletion is
//!   otherwise always background cascading.
//! - `resourceVersion` and `resourceVersionMatch` of lists are ignored (a list is always
//!   current); pages after the first report the `resourceVersion` of the first page.
//! - A watch turns a change into `ADDED`/`DELETED` when the object starts/stops matching its
//!   label selector; a field selector on a field that changes (other than labels) only filters.
//! - Watches send a `BOOKMARK` only at the end of the initial events (`sendInitialEvents`) and
//!   when they time out (if `allowWatchBookmarks`), not periodically.
//! - Errors injected with [`FakeApiServer::fail_next`] carry no `Retry-After` header.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    convert::Infallible,
    fmt::Display,
    future::Future,
    net::SocketAddr,
    ops::Bound,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Body as HttpBody, Frame};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// The body of every response of the fake: a full JSON document, or for a watch a stream of
/// newline-delimited JSON watch events.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// How many watch events the fake keeps by default for resuming watches (see
/// [`FakeApiServer::with_history_limit`]).
pub const DEFAULT_HISTORY_LIMIT: usize = 10_000;

/// Capacity of the broadcast channel that fans events out to open watches. A watch that falls
/// further behind receives an `ERROR` 410 event and ends, as on a real server.
const BROADCAST_CAPACITY: usize = 8_192;

/// Default `timeoutSeconds` of a watch, as on a real server.
const DEFAULT_WATCH_TIMEOUT_SECS: u64 = 290;

/// The first `resourceVersion` handed out; makes `"0"` and small numbers obviously special.
const FIRST_RESOURCE_VERSION: u64 = 1_000;

/// Plurals of the kinds that have no `status` subresource: writes to them store `.status` as
/// sent (they have none) and `/status` requests answer 404.
const KINDS_WITHOUT_STATUS: &[&str] = &[
    "configmaps",
    "secrets",
    "leases",
    "events",
    "serviceaccounts",
    "endpoints",
    "endpointslices",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
];

/// A stateful fake Kubernetes API server. Cloning is cheap and clones share the state.
///
/// Use [`FakeApiServer::client`] for an in-process [`kube::Client`], or
/// [`FakeApiServer::serve`] to expose it over HTTP/1. The helper methods ([`insert`],
/// [`get`], [`edit`], [`remove`], ...) read and change the state directly, "behind the
/// controller's back"; their changes are seen by watches like any other change.
///
/// The helpers name a collection by `api_version` as written in objects (`"v1"`,
/// `"apps/v1"`, `"qdrant.operator.dev/v1alpha1"`), the lowercase `plural`
/// (`"configmaps"`), and `namespace` (`None` for cluster-scoped objects; for
/// [`list`](FakeApiServer::list), `None` means all namespaces).
///
/// [`insert`]: FakeApiServer::insert
/// [`get`]: FakeApiServer::get
/// [`edit`]: FakeApiServer::edit
/// [`remove`]: FakeApiServer::remove
#[derive(Clone, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

/// One request seen by the fake, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method (`GET` for gets, lists and watches).
    pub method: Method,
    /// The request path, e.g. `/apis/apps/v1/namespaces/default/statefulsets/db`.
    pub path: String,
    /// The raw (percent-encoded) query string without `?`, if any, e.g.
    /// `fieldManager=qdrant-operator&force=true`.
    pub query: Option<String>,
    /// The `Content-Type` header, if any, e.g. `application/apply-patch+yaml`.
    pub content_type: Option<String>,
}

impl RecordedRequest {
    /// Whether this request is a write: `POST`, `PUT`, `PATCH` or `DELETE`.
    pub fn is_write(&self) -> bool {
        is_write_method(&self.method)
    }
}

/// A failure to inject with [`FakeApiServer::fail_next`].
///
/// The next `times` requests that match `method` (any method when `None`) and whose path
/// contains `path_contains` (any path when `None`) answer HTTP `status` with a Kubernetes
/// `Status` body whose `reason` follows the code (409 `Conflict`, 429 `TooManyRequests`,
/// 500 `InternalError`, 503 `ServiceUnavailable`, ...). They change no state but are recorded.
/// Rules are consulted in the order they were added; a request consumes at most one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP method to match, or any when `None`.
    pub method: Option<Method>,
    /// A substring of the request path (not the query) to match, or any path when `None`.
    pub path_contains: Option<String>,
    /// The HTTP status code to answer, e.g. 409, 500, 503.
    pub status: u16,
    /// How many matching requests fail; 0 makes the rule a no-op.
    pub times: usize,
}

impl FakeApiServer {
    /// An empty fake API server that keeps [`DEFAULT_HISTORY_LIMIT`] watch events.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty fake API server that keeps only the last `limit` watch events: a watch that
    /// asks for an older `resourceVersion` receives an `ERROR` event with a 410 `Expired`
    /// `Status`, forcing `kube::runtime::watcher` to list again.
    pub fn with_history_limit(limit: usize) -> Self {
        let server = Self::default();
        server.lock().history_limit = limit;
        server
    }

    /// A [`kube::Client`] that sends its requests to this fake in-process, with default
    /// namespace `"default"`, through the same layers as the controllers' own client
    /// ([`reconcile_lib::runtime::client_over`]).
    ///
    /// Must be called inside a Tokio runtime (the client spawns its request buffer there).
    pub fn client(&self) -> kube::Client {
        reconcile_lib::runtime::client_over(self.clone(), "default")
    }

    /// Serves this fake over plain HTTP/1 on `addr` (e.g. `127.0.0.1:0`) from a spawned task
    /// and returns the bound address. The task runs until the Tokio runtime shuts down.
    ///
    /// A client is then built with
    /// `reconcile_lib::runtime::client_for(kube::Config::new("http://127.0.0.1:PORT".parse()?))`.
    ///
    /// # Errors
    ///
    /// Binding the socket fails.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let server = self.clone();
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "fake API server: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    if let Err(error) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "fake API server: connection ended");
                    }
                });
            }
        });
        Ok(bound)
    }

    /// Seeds (or overwrites) an object, bypassing the API: no request is recorded and no
    /// failure is injected, `.status` is kept as given.
    ///
    /// `obj` needs `apiVersion`, `kind` and `metadata.name` (or `metadata.generateName`), and
    /// `metadata.namespace` for namespaced objects. The plural is derived from the kind as
    /// `kube` does (`ConfigMap` → `configmaps`, `NetworkPolicy` → `networkpolicies`). Fills
    /// `metadata.uid`, `creationTimestamp` and `generation` (1) when absent and always sets a
    /// new `resourceVersion`; watches see `ADDED` (or `MODIFIED` when it replaced an object).
    /// Returns the stored object.
    ///
    /// # Panics
    ///
    /// When `obj` lacks `apiVersion`, `kind` or a name: a seed is test code, and a bad seed
    /// is a bug in the test.
    pub fn insert(&self, obj: Value) -> Value {
        let (Some(api_version), Some(kind)) = (
            obj.get("apiVersion").and_then(Value::as_str),
            obj.get("kind").and_then(Value::as_str),
        ) else {
            panic!("FakeApiServer::insert: the object needs apiVersion and kind: {obj}");
        };
        let plural = plural_of(api_version, kind);
        let namespace = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let coll = Coll::new(api_version, &plural, namespace.as_deref());
        let mut state = self.lock();
        match state.create(&coll, obj, CreateMode::Seed) {
            Ok(stored) => stored,
            Err(error) => panic!("FakeApiServer::insert: {}", error.message),
        }
    }

    /// The stored object, if any.
    pub fn get(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = Coll::new(api_version, plural, namespace).key(name);
        self.lock().objects.get(&key).map(|entry| entry.obj.clone())
    }

    /// True when an `events.k8s.io/v1` Event in `namespace` has `reason`, regards the object
    /// named `name`, and its note contains `note_part`.
    pub fn has_event(&self, namespace: &str, reason: &str, name: &str, note_part: &str) -> bool {
        self.list("events.k8s.io/v1", "events", Some(namespace))
            .iter()
            .any(|e| {
                e["reason"] == reason
                    && e["regarding"]["name"] == name
                    && e["note"].as_str().is_some_and(|n| n.contains(note_part))
            })
    }

    /// The stored objects of a collection, ordered by namespace then name; `namespace: None`
    /// lists every namespace (and the cluster-scoped objects).
    pub fn list(&self, api_version: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let coll = Coll::new(api_version, plural, namespace);
        let state = self.lock();
        state
            .collection(&coll, None)
            .map(|(_, entry)| entry.obj.clone())
            .collect()
    }

    /// Changes a stored object "behind the controller's back" and returns whether it existed.
    ///
    /// `f` may change anything, `.status` included; it runs without the fake's lock held (it
    /// may call the fake). If the result differs from the stored object, `resourceVersion` is
    /// bumped, `generation` is bumped when anything outside `metadata` and `status` changed,
    /// and watches see `MODIFIED` (or `DELETED` when `f` removed the last finalizer of an
    /// object being deleted).
    pub fn edit(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> bool {
        let key = Coll::new(api_version, plural, namespace).key(name);
        let Some(mut obj) = self.lock().objects.get(&key).map(|e| e.obj.clone()) else {
            return false;
        };
        f(&mut obj);
        let mut state = self.lock();
        if !state.objects.contains_key(&key) {
            return false;
        }
        state.commit(&key, obj, false);
        true
    }

    /// Deletes a stored object at once "behind the controller's back", ignoring its
    /// finalizers, and returns whether it existed. Watches see `DELETED`; its dependents (by
    /// `metadata.ownerReferences[].uid`) are garbage-collected as for an API deletion, honoring
    /// their own finalizers.
    pub fn remove(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let key = Coll::new(api_version, plural, namespace).key(name);
        self.lock().remove_now(&key, false).is_some()
    }

    /// Every request seen (including watches, failed and injected-failure requests), in
    /// arrival order, since creation or the last [`clear_requests`](Self::clear_requests).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The requests of [`requests`](Self::requests) that are writes: `POST`, `PUT`, `PATCH`
    /// and `DELETE`, whether or not they changed anything.
    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.is_write())
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Makes the next `rule.times` requests matching `rule` fail with `rule.status` (see
    /// [`Failure`]).
    pub fn fail_next(&self, rule: Failure) {
        if rule.times > 0 {
            self.lock().failures.push(rule);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers one HTTP request.
    async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Display,
    {
        let (parts, body) = req.into_parts();
        let header_str = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let recorded = RecordedRequest {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts
                .uri
                .query()
                .filter(|q| !q.is_empty())
                .map(str::to_owned),
            content_type: header_str(header::CONTENT_TYPE),
        };
        let accept = header_str(header::ACCEPT).unwrap_or_default();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                self.lock().requests.push(recorded);
                return error_response(&ApiError::new(
                    400,
                    format!("reading the request body: {error}"),
                ));
            }
        };
        let injected = {
            let mut state = self.lock();
            let injected = state.take_failure(&recorded.method, &recorded.path);
            state.requests.push(recorded.clone());
            injected
        };
        if let Some(code) = injected {
            return error_response(&ApiError::new(
                code,
                format!("injected failure for {} {}", recorded.method, recorded.path),
            ));
        }
        let request = Incoming {
            method: recorded.method,
            path: recorded.path,
            query: Query::parse(recorded.query.as_deref()),
            content_type: recorded.content_type,
            meta_only: accept.contains("as=PartialObjectMetadata"),
            body,
        };
        match self.route(&request) {
            Ok(response) => response,
            Err(error) => error_response(&error),
        }
    }

    fn route(&self, req: &Incoming) -> Result<Response<ResponseBody>, ApiError> {
        if req.path == "/version" && req.method == Method::GET {
            return Ok(json_response(StatusCode::OK, &version_info()));
        }
        let Some(route) = Route::parse(&req.path) else {
            return Err(ApiError::new(
                404,
                format!(
                    "the server could not find the requested resource ({})",
                    req.path
                ),
            ));
        };
        if let Some(sub) = &route.subresource
            && (sub != "status" || !has_status_subresource(&route.coll.plural))
        {
            return Err(ApiError::new(
                404,
                format!(
                    "the server could not find the requested resource ({} {}/{})",
                    route.coll.qualified(),
                    route.name.as_deref().unwrap_or_default(),
                    sub
                ),
            ));
        }
        let dry_run = req.query.get("dryRun").is_some_and(|v| v == "All");
        let method = &req.method;
        match route.name.as_deref() {
            None if *method == Method::GET => {
                let watch = req
                    .query
                    .get("watch")
                    .is_some_and(|v| v == "true" || v == "1");
                if watch {
                    self.watch(&route.coll, req)
                } else {
                    let list = self
                        .lock()
                        .list_page(&route.coll, &req.query, req.meta_only)?;
                    Ok(json_response(StatusCode::OK, &list))
                }
            }
            None if *method == Method::POST => {
                let body = parse_json(&req.body)?;
                if body
                    .pointer("/metadata/resourceVersion")
                    .is_some_and(|rv| !rv.is_null() && rv.as_str().is_some_and(|s| !s.is_empty()))
                {
                    return Err(ApiError::new(
                        500,
                        "resourceVersion should not be set on objects to be created".into(),
                    ));
                }
                let mode = if dry_run {
                    CreateMode::DryRun
                } else {
                    CreateMode::Api
                };
                let created = self.lock().create(&route.coll, body, mode)?;
                Ok(json_response(StatusCode::CREATED, &created))
            }
            None if *method == Method::DELETE => {
                let opts = DeleteOptions::parse(&req.body, dry_run)?;
                let list = self
                    .lock()
                    .delete_collection(&route.coll, &req.query, &opts)?;
                Ok(json_response(StatusCode::OK, &list))
            }
            None => Err(method_not_allowed(method)),
            Some(name) => {
                let status_sub = route.subresource.is_some();
                let key = route.coll.key(name);
                let result = match *method {
                    Method::GET => {
                        let state = self.lock();
                        state
                            .objects
                            .get(&key)
                            .map(|e| e.obj.clone())
                            .ok_or_else(|| ApiError::not_found(&route.coll, name))?
                    }
                    Method::PUT => {
                        let body = parse_json(&req.body)?;
                        self.lock()
                            .replace(&route.coll, name, body, status_sub, dry_run)?
                    }
                    Method::PATCH => {
                        let kind = PatchKind::from_content_type(req.content_type.as_deref())?;
                        let body = parse_json(&req.body)?;
                        self.lock().patch(
                            &route.coll,
                            name,
                            kind,
                            body,
                            &PatchOptions {
                                status_sub,
                                dry_run,
                                field_manager: req.query.get("fieldManager"),
                            },
                        )?
                    }
                    Method::DELETE if !status_sub => {
                        let opts = DeleteOptions::parse(&req.body, dry_run)?;
                        self.lock().delete_api(&route.coll, name, &opts)?
                    }
                    _ => return Err(method_not_allowed(method)),
                };
                let result = if req.meta_only {
                    partial_metadata(&result)
                } else {
                    result
                };
                Ok(json_response(StatusCode::OK, &result))
            }
        }
    }

    /// Opens a watch: computes the first lines under the lock, then streams.
    fn watch(&self, coll: &Coll, req: &Incoming) -> Result<Response<ResponseBody>, ApiError> {
        let query = &req.query;
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(DEFAULT_WATCH_TIMEOUT_SECS);
        let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true");
        let from = match query.get("resourceVersion").filter(|v| !v.is_empty()) {
            None | Some("0") => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                ApiError::new(400, format!("invalid resourceVersion {v:?}: not a number"))
            })?),
        };
        let state = self.lock();
        let filter = WatchFilter {
            coll: coll.clone(),
            selectors: Selectors::parse(query)?,
            meta_only: req.meta_only,
            kind: state.kind_of(coll),
        };
        let mut pending = VecDeque::new();
        let mut rx = None;
        match from {
            Some(from) if !send_initial => {
                if from < state.compacted_rv {
                    pending.push_back(gone_line(from, state.compacted_rv));
                } else {
                    for event in state.history.iter().filter(|e| e.rv > from) {
                        if let Some(line) = filter.render(event) {
                            pending.push_back(line);
                        }
                    }
                    rx = Some(state.events.subscribe());
                }
            }
            _ => {
                for (_, entry) in state.collection(coll, None) {
                    if filter.selectors.matches(&entry.obj) {
                        pending.push_back(filter.line("ADDED", &entry.obj));
                    }
                }
                if send_initial {
                    pending.push_back(filter.bookmark(state.rv, true));
                }
                rx = Some(state.events.subscribe());
            }
        }
        drop(state);
        let stream = WatchStream {
            pending,
            rx,
            deadline: tokio::time::Instant::now() + Duration::from_secs(timeout),
            filter,
            bookmarks,
            state: Arc::clone(&self.state),
        };
        let frames = futures::stream::unfold(stream, |mut stream| async move {
            loop {
                if let Some(line) = stream.pending.pop_front() {
                    return Some((Ok::<_, Infallible>(Frame::data(line)), stream));
                }
                let rx = stream.rx.as_mut()?;
                match tokio::time::timeout_at(stream.deadline, rx.recv()).await {
                    Ok(Ok(event)) => {
                        if let Some(line) = stream.filter.render(&event) {
                            stream.pending.push_back(line);
                        }
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                        let rv = lock_state(&stream.state).rv;
                        stream.pending.push_back(gone_line(rv, rv));
                        stream.rx = None;
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => stream.rx = None,
                    Err(_elapsed) => stream.finish(),
                }
            }
        });
        let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }
}

impl<B> tower::Service<Request<B>> for FakeApiServer
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Display,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let server = self.clone();
        Box::pin(async move { Ok(server.handle(req).await) })
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// (API path prefix such as `api/v1` or `apis/apps/v1`, plural, namespace or "", name).
type ObjKey = (String, String, String, String);

struct Entry {
    obj: Value,
    /// Last applied configuration per (field manager, is `status` subresource).
    applied: BTreeMap<(String, bool), Value>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

struct StoredEvent {
    rv: u64,
    prefix: String,
    plural: String,
    namespace: String,
    kind: EventType,
    object: Value,
    /// The object before a `Modified` change that changed its labels, to turn the change into
    /// `ADDED`/`DELETED` for watches whose selector it starts or stops matching.
    previous: Option<Value>,
}

struct State {
    objects: BTreeMap<ObjKey, Entry>,
    uids: HashMap<String, ObjKey>,
    kinds: HashMap<(String, String), String>,
    rv: u64,
    history: VecDeque<Arc<StoredEvent>>,
    history_limit: usize,
    /// Every event with a `resourceVersion` above this one is still in `history`.
    compacted_rv: u64,
    events: broadcast::Sender<Arc<StoredEvent>>,
    requests: Vec<RecordedRequest>,
    failures: Vec<Failure>,
}

impl Default for State {
    fn default() -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            kinds: HashMap::new(),
            rv: FIRST_RESOURCE_VERSION,
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            compacted_rv: FIRST_RESOURCE_VERSION,
            events,
            requests: Vec::new(),
            failures: Vec::new(),
        }
    }
}

fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CreateMode {
    /// A `POST` (or a server-side apply that creates): drops `.status` of kinds with a status
    /// subresource, fails when the object exists.
    Api,
    /// Like `Api` but stores nothing.
    DryRun,
    /// [`FakeApiServer::insert`]: keeps everything given, overwrites an existing object.
    Seed,
}

struct PatchOptions<'a> {
    status_sub: bool,
    dry_run: bool,
    field_manager: Option<&'a str>,
}

impl State {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn kind_of(&self, coll: &Coll) -> String {
        self.kinds
            .get(&(coll.prefix.clone(), coll.plural.clone()))
            .cloned()
            .unwrap_or_else(|| "Unknown".to_owned())
    }

    fn take_failure(&mut self, method: &Method, path: &str) -> Option<u16> {
        let index = self.failures.iter().position(|rule| {
            rule.method.as_ref().is_none_or(|m| m == method)
                && rule
                    .path_contains
                    .as_deref()
                    .is_none_or(|needle| path.contains(needle))
        })?;
        let rule = &mut self.failures[index];
        let status = rule.status;
        rule.times = rule.times.saturating_sub(1);
        if rule.times == 0 {
            self.failures.remove(index);
        }
        Some(status)
    }

    /// Records an event (the current `self.rv`) in the history and fans it out.
    fn emit(&mut self, key: &ObjKey, kind: EventType, object: Value, previous: Option<Value>) {
        let event = Arc::new(StoredEvent {
            rv: self.rv,
            prefix: key.0.clone(),
            plural: key.1.clone(),
            namespace: key.2.clone(),
            kind,
            object,
            previous,
        });
        self.history.push_back(Arc::clone(&event));
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        if self.history_limit == 0 {
            self.compacted_rv = self.rv;
        }
        // An error only means that no watch is open.
        let _ = self.events.send(event);
    }

    /// The entries of a collection (all namespaces when `coll.namespace` is `None`), in key
    /// order, starting after `after` (namespace, name) when given.
    fn collection<'a>(
        &'a self,
        coll: &'a Coll,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Entry)> + 'a {
        let ns = coll.namespace.clone().unwrap_or_default();
        let start = match after {
            Some((ans, aname)) => Bound::Excluded((
                coll.prefix.clone(),
                coll.plural.clone(),
                ans.to_owned(),
                aname.to_owned(),
            )),
            None => Bound::Included((coll.prefix.clone(), coll.plural.clone(), ns, String::new())),
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |(key, _)| {
                key.0 == coll.prefix
                    && key.1 == coll.plural
                    && coll.namespace.as_ref().is_none_or(|ns| &key.2 == ns)
            })
    }

    fn list_page(&self, coll: &Coll, query: &Query, meta_only: bool) -> Result<Value, ApiError> {
        let selectors = Selectors::parse(query)?;
        let limit = query
            .get("limit")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let token = query.get("continue").filter(|t| !t.is_empty());
        let (list_rv, after) = match token {
            Some(token) => {
                let mut parts = token.splitn(3, '/');
                match (
                    parts.next().map(str::parse::<u64>),
                    parts.next(),
                    parts.next(),
                ) {
                    (Some(Ok(rv)), Some(ns), Some(name)) => (rv, Some((ns, name))),
                    _ => {
                        return Err(ApiError::new(
                            400,
                            format!("invalid continue token {token:?}"),
                        ));
                    }
                }
            }
            None => (self.rv, None),
        };
        let mut items = Vec::new();
        let mut next = None;
        for (key, entry) in self.collection(coll, after) {
            if !selectors.matches(&entry.obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                next = items
                    .last()
                    .map(|(k, _): &(&ObjKey, Value)| format!("{list_rv}/{}/{}", k.2, k.3));
                break;
            }
            let item = if meta_only {
                partial_metadata(&entry.obj)
            } else {
                entry.obj.clone()
            };
            items.push((key, item));
        }
        let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
        if let Some(next) = next {
            metadata["continue"] = Value::String(next);
        }
        let (api_version, kind) = if meta_only {
            (
                "meta.k8s.io/v1".to_owned(),
                "PartialObjectMetadataList".to_owned(),
            )
        } else {
            (
                coll.api_version.clone(),
                format!("{}List", self.kind_of(coll)),
            )
        };
        Ok(json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": metadata,
            "items": items.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
        }))
    }

    fn create(&mut self, coll: &Coll, mut obj: Value, mode: CreateMode) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::new(400, "the body must be a JSON object".into()));
        }
        fold_string_data(&coll.plural, &mut obj);
        let api_version = obj.get("apiVersion").and_then(Value::as_str);
        let kind = obj.get("kind").and_then(Value::as_str).map(str::to_owned);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return Err(ApiError::new(
                400,
                "Object 'Kind' or 'apiVersion' is missing in the body".into(),
            ));
        };
        if api_version != coll.api_version {
            return Err(ApiError::new(
                400,
                format!(
                    "the API version in the data ({api_version}) does not match the expected API version ({})",
                    coll.api_version
                ),
            ));
        }
        if mode == CreateMode::Api || mode == CreateMode::DryRun {
            strip_status_if_subresource(&mut obj, &coll.plural);
        }
        let Some(meta) = ensure_meta(&mut obj) else {
            return Err(ApiError::new(400, "metadata must be an object".into()));
        };
        let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        match &coll.namespace {
            Some(ns) => {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::new(
                        400,
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
                }
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            None if !body_ns.is_empty() => {
                return Err(ApiError::new(
                    400,
                    format!(
                        "the object has namespace {body_ns:?} but the request path is cluster-scoped"
                    ),
                ));
            }
            None => {}
        }
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => name.to_owned(),
            None => match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                Some(prefix) => {
                    let prefix = prefix.to_owned();
                    let mut name = format!("{prefix}{}", random_suffix());
                    while self.objects.contains_key(&coll.key(&name)) {
                        name = format!("{prefix}{}", random_suffix());
                    }
                    meta.insert("name".into(), Value::String(name.clone()));
                    name
                }
                None => {
                    return Err(ApiError::new(
                        422,
                        format!(
                            "{} is invalid: metadata.name: Required value: name or generateName is required",
                            coll.qualified()
                        ),
                    ));
                }
            },
        };
        let key = coll.key(&name);
        let previous = self.objects.get(&key).map(|e| e.obj.clone());
        if previous.is_some() && mode != CreateMode::Seed {
            return Err(ApiError::already_exists(coll, &name));
        }
        let seed = mode == CreateMode::Seed;
        meta.remove("managedFields");
        if !seed {
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
        }
        if !seed || !meta.get("uid").is_some_and(Value::is_string) {
            meta.insert("uid".into(), Value::String(new_uid()));
        }
        if !seed || !meta.get("creationTimestamp").is_some_and(Value::is_string) {
            meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        }
        if !seed || !meta.get("generation").is_some_and(Value::is_u64) {
            meta.insert("generation".into(), json!(1));
        }
        if mode == CreateMode::DryRun {
            meta.remove("resourceVersion");
            return Ok(obj);
        }
        let rv = self.next_rv();
        let uid = meta
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        if let Some(previous) = &previous
            && let Some(old_uid) = uid_of(previous)
        {
            self.uids.remove(old_uid);
        }
        self.uids.insert(uid, key.clone());
        self.kinds
            .insert((coll.prefix.clone(), coll.plural.clone()), kind);
        self.objects.insert(
            key.clone(),
            Entry {
                obj: obj.clone(),
                applied: BTreeMap::new(),
            },
        );
        let event = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(&key, event, obj.clone(), previous);
        Ok(obj)
    }

    /// Stores `new` (already prepared) for the existing object `key`, unless it equals the
    /// stored object. Bumps `generation` and `resourceVersion`, emits `MODIFIED`, and removes
    /// the object when it is being deleted and has no finalizers left. Returns the result.
    fn commit(&mut self, key: &ObjKey, mut new: Value, dry_run: bool) -> Value {
        fold_string_data(&key.1, &mut new);
        let Some(entry) = self.objects.get(key) else {
            return new;
        };
        if new == entry.obj {
            return new;
        }
        let old = entry.obj.clone();
        let old_generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let generation =
            if content_without_meta_and_status(&new) == content_without_meta_and_status(&old) {
                old_generation
            } else {
                old_generation + 1
            };
        if let Some(meta) = ensure_meta(&mut new) {
            meta.insert("generation".into(), json!(generation));
        }
        if dry_run {
            return new;
        }
        let rv = self.next_rv();
        if let Some(meta) = ensure_meta(&mut new) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        if is_deleting(&new) && finalizers(&new).is_empty() {
            self.objects.remove(key);
            if let Some(uid) = uid_of(&new) {
                self.uids.remove(uid);
            }
            self.emit(key, EventType::Deleted, new.clone(), None);
            if let Some(uid) = uid_of(&new) {
                self.collect_garbage(uid, false);
            }
            return new;
        }
        if let Some(entry) = self.objects.get_mut(key) {
            entry.obj = new.clone();
        }
        // The previous object only matters to watches whose label selector it starts or
        // stops matching; keeping it only when labels changed halves the history's memory.
        let labels_changed = old.pointer("/metadata/labels") != new.pointer("/metadata/labels");
        self.emit(
            key,
            EventType::Modified,
            new.clone(),
            labels_changed.then_some(old),
        );
        new
    }

    fn replace(
        &mut self,
        coll: &Coll,
        name: &str,
        body: Value,
        status_sub: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = coll.key(name);
        let live = self
            .objects
            .get(&key)
            .map(|e| e.obj.clone())
            .ok_or_else(|| ApiError::not_found(coll, name))?;
        check_candidate(coll, name, &live, &body)?;
        let new = prepare_update(&live, body, &coll.plural, status_sub);
        Ok(self.commit(&key, new, dry_run))
    }

    fn patch(
        &mut self,
        coll: &Coll,
        name: &str,
        kind: PatchKind,
        patch: Value,
        opts: &PatchOptions<'_>,
    ) -> Result<Value, ApiError> {
        let key = coll.key(name);
        let live = self.objects.get(&key).map(|e| e.obj.clone());
        let candidate = match (kind, live.as_ref()) {
            (PatchKind::Apply, _) => return self.apply(coll, name, patch, opts),
            (_, None) => return Err(ApiError::not_found(coll, name)),
            (PatchKind::Merge, Some(live)) => {
                let mut candidate = live.clone();
                json_patch::merge(&mut candidate, &patch);
                candidate
            }
            (PatchKind::Json, Some(live)) => {
                let ops: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| ApiError::new(400, format!("invalid JSON patch: {e}")))?;
                // The API server's JSON patch (evanphx/json-patch) lets `test` with value null
                // pass on an absent path (kube's finalizer helper relies on it); the
                // json-patch crate does not, so such tests are checked here and dropped.
                let mut kept = Vec::with_capacity(ops.0.len());
                for op in ops.0 {
                    if let json_patch::PatchOperation::Test(t) = &op
                        && t.value.is_null()
                    {
                        let present = live.pointer(t.path.as_str()).filter(|v| !v.is_null());
                        if let Some(v) = present {
                            return Err(ApiError::new(
                                422,
                                format!(
                                    "the JSON patch failed: test at {} expected null, found {v}",
                                    t.path
                                ),
                            ));
                        }
                        continue;
                    }
                    kept.push(op);
                }
                let ops = json_patch::Patch(kept);
                let mut candidate = live.clone();
                json_patch::patch(&mut candidate, &ops)
                    .map_err(|e| ApiError::new(422, format!("the JSON patch failed: {e}")))?;
                candidate
            }
        };
        let Some(live) = live else {
            return Err(ApiError::not_found(coll, name));
        };
        check_candidate(coll, name, &live, &candidate)?;
        let new = prepare_update(&live, candidate, &coll.plural, opts.status_sub);
        Ok(self.commit(&key, new, opts.dry_run))
    }

    /// Server-side apply (see the module documentation for the simplified semantics).
    fn apply(
        &mut self,
        coll: &Coll,
        name: &str,
        mut config: Value,
        opts: &PatchOptions<'_>,
    ) -> Result<Value, ApiError> {
        let Some(manager) = opts.field_manager.filter(|m| !m.is_empty()) else {
            return Err(ApiError::new(
                400,
                "PATCH, fieldManager is required for apply requests".into(),
            ));
        };
        if !config.is_object()
            || config.get("apiVersion").and_then(Value::as_str).is_none()
            || config.get("kind").and_then(Value::as_str).is_none()
        {
            return Err(ApiError::new(
                400,
                "an apply configuration must be an object with apiVersion and kind".into(),
            ));
        }
        let Some(meta) = ensure_meta(&mut config) else {
            return Err(ApiError::new(400, "metadata must be an object".into()));
        };
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n != name => {
                return Err(ApiError::new(
                    400,
                    format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                meta.insert("name".into(), Value::String(name.to_owned()));
            }
        }
        let key = coll.key(name);
        let manager_key = (manager.to_owned(), opts.status_sub);
        let Some(entry) = self.objects.get(&key) else {
            if opts.status_sub {
                return Err(ApiError::not_found(coll, name));
            }
            let mut create_body = config.clone();
            if let Some(meta) = ensure_meta(&mut create_body) {
                meta.remove("resourceVersion");
            }
            let mode = if opts.dry_run {
                CreateMode::DryRun
            } else {
                CreateMode::Api
            };
            let created = self.create(coll, create_body, mode)?;
            if let Some(entry) = self.objects.get_mut(&key) {
                entry.applied.insert(manager_key, config);
            }
            return Ok(created);
        };
        let live = entry.obj.clone();
        let empty = Value::Object(Map::new());
        let previous = entry.applied.get(&manager_key).unwrap_or(&empty);
        let others: Vec<&Value> = entry
            .applied
            .iter()
            .filter(|(k, _)| **k != manager_key)
            .map(|(_, v)| v)
            .collect();
        let mut candidate = live.clone();
        prune_unapplied(&mut candidate, previous, &config, &others, &mut Vec::new());
        json_patch::merge(&mut candidate, &config);
        check_candidate(coll, name, &live, &candidate)?;
        let new = prepare_update(&live, candidate, &coll.plural, opts.status_sub);
        if !opts.dry_run
            && let Some(entry) = self.objects.get_mut(&key)
        {
            entry.applied.insert(manager_key, config);
        }
        Ok(self.commit(&key, new, opts.dry_run))
    }

    /// An API `DELETE` of one object.
    fn delete_api(
        &mut self,
        coll: &Coll,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = coll.key(name);
        let live = self
            .objects
            .get(&key)
            .map(|e| e.obj.clone())
            .ok_or_else(|| ApiError::not_found(coll, name))?;
        if let Some(uid) = &opts.precondition_uid
            && uid_of(&live) != Some(uid.as_str())
        {
            return Err(ApiError::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    coll.qualified(),
                    uid_of(&live).unwrap_or_default()
                ),
            )
            .with_details(coll, name));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv_of(&live) != Some(rv.as_str())
        {
            return Err(ApiError::conflict(coll, name));
        }
        Ok(self.delete(&key, opts.dry_run, opts.orphan).unwrap_or(live))
    }

    fn delete_collection(
        &mut self,
        coll: &Coll,
        query: &Query,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let selectors = Selectors::parse(query)?;
        let keys: Vec<ObjKey> = self
            .collection(coll, None)
            .filter(|(_, entry)| selectors.matches(&entry.obj))
            .map(|(key, _)| key.clone())
            .collect();
        let items: Vec<Value> = keys
            .iter()
            .filter_map(|key| self.delete(key, opts.dry_run, opts.orphan))
            .collect();
        Ok(json!({
            "apiVersion": coll.api_version,
            "kind": format!("{}List", self.kind_of(coll)),
            "metadata": { "resourceVersion": self.rv.to_string() },
            "items": items,
        }))
    }

    /// Deletes an object: marks it with `deletionTimestamp` when it has finalizers, removes it
    /// otherwise. Returns the resulting (or removed) object.
    fn delete(&mut self, key: &ObjKey, dry_run: bool, orphan: bool) -> Option<Value> {
        let live = self.objects.get(key)?.obj.clone();
        if finalizers(&live).is_empty() {
            if dry_run {
                return Some(live);
            }
            return self.remove_now(key, orphan);
        }
        if is_deleting(&live) {
            return Some(live);
        }
        let mut new = live;
        if let Some(meta) = ensure_meta(&mut new) {
            meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        Some(self.commit(key, new, dry_run))
    }

    /// Removes an object at once, emits `DELETED`, then garbage-collects its dependents.
    fn remove_now(&mut self, key: &ObjKey, orphan: bool) -> Option<Value> {
        let mut obj = self.objects.remove(key)?.obj;
        let rv = self.next_rv();
        if let Some(meta) = ensure_meta(&mut obj) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let uid = uid_of(&obj).map(str::to_owned);
        if let Some(uid) = &uid {
            self.uids.remove(uid);
        }
        self.emit(key, EventType::Deleted, obj.clone(), None);
        if let Some(uid) = uid {
            self.collect_garbage(&uid, orphan);
        }
        Some(obj)
    }

    /// Background cascading deletion of the dependents of a removed owner: a dependent that
    /// still has another existing owner (or every dependent, when `orphan`) only loses the
    /// reference; the others are deleted (honoring their finalizers).
    fn collect_garbage(&mut self, owner_uid: &str, orphan: bool) {
        let dependents: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, entry)| owner_uids(&entry.obj).any(|uid| uid == owner_uid))
            .map(|(key, _)| key.clone())
            .collect();
        for key in dependents {
            let Some(obj) = self.objects.get(&key).map(|e| e.obj.clone()) else {
                continue;
            };
            let other_owner_alive = owner_uids(&obj)
                .filter(|uid| *uid != owner_uid)
                .any(|uid| self.uids.contains_key(uid));
            if orphan || other_owner_alive {
                let mut new = obj;
                if let Some(meta) = ensure_meta(&mut new) {
                    let refs: Vec<Value> = meta
                        .get("ownerReferences")
                        .and_then(Value::as_array)
                        .map(|refs| {
                            refs.iter()
                                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    if refs.is_empty() {
                        meta.remove("ownerReferences");
                    } else {
                        meta.insert("ownerReferences".into(), Value::Array(refs));
                    }
                }
                self.commit(&key, new, false);
            } else {
                self.delete(&key, false, false);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Object helpers
// ---------------------------------------------------------------------------------------------

/// A Secret's write-only `stringData` merged into `data` (base64), as the API server stores
/// it: its values win over `data`'s for the same key, and `stringData` is never returned.
fn fold_string_data(plural: &str, obj: &mut Value) {
    use base64::Engine as _;
    if plural != "secrets" {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let data = o.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (key, value) in strings {
        if let (Some(value), Some(data)) = (value.as_str(), data.as_object_mut()) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            data.insert(key, Value::String(encoded));
        }
    }
}

fn has_status_subresource(plural: &str) -> bool {
    !KINDS_WITHOUT_STATUS.contains(&plural)
}

fn strip_status_if_subresource(obj: &mut Value, plural: &str) {
    if has_status_subresource(plural)
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
}

/// `obj.metadata` as a map, created when absent; `None` when `obj` is not an object.
fn ensure_meta(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

fn uid_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

fn rv_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

fn content_without_meta_and_status(obj: &Value) -> BTreeMap<&String, &Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "metadata" && *k != "status")
                .collect()
        })
        .unwrap_or_default()
}

/// Checks an update's candidate against the URL and the live object: an object, same name and
/// namespace, and `metadata.resourceVersion` (when set) equal to the live one.
fn check_candidate(
    coll: &Coll,
    name: &str,
    live: &Value,
    candidate: &Value,
) -> Result<(), ApiError> {
    if !candidate.is_object() {
        return Err(ApiError::new(
            400,
            "the object must be a JSON object".into(),
        ));
    }
    if let Some(n) = candidate.pointer("/metadata/name").and_then(Value::as_str)
        && n != name
    {
        return Err(ApiError::new(
            400,
            format!("the name of the object ({n}) does not match the name on the URL ({name})"),
        ));
    }
    if let (Some(ns), Some(body_ns)) = (
        &coll.namespace,
        candidate
            .pointer("/metadata/namespace")
            .and_then(Value::as_str),
    ) && !body_ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::new(
            400,
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    if let Some(rv) = candidate
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        && Some(rv) != rv_of(live)
    {
        return Err(ApiError::conflict(coll, name));
    }
    Ok(())
}

/// The object to store for an update of `live` with `candidate`: for the `status`
/// subresource, `live` with `candidate`'s status; otherwise `candidate` with `live`'s status
/// (for kinds with a status subresource). Server-managed metadata always comes from `live`.
fn prepare_update(live: &Value, candidate: Value, plural: &str, status_sub: bool) -> Value {
    let mut new = if status_sub {
        let mut new = live.clone();
        if let Some(map) = new.as_object_mut() {
            match candidate.get("status") {
                Some(status) if !status.is_null() => {
                    map.insert("status".into(), status.clone());
                }
                _ => {
                    map.remove("status");
                }
            }
        }
        new
    } else {
        let mut new = candidate;
        if let Some(map) = new.as_object_mut() {
            if has_status_subresource(plural) {
                match live.get("status") {
                    Some(status) => {
                        map.insert("status".into(), status.clone());
                    }
                    None => {
                        map.remove("status");
                    }
                }
            }
            for field in ["apiVersion", "kind"] {
                if !map.get(field).is_some_and(Value::is_string)
                    && let Some(value) = live.get(field)
                {
                    map.insert(field.into(), value.clone());
                }
            }
        }
        new
    };
    if let Some(meta) = ensure_meta(&mut new) {
        meta.remove("managedFields");
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match live.get("metadata").and_then(|m| m.get(field)) {
                Some(value) => {
                    meta.insert(field.into(), value.clone());
                }
                None => {
                    meta.remove(field);
                }
            }
        }
    }
    new
}

/// Removes from `live` the fields that `previous` (this manager's last applied configuration)
/// has and `config` (its new one) omits, unless another manager's configuration has them.
fn prune_unapplied(
    live: &mut Value,
    previous: &Value,
    config: &Value,
    others: &[&Value],
    path: &mut Vec<String>,
) {
    let (Some(live_map), Some(prev_map)) = (live.as_object_mut(), previous.as_object()) else {
        return;
    };
    let empty = Value::Object(Map::new());
    for (key, prev_value) in prev_map {
        path.push(key.clone());
        let new_value = config.get(key).filter(|v| !v.is_null());
        match (prev_value, new_value) {
            (Value::Object(_), Some(new_value)) if new_value.is_object() => {
                if let Some(live_value) = live_map.get_mut(key) {
                    prune_unapplied(live_value, prev_value, new_value, others, path);
                }
            }
            (Value::Object(_), None) => {
                if let Some(live_value) = live_map.get_mut(key) {
                    prune_unapplied(live_value, prev_value, &empty, others, path);
                }
                let now_empty = live_map
                    .get(key)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty);
                if now_empty && !others.iter().any(|o| has_path(o, path)) {
                    live_map.remove(key);
                }
            }
            (_, None) if !others.iter().any(|o| has_path(o, path)) => {
                live_map.remove(key);
            }
            _ => {}
        }
        path.pop();
    }
}

fn has_path(value: &Value, path: &[String]) -> bool {
    let mut current = value;
    for key in path {
        match current.get(key) {
            Some(next) if !next.is_null() => current = next,
            _ => return false,
        }
    }
    true
}

fn partial_metadata(obj: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn plural_of(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)).plural
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A UUID-shaped uid, unique in the process (the last 48 bits are a counter).
fn new_uid() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r = splitmix64(n);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        r >> 32,
        (r >> 16) & 0xffff,
        r & 0xfff,
        (r >> 20) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// Five characters from the alphabet the real server uses for `generateName`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = splitmix64(COUNTER.fetch_add(1, Ordering::Relaxed) ^ 0x5eed);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize];
            r /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

fn is_write_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// A request, its body read.
struct Incoming {
    method: Method,
    path: String,
    query: Query,
    content_type: Option<String>,
    meta_only: bool,
    body: Bytes,
}

/// A collection: API path prefix, plural and namespace (`None`: cluster-scoped or all
/// namespaces).
#[derive(Clone, Debug)]
struct Coll {
    /// `api/v1` or `apis/{group}/{version}`.
    prefix: String,
    /// `v1` or `{group}/{version}`, as in objects.
    api_version: String,
    group: String,
    plural: String,
    namespace: Option<String>,
}

impl Coll {
    fn new(api_version: &str, plural: &str, namespace: Option<&str>) -> Self {
        let api_version = api_version.trim_matches('/');
        let (prefix, group) = match api_version.split_once('/') {
            Some((group, _)) => (format!("apis/{api_version}"), group.to_owned()),
            None => (format!("api/{api_version}"), String::new()),
        };
        Self {
            prefix,
            api_version: api_version.to_owned(),
            group,
            plural: plural.to_owned(),
            namespace: namespace.map(str::to_owned),
        }
    }

    fn key(&self, name: &str) -> ObjKey {
        (
            self.prefix.clone(),
            self.plural.clone(),
            self.namespace.clone().unwrap_or_default(),
            name.to_owned(),
        )
    }

    /// `configmaps` or `statefulsets.apps`, as in the real server's messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

struct Route {
    coll: Coll,
    name: Option<String>,
    subresource: Option<String>,
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .collect();
        let (api_version, rest) = match segments.as_slice() {
            ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
            ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
            _ => return None,
        };
        if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
            return None;
        }
        let (namespace, rest) = match rest {
            ["namespaces", ns, plural, tail @ ..]
                if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
            {
                (Some(*ns), &rest[2..])
            }
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [plural] => (*plural, None, None),
            [plural, name] => (*plural, Some(*name), None),
            [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
            _ => return None,
        };
        Some(Self {
            coll: Coll::new(&api_version, plural, namespace),
            name: name.map(str::to_owned),
            subresource: subresource.map(str::to_owned),
        })
    }
}

#[derive(Default)]
struct Query {
    params: Vec<(String, String)>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Self {
            params: query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy)]
enum PatchKind {
    Apply,
    Merge,
    Json,
}

impl PatchKind {
    fn from_content_type(content_type: Option<&str>) -> Result<Self, ApiError> {
        let media = content_type
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        match media {
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                Ok(Self::Merge)
            }
            "application/json-patch+json" => Ok(Self::Json),
            other => Err(ApiError::new(
                415,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
            )),
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            format!(
                "the request body is not JSON (the fake accepts JSON only, also for apply): {e}"
            ),
        )
    })
}

struct DeleteOptions {
    dry_run: bool,
    orphan: bool,
    precondition_uid: Option<String>,
    precondition_rv: Option<String>,
}

impl DeleteOptions {
    fn parse(body: &[u8], dry_run_query: bool) -> Result<Self, ApiError> {
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            parse_json(body)?
        };
        let dry_run_body = body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|s| s == "All"));
        let precondition = |field: &str| {
            body.get("preconditions")
                .and_then(|p| p.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(Self {
            dry_run: dry_run_query || dry_run_body,
            orphan: body.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
                || body.get("orphanDependents").and_then(Value::as_bool) == Some(true),
            precondition_uid: precondition("uid"),
            precondition_rv: precondition("resourceVersion"),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------------------

enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn parse(term: &str) -> Result<Self, String> {
        let term = term.trim();
        let valid_key = |k: &str| !k.is_empty() && !k.contains(char::is_whitespace);
        if let Some(open) = term.find('(') {
            let mut words = term[..open].split_whitespace();
            let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!("invalid selector term {term:?}"));
            };
            let Some(inner) = term[open + 1..].trim_end().strip_suffix(')') else {
                return Err(format!("unclosed parenthesis in {term:?}"));
            };
            let values = inner
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            return match op {
                "in" => Ok(Self::In(key.to_owned(), values)),
                "notin" => Ok(Self::NotIn(key.to_owned(), values)),
                _ => Err(format!("unknown operator {op:?} in {term:?}")),
            };
        }
        let split = |op: &str| {
            term.split_once(op)
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        };
        let requirement = if let Some((k, v)) = split("!=") {
            Self::NotEquals(k, v)
        } else if let Some((k, v)) = split("==") {
            Self::Equals(k, v)
        } else if let Some((k, v)) = split("=") {
            Self::Equals(k, v)
        } else if let Some(k) = term.strip_prefix('!') {
            Self::NotExists(k.trim().to_owned())
        } else {
            Self::Exists(term.to_owned())
        };
        let key = match &requirement {
            Self::Equals(k, _)
            | Self::NotEquals(k, _)
            | Self::In(k, _)
            | Self::NotIn(k, _)
            | Self::Exists(k)
            | Self::NotExists(k) => k,
        };
        if valid_key(key) {
            Ok(requirement)
        } else {
            Err(format!("invalid selector term {term:?}"))
        }
    }

    fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Self::Equals(k, v) => value_of(k).as_deref() == Some(v),
            Self::NotEquals(k, v) => value_of(k).as_deref() != Some(v),
            Self::In(k, vs) => value_of(k).is_some_and(|x| vs.contains(&x)),
            Self::NotIn(k, vs) => value_of(k).is_none_or(|x| !vs.contains(&x)),
            Self::Exists(k) => value_of(k).is_some(),
            Self::NotExists(k) => value_of(k).is_none(),
        }
    }
}

/// The `labelSelector` and `fieldSelector` of a list or watch.
#[derive(Default)]
struct Selectors {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Selectors {
    fn parse(query: &Query) -> Result<Self, ApiError> {
        let parse_all = |selector: Option<&str>,
                         what: &str|
         -> Result<Vec<Requirement>, ApiError> {
            split_top_level(selector.unwrap_or_default())
                .into_iter()
                .filter(|t| !t.trim().is_empty())
                .map(|t| {
                    Requirement::parse(t).map_err(|e| {
                        ApiError::new(400, format!("unable to parse requirement in {what}: {e}"))
                    })
                })
                .collect()
        };
        let fields = parse_all(query.get("fieldSelector"), "fieldSelector")?;
        if fields
            .iter()
            .any(|f| !matches!(f, Requirement::Equals(..) | Requirement::NotEquals(..)))
        {
            return Err(ApiError::new(
                400,
                "field selectors support only =, == and !=".into(),
            ));
        }
        Ok(Self {
            labels: parse_all(query.get("labelSelector"), "labelSelector")?,
            fields,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |key: &str| {
            labels
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let field = |path: &str| {
            let mut current = obj;
            for part in path.split('.') {
                current = current.get(part)?;
            }
            Some(match current {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
        };
        self.labels.iter().all(|r| r.matches(label))
            && self
                .fields
                .iter()
                .all(|r| r.matches(|path| Some(field(path).unwrap_or_default())))
    }
}

/// Splits at the commas that are not inside parentheses.
fn split_top_level(selector: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    parts
}

// ---------------------------------------------------------------------------------------------
// Watches
// ---------------------------------------------------------------------------------------------

struct WatchFilter {
    coll: Coll,
    selectors: Selectors,
    meta_only: bool,
    kind: String,
}

impl WatchFilter {
    fn line(&self, event_type: &str, obj: &Value) -> Bytes {
        let object = if self.meta_only {
            partial_metadata(obj)
        } else {
            obj.clone()
        };
        to_line(&json!({ "type": event_type, "object": object }))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let (api_version, kind) = if self.meta_only {
            (
                "meta.k8s.io/v1".to_owned(),
                "PartialObjectMetadata".to_owned(),
            )
        } else {
            (self.coll.api_version.clone(), self.kind.clone())
        };
        let mut metadata = json!({ "resourceVersion": rv.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        to_line(&json!({
            "type": "BOOKMARK",
            "object": { "apiVersion": api_version, "kind": kind, "metadata": metadata },
        }))
    }

    /// The line this watch sees for `event`, if any; a `MODIFIED` object that starts or stops
    /// matching the selectors is seen as `ADDED` or `DELETED`.
    fn render(&self, event: &StoredEvent) -> Option<Bytes> {
        if event.prefix != self.coll.prefix
            || event.plural != self.coll.plural
            || self
                .coll
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != event.namespace)
        {
            return None;
        }
        let now = self.selectors.matches(&event.object);
        let event_type = match event.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => {
                let before = event
                    .previous
                    .as_ref()
                    .map_or(now, |p| self.selectors.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(self.line(event_type, &event.object))
    }
}

struct WatchStream {
    pending: VecDeque<Bytes>,
    rx: Option<broadcast::Receiver<Arc<StoredEvent>>>,
    deadline: tokio::time::Instant,
    filter: WatchFilter,
    bookmarks: bool,
    state: Arc<Mutex<State>>,
}

impl WatchStream {
    /// At the timeout: drains what was already sent, adds a closing bookmark when bookmarks
    /// were asked for, and ends.
    fn finish(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        // Events are sent under the lock: holding it, the channel has every event up to `rv`.
        let state = lock_state(&self.state);
        loop {
            match rx.try_recv() {
                Ok(event) => {
                    if let Some(line) = self.filter.render(&event) {
                        self.pending.push_back(line);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.pending.push_back(gone_line(state.rv, state.rv));
                    return;
                }
                Err(_) => break,
            }
        }
        if self.bookmarks {
            self.pending
                .push_back(self.filter.bookmark(state.rv, false));
        }
    }
}

fn gone_line(requested: u64, oldest: u64) -> Bytes {
    let status = status_body(&ApiError::new(
        410,
        format!("too old resource version: {requested} ({oldest})"),
    ));
    to_line(&json!({ "type": "ERROR", "object": status }))
}

fn to_line(value: &Value) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

// ---------------------------------------------------------------------------------------------
// Responses and errors
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, message: String) -> Self {
        Self {
            code,
            reason: reason_for(code),
            message,
            details: None,
        }
    }

    fn with_details(mut self, coll: &Coll, name: &str) -> Self {
        let mut details = json!({ "name": name, "kind": coll.plural });
        if !coll.group.is_empty() {
            details["group"] = Value::String(coll.group.clone());
        }
        self.details = Some(details);
        self
    }

    fn not_found(coll: &Coll, name: &str) -> Self {
        Self::new(404, format!("{} {name:?} not found", coll.qualified())).with_details(coll, name)
    }

    fn already_exists(coll: &Coll, name: &str) -> Self {
        let mut error = Self::new(409, format!("{} {name:?} already exists", coll.qualified()))
            .with_details(coll, name);
        error.reason = "AlreadyExists";
        error
    }

    fn conflict(coll: &Coll, name: &str) -> Self {
        Self::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                coll.qualified()
            ),
        )
        .with_details(coll, name)
    }
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        405,
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

/// The `reason` the real server gives with a status code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

fn status_body(error: &ApiError) -> Value {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    });
    if let Some(details) = &error.details {
        body["details"] = details.clone();
    }
    body
}

fn error_response(error: &ApiError) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &status_body(error))
}

fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
