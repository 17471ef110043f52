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
//!
//! # Layout
//!
//! This file holds the public API ([`FakeApiServer`] and its helpers); `dispatch` routes each
//! request, `state` holds the objects and performs every write, `objects` has the helpers on
//! stored objects, `request` parses paths, queries and bodies, `selectors` label and field
//! selectors, `watch` the watch streams, `response` the `Status` errors.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Body as HttpBody;
use serde_json::Value;

mod dispatch;
mod objects;
mod request;
mod response;
mod selectors;
mod state;
mod watch;

use objects::plural_of;
use request::{Coll, is_write_method};
use state::{CreateMode, State};

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

    /// Serves discovery for `group_version` (e.g. `snapshot.storage.k8s.io/v1`): `GET
    /// /apis/{group_version}` answers an `APIResourceList` of `resources`, each `(plural,
    /// kind, namespaced)`, as an API server does once the group's CRDs are installed. Without
    /// it that path answers 404, as for a group nobody installed. (Objects of any group are
    /// stored and served either way: the fake has no schemas.)
    pub fn serve_api_group(&self, group_version: &str, resources: &[(&str, &str, bool)]) {
        let resources: Vec<Value> = resources
            .iter()
            .map(|(plural, kind, namespaced)| {
                serde_json::json!({"name": plural, "singularName": "", "kind": kind,
                    "namespaced": namespaced,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            })
            .collect();
        let list = serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": group_version, "resources": resources});
        self.lock().discovery.insert(group_version.to_owned(), list);
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
