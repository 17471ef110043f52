//! Snapshot recovery: from a location (`.../snapshots/recover`) and from an upload
//! (`.../snapshots/upload`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use reconcile_lib::qdrant::SnapshotPriority;

use super::FAKE_SNAPSHOTS_PATH;
use super::collections::{FakeCollection, collection_not_found, wrong_input};
use super::handle::FakeQdrant;
use super::model;
use super::multipart;
use super::server::{Answering, Failure, Shared, State, decode, reply, validated};
use super::shards::{FakeTransfer, bad_request, initial_placement, is_active};
use super::snapshot_file::{
    FakeSnapshot, Fetched, SnapshotHeader, SnapshotReader, fetch_http, from_stored, hashes_equal,
};
use super::snapshots::{
    check_url_recovery, finish, path_error, query_param, shard_not_found, shard_param, wait_param,
};

/// One successful snapshot recovery, as [`FakeQdrant::recoveries`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeRecovery {
    /// The peer that recovered (answered the request).
    pub peer_id: u64,
    /// The collection name of the request path (an alias is not resolved here).
    pub collection: String,
    /// The shard, for the shard routes.
    pub shard_id: Option<u32>,
    /// Where the snapshot came from: the request's `location`; for a collection upload, the
    /// `file://` URL of the saved upload that Qdrant recovers from
    /// (`file:///qdrant/snapshots/{c}/{file name}`); for a shard upload, `upload:{file name}`.
    pub location: String,
    /// The requested priority, if any.
    pub priority: Option<SnapshotPriority>,
    /// The checksum the request asked to verify, if any.
    pub checksum: Option<String>,
    /// Size of the snapshot in bytes.
    pub size: u64,
}

impl FakeQdrant {
    /// Qdrant's `service.enable_snapshot_url_recovery` (default `true`): when `false`,
    /// recovering from an `http(s)` location answers 403 `Forbidden: Snapshot recovery from
    /// remote URLs is disabled in the configuration`.
    pub fn set_snapshot_url_recovery(&self, enabled: bool) {
        self.shared.lock().snapshot_url_recovery = enabled;
    }

    /// Every successful recovery so far (recover and upload calls, collection and shard), in
    /// order.
    pub fn recoveries(&self) -> Vec<FakeRecovery> {
        self.shared.lock().recoveries.clone()
    }

    /// The locations of [`Self::recoveries`], in order.
    pub fn recovered_from(&self) -> Vec<String> {
        self.shared
            .lock()
            .recoveries
            .iter()
            .map(|r| r.location.clone())
            .collect()
    }
}

