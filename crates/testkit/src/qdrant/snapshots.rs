//! Snapshots: create, list, download, delete (collection and shard), and the helpers recovery
//! shares.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, RawQuery, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use url::Url;

use super::FAKE_SNAPSHOTS_PATH;
use super::collections::{FakeCollection, collection_not_found, wrong_input};
use super::handle::FakeQdrant;
use super::recovery::{
    recover_collection_snapshot, recover_shard_snapshot, upload_collection_snapshot,
    upload_shard_snapshot,
};
use super::server::{Answering, Failure, Shared, State, error, json_response, reply};
use super::snapshot_file::{
    FakeSnapshot, SNAPSHOT_FORMAT, SnapshotDir, SnapshotHeader, content_stream, snapshot_checksum,
};

impl FakeQdrant {
    /// Padding bytes after the header line of the snapshots created from now on (default
    /// [`DEFAULT_SNAPSHOT_PADDING`](super::DEFAULT_SNAPSHOT_PADDING)). They are generated on the
    /// fly, never stored: a snapshot of 2 GiB costs no memory, only the time to checksum it once at
    /// creation (SHA-256 of an unoptimised `sha2`, as in a dev-profile test, runs at about 10
    /// MB/s).
    pub fn set_snapshot_padding(&self, bytes: u64) {
        self.shared.lock().snapshot_padding = bytes;
    }

    /// The next snapshot download from this listener sends its headers with the full
    /// `Content-Length`, then `bytes` bytes of the body (use fewer than the snapshot's size),
    /// then breaks the connection (the body ends with an error).
    pub fn fail_download_after(&self, bytes: u64) {
        self.shared
            .lock()
            .download_faults
            .push((self.listener, bytes));
    }

    /// Names of the snapshots peer `peer_id` stores for collection `collection` (`shard`
    /// `None`) or for one of its shards, sorted; uploaded files are included.
    pub fn snapshot_names(
        &self,
        peer_id: u64,
        collection: &str,
        shard: Option<u32>,
    ) -> Vec<String> {
        self.shared
            .lock()
            .snapshots
            .get(&(peer_id, collection.to_owned(), shard))
            .map(|dir| dir.keys().cloned().collect())
            .unwrap_or_default()
    }
}

pub(super) fn internal(message: impl std::fmt::Display) -> Failure {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("Service internal error: {message}"),
    )
}

pub(super) fn shard_not_found(shard: u32) -> Failure {
    (
        StatusCode::NOT_FOUND,
        format!("Not found: shard {shard} not found"),
    )
}

fn snapshot_not_found(name: &str) -> Failure {
    (
        StatusCode::NOT_FOUND,
        format!("Not found: Snapshot {name} not found"),
    )
}

/// 404 for a missing shard snapshot file, naming its path as Qdrant does (`{:?}` of the path
/// under the stock `./snapshots`).
fn shard_snapshot_file_missing(collection: &str, shard: u32, name: &str) -> Failure {
    let path = format!("./snapshots/{collection}/shards/{shard}/{name}");
    (
        StatusCode::NOT_FOUND,
        format!("Not found: Snapshot {path:?} not found"),
    )
}

/// True when `name` is a bare file name (no directory part), as Qdrant requires of a shard
/// snapshot name.
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && std::path::Path::new(name).file_name() == Some(std::ffi::OsStr::new(name))
}

/// A plain-text error (actix's default error response, used by the download routes).
pub(super) fn text_error((status, message): Failure) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// `202 Accepted`: `{"status": "accepted", "time"}` (`wait=false`).
fn accepted(started: Instant) -> Response {
    json_response(
        StatusCode::ACCEPTED,
        &json!({"status": "accepted", "time": started.elapsed().as_secs_f64()}),
    )
}

/// Qdrant's `time_or_accept`: the result with `wait=true`, `202 Accepted` otherwise (the fake
/// does the work before answering either way; Qdrant only logs a failure it accepted).
pub(super) fn finish(result: Result<Value, Failure>, wait: bool, started: Instant) -> Response {
    if wait {
        reply(result, started)
    } else {
        accepted(started)
    }
}

