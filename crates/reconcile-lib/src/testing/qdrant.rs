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
//! | `GET /collections` | `{"collections": [{"name"}]}`                                       |
//! | `GET /collections/{c}` | the collection info (below); 404 `Not found: Collection `{c}` doesn't exist!` |
//! | `PUT /collections/{c}` | creates, `result: true`                                         |
//! | `PATCH /collections/{c}` | updates, `result: true`                                       |
//! | `DELETE /collections/{c}` | `result: true`, or `false` when there was no such collection |
//! | `PUT /collections/{c}/index` | `{"operation_id", "status": "completed"}` (`?wait=true`) |
//! | `DELETE /collections/{c}/index/{field}` | same                                        |
//! | `GET /aliases`, `GET /collections/{c}/aliases` | `{"aliases": [{"alias_name", "collection_name"}]}` |
//! | `POST /collections/aliases` | `result: true`                                            |
//! | `GET /collections/{c}/cluster` | `{"peer_id", "shard_count", "local_shards", "remote_shards", "shard_transfers"}` |
//! | `POST /collections/{c}/cluster` | `move_shard`, `replicate_shard`, `abort_transfer`, `drop_replica`: `result: true` |
//! | `DELETE /cluster/peer/{id}` | `result: true`, or 400 while the peer holds replicas           |
//! | anything else   | 404, empty body (actix's default; also for a known path with another method) |
//!
//! Collections follow Qdrant 1.18 (`lib/storage/src/content_manager/toc/create_collection.rs`,
//! `toc/collection_meta_ops.rs`, `lib/collection/src/config.rs`, `operations/config_diff.rs`,
//! `operations/types.rs`, `src/actix/api/collections_api.rs`, `config/config.yaml`):
//!
//! - `PUT` fills the server defaults of the stock `config.yaml` into the stored config:
//!   `hnsw_config` `{m: 16, ef_construct: 100, full_scan_threshold: 10000,
//!   max_indexing_threads: 0, on_disk: false}`, `optimizer_config` `{deleted_threshold: 0.2,
//!   vacuum_min_vector_number: 1000, default_segment_number: 0, max_segment_size: null,
//!   memmap_threshold: null, indexing_threshold: 10000, flush_interval_sec: 5,
//!   max_optimization_threads: null, prevent_unoptimized: null}`, `wal_config`
//!   `{wal_capacity_mb: 32, wal_segments_ahead: 0, wal_retain_closed: 1}`, `params`
//!   `shard_number` (the number of peers in cluster mode, else 1), `replication_factor: 1`,
//!   `write_consistency_factor: 1`, `on_disk_payload: true`, `quantization_config: null`;
//!   `strict_mode_config` and `metadata` only when given (the stock config sets no strict
//!   mode default). Request bodies are decoded with serde models shaped like Qdrant's own
//!   (same type names), so a body Qdrant cannot decode gets the same 400 `Format error in JSON
//!   body: <serde message>` (e.g. `vectors.size: 0`: `data did not match any variant of
//!   untagged enum VectorsConfig at line 1 column N`), and the range checks Qdrant validates
//!   answer 422 `Validation error in JSON body: [<path>: value N invalid, must be ...]`.
//! - An existing collection: [`ALREADY_EXISTS_STATUS`] `Wrong input: Collection `{c}` already
//!   exists!`; a name used by an alias: 400 `Wrong input: Can't create collection with name
//!   {c}. Alias with the same name already exists`.
//! - `GET` answers `{status: "green", optimizer_status: "ok", indexed_vectors_count: 0,
//!   points_count, segments_count, config, payload_schema, update_queue: {length: 0}}` (no
//!   `vectors_count`: 1.18 dropped it). `segments_count` is, per shard,
//!   `default_segment_number` or 2 when that is 0 (Qdrant picks CPUs / 2, at least 2).
//! - `PATCH` applies `optimizers_config`, `params`, `hnsw_config`, `vectors`,
//!   `quantization_config` (`"Disabled"` removes it), `sparse_vectors`, `strict_mode_config`,
//!   `metadata` in that order, each persisted before the next, as Qdrant does: a later section
//!   that fails (unknown vector: 400 `Wrong input: Not existing vector name error: {v}`) leaves
//!   the earlier ones applied.
//! - Collection names in `GET`, `PATCH` and the index routes resolve aliases; `DELETE` does
//!   not (deleting by alias name answers `false`). Deleting a collection deletes its aliases.
//! - `POST /collections/aliases` runs the actions in order and stops at the first error
//!   without rolling back the earlier ones (Qdrant persists each action as it goes):
//!   `create_alias` to a missing collection: 404 `Not found: Collection `{c}` doesn't exist!`;
//!   an alias named like a collection: [`ALREADY_EXISTS_STATUS`] `Wrong input: Collection
//!   `{a}` already exists!`; `create_alias` of an existing alias re-points it; `delete_alias`
//!   of a missing alias succeeds; `rename_alias` of a missing alias: 404 `Not found: Alias {a}
//!   does not exists!`.
//! - Payload indexes: `field_schema` a type name (`payload_schema[f] = {data_type, points:
//!   0}`) or an object (`{data_type, params, points: 0}`, `params` serialized like Qdrant's
//!   `*IndexParams`: unset options omitted, except `lookup`/`range`/`is_principal` which
//!   Qdrant writes as `null`, and text's `tokenizer` which defaults to `word`). No
//!   `field_schema`: 400 `Bad request: Can't auto-detect field type, please specify
//!   `field_schema` in the request`. Dropping a missing index succeeds.
//!
//! Shard placement and peers (`src/common/collections.rs`, `src/actix/api/cluster_api.rs`,
//! `lib/collection/src/collection/{collection_ops,shard_transfer}.rs`,
//! `lib/collection/src/shards/transfer/helpers.rs`,
//! `lib/storage/src/content_manager/shard_distribution.rs`). One fake models the placement of
//! the whole cluster and answers every request as the peer [`ClusterState::peer_id`]
//! (outside cluster mode: the last cluster state's peer, else 1):
//!
//! - Creating a collection places `shard_number` shards with `replication_factor` replicas
//!   (capped at the number of peers) round robin over [`ClusterState::peers`] in their order
//!   (Qdrant uses a random order), all `Active`. `GET /collections/{c}/cluster` lists the
//!   answering peer's replicas as `local_shards` (`points_count`: the collection's points
//!   spread evenly over its shards), the others as `remote_shards`, both sorted by shard, and
//!   the transfers in progress as `shard_transfers` (`{shard_id, from, to, sync, method}`).
//! - `POST /collections/{c}/cluster` outside cluster mode: 400 `Bad request: Distributed mode
//!   disabled`. `move_shard` / `replicate_shard`: 400 `Bad request: Shard {s} of {c} does not
//!   exist`, `Peer {p} does not exist` (target checked first), `Shard {s} is not active on
//!   peer {from}`, `Shard {s} is already involved in transfer {f} -> {t}`; the same peer twice:
//!   422 `Validation error in JSON body: [move_shard.to_peer_id: cannot transfer shard to
//!   itself, "to_peer_id" must be different than {p} in "from_peer_id"]`. A target that already
//!   holds the shard is accepted, as by Qdrant (its replica is re-filled). Otherwise the
//!   transfer starts (`method` defaults to `snapshot`, 1.18's default) and the target replica
//!   is `Recovery` (`snapshot`, `wal_delta`) or `Partial` (`stream_records`) until
//!   [`FakeQdrant::complete_transfers`] (or at once, see
//!   [`FakeQdrant::set_transfers_complete_instantly`]): then it is `Active`, and a move removes
//!   the source replica. `abort_transfer` of no such transfer: 404 `Not found: Shard transfer
//!   {f} -> {t} for collection {c}:{s} does not exist`; an aborted replication leaves its
//!   target `Dead`, an aborted move removes it. `drop_replica`: 400 `Shard {s} of {c} does not
//!   exist`, `Peer {p} does not exist`, `Peer {p} has no replica of shard {s}`, `Shard {s} must
//!   have at least one active replica after removing {p}` (the last replica, or the last
//!   `Active` one); it aborts the transfers from or to that replica.
//! - `DELETE /cluster/peer/{id}` while any collection has a replica on the peer: 400 `Bad
//!   request: Cannot remove peer {id} as there are shards on it` (as observed on a real 1.18
//!   server); outside cluster mode: 400 `Bad request: Distributed mode disabled.`; otherwise the
//!   peer leaves [`ClusterState::peers`] and the answer is `true` — also for a peer id the
//!   cluster does not know (Raft applies removing a non-member as a no-op). `?force=true`
//!   skips the replica check and removes the peer's replicas and transfers.
//!
//! Authentication, when a key is set: the key is read from the `api-key` header, else from
//! `Authorization: Bearer <key>`; none → 401 text `Must provide an API key or an Authorization
//! bearer token`; unknown → 401 text `Invalid API key or JWT`; the read-only key on a write →
//! 403 JSON `Forbidden: Global manage access is required`. `/`, `/healthz`, `/readyz`,
//! `/livez` need no key. Errors from handlers use Qdrant's envelope
//! `{"status": {"error": "<message>"}, "time": <seconds>}`.
//!
//! Extending it (shards, snapshots, transfers): add fields to the private `State`,
//! a `*_routes()` function returning a `Router<Arc<Shared>>`, merge it in `router()`, and
//! answer with `ok()` / `error()` so the envelope stays right. Routes usable with the read-only
//! key other than GETs (search, scroll, ...) go into `READ_ONLY_POST_SUFFIXES`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State as AxumState};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
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

