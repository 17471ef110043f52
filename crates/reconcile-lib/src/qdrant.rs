//! The Qdrant REST client the controllers use.
//!
//! [`QdrantClient`] talks to one Qdrant HTTP endpoint (port 6333), `http://` or `https://`.
//! TLS uses rustls with the *ring* crypto provider; a PEM CA bundle in
//! [`QdrantConnection::ca_bundle_pem`] makes the client trust exactly that CA (the cluster's
//! own CA, operator-generated or cert-manager issued), so enabling TLS is a configuration
//! change, not a code change.
//!
//! Wire format (confirmed against Qdrant 1.18 sources, `src/actix/helpers.rs` and
//! `lib/api/src/rest/models.rs`): every JSON endpoint answers
//! `{"result": <T>, "status": "ok", "time": <seconds>}` on success and
//! `{"status": {"error": "<message>"}, "time": <seconds>}` with the HTTP status on failure.
//! The authentication middleware (`src/actix/auth.rs`) answers **401 with a plain-text body**
//! both for a missing key (`Must provide an API key or an Authorization bearer token`) and for a
//! wrong one (`Invalid API key or JWT`); a read-only key used for a write gets a JSON 403
//! (`Forbidden: Global manage access is required`). `/`, `/healthz`, `/readyz` and `/livez`
//! need no key; this client sends the `api-key` header on every other request and never on
//! those.
//!
//! Collections ([`QdrantClient::collection_info`], `create_collection`, `update_collection`,
//! `delete_collection`), payload indexes and aliases take and return Qdrant's own JSON shapes
//! (request bodies as `serde_json::Value`, [`CollectionInfo::config`] exactly as Qdrant reports
//! it), so the controllers build and compare Qdrant's documents without a second schema here.
//!
//! Shard placement: [`QdrantClient::collection_cluster_info`] reads where a collection's
//! replicas are and which transfers run ([`CollectionClusterInfo`]),
//! [`QdrantClient::update_collection_cluster`] moves, replicates and drops replicas and aborts
//! transfers, and [`QdrantClient::remove_peer`] takes an emptied peer out of the cluster.
//! [`QdrantClient::cluster_metadata`] and its siblings read and write Qdrant's cluster
//! metadata, a key-value store replicated by consensus.
//!
//! Snapshots (Qdrant 1.18, `src/actix/api/snapshot_api.rs`, `src/common/snapshots.rs`,
//! `lib/storage/src/content_manager/snapshots/`): collection and shard snapshots are created,
//! listed, downloaded and deleted *on the peer this client talks to* (each peer has its own
//! snapshot directory, and a collection snapshot holds only that peer's shards), recovered from
//! a URL ([`SnapshotRecover`]) or from a streamed multipart upload, and
//! [`QdrantClient::count_points`] checks a restore. Downloads and uploads are streamed, never
//! buffered, on a second connection pool without a whole-request timeout: they are bounded by
//! [`QdrantConnection::transfer_idle_timeout`] (no byte moving) instead, and the operations
//! Qdrant runs before answering by [`QdrantConnection::snapshot_timeout`].
//!
//! Points: [`QdrantClient::scroll_points`], [`QdrantClient::upsert_points`],
//! [`QdrantClient::retrieve_points`] and [`QdrantClient::sample_point_ids`] carry points in
//! Qdrant's own JSON (the scroll output is the upsert input, for named, sparse and
//! multivectors alike); [`same_point`] compares two records as a migration verifies them.
//!
//! Adding an endpoint is one line on top of the private `request` helper, which builds the URL
//! from path segments (percent-encoded), sends the key, unwraps the envelope and turns any
//! failure into a typed [`QdrantError`].

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

/// Name of the HTTP header Qdrant reads the API key from (`api-key`). Qdrant also accepts
/// `Authorization: Bearer <key>` when this header is absent; this client always uses `api-key`.
pub const API_KEY_HEADER: &str = "api-key";

/// Default connect and whole-request timeout used by [`QdrantConnection::new`]: 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`QdrantConnection::transfer_idle_timeout`]: 60 seconds, the idle timeout Qdrant
/// itself uses when it downloads a snapshot (`STREAM_READ_TIMEOUT` in
/// `lib/storage/src/content_manager/snapshots/download_tar.rs`).
pub const DEFAULT_TRANSFER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default [`QdrantConnection::snapshot_timeout`]: one hour.
pub const DEFAULT_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default [`QdrantConnection::max_reply_bytes`]: 64 MiB, far above any JSON reply of Qdrant's
/// (the collection list of a cluster with thousands of collections is a few MiB).
pub const DEFAULT_MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// Longest excerpt of a response body or error message kept in a [`QdrantError`], in
/// characters.
const EXCERPT_CHARS: usize = 512;

const USER_AGENT: &str = concat!("qdrant-operator/", env!("CARGO_PKG_VERSION"));

/// How to reach one Qdrant REST endpoint.
///
/// Built by a controller from a `QdrantCluster`'s `status.endpoints.http` and Secret refs, or
/// from a `connection` block; turned into a client with [`QdrantClient::new`].
#[derive(Clone)]
pub struct QdrantConnection {
    /// Base URL of the REST API, `http://host:6333` or `https://host:6333`, optionally with a
    /// path prefix (e.g. behind a proxy: `https://proxy/qdrant/`). Query and fragment are
    /// ignored.
    pub url: Url,
    /// The API key (`service.api_key`, or the read-only key for read-only use); `None` when the
    /// server has no key configured.
    pub api_key: Option<ApiKey>,
    /// PEM bundle of one or more CA certificates (`-----BEGIN CERTIFICATE-----` blocks). When
    /// set, the server certificate must chain to one of these CAs (system roots are not
    /// used); when `None`, an `https` URL is verified against the platform's roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Connect timeout of every request, and whole-request timeout (body included) of every
    /// request except the snapshot calls below. Must be non-zero.
    pub timeout: Duration,
    /// Snapshot downloads and uploads have no whole-request limit (a 2 GiB body takes as long
    /// as it takes); instead they fail when no byte moves for this long: before a download's
    /// reply headers, between two chunks of its body, and between two chunks of an upload's
    /// body taken by the connection. Must be non-zero.
    pub transfer_idle_timeout: Duration,
    /// How long Qdrant may take to answer a snapshot operation that it runs before answering
    /// (`?wait=true`), during which no byte moves: creating a snapshot, recovering one from a
    /// location, and recovering an upload once its body has been sent. Must be non-zero.
    pub snapshot_timeout: Duration,
    /// The largest reply body read into memory (every reply but snapshot downloads, which
    /// are streamed): a longer one, whatever its `Content-Length` says, fails as
    /// [`QdrantError::Unreachable`] once this many bytes arrived, so a broken or hostile
    /// server cannot make the controller buffer without bound.
    pub max_reply_bytes: usize,
}

impl QdrantConnection {
    /// A connection to `url` without API key or CA bundle, with [`DEFAULT_TIMEOUT`].
    pub fn new(url: Url) -> Self {
        Self {
            url,
            api_key: None,
            ca_bundle_pem: None,
            timeout: DEFAULT_TIMEOUT,
            transfer_idle_timeout: DEFAULT_TRANSFER_IDLE_TIMEOUT,
            snapshot_timeout: DEFAULT_SNAPSHOT_TIMEOUT,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        }
    }

    /// Sets [`Self::max_reply_bytes`].
    #[must_use]
    pub fn with_max_reply_bytes(mut self, bytes: usize) -> Self {
        self.max_reply_bytes = bytes;
        self
    }

    /// Sets the API key sent in the `api-key` header.
    #[must_use]
    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// [`QdrantConnection::with_api_key`] when `key` is `Some`; unchanged otherwise.
    pub fn with_optional_api_key(self, key: Option<String>) -> Self {
        match key {
            Some(k) => self.with_api_key(ApiKey::new(k)),
            None => self,
        }
    }

    /// Sets the PEM CA bundle the server certificate must chain to.
    #[must_use]
    pub fn with_ca_bundle_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_bundle_pem = Some(pem.into());
        self
    }

    /// Sets the connect and request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`Self::transfer_idle_timeout`].
    #[must_use]
    pub fn with_transfer_idle_timeout(mut self, timeout: Duration) -> Self {
        self.transfer_idle_timeout = timeout;
        self
    }

    /// Sets [`Self::snapshot_timeout`].
    #[must_use]
    pub fn with_snapshot_timeout(mut self, timeout: Duration) -> Self {
        self.snapshot_timeout = timeout;
        self
    }
}

impl fmt::Debug for QdrantConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantConnection")
            .field("url", &redacted(&self.url))
            .field("api_key", &self.api_key)
            .field(
                "ca_bundle_pem",
                &self
                    .ca_bundle_pem
                    .as_ref()
                    .map(|b| format!("{} bytes", b.len())),
            )
            .field("timeout", &self.timeout)
            .field("transfer_idle_timeout", &self.transfer_idle_timeout)
            .field("snapshot_timeout", &self.snapshot_timeout)
            .finish()
    }
}

/// A Qdrant API key. Its `Debug` output is `ApiKey(***)`, it has no `Display`, and the client
/// marks the header carrying it as sensitive: it is never logged. Read it with
/// [`ApiKey::expose`] only to put it on the wire or into a Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key (the raw value of `service.api_key`).
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// A REST client for one Qdrant endpoint. Cheap to clone (the connection pools are shared).
#[derive(Clone)]
pub struct QdrantClient {
    /// Every request but snapshot transfers and operations: connect and whole-request timeout.
    http: reqwest::Client,
    /// Snapshot transfers and operations: connect timeout only; the idle and operation limits
    /// are applied per request (see [`QdrantConnection::transfer_idle_timeout`]).
    transfer: reqwest::Client,
    /// [`QdrantConnection::timeout`].
    timeout: Duration,
    /// [`QdrantConnection::transfer_idle_timeout`].
    transfer_idle_timeout: Duration,
    /// [`QdrantConnection::snapshot_timeout`].
    snapshot_timeout: Duration,
    /// [`QdrantConnection::max_reply_bytes`].
    max_reply_bytes: usize,
    /// Base URL, path ending in `/`, no query or fragment.
    base: Url,
    /// The `api-key` header value, marked sensitive.
    api_key: Option<HeaderValue>,
}

