//! The `QdrantCollection` kind (short name `qcol`): a collection in Qdrant with its payload
//! indexes and aliases, reconciled by the collection-controller through Qdrant's REST API.
//!
//! Field names follow Qdrant's own (`PUT /collections/{name}`), in camelCase.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{cluster::SecretKeyRef, conditions::Condition};

/// Key of a Qdrant collection's `metadata` naming the QdrantCollection that owns the
/// collection: `{"namespace", "name", "uid"}` (written by the collection-controller).
pub const OWNER_METADATA_KEY: &str = "qdrant.operator.dev/owner";

/// Key of a Qdrant collection's `metadata` listing the payload indexes and aliases its owner
/// declared: `{"payloadIndexes": [..], "aliases": [..]}` (written by the collection-controller).
pub const DECLARED_METADATA_KEY: &str = "qdrant.operator.dev/declared";

/// Every key of a collection's `metadata` that belongs to the operator: a restore leaves them
/// out, so a restored collection is not owned by the object that owned its source.
pub const OPERATOR_METADATA_KEYS: [&str; 2] = [OWNER_METADATA_KEY, DECLARED_METADATA_KEY];

/// Desired state of a Qdrant collection.
// kube-derive takes one `printcolumn(...)` per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "qdrant.operator.dev",
    version = "v1alpha1",
    kind = "QdrantCollection",
    namespaced,
    status = "QdrantCollectionStatus",
    shortname = "qcol",
    category = "qdrant",
    derive = "PartialEq",
    doc = "A collection in Qdrant (vectors, sharding, indexes, aliases), managed declaratively by the qdrant-operator collection-controller.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.cluster.name",
        description = "QdrantCluster holding the collection"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.collectionStatus",
        description = "Qdrant's collection status: green, yellow, grey or red"
    ),
    printcolumn(
        name = "Points",
        type_ = "integer",
        json_path = ".status.pointsCount",
        description = "Points in the collection"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.cluster) != has(self.connection)").message("set exactly one of cluster or connection"),
    validation = kube::core::Rule::new("!(has(self.vectors) && has(self.namedVectors))").message("set vectors (one unnamed vector) or namedVectors, not both"),
    validation = kube::core::Rule::new("!(has(self.payload) && has(self.payload.memory) && has(self.onDiskPayload))").message("set payload.memory or the deprecated onDiskPayload, not both"),
    validation = kube::core::Rule::new("(has(self.collectionName) ? self.collectionName : '') == (has(oldSelf.collectionName) ? oldSelf.collectionName : '')").message("collectionName is immutable"),
    validation = kube::core::Rule::new("(has(self.cluster) ? self.cluster.name : '') == (has(oldSelf.cluster) ? oldSelf.cluster.name : '')").message("spec.cluster is immutable: create a new QdrantCollection to manage a collection elsewhere")
)]
pub struct QdrantCollectionSpec {
    /// A QdrantCluster in this namespace, managed by the operator. The collection-controller
    /// waits for its Ready condition and reads the endpoint and API key from its status.
    /// Immutable (changing it would leave the collection behind in the old cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
    /// Any reachable Qdrant (installed with Helm, Qdrant Cloud, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// Name of the collection in Qdrant; defaults to metadata.name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub collection_name: Option<String>,
    /// One unnamed dense vector per point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<VectorParams>,
    /// Named dense vectors, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_vectors: Option<BTreeMap<String, VectorParams>>,
    /// Named sparse vectors, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_vectors: Option<BTreeMap<String, SparseVectorParams>>,
    /// Number of shards (fixed at creation). Qdrant's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub shard_number: Option<u32>,
    /// Sharding method (fixed at creation): Auto (by point id) or Custom (user shard keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding_method: Option<ShardingMethod>,
    /// Copies of each shard. Changeable: Qdrant records the new factor for shards created
    /// later; existing shards gain or lose replicas only when replicas are added or dropped
    /// (for example by rebalancing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub replication_factor: Option<u32>,
    /// Replicas that must acknowledge a write. Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub write_consistency_factor: Option<u32>,
    /// Keep payloads on disk instead of in RAM. Changeable. Deprecated by Qdrant 1.19 in favour
    /// of `payload.memory` (set one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk_payload: Option<bool>,
    /// Payload storage (Qdrant `payload`). Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadStorage>,
    /// HNSW index parameters of the collection. Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw_config: Option<HnswConfig>,
    /// Optimizer parameters. Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizers_config: Option<OptimizersConfig>,
    /// Write-ahead log parameters (fixed at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_config: Option<WalConfig>,
    /// Quantization of every vector. Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_config: Option<QuantizationConfig>,
    /// Strict mode: limits on queries and writes. Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mode_config: Option<StrictModeConfig>,
    /// Payload indexes: missing ones are created and changed ones recreated. An index is
    /// deleted only when this object listed it before and no longer does (the operator
    /// records what it declared in the collection's Qdrant metadata, key
    /// `qdrant.operator.dev/declared`); indexes created outside the operator are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["field"]))]
    pub payload_indexes: Vec<PayloadIndex>,
    /// Aliases pointing at this collection, matched in one atomic request: missing ones are
    /// created and one pointing at another collection is moved here. An alias is removed only
    /// when this object listed it before and no longer does (recorded in the collection's
    /// Qdrant metadata); aliases created outside the operator are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub aliases: Vec<String>,
    /// What deleting this object does to the collection: Retain (default) keeps it in Qdrant
    /// (and removes this object's owner mark from its metadata); Delete deletes the collection
    /// and its data, but only when this object owns it (metadata key
    /// `qdrant.operator.dev/owner` holds its uid): a collection owned by another object, or
    /// never marked, is left in Qdrant.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

impl QdrantCollectionSpec {
    /// The collection's name in Qdrant: `collectionName`, else `default` (metadata.name).
    pub fn name_in_qdrant<'a>(&'a self, default: &'a str) -> &'a str {
        self.collection_name.as_deref().unwrap_or(default)
    }
}

/// A QdrantCluster in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ClusterRef {
    /// Name of the QdrantCluster.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A Qdrant not managed by this operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// REST URL, e.g. `http://qdrant.qdrant.svc:6333` or `https://xyz.cloud.qdrant.io:6333`.
    #[schemars(length(min = 1), regex(pattern = r"^https?://"))]
    pub url: String,
    /// Secret key holding the API key (read-write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// TLS settings for an https URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ConnectionTls>,
}