/// HTTP status the fake answers `Wrong input: Collection `{c}` already exists!` with (creating
/// an existing collection, or an alias named like a collection): 400, as observed on a real
/// Qdrant 1.18 server (`TESTING.md`). Note: Qdrant 1.18's source maps this error
/// (`StorageError::AlreadyExists`) to 409 in `src/actix/helpers.rs`, and clients report 409
/// since Qdrant 1.8; if a real server answers 409, this constant is what to change.
/// [`crate::qdrant::QdrantError::is_already_exists`] accepts both.
pub const ALREADY_EXISTS_STATUS: StatusCode = StatusCode::BAD_REQUEST;

/// Path suffixes of the POST routes the read-only key may call (reads such as
/// `/points/search` and `/points/scroll`); none is implemented yet.
const READ_ONLY_POST_SUFFIXES: &[&str] = &[];

/// Qdrant 1.18's replica states (`ReplicaState` in
/// `lib/collection/src/shards/replica_set/replica_set_state.rs`), spelled as on the wire.
pub const REPLICA_STATES: &[&str] = &[
    "Active",
    "Dead",
    "Partial",
    "Initializing",
    "Listener",
    "PartialSnapshot",
    "Recovery",
    "Resharding",
    "ReshardingScaleDown",
    "ActiveRead",
    "ManualRecovery",
];

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
                standalone_peer_id: opts.cluster.as_ref().map_or(1, |c| c.peer_id),
                cluster: opts.cluster,
                ready: opts.ready,
                requests: Vec::new(),
                faults: Vec::new(),
                collections: BTreeMap::new(),
                aliases: BTreeMap::new(),
                transfers_complete_instantly: false,
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

    /// The collection `name` (exact name, aliases are not resolved) as `GET
    /// /collections/{name}` returns it in `result`, or `None` when there is none.
    pub fn collection(&self, name: &str) -> Option<Value> {
        let state = self.shared.lock();
        state.collections.get(name).map(|c| c.info())
    }

    /// Names of every collection, sorted.
    pub fn collection_names(&self) -> Vec<String> {
        self.shared.lock().collections.keys().cloned().collect()
    }

    /// Sets the `points_count` reported for collection `name` (as if points were written).
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn set_points_count(&self, name: &str, points: u64) {
        let mut state = self.shared.lock();
        match state.collections.get_mut(name) {
            Some(collection) => collection.points_count = points,
            None => panic!("the fake Qdrant has no collection {name:?}"),
        }
    }

    /// Changes collection `name`'s stored `config` (the object `GET` returns as
    /// `result.config`) behind the operator's back, e.g. `|c| c["hnsw_config"]["m"] =
    /// json!(32)`. Nothing is validated: later `PATCH`es merge into whatever `f` left.
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn edit_collection_config(&self, name: &str, f: impl FnOnce(&mut Value)) {
        let mut state = self.shared.lock();
        match state.collections.get_mut(name) {
            Some(collection) => f(&mut collection.config),
            None => panic!("the fake Qdrant has no collection {name:?}"),
        }
    }

    /// The shard placement of collection `name` (exact name): shard id → its replicas as
    /// (peer id, state), sorted by peer id. States are spelled as Qdrant does (`Active`,
    /// `Partial`, `Recovery`, `Dead`, ...).
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn placement(&self, name: &str) -> BTreeMap<u32, Vec<(u64, String)>> {
        let state = self.shared.lock();
        let Some(collection) = state.collections.get(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        collection
            .shards
            .iter()
            .map(|(shard, replicas)| {
                let replicas = replicas
                    .iter()
                    .map(|(peer, state)| (*peer, (*state).to_owned()))
                    .collect();
                (*shard, replicas)
            })
            .collect()
    }

    /// Sets the state of the replica of `shard` on `peer` in collection `name` (adding the
    /// replica if the peer has none), behind the operator's back: e.g. `Dead` after a failed
    /// write, or `Active` on a peer that Qdrant would have filled.
    ///
    /// # Panics
    /// When there is no collection `name` or no shard `shard` in it, or `state` is not one of
    /// Qdrant's replica states ([`REPLICA_STATES`]) — test bugs.
    pub fn set_replica_state(&self, name: &str, shard: u32, peer: u64, state: &str) {
        let Some(known) = REPLICA_STATES.iter().find(|s| **s == state) else {
            panic!("{state:?} is not a Qdrant replica state (one of {REPLICA_STATES:?})");
        };
        let mut guard = self.shared.lock();
        let Some(collection) = guard.collections.get_mut(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        let Some(replicas) = collection.shards.get_mut(&shard) else {
            panic!("collection {name:?} of the fake Qdrant has no shard {shard}");
        };
        replicas.insert(peer, *known);
    }

    /// Finishes every shard transfer in progress, in every collection, as Qdrant does when a
    /// transfer succeeds: the target replica becomes `Active`, and for a move (`sync: false`)
    /// the source replica is removed. Returns how many transfers finished.
    pub fn complete_transfers(&self) -> usize {
        let mut state = self.shared.lock();
        state
            .collections
            .values_mut()
            .map(FakeCollection::complete_transfers)
            .sum()
    }

    /// When `true`, a transfer started by `move_shard` or `replicate_shard` finishes before
    /// the request is answered (as [`Self::complete_transfers`] would finish it), so it never
    /// shows in `shard_transfers`. Default `false`: transfers run until
    /// [`Self::complete_transfers`].
    pub fn set_transfers_complete_instantly(&self, instantly: bool) {
        self.shared.lock().transfers_complete_instantly = instantly;
    }

    /// Every alias as `(alias_name, collection_name)`, sorted by alias name.
    pub fn aliases(&self) -> Vec<(String, String)> {
        self.shared
            .lock()
            .aliases
            .iter()
            .map(|(alias, collection)| (alias.clone(), collection.clone()))
            .collect()
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
    /// The peer id the fake answers as outside cluster mode (a standalone Qdrant has one
    /// too): the last cluster state's, else 1.
    standalone_peer_id: u64,
    /// Whether transfers finish before `POST /collections/{c}/cluster` answers.
    transfers_complete_instantly: bool,
    ready: bool,
    requests: Vec<RecordedRequest>,
    faults: Vec<Fault>,
    /// Collections by name.
    collections: BTreeMap<String, FakeCollection>,
    /// Alias name → collection name.
    aliases: BTreeMap<String, String>,
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
        .merge(collection_routes())
        .route_layer(middleware::from_fn(read_only_gate))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
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
    Router::new()
        .route("/cluster", get(cluster_status))
        .route("/cluster/peer/{peer_id}", delete(remove_peer))
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

// ---------------------------------------------------------------------------------------------
// Collections, payload indexes and aliases
// ---------------------------------------------------------------------------------------------

/// One collection of the fake.
struct FakeCollection {
    /// `result.config` as `GET /collections/{name}` returns it.
    config: Value,
    /// Payload indexes by field: `{data_type, params?, points}`.
    payload_schema: BTreeMap<String, Value>,
    points_count: u64,
    /// Sequence number reported by index operations.
    operation_id: u64,
    /// Shard id → replicas: peer id → replica state (one of [`REPLICA_STATES`]).
    shards: BTreeMap<u32, BTreeMap<u64, &'static str>>,
    /// Shard transfers in progress, in start order.
    transfers: Vec<FakeTransfer>,
}

impl FakeCollection {
    /// The collection info as `GET /collections/{name}` returns it in `result`.
    fn info(&self) -> Value {
        json!({
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": 0,
            "points_count": self.points_count,
            "segments_count": segments_count(&self.config),
            "config": self.config,
            "payload_schema": self.payload_schema,
            "update_queue": {"length": 0},
        })
    }
}

/// Segments Qdrant creates: per shard, `default_segment_number`, or CPUs / 2 clamped to 2..=8
/// when that is 0 (2 here). Custom sharding creates no shard until a shard key exists.
fn segments_count(config: &Value) -> u64 {
    let params = &config["params"];
    if params["sharding_method"] == "custom" {
        return 0;
    }
    let shards = params["shard_number"].as_u64().unwrap_or(1);
    let per_shard = match config["optimizer_config"]["default_segment_number"].as_u64() {
        Some(0) | None => 2,
        Some(n) => n,
    };
    shards * per_shard
}

fn collection_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/collections", get(list_collections))
        .route("/aliases", get(list_all_aliases))
        // Static before `{name}`: POST is the alias API, every other method is the collection
        // named `aliases`, as in Qdrant (actix tries each method-guarded route in turn).
        .route(
            "/collections/aliases",
            post(update_aliases)
                .get(get_collection_aliases_named)
                .put(create_collection_aliases_named)
                .patch(update_collection_aliases_named)
                .delete(delete_collection_aliases_named),
        )
        .route(
            "/collections/{name}",
            get(get_collection)
                .put(create_collection)
                .patch(update_collection)
                .delete(delete_collection),
        )
        .route("/collections/{name}/aliases", get(list_collection_aliases))
        .route(
            "/collections/{name}/cluster",
            get(get_collection_cluster).post(update_collection_cluster),
        )
        .route("/collections/{name}/index", put(create_index))
        .route("/collections/{name}/index/{field}", delete(delete_index))
}

/// An error reply of a handler: status and Qdrant's message.
type Failure = (StatusCode, String);

fn reply(result: Result<Value, Failure>, started: Instant) -> Response {
    match result {
        Ok(value) => ok(value, started),
        Err((status, message)) => error(status, &message, started),
    }
}

fn collection_not_found(name: &str) -> Failure {
    (
        StatusCode::NOT_FOUND,
        format!("Not found: Collection `{name}` doesn't exist!"),
    )
}

fn wrong_input(message: impl std::fmt::Display) -> Failure {
    (StatusCode::BAD_REQUEST, format!("Wrong input: {message}"))
}

/// Decodes a JSON body as Qdrant's actix extractor does: a serde failure is 400 `Format error
/// in JSON body: <serde message>`.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("Format error in JSON body: {e}"),
        )
    })
}