/// The query's `key` parameter, decoded.
pub(super) fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `wait` (default `true`).
pub(super) fn wait_param(query: Option<&str>) -> bool {
    query_param(query, "wait").is_none_or(|w| w != "false")
}

/// `Forbidden` when `url` is remote and recovery from URLs is disabled.
pub(super) fn check_url_recovery(shared: &Shared, url: &Url) -> Result<(), Failure> {
    if matches!(url.scheme(), "http" | "https") && !shared.lock().snapshot_url_recovery {
        return Err((
            StatusCode::FORBIDDEN,
            "Forbidden: Snapshot recovery from remote URLs is disabled in the configuration"
                .to_owned(),
        ));
    }
    Ok(())
}

impl State {
    /// The collection `name` refers to (alias resolved), with its real name.
    pub(super) fn collection_of(&self, name: &str) -> Result<(String, &FakeCollection), Failure> {
        let real = self.resolve(name)?;
        let collection = self
            .collections
            .get(&real)
            .ok_or_else(|| collection_not_found(&real))?;
        Ok((real, collection))
    }

    /// The stored collection snapshot `file` of `real` on peer `me`, with
    /// `SnapshotStorageLocalFS::get_snapshot_path`'s errors: no snapshot directory yet (Qdrant
    /// creates it with the first snapshot of the collection on that peer) or no such file.
    fn collection_snapshot(
        &self,
        me: u64,
        real: &str,
        file: &str,
    ) -> Result<FakeSnapshot, Failure> {
        let start = (me, real.to_owned(), None);
        let has_dir = self
            .snapshots
            .range(start..)
            .next()
            .is_some_and(|((peer, collection, _), _)| *peer == me && collection == real);
        if !has_dir {
            return Err((
                StatusCode::NOT_FOUND,
                format!("Not found: Snapshot directory: ./snapshots/{real} not found"),
            ));
        }
        self.snapshots
            .get(&(me, real.to_owned(), None))
            .and_then(|dir| dir.get(file))
            .cloned()
            .ok_or_else(|| snapshot_not_found(file))
    }

    /// The next download fault of `listener`, if any.
    fn take_download_fault(&mut self, listener: usize) -> Option<u64> {
        let index = self
            .download_faults
            .iter()
            .position(|(l, _)| *l == listener)?;
        Some(self.download_faults.remove(index).1)
    }

    /// The stored shard snapshot `file` of `shard` on peer `me`, with the checks of
    /// `ShardHolder::get_shard_snapshot_path` (a local replica, a bare file name) and
    /// `get_snapshot_file` (the file exists).
    pub(super) fn stored_shard_snapshot(
        &self,
        me: u64,
        name: &str,
        shard: u32,
        file: &str,
    ) -> Result<FakeSnapshot, Failure> {
        let (real, collection) = self.collection_of(name)?;
        let Some(replicas) = collection.shards.get(&shard) else {
            return Err(shard_not_found(shard));
        };
        if !replicas.contains_key(&me) {
            return Err(wrong_input(format!(
                "Shard {shard} is not a local or queue proxy shard"
            )));
        }
        if !is_file_name(file) {
            return Err(snapshot_not_found(file));
        }
        self.snapshots
            .get(&(me, real.clone(), Some(shard)))
            .and_then(|dir| dir.get(file))
            .cloned()
            .ok_or_else(|| shard_snapshot_file_missing(&real, shard, file))
    }

    /// The stored snapshot a `file://` path names on peer `me`:
    /// `{FAKE_SNAPSHOTS_PATH}/{collection}/{file}` or `.../{collection}/shards/{s}/{file}`.
    pub(super) fn stored_at_path(&self, me: u64, path: &std::path::Path) -> Option<FakeSnapshot> {
        let rest = path.strip_prefix(FAKE_SNAPSHOTS_PATH).ok()?;
        let parts: Vec<&str> = rest
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<_>>()?;
        let (dir, file) = match parts.as_slice() {
            [collection, file] => ((me, (*collection).to_owned(), None), *file),
            [collection, "shards", shard, file] => (
                (me, (*collection).to_owned(), Some(shard.parse().ok()?)),
                *file,
            ),
            _ => return None,
        };
        self.snapshots.get(&dir)?.get(file).cloned()
    }
}