/// TLS settings of a connection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTls {
    /// Secret key holding the PEM CA bundle that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// Parameters of one dense vector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.memory) || self.memory != 'Pinned'").message("memory: Pinned is not supported for dense vector storage (use Cold or Cached)"),
    validation = kube::core::Rule::new("!(has(self.memory) && has(self.onDisk))").message("set memory or the deprecated onDisk, not both")
)]
pub struct VectorParams {
    /// Dimensions (fixed at creation).
    #[schemars(range(min = 1, max = 65536))]
    pub size: u64,
    /// Distance function (fixed at creation).
    pub distance: Distance,
    /// Keep vectors on disk (memmap). Changeable. Deprecated by Qdrant 1.19 in favour of
    /// `memory` (set one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    /// Memory placement of the vectors: Cold or Cached (Pinned is refused for dense vectors).
    /// Changeable. Qdrant 1.19 takes it as is; an older Qdrant gets `on_disk` (Cold: true,
    /// Cached: false), Qdrant's own reading of that flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Storage data type (fixed at creation): Float32 (default), Float16 or Uint8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<VectorDatatype>,
    /// Multivector (late interaction) settings (fixed at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivector: Option<MultivectorConfig>,
    /// HNSW parameters of this vector, over the collection's. Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<HnswConfig>,
    /// Quantization of this vector, over the collection's. Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<QuantizationConfig>,
}