/// 422 `Validation error in JSON body: [path: message; ...]` when `errors` is not empty.
fn validated(mut errors: Vec<String>) -> Result<(), Failure> {
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort();
    Err((
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("Validation error in JSON body: [{}]", errors.join("; ")),
    ))
}

impl State {
    /// The collection name `name` refers to: itself, or the collection of alias `name`.
    fn resolve(&self, name: &str) -> Result<String, Failure> {
        let real = self.aliases.get(name).map_or(name, String::as_str);
        if self.collections.contains_key(real) {
            Ok(real.to_owned())
        } else {
            Err(collection_not_found(real))
        }
    }

    fn resolve_mut(&mut self, name: &str) -> Result<&mut FakeCollection, Failure> {
        let real = self.resolve(name)?;
        self.collections
            .get_mut(&real)
            .ok_or_else(|| collection_not_found(&real))
    }

    /// Shards of a new auto-sharded collection when the request sets none: one per peer in
    /// cluster mode, else 1.
    fn default_shard_number(&self) -> u32 {
        self.cluster.as_ref().map_or(1, |c| {
            u32::try_from(c.peers.len().max(1)).unwrap_or(u32::MAX)
        })
    }
}

async fn list_collections(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let names: Vec<Value> = shared
        .lock()
        .collections
        .keys()
        .map(|name| json!({ "name": name }))
        .collect();
    ok(json!({ "collections": names }), started)
}

/// `/collections/aliases` with a method other than POST: the collection named `aliases`.
async fn get_collection_aliases_named(shared: AxumState<Arc<Shared>>) -> Response {
    get_collection(shared, Path("aliases".to_owned())).await
}

async fn create_collection_aliases_named(shared: AxumState<Arc<Shared>>, body: Bytes) -> Response {
    create_collection(shared, Path("aliases".to_owned()), body).await
}

async fn update_collection_aliases_named(shared: AxumState<Arc<Shared>>, body: Bytes) -> Response {
    update_collection(shared, Path("aliases".to_owned()), body).await
}

async fn delete_collection_aliases_named(shared: AxumState<Arc<Shared>>) -> Response {
    delete_collection(shared, Path("aliases".to_owned())).await
}

async fn get_collection(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let result = state
        .resolve(&name)
        .and_then(|real| {
            state
                .collections
                .get(&real)
                .ok_or_else(|| collection_not_found(&real))
        })
        .map(FakeCollection::info);
    reply(result, started)
}

async fn create_collection(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: model::CreateCollection = decode(&body)?;
        validated(request.validate())?;
        request.check_vector_names().map_err(wrong_input)?;
        let mut state = shared.lock();
        if state.collections.contains_key(&name) {
            return Err((
                ALREADY_EXISTS_STATUS,
                format!("Wrong input: Collection `{name}` already exists!"),
            ));
        }
        if state.aliases.contains_key(&name) {
            return Err(wrong_input(format!(
                "Can't create collection with name {name}. Alias with the same name already exists"
            )));
        }
        let config = request.into_config(state.default_shard_number());
        let shards = initial_placement(&config, &state.peer_ids());
        state.collections.insert(
            name.clone(),
            FakeCollection {
                config,
                payload_schema: BTreeMap::new(),
                points_count: 0,
                operation_id: 0,
                shards,
                transfers: Vec::new(),
            },
        );
        Ok(json!(true))
    })();
    reply(result, started)
}

async fn update_collection(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: model::UpdateCollection = decode(&body)?;
        validated(request.validate())?;
        let mut state = shared.lock();
        let collection = state.resolve_mut(&name)?;
        request.apply(&mut collection.config).map_err(wrong_input)?;
        Ok(json!(true))
    })();
    reply(result, started)
}

async fn delete_collection(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let mut state = shared.lock();
    state.aliases.retain(|_, collection| *collection != name);
    let existed = state.collections.remove(&name).is_some();
    ok(json!(existed), started)
}

/// `{"aliases": [...]}` for `(alias, collection)` pairs, listed by collection then alias.
fn alias_list<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Value {
    let mut pairs: Vec<_> = pairs.collect();
    pairs.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    let aliases: Vec<Value> = pairs
        .into_iter()
        .map(|(alias, collection)| json!({"alias_name": alias, "collection_name": collection}))
        .collect();
    json!({ "aliases": aliases })
}

async fn list_all_aliases(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let pairs = state
        .aliases
        .iter()
        .filter(|(_, collection)| state.collections.contains_key(*collection));
    ok(alias_list(pairs), started)
}

async fn list_collection_aliases(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let pairs = state
        .aliases
        .iter()
        .filter(|(_, collection)| **collection == name);
    ok(alias_list(pairs), started)
}

async fn update_aliases(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: model::ChangeAliasesOperation = decode(&body)?;
        let mut state = shared.lock();
        // In order, without rollback: Qdrant persists each action before the next one.
        for action in request.actions {
            match action {
                model::AliasOperations::Create(op) => {
                    let model::CreateAlias {
                        collection_name,
                        alias_name,
                    } = op.create_alias;
                    if !state.collections.contains_key(&collection_name) {
                        return Err(collection_not_found(&collection_name));
                    }
                    if state.collections.contains_key(&alias_name) {
                        return Err((
                            ALREADY_EXISTS_STATUS,
                            format!("Wrong input: Collection `{alias_name}` already exists!"),
                        ));
                    }
                    state.aliases.insert(alias_name, collection_name);
                }
                model::AliasOperations::Delete(op) => {
                    state.aliases.remove(&op.delete_alias.alias_name);
                }
                model::AliasOperations::Rename(op) => {
                    let model::RenameAlias {
                        old_alias_name,
                        new_alias_name,
                    } = op.rename_alias;
                    let Some(collection) = state.aliases.remove(&old_alias_name) else {
                        return Err((
                            StatusCode::NOT_FOUND,
                            format!("Not found: Alias {old_alias_name} does not exists!"),
                        ));
                    };
                    state.aliases.insert(new_alias_name, collection);
                }
            }
        }
        Ok(json!(true))
    })();
    reply(result, started)
}

/// `UpdateResult` of an index operation: `completed` with `wait=true`, else `acknowledged`.
fn index_update_result(collection: &mut FakeCollection, query: Option<&str>) -> Value {
    collection.operation_id += 1;
    let wait = query.is_some_and(|q| q.split('&').any(|pair| pair == "wait=true"));
    json!({
        "operation_id": collection.operation_id,
        "status": if wait { "completed" } else { "acknowledged" },
    })
}

async fn create_index(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let request: model::CreateFieldIndex = decode(&body)?;
        let mut state = shared.lock();
        let collection = state.resolve_mut(&name)?;
        let Some(schema) = request.field_schema else {
            return Err((
                StatusCode::BAD_REQUEST,
                "Bad request: Can't auto-detect field type, please specify `field_schema` in the request"
                    .to_owned(),
            ));
        };
        collection
            .payload_schema
            .insert(request.field_name, schema.index_info());
        Ok(index_update_result(collection, query.as_deref()))
    })();
    reply(result, started)
}

async fn delete_index(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path((name, field)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let mut state = shared.lock();
        let collection = state.resolve_mut(&name)?;
        collection.payload_schema.remove(&field);
        Ok(index_update_result(collection, query.as_deref()))
    })();
    reply(result, started)
}

// ---------------------------------------------------------------------------------------------
// Shard placement, shard transfers and peers
// ---------------------------------------------------------------------------------------------

/// A shard transfer in progress (Qdrant's `ShardTransfer`; its key is everything but `sync`
/// and `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FakeTransfer {
    shard_id: u32,
    to_shard_id: Option<u32>,
    from: u64,
    to: u64,
    /// `true` for `replicate_shard` (the source replica stays), `false` for `move_shard`.
    sync: bool,
    method: model::ShardTransferMethod,
}

impl FakeTransfer {
    /// The shard the target replica belongs to.
    fn target_shard(&self) -> u32 {
        self.to_shard_id.unwrap_or(self.shard_id)
    }

    /// Qdrant's `ShardTransfer::is_source_or_target`.
    fn involves(&self, peer: u64, shard: u32) -> bool {
        (self.from == peer && self.shard_id == shard)
            || (self.to == peer && self.target_shard() == shard)
    }

    /// Same transfer key: shard, target shard and both peers.
    fn same_key(&self, other: &Self) -> bool {
        (self.shard_id, self.to_shard_id, self.from, self.to)
            == (other.shard_id, other.to_shard_id, other.from, other.to)
    }

    /// The `shard_transfers` entry of `GET /collections/{c}/cluster`. Qdrant's free-text
    /// `comment` (progress, reported only by the peers running the transfer) is left out.
    fn info(&self) -> Value {
        let mut info = json!({
            "shard_id": self.shard_id,
            "from": self.from,
            "to": self.to,
            "sync": self.sync,
            "method": self.method,
        });
        if let (Some(to_shard_id), Value::Object(map)) = (self.to_shard_id, &mut info) {
            map.insert("to_shard_id".to_owned(), json!(to_shard_id));
        }
        info
    }
}

/// Qdrant's placement of a new collection (`ShardDistributionProposal::new`,
/// `lib/storage/src/content_manager/shard_distribution.rs`): shard after shard, each replica
/// goes to the peer holding the fewest replicas so far, ties broken by a random per-peer bias;
/// that is a round robin over the peers in a random order. The fake goes round in the order of
/// `peers` instead (peers 1, 2, 3 with 3 shards and 2 replicas: shard 0 on 1 and 2, shard 1 on
/// 3 and 1, shard 2 on 2 and 3). At most one replica per peer (`replication_factor` is capped
/// at the number of peers); every replica starts `Active`; custom sharding creates no shard.
fn initial_placement(config: &Value, peers: &[u64]) -> BTreeMap<u32, BTreeMap<u64, &'static str>> {
    let params = &config["params"];
    if params["sharding_method"] == "custom" || peers.is_empty() {
        return BTreeMap::new();
    }
    let shard_number = params["shard_number"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    let replicas = params["replication_factor"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1)
        .min(peers.len());
    let mut next_peer = peers.iter().cycle();
    (0..shard_number)
        .map(|shard| {
            let placed = next_peer
                .by_ref()
                .take(replicas)
                .map(|peer| (*peer, "Active"))
                .collect();
            (shard, placed)
        })
        .collect()
}