impl fmt::Debug for QdrantClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantClient")
            .field("base", &redacted(&self.base))
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl QdrantClient {
    /// Builds a client for `conn`. No network traffic happens here.
    ///
    /// TLS: with a CA bundle, a rustls configuration using the *ring* provider that trusts
    /// only the bundle's CAs (no process-wide state is touched); with an `https` URL and no
    /// bundle, the platform's roots through reqwest's rustls backend, for which the *ring*
    /// provider is installed as the process default if no default is installed yet; with an
    /// `http` URL and no bundle, no TLS is ever used. Redirects are not followed, so the key
    /// never travels to another host.
    ///
    /// Two connection pools are built with the same TLS and redirect settings: one for
    /// ordinary requests (whole-request timeout [`QdrantConnection::timeout`]) and one for
    /// snapshot transfers and operations, which has only the connect timeout (their limits are
    /// [`QdrantConnection::transfer_idle_timeout`] and [`QdrantConnection::snapshot_timeout`]).
    ///
    /// # Errors
    /// [`QdrantError::Config`] when the URL is not `http`/`https` or has no host, a timeout is
    /// zero, the API key is empty or not a valid header value, the CA bundle holds no PEM
    /// certificate or a malformed one, or the HTTP client cannot be built.
    pub fn new(conn: &QdrantConnection) -> Result<Self, QdrantError> {
        let base = normalize_base(&conn.url)?;
        if conn.timeout.is_zero() {
            return Err(config("the timeout must be greater than zero"));
        }
        if conn.transfer_idle_timeout.is_zero() {
            return Err(config(
                "the transfer idle timeout must be greater than zero",
            ));
        }
        if conn.snapshot_timeout.is_zero() {
            return Err(config("the snapshot timeout must be greater than zero"));
        }
        let api_key = conn.api_key.as_ref().map(api_key_header).transpose()?;
        let http = build_http_client(conn, &base, Some(conn.timeout))?;
        let transfer = build_http_client(conn, &base, None)?;
        Ok(Self {
            http,
            transfer,
            timeout: conn.timeout,
            transfer_idle_timeout: conn.transfer_idle_timeout,
            snapshot_timeout: conn.snapshot_timeout,
            max_reply_bytes: conn.max_reply_bytes,
            base,
            api_key,
        })
    }

    /// The base URL requests are sent to (path ends in `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /cluster`: the cluster status as this peer sees it.
    ///
    /// Shape: `{"status": "disabled"}` when the server does not run in cluster mode;
    /// otherwise `status: "enabled"` with `peer_id`, `peers` (`{"<peer id>": {"uri": ...}}`),
    /// `raft_info`, `consensus_thread_status` and `message_send_failures`. Sends the API key.
    ///
    /// # Errors
    /// Any [`QdrantError`]; `Unauthorized` for a missing or wrong key.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, QdrantError> {
        self.request(Method::GET, &["cluster"], &[], None).await
    }

    /// `GET /`: the server's name and version, e.g. `{"title": "qdrant - vector search
    /// engine", "version": "1.18.3", "commit": "..."}` (not wrapped in the result envelope;
    /// no key needed, none sent).
    ///
    /// # Errors
    /// Any [`QdrantError`].
    pub async fn version(&self) -> Result<VersionInfo, QdrantError> {
        let (url, status, body) = self.send(Method::GET, &[], &[], None, false).await?;
        if !status.is_success() {
            return Err(classify(&url, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| unexpected(status, e.to_string(), &body))
    }

    /// `GET /quotas` (Qdrant 1.19 and later): the cluster-wide quota config in force (`config`
    /// of Qdrant's `QuotaStatus`; the node-local `usage` and `peers` readings are not read).
    /// The same on every peer.
    ///
    /// # Errors
    /// `NotFound` (404) on a Qdrant before 1.19, which has no quotas; any other
    /// [`QdrantError`].
    pub async fn quotas(&self) -> Result<QuotaConfig, QdrantError> {
        let status: QuotaStatus = self.request(Method::GET, &["quotas"], &[], None).await?;
        Ok(status.config)
    }

    /// `PUT /quotas?wait=true` (Qdrant 1.19 and later): replaces the cluster-wide quota config
    /// with `config`, through consensus, and answers once this peer applied it (`result:
    /// true`). Qdrant persists it: from then on it, not `storage.quotas` of the config file,
    /// is in force. Needs the read-write key.
    ///
    /// # Errors
    /// `NotFound` (404) before 1.19; `BadRequest` (422) for a percentage out of range; any
    /// other [`QdrantError`].
    pub async fn set_quotas(&self, config: &QuotaConfig) -> Result<(), QdrantError> {
        let body = serde_json::to_value(config).map_err(|e| QdrantError::Config {
            message: format!("quota config: {e}"),
        })?;
        self.request::<serde_json::Value>(Method::PUT, &["quotas"], &[("wait", "true")], Some(body))
            .await
            .map(drop)
    }

    /// `GET /readyz`: Ok when the server answers 200 (plain text `all shards are ready`).
    /// A server whose shards are not ready answers 503 `some shards are not ready`, returned
    /// as [`QdrantError::Server`] (transient). No key is sent (Qdrant exempts this endpoint).
    ///
    /// # Errors
    /// Any [`QdrantError`].
    pub async fn readyz(&self) -> Result<(), QdrantError> {
        self.health("readyz").await
    }

    /// `GET /healthz`: Ok when the server answers 200 (plain text `healthz check passed`).
    /// No key is sent.
    ///
    /// # Errors
    /// Any [`QdrantError`].
    pub async fn healthz(&self) -> Result<(), QdrantError> {
        self.health("healthz").await
    }

    /// `GET /livez`: Ok when the server answers 200 (plain text `healthz check passed`).
    /// No key is sent.
    ///
    /// # Errors
    /// Any [`QdrantError`].
    pub async fn livez(&self) -> Result<(), QdrantError> {
        self.health("livez").await
    }

    /// `GET /collections/{name}`: the collection's status, counters, full configuration and
    /// payload indexes; `Ok(None)` when Qdrant answers 404 (`Not found: Collection `{name}`
    /// doesn't exist!`). An alias name resolves to its collection, as Qdrant does.
    ///
    /// Shape (Qdrant 1.18, `lib/collection/src/operations/types.rs`): `status` (`green`,
    /// `yellow`, `grey`, `red`), `optimizer_status` (`"ok"` or `{"error": ".."}`),
    /// `indexed_vectors_count`, `points_count`, `segments_count`, `config` (see
    /// [`CollectionInfo::config`]), `payload_schema` (`{field: {data_type, params?, points}}`),
    /// and `update_queue`/`warnings`, which this client ignores. 1.18 no longer sends
    /// `vectors_count`.
    ///
    /// # Errors
    /// Any [`QdrantError`] except `NotFound`; `BadRequest` (422) for a name Qdrant rejects.
    pub async fn collection_info(&self, name: &str) -> Result<Option<CollectionInfo>, QdrantError> {
        match self
            .request(Method::GET, &["collections", name], &[], None)
            .await
        {
            Ok(info) => Ok(Some(info)),
            Err(QdrantError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /collections/{name}` with `body` as the `CreateCollection` request (`vectors`,
    /// `sparse_vectors`, `shard_number`, `sharding_method`, `replication_factor`,
    /// `write_consistency_factor`, `on_disk_payload`, `hnsw_config`, `wal_config`,
    /// `optimizers_config`, `quantization_config`, `strict_mode_config`, `metadata`); Qdrant
    /// answers `result: true` and fills every omitted setting from its own defaults.
    ///
    /// # Errors
    /// An existing collection: `Conflict` (409, `Wrong input: Collection `{name}` already
    /// exists!`) — see [`QdrantError::is_already_exists`], which also recognises it as 400. A
    /// name used by an alias: `BadRequest` (`Wrong input: Can't create collection
    /// with name {name}. Alias with the same name already exists`). A body that does not
    /// deserialize (e.g. `vectors.size: 0`): `BadRequest` (400, `Format error in JSON body:
    /// ...`); one that fails validation (e.g. `size` above 65536): `BadRequest` (422,
    /// `Validation error in JSON body: [...]`). Read-only key: `Unauthorized` (403).
    pub async fn create_collection(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), QdrantError> {
        self.request::<serde_json::Value>(
            Method::PUT,
            &["collections", name],
            &[],
            Some(body.clone()),
        )
        .await
        .map(drop)
    }

    /// `PATCH /collections/{name}` with `body` as the `UpdateCollection` request: `params`
    /// (`replication_factor`, `write_consistency_factor`, `read_fan_out_factor`,
    /// `read_fan_out_delay_ms`, `on_disk_payload`), `hnsw_config`, `optimizers_config` (stored
    /// and reported as `config.optimizer_config`), `quantization_config` (a config, or
    /// `"Disabled"` to remove it), `vectors` (`{name: {hnsw_config, quantization_config,
    /// on_disk}}`, `""` for the unnamed vector), `sparse_vectors`, `strict_mode_config`,
    /// `metadata`. Only the fields given change. Qdrant applies the sections one after the
    /// other (optimizers, params, hnsw, vectors, quantization, sparse vectors, strict mode,
    /// metadata), so a section that fails leaves the earlier ones applied.
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `BadRequest` for an unknown vector name (`Wrong
    /// input: Not existing vector name error: {vector}`), a body that does not deserialize
    /// (400) or fails validation (422); `Unauthorized` (403) with the read-only key.
    pub async fn update_collection(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), QdrantError> {
        self.request::<serde_json::Value>(
            Method::PATCH,
            &["collections", name],
            &[],
            Some(body.clone()),
        )
        .await
        .map(drop)
    }

    /// `DELETE /collections/{name}`: Qdrant's boolean result, `true` when the collection
    /// existed and was deleted, `false` when there was none (Qdrant answers 200 either way).
    /// Its aliases are deleted with it. An alias name is not resolved: it deletes nothing.
    ///
    /// # Errors
    /// Any [`QdrantError`]; `Unauthorized` (403) with the read-only key.
    pub async fn delete_collection(&self, name: &str) -> Result<bool, QdrantError> {
        self.request(Method::DELETE, &["collections", name], &[], None)
            .await
    }

    /// `PUT /collections/{name}/index?wait=true` with `{"field_name", "field_schema"}`:
    /// creates (or replaces) a payload index. `field_schema` is a type name (`"keyword"`,
    /// `"integer"`, `"float"`, `"geo"`, `"text"`, `"bool"`, `"datetime"`, `"uuid"`) or an
    /// object with `type` and its parameters (e.g. `{"type": "keyword", "is_tenant": true}`).
    /// Qdrant answers `{"operation_id": N, "status": "completed"}`; the index then shows in
    /// [`CollectionInfo::payload_schema`].
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `BadRequest` for a schema Qdrant does not know
    /// (`Format error in JSON body: data did not match any variant of untagged enum
    /// PayloadFieldSchema ...`); `Unauthorized` (403) with the read-only key.
    pub async fn create_payload_index(
        &self,
        name: &str,
        field_name: &str,
        field_schema: &serde_json::Value,
    ) -> Result<(), QdrantError> {
        let body = serde_json::json!({"field_name": field_name, "field_schema": field_schema});
        self.request::<serde_json::Value>(
            Method::PUT,
            &["collections", name, "index"],
            &[("wait", "true")],
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `DELETE /collections/{name}/index/{field_name}?wait=true`: drops a payload index.
    /// Dropping an index that does not exist succeeds too (Qdrant answers 200).
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `Unauthorized` (403) with the read-only key.
    pub async fn delete_payload_index(
        &self,
        name: &str,
        field_name: &str,
    ) -> Result<(), QdrantError> {
        self.request::<serde_json::Value>(
            Method::DELETE,
            &["collections", name, "index", field_name],
            &[("wait", "true")],
            None,
        )
        .await
        .map(drop)
    }

    /// `GET /aliases`: every alias, `{"aliases": [{"alias_name", "collection_name"}]}`. Qdrant
    /// lists them by collection name; the order of aliases of one collection is unspecified.
    ///
    /// # Errors
    /// Any [`QdrantError`].
    pub async fn list_aliases(&self) -> Result<Vec<AliasDescription>, QdrantError> {
        self.request::<AliasList>(Method::GET, &["aliases"], &[], None)
            .await
            .map(|list| list.aliases)
    }

    /// `GET /collections/{name}/aliases`: the aliases pointing to `name`, same shape as
    /// [`Self::list_aliases`]. Qdrant does not check that the collection exists: a missing one
    /// has no aliases.
    ///
    /// # Errors
    /// Any [`QdrantError`].
    pub async fn collection_aliases(
        &self,
        name: &str,
    ) -> Result<Vec<AliasDescription>, QdrantError> {
        self.request::<AliasList>(Method::GET, &["collections", name, "aliases"], &[], None)
            .await
            .map(|list| list.aliases)
    }

    /// `POST /collections/aliases` with `{"actions": [...]}`, all in one request. Actions:
    /// `{"create_alias": {"collection_name", "alias_name"}}` (re-points an existing alias),
    /// `{"delete_alias": {"alias_name"}}` (a missing alias is not an error) and
    /// `{"rename_alias": {"old_alias_name", "new_alias_name"}}`.
    ///
    /// Qdrant runs the actions in order under one lock, so no reader sees a half-switched
    /// state, but it does not roll back: when an action fails, the actions before it stay
    /// applied and the ones after it are skipped (`update_aliases` in
    /// `lib/storage/src/content_manager/toc/collection_meta_ops.rs`). Put actions that may fail
    /// first, or read the aliases back after an error.
    ///
    /// # Errors
    /// `NotFound` when `create_alias` names a missing collection (`Not found: Collection `{c}`
    /// doesn't exist!`) or `rename_alias` a missing alias (`Not found: Alias {a} does not
    /// exists!`); an alias named like an existing collection is refused like creating an
    /// existing collection (`Conflict`, [`QdrantError::is_already_exists`]); an unknown action:
    /// `BadRequest` (`Format error in JSON body: ...`); `Unauthorized` (403) with the
    /// read-only key.
    pub async fn update_aliases(&self, actions: &[serde_json::Value]) -> Result<(), QdrantError> {
        let body = serde_json::json!({ "actions": actions });
        self.request::<serde_json::Value>(
            Method::POST,
            &["collections", "aliases"],
            &[],
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `GET /collections`: the names of every collection, in Qdrant's order (the reply is
    /// `{"collections": [{"name": "..."}]}`; aliases are not listed).
    ///
    /// # Errors
    /// Any [`QdrantError`].
    pub async fn collections(&self) -> Result<Vec<String>, QdrantError> {
        self.request::<CollectionList>(Method::GET, &["collections"], &[], None)
            .await
            .map(|list| list.collections.into_iter().map(|c| c.name).collect())
    }

    /// `GET /collections/{name}/cluster`: where the collection's shards are, as the peer this
    /// client talks to sees it (an alias resolves to its collection).
    ///
    /// Shape (Qdrant 1.18, `CollectionClusterInfo` in `lib/collection/src/operations/types.rs`):
    /// `{"peer_id", "shard_count", "local_shards": [{"shard_id", "shard_key"?, "points_count",
    /// "state"}], "remote_shards": [{"shard_id", "shard_key"?, "peer_id", "state"}],
    /// "shard_transfers": [{"shard_id", "to_shard_id"?, "from", "to", "sync", "method"?,
    /// "comment"?}], "resharding_operations"?}`. `local_shards` are the replicas on the
    /// answering peer, `remote_shards` every other replica; both are sorted by shard id.
    /// Also answers outside cluster mode (every shard is then local).
    ///
    /// # Errors
    /// `NotFound` for a missing collection (`Not found: Collection `{name}` doesn't exist!`);
    /// any other [`QdrantError`].
    pub async fn collection_cluster_info(
        &self,
        name: &str,
    ) -> Result<CollectionClusterInfo, QdrantError> {
        self.request(Method::GET, &["collections", name, "cluster"], &[], None)
            .await
    }

    /// `POST /collections/{name}/cluster` with one cluster operation, Qdrant's
    /// `ClusterOperations` JSON, e.g.:
    ///
    /// - `{"move_shard": {"shard_id", "from_peer_id", "to_peer_id", "method"?}}`: copy the shard
    ///   to `to_peer_id`, then drop it from `from_peer_id`;
    /// - `{"replicate_shard": {"shard_id", "from_peer_id", "to_peer_id", "method"?}}`: copy it
    ///   and keep the source;
    /// - `{"abort_transfer": {"shard_id", "from_peer_id", "to_peer_id"}}`;
    /// - `{"drop_replica": {"shard_id", "peer_id"}}`.
    ///
    /// `method` is `stream_records`, `snapshot` (1.18's default when omitted) or `wal_delta`.
    /// Qdrant answers `result: true` once consensus has *started* a transfer: the transfer then
    /// runs in the background and shows in [`CollectionClusterInfo::shard_transfers`] until it
    /// finishes (the target replica is `Recovery` with `snapshot`/`wal_delta`, `Partial` with
    /// `stream_records`, and `Active` at the end; a moved shard's source replica is removed
    /// then). A move or replicate to a peer that already holds the shard is *not* refused: it
    /// re-transfers the shard onto that replica.
    ///
    /// # Errors
    /// `BadRequest` with Qdrant's message (confirmed in `src/common/collections.rs`,
    /// `lib/collection/src/shards/transfer/helpers.rs` and
    /// `lib/collection/src/collection/collection_ops.rs` of 1.18.3):
    /// `Bad request: Distributed mode disabled` (not in cluster mode),
    /// `Bad request: Shard {s} of {name} does not exist`, `Bad request: Peer {p} does not
    /// exist`, `Bad request: Shard {s} is not active on peer {from}`, `Bad request: Shard {s}
    /// is already involved in transfer {from} -> {to}`, `Bad request: Peer {p} has no replica
    /// of shard {s}`, `Bad request: Shard {s} must have at least one active replica after
    /// removing {p}` (dropping the last replica, or the last active one); 422 `Validation error
    /// in JSON body: [move_shard.to_peer_id: cannot transfer shard to itself, ...]` when both
    /// peers are the same; 400 `Format error in JSON body: ...` for an unknown operation.
    /// `NotFound` for a missing collection, and for aborting a transfer that does not exist
    /// (`Not found: Shard transfer {from} -> {to} for collection {name}:{s} does not exist`).
    /// `Unauthorized` (403) with the read-only key.
    pub async fn update_collection_cluster(
        &self,
        name: &str,
        operation: &serde_json::Value,
    ) -> Result<(), QdrantError> {
        self.request::<serde_json::Value>(
            Method::POST,
            &["collections", name, "cluster"],
            &[],
            Some(operation.clone()),
        )
        .await
        .map(drop)
    }

    /// `DELETE /cluster/peer/{peer_id}`: removes a peer from the cluster (Raft consensus),
    /// never with `force`, so Qdrant refuses while any collection still has a replica on it.
    /// Move or drop its replicas first ([`Self::update_collection_cluster`]) and wait until
    /// no transfer involves it. Qdrant answers `result: true` once consensus has applied the
    /// removal; the peer then disappears from [`ClusterInfo::peers`]. A peer id that is not in
    /// the cluster is not an error: consensus applies the removal as a no-op and Qdrant answers
    /// `true` as well (`src/actix/api/cluster_api.rs`, raft-rs's `Changer::remove`).
    ///
    /// # Errors
    /// `BadRequest` `Bad request: Cannot remove peer {peer_id} as there are shards on it`
    /// (observed on a real 1.18 server), or `Bad request: Distributed mode disabled.` outside
    /// cluster mode; `Server` (500) when consensus does not apply it in time (`Service internal
    /// error: Waiting for consensus operation commit failed. ...`) or has no leader;
    /// `Unauthorized` (403) with the read-only key.
    pub async fn remove_peer(&self, peer_id: u64) -> Result<(), QdrantError> {
        let id = peer_id.to_string();
        self.request::<serde_json::Value>(Method::DELETE, &["cluster", "peer", &id], &[], None)
            .await
            .map(drop)
    }

    /// `GET /cluster/metadata/keys`: the keys of the cluster metadata, a small JSON key-value
    /// store Qdrant keeps in Raft consensus (every peer has the same), sorted.
    ///
    /// # Errors
    /// `Server` (500) `Service internal error: Qdrant is running in standalone mode` outside
    /// cluster mode (`src/actix/api/cluster_api.rs` in Qdrant 1.18.3); any other
    /// [`QdrantError`].
    pub async fn cluster_metadata_keys(&self) -> Result<Vec<String>, QdrantError> {
        self.request(Method::GET, &["cluster", "metadata", "keys"], &[], None)
            .await
    }

    /// `GET /cluster/metadata/keys/{key}`: the JSON value stored under `key`,
    /// `serde_json::Value::Null` when there is none (Qdrant answers `result: null`).
    ///
    /// # Errors
    /// As [`Self::cluster_metadata_keys`].
    pub async fn cluster_metadata(&self, key: &str) -> Result<serde_json::Value, QdrantError> {
        self.request(
            Method::GET,
            &["cluster", "metadata", "keys", key],
            &[],
            None,
        )
        .await
    }

    /// `PUT /cluster/metadata/keys/{key}?wait=true` with `value` as the JSON body: stores it
    /// through consensus and answers `result: true` once this peer applied it, so a following
    /// [`Self::cluster_metadata`] on the same peer reads it back. A `null` value removes the
    /// key. Needs the read-write key.
    ///
    /// # Errors
    /// `Unauthorized` (403 `Forbidden: Global manage access is required`) with the read-only
    /// key; `Server` (500) outside cluster mode or when consensus does not confirm it (`Service
    /// internal error: Failed to propose and confirm metadata update operation through
    /// consensus: ..`); any other [`QdrantError`].
    pub async fn set_cluster_metadata(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), QdrantError> {
        self.request::<serde_json::Value>(
            Method::PUT,
            &["cluster", "metadata", "keys", key],
            &[("wait", "true")],
            Some(value.clone()),
        )
        .await
        .map(drop)
    }

    /// `DELETE /cluster/metadata/keys/{key}?wait=true`: removes the key through consensus
    /// (`result: true`, also when there was no such key).
    ///
    /// # Errors
    /// As [`Self::set_cluster_metadata`].
    pub async fn delete_cluster_metadata(&self, key: &str) -> Result<(), QdrantError> {
        self.request::<serde_json::Value>(
            Method::DELETE,
            &["cluster", "metadata", "keys", key],
            &[("wait", "true")],
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /collections/{name}/points/count` with `{"exact": exact}`: the number of points in
    /// the collection (every shard, wherever its replicas are; an alias resolves), `result:
    /// {"count": N}`. `exact: false` lets Qdrant answer from its index statistics, which is
    /// cheaper and approximate. The read-only key may call it.
    ///
    /// # Errors
    /// `NotFound` for a missing collection (`Not found: Collection `{name}` doesn't exist!`);
    /// any other [`QdrantError`].
    pub async fn count_points(&self, name: &str, exact: bool) -> Result<u64, QdrantError> {
        self.request::<CountResult>(
            Method::POST,
            &["collections", name, "points", "count"],
            &[],
            Some(serde_json::json!({ "exact": exact })),
        )
        .await
        .map(|result| result.count)
    }

    /// `POST /collections/{name}/points/scroll` with `{"limit", "offset"?, "with_payload":
    /// true, "with_vector": true}`: one page of points in id order (numeric ids before UUIDs),
    /// starting at the point id `offset` (inclusive; `None` from the first point). Each point
    /// is returned as Qdrant sends it: `{"id", "payload", "vector"}` where `vector` is a list
    /// of numbers (the unnamed vector), or an object by vector name whose values are a dense
    /// list, a sparse `{"indices", "values"}` or a multivector (a list of lists) — the shape
    /// `PUT /collections/{name}/points` accepts back ([`Self::upsert_points`]).
    /// `next_page_offset` is the id to continue from, `None` after the last page. The
    /// read-only key may call it.
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `Unreachable` for a reply larger than
    /// [`QdrantConnection::max_reply_bytes`] (a smaller `limit` fits); any other
    /// [`QdrantError`].
    pub async fn scroll_points(
        &self,
        name: &str,
        offset: Option<&serde_json::Value>,
        limit: u32,
    ) -> Result<ScrollPage, QdrantError> {
        let mut body = serde_json::json!({
            "limit": limit,
            "with_payload": true,
            "with_vector": true,
        });
        if let Some(offset) = offset {
            body["offset"] = offset.clone();
        }
        self.request(
            Method::POST,
            &["collections", name, "points", "scroll"],
            &[],
            Some(body),
        )
        .await
    }

    /// `PUT /collections/{name}/points?wait=true` with `{"points": points}`: inserts or
    /// replaces each point (`{"id", "vector", "payload"?}`, the shape [`Self::scroll_points`]
    /// returns) and answers once applied (`{"operation_id", "status": "completed"}`). Upserting
    /// the same point twice leaves one point.
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `BadRequest` for a vector the collection does not
    /// have (`Wrong input: Not existing vector name error: {name}`) or of the wrong size
    /// (`Wrong input: Vector dimension error: expected dim: {n}, got {m}`); `Unauthorized`
    /// (403) with the read-only key; any other [`QdrantError`].
    pub async fn upsert_points(
        &self,
        name: &str,
        points: &[serde_json::Value],
    ) -> Result<(), QdrantError> {
        self.request::<serde_json::Value>(
            Method::PUT,
            &["collections", name, "points"],
            &[("wait", "true")],
            Some(serde_json::json!({ "points": points })),
        )
        .await
        .map(drop)
    }

    /// `POST /collections/{name}/points` with `{"ids", "with_payload": true, "with_vector":
    /// true}`: the points with those ids that exist (missing ids are left out, in no promised
    /// order), each as [`Self::scroll_points`] returns them. The read-only key may call it.
    ///
    /// # Errors
    /// `NotFound` for a missing collection; any other [`QdrantError`].
    pub async fn retrieve_points(
        &self,
        name: &str,
        ids: &[serde_json::Value],
    ) -> Result<Vec<serde_json::Value>, QdrantError> {
        self.request(
            Method::POST,
            &["collections", name, "points"],
            &[],
            Some(serde_json::json!({
                "ids": ids,
                "with_payload": true,
                "with_vector": true,
            })),
        )
        .await
    }

    /// `POST /collections/{name}/points/query` with `{"query": {"sample": "random"}, "limit":
    /// limit, "with_payload": false, "with_vector": false}`: the ids of up to `limit` points
    /// Qdrant picks at random (Qdrant 1.11 and later); the reply is `{"points": [{"id",
    /// "version", "score", ...}]}`. The read-only key may call it.
    ///
    /// # Errors
    /// `NotFound` for a missing collection; any other [`QdrantError`].
    pub async fn sample_point_ids(
        &self,
        name: &str,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, QdrantError> {
        let page: QueryPage = self
            .request(
                Method::POST,
                &["collections", name, "points", "query"],
                &[],
                Some(serde_json::json!({
                    "query": {"sample": "random"},
                    "limit": limit,
                    "with_payload": false,
                    "with_vector": false,
                })),
            )
            .await?;
        Ok(page
            .points
            .into_iter()
            .filter_map(|mut p| p.get_mut("id").map(serde_json::Value::take))
            .collect())
    }

    /// `POST /collections/{name}/snapshots?wait=true`: snapshots the collection *on the peer
    /// this client talks to* and answers once the file is written, with its
    /// [`SnapshotDescription`] (`{name, creation_time, size, checksum}`, checksum = SHA-256 of
    /// the file). The file is named `{name}-{peer_id}-{YYYY-MM-DD-hh-mm-ss}.snapshot` (a second
    /// snapshot within the same second replaces the first) and holds the collection's
    /// configuration, payload index schema and the data of the shards *local to that peer*
    /// only: in a cluster, a collection backup needs a snapshot from a peer of every shard
    /// (see [`Self::create_shard_snapshot`]). Runs on the transfer pool, limited by
    /// [`QdrantConnection::snapshot_timeout`].
    ///
    /// # Errors
    /// `NotFound` for a missing collection; `Unauthorized` (403) with the read-only key;
    /// `Unreachable` when Qdrant does not answer within the snapshot timeout.
    pub async fn create_collection_snapshot(
        &self,
        collection: &str,
    ) -> Result<SnapshotDescription, QdrantError> {
        self.snapshot_request(
            Method::POST,
            &["collections", collection, "snapshots"],
            &[("wait", "true")],
            None,
        )
        .await
    }

    /// `POST /collections/{name}/shards/{shard_id}/snapshots?wait=true`: snapshots one shard
    /// from the replica *on the peer this client talks to*; the file is named
    /// `{name}-shard-{shard_id}-{YYYY-MM-DD-hh-mm-ss}.snapshot`. Same reply and limits as
    /// [`Self::create_collection_snapshot`].
    ///
    /// # Errors
    /// `BadRequest` `Wrong input: Shard {s} is not a local or queue proxy shard` when that peer
    /// holds no replica of the shard (ask a peer listed for it in
    /// [`CollectionClusterInfo`]); `NotFound` for a shard the collection does not have (`Not
    /// found: shard {s} not found`) or a missing collection; `Unauthorized` (403) with the
    /// read-only key.
    pub async fn create_shard_snapshot(
        &self,
        collection: &str,
        shard_id: u32,
    ) -> Result<SnapshotDescription, QdrantError> {
        let shard = shard_id.to_string();
        self.snapshot_request(
            Method::POST,
            &["collections", collection, "shards", &shard, "snapshots"],
            &[("wait", "true")],
            None,
        )
        .await
    }

    /// `GET /collections/{name}/snapshots`: the collection snapshots stored on the peer this
    /// client talks to (the files of its snapshot directory ending in `.snapshot`, in no
    /// particular order; an uploaded snapshot is listed too, without checksum).
    ///
    /// # Errors
    /// `NotFound` for a missing collection; any other [`QdrantError`].
    pub async fn list_collection_snapshots(
        &self,
        collection: &str,
    ) -> Result<Vec<SnapshotDescription>, QdrantError> {
        self.request(
            Method::GET,
            &["collections", collection, "snapshots"],
            &[],
            None,
        )
        .await
    }

    /// `GET /collections/{name}/shards/{shard_id}/snapshots`: the shard snapshots stored on
    /// the peer this client talks to.
    ///
    /// # Errors
    /// `BadRequest` `Wrong input: Shard {s} is not a local shard` when that peer holds no
    /// replica of it; `NotFound` for an unknown shard (`Not found: shard {s} not found`) or
    /// collection.
    pub async fn list_shard_snapshots(
        &self,
        collection: &str,
        shard_id: u32,
    ) -> Result<Vec<SnapshotDescription>, QdrantError> {
        let shard = shard_id.to_string();
        self.request(
            Method::GET,
            &["collections", collection, "shards", &shard, "snapshots"],
            &[],
            None,
        )
        .await
    }

    /// `GET /collections/{name}/snapshots/{snapshot}`: streams the snapshot file
    /// (`application/octet-stream`, with its `Content-Length`). The body is never buffered:
    /// [`SnapshotDownload::stream`] yields it chunk by chunk as it arrives. There is no limit
    /// on the whole download; it fails when no byte arrives for
    /// [`QdrantConnection::transfer_idle_timeout`] (before the reply headers or between two
    /// chunks). A body that breaks off, or ends before its `Content-Length`, yields a final
    /// `Err` ([`QdrantError::Unreachable`]) instead of ending quietly.
    ///
    /// # Errors
    /// Qdrant answers these in plain text, not JSON (the handler's error is actix's default
    /// response): `NotFound` `Not found: Snapshot {snapshot} not found` or `Not found:
    /// Collection `{name}` doesn't exist!`; `Unauthorized` for a missing or wrong key.
    pub async fn download_collection_snapshot(
        &self,
        collection: &str,
        snapshot: &str,
    ) -> Result<SnapshotDownload, QdrantError> {
        self.download(&["collections", collection, "snapshots", snapshot])
            .await
    }

    /// `GET /collections/{name}/shards/{shard_id}/snapshots/{snapshot}`: streams a shard
    /// snapshot, as [`Self::download_collection_snapshot`].
    ///
    /// # Errors
    /// In plain text: `BadRequest` `Wrong input: Shard {s} is not a local or queue proxy
    /// shard` (that peer holds no replica); `NotFound` `Not found: shard {s} not found`, or
    /// `File not found: No such file or directory (os error 2)` for a missing snapshot.
    pub async fn download_shard_snapshot(
        &self,
        collection: &str,
        shard_id: u32,
        snapshot: &str,
    ) -> Result<SnapshotDownload, QdrantError> {
        let shard = shard_id.to_string();
        self.download(&[
            "collections",
            collection,
            "shards",
            &shard,
            "snapshots",
            snapshot,
        ])
        .await
    }

    /// `DELETE /collections/{name}/snapshots/{snapshot}?wait=true`: `true` once the file is
    /// deleted; `false` when Qdrant answers 404 (`Not found: Snapshot {snapshot} not found`,
    /// or a missing collection).
    ///
    /// # Errors
    /// `Unauthorized` (403) with the read-only key; any other [`QdrantError`] but `NotFound`.
    pub async fn delete_collection_snapshot(
        &self,
        collection: &str,
        snapshot: &str,
    ) -> Result<bool, QdrantError> {
        found(
            self.request::<serde_json::Value>(
                Method::DELETE,
                &["collections", collection, "snapshots", snapshot],
                &[("wait", "true")],
                None,
            )
            .await,
        )
    }

    /// `DELETE /collections/{name}/shards/{shard_id}/snapshots/{snapshot}?wait=true`: `true`
    /// once deleted; `false` when Qdrant answers 404 (a missing snapshot: `Not found: Snapshot
    /// "<path>" not found`, an unknown shard or collection).
    ///
    /// # Errors
    /// `BadRequest` `Wrong input: Shard {s} is not a local or queue proxy shard` when that
    /// peer holds no replica; `Unauthorized` (403) with the read-only key.
    pub async fn delete_shard_snapshot(
        &self,
        collection: &str,
        shard_id: u32,
        snapshot: &str,
    ) -> Result<bool, QdrantError> {
        let shard = shard_id.to_string();
        found(
            self.request::<serde_json::Value>(
                Method::DELETE,
                &[
                    "collections",
                    collection,
                    "shards",
                    &shard,
                    "snapshots",
                    snapshot,
                ],
                &[("wait", "true")],
                None,
            )
            .await,
        )
    }

    /// `PUT /collections/{name}/snapshots/recover?wait=true` with [`SnapshotRecover`]: the
    /// peer this client talks to fetches `location` (`http(s)://`, sending
    /// `recover.api_key` as `api-key` when set, or a `file://` path inside its own snapshot
    /// directory), checks `checksum` when given, and restores it. A missing collection is
    /// created from the snapshot's configuration and payload indexes; an existing one must
    /// have the same vectors and shard number. Only the shards whose data the snapshot holds
    /// are restored, on this peer; `priority` says what happens to the other replicas of those
    /// shards (`snapshot`, Qdrant's default: the restored replica wins, extra replicas are
    /// removed and the others marked `Dead`; `replica`: the other replicas win and the
    /// restored one is re-synced from them; `no_sync`: nothing is synchronised). Answers once
    /// done; limited by [`QdrantConnection::snapshot_timeout`].
    ///
    /// # Errors
    /// `BadRequest`: `Wrong input: Snapshot checksum mismatch: expected {checksum}, got
    /// {actual}`; `Wrong input: Failed to download tar from {url}: status - {status}`; `Bad
    /// request: Snapshot file "{path}" does not exist`; `Bad request: URL {url} with scheme
    /// {s} is not supported`; `Wrong input: Snapshot is not compatible with existing
    /// collection: ...`; 422 for a malformed checksum. `Unauthorized` (403): the read-only key,
    /// `Forbidden: Snapshot recovery from remote URLs is disabled in the configuration`, or a
    /// `file://` path outside the snapshot directory. `Server` (500) `Service internal error:
    /// Http request error: ...` when the location is unreachable, or a file that is not a
    /// snapshot.
    pub async fn recover_collection_snapshot(
        &self,
        collection: &str,
        recover: &SnapshotRecover,
    ) -> Result<(), QdrantError> {
        self.snapshot_request::<serde_json::Value>(
            Method::PUT,
            &["collections", collection, "snapshots", "recover"],
            &[("wait", "true")],
            Some(recover_body(recover)?),
        )
        .await
        .map(drop)
    }

    /// `PUT /collections/{name}/shards/{shard_id}/snapshots/recover?wait=true` with
    /// [`SnapshotRecover`]: the peer this client talks to restores one shard into its own
    /// replica (creating it if it held none) from `location`: an `http(s)://` URL, or the
    /// name of a shard snapshot stored on that peer (Qdrant's `ShardSnapshotLocation` is a URL
    /// or a path). `priority`: `snapshot` (default) makes the restored replica active and the
    /// other active replicas `Dead`; `replica` leaves the restored one `Dead` for Qdrant to
    /// re-sync; `no_sync` activates it without touching the others.
    ///
    /// # Errors
    /// `NotFound` for a missing collection or shard (`Not found: shard {s} not found`);
    /// `BadRequest` for a checksum mismatch, a download that fails (`Wrong input: Failed to
    /// download tar from {url}: status - {status}`), a `file://` URL (`Wrong input: Invalid
    /// snapshot URL {url}: URLs with file scheme are not supported`) or a file that is not a
    /// shard snapshot (`Bad request: Invalid snapshot`); the rest as
    /// [`Self::recover_collection_snapshot`].
    pub async fn recover_shard_snapshot(
        &self,
        collection: &str,
        shard_id: u32,
        recover: &SnapshotRecover,
    ) -> Result<(), QdrantError> {
        let shard = shard_id.to_string();
        self.snapshot_request::<serde_json::Value>(
            Method::PUT,
            &[
                "collections",
                collection,
                "shards",
                &shard,
                "snapshots",
                "recover",
            ],
            &[("wait", "true")],
            Some(recover_body(recover)?),
        )
        .await
        .map(drop)
    }

    /// `POST /collections/{name}/snapshots/upload?wait=true[&priority=..][&checksum=..]`: uploads
    /// a collection snapshot as `multipart/form-data` (the file in part `snapshot`), streamed
    /// from `body` (e.g. `reqwest::Body::wrap_stream` over an S3 download; give
    /// `content_length` when known), and recovers it as
    /// [`Self::recover_collection_snapshot`] does. Qdrant spools the upload to disk first, then
    /// keeps it in the collection's snapshot directory under the part's file name,
    /// `{name}-upload.snapshot` (a later upload replaces it; delete it with
    /// [`Self::delete_collection_snapshot`] when no longer needed). No whole-request limit:
    /// the upload fails when the connection takes no byte for
    /// [`QdrantConnection::transfer_idle_timeout`], or when Qdrant does not answer within
    /// [`QdrantConnection::snapshot_timeout`] after the last byte.
    ///
    /// # Errors
    /// `BadRequest` `Checksum mismatch: expected {actual}, actual {given}` (Qdrant's wording,
    /// the computed hash first); `Unauthorized` (403, plain text) with the read-only key; an
    /// error of `body` or a broken connection: `Unreachable`; the rest as
    /// [`Self::recover_collection_snapshot`].
    pub async fn upload_collection_snapshot(
        &self,
        collection: &str,
        body: reqwest::Body,
        content_length: Option<u64>,
        priority: Option<SnapshotPriority>,
        checksum: Option<&str>,
    ) -> Result<(), QdrantError> {
        self.upload(
            &["collections", collection, "snapshots", "upload"],
            format!("{collection}-upload.snapshot"),
            (body, content_length),
            priority,
            checksum,
        )
        .await
    }

    /// `POST /collections/{name}/shards/{shard_id}/snapshots/upload?wait=true[&priority=..]
    /// [&checksum=..]`: uploads a shard snapshot (multipart part `snapshot`, streamed as in
    /// [`Self::upload_collection_snapshot`]) and restores it into the replica on the peer this
    /// client talks to, as [`Self::recover_shard_snapshot`] does. Qdrant answers `result: null`
    /// and deletes the uploaded file afterwards.
    ///
    /// # Errors
    /// As [`Self::upload_collection_snapshot`] and [`Self::recover_shard_snapshot`]; a malformed
    /// `checksum` is not validated by this route and ends as a checksum mismatch.
    pub async fn upload_shard_snapshot(
        &self,
        collection: &str,
        shard_id: u32,
        body: reqwest::Body,
        content_length: Option<u64>,
        priority: Option<SnapshotPriority>,
        checksum: Option<&str>,
    ) -> Result<(), QdrantError> {
        let shard = shard_id.to_string();
        self.upload(
            &[
                "collections",
                collection,
                "shards",
                &shard,
                "snapshots",
                "upload",
            ],
            format!("{collection}-shard-{shard_id}-upload.snapshot"),
            (body, content_length),
            priority,
            checksum,
        )
        .await
    }

    async fn health(&self, endpoint: &str) -> Result<(), QdrantError> {
        let (url, status, body) = self
            .send(Method::GET, &[endpoint], &[], None, false)
            .await?;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(classify(&url, status, &body))
        }
    }

    /// Sends an authenticated JSON request to the endpoint named by `segments` (each
    /// percent-encoded, e.g. `&["collections", name, "cluster"]`) with optional query pairs and
    /// JSON body, and unwraps Qdrant's `{"result": .., "status": .., "time": ..}` envelope into
    /// `T`. A missing or `null` result (e.g. `202 Accepted` for `wait=false`) deserializes `T`
    /// from `null`, which suits `Option<_>`, `()` and `serde_json::Value`.
    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, QdrantError> {
        let (url, status, bytes) = self.send(method, segments, query, body, true).await?;
        decode_reply(&url, status, &bytes)
    }

    /// [`Self::request`] for a snapshot operation Qdrant runs before answering: on the
    /// transfer pool, with [`QdrantConnection::snapshot_timeout`] as its whole-request limit.
    async fn snapshot_request<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, QdrantError> {
        let (url, status, bytes) = self
            .send_on(
                &self.transfer,
                Some(self.snapshot_timeout),
                method,
                segments,
                query,
                body,
                true,
            )
            .await?;
        decode_reply(&url, status, &bytes)
    }

    /// Sends one request on the ordinary pool and reads the whole reply. Returns the
    /// (redacted) URL for error messages, the status and the body.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        authenticated: bool,
    ) -> Result<(String, StatusCode, bytes::Bytes), QdrantError> {
        self.send_on(
            &self.http,
            None,
            method,
            segments,
            query,
            body,
            authenticated,
        )
        .await
    }

    /// Sends one request on `client` (with an optional whole-request `timeout` overriding the
    /// client's) and reads the whole reply.
    #[expect(
        clippy::too_many_arguments,
        reason = "private helper behind send and snapshot_request"
    )]
    async fn send_on(
        &self,
        client: &reqwest::Client,
        timeout: Option<Duration>,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        authenticated: bool,
    ) -> Result<(String, StatusCode, bytes::Bytes), QdrantError> {
        let url = self.endpoint(segments, query)?;
        let shown = redacted(&url);
        let mut req = self.prepare(client, method.clone(), url, authenticated);
        if let Some(timeout) = timeout {
            req = req.timeout(timeout);
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(&body)
                .map_err(|e| config(format!("cannot encode the request body: {e}")))?;
            req = req.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let resp = req.send().await.map_err(|e| unreachable(&shown, e))?;
        let status = resp.status();
        let bytes = self.capped_body(&shown, resp).await?;
        tracing::debug!(%method, url = %shown, status = status.as_u16(), "qdrant request");
        Ok((shown, status, bytes))
    }

    /// A request to `url` on `client` asking for JSON, with the key when `authenticated`.
    fn prepare(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: Url,
        authenticated: bool,
    ) -> reqwest::RequestBuilder {
        let mut req = client
            .request(method, url)
            .header(ACCEPT, "application/json");
        if authenticated && let Some(key) = &self.api_key {
            req = req.header(API_KEY_HEADER, key.clone());
        }
        req
    }

    /// Reads a reply body into memory, chunk by chunk, up to [`Self::max_reply_bytes`]
    /// (its `Content-Length` is only a hint: nothing is allocated from it).
    async fn capped_body(
        &self,
        shown: &str,
        mut resp: reqwest::Response,
    ) -> Result<bytes::Bytes, QdrantError> {
        let limit = self.max_reply_bytes;
        let too_long = || QdrantError::Unreachable {
            url: shown.to_owned(),
            message: format!("the reply body is longer than {limit} bytes"),
        };
        if resp
            .content_length()
            .is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(too_long());
        }
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(shown, e))? {
            if body.len() + chunk.len() > limit {
                return Err(too_long());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Reads the (small) body of a reply to a transfer request, within
    /// [`QdrantConnection::timeout`].
    async fn small_body(
        &self,
        shown: &str,
        resp: reqwest::Response,
    ) -> Result<bytes::Bytes, QdrantError> {
        match tokio::time::timeout(self.timeout, self.capped_body(shown, resp)).await {
            Ok(result) => result,
            Err(_) => Err(QdrantError::Unreachable {
                url: shown.to_owned(),
                message: format!("the reply body did not arrive within {:?}", self.timeout),
            }),
        }
    }

    /// A streamed `GET` of a snapshot file on the transfer pool (see
    /// [`Self::download_collection_snapshot`]).
    async fn download(&self, segments: &[&str]) -> Result<SnapshotDownload, QdrantError> {
        let url = self.endpoint(segments, &[])?;
        let shown = redacted(&url);
        let idle = self.transfer_idle_timeout;
        let req = self.prepare(&self.transfer, Method::GET, url, true);
        let resp = match tokio::time::timeout(idle, req.send()).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(unreachable(&shown, e)),
            Err(_) => {
                return Err(QdrantError::Unreachable {
                    url: shown,
                    message: format!("no reply within {idle:?}"),
                });
            }
        };
        let status = resp.status();
        tracing::debug!(method = "GET", url = %shown, status = status.as_u16(), "qdrant download");
        if !status.is_success() {
            let body = self.small_body(&shown, resp).await?;
            return Err(classify(&shown, status, &body));
        }
        let content_length = resp.content_length();
        let stream = checked_body(Box::pin(resp.bytes_stream()), shown, content_length, idle);
        Ok(SnapshotDownload {
            content_length,
            stream,
        })
    }

    /// A streamed multipart upload of a snapshot on the transfer pool (see
    /// [`Self::upload_collection_snapshot`]), watched for stalls.
    async fn upload(
        &self,
        segments: &[&str],
        file_name: String,
        (body, content_length): (reqwest::Body, Option<u64>),
        priority: Option<SnapshotPriority>,
        checksum: Option<&str>,
    ) -> Result<(), QdrantError> {
        let mut query = vec![("wait", "true")];
        if let Some(priority) = priority {
            query.push(("priority", priority.as_str()));
        }
        if let Some(checksum) = checksum {
            query.push(("checksum", checksum));
        }
        let url = self.endpoint(segments, &query)?;
        let shown = redacted(&url);
        let progress = Arc::new(Mutex::new(UploadProgress {
            last: tokio::time::Instant::now(),
            finished: None,
        }));
        let watched = reqwest::Body::wrap(WatchedBody {
            inner: body,
            progress: progress.clone(),
        });
        let part = match content_length {
            Some(length) => reqwest::multipart::Part::stream_with_length(watched, length),
            None => reqwest::multipart::Part::stream(watched),
        }
        .file_name(file_name)
        .mime_str("application/octet-stream")
        .map_err(|e| config(format!("cannot build the upload: {}", error_chain(&e))))?;
        let form = reqwest::multipart::Form::new().part("snapshot", part);
        let send = self
            .prepare(&self.transfer, Method::POST, url, true)
            .multipart(form)
            .send();
        tokio::pin!(send);
        let (idle, answer) = (self.transfer_idle_timeout, self.snapshot_timeout);
        let resp = loop {
            let deadline = UploadProgress::deadline(&progress, idle, answer);
            tokio::select! {
                sent = &mut send => break sent.map_err(|e| unreachable(&shown, e))?,
                () = tokio::time::sleep_until(deadline) => {
                    if let Some(message) = UploadProgress::expired(&progress, idle, answer) {
                        return Err(QdrantError::Unreachable { url: shown, message });
                    }
                }
            }
        };
        let status = resp.status();
        tracing::debug!(method = "POST", url = %shown, status = status.as_u16(), "qdrant upload");
        let bytes = self.small_body(&shown, resp).await?;
        decode_reply::<serde_json::Value>(&shown, status, &bytes).map(drop)
    }

    fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, QdrantError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| config("the URL cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }
}

/// Unwraps Qdrant's `{"result": .., "status": .., "time": ..}` envelope (see
/// `QdrantClient::request`); a non-success status is classified.
fn decode_reply<T: DeserializeOwned>(
    url: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, QdrantError> {
    if !status.is_success() {
        return Err(classify(url, status, bytes));
    }
    let envelope: Envelope<T> = serde_json::from_slice(bytes)
        .map_err(|e| unexpected(status, format!("cannot decode the reply: {e}"), bytes))?;
    if let Some(error) = envelope.status.get("error") {
        return Err(unexpected(
            status,
            format!("success status with an error: {error}"),
            bytes,
        ));
    }
    match envelope.result {
        Some(result) => Ok(result),
        None => serde_json::from_value(serde_json::Value::Null)
            .map_err(|e| unexpected(status, format!("the reply has no result: {e}"), bytes)),
    }
}

/// A transport error (no reply, or the reply broke off) as [`QdrantError::Unreachable`].
fn unreachable(shown: &str, e: reqwest::Error) -> QdrantError {
    QdrantError::Unreachable {
        url: shown.to_owned(),
        message: error_chain(&e.without_url()),
    }
}

/// Qdrant's reply envelope.
#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default = "none")]
    result: Option<T>,
    /// `"ok"`, `"accepted"`, ... or `{"error": "..."}`.
    status: serde_json::Value,
}

fn none<T>() -> Option<T> {
    None
}

/// The result of `GET /cluster`.
///
/// Qdrant sends `{"status": "disabled"}` outside cluster mode (then every other field is
/// empty here) and, in cluster mode, `status: "enabled"` with every field below. Peer ids are
/// JSON numbers (u64); as map keys (`peers`) they are strings in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// `"enabled"` (cluster mode) or `"disabled"`.
    pub status: String,
    /// This peer's id (cluster mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<u64>,
    /// Every peer known to consensus, by peer id.
    #[serde(default)]
    pub peers: BTreeMap<u64, PeerInfo>,
    /// This peer's view of Raft consensus (cluster mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_info: Option<RaftInfo>,
    /// State of the thread running consensus (cluster mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus_thread_status: Option<ConsensusThreadStatus>,
    /// Consecutive failures sending consensus messages, by peer URI; an entry disappears on
    /// the first success.
    #[serde(default)]
    pub message_send_failures: BTreeMap<String, MessageSendErrors>,
}

impl ClusterInfo {
    /// True when the server runs in cluster mode (`status == "enabled"`).
    pub fn is_enabled(&self) -> bool {
        self.status == "enabled"
    }
}

/// A peer in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's p2p URI, e.g. `http://qdrant-0.qdrant-headless:6335/`.
    pub uri: String,
}

/// This peer's view of Raft consensus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftInfo {
    /// Current Raft term (monotonic).
    pub term: u64,
    /// Index of the latest committed consensus operation this peer knows of.
    pub commit: u64,
    /// Consensus operations not yet applied on this peer.
    pub pending_operations: u64,
    /// Leader of the current term, if known.
    pub leader: Option<u64>,
    /// This peer's role in the current term, if known.
    pub role: Option<RaftRole>,
    /// True for a voter, false for a learner.
    pub is_voter: bool,
}

/// Role of a peer in Raft consensus, spelled as Qdrant does (`"Leader"`, `"Follower"`,
/// `"Candidate"`, `"PreCandidate"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RaftRole {
    /// Leads the current term.
    Leader,
    /// Follows the leader.
    Follower,
    /// Campaigning to become leader.
    Candidate,
    /// Pre-vote phase before becoming a candidate.
    PreCandidate,
}

/// State of the consensus thread, `{"consensus_thread_status": "working", "last_update":
/// "<RFC 3339>"}`, `{"consensus_thread_status": "stopped"}` or `{"consensus_thread_status":
/// "stopped_with_err", "err": "..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "consensus_thread_status", rename_all = "snake_case")]
pub enum ConsensusThreadStatus {
    /// Running; `last_update` is when it last made progress.
    Working {
        /// Time of the last consensus update.
        last_update: jiff::Timestamp,
    },
    /// Stopped without error.
    Stopped,
    /// Stopped on an error.
    StoppedWithErr {
        /// The error.
        err: String,
    },
    /// A state this client does not know (a newer Qdrant).
    #[serde(other)]
    Unknown,
}

/// Consecutive failures sending consensus messages to one peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageSendErrors {
    /// Number of consecutive failures.
    pub count: u64,
    /// The latest error message.
    #[serde(default)]
    pub latest_error: Option<String>,
    /// When the latest error happened.
    #[serde(default)]
    pub latest_error_timestamp: Option<jiff::Timestamp>,
}

/// Qdrant 1.19's `QuotaConfig`: cluster-wide limits on node resources, enforced only while
/// `enabled`. Each unset limit is not capped (`release_margin_percent` unset keeps Qdrant's
/// built-in margin). The same keys as `storage.quotas` of Qdrant's config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaConfig {
    /// Whether the limits are enforced (Qdrant's default: false).
    #[serde(default)]
    pub enabled: bool,
    /// Refuse memory-consuming updates once resident memory reaches this percentage (1–100)
    /// of the memory available (cgroup limit, else system memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resident_memory_percent: Option<u8>,
    /// Refuse disk-consuming updates once the storage filesystem is filled to this percentage
    /// (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disk_usage_percent: Option<u8>,
    /// Percentage points (0–100) below a limit a resource must fall before the node accepts
    /// work again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_margin_percent: Option<u8>,
}

/// The part of `GET /quotas` the operator reads.
#[derive(Clone, Debug, Deserialize)]
struct QuotaStatus {
    config: QuotaConfig,
}

/// `(major, minor)` of a Qdrant version or image tag (`1.18.3`, `v1.19.0`, `1.19.0-dev`), as
/// `GET /` reports it in `version`; `None` when it does not start with two dot-separated
/// numbers (e.g. `latest`).
pub fn minor_version(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.trim().trim_start_matches('v').split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The result of `GET /`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `qdrant - vector search engine`.
    pub title: String,
    /// Server version, e.g. `1.18.3`.
    pub version: String,
    /// Git commit of the build, when the server knows it.
    #[serde(default)]
    pub commit: Option<String>,
}

/// The result of `GET /collections/{name}` (see [`QdrantClient::collection_info`]). Unknown
/// fields are ignored; every field but `status` and `config` may be missing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// `green` (ready), `yellow` (optimizing), `grey` (optimizations pending, not triggered)
    /// or `red` (an operation failed and was not recovered).
    pub status: String,
    /// `"ok"`, or `{"error": "<message>"}` when an optimizer failed.
    #[serde(default)]
    pub optimizer_status: serde_json::Value,
    /// Approximate number of points.
    #[serde(default)]
    pub points_count: Option<u64>,
    /// Approximate number of vectors in vector indexes (HNSW).
    #[serde(default)]
    pub indexed_vectors_count: Option<u64>,
    /// Number of segments, over all local shards.
    #[serde(default)]
    pub segments_count: Option<u64>,
    /// `result.config` exactly as Qdrant returns it: `params` (`vectors`, `shard_number`,
    /// `sharding_method`?, `replication_factor`, `write_consistency_factor`,
    /// `read_fan_out_factor`?, `on_disk_payload`, `sparse_vectors`?), `hnsw_config`,
    /// `optimizer_config` (note: not `optimizers_config`), `wal_config`,
    /// `quantization_config` (`null` when off), `strict_mode_config`? and `metadata`?.
    pub config: serde_json::Value,
    /// Payload indexes by field: `{"data_type": "keyword", "params"?: {..}, "points": N}`;
    /// `params` is present when the index was created with an object schema.
    #[serde(default)]
    pub payload_schema: BTreeMap<String, serde_json::Value>,
}

/// One alias, as listed by `GET /aliases` and `GET /collections/{name}/aliases`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AliasDescription {
    /// The alias.
    pub alias_name: String,
    /// The collection it points to.
    pub collection_name: String,
}

/// `{"aliases": [...]}`.
#[derive(Deserialize)]
struct AliasList {
    #[serde(default)]
    aliases: Vec<AliasDescription>,
}

/// `{"collections": [{"name": ...}]}`.
#[derive(Deserialize)]
struct CollectionList {
    #[serde(default)]
    collections: Vec<CollectionName>,
}

#[derive(Deserialize)]
struct CollectionName {
    name: String,
}

/// The result of `GET /collections/{name}/cluster` (see
/// [`QdrantClient::collection_cluster_info`]): the collection's shard placement as one peer
/// sees it. Unknown fields are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionClusterInfo {
    /// The answering peer's id.
    pub peer_id: u64,
    /// Number of shards of the collection (with custom sharding: shards created so far).
    pub shard_count: u64,
    /// Replicas held by the answering peer, sorted by shard id.
    #[serde(default)]
    pub local_shards: Vec<LocalShardInfo>,
    /// Replicas held by other peers, sorted by shard id.
    #[serde(default)]
    pub remote_shards: Vec<RemoteShardInfo>,
    /// Shard transfers in progress, sorted by shard id; empty when none runs.
    #[serde(default)]
    pub shard_transfers: Vec<ShardTransferInfo>,
    /// Resharding operations in progress, as Qdrant reports them; absent (`None`) when no
    /// resharding runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resharding_operations: Option<Vec<serde_json::Value>>,
}