impl State {
    /// Applies a collection snapshot on peer `me` (`_do_recover_from_snapshot` in
    /// `lib/storage/src/content_manager/snapshots/recover.rs`): a missing collection is
    /// created from the snapshot's config and payload indexes; an existing one must have the
    /// same vectors and shard number; then each shard whose data the snapshot holds gets its
    /// points and a replica on `me`, the other replicas handled by `priority`.
    fn recover_collection(
        &mut self,
        name: &str,
        header: &SnapshotHeader,
        me: u64,
        priority: Option<SnapshotPriority>,
    ) -> Result<(), Failure> {
        let real = self
            .aliases
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned());
        let peers = self.peer_ids();
        let instantly = self.transfers_complete_instantly;
        if !self.collections.contains_key(&real) {
            let shards = initial_placement(&header.config, &peers);
            let payload_schema = header
                .payload_schema
                .iter()
                .map(|(field, info)| {
                    let mut info = info.clone();
                    if let Value::Object(map) = &mut info {
                        map.insert("points".to_owned(), json!(0));
                    }
                    (field.clone(), info)
                })
                .collect();
            self.collections.insert(
                real.clone(),
                FakeCollection {
                    config: header.config.clone(),
                    payload_schema,
                    shard_points: BTreeMap::new(),
                    unplaced_points: 0,
                    operation_id: 0,
                    shards,
                    transfers: Vec::new(),
                    points: super::points::no_points(),
                },
            );
        }
        let collection = self
            .collections
            .get_mut(&real)
            .ok_or_else(|| collection_not_found(&real))?;
        let (ours, theirs) = (&collection.config["params"], &header.config["params"]);
        if ours["vectors"] != theirs["vectors"] {
            return Err(wrong_input(format!(
                "Snapshot is not compatible with existing collection: Collection vectors: {} Snapshot Vectors: {}",
                ours["vectors"], theirs["vectors"]
            )));
        }
        if ours["shard_number"] != theirs["shard_number"] {
            return Err(wrong_input(format!(
                "Snapshot is not compatible with existing collection: Collection shard number: {} Snapshot shard number: {}",
                ours["shard_number"], theirs["shard_number"]
            )));
        }
        let replication_factor = ours["replication_factor"].as_u64().unwrap_or(1);
        let priority = priority.unwrap_or(SnapshotPriority::Snapshot);
        for (shard, points) in &header.shards {
            if collection.shards.contains_key(shard) {
                collection.shard_points.insert(*shard, *points);
                collection.restore_replica(
                    &real,
                    &peers,
                    *shard,
                    me,
                    priority,
                    Some(replication_factor),
                    instantly,
                );
            }
        }
        Ok(())
    }

    /// Applies a shard snapshot of `points` points to `shard` on peer `me`
    /// (`recover_shard_snapshot_impl` in `src/common/snapshots.rs`).
    fn recover_shard(
        &mut self,
        name: &str,
        shard: u32,
        points: u64,
        me: u64,
        priority: Option<SnapshotPriority>,
    ) -> Result<(), Failure> {
        let real = self.resolve(name)?;
        let peers = self.peer_ids();
        let instantly = self.transfers_complete_instantly;
        let collection = self.resolve_mut(&real)?;
        if !collection.shards.contains_key(&shard) {
            return Err(shard_not_found(shard));
        }
        collection.shard_points.insert(shard, points);
        let priority = priority.unwrap_or(SnapshotPriority::Snapshot);
        collection.restore_replica(&real, &peers, shard, me, priority, None, instantly);
        Ok(())
    }
}

impl FakeCollection {
    /// The replica states after `me` restored `shard`. `collection_rf` is the collection's
    /// replication factor for a collection recovery, `None` for a shard recovery: with other
    /// active replicas, `no_sync` activates `me` only; `snapshot` activates `me` and, for a
    /// collection, removes the replicas beyond the replication factor and marks the rest
    /// `Dead` (for a shard, marks them all `Dead`); `replica` starts a transfer from another
    /// active replica to `me` (collection) or marks `me` `Dead` (shard). Qdrant then re-syncs
    /// `Dead` replicas on its own; the fake leaves them `Dead`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one private helper of the recoveries"
    )]
    fn restore_replica(
        &mut self,
        name: &str,
        peers: &[u64],
        shard: u32,
        me: u64,
        priority: SnapshotPriority,
        collection_rf: Option<u64>,
        instantly: bool,
    ) {
        let Some(replicas) = self.shards.get_mut(&shard) else {
            return;
        };
        let others: Vec<u64> = replicas
            .iter()
            .filter(|(peer, state)| **peer != me && is_active(state))
            .map(|(peer, _)| *peer)
            .collect();
        if others.is_empty() || priority == SnapshotPriority::NoSync {
            replicas.insert(me, "Active");
            return;
        }
        match (priority, collection_rf) {
            (SnapshotPriority::Replica, Some(_)) => {
                replicas.insert(me, "ManualRecovery");
                let transfer = FakeTransfer {
                    shard_id: shard,
                    to_shard_id: None,
                    from: others[0],
                    to: me,
                    sync: true,
                    method: model::ShardTransferMethod::Snapshot,
                };
                if self.start_transfer(name, peers, transfer).is_ok() && instantly {
                    self.finish_transfer(&transfer);
                }
            }
            (SnapshotPriority::Replica, None) => {
                replicas.insert(me, "Dead");
            }
            (_, collection_rf) => {
                replicas.insert(me, "Active");
                let keep = collection_rf.map_or(usize::MAX, |rf| {
                    usize::try_from(rf.saturating_sub(1)).unwrap_or(usize::MAX)
                });
                let mut remove = others.len().saturating_sub(keep);
                for peer in others {
                    if remove > 0 {
                        remove -= 1;
                        let related: Vec<FakeTransfer> = self
                            .transfers
                            .iter()
                            .filter(|t| t.involves(peer, shard))
                            .copied()
                            .collect();
                        for transfer in &related {
                            self.abort_transfer(transfer);
                        }
                        if let Some(replicas) = self.shards.get_mut(&shard) {
                            replicas.remove(&peer);
                        }
                    } else if let Some(replicas) = self.shards.get_mut(&shard) {
                        replicas.insert(peer, "Dead");
                        // Qdrant then recovers the dead replica from an active one (the
                        // holder asks for a transfer): here from the restored replica.
                        let transfer = FakeTransfer {
                            shard_id: shard,
                            to_shard_id: None,
                            from: me,
                            to: peer,
                            sync: true,
                            method: model::ShardTransferMethod::Snapshot,
                        };
                        if self.start_transfer(name, peers, transfer).is_ok() && instantly {
                            self.finish_transfer(&transfer);
                        }
                    }
                }
            }
        }
    }
}