/// Qdrant's `ReplicaState::is_active`: a replica that can be the source of truth.
fn is_active(state: &str) -> bool {
    matches!(state, "Active" | "ReshardingScaleDown")
}

fn bad_request(message: impl std::fmt::Display) -> Failure {
    (StatusCode::BAD_REQUEST, format!("Bad request: {message}"))
}

impl State {
    /// The peer the fake answers as.
    fn this_peer_id(&self) -> u64 {
        self.cluster
            .as_ref()
            .map_or(self.standalone_peer_id, |c| c.peer_id)
    }

    /// The peers known to consensus in their configured order, the answering peer included;
    /// outside cluster mode, the answering peer alone.
    fn peer_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = Vec::new();
        if let Some(cluster) = &self.cluster {
            for (id, _) in &cluster.peers {
                if !ids.contains(id) {
                    ids.push(*id);
                }
            }
        }
        let me = self.this_peer_id();
        if !ids.contains(&me) {
            ids.push(me);
        }
        ids
    }
}

impl FakeCollection {
    /// `GET /collections/{c}/cluster` as peer `me` answers it (`Collection::cluster_info` in
    /// `lib/collection/src/collection/collection_ops.rs`).
    fn cluster_info(&self, me: u64) -> Value {
        let mut local = Vec::new();
        let mut remote = Vec::new();
        for (index, (shard, replicas)) in self.shards.iter().enumerate() {
            for (peer, state) in replicas {
                if *peer == me {
                    local.push(json!({
                        "shard_id": shard,
                        "points_count": self.shard_points(index),
                        "state": state,
                    }));
                } else {
                    remote.push(json!({"shard_id": shard, "peer_id": peer, "state": state}));
                }
            }
        }
        let mut transfers: Vec<&FakeTransfer> = self.transfers.iter().collect();
        transfers.sort_by_key(|t| t.shard_id);
        let transfers: Vec<Value> = transfers.into_iter().map(FakeTransfer::info).collect();
        json!({
            "peer_id": me,
            "shard_count": self.shards.len(),
            "local_shards": local,
            "remote_shards": remote,
            "shard_transfers": transfers,
        })
    }

    /// Points of the `index`-th shard: `points_count` spread evenly over the shards.
    fn shard_points(&self, index: usize) -> u64 {
        let shards = u64::try_from(self.shards.len()).unwrap_or(1).max(1);
        let index = u64::try_from(index).unwrap_or(u64::MAX);
        self.points_count / shards + u64::from(index < self.points_count % shards)
    }

    /// True when any shard has a replica on `peer`, whatever its state.
    fn has_replica_on(&self, peer: u64) -> bool {
        self.shards
            .values()
            .any(|replicas| replicas.contains_key(&peer))
    }

    /// `move_shard` / `replicate_shard`: the checks of `do_update_collection_cluster`
    /// (`src/common/collections.rs`), then those applied through consensus
    /// (`validate_transfer` in `lib/collection/src/shards/transfer/helpers.rs`), then the
    /// start (`Collection::start_shard_transfer`): the target replica is created, or reset,
    /// in `Partial` (`stream_records`) or `Recovery` (`snapshot`, `wal_delta`).
    fn start_transfer(
        &mut self,
        name: &str,
        peers: &[u64],
        transfer: FakeTransfer,
    ) -> Result<(), Failure> {
        use model::ShardTransferMethod as Method;

        let shard = transfer.shard_id;
        let Some(source) = self.shards.get(&shard) else {
            return Err(bad_request(format!(
                "Shard {shard} of {name} does not exist"
            )));
        };
        for peer in [transfer.to, transfer.from] {
            if !peers.contains(&peer) {
                return Err(bad_request(format!("Peer {peer} does not exist")));
            }
        }
        if !source.get(&transfer.from).is_some_and(|s| is_active(s)) {
            return Err(bad_request(format!(
                "Shard {shard} is not active on peer {}",
                transfer.from
            )));
        }
        let touches = |peer: u64| peer == transfer.from || peer == transfer.to;
        if let Some(other) = self
            .transfers
            .iter()
            .find(|t| t.shard_id == shard && (touches(t.from) || touches(t.to)))
        {
            return Err(bad_request(format!(
                "Shard {shard} is already involved in transfer {} -> {}",
                other.from, other.to
            )));
        }
        let initial_state = match (transfer.method, transfer.to_shard_id) {
            (Method::ReshardingStreamRecords, to_shard)
                if to_shard.is_none_or(|to| !self.shards.contains_key(&to)) =>
            {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Service internal error: Destination shard {shard} does not exist"),
                ));
            }
            (Method::ReshardingStreamRecords, Some(to_shard)) if to_shard == shard => {
                return Err(bad_request(format!(
                    "Source and target shard must be different for resharding transfer, both are {to_shard}"
                )));
            }
            (Method::ReshardingStreamRecords, _) => {
                return Err(wrong_input(
                    "can't start resharding transfer, because resharding is not in progress",
                ));
            }
            (_, Some(to_shard)) => {
                return Err(bad_request(format!(
                    "Target shard {to_shard} can only be set for ReshardingStreamRecords or filtered streaming records transfers"
                )));
            }
            (Method::StreamRecords, None) => "Partial",
            (Method::Snapshot | Method::WalDelta, None) => "Recovery",
        };
        if let Some(target) = self.shards.get_mut(&transfer.target_shard()) {
            target.insert(transfer.to, initial_state);
        }
        self.transfers.push(transfer);
        Ok(())
    }

    /// A successful end (`Collection::finish_shard_transfer`): the target replica, if still
    /// there, becomes `Active`; then a move removes the source replica.
    fn finish_transfer(&mut self, transfer: &FakeTransfer) {
        let target_active = match self
            .shards
            .get_mut(&transfer.target_shard())
            .and_then(|replicas| replicas.get_mut(&transfer.to))
        {
            Some(state) => {
                *state = "Active";
                true
            }
            None => false,
        };
        if !transfer.sync
            && target_active
            && let Some(replicas) = self.shards.get_mut(&transfer.shard_id)
        {
            replicas.remove(&transfer.from);
        }
        self.transfers.retain(|t| !t.same_key(transfer));
    }

    /// An aborted transfer (`Collection::abort_shard_transfer`): a replication's target
    /// replica becomes `Dead`, a move's is removed.
    fn abort_transfer(&mut self, transfer: &FakeTransfer) {
        if let Some(replicas) = self.shards.get_mut(&transfer.target_shard()) {
            if transfer.sync {
                if let Some(state) = replicas.get_mut(&transfer.to) {
                    *state = "Dead";
                }
            } else {
                replicas.remove(&transfer.to);
            }
        }
        self.transfers.retain(|t| !t.same_key(transfer));
    }

    /// Finishes every transfer; returns how many.
    fn complete_transfers(&mut self) -> usize {
        let transfers = self.transfers.clone();
        for transfer in &transfers {
            self.finish_transfer(transfer);
        }
        transfers.len()
    }

    /// `abort_transfer`: 404 unless such a transfer runs (`check_transfer_exists`).
    fn abort_requested(&mut self, name: &str, key: &FakeTransfer) -> Result<(), Failure> {
        let Some(transfer) = self.transfers.iter().find(|t| t.same_key(key)).copied() else {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "Not found: Shard transfer {} -> {} for collection {name}:{} does not exist",
                    key.from, key.to, key.shard_id
                ),
            ));
        };
        self.abort_transfer(&transfer);
        Ok(())
    }

    /// `drop_replica`: the checks of `do_update_collection_cluster`, then
    /// `Collection::handle_replica_changes` (never the last replica, nor the last active
    /// one), which also aborts the transfers from or to that replica.
    fn drop_replica(
        &mut self,
        name: &str,
        peers: &[u64],
        shard: u32,
        peer: u64,
    ) -> Result<(), Failure> {
        let Some(replicas) = self.shards.get(&shard) else {
            return Err(bad_request(format!(
                "Shard {shard} of {name} does not exist"
            )));
        };
        if !peers.contains(&peer) {
            return Err(bad_request(format!("Peer {peer} does not exist")));
        }
        let Some(state) = replicas.get(&peer) else {
            return Err(bad_request(format!(
                "Peer {peer} has no replica of shard {shard}"
            )));
        };
        // `ReplicaSet::is_last_source_of_truth_replica`.
        let active: Vec<u64> = replicas
            .iter()
            .filter(|(_, s)| is_active(s))
            .map(|(p, _)| *p)
            .collect();
        let last_source_of_truth = if active.is_empty() {
            matches!(*state, "Initializing" | "Listener")
        } else {
            active == [peer]
        };
        if replicas.len() == 1 || last_source_of_truth {
            return Err(bad_request(format!(
                "Shard {shard} must have at least one active replica after removing {peer}"
            )));
        }
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
        Ok(())
    }

    /// `DELETE /cluster/peer/{peer}?force=true` (`Collection::remove_shards_at_peer`): aborts
    /// the transfers from or to the peer and removes its replicas.
    fn remove_peer(&mut self, peer: u64) {
        let related: Vec<FakeTransfer> = self
            .transfers
            .iter()
            .filter(|t| t.from == peer || t.to == peer)
            .copied()
            .collect();
        for transfer in &related {
            self.abort_transfer(transfer);
        }
        for replicas in self.shards.values_mut() {
            replicas.remove(&peer);
        }
    }
}