impl CollectionClusterInfo {
    /// Every replica of the collection as `(shard id, peer id, state)`, the answering peer's
    /// own included, sorted by shard then peer.
    pub fn replicas(&self) -> Vec<(u32, u64, &str)> {
        let mut all: Vec<(u32, u64, &str)> = self
            .local_shards
            .iter()
            .map(|s| (s.shard_id, self.peer_id, s.state.as_str()))
            .chain(
                self.remote_shards
                    .iter()
                    .map(|s| (s.shard_id, s.peer_id, s.state.as_str())),
            )
            .collect();
        all.sort_unstable();
        all
    }

    /// The `Active` replicas as `(shard id, peer id)`, sorted by shard then peer.
    pub fn active_replicas(&self) -> Vec<(u32, u64)> {
        self.replicas()
            .into_iter()
            .filter(|(_, _, state)| *state == "Active")
            .map(|(shard, peer, _)| (shard, peer))
            .collect()
    }
}

/// A replica on the answering peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalShardInfo {
    /// The shard id.
    pub shard_id: u32,
    /// The shard key (custom sharding only): a string or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<serde_json::Value>,
    /// Approximate number of points in this replica.
    #[serde(default)]
    pub points_count: u64,
    /// Replica state, spelled as Qdrant does: `Active`, `Dead`, `Partial`, `Initializing`,
    /// `Listener`, `PartialSnapshot`, `Recovery`, `Resharding`, `ReshardingScaleDown`,
    /// `ActiveRead` or `ManualRecovery`.
    pub state: String,
}