/// Distance function.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Distance {
    /// Cosine similarity.
    Cosine,
    /// Euclidean distance.
    Euclid,
    /// Dot product.
    Dot,
    /// Manhattan distance.
    Manhattan,
}

/// Memory placement of a component's data (Qdrant 1.19 `memory`). The data is always on disk;
/// this says how it is held in RAM.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::without_description)]
pub enum Memory {
    /// Not pre-loaded: read from disk on demand, then cached by the OS.
    Cold,
    /// Pre-loaded into the OS page cache on start; may be evicted under memory pressure.
    Cached,
    /// Loaded in RAM and never evicted: the component must fit in RAM.
    Pinned,
}

impl Memory {
    /// Qdrant's spelling: `cold`, `cached`, `pinned`.
    pub fn as_qdrant(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Cached => "cached",
            Self::Pinned => "pinned",
        }
    }
}

/// Payload storage settings (Qdrant `PayloadStorageParams`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.memory) || self.memory != 'Pinned'").message("memory: Pinned is not supported for payload storage (use Cold or Cached)"))]
pub struct PayloadStorage {
    /// Memory placement of the payloads: Cold or Cached (Pinned is refused for payloads).
    /// Changeable. Qdrant 1.19 takes it as is; an older Qdrant gets `on_disk_payload` (Cold:
    /// true, Cached: false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

/// Storage data type of a dense vector.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::without_description)]
pub enum VectorDatatype {
    /// 32-bit floats.
    Float32,
    /// 16-bit floats.
    Float16,
    /// 8-bit unsigned integers.
    Uint8,
}

/// Multivector settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct MultivectorConfig {
    /// How multivectors are compared: MaxSim.
    pub comparator: MultivectorComparator,
}

/// Multivector comparator.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MultivectorComparator {
    /// Sum over query vectors of the best match (late interaction).
    MaxSim,
}

/// Parameters of one sparse vector.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SparseVectorParams {
    /// Sparse index settings. Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<SparseIndexConfig>,
    /// Value modifier: None or Idf (inverse document frequency weighting). Changeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifier: Option<SparseModifier>,
}

/// Sparse index settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.memory) && has(self.onDisk))").message("set memory or the deprecated onDisk, not both"))]
pub struct SparseIndexConfig {
    /// Keep the index on disk. Deprecated by Qdrant 1.19 in favour of `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    /// Memory placement of the index: Cold, Cached or Pinned. Qdrant 1.19 takes it as is; an
    /// older Qdrant gets `on_disk` (Cold: true, Pinned: false); Cached needs Qdrant 1.19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Below this many points a search is a full scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_scan_threshold: Option<u64>,
}

/// Sparse vector modifier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::without_description)]
pub enum SparseModifier {
    /// Values as given.
    None,
    /// Inverse document frequency weighting.
    Idf,
}

/// Sharding method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::without_description)]
pub enum ShardingMethod {
    /// Qdrant places points by id hash.
    Auto,
    /// Points go to user-defined shard keys.
    Custom,
}

/// HNSW index parameters (unset fields keep Qdrant's values).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.memory) && has(self.onDisk))").message("set memory or the deprecated onDisk, not both"))]
pub struct HnswConfig {
    /// Edges per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<u64>,
    /// Neighbours considered while building.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construct: Option<u64>,
    /// Below this size (KiB) a segment is searched without the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_scan_threshold: Option<u64>,
    /// Threads building the index (0 = automatic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_indexing_threads: Option<u64>,
    /// Keep the index on disk. Deprecated by Qdrant 1.19 in favour of `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<bool>,
    /// Memory placement of the graph: Cold, Cached or Pinned. Qdrant 1.19 takes it as is; an
    /// older Qdrant gets `on_disk` (Cold: true, Cached: false); Pinned needs Qdrant 1.19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Edges per node of the payload index graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_m: Option<u64>,
}

