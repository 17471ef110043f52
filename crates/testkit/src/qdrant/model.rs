//! Serde models of the request bodies, shaped and named like Qdrant 1.18's own request types
//! (`CreateCollection`, `UpdateCollection`, `VectorsConfig`, `QuantizationConfigDiff`,
//! `PayloadFieldSchema`, `AliasOperations`, ...) so that a body Qdrant cannot decode fails here
//! with the same serde message, and the stored config serializes the way Qdrant writes it
//! (unset options omitted where Qdrant omits them).

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
    memory: Option<Memory>,
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
        dense_vector_memory(&mut errors, &format!("{prefix}memory"), self.memory);
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

// ----- Memory placement (Qdrant 1.19) -----------------------------------------------------

/// Qdrant 1.19's `Memory`: `cold`, `cached` or `pinned`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Memory {
    Cold,
    Cached,
    Pinned,
}

/// Qdrant 1.19's `PayloadStorageParams`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(super) struct PayloadStorageParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
}

/// Qdrant 1.19's `validate_dense_vector_memory`: no `pinned` dense vector storage.
fn dense_vector_memory(errors: &mut Vec<String>, path: &str, memory: Option<Memory>) {
    if memory == Some(Memory::Pinned) {
        errors.push(format!(
            "{path}: `pinned` memory placement is not supported for dense vector storage"
        ));
    }
}

/// Qdrant 1.19 refuses `pinned` payload storage.
fn payload_memory(errors: &mut Vec<String>, path: &str, payload: Option<&PayloadStorageParams>) {
    if payload.and_then(|p| p.memory) == Some(Memory::Pinned) {
        errors.push(format!(
            "{path}: `pinned` memory placement is not supported for payload storage"
        ));
    }
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
    memory: Option<Memory>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<PayloadStorageParams>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
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
    memory: Option<Memory>,
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
    memory: Option<Memory>,
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
    memory: Option<Memory>,
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
    #[serde(default)]
    payload: Option<PayloadStorageParams>,
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
        payload_memory(&mut errors, "payload.memory", self.payload.as_ref());
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
        if let Some(payload) = &self.payload {
            *field(&mut params, "payload") = to_json(payload);
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
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
                let mut errors = diff
                    .hnsw_config
                    .as_ref()
                    .map(|h| h.validate(&format!("{prefix}hnsw_config.")))
                    .unwrap_or_default();
                dense_vector_memory(&mut errors, &format!("{prefix}memory"), diff.memory);
                errors
            });
        }
        if let Some(params) = &self.params {
            payload_memory(
                &mut errors,
                "params.payload.memory",
                params.payload.as_ref(),
            );
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
        if let Some(memory) = update.memory {
            *field(params, "memory") = to_json(&memory);
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
    pub(super) fn transfer(&self, sync: bool) -> super::shards::FakeTransfer {
        super::shards::FakeTransfer {
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
    pub(super) fn key(&self) -> super::shards::FakeTransfer {
        super::shards::FakeTransfer {
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
                        E::invalid_value(serde::de::Unexpected::Str(s), &err.to_string().as_str())
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
