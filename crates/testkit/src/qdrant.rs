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
//! | `GET /cluster/metadata/keys` | the keys, sorted                                              |
//! | `GET`, `PUT`, `DELETE /cluster/metadata/keys/{key}` | the value (`null` if none); `result: true` |
//! | `POST /collections/{c}/points/count` | `{"count": N}` (read-only key allowed)                |
//! | `GET /collections/{c}/snapshots` | `[{"name", "creation_time", "size", "checksum"?}]` (this peer's) |
//! | `POST /collections/{c}/snapshots` | the new snapshot's description (`?wait=false`: 202)       |
//! | `GET /collections/{c}/snapshots/{s}` | the file, streamed, `Content-Length`; errors in plain text |
//! | `DELETE /collections/{c}/snapshots/{s}` | `result: true`                                      |
//! | `PUT /collections/{c}/snapshots/recover` | `result: true` once recovered                      |
//! | `POST /collections/{c}/snapshots/upload` | multipart part `snapshot`, `result: true`          |
//! | `GET`, `POST /collections/{c}/shards/{s}/snapshots` | as for collections, for one shard      |
//! | `GET`, `DELETE /collections/{c}/shards/{s}/snapshots/{name}` | as for collections         |
//! | `PUT /collections/{c}/shards/{s}/snapshots/recover` | `result: true`                          |
//! | `POST /collections/{c}/shards/{s}/snapshots/upload` | `result: null`                          |
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
//! - Collection `metadata` (a JSON map, returned as `config.metadata`, absent when never
//!   given): a create stores it as given (nulls included); a `PATCH` of a collection without
//!   metadata stores the map as given, otherwise it sets each key it names (a nested value
//!   replaced whole), removes each it sets to `null` and keeps the others; `{}` or `null`
//!   changes nothing; a non-map is 400 `Format error in JSON body: invalid type: ...`.
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
//! - Joining: [`FakeQdrant::bootstrap_peer`] models a fresh peer's `--bootstrap` join
//!   (`AddPeerToKnown` in `src/tonic/api/raft_api.rs`): refused while another peer registered
//!   with the same URI still holds replicas, otherwise that peer is replaced.
//!
//! Cluster metadata (`src/actix/api/cluster_api.rs`,
//! `lib/storage/src/content_manager/consensus/persistent.rs`): `PUT` stores any JSON value
//! (`null` removes the key), `DELETE` removes it (`true` also for a missing key), `GET` of a
//! missing key answers `null`, the key list is sorted. Outside cluster mode every route answers
//! 500 `Service internal error: Qdrant is running in standalone mode`. The `PUT` body is read
//! by actix's plain JSON extractor: a non-JSON content type is 400 text `Content type error`,
//! a malformed body 400 text `Json deserialize error: ..`. The read-only key may read, not
//! write (403 `Forbidden: Global manage access is required`).
//!
//! Peer views: [`FakeQdrant::peer_view`] adds a listener on another port that shares the
//! whole state and answers as another peer, so a 3-peer cluster is one fake (peers 1, 2, 3 in
//! [`ClusterState::peers`], answering as 1) plus views for 2 and 3. What depends on the
//! answering peer: `GET /cluster` (`peer_id`, `role`), the local/remote split of `GET
//! /collections/{c}/cluster`, and everything about snapshots (each peer has its own snapshot
//! directory). Requests are recorded in one shared log ([`RecordedRequest::peer_id`]); faults
//! are injected per listener.
//!
//! Points and counts: the fake keeps a point count per shard (every replica of a shard holds
//! the same points); [`FakeQdrant::set_points_count`] spreads a total evenly,
//! [`FakeQdrant::set_shard_points`] sets one shard. `points_count` in the collection info and
//! `POST /collections/{c}/points/count` answer the sum (`count_api.rs`; `filter`, `shard_key`
//! and `exact` are accepted and ignored). `local_shards[].points_count` is the shard's count.
//!
//! Snapshots follow Qdrant 1.18's `src/actix/api/snapshot_api.rs`, `src/common/snapshots.rs`,
//! `src/common/collections.rs`, `lib/collection/src/collection/snapshots.rs`,
//! `lib/collection/src/shards/shard_holder/mod.rs`,
//! `lib/collection/src/common/{snapshots_manager,snapshot_stream}.rs`,
//! `lib/storage/src/content_manager/snapshots/{mod,recover,download,download_tar}.rs`,
//! `lib/storage/src/content_manager/errors.rs` and `src/actix/helpers.rs`:
//!
//! - A fake snapshot file is self-describing: one line of JSON, `{"fakeQdrantSnapshot": 1,
//!   "name", "collection", "peerId", "shardId": <s>|null, "createdAt", "config": <the
//!   collection's config>, "payloadSchema", "shards": {"<shard id>": <points>}}` and `\n`,
//!   then padding bytes ([`FakeQdrant::set_snapshot_padding`], default
//!   [`DEFAULT_SNAPSHOT_PADDING`]) from a repeating pseudo-random 64 KiB block, generated when
//!   read and never stored. A collection snapshot holds the shards that have a replica on the
//!   peer that made it (as Qdrant's holds only that peer's local shards); a shard snapshot its
//!   one shard. Creating one computes its SHA-256 in one streaming pass (off the runtime) and
//!   answers `{name, creation_time, size, checksum}`; names are `{c}-{peer}-{YYYY-MM-DD-hh-mm-
//!   ss}.snapshot` and `{c}-shard-{s}-{...}.snapshot`, and a second one in the same second
//!   replaces the first, as on disk. Snapshots outlive their collection (Qdrant keeps the
//!   directory) and are listed again if it is recreated; listings are sorted by name (Qdrant:
//!   directory order) and show only `*.snapshot` files.
//! - Downloads stream the file with `Content-Type: application/octet-stream`, `Content-Length`
//!   and `Content-Disposition: attachment`; [`FakeQdrant::fail_download_after`] breaks the
//!   next one off. Download errors are plain text (actix's default error body): missing
//!   collection 404 `Not found: Collection `{c}` doesn't exist!`, missing collection snapshot
//!   404 `Not found: Snapshot {s} not found`, missing shard snapshot 404 `File not found: No
//!   such file or directory (os error 2)`; before the peer's first snapshot of the
//!   collection (Qdrant creates the directory then) downloading or deleting one is 404 `Not
//!   found: Snapshot directory: ./snapshots/{c} not found`.
//! - Shards: unknown shard 404 `Not found: shard {s} not found`; no replica on the answering
//!   peer: 400 `Wrong input: Shard {s} is not a local or queue proxy shard` (create, download,
//!   delete) or `Wrong input: Shard {s} is not a local shard` (list). Deleting a missing
//!   collection snapshot: 404 `Not found: Snapshot {s} not found`; a missing shard snapshot:
//!   404 `Not found: Snapshot "./snapshots/{c}/shards/{s}/{name}" not found`.
//! - Collection recovery (`PUT .../snapshots/recover`, body `{location, priority?, checksum?,
//!   api_key?}`): `location` must be an absolute URL (else 400 `Format error in JSON body:
//!   invalid value: string ..`); a malformed checksum is 422. `http(s)`: the fake downloads it
//!   itself (sending `api_key` as `api-key`; http only, no CA for https), streaming it (hashed
//!   only when a checksum is asked for, as Qdrant does) and keeping only the header line: a non-2xx reply is 400 `Wrong input: Failed to
//!   download tar from {url}: status - {status}`, no connection 500 `Service internal error:
//!   Http request error: ..`, a broken body or a file that is not a fake snapshot 500 `Service
//!   internal error: Failed to unpack tar archive: ..`. `file://`: a snapshot stored on the
//!   answering peer, as `file:///qdrant/snapshots/{c}/{name}` ([`FAKE_SNAPSHOTS_PATH`]); a
//!   missing one is 400 `Bad request: Snapshot file "{path}" does not exist`, an existing file
//!   outside that directory 403 `Forbidden: Snapshot file path must be inside the snapshots
//!   directory "/qdrant/snapshots"`. Other schemes: 400 `Bad request: URL {url} with scheme
//!   {s} is not supported`. With [`FakeQdrant::set_snapshot_url_recovery`] off, `http(s)` is
//!   403 `Forbidden: Snapshot recovery from remote URLs is disabled in the configuration`. A
//!   checksum that differs: 400 `Wrong input: Snapshot checksum mismatch: expected {given},
//!   got {actual}`. Then: a missing collection is created from the header's config and
//!   payload indexes (placed as a new collection); an existing one must have the same
//!   `params.vectors` (else 400 `Wrong input: Snapshot is not compatible with existing
//!   collection: Collection vectors: {..} Snapshot Vectors: {..}`, values printed as JSON where
//!   Qdrant prints Rust debug output) and `shard_number`. Each shard in the header gets its
//!   points and a replica on the answering peer; with other active replicas, `priority`
//!   decides: `snapshot` (default) removes the replicas beyond the replication factor and
//!   marks the rest `Dead`, then copies the restored replica to them (a transfer, as Qdrant
//!   recovers a dead replica from an active one), `replica` starts a transfer to the restored
//!   replica, `no_sync` leaves them. A shard snapshot given to collection recovery: 500 `Service internal error:
//!   failed to open file `config.json`: ..`.
//! - Shard recovery (`PUT .../shards/{s}/snapshots/recover`): the collection (404) and shard
//!   (404 `Not found: shard {s} not found`) must exist; `location` is an `http(s)` URL (other
//!   schemes: 400 `Wrong input: Invalid snapshot URL {url}: URLs with {scheme} scheme are not
//!   supported`) or the name of a shard snapshot stored on the answering peer (which must
//!   hold a replica). The shard gets the header's points; the answering peer's replica
//!   becomes `Active` (added if missing) and, with other active replicas, `snapshot` marks
//!   them `Dead` and copies the restored replica to them, `replica` marks the restored one
//!   `Dead`. A collection snapshot: 400 `Bad
//!   request: Invalid snapshot`.
//! - Uploads (`multipart/form-data`, file in part `snapshot`, query `wait`, `priority`,
//!   `checksum`) are parsed as a stream: only the header line is kept, whatever the size. A
//!   checksum that differs: 400 `Checksum mismatch: expected {actual}, actual {given}` (sic).
//!   A collection upload is kept in the collection's snapshot directory under the part's file
//!   name (listed without checksum; its download regenerates the padding, so it matches only
//!   fake-made bytes) and recovered from `file:///qdrant/snapshots/{c}/{file}`; a shard upload
//!   is restored like a shard recovery and answers `result: null`. A malformed multipart
//!   body: 400 plain text (`Multipart stream is incomplete`, ..). The read-only key gets a
//!   plain-text 403 on the upload routes (their auth extractor's error).
//! - [`FakeQdrant::recoveries`] / [`FakeQdrant::recovered_from`] list the successful
//!   recoveries. `?wait=false` answers 202 `{"status": "accepted"}` (the fake still does the
//!   work first).
//!
//! Authentication, when a key is set: the key is read from the `api-key` header, else from
//! `Authorization: Bearer <key>`; none → 401 text `Must provide an API key or an Authorization
//! bearer token`; unknown → 401 text `Invalid API key or JWT`; the read-only key on a write →
//! 403 JSON `Forbidden: Global manage access is required`. `/`, `/healthz`, `/readyz`,
//! `/livez` need no key. Errors from handlers use Qdrant's envelope
//! `{"status": {"error": "<message>"}, "time": <seconds>}`.
//!
//! Extending it: add fields to the private `State`,
//! a `*_routes()` function returning a `Router<Arc<Shared>>`, merge it in `router()`, and
//! answer with `ok()` / `error()` so the envelope stays right. Routes usable with the read-only
//! key other than GETs (search, scroll, ...) go into `READ_ONLY_POST_SUFFIXES`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, RawQuery, Request, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use url::Url;