/// `PUT /collections/{c}/snapshots/recover` (`recover_from_snapshot` in
/// `src/actix/api/snapshot_api.rs`, `download_snapshot` in
/// `lib/storage/src/content_manager/snapshots/download.rs`).
pub(super) async fn recover_collection_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request = match decode::<model::SnapshotRecover>(&body)
        .and_then(|r| validated(r.validate()).map(|()| r))
    {
        Ok(request) => request,
        Err(failure) => return reply(Err(failure), started),
    };
    let me = answering.peer;
    let result = async {
        let url = &request.location.url;
        check_url_recovery(&shared, url)?;
        let need_checksum = request.checksum.is_some();
        let fetched = match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    bad_request("Invalid snapshot URI, file path must be absolute or on localhost")
                })?;
                let stored = shared.lock().stored_at_path(me, &path);
                match stored {
                    Some(snapshot) => from_stored(snapshot, need_checksum).await?,
                    None if path.exists() => {
                        return Err((
                            StatusCode::FORBIDDEN,
                            format!(
                                "Forbidden: Snapshot file path must be inside the snapshots directory {FAKE_SNAPSHOTS_PATH:?}"
                            ),
                        ));
                    }
                    None => {
                        return Err(bad_request(format!(
                            "Snapshot file {path:?} does not exist"
                        )));
                    }
                }
            }
            "http" | "https" => {
                fetch_http(url, request.api_key.as_deref(), need_checksum).await?
            }
            scheme => {
                return Err(bad_request(format!(
                    "URL {url} with scheme {scheme} is not supported"
                )));
            }
        };
        fetched.verify(request.checksum.as_deref())?;
        let header = fetched.collection_header()?;
        let mut state = shared.lock();
        state.recover_collection(&name, &header, me, request.priority)?;
        state.recoveries.push(FakeRecovery {
            peer_id: me,
            collection: name.clone(),
            shard_id: None,
            location: request.location.raw.clone(),
            priority: request.priority,
            checksum: request.checksum.clone(),
            size: fetched.size,
        });
        Ok(json!(true))
    }
    .await;
    finish(result, wait_param(query.as_deref()), started)
}

