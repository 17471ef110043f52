//! Cluster mode and consensus: `GET /cluster`, peer removal, joining peers, cluster metadata.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{delete, get};
use serde_json::{Value, json};
use url::Url;

use reconcile_lib::qdrant::RaftRole;

use super::handle::FakeQdrant;
use super::options::ClusterState;
use super::recovery::text_owned;
use super::server::{Answering, Failure, Shared, State, error, ok, reply};
use super::shards::bad_request;
use super::snapshots::text_error;

impl FakeQdrant {
    /// Switches to cluster mode with this state. Collections keep their shard placement.
    pub fn set_cluster(&self, cluster: ClusterState) {
        let mut state = self.shared.lock();
        state.standalone_peer_id = cluster.peer_id;
        state.cluster = Some(cluster);
    }

    /// Replaces the cluster's peers, (peer id, p2p URI), keeping the rest of the cluster state
    /// (the answering peer included); outside cluster mode, switches to it with
    /// [`ClusterState::default`]'s other settings. New collections are placed on these peers;
    /// existing placements do not change.
    pub fn set_peers(&self, peers: Vec<(u64, String)>) {
        let mut state = self.shared.lock();
        let standalone = state.standalone_peer_id;
        state
            .cluster
            .get_or_insert_with(|| ClusterState {
                peer_id: standalone,
                ..ClusterState::default()
            })
            .peers = peers;
    }

    /// A peer with fresh storage (a new `peer_id`) asks to join with p2p URI `uri`, as a Qdrant
    /// started with `--bootstrap <a member> --uri <uri>` does through the member's gRPC
    /// `AddPeerToKnown` (`src/tonic/api/raft_api.rs` and `src/consensus.rs` in Qdrant 1.18.3;
    /// the REST API has no such call, so tests drive it here). When another peer is
    /// registered with the same URI (compared as parsed URIs):
    ///
    /// - while any collection has a replica on that peer (any state,
    ///   `ConsensusManager::peer_has_shards`), the join is refused with `peer URI {uri} already
    ///   used by peer {old} which still has shards, remove its shards first or use a different
    ///   URI` and consensus is unchanged; the real joining process then exits (`Can't
    ///   initialize consensus`, exit code 101) and retries with the same new id on its next
    ///   start, since its `raft_state.json` (term 0) stays on the volume;
    /// - otherwise the old peer is removed from consensus first, then the new one added
    ///   (Qdrant #8301: a peer with wiped storage replaces its empty predecessor).
    ///
    /// A URI no other peer uses is simply added; the same id again just updates its URI. The
    /// URI is stored as Qdrant prints it (`http://host:6335/`). Collections are not touched:
    /// the new peer holds no replica until one is transferred to it.
    ///
    /// # Errors
    /// The refusal above (the gRPC status message), `Failed to parse uri: ..` for a URI that
    /// does not parse, or a message when the fake is not in cluster mode (a standalone Qdrant
    /// has no p2p API to join through).
    pub fn bootstrap_peer(&self, peer_id: u64, uri: &str) -> Result<(), String> {
        let parsed = Url::parse(uri).map_err(|e| format!("Failed to parse uri: {e}"))?;
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        let Some(cluster) = state.cluster.as_ref() else {
            return Err("the fake Qdrant is not in cluster mode: no p2p API to join".to_owned());
        };
        let same_uri = |known: &str| Url::parse(known).map_or(known == uri, |u| u == parsed);
        let previous = cluster
            .peers
            .iter()
            .find(|(id, known)| *id != peer_id && same_uri(known))
            .map(|(id, _)| *id);
        if let Some(old) = previous {
            if state.collections.values().any(|c| c.has_replica_on(old)) {
                return Err(format!(
                    "peer URI {parsed} already used by peer {old} which still has shards, \
                     remove its shards first or use a different URI"
                ));
            }
            for collection in state.collections.values_mut() {
                collection.remove_peer(old);
            }
        }
        if let Some(cluster) = state.cluster.as_mut() {
            cluster
                .peers
                .retain(|(id, _)| Some(*id) != previous && *id != peer_id);
            cluster.peers.push((peer_id, parsed.to_string()));
        }
        Ok(())
    }

    /// The cluster metadata (`/cluster/metadata/keys`) as stored: key → value.
    pub fn cluster_metadata(&self) -> BTreeMap<String, Value> {
        self.shared.lock().cluster_metadata.clone()
    }

    /// Switches cluster mode off (`GET /cluster` answers `{"status": "disabled"}`).
    pub fn set_cluster_disabled(&self) {
        self.shared.lock().cluster = None;
    }
}

pub(super) fn cluster_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/cluster", get(cluster_status))
        .route("/cluster/peer/{peer_id}", delete(remove_peer))
        .route("/cluster/metadata/keys", get(list_metadata_keys))
        .route(
            "/cluster/metadata/keys/{key}",
            get(get_metadata_key)
                .put(put_metadata_key)
                .delete(delete_metadata_key),
        )
}