/// A replica on another peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteShardInfo {
    /// The shard id.
    pub shard_id: u32,
    /// The shard key (custom sharding only): a string or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<serde_json::Value>,
    /// The peer holding the replica.
    pub peer_id: u64,
    /// Replica state, as in [`LocalShardInfo::state`].
    pub state: String,
}

/// A shard transfer in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTransferInfo {
    /// The shard being transferred.
    pub shard_id: u32,
    /// Target shard id when it differs from `shard_id` (resharding only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_shard_id: Option<u32>,
    /// Source peer.
    pub from: u64,
    /// Target peer.
    pub to: u64,
    /// `true` for a replication (`replicate_shard`: the source keeps its replica), `false`
    /// for a move.
    pub sync: bool,
    /// `stream_records`, `snapshot`, `wal_delta` or `resharding_stream_records`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Human-readable progress, reported only by the peers running the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `{"count": N}`, the result of `POST /collections/{name}/points/count`.
#[derive(Deserialize)]
struct CountResult {
    count: u64,
}

/// Relative tolerance of [`same_point`] for vector components.
pub const VECTOR_TOLERANCE: f64 = 1e-5;

/// True when two point records (as [`QdrantClient::scroll_points`] and
/// [`QdrantClient::retrieve_points`] return them) describe the same point: equal `id` and
/// `payload` (exactly), and equal `vector` structure with every number within
/// [`VECTOR_TOLERANCE`] of the other (relative, plus 1e-7 absolute near zero; integers such
/// as sparse indices exactly). The tolerance allows for a target that normalizes a Cosine
/// vector a second time, which can move its last `f32` digit.
pub fn same_point(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    a.get("id") == b.get("id")
        && a.get("payload") == b.get("payload")
        && close(
            a.get("vector").unwrap_or(&serde_json::Value::Null),
            b.get("vector").unwrap_or(&serde_json::Value::Null),
        )
}

fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if (x.is_u64() || x.is_i64()) && (y.is_u64() || y.is_i64()) {
                return x == y;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    (x - y).abs() <= VECTOR_TOLERANCE * x.abs().max(y.abs()) + 1e-7
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        (x, y) => x == y,
    }
}

/// One page of [`QdrantClient::scroll_points`]: the points, as Qdrant sends them, and the id
/// to continue from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScrollPage {
    /// `{"id", "payload", "vector"}` each, in id order.
    #[serde(default)]
    pub points: Vec<serde_json::Value>,
    /// The id of the next page's first point (a number or a UUID string); `None` after the
    /// last page.
    #[serde(default)]
    pub next_page_offset: Option<serde_json::Value>,
}

/// `{"points": [...]}`, the result of `POST /collections/{name}/points/query`.
#[derive(Deserialize)]
struct QueryPage {
    #[serde(default)]
    points: Vec<serde_json::Value>,
}

/// One snapshot file on one peer, as Qdrant describes it (`SnapshotDescription` in
/// `lib/collection/src/operations/snapshot_ops.rs`): the reply of the snapshot-creating calls
/// and the items of the listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDescription {
    /// File name, e.g. `articles-4378247-2026-01-31-10-49-10.snapshot`; the name to download,
    /// delete or recover it by.
    pub name: String,
    /// When the file was created, UTC without zone, e.g. `2026-01-31T10:49:10` (Qdrant's
    /// `NaiveDateTime`); `None` when the file system does not report it.
    #[serde(default)]
    pub creation_time: Option<String>,
    /// Size of the file in bytes.
    pub size: u64,
    /// SHA-256 of the file, lowercase hex; absent for files Qdrant did not create itself (an
    /// uploaded snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// A snapshot download in progress (see [`QdrantClient::download_collection_snapshot`]).