/// Optimizer parameters (unset fields keep Qdrant's values).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct OptimizersConfig {
    /// Fraction of deleted vectors that triggers a vacuum (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub deleted_threshold: Option<f64>,
    /// Minimum vectors in a segment before it is vacuumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vacuum_min_vector_number: Option<u64>,
    /// Target number of segments (0 = automatic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_segment_number: Option<u64>,
    /// Maximum segment size in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_segment_size: Option<u64>,
    /// Segments above this size (KiB) are memmapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memmap_threshold: Option<u64>,
    /// Segments above this size (KiB) get an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexing_threshold: Option<u64>,
    /// Seconds between flushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_sec: Option<u64>,
    /// Threads for optimization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_optimization_threads: Option<u64>,
}

/// Write-ahead log parameters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WalConfig {
    /// Size of one WAL segment in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_capacity_mb: Option<u64>,
    /// WAL segments created ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_segments_ahead: Option<u64>,
}

/// Quantization: exactly one of scalar, product or binary.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.scalar) ? 1 : 0) + (has(self.product) ? 1 : 0) + (has(self.binary) ? 1 : 0) == 1").message("set exactly one of scalar, product or binary"))]
pub struct QuantizationConfig {
    /// Scalar quantization (int8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<ScalarQuantization>,
    /// Product quantization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductQuantization>,
    /// Binary quantization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<BinaryQuantization>,
}

/// Scalar quantization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.memory) && has(self.alwaysRam))").message("set memory or the deprecated alwaysRam, not both"))]
pub struct ScalarQuantization {
    /// Target type: Int8.
    #[serde(rename = "type")]
    pub type_: ScalarType,
    /// Quantile for bounds (0.5..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.5, max = 1.0))]
    pub quantile: Option<f64>,
    /// Keep quantized vectors in RAM. Deprecated by Qdrant 1.19 in favour of `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
    /// Memory placement of the quantized vectors: Cold, Cached or Pinned (unset: as the
    /// vectors). Qdrant 1.19 takes it as is; an older Qdrant gets `always_ram: true` for
    /// Pinned; Cold and Cached need Qdrant 1.19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

/// Scalar quantization type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ScalarType {
    /// 8-bit integers.
    Int8,
}

/// Product quantization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.memory) && has(self.alwaysRam))").message("set memory or the deprecated alwaysRam, not both"))]
pub struct ProductQuantization {
    /// Compression ratio: X4, X8, X16, X32 or X64.
    pub compression: ProductCompression,
    /// Keep quantized vectors in RAM. Deprecated by Qdrant 1.19 in favour of `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
    /// Memory placement of the quantized vectors: Cold, Cached or Pinned (unset: as the
    /// vectors). Qdrant 1.19 takes it as is; an older Qdrant gets `always_ram: true` for
    /// Pinned; Cold and Cached need Qdrant 1.19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

/// Product quantization compression ratio.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ProductCompression {
    /// 4x.
    X4,
    /// 8x.
    X8,
    /// 16x.
    X16,
    /// 32x.
    X32,
    /// 64x.
    X64,
}

/// Binary quantization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.memory) && has(self.alwaysRam))").message("set memory or the deprecated alwaysRam, not both"))]
pub struct BinaryQuantization {
    /// Keep quantized vectors in RAM. Deprecated by Qdrant 1.19 in favour of `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_ram: Option<bool>,
    /// Memory placement of the quantized vectors: Cold, Cached or Pinned (unset: as the
    /// vectors). Qdrant 1.19 takes it as is; an older Qdrant gets `always_ram: true` for
    /// Pinned; Cold and Cached need Qdrant 1.19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

/// Strict mode (unset fields keep Qdrant's values).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct StrictModeConfig {
    /// Enforce the limits below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Maximum `limit` of a query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_query_limit: Option<u64>,
    /// Maximum query timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout: Option<u64>,
    /// Allow filtering on unindexed payload fields when reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unindexed_filtering_retrieve: Option<bool>,
    /// Allow filtering on unindexed payload fields when updating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unindexed_filtering_update: Option<bool>,
    /// Maximum `hnsw_ef` of a search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_max_hnsw_ef: Option<u64>,
    /// Allow exact (brute-force) search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_allow_exact: Option<bool>,
    /// Maximum oversampling of a quantized search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_max_oversampling: Option<f64>,
    /// Maximum points in one upsert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert_max_batchsize: Option<u64>,
    /// Maximum points in the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_points_count: Option<u64>,
}

