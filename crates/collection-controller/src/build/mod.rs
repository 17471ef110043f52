//! Build: the Qdrant REST requests a `QdrantCollectionSpec` asks for. Pure functions of the
//! spec, no network.
//!
//! Every body uses Qdrant's own snake_case spelling (Qdrant 1.18 REST API) and carries only what
//! the spec sets: an unset spec field is left out, so Qdrant's default (from its `config.yaml`)
//! applies at creation and Qdrant's current value stays on update.
//!
//! - [`create_request`]: the body of `PUT /collections/{name}`.
//! - [`field_schema`]: the `field_schema` of `PUT /collections/{name}/index`.
//! - one function per config block ([`vector_params`], [`sparse_vector_params`],
//!   [`hnsw_config`], [`optimizers_config`], [`wal_config`], [`quantization_config`],
//!   [`strict_mode_config`]), shared with [`crate::diff`], which compares these shapes with what
//!   `GET /collections/{name}` returns.
//! - the enum spellings Qdrant uses ([`distance`], [`datatype`], ...).

use std::collections::BTreeMap;

use api_types::collection::{
    Distance, HnswConfig, Memory, MultivectorComparator, MultivectorConfig, OptimizersConfig,
    PayloadIndex, PayloadStorage, ProductCompression, QdrantCollectionSpec, QuantizationConfig,
    ScalarType, ShardingMethod, SparseIndexConfig, SparseModifier, SparseVectorParams,
    StrictModeConfig, VectorDatatype, VectorParams, WalConfig,
};
use serde_json::{Map, Value, json};

/// The body of `PUT /collections/{collection_name}` (Qdrant `CreateCollection`):
///
/// ```json
/// {
///   "vectors": {"size": 768, "distance": "Cosine", "on_disk": true, ...}
///              | {"<name>": {"size": .., "distance": .., ...}, ...},
///   "sparse_vectors": {"<name>": {"index": {"on_disk": .., "full_scan_threshold": ..}, "modifier": "idf"}},
///   "shard_number": 3, "sharding_method": "auto" | "custom",
///   "replication_factor": 2, "write_consistency_factor": 1, "on_disk_payload": true,
///   "payload": {"memory": "cold" | "cached"},
///   "hnsw_config": {..}, "optimizers_config": {..}, "wal_config": {..},
///   "quantization_config": {"scalar": {..}} | {"product": {..}} | {"binary": {..}},
///   "strict_mode_config": {..}
/// }
/// ```
///
/// Only fields the spec sets appear. The `memory` keys (vectors, HNSW, quantization, sparse
/// index, payload) are Qdrant 1.19's: for an older server the spec is first lowered by
/// [`crate::memory::for_server`] to the flags that server knows. `vectors` comes from `spec.vectors` (one unnamed vector)
/// or else `spec.namedVectors` (a map, possibly empty); a collection with neither (sparse
/// vectors only) has no `vectors` key, which Qdrant accepts (it defaults to no dense vectors).
pub fn create_request(spec: &QdrantCollectionSpec) -> Value {
    let mut body = Map::new();
    if let Some(v) = &spec.vectors {
        body.insert("vectors".into(), vector_params(v));
    } else if let Some(named) = &spec.named_vectors {
        body.insert("vectors".into(), named_vectors(named));
    }
    if let Some(sparse) = &spec.sparse_vectors {
        let map = sparse
            .iter()
            .map(|(name, p)| (name.clone(), sparse_vector_params(p)))
            .collect();
        body.insert("sparse_vectors".into(), Value::Object(map));
    }
    put(&mut body, "shard_number", spec.shard_number);
    if let Some(m) = spec.sharding_method {
        body.insert("sharding_method".into(), sharding_method(m).into());
    }
    put(&mut body, "replication_factor", spec.replication_factor);
    put(
        &mut body,
        "write_consistency_factor",
        spec.write_consistency_factor,
    );
    put(&mut body, "on_disk_payload", spec.on_disk_payload);
    if let Some(p) = spec.payload.as_ref().and_then(payload_storage) {
        body.insert("payload".into(), p);
    }
    if let Some(h) = &spec.hnsw_config {
        body.insert("hnsw_config".into(), hnsw_config(h));
    }
    if let Some(o) = &spec.optimizers_config {
        body.insert("optimizers_config".into(), optimizers_config(o));
    }
    if let Some(w) = &spec.wal_config {
        body.insert("wal_config".into(), wal_config(w));
    }
    if let Some(q) = spec
        .quantization_config
        .as_ref()
        .and_then(quantization_config)
    {
        body.insert("quantization_config".into(), q);
    }
    if let Some(s) = &spec.strict_mode_config {
        body.insert("strict_mode_config".into(), strict_mode_config(s));
    }
    Value::Object(body)
}