pub(super) fn snapshot_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/collections/{name}/snapshots",
            get(list_collection_snapshots).post(create_collection_snapshot),
        )
        // Static before `{snapshot}`: the other methods reach the snapshot of that name, as
        // in Qdrant (actix tries each method-guarded route in turn).
        .route(
            "/collections/{name}/snapshots/upload",
            post(upload_collection_snapshot)
                .get(
                    |s: AxumState<Arc<Shared>>,
                     a: Extension<Answering>,
                     Path(name): Path<String>| {
                        get_collection_snapshot(s, a, Path((name, "upload".to_owned())))
                    },
                )
                .delete(
                    |s: AxumState<Arc<Shared>>,
                     a: Extension<Answering>,
                     Path(name): Path<String>,
                     q: RawQuery| {
                        delete_collection_snapshot(s, a, Path((name, "upload".to_owned())), q)
                    },
                ),
        )
        .route(
            "/collections/{name}/snapshots/recover",
            put(recover_collection_snapshot)
                .get(
                    |s: AxumState<Arc<Shared>>,
                     a: Extension<Answering>,
                     Path(name): Path<String>| {
                        get_collection_snapshot(s, a, Path((name, "recover".to_owned())))
                    },
                )
                .delete(
                    |s: AxumState<Arc<Shared>>,
                     a: Extension<Answering>,
                     Path(name): Path<String>,
                     q: RawQuery| {
                        delete_collection_snapshot(s, a, Path((name, "recover".to_owned())), q)
                    },
                ),
        )
        .route(
            "/collections/{name}/snapshots/{snapshot}",
            get(get_collection_snapshot).delete(delete_collection_snapshot),
        )
        .route(
            "/collections/{name}/shards/{shard}/snapshots",
            get(list_shard_snapshots).post(create_shard_snapshot),
        )
        .route(
            "/collections/{name}/shards/{shard}/snapshots/upload",
            post(upload_shard_snapshot)
                .get(
                    |s: AxumState<Arc<Shared>>,
                     a: Extension<Answering>,
                     Path((name, shard)): Path<(String, String)>| {
                        get_shard_snapshot(s, a, Path((name, shard, "upload".to_owned())))
                    },
                )
                .delete(
                    |s: AxumState<Arc<Shared>>,
                     a: Extension<Answering>,
                     Path((name, shard)): Path<(String, String)>,
                     q: RawQuery| {
                        delete_shard_snapshot(s, a, Path((name, shard, "upload".to_owned())), q)
                    },
                ),
        )
        .route(
            "/collections/{name}/shards/{shard}/snapshots/recover",
            put(recover_shard_snapshot)
                .get(
                    |s: AxumState<Arc<Shared>>,
                     a: Extension<Answering>,
                     Path((name, shard)): Path<(String, String)>| {
                        get_shard_snapshot(s, a, Path((name, shard, "recover".to_owned())))
                    },
                )
                .delete(
                    |s: AxumState<Arc<Shared>>,
                     a: Extension<Answering>,
                     Path((name, shard)): Path<(String, String)>,
                     q: RawQuery| {
                        delete_shard_snapshot(s, a, Path((name, shard, "recover".to_owned())), q)
                    },
                ),
        )
        .route(
            "/collections/{name}/shards/{shard}/snapshots/{snapshot}",
            get(get_shard_snapshot).delete(delete_shard_snapshot),
        )
}