/// `PUT /collections/{c}/shards/{s}/snapshots/recover` (`recover_shard_snapshot` in
/// `src/actix/api/snapshot_api.rs` and `src/common/snapshots.rs`).
pub(super) async fn recover_shard_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path((name, shard)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let shard = match shard_param(&shard) {
        Ok(shard) => shard,
        Err(failure) => return path_error(failure),
    };
    let request = match decode::<model::ShardSnapshotRecover>(&body)
        .and_then(|r| validated(r.validate()).map(|()| r))
    {
        Ok(request) => request,
        Err(failure) => return reply(Err(failure), started),
    };
    let me = answering.peer;
    let result = async {
        if let model::ShardSnapshotLocation::Url(url) = &request.location {
            check_url_recovery(&shared, &url.url)?;
        }
        {
            let state = shared.lock();
            let (_, collection) = state.collection_of(&name)?;
            if !collection.shards.contains_key(&shard) {
                return Err(shard_not_found(shard));
            }
        }
        let (fetched, location) = match &request.location {
            model::ShardSnapshotLocation::Url(url) => {
                if !matches!(url.url.scheme(), "http" | "https") {
                    return Err(wrong_input(format!(
                        "Invalid snapshot URL {}: URLs with {} scheme are not supported",
                        url.url,
                        url.url.scheme()
                    )));
                }
                let hash = request.checksum.is_some();
                let fetched = fetch_http(&url.url, request.api_key.as_deref(), hash).await?;
                (fetched, url.raw.clone())
            }
            model::ShardSnapshotLocation::Path(file) => {
                let snapshot = shared
                    .lock()
                    .stored_shard_snapshot(me, &name, shard, file)?;
                let fetched = from_stored(snapshot, request.checksum.is_some()).await?;
                (fetched, file.clone())
            }
        };
        fetched.verify(request.checksum.as_deref())?;
        let points = fetched.shard_points()?;
        let mut state = shared.lock();
        state.recover_shard(&name, shard, points, me, request.priority)?;
        state.recoveries.push(FakeRecovery {
            peer_id: me,
            collection: name.clone(),
            shard_id: Some(shard),
            location,
            priority: request.priority,
            checksum: request.checksum.clone(),
            size: fetched.size,
        });
        Ok(json!(true))
    }
    .await;
    finish(result, wait_param(query.as_deref()), started)
}

/// What an upload carried: the file name of its `snapshot` part and what was read of it.
struct Upload {
    file_name: Option<String>,
    fetched: Fetched,
}

/// Streams a `multipart/form-data` body, hashing the `snapshot` part and keeping only its
/// first line. Errors are actix-multipart's plain-text messages (400).
async fn receive_upload(headers: &HeaderMap, body: Body, hash: bool) -> Result<Upload, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or("No Content-Type header found")?;
    let boundary = multipart::boundary(content_type)
        .ok_or("Could not find boundary in Content-Type header")?;
    let mut parser = multipart::Parser::new(&boundary, "snapshot");
    let mut reader = SnapshotReader::new(hash);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("Multipart stream is incomplete: {e}"))?;
        parser.feed(&chunk, &mut |data| reader.feed(data))?;
    }
    let file_name = parser.finish()?;
    Ok(Upload {
        file_name,
        fetched: reader.finish(),
    })
}

/// The query of the upload routes (`SnapshotUploadingParam`).
struct UploadParams {
    wait: bool,
    priority: Option<SnapshotPriority>,
    checksum: Option<String>,
}

impl UploadParams {
    /// Decodes the query; the error is actix's plain-text `Query deserialize error: ...`.
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let wait = match query_param(query, "wait").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(_) => {
                return Err(
                    "Query deserialize error: provided string was not `true` or `false`".to_owned(),
                );
            }
        };
        let priority = query_param(query, "priority")
            .map(|p| serde_json::from_value::<SnapshotPriority>(Value::String(p)))
            .transpose()
            .map_err(|e| format!("Query deserialize error: {e}"))?;
        Ok(Self {
            wait,
            priority,
            checksum: query_param(query, "checksum"),
        })
    }
}