/// The `field_schema` of `PUT /collections/{collection_name}/index` (Qdrant
/// `PayloadFieldSchema`): the type name (`"keyword"`, `"integer"`, ...) when the index has no
/// parameters, else the parameter object `{"type": "keyword", "is_tenant": true, ...}`.
///
/// `params` are passed through as the user spelled them (Qdrant's snake_case); their own
/// `type` key, if any, is replaced by `schema`. Empty params (`{}`) count as none. Params that
/// are not a mapping are refused by validation (`api_types::validation`) and ignored here.
pub fn field_schema(index: &PayloadIndex) -> Value {
    let kind = index.schema.as_qdrant();
    match index.params.as_ref().and_then(Value::as_object) {
        Some(params) if params.keys().any(|k| k != "type") => {
            let mut obj = Map::new();
            obj.insert("type".into(), kind.into());
            for (k, v) in params {
                if k != "type" {
                    obj.insert(k.clone(), v.clone());
                }
            }
            Value::Object(obj)
        }
        _ => Value::String(kind.into()),
    }
}

/// One dense vector as Qdrant's `VectorParams`: `{"size", "distance", "on_disk"?,
/// "datatype"?, "multivector_config"?: {"comparator": "max_sim"}, "hnsw_config"?,
/// "quantization_config"?}`. Used in `PUT /collections/{name}` and in drift reports.
pub fn vector_params(v: &VectorParams) -> Value {
    let mut obj = Map::new();
    obj.insert("size".into(), v.size.into());
    obj.insert("distance".into(), distance(v.distance).into());
    put(&mut obj, "on_disk", v.on_disk);
    put(&mut obj, "memory", v.memory.map(Memory::as_qdrant));
    if let Some(d) = v.datatype {
        obj.insert("datatype".into(), datatype(d).into());
    }
    if let Some(m) = &v.multivector {
        obj.insert("multivector_config".into(), multivector_config(m));
    }
    if let Some(h) = &v.hnsw {
        obj.insert("hnsw_config".into(), hnsw_config(h));
    }
    if let Some(q) = v.quantization.as_ref().and_then(quantization_config) {
        obj.insert("quantization_config".into(), q);
    }
    Value::Object(obj)
}

/// Named dense vectors as Qdrant's multi-vector `VectorsConfig`: `{"<name>": VectorParams}`.
pub fn named_vectors(named: &BTreeMap<String, VectorParams>) -> Value {
    Value::Object(
        named
            .iter()
            .map(|(name, v)| (name.clone(), vector_params(v)))
            .collect(),
    )
}

/// Qdrant's `MultiVectorConfig`: `{"comparator": "max_sim"}`.
pub fn multivector_config(m: &MultivectorConfig) -> Value {
    json!({ "comparator": multivector_comparator(m.comparator) })
}

/// One sparse vector as Qdrant's `SparseVectorParams`: `{"index"?: {"on_disk"?,
/// "full_scan_threshold"?}, "modifier"?: "idf" | "none"}`.
pub fn sparse_vector_params(p: &SparseVectorParams) -> Value {
    let mut obj = Map::new();
    if let Some(i) = &p.index {
        obj.insert("index".into(), sparse_index(i));
    }
    if let Some(m) = p.modifier {
        obj.insert("modifier".into(), sparse_modifier(m).into());
    }
    Value::Object(obj)
}

/// Qdrant's `SparseIndexParams` with the fields set: `{"on_disk"?, "full_scan_threshold"?}`.
/// Also the shape of `PATCH /collections/{name}` `sparse_vectors.{name}.index`.
pub fn sparse_index(i: &SparseIndexConfig) -> Value {
    let mut obj = Map::new();
    put(&mut obj, "on_disk", i.on_disk);
    put(&mut obj, "memory", i.memory.map(Memory::as_qdrant));
    put(&mut obj, "full_scan_threshold", i.full_scan_threshold);
    Value::Object(obj)
}