/// Creates a snapshot on peer `me` of collection `name`, or of one of its shards
/// (`Collection::create_snapshot`, `ShardHolder::create_shard_snapshot`), checksummed in one
/// streaming pass off the runtime.
async fn create_snapshot(
    shared: &Shared,
    me: u64,
    name: &str,
    shard: Option<u32>,
) -> Result<Value, Failure> {
    let (dir, file, header, created, padding) = {
        let state = shared.lock();
        let (real, collection) = state.collection_of(name)?;
        if let Some(shard) = shard {
            let Some(replicas) = collection.shards.get(&shard) else {
                return Err(shard_not_found(shard));
            };
            if !replicas.contains_key(&me) {
                return Err(wrong_input(format!(
                    "Shard {shard} is not a local or queue proxy shard"
                )));
            }
        }
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y-%m-%d-%H-%M-%S").to_string();
        let created = now.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        let file = match shard {
            None => format!("{real}-{me}-{stamp}.snapshot"),
            Some(shard) => format!("{real}-shard-{shard}-{stamp}.snapshot"),
        };
        let shards = collection
            .shards
            .iter()
            .filter(|(id, replicas)| match shard {
                None => replicas.contains_key(&me),
                Some(shard) => **id == shard,
            })
            .map(|(id, _)| (*id, collection.points_of(*id)))
            .collect();
        let header = SnapshotHeader {
            fake_qdrant_snapshot: SNAPSHOT_FORMAT,
            name: file.clone(),
            collection: real.clone(),
            peer_id: me,
            shard_id: shard,
            created_at: created.clone(),
            config: collection.config.clone(),
            payload_schema: collection.payload_schema.clone(),
            shards,
        };
        let mut line = serde_json::to_vec(&header)
            .map_err(|e| internal(format!("json (de)serialization error: {e}")))?;
        line.push(b'\n');
        let padding = state.snapshot_padding;
        ((me, real, shard), file, Bytes::from(line), created, padding)
    };
    let hashed = header.clone();
    let checksum = tokio::task::spawn_blocking(move || snapshot_checksum(&hashed, padding))
        .await
        .map_err(|e| internal(format!("Tokio task join error: {e}")))?;
    let snapshot = FakeSnapshot {
        size: u64::try_from(header.len()).unwrap_or(u64::MAX) + padding,
        header,
        checksum: Some(checksum),
        creation_time: created,
    };
    let description = snapshot.description(&file);
    shared
        .lock()
        .snapshots
        .entry(dir)
        .or_default()
        .insert(file, snapshot);
    Ok(description)
}

/// The shard id of a path, or Qdrant's refusal of one that is not a `u32`: 400 `Deserialize
/// error in path parameters: can not parse "{shard}" to a u32` (answer it with
/// [`path_error`]).
pub(super) fn shard_param(shard: &str) -> Result<u32, Failure> {
    shard.parse().map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("Deserialize error in path parameters: can not parse {shard:?} to a u32"),
        )
    })
}

/// The JSON error reply to a path that does not deserialize.
pub(super) fn path_error((status, message): Failure) -> Response {
    error(status, &message, Instant::now())
}

async fn create_collection_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let result = create_snapshot(&shared, answering.peer, &name, None).await;
    finish(result, wait_param(query.as_deref()), started)
}

async fn create_shard_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path((name, shard)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let shard = match shard_param(&shard) {
        Ok(shard) => shard,
        Err(failure) => return path_error(failure),
    };
    let result = create_snapshot(&shared, answering.peer, &name, Some(shard)).await;
    finish(result, wait_param(query.as_deref()), started)
}

/// The snapshots of a directory as Qdrant lists them: files ending in `.snapshot` (the fake
/// sorts them by name; Qdrant lists them in directory order).
fn listing(state: &State, dir: &SnapshotDir) -> Value {
    let list: Vec<Value> = state
        .snapshots
        .get(dir)
        .map(|files| {
            files
                .iter()
                .filter(|(name, _)| name.ends_with(".snapshot"))
                .map(|(name, snapshot)| snapshot.description(name))
                .collect()
        })
        .unwrap_or_default();
    Value::Array(list)
}

async fn list_collection_snapshots(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let result = state
        .collection_of(&name)
        .map(|(real, _)| listing(&state, &(answering.peer, real, None)));
    reply(result, started)
}