pub(super) fn text_owned(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// `POST /collections/{c}/snapshots/upload` (`upload_snapshot` and `do_save_uploaded_snapshot`
/// in `src/actix/api/snapshot_api.rs`): the checksum is checked, the file is kept in the
/// collection's snapshot directory under the part's file name, and recovered from there.
pub(super) async fn upload_collection_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    // The body is read before the query is judged (actix's extractor order), and hashed only
    // when a checksum is asked for.
    let params = UploadParams::parse(query.as_deref());
    let hash = params.as_ref().is_ok_and(|p| p.checksum.is_some());
    let upload = match receive_upload(&headers, body, hash).await {
        Ok(upload) => upload,
        Err(message) => return text_owned(StatusCode::BAD_REQUEST, message),
    };
    let params = match params {
        Ok(params) => params,
        Err(message) => return text_owned(StatusCode::BAD_REQUEST, message),
    };
    let me = answering.peer;
    let result = (|| -> Result<Value, Failure> {
        let fetched = &upload.fetched;
        let actual = fetched.checksum.clone().unwrap_or_default();
        if let Some(given) = &params.checksum
            && !hashes_equal(&actual, given)
        {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("Checksum mismatch: expected {actual}, actual {given}"),
            ));
        }
        let mut state = shared.lock();
        let file = upload
            .file_name
            .as_deref()
            .and_then(|f| std::path::Path::new(f).file_name())
            .and_then(|f| f.to_str())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                state.uploads += 1;
                format!("fake-upload-{}", state.uploads)
            });
        let header = fetched.header.clone().map(Bytes::from).unwrap_or_default();
        let snapshot = FakeSnapshot {
            header,
            size: fetched.size,
            checksum: None,
            creation_time: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S")
                .to_string(),
        };
        state
            .snapshots
            .entry((me, name.clone(), None))
            .or_default()
            .insert(file.clone(), snapshot);
        let header = fetched.collection_header()?;
        state.recover_collection(&name, &header, me, params.priority)?;
        state.recoveries.push(FakeRecovery {
            peer_id: me,
            collection: name.clone(),
            shard_id: None,
            location: format!("file://{FAKE_SNAPSHOTS_PATH}/{name}/{file}"),
            priority: params.priority,
            checksum: params.checksum.clone(),
            size: fetched.size,
        });
        Ok(json!(true))
    })();
    finish(result, params.wait, started)
}

/// `POST /collections/{c}/shards/{s}/snapshots/upload` (`upload_shard_snapshot` in
/// `src/actix/api/snapshot_api.rs`): checksum, collection and shard checked, then restored
/// into the replica on this peer; answers `result: null`.
pub(super) async fn upload_shard_snapshot(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path((name, shard)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let shard = match shard_param(&shard) {
        Ok(shard) => shard,
        Err(failure) => return path_error(failure),
    };
    // The body is read before the query is judged (actix's extractor order), and hashed only
    // when a checksum is asked for.
    let params = UploadParams::parse(query.as_deref());
    let hash = params.as_ref().is_ok_and(|p| p.checksum.is_some());
    let upload = match receive_upload(&headers, body, hash).await {
        Ok(upload) => upload,
        Err(message) => return text_owned(StatusCode::BAD_REQUEST, message),
    };
    let params = match params {
        Ok(params) => params,
        Err(message) => return text_owned(StatusCode::BAD_REQUEST, message),
    };
    let me = answering.peer;
    let result = (|| -> Result<Value, Failure> {
        let fetched = &upload.fetched;
        let actual = fetched.checksum.clone().unwrap_or_default();
        if let Some(given) = &params.checksum
            && !hashes_equal(&actual, given)
        {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("Checksum mismatch: expected {actual}, actual {given}"),
            ));
        }
        let mut state = shared.lock();
        {
            let (_, collection) = state.collection_of(&name)?;
            if !collection.shards.contains_key(&shard) {
                return Err(shard_not_found(shard));
            }
        }
        let points = fetched.shard_points()?;
        state.recover_shard(&name, shard, points, me, params.priority)?;
        state.recoveries.push(FakeRecovery {
            peer_id: me,
            collection: name.clone(),
            shard_id: Some(shard),
            location: format!("upload:{}", upload.file_name.clone().unwrap_or_default()),
            priority: params.priority,
            checksum: params.checksum.clone(),
            size: fetched.size,
        });
        Ok(Value::Null)
    })();
    finish(result, params.wait, started)
}