/// Qdrant's `HnswConfigDiff` with the fields set: `{"m"?, "ef_construct"?,
/// "full_scan_threshold"?, "max_indexing_threads"?, "on_disk"?, "payload_m"?}`. Used at
/// collection level and per vector, in both create and `PATCH` bodies.
pub fn hnsw_config(h: &HnswConfig) -> Value {
    let mut obj = Map::new();
    put(&mut obj, "m", h.m);
    put(&mut obj, "ef_construct", h.ef_construct);
    put(&mut obj, "full_scan_threshold", h.full_scan_threshold);
    put(&mut obj, "max_indexing_threads", h.max_indexing_threads);
    put(&mut obj, "on_disk", h.on_disk);
    put(&mut obj, "memory", h.memory.map(Memory::as_qdrant));
    put(&mut obj, "payload_m", h.payload_m);
    Value::Object(obj)
}

/// Qdrant's `OptimizersConfigDiff` with the fields set: `{"deleted_threshold"?,
/// "vacuum_min_vector_number"?, "default_segment_number"?, "max_segment_size"?,
/// "memmap_threshold"?, "indexing_threshold"?, "flush_interval_sec"?,
/// "max_optimization_threads"?}` (sizes in KiB). `optimizers_config` in requests;
/// `GET /collections/{name}` calls the full block `optimizer_config`.
pub fn optimizers_config(o: &OptimizersConfig) -> Value {
    let mut obj = Map::new();
    put(&mut obj, "deleted_threshold", o.deleted_threshold);
    put(
        &mut obj,
        "vacuum_min_vector_number",
        o.vacuum_min_vector_number,
    );
    put(&mut obj, "default_segment_number", o.default_segment_number);
    put(&mut obj, "max_segment_size", o.max_segment_size);
    put(&mut obj, "memmap_threshold", o.memmap_threshold);
    put(&mut obj, "indexing_threshold", o.indexing_threshold);
    put(&mut obj, "flush_interval_sec", o.flush_interval_sec);
    put(
        &mut obj,
        "max_optimization_threads",
        o.max_optimization_threads,
    );
    Value::Object(obj)
}

/// Qdrant's `WalConfigDiff` with the fields set: `{"wal_capacity_mb"?, "wal_segments_ahead"?}`.
pub fn wal_config(w: &WalConfig) -> Value {
    let mut obj = Map::new();
    put(&mut obj, "wal_capacity_mb", w.wal_capacity_mb);
    put(&mut obj, "wal_segments_ahead", w.wal_segments_ahead);
    Value::Object(obj)
}

/// Qdrant's `QuantizationConfig`, one of
/// `{"scalar": {"type": "int8", "quantile"?, "always_ram"?}}`,
/// `{"product": {"compression": "x4".."x64", "always_ram"?}}` or
/// `{"binary": {"always_ram"?}}`.
///
/// `None` when no kind is set (validation refuses that, and more than one kind; with several,
/// the first of scalar, product, binary wins).
pub fn quantization_config(q: &QuantizationConfig) -> Option<Value> {
    if let Some(s) = &q.scalar {
        let mut obj = Map::new();
        obj.insert("type".into(), scalar_type(s.type_).into());
        put(&mut obj, "quantile", s.quantile);
        put(&mut obj, "always_ram", s.always_ram);
        put(&mut obj, "memory", s.memory.map(Memory::as_qdrant));
        return Some(json!({ "scalar": obj }));
    }
    if let Some(p) = &q.product {
        let mut obj = Map::new();
        obj.insert("compression".into(), compression(p.compression).into());
        put(&mut obj, "always_ram", p.always_ram);
        put(&mut obj, "memory", p.memory.map(Memory::as_qdrant));
        return Some(json!({ "product": obj }));
    }
    if let Some(b) = &q.binary {
        let mut obj = Map::new();
        put(&mut obj, "always_ram", b.always_ram);
        put(&mut obj, "memory", b.memory.map(Memory::as_qdrant));
        return Some(json!({ "binary": obj }));
    }
    None
}