async fn get_collection_cluster(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let me = state.this_peer_id();
    let result = state
        .resolve(&name)
        .and_then(|real| {
            state
                .collections
                .get(&real)
                .ok_or_else(|| collection_not_found(&real))
        })
        .map(|collection| collection.cluster_info(me));
    reply(result, started)
}

/// `POST /collections/{c}/cluster` (`do_update_collection_cluster` in
/// `src/common/collections.rs`): decode (400) and validate (422) the operation, refuse outside
/// cluster mode, find the collection (404), then apply it.
async fn update_collection_cluster(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let operation: model::ClusterOperations = decode(&body)?;
        validated(operation.validate())?;
        let mut state = shared.lock();
        if state.cluster.is_none() {
            return Err(bad_request("Distributed mode disabled"));
        }
        let peers = state.peer_ids();
        let instantly = state.transfers_complete_instantly;
        let collection = state.resolve_mut(&name)?;
        match operation {
            model::ClusterOperations::MoveShard(op) => {
                let transfer = op.move_shard.transfer(false);
                collection.start_transfer(&name, &peers, transfer)?;
                if instantly {
                    collection.finish_transfer(&transfer);
                }
            }
            model::ClusterOperations::ReplicateShard(op) => {
                let transfer = op.replicate_shard.transfer(true);
                collection.start_transfer(&name, &peers, transfer)?;
                if instantly {
                    collection.finish_transfer(&transfer);
                }
            }
            model::ClusterOperations::AbortTransfer(op) => {
                collection.abort_requested(&name, &op.abort_transfer.key())?;
            }
            model::ClusterOperations::DropReplica(op) => {
                let model::Replica { shard_id, peer_id } = op.drop_replica;
                collection.drop_replica(&name, &peers, shard_id, peer_id)?;
            }
        }
        Ok(json!(true))
    })();
    reply(result, started)
}