async fn list_shard_snapshots(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path((name, shard)): Path<(String, String)>,
) -> Response {
    let started = Instant::now();
    let shard = match shard_param(&shard) {
        Ok(shard) => shard,
        Err(failure) => return path_error(failure),
    };
    let state = shared.lock();
    let result = state.collection_of(&name).and_then(|(real, collection)| {
        let Some(replicas) = collection.shards.get(&shard) else {
            return Err(shard_not_found(shard));
        };
        if !replicas.contains_key(&answering.peer) {
            return Err(wrong_input(format!("Shard {shard} is not a local shard")));
        }
        Ok(listing(&state, &(answering.peer, real, Some(shard))))
    });
    reply(result, started)
}

/// Streams a stored snapshot: `200`, `application/octet-stream`, `Content-Length`,
/// `Content-Disposition: attachment`, the body generated chunk by chunk (and broken off when
/// a download fault is pending for the listener).
fn stream_snapshot(file: &str, snapshot: &FakeSnapshot, break_after: Option<u64>) -> Response {
    let body = Body::from_stream(content_stream(
        snapshot.header.clone(),
        snapshot.padding(),
        break_after,
    ));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from(snapshot.size),
    );
    if let Ok(value) = header::HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /collections/{c}/snapshots/{s}` (`do_get_snapshot` in
/// `src/actix/api/snapshot_api.rs`): errors in plain text.
async fn get_collection_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path((name, file)): Path<(String, String)>,
) -> Response {
    let mut state = shared.lock();
    let found = state
        .collection_of(&name)
        .and_then(|(real, _)| state.collection_snapshot(answering.peer, &real, &file));
    match found {
        Ok(snapshot) => {
            let fault = state.take_download_fault(answering.listener);
            stream_snapshot(&file, &snapshot, fault)
        }
        Err(failure) => text_error(failure),
    }
}

/// `GET /collections/{c}/shards/{s}/snapshots/{name}` (`download_shard_snapshot` in
/// `src/actix/api/snapshot_api.rs`): errors in plain text; a missing file is actix-files'
/// `File not found: ...`.
async fn get_shard_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path((name, shard, file)): Path<(String, String, String)>,
) -> Response {
    let shard = match shard_param(&shard) {
        Ok(shard) => shard,
        Err(failure) => return path_error(failure),
    };
    let mut state = shared.lock();
    let found = state
        .stored_shard_snapshot(answering.peer, &name, shard, &file)
        .map_err(|(status, message)| {
            if status == StatusCode::NOT_FOUND && message.starts_with("Not found: Snapshot \"") {
                (
                    StatusCode::NOT_FOUND,
                    "File not found: No such file or directory (os error 2)".to_owned(),
                )
            } else {
                (status, message)
            }
        });
    match found {
        Ok(snapshot) => {
            let fault = state.take_download_fault(answering.listener);
            stream_snapshot(&file, &snapshot, fault)
        }
        Err(failure) => text_error(failure),
    }
}

/// `DELETE /collections/{c}/snapshots/{s}` (`do_delete_collection_snapshot` in
/// `lib/storage/src/content_manager/snapshots/mod.rs`).
async fn delete_collection_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path((name, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let mut guard = shared.lock();
    let state = &mut *guard;
    let result = state.resolve(&name).and_then(|real| {
        state.collection_snapshot(answering.peer, &real, &file)?;
        state
            .snapshots
            .get_mut(&(answering.peer, real, None))
            .and_then(|dir| dir.remove(&file));
        Ok(json!(true))
    });
    finish(result, wait_param(query.as_deref()), started)
}

/// `DELETE /collections/{c}/shards/{s}/snapshots/{name}` (`delete_shard_snapshot` in
/// `src/common/snapshots.rs`).
async fn delete_shard_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path((name, shard, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let shard = match shard_param(&shard) {
        Ok(shard) => shard,
        Err(failure) => return path_error(failure),
    };
    let mut state = shared.lock();
    let result = state
        .stored_shard_snapshot(answering.peer, &name, shard, &file)
        .and_then(|_| {
            let real = state.resolve(&name)?;
            state
                .snapshots
                .get_mut(&(answering.peer, real, Some(shard)))
                .and_then(|dir| dir.remove(&file));
            Ok(json!(true))
        });
    finish(result, wait_param(query.as_deref()), started)
}