pub struct SnapshotDownload {
    /// The reply's `Content-Length`, when Qdrant sent one (it does for snapshot files).
    pub content_length: Option<u64>,
    /// The body, chunk by chunk as it arrives. It ends after exactly `content_length` bytes, or
    /// with one `Err` item ([`QdrantError::Unreachable`]) when the body breaks off, stalls, or
    /// ends early; nothing follows an `Err`.
    pub stream: BoxStream<'static, Result<bytes::Bytes, QdrantError>>,
}

impl fmt::Debug for SnapshotDownload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotDownload")
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// Which copy wins when a restored shard has other replicas (Qdrant's `SnapshotPriority`,
/// spelled `no_sync`, `snapshot`, `replica` on the wire). Qdrant's default is `Snapshot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotPriority {
    /// Restore without any synchronisation with the other replicas.
    NoSync,
    /// The snapshot is the source of truth: the other replicas are overwritten.
    Snapshot,
    /// The existing replicas are the source of truth: the restored one is re-synced from them.
    Replica,
}

impl SnapshotPriority {
    /// The wire spelling: `no_sync`, `snapshot` or `replica`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSync => "no_sync",
            Self::Snapshot => "snapshot",
            Self::Replica => "replica",
        }
    }
}

/// The body of the `snapshots/recover` calls (Qdrant's `SnapshotRecover` and
/// `ShardSnapshotRecover`). Its `Debug` output hides `api_key`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecover {
    /// Where Qdrant fetches the snapshot: `http://` or `https://` URL (e.g. an S3 presigned
    /// URL), or `file:///…` inside the peer's snapshot directory (collection recovery only);
    /// for a shard, also the name of a shard snapshot stored on that peer.
    pub location: String,
    /// Which copy wins over the other replicas; Qdrant's default (`snapshot`) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<SnapshotPriority>,
    /// Expected SHA-256 of the file (64 hex digits); Qdrant refuses a file that differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Sent by Qdrant as the `api-key` header when it fetches an `http(s)` location (e.g.
    /// another Qdrant peer's snapshot URL). Never shown by `Debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl SnapshotRecover {
    /// A recovery from `location` with Qdrant's defaults (no priority, checksum or key).
    pub fn new(location: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            priority: None,
            checksum: None,
            api_key: None,
        }
    }
}