/// `DELETE /cluster/peer/{peer_id}` (`remove_peer` in `src/actix/api/cluster_api.rs`): refused
/// while any collection has a replica on the peer (unless `force=true`), refused outside
/// cluster mode, else the peer leaves the cluster. An unknown peer is removed as a no-op (Raft
/// ignores removing a non-member) and answers `true` too. An id that is not a `u64`: actix's
/// empty 404.
async fn remove_peer(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(peer): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let Ok(peer_id) = peer.parse::<u64>() else {
        return not_found().await;
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

/// Serde models of the request bodies, shaped and named like Qdrant 1.18's own request types
/// (`CreateCollection`, `UpdateCollection`, `VectorsConfig`, `QuantizationConfigDiff`,
/// `PayloadFieldSchema`, `AliasOperations`, ...) so that a body Qdrant cannot decode fails here
/// with the same serde message, and the stored config serializes the way Qdrant writes it
/// (unset options omitted where Qdrant omits them).
mod model {
    use std::collections::BTreeMap;
    use std::num::{NonZeroU32, NonZeroU64};

    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value, json};

    // ----- Helpers on stored JSON ------------------------------------------------------------

    /// `parent[key]`, turning `parent` into an object first if it is not one (the stored
    /// config may have been edited into any shape by a test).
    pub(super) fn field<'a>(parent: &'a mut Value, key: &str) -> &'a mut Value {
        if !parent.is_object() {
            *parent = Value::Object(Map::new());
        }
        match parent {
            Value::Object(map) => map.entry(key).or_insert(Value::Null),
            other => other,
        }
    }

    /// Sets every non-null field of `diff` (an object) on `target`: Qdrant's `Option::or`
    /// merge of a `*Diff` into a config.
    fn overlay(target: &mut Value, diff: Value) {
        let Value::Object(diff) = diff else { return };
        for (key, value) in diff {
            if !value.is_null() {
                *field(target, &key) = value;
            }
        }
    }

    /// `value` as the JSON Qdrant writes for it. Through text, not `to_value`: an `f32` such as
    /// a quantile of 0.99 is written `0.99`, while `to_value` would widen it to
    /// 0.9900000095367432.
    fn to_json<T: Serialize>(value: &T) -> Value {
        serde_json::to_vec(value)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null)
    }

    /// Removes `key` from `target` when it is an object.
    fn remove(target: &mut Value, key: &str) {
        if let Value::Object(map) = target {
            map.remove(key);
        }
    }

    /// `path: value V invalid, must be ...` as Qdrant's `describe_error` words a range error.
    fn range_error(path: &str, value: Value, min: Option<Value>, max: Option<Value>) -> String {
        let bound = match (min, max) {
            (Some(min), Some(max)) => format!("must be from {min} to {max}"),
            (Some(min), None) => format!("must be {min} or larger"),
            (None, Some(max)) => format!("must be {max} or smaller"),
            (None, None) => "is out of range".to_owned(),
        };
        format!("{path}: value {value} invalid, {bound}")
    }

    fn at_least<T: Serialize + PartialOrd>(
        errors: &mut Vec<String>,
        path: &str,
        value: Option<T>,
        min: T,
    ) {
        if let Some(value) = value
            && value < min
        {
            errors.push(range_error(
                path,
                to_json(&value),
                Some(to_json(&min)),
                None,
            ));
        }
    }

    fn within<T: Serialize + PartialOrd>(
        errors: &mut Vec<String>,
        path: &str,
        value: Option<T>,
        min: T,
        max: T,
    ) {
        if let Some(value) = value
            && (value < min || value > max)
        {
            errors.push(range_error(
                path,
                to_json(&value),
                Some(to_json(&min)),
                Some(to_json(&max)),
            ));
        }
    }

    /// Qdrant's `validate_iter` over map values: one failing item is reported under `?`,
    /// several under `?[i]` (i counting failing items only).
    fn validate_each<'a, T: 'a>(
        errors: &mut Vec<String>,
        prefix: &str,
        items: impl Iterator<Item = &'a T>,
        validate: impl Fn(&T, &str) -> Vec<String>,
    ) {
        let failing: Vec<&T> = items
            .filter(|item| !validate(item, "").is_empty())
            .collect();
        let many = failing.len() > 1;
        for (index, item) in failing.into_iter().enumerate() {
            let path = if many {
                format!("{prefix}.?[{index}].")
            } else {
                format!("{prefix}.?.")
            };
            errors.extend(validate(item, &path));
        }
    }

    // ----- Vectors ---------------------------------------------------------------------------

    /// Distance function, spelled as Qdrant does (`Cosine`, `Euclid`, `Dot`, `Manhattan`).
    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    pub(super) enum Distance {
        Cosine,
        Euclid,
        Dot,
        Manhattan,
    }

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum Datatype {
        Float32,
        Uint8,
        Float16,
        Turbo4,
    }

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum MultiVectorComparator {
        MaxSim,
    }

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    pub(super) struct MultiVectorConfig {
        comparator: MultiVectorComparator,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct VectorParams {
        size: NonZeroU64,
        distance: Distance,
        #[serde(default, skip_serializing_if = "hnsw_diff_is_empty")]
        hnsw_config: Option<HnswConfigDiff>,
        #[serde(
            default,
            alias = "quantization",
            skip_serializing_if = "Option::is_none"
        )]
        quantization_config: Option<QuantizationConfig>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        datatype: Option<Datatype>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multivector_config: Option<MultiVectorConfig>,
    }

    impl VectorParams {
        fn validate(&self, prefix: &str) -> Vec<String> {
            let mut errors = Vec::new();
            within(
                &mut errors,
                &format!("{prefix}size"),
                Some(self.size.get()),
                1,
                65536,
            );
            if let Some(hnsw) = &self.hnsw_config {
                errors.extend(hnsw.validate(&format!("{prefix}hnsw_config.")));
            }
            errors
        }
    }

    /// One unnamed vector (`{"size", "distance"}`) or named vectors (`{"name": {...}}`).
    #[derive(Clone, Debug, Deserialize, Serialize)]
    #[serde(untagged)]
    pub(super) enum VectorsConfig {
        Single(VectorParams),
        Multi(BTreeMap<String, VectorParams>),
    }

    impl Default for VectorsConfig {
        fn default() -> Self {
            Self::Multi(BTreeMap::new())
        }
    }

    /// True when a stored `params.vectors` is the single unnamed vector.
    fn is_single(vectors: &Value) -> bool {
        vectors.get("size").is_some_and(Value::is_number)
            && vectors.get("distance").is_some_and(Value::is_string)
    }

    /// Qdrant's `validate_vector_name`: at most 200 bytes, no filesystem-unsafe character.
    fn vector_name_error(name: &str) -> Option<String> {
        const INVALID: [char; 11] = ['<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0', '\u{1F}'];
        if name.len() > 200 {
            return Some("vector name must be at most 200 bytes long".to_owned());
        }
        INVALID
            .into_iter()
            .find(|c| name.contains(*c))
            .map(|c| format!("vector name cannot contain \"{c}\" char"))
    }

    // ----- Index, WAL, optimizer, params diffs ----------------------------------------------

    #[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
    pub(super) struct HnswConfigDiff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        m: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ef_construct: Option<usize>,
        #[serde(
            default,
            alias = "full_scan_threshold_kb",
            skip_serializing_if = "Option::is_none"
        )]
        full_scan_threshold: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_indexing_threads: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload_m: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inline_storage: Option<bool>,
    }

    #[expect(
        clippy::ref_option,
        reason = "serde's skip_serializing_if passes &Option"
    )]
    fn hnsw_diff_is_empty(diff: &Option<HnswConfigDiff>) -> bool {
        diff.as_ref()
            .is_none_or(|d| *d == HnswConfigDiff::default())
    }

    impl HnswConfigDiff {
        fn validate(&self, prefix: &str) -> Vec<String> {
            let mut errors = Vec::new();
            at_least(
                &mut errors,
                &format!("{prefix}ef_construct"),
                self.ef_construct,
                4,
            );
            at_least(
                &mut errors,
                &format!("{prefix}full_scan_threshold"),
                self.full_scan_threshold,
                10,
            );
            errors
        }
    }

    #[derive(Clone, Debug, Default, Deserialize, Serialize)]
    pub(super) struct WalConfigDiff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wal_capacity_mb: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wal_segments_ahead: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wal_retain_closed: Option<usize>,
    }

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum MaxOptimizationThreadsSetting {
        Auto,
    }

    /// `"auto"` (no limit: stored as `null`) or a number of threads.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(untagged)]
    pub(super) enum MaxOptimizationThreads {
        Setting(MaxOptimizationThreadsSetting),
        Threads(usize),
    }

    #[derive(Clone, Debug, Default, Deserialize, Serialize)]
    pub(super) struct OptimizersConfigDiff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deleted_threshold: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vacuum_min_vector_number: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default_segment_number: Option<usize>,
        #[serde(
            default,
            alias = "max_segment_size_kb",
            skip_serializing_if = "Option::is_none"
        )]
        max_segment_size: Option<usize>,
        #[serde(
            default,
            alias = "memmap_threshold_kb",
            skip_serializing_if = "Option::is_none"
        )]
        memmap_threshold: Option<usize>,
        #[serde(
            default,
            alias = "indexing_threshold_kb",
            skip_serializing_if = "Option::is_none"
        )]
        indexing_threshold: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flush_interval_sec: Option<u64>,
        #[serde(default, skip_serializing)]
        max_optimization_threads: Option<MaxOptimizationThreads>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prevent_unoptimized: Option<bool>,
    }

    impl OptimizersConfigDiff {
        fn validate(&self, prefix: &str) -> Vec<String> {
            let mut errors = Vec::new();
            within(
                &mut errors,
                &format!("{prefix}deleted_threshold"),
                self.deleted_threshold,
                0.0,
                1.0,
            );
            at_least(
                &mut errors,
                &format!("{prefix}vacuum_min_vector_number"),
                self.vacuum_min_vector_number,
                100,
            );
            at_least(
                &mut errors,
                &format!("{prefix}max_segment_size"),
                self.max_segment_size,
                1,
            );
            errors
        }

        /// Merges into a stored `optimizer_config` (`"auto"` threads → `null`).
        fn apply(&self, target: &mut Value) {
            overlay(target, to_json(self));
            match self.max_optimization_threads {
                Some(MaxOptimizationThreads::Setting(MaxOptimizationThreadsSetting::Auto)) => {
                    *field(target, "max_optimization_threads") = Value::Null;
                }
                Some(MaxOptimizationThreads::Threads(threads)) => {
                    *field(target, "max_optimization_threads") = json!(threads);
                }
                None => {}
            }
        }
    }

    #[derive(Clone, Debug, Default, Deserialize, Serialize)]
    pub(super) struct CollectionParamsDiff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replication_factor: Option<NonZeroU32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_consistency_factor: Option<NonZeroU32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_fan_out_factor: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_fan_out_delay_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk_payload: Option<bool>,
    }

    // ----- Quantization ------------------------------------------------------------------------

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub(super) enum ScalarType {
        Int8,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct ScalarQuantizationConfig {
        r#type: ScalarType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quantile: Option<f32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        always_ram: Option<bool>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct ScalarQuantization {
        scalar: ScalarQuantizationConfig,
    }

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub(super) enum CompressionRatio {
        X4,
        X8,
        X16,
        X32,
        X64,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct ProductQuantizationConfig {
        compression: CompressionRatio,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        always_ram: Option<bool>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct ProductQuantization {
        product: ProductQuantizationConfig,
    }

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum BinaryQuantizationEncoding {
        OneBit,
        TwoBits,
        OneAndHalfBits,
    }

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub(super) enum BinaryQuantizationQueryEncoding {
        Default,
        Binary,
        Scalar4Bits,
        Scalar8Bits,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct BinaryQuantizationConfig {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        always_ram: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoding: Option<BinaryQuantizationEncoding>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query_encoding: Option<BinaryQuantizationQueryEncoding>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct BinaryQuantization {
        binary: BinaryQuantizationConfig,
    }

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    pub(super) enum TurboQuantBitSize {
        #[serde(rename = "bits1")]
        Bits1,
        #[serde(rename = "bits1_5")]
        Bits1Point5,
        #[serde(rename = "bits2")]
        Bits2,
        #[serde(rename = "bits4")]
        Bits4,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct TurboQuantQuantizationConfig {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        always_ram: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bits: Option<TurboQuantBitSize>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct TurboQuantization {
        turbo: TurboQuantQuantizationConfig,
    }

    /// `{"scalar": ..}`, `{"product": ..}`, `{"binary": ..}` or `{"turbo": ..}`.
    #[derive(Clone, Debug, Deserialize, Serialize)]
    #[serde(untagged)]
    pub(super) enum QuantizationConfig {
        Scalar(ScalarQuantization),
        Product(ProductQuantization),
        Binary(BinaryQuantization),
        Turbo(TurboQuantization),
    }

    /// The string `"Disabled"`.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    pub(super) enum Disabled {
        Disabled,
    }

    /// A quantization config, or `"Disabled"` to remove it.
    #[derive(Clone, Debug, Deserialize, Serialize)]
    #[serde(untagged)]
    pub(super) enum QuantizationConfigDiff {
        Scalar(ScalarQuantization),
        Product(ProductQuantization),
        Binary(BinaryQuantization),
        Turbo(TurboQuantization),
        Disabled(Disabled),
    }

    /// Sets `target[key]` from a quantization diff, or removes it (`remove_to_null`: sets
    /// `null` instead, as the collection-level `quantization_config` is always present).
    fn apply_quantization(
        target: &mut Value,
        key: &str,
        diff: &QuantizationConfigDiff,
        remove_to_null: bool,
    ) {
        match diff {
            QuantizationConfigDiff::Disabled(_) if remove_to_null => {
                *field(target, key) = Value::Null;
            }
            QuantizationConfigDiff::Disabled(_) => remove(target, key),
            other => *field(target, key) = to_json(other),
        }
    }

    // ----- Sparse vectors, strict mode ---------------------------------------------------------

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum Modifier {
        None,
        Idf,
    }

    #[derive(Clone, Debug, Default, Deserialize, Serialize)]
    pub(super) struct SparseIndexParams {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full_scan_threshold: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        datatype: Option<Datatype>,
    }

    #[derive(Clone, Debug, Default, Deserialize, Serialize)]
    pub(super) struct SparseVectorParams {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<SparseIndexParams>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        modifier: Option<Modifier>,
    }

    #[derive(Clone, Debug, Default, Deserialize, Serialize)]
    pub(super) struct StrictModeConfig {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_query_limit: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_timeout: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unindexed_filtering_retrieve: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unindexed_filtering_update: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        search_max_hnsw_ef: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        search_allow_exact: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        search_max_oversampling: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upsert_max_batchsize: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        search_max_batchsize: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_collection_vector_size_bytes: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_rate_limit: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_rate_limit: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_collection_payload_size_bytes: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_points_count: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter_max_conditions: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition_max_size: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multivector_config: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sparse_config: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_payload_index_count: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_resident_memory_percent: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_disk_usage_percent: Option<u8>,
    }

    impl StrictModeConfig {
        fn validate(&self, prefix: &str) -> Vec<String> {
            let mut errors = Vec::new();
            for (name, value) in [
                ("max_query_limit", self.max_query_limit),
                ("max_timeout", self.max_timeout),
                ("read_rate_limit", self.read_rate_limit),
                ("write_rate_limit", self.write_rate_limit),
                ("max_points_count", self.max_points_count),
            ] {
                at_least(&mut errors, &format!("{prefix}{name}"), value, 1);
            }
            for (name, value) in [
                (
                    "max_resident_memory_percent",
                    self.max_resident_memory_percent,
                ),
                ("max_disk_usage_percent", self.max_disk_usage_percent),
            ] {
                within(&mut errors, &format!("{prefix}{name}"), value, 1, 100);
            }
            errors
        }
    }

    // ----- PUT /collections/{name} -------------------------------------------------------------

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum ShardingMethod {
        Auto,
        Custom,
    }

    /// The body of `PUT /collections/{name}`.
    #[derive(Debug, Deserialize)]
    pub(super) struct CreateCollection {
        #[serde(default)]
        vectors: VectorsConfig,
        #[serde(default)]
        shard_number: Option<u32>,
        #[serde(default)]
        sharding_method: Option<ShardingMethod>,
        #[serde(default)]
        replication_factor: Option<u32>,
        #[serde(default)]
        write_consistency_factor: Option<u32>,
        #[serde(default)]
        on_disk_payload: Option<bool>,
        hnsw_config: Option<HnswConfigDiff>,
        wal_config: Option<WalConfigDiff>,
        #[serde(alias = "optimizer_config")]
        optimizers_config: Option<OptimizersConfigDiff>,
        #[serde(default, alias = "quantization")]
        quantization_config: Option<QuantizationConfig>,
        sparse_vectors: Option<BTreeMap<String, SparseVectorParams>>,
        strict_mode_config: Option<StrictModeConfig>,
        #[serde(default)]
        #[allow(dead_code, reason = "accepted and ignored, as Qdrant replaces it")]
        uuid: Option<String>,
        #[serde(default)]
        metadata: Option<Map<String, Value>>,
    }

    impl CreateCollection {
        /// Qdrant's request validation (422 when not empty).
        pub(super) fn validate(&self) -> Vec<String> {
            let mut errors = Vec::new();
            match &self.vectors {
                VectorsConfig::Single(params) => errors.extend(params.validate("vectors.")),
                VectorsConfig::Multi(vectors) => {
                    validate_each(&mut errors, "vectors", vectors.values(), |p, prefix| {
                        p.validate(prefix)
                    });
                }
            }
            at_least(&mut errors, "shard_number", self.shard_number, 1);
            at_least(
                &mut errors,
                "replication_factor",
                self.replication_factor,
                1,
            );
            at_least(
                &mut errors,
                "write_consistency_factor",
                self.write_consistency_factor,
                1,
            );
            if let Some(hnsw) = &self.hnsw_config {
                errors.extend(hnsw.validate("hnsw_config."));
            }
            if let Some(wal) = &self.wal_config {
                at_least(
                    &mut errors,
                    "wal_config.wal_capacity_mb",
                    wal.wal_capacity_mb,
                    1,
                );
            }
            if let Some(optimizers) = &self.optimizers_config {
                errors.extend(optimizers.validate("optimizers_config."));
            }
            if let Some(strict) = &self.strict_mode_config {
                errors.extend(strict.validate("strict_mode_config."));
            }
            errors
        }

        /// Qdrant's checks of vector names when the operation is built (`Wrong input: ...`).
        pub(super) fn check_vector_names(&self) -> Result<(), String> {
            if let VectorsConfig::Multi(vectors) = &self.vectors {
                for name in vectors.keys() {
                    if let Some(err) = vector_name_error(name) {
                        return Err(format!("Invalid dense vector name `{name}`: {err}"));
                    }
                }
            }
            let Some(sparse) = &self.sparse_vectors else {
                return Ok(());
            };
            for name in sparse.keys() {
                if let Some(err) = vector_name_error(name) {
                    return Err(format!("Invalid sparse vector name `{name}`: {err}"));
                }
            }
            if sparse.contains_key("") {
                return Err("Sparse vector name cannot be empty".to_owned());
            }
            let dense: Vec<&str> = match &self.vectors {
                VectorsConfig::Single(_) => vec![""],
                VectorsConfig::Multi(vectors) => vectors.keys().map(String::as_str).collect(),
            };
            match dense.into_iter().find(|name| sparse.contains_key(*name)) {
                Some(duplicate) => Err(format!(
                    "Dense and sparse vector names must be unique - duplicate found with '{duplicate}'"
                )),
                None => Ok(()),
            }
        }

        /// The stored config: the request over the stock `config.yaml` defaults of Qdrant 1.18.
        pub(super) fn into_config(self, default_shard_number: u32) -> Value {
            let shard_number = match self.sharding_method {
                Some(ShardingMethod::Custom) => self.shard_number.unwrap_or(1),
                _ => self.shard_number.unwrap_or(default_shard_number),
            };
            let mut params = json!({
                "vectors": to_json(&self.vectors),
                "shard_number": shard_number,
                "replication_factor": self.replication_factor.unwrap_or(1),
                "write_consistency_factor": self.write_consistency_factor.unwrap_or(1),
                "on_disk_payload": self.on_disk_payload.unwrap_or(true),
            });
            if let Some(method) = self.sharding_method {
                *field(&mut params, "sharding_method") = to_json(&method);
            }
            if let Some(sparse) = &self.sparse_vectors {
                *field(&mut params, "sparse_vectors") = to_json(sparse);
            }
            let mut hnsw = json!({
                "m": 16,
                "ef_construct": 100,
                "full_scan_threshold": 10000,
                "max_indexing_threads": 0,
                "on_disk": false,
            });
            if let Some(diff) = &self.hnsw_config {
                overlay(&mut hnsw, to_json(diff));
            }
            let mut optimizer = json!({
                "deleted_threshold": 0.2,
                "vacuum_min_vector_number": 1000,
                "default_segment_number": 0,
                "max_segment_size": null,
                "memmap_threshold": null,
                "indexing_threshold": 10000,
                "flush_interval_sec": 5,
                "max_optimization_threads": null,
                "prevent_unoptimized": null,
            });
            if let Some(diff) = &self.optimizers_config {
                diff.apply(&mut optimizer);
            }
            let mut wal =
                json!({"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1});
            if let Some(diff) = &self.wal_config {
                overlay(&mut wal, to_json(diff));
            }
            let mut config = json!({
                "params": params,
                "hnsw_config": hnsw,
                "optimizer_config": optimizer,
                "wal_config": wal,
                "quantization_config": to_json(&self.quantization_config),
            });
            if let Some(strict) = &self.strict_mode_config {
                *field(&mut config, "strict_mode_config") = to_json(strict);
            }
            if let Some(metadata) = self.metadata {
                *field(&mut config, "metadata") = Value::Object(metadata);
            }
            config
        }
    }

    // ----- PATCH /collections/{name} -----------------------------------------------------------

    #[derive(Clone, Debug, Default, Deserialize, Serialize)]
    pub(super) struct VectorParamsDiff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hnsw_config: Option<HnswConfigDiff>,
        #[serde(
            default,
            alias = "quantization",
            skip_serializing_if = "Option::is_none"
        )]
        quantization_config: Option<QuantizationConfigDiff>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
    }

    /// The body of `PATCH /collections/{name}`.
    #[derive(Debug, Deserialize)]
    pub(super) struct UpdateCollection {
        vectors: Option<BTreeMap<String, VectorParamsDiff>>,
        #[serde(alias = "optimizer_config")]
        optimizers_config: Option<OptimizersConfigDiff>,
        params: Option<CollectionParamsDiff>,
        hnsw_config: Option<HnswConfigDiff>,
        #[serde(default, alias = "quantization")]
        quantization_config: Option<QuantizationConfigDiff>,
        sparse_vectors: Option<BTreeMap<String, SparseVectorParams>>,
        strict_mode_config: Option<StrictModeConfig>,
        #[serde(default)]
        metadata: Option<Map<String, Value>>,
    }

    impl UpdateCollection {
        /// Qdrant's request validation (422 when not empty).
        pub(super) fn validate(&self) -> Vec<String> {
            let mut errors = Vec::new();
            if let Some(vectors) = &self.vectors {
                validate_each(&mut errors, "vectors", vectors.values(), |diff, prefix| {
                    diff.hnsw_config
                        .as_ref()
                        .map(|h| h.validate(&format!("{prefix}hnsw_config.")))
                        .unwrap_or_default()
                });
            }
            if let Some(optimizers) = &self.optimizers_config {
                errors.extend(optimizers.validate("optimizers_config."));
            }
            if let Some(hnsw) = &self.hnsw_config {
                errors.extend(hnsw.validate("hnsw_config."));
            }
            if let Some(strict) = &self.strict_mode_config {
                errors.extend(strict.validate("strict_mode_config."));
            }
            errors
        }

        /// Applies the update to a stored config in Qdrant's order; the error (a `Wrong input`
        /// description) leaves the sections before it applied.
        pub(super) fn apply(&self, config: &mut Value) -> Result<(), String> {
            if let Some(diff) = &self.optimizers_config {
                diff.apply(field(config, "optimizer_config"));
            }
            if let Some(diff) = &self.params {
                overlay(field(config, "params"), to_json(diff));
            }
            if let Some(diff) = &self.hnsw_config {
                overlay(field(config, "hnsw_config"), to_json(diff));
            }
            if let Some(diff) = &self.vectors {
                update_vectors(field(field(config, "params"), "vectors"), diff)?;
            }
            if let Some(diff) = &self.quantization_config {
                apply_quantization(config, "quantization_config", diff, true);
            }
            if let Some(diff) = &self.sparse_vectors {
                update_sparse_vectors(field(config, "params"), diff)?;
            }
            if let Some(diff) = &self.strict_mode_config {
                overlay(field(config, "strict_mode_config"), to_json(diff));
            }
            if let Some(metadata) = &self.metadata {
                let stored = field(config, "metadata");
                if stored.is_object() {
                    for (key, value) in metadata {
                        if value.is_null() {
                            remove(stored, key);
                        } else {
                            *field(stored, key) = value.clone();
                        }
                    }
                } else {
                    *stored = Value::Object(metadata.clone());
                }
            }
            Ok(())
        }
    }

    fn missing_vector(name: &str) -> String {
        format!("Not existing vector name error: {name}")
    }

    /// Qdrant's `update_vectors_from_diff`: every name must exist (`""` is the unnamed vector)
    /// before anything changes.
    fn update_vectors(
        vectors: &mut Value,
        diff: &BTreeMap<String, VectorParamsDiff>,
    ) -> Result<(), String> {
        let single = is_single(vectors);
        for name in diff.keys() {
            let exists = if single {
                name.is_empty()
            } else {
                vectors.get(name).is_some_and(Value::is_object)
            };
            if !exists {
                return Err(missing_vector(name));
            }
        }
        for (name, update) in diff {
            let params = if single {
                &mut *vectors
            } else {
                field(vectors, name)
            };
            if let Some(hnsw) = &update.hnsw_config {
                let stored = field(params, "hnsw_config");
                overlay(stored, to_json(hnsw));
                if stored.as_object().is_none_or(Map::is_empty) {
                    remove(params, "hnsw_config");
                }
            }
            if let Some(quantization) = &update.quantization_config {
                apply_quantization(params, "quantization_config", quantization, false);
            }
            if let Some(on_disk) = update.on_disk {
                *field(params, "on_disk") = json!(on_disk);
            }
        }
        Ok(())
    }

    /// Qdrant's `update_sparse_vectors_from_other`: names must exist; `modifier` replaces,
    /// `index` merges field by field.
    fn update_sparse_vectors(
        params: &mut Value,
        diff: &BTreeMap<String, SparseVectorParams>,
    ) -> Result<(), String> {
        for name in diff.keys() {
            if !params["sparse_vectors"]
                .get(name)
                .is_some_and(Value::is_object)
            {
                return Err(missing_vector(name));
            }
        }
        let sparse = field(params, "sparse_vectors");
        for (name, update) in diff {
            let stored = field(sparse, name);
            if let Some(modifier) = update.modifier {
                *field(stored, "modifier") = to_json(&modifier);
            }
            if let Some(index) = &update.index {
                overlay(field(stored, "index"), to_json(index));
            }
        }
        Ok(())
    }

    // ----- Payload indexes ---------------------------------------------------------------------

    #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum PayloadSchemaType {
        Keyword,
        Integer,
        Float,
        Geo,
        Text,
        Bool,
        Datetime,
        Uuid,
    }

    /// One-variant `type` tags of the index parameter objects.
    macro_rules! type_tag {
        ($name:ident, $variant:ident) => {
            #[derive(Clone, Copy, Debug, Deserialize, Serialize)]
            #[serde(rename_all = "snake_case")]
            pub(super) enum $name {
                $variant,
            }
        };
    }
    type_tag!(KeywordIndexType, Keyword);
    type_tag!(IntegerIndexType, Integer);
    type_tag!(FloatIndexType, Float);
    type_tag!(GeoIndexType, Geo);
    type_tag!(TextIndexType, Text);
    type_tag!(BoolIndexType, Bool);
    type_tag!(DatetimeIndexType, Datetime);
    type_tag!(UuidIndexType, Uuid);

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct KeywordIndexParams {
        r#type: KeywordIndexType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_tenant: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_hnsw: Option<bool>,
    }

    /// Qdrant writes `lookup`, `range` and `is_principal` even when unset (`null`).
    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct IntegerIndexParams {
        r#type: IntegerIndexType,
        lookup: Option<bool>,
        range: Option<bool>,
        is_principal: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_hnsw: Option<bool>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct FloatIndexParams {
        r#type: FloatIndexType,
        is_principal: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_hnsw: Option<bool>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct GeoIndexParams {
        r#type: GeoIndexType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_hnsw: Option<bool>,
    }

    #[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum TokenizerType {
        Prefix,
        Whitespace,
        #[default]
        Word,
        Multilingual,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct TextIndexParams {
        r#type: TextIndexType,
        #[serde(default)]
        tokenizer: TokenizerType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_token_len: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_token_len: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lowercase: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ascii_folding: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phrase_matching: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopwords: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stemmer: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_hnsw: Option<bool>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct BoolIndexParams {
        r#type: BoolIndexType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_hnsw: Option<bool>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct DatetimeIndexParams {
        r#type: DatetimeIndexType,
        is_principal: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_hnsw: Option<bool>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub(super) struct UuidIndexParams {
        r#type: UuidIndexType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_tenant: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enable_hnsw: Option<bool>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    #[serde(untagged)]
    pub(super) enum PayloadSchemaParams {
        Keyword(KeywordIndexParams),
        Integer(IntegerIndexParams),
        Float(FloatIndexParams),
        Geo(GeoIndexParams),
        Text(TextIndexParams),
        Bool(BoolIndexParams),
        Datetime(DatetimeIndexParams),
        Uuid(UuidIndexParams),
    }

    impl PayloadSchemaParams {
        fn kind(&self) -> PayloadSchemaType {
            match self {
                Self::Keyword(_) => PayloadSchemaType::Keyword,
                Self::Integer(_) => PayloadSchemaType::Integer,
                Self::Float(_) => PayloadSchemaType::Float,
                Self::Geo(_) => PayloadSchemaType::Geo,
                Self::Text(_) => PayloadSchemaType::Text,
                Self::Bool(_) => PayloadSchemaType::Bool,
                Self::Datetime(_) => PayloadSchemaType::Datetime,
                Self::Uuid(_) => PayloadSchemaType::Uuid,
            }
        }
    }

    /// A type name (`"keyword"`) or a parameter object (`{"type": "keyword", ...}`).
    #[derive(Clone, Debug, Deserialize, Serialize)]
    #[serde(untagged)]
    pub(super) enum PayloadFieldSchema {
        FieldType(PayloadSchemaType),
        FieldParams(PayloadSchemaParams),
    }

    impl PayloadFieldSchema {
        /// The `payload_schema` entry of a new index: `{data_type, params?, points: 0}`.
        pub(super) fn index_info(&self) -> Value {
            match self {
                Self::FieldType(kind) => json!({"data_type": kind, "points": 0}),
                Self::FieldParams(params) => {
                    json!({"data_type": params.kind(), "params": params, "points": 0})
                }
            }
        }
    }

    /// The body of `PUT /collections/{name}/index`.
    #[derive(Debug, Deserialize)]
    pub(super) struct CreateFieldIndex {
        pub(super) field_name: String,
        #[serde(default, alias = "field_type")]
        pub(super) field_schema: Option<PayloadFieldSchema>,
    }

    // ----- Aliases -----------------------------------------------------------------------------

    #[derive(Debug, Deserialize)]
    pub(super) struct CreateAlias {
        pub(super) collection_name: String,
        pub(super) alias_name: String,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct CreateAliasOperation {
        pub(super) create_alias: CreateAlias,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct DeleteAlias {
        pub(super) alias_name: String,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct DeleteAliasOperation {
        pub(super) delete_alias: DeleteAlias,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct RenameAlias {
        pub(super) old_alias_name: String,
        pub(super) new_alias_name: String,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct RenameAliasOperation {
        pub(super) rename_alias: RenameAlias,
    }

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub(super) enum AliasOperations {
        Create(CreateAliasOperation),
        Delete(DeleteAliasOperation),
        Rename(RenameAliasOperation),
    }

    /// The body of `POST /collections/aliases`.
    #[derive(Debug, Deserialize)]
    pub(super) struct ChangeAliasesOperation {
        pub(super) actions: Vec<AliasOperations>,
    }

    // ----- Cluster operations ------------------------------------------------------------------

    /// How a shard is transferred (`lib/collection/src/shards/transfer/mod.rs`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum ShardTransferMethod {
        StreamRecords,
        Snapshot,
        WalDelta,
        ReshardingStreamRecords,
    }

    /// The body of `move_shard` and of `replicate_shard` (Qdrant's `MoveShard` and
    /// `ReplicateShard` have the same fields). `to_shard_id` is hidden from Qdrant's schema
    /// but accepted.
    #[derive(Debug, Deserialize)]
    pub(super) struct MoveShard {
        shard_id: u32,
        #[serde(default)]
        to_shard_id: Option<u32>,
        to_peer_id: u64,
        from_peer_id: u64,
        #[serde(default)]
        method: Option<ShardTransferMethod>,
    }

    impl MoveShard {
        /// The transfer to start; without `method`, 1.18's default (`snapshot`, from
        /// `Collection::default_shard_transfer_method` with no `shard_transfer_method`
        /// configured).
        pub(super) fn transfer(&self, sync: bool) -> super::FakeTransfer {
            super::FakeTransfer {
                shard_id: self.shard_id,
                to_shard_id: self.to_shard_id,
                from: self.from_peer_id,
                to: self.to_peer_id,
                sync,
                method: self.method.unwrap_or(ShardTransferMethod::Snapshot),
            }
        }

        fn peers(&self) -> (u64, u64, u32, Option<u32>) {
            (
                self.from_peer_id,
                self.to_peer_id,
                self.shard_id,
                self.to_shard_id,
            )
        }
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct MoveShardOperation {
        pub(super) move_shard: MoveShard,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct ReplicateShardOperation {
        pub(super) replicate_shard: MoveShard,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct AbortShardTransfer {
        shard_id: u32,
        #[serde(default)]
        to_shard_id: Option<u32>,
        to_peer_id: u64,
        from_peer_id: u64,
    }

    impl AbortShardTransfer {
        /// The key of the transfer to abort (`sync` and `method` are not part of it).
        pub(super) fn key(&self) -> super::FakeTransfer {
            super::FakeTransfer {
                shard_id: self.shard_id,
                to_shard_id: self.to_shard_id,
                from: self.from_peer_id,
                to: self.to_peer_id,
                sync: false,
                method: ShardTransferMethod::Snapshot,
            }
        }
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct AbortTransferOperation {
        pub(super) abort_transfer: AbortShardTransfer,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct Replica {
        pub(super) shard_id: u32,
        pub(super) peer_id: u64,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct DropReplicaOperation {
        pub(super) drop_replica: Replica,
    }

    /// The body of `POST /collections/{name}/cluster`: the operations the fake implements, in
    /// Qdrant's order (Qdrant's enum also has sharding-key, resharding, restart and
    /// replicate-points operations, which the fake does not decode).
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub(super) enum ClusterOperations {
        MoveShard(MoveShardOperation),
        ReplicateShard(ReplicateShardOperation),
        AbortTransfer(AbortTransferOperation),
        DropReplica(DropReplicaOperation),
    }

    impl ClusterOperations {
        /// Qdrant's `validate_shard_different_peers` (422 when not empty).
        pub(super) fn validate(&self) -> Vec<String> {
            let (operation, (from, to, shard, to_shard)) = match self {
                Self::MoveShard(op) => ("move_shard", op.move_shard.peers()),
                Self::ReplicateShard(op) => ("replicate_shard", op.replicate_shard.peers()),
                Self::AbortTransfer(op) => {
                    let t = &op.abort_transfer;
                    (
                        "abort_transfer",
                        (t.from_peer_id, t.to_peer_id, t.shard_id, t.to_shard_id),
                    )
                }
                Self::DropReplica(_) => return Vec::new(),
            };
            if from != to || to_shard.is_some_and(|to_shard| to_shard != shard) {
                return Vec::new();
            }
            vec![format!(
                "{operation}.to_peer_id: cannot transfer shard to itself, \"to_peer_id\" must be different than {from} in \"from_peer_id\""
            )]
        }
    }
}