/// A payload index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayloadIndex {
    /// Payload field (dotted path for nested fields).
    #[schemars(length(min = 1))]
    pub field: String,
    /// Index type.
    pub schema: PayloadSchemaType,
    /// Type-specific parameters as Qdrant spells them (e.g. `is_tenant: true` for keyword,
    /// `tokenizer: word` for text). Changing them recreates the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_params")]
    pub params: Option<serde_json::Value>,
}

/// Payload index type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PayloadSchemaType {
    /// Exact-match strings.
    Keyword,
    /// Integers.
    Integer,
    /// Floats.
    Float,
    /// Geo points.
    Geo,
    /// Full-text.
    Text,
    /// Booleans.
    Bool,
    /// RFC 3339 date-times.
    Datetime,
    /// UUIDs.
    Uuid,
}

impl PayloadSchemaType {
    /// Qdrant's spelling (`keyword`, `integer`, ...).
    pub fn as_qdrant(self) -> &'static str {
        match self {
            Self::Keyword => "keyword",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Geo => "geo",
            Self::Text => "text",
            Self::Bool => "bool",
            Self::Datetime => "datetime",
            Self::Uuid => "uuid",
        }
    }
}

/// What deleting the QdrantCollection does to the collection in Qdrant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum DeletionPolicy {
    /// Keep the collection and its data.
    #[default]
    Retain,
    /// Delete the collection and its data.
    Delete,
}

/// Lifecycle phase of a QdrantCollection, for humans; automation reads the conditions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum CollectionPhase {
    /// Not reconciled yet.
    #[default]
    Pending,
    /// Waiting for the QdrantCluster to be Ready (or for a Secret).
    Waiting,
    /// The collection matches the spec (drift that cannot be fixed is reported in conditions).
    Ready,
    /// Qdrant refused the spec or could not be reached; see the conditions.
    Failed,
    /// Being deleted.
    Deleting,
    /// The pause annotation is set.
    Paused,
}

/// A field whose value in Qdrant differs from the spec and cannot be changed in place.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldDrift {
    /// Spec field path, e.g. `spec.vectors.size`.
    pub field: String,
    /// The spec's value, as JSON text.
    pub desired: String,
    /// Qdrant's value, as JSON text.
    pub actual: String,
}

/// Observed state of a collection. Written by the collection-controller only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct QdrantCollectionStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase, for humans.
    #[serde(default)]
    pub phase: CollectionPhase,
    /// Conditions: Ready, Synced, ConfigDrift, Paused. Ready and Synced are False with reason
    /// `OwnedByAnotherObject` when the collection in Qdrant is owned by another QdrantCollection.
    #[serde(default)]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Name of the collection in Qdrant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_name: Option<String>,
    /// Qdrant's collection status: green, yellow, grey or red.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_status: Option<String>,
    /// Approximate number of points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_count: Option<u64>,
    /// Vectors covered by an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed_vectors_count: Option<u64>,
    /// Segments of the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_count: Option<u64>,
    /// Payload index fields of the spec last applied. What deletions go by is the record in
    /// the collection's Qdrant metadata (`qdrant.operator.dev/declared`), not this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload_indexes: Vec<String>,
    /// Aliases of the spec last applied. What deletions go by is the record in the
    /// collection's Qdrant metadata (`qdrant.operator.dev/declared`), not this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Fields that differ from the spec and cannot change in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<FieldDrift>,
    /// When Qdrant was last brought in line with the spec (RFC 3339): the last sync that
    /// changed something, or that first found it in sync. A resync that finds nothing to do
    /// leaves it (and the whole status) unchanged, so it writes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
}