impl fmt::Debug for SnapshotRecover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotRecover")
            .field("location", &self.location)
            .field("priority", &self.priority)
            .field("checksum", &self.checksum)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The JSON body of a recover call.
fn recover_body(recover: &SnapshotRecover) -> Result<serde_json::Value, QdrantError> {
    serde_json::to_value(recover).map_err(|e| config(format!("cannot encode the recovery: {e}")))
}

/// `Ok(true)` for a success, `Ok(false)` for a 404.
fn found<T>(result: Result<T, QdrantError>) -> Result<bool, QdrantError> {
    match result {
        Ok(_) => Ok(true),
        Err(QdrantError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A download body as [`SnapshotDownload::stream`] yields it: chunks within the idle timeout,
/// and an `Err` for a broken, stalled, short or overlong body.
fn checked_body(
    inner: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    url: String,
    expected: Option<u64>,
    idle: Duration,
) -> BoxStream<'static, Result<bytes::Bytes, QdrantError>> {
    struct Body {
        inner: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
        url: String,
        expected: Option<u64>,
        received: u64,
        idle: Duration,
        done: bool,
    }
    let state = Body {
        inner,
        url,
        expected,
        received: 0,
        idle,
        done: false,
    };
    futures::stream::unfold(state, |mut body| async move {
        if body.done {
            return None;
        }
        let message = match tokio::time::timeout(body.idle, body.inner.next()).await {
            Ok(Some(Ok(chunk))) => {
                body.received += chunk.len() as u64;
                match body.expected {
                    Some(expected) if body.received > expected => {
                        format!("the body is longer than its Content-Length of {expected} bytes")
                    }
                    _ => return Some((Ok(chunk), body)),
                }
            }
            Ok(Some(Err(e))) => format!(
                "the body broke off after {} bytes: {}",
                body.received,
                error_chain(&e.without_url())
            ),
            Ok(None) => match body.expected {
                Some(expected) if body.received < expected => format!(
                    "the body ended after {} of its {expected} bytes",
                    body.received
                ),
                _ => return None,
            },
            Err(_) => format!(
                "no data for {:?} after {} bytes of the body",
                body.idle, body.received
            ),
        };
        body.done = true;
        let error = QdrantError::Unreachable {
            url: body.url.clone(),
            message,
        };
        Some((Err(error), body))
    })
    .boxed()
}

/// When an upload's body last moved, and when it was all taken.
struct UploadProgress {
    last: tokio::time::Instant,
    finished: Option<tokio::time::Instant>,
}

impl UploadProgress {
    fn lock(progress: &Mutex<Self>) -> MutexGuard<'_, Self> {
        progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the upload expires unless it moves: `idle` after the last chunk while the body is
    /// being sent, `answer` after its end while Qdrant works.
    fn deadline(progress: &Mutex<Self>, idle: Duration, answer: Duration) -> tokio::time::Instant {
        let p = Self::lock(progress);
        match p.finished {
            None => p.last + idle,
            Some(at) => at + answer,
        }
    }

    /// Why the upload has expired, if it has.
    fn expired(progress: &Mutex<Self>, idle: Duration, answer: Duration) -> Option<String> {
        let now = tokio::time::Instant::now();
        let p = Self::lock(progress);
        match p.finished {
            None if now >= p.last + idle => Some(format!(
                "the upload stalled: the connection took no byte for {idle:?}"
            )),
            Some(at) if now >= at + answer => Some(format!(
                "no reply within {answer:?} after the upload was sent"
            )),
            _ => None,
        }
    }
}

/// An upload body that records its progress in [`UploadProgress`].
struct WatchedBody {
    inner: reqwest::Body,
    progress: Arc<Mutex<UploadProgress>>,
}

impl hyper::body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let now = tokio::time::Instant::now();
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                let mut p = UploadProgress::lock(&this.progress);
                p.last = now;
                if this.inner.is_end_stream() {
                    p.finished = Some(now);
                }
            }
            Poll::Ready(None) => {
                let mut p = UploadProgress::lock(&this.progress);
                p.finished.get_or_insert(now);
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A failed Qdrant call. Messages carry Qdrant's own text; they never contain the API key.
///
/// HTTP status mapping: 401/403 → `Unauthorized`, 404 → `NotFound`, 400/422 → `BadRequest`,
/// 409 → `Conflict`, 408/429/5xx → `Server`, any other non-2xx status and any 2xx reply that
/// does not decode → `UnexpectedResponse`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QdrantError {
    /// No HTTP reply: connection refused, DNS failure, TLS handshake failure, timeout, or the
    /// connection dropped mid-reply.
    #[error("Qdrant at {url} is unreachable: {message}")]
    Unreachable {
        /// The URL requested (without credentials).
        url: String,
        /// The transport error, with its causes.
        message: String,
    },
    /// 401 (missing or wrong key) or 403 (key lacks the access needed).
    #[error("Qdrant refused the request (HTTP {status}): {message}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// Qdrant's message, e.g. `Invalid API key or JWT`.
        message: String,
    },
    /// 404, e.g. `Not found: Collection `c` doesn't exist!`.
    #[error("Qdrant answered HTTP 404: {message}")]
    NotFound {
        /// Qdrant's message.
        message: String,
    },
    /// 400 or 422, e.g. `Format error in JSON body: ...`.
    #[error("Qdrant rejected the request: {message}")]
    BadRequest {
        /// Qdrant's message.
        message: String,
    },
    /// 409 (Qdrant's `AlreadyExists`: `Wrong input: Collection `c` already exists!`).
    #[error("Qdrant answered HTTP 409: {message}")]
    Conflict {
        /// Qdrant's message.
        message: String,
    },
    /// 5xx, 408 (Qdrant timed out) or 429 (rate limited): worth retrying.
    #[error("Qdrant failed (HTTP {status}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// Qdrant's message, or the start of the body.
        message: String,
    },
    /// A reply that is not what Qdrant sends: an unexpected status, or a success body that
    /// does not decode.
    #[error("unexpected reply from Qdrant (HTTP {status}): {detail}; body: {body}")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
        /// The start of the body (at most 512 characters).
        body: String,
    },
    /// The connection settings are unusable (bad URL, CA bundle, key, or timeout); retrying
    /// does not help until the configuration changes.
    #[error("invalid Qdrant connection: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
}