async fn cluster_status(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
) -> Response {
    let started = Instant::now();
    let cluster = shared.lock().cluster.clone();
    let Some(mut c) = cluster else {
        return ok(json!({"status": "disabled"}), started);
    };
    if answering.peer != c.peer_id {
        // A peer view: its own id and role.
        c.peer_id = answering.peer;
        c.role = c.leader.map(|leader| {
            if leader == answering.peer {
                RaftRole::Leader
            } else {
                RaftRole::Follower
            }
        });
    }
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

/// `DELETE /cluster/peer/{peer_id}` (`remove_peer` in `src/actix/api/cluster_api.rs`): refused
/// while any collection has a replica on the peer (unless `force=true`), refused outside
/// cluster mode, else the peer leaves the cluster. An unknown peer is removed as a no-op (Raft
/// ignores removing a non-member) and answers `true` too. An id that is not a `u64`: 404,
/// plain text `can not parse "{id}" to a u64`.
pub(super) async fn remove_peer(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(peer): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let Ok(peer_id) = peer.parse::<u64>() else {
        return text_error((
            StatusCode::NOT_FOUND,
            format!("can not parse {peer:?} to a u64"),
        ));
    };
    let force = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|pair| pair == "force=true"));
    let mut guard = shared.lock();
    let state = &mut *guard;
    let has_shards = state
        .collections
        .values()
        .any(|collection| collection.has_replica_on(peer_id));
    if has_shards && !force {
        let (status, message) = bad_request(format!(
            "Cannot remove peer {peer_id} as there are shards on it"
        ));
        return error(status, &message, started);
    }
    let Some(cluster) = state.cluster.as_mut() else {
        let (status, message) = bad_request("Distributed mode disabled.");
        return error(status, &message, started);
    };
    cluster.peers.retain(|(id, _)| *id != peer_id);
    for collection in state.collections.values_mut() {
        collection.remove_peer(peer_id);
    }
    ok(json!(true), started)
}

/// Qdrant's answer to the cluster metadata routes outside cluster mode (no consensus state):
/// 500 `Service internal error: Qdrant is running in standalone mode`
/// (`src/actix/api/cluster_api.rs`, `TableOfContent::update_cluster_metadata` in
/// `lib/storage/src/content_manager/toc/mod.rs`).
fn standalone_mode() -> Failure {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Service internal error: Qdrant is running in standalone mode".to_owned(),
    )
}

/// `GET /cluster/metadata/keys` (`get_cluster_metadata_keys`): every key, sorted
/// (`Persistent::get_cluster_metadata_keys`).
async fn list_metadata_keys(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let result = match state.cluster {
        Some(_) => Ok(json!(
            state.cluster_metadata.keys().cloned().collect::<Vec<_>>()
        )),
        None => Err(standalone_mode()),
    };
    reply(result, started)
}

/// `GET /cluster/metadata/keys/{key}` (`get_cluster_metadata_key`): the value, or `null` for
/// a key that was never written (`Persistent::get_cluster_metadata_key`).
async fn get_metadata_key(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(key): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let result = match state.cluster {
        Some(_) => Ok(state
            .cluster_metadata
            .get(&key)
            .cloned()
            .unwrap_or(Value::Null)),
        None => Err(standalone_mode()),
    };
    reply(result, started)
}

/// The body of `PUT /cluster/metadata/keys/{key}` as actix's plain `web::Json` extractor reads
/// it (Qdrant configures no error handler for it); the error is the 400 plain-text body: a
/// content type other than JSON is `Content type error`, a body that is not JSON `Json
/// deserialize error: <serde message>`.
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
    if !json {
        return Err("Content type error".to_owned());
    }
    serde_json::from_slice(body).map_err(|e| format!("Json deserialize error: {e}"))
}

/// Stores `value` under `key` as consensus applies `UpdateClusterMetadata`
/// (`Persistent::update_cluster_metadata_key`): `null` removes the key.
fn write_metadata(state: &mut State, key: String, value: Value) -> Result<Value, Failure> {
    if state.cluster.is_none() {
        return Err(standalone_mode());
    }
    if value.is_null() {
        state.cluster_metadata.remove(&key);
    } else {
        state.cluster_metadata.insert(key, value);
    }
    Ok(json!(true))
}

/// `PUT /cluster/metadata/keys/{key}` (`update_cluster_metadata_key`): any JSON value,
/// `result: true`. The fake applies it at once, so `?wait=true` and `wait=false` answer alike
/// (Qdrant answers `wait=false` once the operation is proposed).
async fn put_metadata_key(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let value = match json_body(&headers, &body) {
        Ok(value) => value,
        Err(message) => return text_owned(StatusCode::BAD_REQUEST, message),
    };
    let result = write_metadata(&mut shared.lock(), key, value);
    reply(result, started)
}

/// `DELETE /cluster/metadata/keys/{key}` (`delete_cluster_metadata_key`): writes `null`,
/// which removes the key; `result: true` whether or not it existed.
async fn delete_metadata_key(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(key): Path<String>,
) -> Response {
    let started = Instant::now();
    let result = write_metadata(&mut shared.lock(), key, Value::Null);
    reply(result, started)
}
