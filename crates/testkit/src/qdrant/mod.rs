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
//! | `PUT /collections/{c}/points` | upsert, `{"operation_id", "status"}` (see `points`)        |
//! | `POST /collections/{c}/points` | retrieve by id: `[{"id", "payload", "vector"}]` (read-only key allowed) |
//! | `POST /collections/{c}/points/scroll` | `{"points", "next_page_offset"}` (read-only key allowed) |
//! | `POST /collections/{c}/points/query` | `{"sample": "random"}` only: `{"points"}` (read-only key allowed) |
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
//! Stored points (`points`): upserted points are kept by id with their vectors and payload, and
//! scrolled, retrieved and sampled as Qdrant does (see that file); they add to the counts below.
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
//! The code, one file per part: `options` (how it starts), `handle` ([`FakeQdrant`]: start,
//! peer views, keys), `server` (listeners, the shared `State`, routing, authentication, the
//! reply envelopes, the service routes), `faults` (recorded requests, injected failures,
//! delays and holds), `cluster` (`/cluster`, peers, metadata), `collections` (collections,
//! indexes, aliases, point counts), `shards` (placement, transfers, replicas),
//! `snapshot_file` (the fake snapshot bytes), `snapshots` (create, list, download, delete),
//! `recovery` (recover and upload), `points` (upsert, scroll, retrieve, sample), `multipart`
//! (the upload parser) and `model` (serde models
//! of the request bodies). Each file adds its own `impl FakeQdrant` block of setters and
//! inspectors.
//!
//! Extending it: add fields to the private `State` (`server.rs`), a `*_routes()` function
//! returning a `Router<Arc<Shared>>`, merge it in `router()`, and answer with `ok()` /
//! `error()` so the envelope stays right. Routes usable with the read-only key other than GETs
//! (search, scroll, ...) go into `READ_ONLY_POST_SUFFIXES`.

use axum::http::StatusCode;

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

mod cluster;
mod collections;
mod faults;
mod handle;
mod model;
mod multipart;
mod options;
mod points;
mod recovery;
mod server;
mod shards;
mod snapshot_file;
mod snapshots;

pub use faults::{HeldRequest, RecordedRequest};
pub use handle::FakeQdrant;
pub use options::{ClusterState, FakeQdrantOptions};
pub use recovery::FakeRecovery;