use reconcile_lib::qdrant::{RaftRole, SnapshotPriority};

/// The Qdrant version the fake reports on `GET /`.
pub const FAKE_QDRANT_VERSION: &str = "1.18.3";

/// Qdrant's 401 body when no key is sent.
pub const MISSING_KEY_MESSAGE: &str = "Must provide an API key or an Authorization bearer token";
/// Qdrant's 401 body when the key matches neither configured key.
pub const WRONG_KEY_MESSAGE: &str = "Invalid API key or JWT";
/// Qdrant's 403 error message when the read-only key is used for a write.
pub const READ_ONLY_DENIED_MESSAGE: &str = "Forbidden: Global manage access is required";

/// HTTP status the fake answers `Wrong input: Collection `{c}` already exists!` with (creating
/// an existing collection, or an alias named like a collection): 409, as a real Qdrant 1.18.3
/// answers (`StorageError::AlreadyExists` in `src/actix/helpers.rs`; the contract suite checks
/// it against the server). [`reconcile_lib::qdrant::QdrantError::is_already_exists`] also accepts 400.
pub const ALREADY_EXISTS_STATUS: StatusCode = StatusCode::CONFLICT;

/// Path suffixes of the POST routes the read-only key may call (reads such as
/// `/points/search` and `/points/scroll`): of those, the fake implements `/points/count`.
const READ_ONLY_POST_SUFFIXES: &[&str] = &["/points/count"];