/// Qdrant 1.19's `PayloadStorageParams` with the fields set: `{"memory": "cold" | "cached"}`
/// (`payload` of `PUT /collections/{name}` and of `params` in `PATCH`); `None` when nothing is
/// set.
pub fn payload_storage(p: &PayloadStorage) -> Option<Value> {
    p.memory.map(|m| json!({ "memory": m.as_qdrant() }))
}

/// Qdrant's `StrictModeConfig` with the fields set: `{"enabled"?, "max_query_limit"?,
/// "max_timeout"?, "unindexed_filtering_retrieve"?, "unindexed_filtering_update"?,
/// "search_max_hnsw_ef"?, "search_allow_exact"?, "search_max_oversampling"?,
/// "upsert_max_batchsize"?, "max_points_count"?}`. Create and `PATCH` both merge it into
/// Qdrant's current strict mode.
pub fn strict_mode_config(s: &StrictModeConfig) -> Value {
    let mut obj = Map::new();
    put(&mut obj, "enabled", s.enabled);
    put(&mut obj, "max_query_limit", s.max_query_limit);
    put(&mut obj, "max_timeout", s.max_timeout);
    put(
        &mut obj,
        "unindexed_filtering_retrieve",
        s.unindexed_filtering_retrieve,
    );
    put(
        &mut obj,
        "unindexed_filtering_update",
        s.unindexed_filtering_update,
    );
    put(&mut obj, "search_max_hnsw_ef", s.search_max_hnsw_ef);
    put(&mut obj, "search_allow_exact", s.search_allow_exact);
    put(
        &mut obj,
        "search_max_oversampling",
        s.search_max_oversampling,
    );
    put(&mut obj, "upsert_max_batchsize", s.upsert_max_batchsize);
    put(&mut obj, "max_points_count", s.max_points_count);
    Value::Object(obj)
}

/// Qdrant's `Distance` spelling: `"Cosine"`, `"Euclid"`, `"Dot"`, `"Manhattan"` (the same in
/// requests and in `GET /collections/{name}`).
pub fn distance(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "Cosine",
        Distance::Euclid => "Euclid",
        Distance::Dot => "Dot",
        Distance::Manhattan => "Manhattan",
    }
}

/// Qdrant's `Datatype` spelling: `"float32"`, `"float16"`, `"uint8"`. A vector without a
/// `datatype` in Qdrant is `float32`.
pub fn datatype(d: VectorDatatype) -> &'static str {
    match d {
        VectorDatatype::Float32 => "float32",
        VectorDatatype::Float16 => "float16",
        VectorDatatype::Uint8 => "uint8",
    }
}

/// Qdrant's `MultiVectorComparator` spelling: `"max_sim"`.
pub fn multivector_comparator(c: MultivectorComparator) -> &'static str {
    match c {
        MultivectorComparator::MaxSim => "max_sim",
    }
}

/// Qdrant's sparse `Modifier` spelling: `"none"` (Qdrant's default when absent) or `"idf"`.
pub fn sparse_modifier(m: SparseModifier) -> &'static str {
    match m {
        SparseModifier::None => "none",
        SparseModifier::Idf => "idf",
    }
}

/// Qdrant's `ShardingMethod` spelling: `"auto"` (Qdrant's default; `GET` omits the field
/// when it was never set) or `"custom"`.
pub fn sharding_method(m: ShardingMethod) -> &'static str {
    match m {
        ShardingMethod::Auto => "auto",
        ShardingMethod::Custom => "custom",
    }
}

/// Qdrant's `ScalarType` spelling: `"int8"`.
pub fn scalar_type(t: ScalarType) -> &'static str {
    match t {
        ScalarType::Int8 => "int8",
    }
}

/// Qdrant's product quantization `CompressionRatio` spelling: `"x4"`, `"x8"`, `"x16"`,
/// `"x32"`, `"x64"`.
pub fn compression(c: ProductCompression) -> &'static str {
    match c {
        ProductCompression::X4 => "x4",
        ProductCompression::X8 => "x8",
        ProductCompression::X16 => "x16",
        ProductCompression::X32 => "x32",
        ProductCompression::X64 => "x64",
    }
}

/// Inserts `key: value` when the value is set.
fn put<T: Into<Value>>(obj: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        obj.insert(key.into(), v.into());
    }
}