impl QdrantError {
    /// True for errors worth retrying with backoff: `Unreachable`, `Server` (5xx, 408, 429)
    /// and an `UnexpectedResponse` with a 5xx or 429 status.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Server { .. } => true,
            Self::UnexpectedResponse { status, .. } => *status >= 500 || *status == 429,
            Self::Unauthorized { .. }
            | Self::NotFound { .. }
            | Self::BadRequest { .. }
            | Self::Conflict { .. }
            | Self::Config { .. } => false,
        }
    }

    /// A CamelCase reason for conditions and metrics labels: `QdrantUnreachable`,
    /// `QdrantUnauthorized`, `QdrantNotFound`, `QdrantBadRequest`, `QdrantConflict`,
    /// `QdrantServerError`, `QdrantUnexpectedResponse` or `QdrantConfigInvalid`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "QdrantUnreachable",
            Self::Unauthorized { .. } => "QdrantUnauthorized",
            Self::NotFound { .. } => "QdrantNotFound",
            Self::BadRequest { .. } => "QdrantBadRequest",
            Self::Conflict { .. } => "QdrantConflict",
            Self::Server { .. } => "QdrantServerError",
            Self::UnexpectedResponse { .. } => "QdrantUnexpectedResponse",
            Self::Config { .. } => "QdrantConfigInvalid",
        }
    }

    /// True when Qdrant refused to create something that already exists: its message
    /// `Wrong input: Collection `{name}` already exists!` (creating a collection, or an alias
    /// named like a collection), whether it came as 409 (what Qdrant 1.18.3 answers,
    /// `src/actix/helpers.rs`) or as 400; callers that want "create if missing" should test
    /// this instead of a status.
    pub fn is_already_exists(&self) -> bool {
        match self {
            Self::BadRequest { message } | Self::Conflict { message } => {
                message.contains("already exists!")
            }
            _ => false,
        }
    }

    /// The HTTP status Qdrant answered with, when there was a reply (`BadRequest` reports 400
    /// also for a 422).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. }
            | Self::Server { status, .. }
            | Self::UnexpectedResponse { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            Self::BadRequest { .. } => Some(400),
            Self::Conflict { .. } => Some(409),
            Self::Unreachable { .. } | Self::Config { .. } => None,
        }
    }
}

fn config(message: impl Into<String>) -> QdrantError {
    QdrantError::Config {
        message: message.into(),
    }
}

fn unexpected(status: StatusCode, detail: String, body: &[u8]) -> QdrantError {
    QdrantError::UnexpectedResponse {
        status: status.as_u16(),
        detail,
        body: crate::redact::foreign_body(body),
    }
}

/// Turns a non-success reply into an error, taking the message from Qdrant's JSON error
/// envelope (URLs in it redacted: [`crate::redact::urls_in`]), else a safe summary of the
/// body ([`crate::redact::foreign_body`]), else the status line.
fn classify(url: &str, status: StatusCode, body: &[u8]) -> QdrantError {
    #[derive(Deserialize)]
    struct ErrorEnvelope {
        status: ErrorStatus,
    }
    #[derive(Deserialize)]
    struct ErrorStatus {
        error: String,
    }

    let text = String::from_utf8_lossy(body);
    let message = match serde_json::from_slice::<ErrorEnvelope>(body) {
        // Qdrant echoes request contents (a snapshot recovery's presigned URL) in messages.
        Ok(envelope) => excerpt(&crate::redact::urls_in(&envelope.status.error)),
        Err(_) if !text.trim().is_empty() => crate::redact::foreign_body(body),
        Err(_) => format!(
            "HTTP {} {} from {url}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    };
    let code = status.as_u16();
    match code {
        401 | 403 => QdrantError::Unauthorized {
            status: code,
            message,
        },
        404 => QdrantError::NotFound { message },
        400 | 422 => QdrantError::BadRequest { message },
        409 => QdrantError::Conflict { message },
        408 | 429 | 500..=599 => QdrantError::Server {
            status: code,
            message,
        },
        _ => unexpected(status, format!("unexpected status from {url}"), body),
    }
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The error and its causes, `a: b: c`, skipping repeats.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !out.contains(&cause_text) {
            out.push_str(": ");
            out.push_str(&cause_text);
        }
        source = cause.source();
    }
    out
}

/// The URL without user name or password, for messages and logs.
fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    // Only fails for URLs that cannot have credentials, which then have none to hide.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn normalize_base(url: &Url) -> Result<Url, QdrantError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config(format!(
            "the URL scheme must be http or https, not {:?}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(config(format!("the URL {} has no host", redacted(url))));
    }
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

/// A reqwest client for `conn`: connect timeout, whole-request timeout `total` (none for
/// transfers), no redirects, and the TLS settings described on [`QdrantClient::new`].
fn build_http_client(
    conn: &QdrantConnection,
    base: &Url,
    total: Option<Duration>,
) -> Result<reqwest::Client, QdrantError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(conn.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT);
    if let Some(total) = total {
        builder = builder.timeout(total);
    }
    let builder = match (&conn.ca_bundle_pem, base.scheme()) {
        (Some(pem), _) => builder.tls_backend_preconfigured(tls_config(parse_ca_bundle(pem)?)?),
        (None, "https") => {
            ensure_default_crypto_provider();
            builder.tls_backend_rustls()
        }
        // Plain http: reqwest still builds a TLS connector, so give it one that needs no
        // process-wide provider. It is never used: the base is http and redirects are off.
        (None, _) => builder.tls_backend_preconfigured(tls_config(rustls::RootCertStore::empty())?),
    };
    builder
        .build()
        .map_err(|e| config(format!("cannot build the HTTP client: {}", error_chain(&e))))
}

fn api_key_header(key: &ApiKey) -> Result<HeaderValue, QdrantError> {
    if key.expose().is_empty() {
        return Err(config("the API key is empty"));
    }
    let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
        config("the API key contains characters not allowed in an HTTP header (e.g. a newline)")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Parses every `CERTIFICATE` block of a PEM bundle into a root store.
fn parse_ca_bundle(pem: &[u8]) -> Result<rustls::RootCertStore, QdrantError> {
    let mut roots = rustls::RootCertStore::empty();
    for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| {
            config(format!(
                "the CA bundle's certificate #{} is not valid PEM: {e}",
                index + 1
            ))
        })?;
        roots.add(cert).map_err(|e| {
            config(format!(
                "the CA bundle's certificate #{} is not a usable X.509 CA certificate: {e}",
                index + 1
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(config(
            "the CA bundle contains no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)",
        ));
    }
    Ok(roots)
}

/// A rustls client configuration with the *ring* provider trusting exactly `roots`.
pub fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, QdrantError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config(format!("cannot configure TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// reqwest's own rustls backend (platform roots) uses the process-wide default provider and
/// panics without one; install *ring* unless a default exists. Losing a race to another
/// installer is fine: a default then exists.
pub fn ensure_default_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod point_tests {
    use super::same_point;
    use serde_json::json;

    #[test]
    fn same_point_allows_float_noise_in_vectors_only() {
        let a = json!({"id": 1, "payload": {"n": 1_000_000}, "vector": {"d": [0.6, 0.8], "s": {"indices": [3, 7], "values": [0.5, 0.25]}}});
        let noisy = json!({"id": 1, "payload": {"n": 1_000_000}, "vector": {"d": [0.600_000_1, 0.799_999_9], "s": {"indices": [3, 7], "values": [0.5, 0.25]}}});
        assert!(same_point(&a, &noisy));
        let far = json!({"id": 1, "payload": {"n": 1_000_000}, "vector": {"d": [0.61, 0.8], "s": {"indices": [3, 7], "values": [0.5, 0.25]}}});
        assert!(!same_point(&a, &far));
        let other_index = json!({"id": 1, "payload": {"n": 1_000_000}, "vector": {"d": [0.6, 0.8], "s": {"indices": [3, 8], "values": [0.5, 0.25]}}});
        assert!(!same_point(&a, &other_index));
        let other_payload = json!({"id": 1, "payload": {"n": 1_000_001}, "vector": {"d": [0.6, 0.8], "s": {"indices": [3, 7], "values": [0.5, 0.25]}}});
        assert!(!same_point(&a, &other_payload));
        let missing_vector =
            json!({"id": 1, "payload": {"n": 1_000_000}, "vector": {"d": [0.6, 0.8]}});
        assert!(!same_point(&a, &missing_vector));
        assert!(!same_point(
            &a,
            &json!({"id": 2, "payload": {"n": 1_000_000}, "vector": a["vector"]})
        ));
    }
}