/// Where the fake's peers keep their snapshots, as a real peer reports it: the stock
/// `storage.snapshots_path` (`./snapshots`) in Qdrant's container image (working directory
/// `/qdrant`). `file://` recovery locations are resolved against it.
pub const FAKE_SNAPSHOTS_PATH: &str = "/qdrant/snapshots";

/// Default number of padding bytes after a fake snapshot's header line: 1 KiB.
pub const DEFAULT_SNAPSHOT_PADDING: u64 = 1024;

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
    /// The peer the request was answered as: the main listener's [`ClusterState::peer_id`] at
    /// that time, or a [`FakeQdrant::peer_view`]'s peer.
    pub peer_id: u64,
}

/// A running fake Qdrant listener; stops when dropped. All setters take effect on the next
/// request. [`FakeQdrant::start`] makes the main listener; [`FakeQdrant::peer_view`] makes
/// others on the same state, each answering as one peer.
pub struct FakeQdrant {
    url: Url,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    /// This listener's id (0 for the main listener), scoping its injected faults.
    listener: usize,
    /// The peer this listener answers as; `None`: [`ClusterState::peer_id`].
    peer: Option<u64>,
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
                next_listener: 0,
                snapshots: BTreeMap::new(),
                snapshot_padding: DEFAULT_SNAPSHOT_PADDING,
                snapshot_url_recovery: true,
                download_faults: Vec::new(),
                recoveries: Vec::new(),
                uploads: 0,
                cluster_metadata: BTreeMap::new(),
            }),
        });
        let listener = Arc::new(Listener {
            shared: shared.clone(),
            id: 0,
            peer: None,
        });
        let (url, server) = serve(listener).await?;
        Ok(Self {
            url,
            shared,
            server,
            listener: 0,
            peer: None,
        })
    }

    /// Another listener on a new `127.0.0.1` port sharing this fake's state (collections,
    /// placement, keys, snapshots, recorded requests), answering every request as peer
    /// `peer_id`: `GET /cluster` reports it (`Leader` when it is [`ClusterState::leader`], else
    /// `Follower`), `GET /collections/{c}/cluster` splits local and remote replicas for it,
    /// and snapshots are created, listed, served, recovered and deleted in its own snapshot
    /// directory. A 3-peer cluster is one fake whose [`ClusterState::peers`] are 1, 2 and 3
    /// (answering as 1) plus views for 2 and 3. The view stops when dropped; the listeners
    /// are independent otherwise.
    ///
    /// Requests are recorded in one shared log ([`RecordedRequest::peer_id`] tells which
    /// peer answered). Faults injected through a handle ([`Self::fail_next`],
    /// [`Self::delay_next`], [`Self::fail_download_after`]) apply to that handle's listener
    /// only; every other setter changes the shared state.
    ///
    /// # Panics
    /// When no local port can be bound; see [`Self::try_peer_view`].
    pub async fn peer_view(&self, peer_id: u64) -> FakeQdrant {
        match self.try_peer_view(peer_id).await {
            Ok(view) => view,
            Err(e) => panic!("cannot start a fake Qdrant peer view on 127.0.0.1: {e}"),
        }
    }

    /// Like [`Self::peer_view`], returning the bind error instead of panicking.
    ///
    /// # Errors
    /// The I/O error from binding or inspecting the listener.
    pub async fn try_peer_view(&self, peer_id: u64) -> std::io::Result<FakeQdrant> {
        let id = {
            let mut state = self.shared.lock();
            state.next_listener += 1;
            state.next_listener
        };
        let listener = Arc::new(Listener {
            shared: self.shared.clone(),
            id,
            peer: Some(peer_id),
        });
        let (url, server) = serve(listener).await?;
        Ok(FakeQdrant {
            url,
            shared: self.shared.clone(),
            server,
            listener: id,
            peer: Some(peer_id),
        })
    }

    /// The peer this listener answers as now.
    pub fn peer_id(&self) -> u64 {
        self.peer
            .unwrap_or_else(|| self.shared.lock().this_peer_id())
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

    /// Makes `GET /readyz` answer 200 (true) or 503 (false).
    pub fn set_ready(&self, ready: bool) {
        self.shared.lock().ready = ready;
    }

    /// The next `times` requests to this listener whose path contains `path_contains` (after
    /// authentication) fail with `status` and Qdrant's error shape for it: a JSON envelope whose message is
    /// prefixed as Qdrant does (`Service internal error: ` for 500, `Not found: ` for 404,
    /// ...), or the plain-text body for 401. An invalid status code is treated as 500.
    pub fn fail_next(&self, path_contains: &str, status: u16, times: usize) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.add_fault(None, path_contains, FaultKind::Status(status), times);
    }

    /// The next `times` requests to this listener whose path contains `path_contains` (after
    /// authentication) are answered normally, but only after `delay` (to exercise client
    /// timeouts).
    pub fn delay_next(&self, path_contains: &str, delay: Duration, times: usize) {
        self.add_fault(None, path_contains, FaultKind::Delay(delay), times);
    }

    /// The next request to this listener whose path contains `path_contains` (after
    /// authentication) waits until [`HeldRequest::release`] is called, then is answered
    /// normally (to stop a run at a known point, e.g. a controller task mid-download).
    pub fn hold_next(&self, path_contains: &str) -> HeldRequest {
        self.hold(None, path_contains)
    }

    /// [`Self::hold_next`] for a request with `method` only (e.g. the `PUT` that creates a
    /// collection, not the `GET` of the same path).
    pub fn hold_next_with(&self, method: Method, path_contains: &str) -> HeldRequest {
        self.hold(Some(method), path_contains)
    }

    fn hold(&self, method: Option<Method>, path_contains: &str) -> HeldRequest {
        let held = HeldRequest {
            reached: Arc::new(tokio::sync::Notify::new()),
            released: Arc::new(tokio::sync::Semaphore::new(0)),
        };
        self.add_fault(method, path_contains, FaultKind::Hold(held.clone()), 1);
        held
    }

    fn add_fault(
        &self,
        method: Option<Method>,
        path_contains: &str,
        kind: FaultKind,
        times: usize,
    ) {
        if times > 0 {
            self.shared.lock().faults.push(Fault {
                listener: self.listener,
                method,
                path_contains: path_contains.to_owned(),
                kind,
                remaining: times,
            });
        }
    }

    /// Every request so far, to every listener, as (method, path), in arrival order.
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

    /// Sets the `points_count` reported for collection `name` (as if points were written),
    /// spread evenly over its shards (the first shards get one more when it does not divide).
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn set_points_count(&self, name: &str, points: u64) {
        let mut state = self.shared.lock();
        match state.collections.get_mut(name) {
            Some(collection) => collection.set_points(points),
            None => panic!("the fake Qdrant has no collection {name:?}"),
        }
    }

    /// Sets the points of one shard of collection `name` (every replica of a shard holds the
    /// same points in the fake).
    ///
    /// # Panics
    /// When there is no collection `name` or no shard `shard_id` in it (a test bug).
    pub fn set_shard_points(&self, name: &str, shard_id: u32, points: u64) {
        let mut state = self.shared.lock();
        let Some(collection) = state.collections.get_mut(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        if !collection.shards.contains_key(&shard_id) {
            panic!("collection {name:?} of the fake Qdrant has no shard {shard_id}");
        }
        collection.shard_points.insert(shard_id, points);
    }

    /// The points of each shard of collection `name`, by shard id.
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn shard_points(&self, name: &str) -> BTreeMap<u32, u64> {
        let state = self.shared.lock();
        let Some(collection) = state.collections.get(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        collection
            .shards
            .keys()
            .map(|shard| (*shard, collection.points_of(*shard)))
            .collect()
    }

    /// Padding bytes after the header line of the snapshots created from now on (default
    /// [`DEFAULT_SNAPSHOT_PADDING`]). They are generated on the fly, never stored: a snapshot
    /// of 2 GiB costs no memory, only the time to checksum it once at creation (SHA-256 of an
    /// unoptimised `sha2`, as in a dev-profile test, runs at about 10 MB/s).
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

    /// Qdrant's `service.enable_snapshot_url_recovery` (default `true`): when `false`,
    /// recovering from an `http(s)` location answers 403 `Forbidden: Snapshot recovery from
    /// remote URLs is disabled in the configuration`.
    pub fn set_snapshot_url_recovery(&self, enabled: bool) {
        self.shared.lock().snapshot_url_recovery = enabled;
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
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

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

/// One listener of the fake: the shared state and the peer it answers as.
struct Listener {
    shared: Arc<Shared>,
    /// 0 for the main listener.
    id: usize,
    /// `None`: [`ClusterState::peer_id`] (or the standalone peer).
    peer: Option<u64>,
}

/// Who answers a request, put into request extensions by `gate`.
#[derive(Clone, Copy, Debug)]
struct Answering {
    listener: usize,
    peer: u64,
}

/// Binds `127.0.0.1:0` and serves `listener` on it.
async fn serve(listener: Arc<Listener>) -> std::io::Result<(Url, JoinHandle<()>)> {
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
    /// The highest listener id handed out.
    next_listener: usize,
    /// Each peer's snapshot directories: (peer, collection directory, shard) → name → file.
    snapshots: BTreeMap<SnapshotDir, BTreeMap<String, FakeSnapshot>>,
    /// Padding bytes of new snapshots.
    snapshot_padding: u64,
    /// `service.enable_snapshot_url_recovery`.
    snapshot_url_recovery: bool,
    /// (listener, bytes): the next download from that listener breaks after so many bytes.
    download_faults: Vec<(usize, u64)>,
    /// Successful recoveries, in order.
    recoveries: Vec<FakeRecovery>,
    /// Uploads received without a file name so far (to name them).
    uploads: u64,
    /// Cluster metadata (`/cluster/metadata/keys`): key → JSON value; a `null` value is never
    /// stored (writing `null` removes the key, as in Qdrant).
    cluster_metadata: BTreeMap<String, Value>,
}

impl State {
    /// Consumes one use of the first fault of `listener` matching `path`.
    fn take_fault(&mut self, listener: usize, method: &Method, path: &str) -> Option<FaultKind> {
        let index = self.faults.iter().position(|f| {
            f.listener == listener
                && f.remaining > 0
                && f.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&f.path_contains)
        })?;
        let fault = &mut self.faults[index];
        fault.remaining -= 1;
        let kind = fault.kind.clone();
        if fault.remaining == 0 {
            self.faults.remove(index);
        }
        Some(kind)
    }
}

struct Fault {
    /// The listener whose requests it applies to.
    listener: usize,
    /// The method it applies to; `None`: any.
    method: Option<Method>,
    path_contains: String,
    kind: FaultKind,
    remaining: usize,
}

#[derive(Clone)]
enum FaultKind {
    Status(StatusCode),
    Delay(Duration),
    Hold(HeldRequest),
}

/// A request held by [`FakeQdrant::hold_next`]: wait until it arrives, then let it go on.
#[derive(Clone)]
pub struct HeldRequest {
    reached: Arc<tokio::sync::Notify>,
    released: Arc<tokio::sync::Semaphore>,
}

impl HeldRequest {
    /// Waits until the held request has arrived (returns at once if it already has).
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held request be answered (before or after it arrived).
    pub fn release(&self) {
        self.released.add_permits(1);
    }
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
}

fn cluster_routes() -> Router<Arc<Shared>> {
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
        api_key: header_text(reconcile_lib::qdrant::API_KEY_HEADER),
        authorization: header_text(header::AUTHORIZATION.as_str()),
        peer_id: 0,
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

// ---------------------------------------------------------------------------------------------
// Collections, payload indexes and aliases
// ---------------------------------------------------------------------------------------------

/// One collection of the fake.
struct FakeCollection {
    /// `result.config` as `GET /collections/{name}` returns it.
    config: Value,
    /// Payload indexes by field: `{data_type, params?, points}`.
    payload_schema: BTreeMap<String, Value>,
    /// Points by shard id (every replica of a shard holds the same points); a shard without
    /// an entry has none.
    shard_points: BTreeMap<u32, u64>,
    /// Points set while the collection has no shard (custom sharding).
    unplaced_points: u64,
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
            "points_count": self.points_count(),
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
                shard_points: BTreeMap::new(),
                unplaced_points: 0,
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
        for (shard, replicas) in &self.shards {
            for (peer, state) in replicas {
                if *peer == me {
                    local.push(json!({
                        "shard_id": shard,
                        "points_count": self.points_of(*shard),
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

    /// Points of shard `shard`.
    fn points_of(&self, shard: u32) -> u64 {
        self.shard_points.get(&shard).copied().unwrap_or(0)
    }

    /// Points of the whole collection: the sum over its shards.
    fn points_count(&self) -> u64 {
        self.shards
            .keys()
            .map(|shard| self.points_of(*shard))
            .sum::<u64>()
            + self.unplaced_points
    }

    /// Spreads `points` evenly over the shards, the first ones getting the remainder.
    fn set_points(&mut self, points: u64) {
        let shards: Vec<u32> = self.shards.keys().copied().collect();
        self.shard_points.clear();
        if shards.is_empty() {
            self.unplaced_points = points;
            return;
        }
        self.unplaced_points = 0;
        let count = u64::try_from(shards.len()).unwrap_or(u64::MAX);
        for (index, shard) in (0u64..).zip(shards) {
            let share = points / count + u64::from(index < points % count);
            self.shard_points.insert(shard, share);
        }
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
    Extension(answering): Extension<Answering>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let me = answering.peer;
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
/// ignores removing a non-member) and answers `true` too. An id that is not a `u64`: 404,
/// plain text `can not parse "{id}" to a u64`.
async fn remove_peer(
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

// ---------------------------------------------------------------------------------------------
// Snapshots and point counts
// ---------------------------------------------------------------------------------------------

/// A snapshot directory of one peer: (peer, collection directory name, shard).
type SnapshotDir = (u64, String, Option<u32>);

/// One stored snapshot file. Only its header line is kept; the padding after it is generated
/// whenever the file is read.
#[derive(Clone)]
struct FakeSnapshot {
    /// The header line, `\n` included (empty for an upload that was not a fake snapshot).
    header: Bytes,
    /// Size of the whole file.
    size: u64,
    /// The SHA-256 Qdrant keeps beside a snapshot it made (`.checksum` file); `None` for an
    /// uploaded file.
    checksum: Option<String>,
    /// `creation_time`, `YYYY-MM-DDThh:mm:ss` (UTC).
    creation_time: String,
}

impl FakeSnapshot {
    /// `{name, creation_time, size, checksum?}` (Qdrant's `SnapshotDescription`).
    fn description(&self, name: &str) -> Value {
        let mut description = json!({
            "name": name,
            "creation_time": self.creation_time,
            "size": self.size,
        });
        if let (Some(checksum), Value::Object(map)) = (&self.checksum, &mut description) {
            map.insert("checksum".to_owned(), json!(checksum));
        }
        description
    }

    fn padding(&self) -> u64 {
        self.size
            .saturating_sub(u64::try_from(self.header.len()).unwrap_or(u64::MAX))
    }
}

/// The first line of a fake snapshot file (JSON), followed by the padding.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotHeader {
    /// Format version, 1.
    fake_qdrant_snapshot: u32,
    /// The file name it was created as.
    name: String,
    /// The collection it was taken of.
    collection: String,
    /// The peer that made it.
    peer_id: u64,
    /// The shard, for a shard snapshot; `null` for a collection snapshot.
    shard_id: Option<u32>,
    /// Creation time, `YYYY-MM-DDThh:mm:ss` (UTC).
    created_at: String,
    /// The collection's `config` (as `GET /collections/{c}` returns it).
    config: Value,
    /// The collection's payload indexes (as `payload_schema`).
    #[serde(default)]
    payload_schema: BTreeMap<String, Value>,
    /// Points of each shard whose data the snapshot holds (a collection snapshot holds the
    /// shards local to its peer; a shard snapshot holds its shard).
    shards: BTreeMap<u32, u64>,
}

/// Format version of [`SnapshotHeader`].
const SNAPSHOT_FORMAT: u32 = 1;

/// Length of the repeating pseudo-random padding block.
const PADDING_BLOCK_LEN: usize = 64 * 1024;

/// The padding block (xorshift64 output), built at compile time.
static PADDING_BLOCK: [u8; PADDING_BLOCK_LEN] = padding_block();

const fn padding_block() -> [u8; PADDING_BLOCK_LEN] {
    let mut block = [0u8; PADDING_BLOCK_LEN];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut i = 0;
    while i < PADDING_BLOCK_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block[i] = (x >> 32) as u8;
        i += 1;
    }
    block
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// SHA-256 of a fake snapshot file: the header line, then `padding` generated bytes.
fn snapshot_checksum(header: &[u8], padding: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(header);
    let mut left = padding;
    while left > 0 {
        let n = usize::try_from(left).map_or(PADDING_BLOCK_LEN, |l| l.min(PADDING_BLOCK_LEN));
        hasher.update(&PADDING_BLOCK[..n]);
        left -= n as u64;
    }
    hex(&hasher.finalize())
}

/// Qdrant's `hashes_equal`: case and whitespace do not matter.
fn hashes_equal(a: &str, b: &str) -> bool {
    let clean = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    clean(a) == clean(b)
}

/// The bytes of a snapshot file, generated chunk by chunk (the header, then padding slices of
/// at most 64 KiB borrowed from [`PADDING_BLOCK`]); with `break_after`, an error after that
/// many bytes instead of the rest.
fn content_stream(
    header: Bytes,
    padding: u64,
    break_after: Option<u64>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    struct Content {
        header: Bytes,
        total: u64,
        offset: u64,
        break_after: Option<u64>,
        done: bool,
    }
    let header_len = u64::try_from(header.len()).unwrap_or(u64::MAX);
    let content = Content {
        header,
        total: header_len + padding,
        offset: 0,
        break_after,
        done: false,
    };
    futures::stream::unfold(content, move |mut c| async move {
        if c.done {
            return None;
        }
        let limit = c.break_after.map_or(c.total, |at| at.min(c.total));
        if c.offset >= limit {
            c.done = true;
            let at = c.break_after?;
            // Let the server flush what it has (it does while the body is pending), so the
            // client gets the headers and `at` bytes before the connection breaks.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let e = std::io::Error::other(format!("injected download failure after {at} bytes"));
            return Some((Err(e), c));
        }
        let chunk = if c.offset < header_len {
            let start = usize::try_from(c.offset).unwrap_or(usize::MAX);
            let end = usize::try_from(limit.min(header_len)).unwrap_or(usize::MAX);
            c.header.slice(start..end)
        } else {
            let at =
                usize::try_from((c.offset - header_len) % PADDING_BLOCK_LEN as u64).unwrap_or(0);
            let room = usize::try_from(limit - c.offset).unwrap_or(usize::MAX);
            let n = (PADDING_BLOCK_LEN - at).min(room);
            Bytes::from_static(&PADDING_BLOCK[at..at + n])
        };
        c.offset += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        Some((Ok(chunk), c))
    })
}

/// What the fake learnt from a snapshot it read (downloaded, uploaded or stored): the header
/// line, size and checksum; the rest was hashed and dropped.
struct Fetched {
    /// The header line, `\n` included, when the file has one.
    header: Option<Vec<u8>>,
    size: u64,
    /// SHA-256, when computed.
    checksum: Option<String>,
}

impl Fetched {
    /// The parsed header, or why the file is not a fake snapshot.
    fn parse(&self) -> Result<SnapshotHeader, String> {
        let Some(line) = &self.header else {
            return Err("not a fake Qdrant snapshot: no header line".to_owned());
        };
        let header: SnapshotHeader =
            serde_json::from_slice(line).map_err(|e| format!("not a fake Qdrant snapshot: {e}"))?;
        if header.fake_qdrant_snapshot != SNAPSHOT_FORMAT {
            return Err(format!(
                "unknown fake Qdrant snapshot format {}",
                header.fake_qdrant_snapshot
            ));
        }
        Ok(header)
    }

    /// The header of a collection snapshot, with Qdrant's errors for other files.
    fn collection_header(&self) -> Result<SnapshotHeader, Failure> {
        let header = self
            .parse()
            .map_err(|e| internal(format!("Failed to unpack tar archive: {e}")))?;
        if header.shard_id.is_some() {
            // A shard snapshot has no collection config at its root.
            return Err(internal(
                "failed to open file `config.json`: No such file or directory (os error 2)",
            ));
        }
        Ok(header)
    }

    /// The points of a shard snapshot's shard, with Qdrant's errors for other files.
    fn shard_points(&self) -> Result<u64, Failure> {
        let header = self
            .parse()
            .map_err(|e| internal(format!("Failed to unpack tar archive: {e}")))?;
        match (header.shard_id, header.shards.values().next()) {
            (Some(_), Some(points)) => Ok(*points),
            _ => Err(bad_request("Invalid snapshot")),
        }
    }

    /// Qdrant's checksum check of a recovery (`expected` is the request's).
    fn verify(&self, expected: Option<&str>) -> Result<(), Failure> {
        let Some(expected) = expected else {
            return Ok(());
        };
        let actual = self.checksum.as_deref().unwrap_or_default();
        if hashes_equal(actual, expected) {
            Ok(())
        } else {
            Err(wrong_input(format!(
                "Snapshot checksum mismatch: expected {expected}, got {actual}"
            )))
        }
    }
}

/// Measures (and, when asked, hashes) a snapshot as it streams by, keeping only its first line.
/// Qdrant hashes a downloaded or uploaded snapshot only when the request has a checksum.
struct SnapshotReader {
    hasher: Option<Sha256>,
    size: u64,
    header: Vec<u8>,
    header_done: bool,
}

/// The longest header line the fake keeps.
const MAX_HEADER_LEN: usize = 16 << 20;

impl SnapshotReader {
    fn new(hash: bool) -> Self {
        Self {
            hasher: hash.then(Sha256::new),
            size: 0,
            header: Vec::new(),
            header_done: false,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(data);
        }
        self.size += u64::try_from(data.len()).unwrap_or(u64::MAX);
        if self.header_done || self.header.len() >= MAX_HEADER_LEN {
            return;
        }
        match data.iter().position(|b| *b == b'\n') {
            Some(end) => {
                self.header.extend_from_slice(&data[..=end]);
                self.header_done = true;
            }
            None => {
                let room = MAX_HEADER_LEN - self.header.len();
                self.header.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
    }

    fn finish(self) -> Fetched {
        Fetched {
            header: self.header_done.then_some(self.header),
            size: self.size,
            checksum: self.hasher.map(|hasher| hex(&hasher.finalize())),
        }
    }
}

/// A stored snapshot as a [`Fetched`]; the checksum is computed (off the runtime) only when
/// `need_checksum` and not stored.
async fn from_stored(snapshot: FakeSnapshot, need_checksum: bool) -> Result<Fetched, Failure> {
    let checksum = match (&snapshot.checksum, need_checksum) {
        (Some(checksum), _) => Some(checksum.clone()),
        (None, true) => {
            let (header, padding) = (snapshot.header.clone(), snapshot.padding());
            Some(
                tokio::task::spawn_blocking(move || snapshot_checksum(&header, padding))
                    .await
                    .map_err(|e| internal(format!("Tokio task join error: {e}")))?,
            )
        }
        (None, false) => None,
    };
    let header = snapshot
        .header
        .ends_with(b"\n")
        .then(|| snapshot.header.to_vec());
    Ok(Fetched {
        header,
        size: snapshot.size,
        checksum,
    })
}

/// Downloads `url` as Qdrant does for a recovery (`download_and_unpack_tar` in
/// `lib/storage/src/content_manager/snapshots/download_tar.rs`): `api_key` as `api-key`
/// header, a non-success status is `Wrong input: Failed to download tar from {url}: status -
/// {status}`, a transport failure `Service internal error: Http request error: ...`.
async fn fetch_http(url: &Url, api_key: Option<&str>, hash: bool) -> Result<Fetched, Failure> {
    let tls = reconcile_lib::qdrant::tls_config(rustls::RootCertStore::empty())
        .map_err(|e| internal(format!("Http request error: {e}")))?;
    let mut builder = reqwest::Client::builder().tls_backend_preconfigured(tls);
    if let Some(key) = api_key {
        let mut value = reqwest::header::HeaderValue::from_str(key)
            .map_err(|e| internal(format!("malformed API key: {e}")))?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reconcile_lib::qdrant::API_KEY_HEADER, value);
        builder = builder.default_headers(headers);
    }
    let client = builder
        .build()
        .map_err(|e| internal(format!("Http request error: {e}")))?;
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| internal(format!("Http request error: {e}")))?;
    if !resp.status().is_success() {
        return Err(wrong_input(format!(
            "Failed to download tar from {url}: status - {}",
            resp.status()
        )));
    }
    let mut reader = SnapshotReader::new(hash);
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| internal(format!("Failed to unpack tar archive: {e}")))?;
        reader.feed(&chunk);
    }
    Ok(reader.finish())
}

fn internal(message: impl std::fmt::Display) -> Failure {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("Service internal error: {message}"),
    )
}

fn shard_not_found(shard: u32) -> Failure {
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
fn text_error((status, message): Failure) -> Response {
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
fn finish(result: Result<Value, Failure>, wait: bool, started: Instant) -> Response {
    if wait {
        reply(result, started)
    } else {
        accepted(started)
    }
}

/// The query's `key` parameter, decoded.
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `wait` (default `true`).
fn wait_param(query: Option<&str>) -> bool {
    query_param(query, "wait").is_none_or(|w| w != "false")
}

/// `Forbidden` when `url` is remote and recovery from URLs is disabled.
fn check_url_recovery(shared: &Shared, url: &Url) -> Result<(), Failure> {
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
    fn collection_of(&self, name: &str) -> Result<(String, &FakeCollection), Failure> {
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
    fn stored_shard_snapshot(
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
    fn stored_at_path(&self, me: u64, path: &std::path::Path) -> Option<FakeSnapshot> {
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

fn snapshot_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/collections/{name}/points/count", post(count_points))
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

/// `POST /collections/{c}/points/count` (`count_points` in `src/actix/api/count_api.rs`):
/// the collection's points over all shards; `filter` and `shard_key` are accepted and
/// ignored (the fake has no points to filter).
async fn count_points(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let _request: model::CountRequest = decode(&body)?;
        let state = shared.lock();
        let (_, collection) = state.collection_of(&name)?;
        Ok(json!({ "count": collection.points_count() }))
    })();
    reply(result, started)
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
fn shard_param(shard: &str) -> Result<u32, Failure> {
    shard.parse().map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("Deserialize error in path parameters: can not parse {shard:?} to a u32"),
        )
    })
}

/// The JSON error reply to a path that does not deserialize.
fn path_error((status, message): Failure) -> Response {
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

/// `PUT /collections/{c}/snapshots/recover` (`recover_from_snapshot` in
/// `src/actix/api/snapshot_api.rs`, `download_snapshot` in
/// `lib/storage/src/content_manager/snapshots/download.rs`).
async fn recover_collection_snapshot(
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
async fn recover_shard_snapshot(
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

fn text_owned(status: StatusCode, message: String) -> Response {
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
async fn upload_collection_snapshot(
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
async fn upload_shard_snapshot(
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

/// A streaming parser of `multipart/form-data` that hands the bytes of one named part to a
/// sink as they arrive and keeps nothing but a delimiter's length of look-behind.
mod multipart {
    /// The `boundary` parameter of a `multipart/form-data` content type.
    pub(super) fn boundary(content_type: &str) -> Option<String> {
        let mut params = content_type.split(';');
        let kind = params.next()?.trim();
        if !kind.eq_ignore_ascii_case("multipart/form-data") {
            return None;
        }
        params.find_map(|param| {
            let (key, value) = param.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"').to_owned())
                .filter(|b| !b.is_empty())
        })
    }

    enum Stage {
        /// Before the first delimiter.
        Preamble,
        /// Right after a delimiter: `--` (the end) or CRLF (a part follows).
        AfterDelimiter,
        /// In a part's headers.
        Headers,
        /// In a part's body; `true` when it is the wanted part.
        Body(bool),
        /// After the closing delimiter.
        Done,
    }

    pub(super) struct Parser {
        /// `\r\n--{boundary}`.
        delimiter: Vec<u8>,
        wanted: String,
        buf: Vec<u8>,
        stage: Stage,
        /// Whether the wanted part was seen (and its file name).
        found: Option<Option<String>>,
    }

    const MAX_HEADERS_LEN: usize = 64 * 1024;

    impl Parser {
        pub(super) fn new(boundary: &str, wanted: &str) -> Self {
            Self {
                delimiter: format!("\r\n--{boundary}").into_bytes(),
                wanted: wanted.to_owned(),
                // The first delimiter has no CRLF before it.
                buf: b"\r\n".to_vec(),
                stage: Stage::Preamble,
                found: None,
            }
        }

        /// Position of the delimiter in the buffer, from `from`.
        fn find_delimiter(&self) -> Option<usize> {
            let first = self.delimiter[0];
            let mut from = 0;
            while let Some(offset) = self.buf[from..].iter().position(|b| *b == first) {
                let at = from + offset;
                if self.buf[at..].starts_with(&self.delimiter) {
                    return Some(at);
                }
                from = at + 1;
            }
            None
        }

        /// Bytes that may be handed on: all but a possible delimiter prefix at the end.
        fn safe_len(&self) -> usize {
            self.buf.len().saturating_sub(self.delimiter.len() - 1)
        }

        pub(super) fn feed(
            &mut self,
            data: &[u8],
            sink: &mut dyn FnMut(&[u8]),
        ) -> Result<(), String> {
            self.buf.extend_from_slice(data);
            loop {
                match self.stage {
                    Stage::Preamble => match self.find_delimiter() {
                        Some(at) => {
                            self.buf.drain(..at + self.delimiter.len());
                            self.stage = Stage::AfterDelimiter;
                        }
                        None => {
                            let safe = self.safe_len();
                            self.buf.drain(..safe);
                            return Ok(());
                        }
                    },
                    Stage::AfterDelimiter => {
                        if self.buf.len() < 2 {
                            return Ok(());
                        }
                        if self.buf.starts_with(b"--") {
                            self.stage = Stage::Done;
                        } else if self.buf.starts_with(b"\r\n") {
                            self.buf.drain(..2);
                            self.stage = Stage::Headers;
                        } else {
                            return Err("Multipart stream is incomplete".to_owned());
                        }
                    }
                    Stage::Headers => {
                        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n");
                        let Some(end) = end else {
                            if self.buf.len() > MAX_HEADERS_LEN {
                                return Err("Multipart headers are too large".to_owned());
                            }
                            return Ok(());
                        };
                        let headers = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                        self.buf.drain(..end + 4);
                        let (name, file_name) = disposition(&headers);
                        let wanted =
                            name.as_deref() == Some(self.wanted.as_str()) && self.found.is_none();
                        if wanted {
                            self.found = Some(file_name);
                        }
                        self.stage = Stage::Body(wanted);
                    }
                    Stage::Body(wanted) => match self.find_delimiter() {
                        Some(at) => {
                            if wanted {
                                sink(&self.buf[..at]);
                            }
                            self.buf.drain(..at + self.delimiter.len());
                            self.stage = Stage::AfterDelimiter;
                        }
                        None => {
                            let safe = self.safe_len();
                            if wanted {
                                sink(&self.buf[..safe]);
                            }
                            self.buf.drain(..safe);
                            return Ok(());
                        }
                    },
                    Stage::Done => {
                        self.buf.clear();
                        return Ok(());
                    }
                }
            }
        }

        /// The wanted part's file name, once the body is complete.
        pub(super) fn finish(self) -> Result<Option<String>, String> {
            if !matches!(self.stage, Stage::Done) {
                return Err("Multipart stream is incomplete".to_owned());
            }
            self.found
                .ok_or_else(|| "Field `snapshot` is required".to_owned())
        }
    }

    /// `name` and `filename` of a part's `Content-Disposition` header.
    fn disposition(headers: &str) -> (Option<String>, Option<String>) {
        let Some(value) = headers.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("content-disposition")
                .then_some(value)
        }) else {
            return (None, None);
        };
        let (mut name, mut file_name) = (None, None);
        for param in value.split(';').skip(1) {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(value),
                "filename" => file_name = Some(value),
                _ => {}
            }
        }
        (name, file_name)
    }
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

    // ----- Snapshots and counts ------------------------------------------------------------------

    /// A URL decoded as the `url` crate's serde support does (Qdrant's `location: Url`): a
    /// string that does not parse fails with `invalid value: string "..", expected <parse
    /// error>`. Keeps the text as sent.
    #[derive(Clone, Debug)]
    pub(super) struct UrlField {
        pub(super) url: url::Url,
        pub(super) raw: String,
    }

    impl<'de> Deserialize<'de> for UrlField {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl serde::de::Visitor<'_> for Visitor {
                type Value = UrlField;

                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a string representing an URL")
                }

                fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<UrlField, E> {
                    url::Url::parse(s)
                        .map(|url| UrlField {
                            url,
                            raw: s.to_owned(),
                        })
                        .map_err(|err| {
                            E::invalid_value(
                                serde::de::Unexpected::Str(s),
                                &err.to_string().as_str(),
                            )
                        })
                }
            }
            deserializer.deserialize_str(Visitor)
        }
    }

    /// Qdrant's `validate_sha256_hash` on an optional checksum (422 when not empty). The
    /// length error has no message in Qdrant, which prints the validator's parameters (in
    /// hash-map order); the fake prints them sorted.
    fn checksum_errors(checksum: Option<&str>) -> Vec<String> {
        match checksum {
            Some(c) if c.len() != 64 => vec![format!(
                "checksum: Validation error: invalid_sha256_hash [{{\"expected_length\": Number(64), \"length\": Number({})}}]",
                c.len()
            )],
            Some(c) if !c.chars().all(|ch| ch.is_ascii_hexdigit()) => {
                vec!["checksum: invalid characters, expected 0-9, a-f, A-F".to_owned()]
            }
            _ => Vec::new(),
        }
    }

    /// The body of `PUT /collections/{name}/snapshots/recover`.
    #[derive(Debug, Deserialize)]
    pub(super) struct SnapshotRecover {
        pub(super) location: UrlField,
        #[serde(default)]
        pub(super) priority: Option<reconcile_lib::qdrant::SnapshotPriority>,
        #[serde(default)]
        pub(super) checksum: Option<String>,
        #[serde(default)]
        pub(super) api_key: Option<String>,
    }

    impl SnapshotRecover {
        pub(super) fn validate(&self) -> Vec<String> {
            checksum_errors(self.checksum.as_deref())
        }
    }

    /// A URL, or the name of a shard snapshot stored on the peer (Qdrant's untagged
    /// `ShardSnapshotLocation`: any string that is not an absolute URL is a path).
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub(super) enum ShardSnapshotLocation {
        Url(UrlField),
        Path(String),
    }

    /// The body of `PUT /collections/{name}/shards/{shard}/snapshots/recover`.
    #[derive(Debug, Deserialize)]
    pub(super) struct ShardSnapshotRecover {
        pub(super) location: ShardSnapshotLocation,
        #[serde(default)]
        pub(super) priority: Option<reconcile_lib::qdrant::SnapshotPriority>,
        #[serde(default)]
        pub(super) checksum: Option<String>,
        #[serde(default)]
        pub(super) api_key: Option<String>,
    }

    impl ShardSnapshotRecover {
        pub(super) fn validate(&self) -> Vec<String> {
            checksum_errors(self.checksum.as_deref())
        }
    }

    /// The body of `POST /collections/{name}/points/count` (`CountRequest`).
    #[derive(Debug, Deserialize)]
    #[allow(
        dead_code,
        reason = "decoded for Qdrant's format errors; the fake counts all points"
    )]
    pub(super) struct CountRequest {
        #[serde(default)]
        shard_key: Option<Value>,
        #[serde(default)]
        filter: Option<Value>,
        #[serde(default)]
        exact: Option<bool>,
    }
}
