//! Diff tests: the spec against what Qdrant 1.18 returns.
//!
//! `qdrant_get` plays Qdrant: it turns a create body into the `result.config` that
//! `GET /collections/{name}` returns afterwards, with every default Qdrant 1.18 fills in
//! (`config/config.yaml` storage defaults; `CollectionConfig`/`CollectionParams` serialization
//! in `lib/collection/src/operations/types.rs` and `lib/collection/src/config.rs`; f32
//! `quantile`; `optimizer_config` spelled without the s; `quantization_config: null` when off;
//! `sharding_method` omitted when never set; empty per-vector `hnsw_config` omitted).
//! `index_info` plays `payload_schema` after `PUT /collections/{name}/index`. One test also
//! uses a literal response as Qdrant 1.18 prints it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use api_types::collection::{FieldDrift, QdrantCollectionSpec};
use collection_controller::build::{create_request, field_schema};
use collection_controller::diff::{Actual, Diff, diff, json_eq};
use collection_controller::ownership::Declared;
use serde_json::{Value, json};

const NAME: &str = "docs";

fn spec(extra: Value) -> QdrantCollectionSpec {
    let mut base = json!({"cluster": {"name": "demo"}});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value(base).unwrap()
}

/// `a` with `b`'s keys laid over it.
fn merged(mut a: Value, b: Option<&Value>) -> Value {
    if let (Some(a), Some(Value::Object(b))) = (a.as_object_mut(), b) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
    a
}

/// A float as Qdrant sends back an `f32` field: through `f32` and its shortest text form.
fn via_f32(v: &Value) -> Value {
    let f = v.as_f64().unwrap() as f32;
    serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap()
}

/// Qdrant stores `quantile` as `f32`.
fn stored_quantization(q: Option<&Value>) -> Value {
    let Some(mut q) = q.cloned() else {
        return Value::Null;
    };
    if let Some(quantile) = q.pointer("/scalar/quantile").cloned() {
        q["scalar"]["quantile"] = via_f32(&quantile);
    }
    q
}

fn stored_vector(v: &Value) -> Value {
    let mut v = v.clone();
    let obj = v.as_object_mut().unwrap();
    // `skip_serializing_if = "is_hnsw_diff_empty"`
    if obj.get("hnsw_config") == Some(&json!({})) {
        obj.remove("hnsw_config");
    }
    if let Some(q) = obj.get("quantization_config").cloned() {
        obj.insert("quantization_config".into(), stored_quantization(Some(&q)));
    }
    v
}

/// `result.config` of `GET /collections/{name}` right after `PUT /collections/{name}` with
/// `create` on a single-node Qdrant 1.18 with the default `config.yaml`.
fn qdrant_get(create: &Value) -> Value {
    let vectors = match create.get("vectors") {
        None => json!({}),
        Some(v) if v.get("size").is_some() => stored_vector(v),
        Some(Value::Object(named)) => Value::Object(
            named
                .iter()
                .map(|(k, v)| (k.clone(), stored_vector(v)))
                .collect(),
        ),
        Some(other) => panic!("bad vectors {other}"),
    };
    let mut params = json!({
        "vectors": vectors,
        "shard_number": create.get("shard_number").cloned().unwrap_or(json!(1)),
        "replication_factor": create.get("replication_factor").cloned().unwrap_or(json!(1)),
        "write_consistency_factor":
            create.get("write_consistency_factor").cloned().unwrap_or(json!(1)),
        "on_disk_payload": create.get("on_disk_payload").cloned().unwrap_or(json!(true)),
    });
    for key in ["sharding_method", "sparse_vectors"] {
        if let Some(v) = create.get(key) {
            params[key] = v.clone();
        }
    }
    let mut config = json!({
        "params": params,
        "hnsw_config": merged(
            json!({"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                   "max_indexing_threads": 0, "on_disk": false}),
            create.get("hnsw_config"),
        ),
        "optimizer_config": merged(
            json!({"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                   "default_segment_number": 0, "max_segment_size": null,
                   "memmap_threshold": null, "indexing_threshold": 10000,
                   "flush_interval_sec": 5, "max_optimization_threads": null,
                   "prevent_unoptimized": null}),
            create.get("optimizers_config"),
        ),
        "wal_config": merged(
            json!({"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1}),
            create.get("wal_config"),
        ),
        "quantization_config": stored_quantization(create.get("quantization_config")),
    });
    if let Some(s) = create.get("strict_mode_config") {
        config["strict_mode_config"] = s.clone();
    }
    config
}

/// `payload_schema[field]` after `PUT /collections/{name}/index` with `field_schema`:
/// a bare type has no params; params come back as Qdrant serializes them (unset
/// integer/float/datetime options as `null`, a text index with its `tokenizer`).
fn index_info(field_schema: &Value) -> Value {
    match field_schema {
        Value::String(t) => json!({"data_type": t, "points": 0}),
        Value::Object(p) => {
            let t = p["type"].as_str().unwrap().to_string();
            let mut params = p.clone();
            let nullable: &[&str] = match t.as_str() {
                "integer" => &["lookup", "range", "is_principal"],
                "float" | "datetime" => &["is_principal"],
                _ => &[],
            };
            for k in nullable {
                params.entry(*k).or_insert(Value::Null);
            }
            if t == "text" {
                params.entry("tokenizer").or_insert(json!("word"));
            }
            json!({"data_type": t, "params": params, "points": 42})
        }
        other => panic!("bad field_schema {other}"),
    }
}

/// What Qdrant has after the controller created everything `spec` asks for.
struct World {
    config: Value,
    schema: BTreeMap<String, Value>,
    aliases: Vec<(String, String)>,
    /// What the object declared before (the operator's record in the collection metadata).
    declared: Declared,
}

impl World {
    fn after_create(spec: &QdrantCollectionSpec) -> Self {
        World {
            config: qdrant_get(&create_request(spec)),
            schema: spec
                .payload_indexes
                .iter()
                .map(|i| (i.field.clone(), index_info(&field_schema(i))))
                .collect(),
            aliases: spec
                .aliases
                .iter()
                .map(|a| (a.clone(), NAME.to_string()))
                .collect(),
            declared: Declared::of(spec),
        }
    }

    fn diff(&self, spec: &QdrantCollectionSpec) -> Diff {
        diff(
            spec,
            NAME,
            &Actual {
                config: &self.config,
                payload_schema: &self.schema,
                aliases: &self.aliases,
                declared: &self.declared,
            },
        )
    }
}

fn drift(field: &str, desired: &str, actual: &str) -> FieldDrift {
    FieldDrift {
        field: field.into(),
        desired: desired.into(),
        actual: actual.into(),
    }
}

/// Only an update, with exactly `body`.
fn assert_update(d: &Diff, body: Value) {
    assert_eq!(d.update.as_ref(), Some(&body), "update");
    assert!(d.drift.is_empty(), "no drift expected: {:?}", d.drift);
    assert!(d.create_indexes.is_empty() && d.delete_indexes.is_empty());
    assert!(d.alias_actions.is_empty());
    assert!(d.needs_writes());
}

/// Drift entries with their JSON texts parsed, so key order inside them does not matter.
fn parsed(drift: &[FieldDrift]) -> Vec<(String, Value, Value)> {
    drift
        .iter()
        .map(|f| {
            (
                f.field.clone(),
                serde_json::from_str(&f.desired).unwrap(),
                serde_json::from_str(&f.actual).unwrap(),
            )
        })
        .collect()
}

fn assert_drift_eq(actual: &[FieldDrift], expected: &[FieldDrift]) {
    assert_eq!(parsed(actual), parsed(expected), "drift");
}

/// Only drift, exactly `expected`, and no writes.
fn assert_drift(d: &Diff, expected: &[FieldDrift]) {
    assert_drift_eq(&d.drift, expected);
    assert_eq!(d.update, None, "no update for immutable fields");
    assert!(!d.needs_writes());
}

fn unnamed() -> Value {
    json!({"vectors": {"size": 4, "distance": "Cosine"}})
}

fn full_spec() -> QdrantCollectionSpec {
    spec(json!({
        "namedVectors": {
            "image": {"size": 512, "distance": "Euclid", "onDisk": true, "datatype": "Float16",
                      "hnsw": {"m": 32}, "quantization": {"product": {"compression": "X16"}}},
            "colbert": {"size": 128, "distance": "Dot", "datatype": "Float32",
                        "multivector": {"comparator": "MaxSim"}, "hnsw": {}},
        },
        "sparseVectors": {
            "bm25": {"modifier": "Idf", "index": {"onDisk": true, "fullScanThreshold": 5000}},
            "splade": {"modifier": "None"},
        },
        "shardNumber": 2,
        "shardingMethod": "Auto",
        "replicationFactor": 1,
        "writeConsistencyFactor": 1,
        "onDiskPayload": false,
        "hnswConfig": {"m": 24, "efConstruct": 128, "fullScanThreshold": 20000,
                       "maxIndexingThreads": 4, "onDisk": true, "payloadM": 16},
        "optimizersConfig": {"deletedThreshold": 0.25, "vacuumMinVectorNumber": 2000,
                             "defaultSegmentNumber": 4, "maxSegmentSize": 200000,
                             "memmapThreshold": 50000, "indexingThreshold": 30000,
                             "flushIntervalSec": 10, "maxOptimizationThreads": 2},
        "walConfig": {"walCapacityMb": 64, "walSegmentsAhead": 1},
        "quantizationConfig": {"scalar": {"type": "Int8", "quantile": 0.99, "alwaysRam": true}},
        "strictModeConfig": {"enabled": true, "maxQueryLimit": 100, "maxTimeout": 30,
                             "unindexedFilteringRetrieve": false,
                             "unindexedFilteringUpdate": false, "searchMaxHnswEf": 256,
                             "searchAllowExact": false, "searchMaxOversampling": 2.5,
                             "upsertMaxBatchsize": 1000, "maxPointsCount": 1000000},
        "payloadIndexes": [
            {"field": "tenant", "schema": "Keyword", "params": {"is_tenant": true}},
            {"field": "year", "schema": "Integer", "params": {"range": true}},
            {"field": "price", "schema": "Float", "params": {"on_disk": true}},
            {"field": "body", "schema": "Text", "params": {"lowercase": true}},
            {"field": "title", "schema": "Text", "params": {"tokenizer": "word"}},
            {"field": "at", "schema": "Datetime"},
            {"field": "id", "schema": "Uuid"},
            {"field": "loc", "schema": "Geo"},
            {"field": "ok", "schema": "Bool"},
        ],
        "aliases": ["prod", "latest"],
    }))
}

// ---------------------------------------------------------------- in sync

#[test]
fn in_sync_after_create_is_empty() {
    for s in [
        spec(unnamed()),
        spec(json!({"sparseVectors": {"text": {}}})),
        spec(json!({"namedVectors": {}})),
        full_spec(),
    ] {
        let world = World::after_create(&s);
        let d = world.diff(&s);
        assert_eq!(d, Diff::default(), "spec {s:?}");
        assert!(!d.needs_writes());
    }
}

#[test]
fn in_sync_with_a_literal_qdrant_1_18_response() {
    // As `GET /collections/docs` prints it after
    // PUT {"vectors": {"size": 4, "distance": "Dot", "on_disk": true},
    //      "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99}},
    //      "sparse_vectors": {"text": {"modifier": "idf"}}}
    let config = json!({
        "params": {
            "vectors": {"size": 4, "distance": "Dot", "on_disk": true},
            "shard_number": 1,
            "replication_factor": 1,
            "write_consistency_factor": 1,
            "on_disk_payload": true,
            "sparse_vectors": {"text": {"modifier": "idf"}}
        },
        "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                        "max_indexing_threads": 0, "on_disk": false},
        "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                             "default_segment_number": 0, "max_segment_size": null,
                             "memmap_threshold": null, "indexing_threshold": 10000,
                             "flush_interval_sec": 5, "max_optimization_threads": null,
                             "prevent_unoptimized": null},
        "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1},
        "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99}}
    });
    let schema: BTreeMap<String, Value> = serde_json::from_value(json!({
        "tenant": {"data_type": "keyword", "params": {"type": "keyword", "is_tenant": true},
                   "points": 1000},
        "year": {"data_type": "integer",
                 "params": {"type": "integer", "lookup": null, "range": true, "is_principal": null},
                 "points": 1000},
        "body": {"data_type": "text", "params": {"type": "text", "tokenizer": "word"},
                 "points": 1000},
        "flag": {"data_type": "bool", "points": 1000}
    }))
    .unwrap();
    let aliases = vec![
        ("docs-prod".to_string(), NAME.to_string()),
        ("other-prod".to_string(), "other".to_string()),
    ];
    let s = spec(json!({
        "vectors": {"size": 4, "distance": "Dot", "onDisk": true, "datatype": "Float32"},
        "sparseVectors": {"text": {"modifier": "Idf"}},
        "shardNumber": 1,
        "shardingMethod": "Auto",
        "onDiskPayload": true,
        "hnswConfig": {"m": 16},
        "optimizersConfig": {"deletedThreshold": 0.2, "indexingThreshold": 10000},
        "walConfig": {"walCapacityMb": 32},
        "quantizationConfig": {"scalar": {"type": "Int8", "quantile": 0.99}},
        "payloadIndexes": [
            {"field": "tenant", "schema": "Keyword", "params": {"is_tenant": true}},
            {"field": "year", "schema": "Integer", "params": {"range": true}},
            {"field": "body", "schema": "Text"},
            {"field": "flag", "schema": "Bool"},
        ],
        "aliases": ["docs-prod"],
    }));
    let d = diff(
        &s,
        NAME,
        &Actual {
            config: &config,
            payload_schema: &schema,
            aliases: &aliases,
            declared: &Declared::of(&s),
        },
    );
    assert_eq!(d, Diff::default());
}

#[test]
fn unset_fields_are_ignored() {
    // Qdrant has plenty the spec does not mention: nothing is compared, nothing written.
    let full = full_spec();
    let mut world = World::after_create(&full);
    world.config["params"]["replication_factor"] = json!(3);
    world.config["strict_mode_config"]["max_timeout"] = json!(99);
    let minimal = spec(json!({
        "namedVectors": {
            "image": {"size": 512, "distance": "Euclid"},
            "colbert": {"size": 128, "distance": "Dot"},
        },
        "payloadIndexes": full.payload_indexes,
        "aliases": full.aliases,
    }));
    assert_eq!(world.diff(&minimal), Diff::default());
}

#[test]
fn removing_a_setting_from_the_spec_is_not_a_change() {
    let with = spec(json!({
        "vectors": {"size": 4, "distance": "Cosine",
                    "quantization": {"binary": {}}, "hnsw": {"m": 8}, "onDisk": true},
        "quantizationConfig": {"scalar": {"type": "Int8"}},
        "strictModeConfig": {"enabled": true},
        "hnswConfig": {"m": 64},
        "sparseVectors": {"text": {"modifier": "Idf"}},
    }));
    let world = World::after_create(&with);
    assert_eq!(
        world.config["quantization_config"],
        json!({"scalar": {"type": "int8"}})
    );
    let without = spec(unnamed());
    assert_eq!(world.diff(&without), Diff::default());
}

#[test]
fn numbers_compare_by_value() {
    let s = spec(json!({
        "vectors": {"size": 4, "distance": "Cosine", "hnsw": {"m": 8}},
        "shardNumber": 2,
        "replicationFactor": 2,
        "hnswConfig": {"m": 16},
        "optimizersConfig": {"deletedThreshold": 0.5},
    }));
    let mut world = World::after_create(&s);
    world.config["params"]["vectors"]["size"] = json!(4.0);
    world.config["params"]["vectors"]["hnsw_config"]["m"] = json!(8.0);
    world.config["params"]["shard_number"] = json!(2.0);
    world.config["params"]["replication_factor"] = json!(2.0);
    world.config["hnsw_config"]["m"] = json!(16.0);
    world.config["optimizer_config"]["deleted_threshold"] = json!(0.5);
    assert_eq!(world.diff(&s), Diff::default());

    world.config["hnsw_config"]["m"] = json!(16.5);
    assert_update(&world.diff(&s), json!({"hnsw_config": {"m": 16}}));
}

#[test]
fn f32_quantile_round_trip_is_equal() {
    // Qdrant keeps `quantile` as f32: 0.123456789 comes back as 0.12345679.
    let s = spec(json!({
        "vectors": {"size": 4, "distance": "Cosine"},
        "quantizationConfig": {"scalar": {"type": "Int8", "quantile": 0.123456789}},
    }));
    let world = World::after_create(&s);
    assert_eq!(
        world.config["quantization_config"]["scalar"]["quantile"],
        json!(0.12345679)
    );
    assert_eq!(world.diff(&s), Diff::default());
}

#[test]
fn json_eq_rules() {
    assert!(json_eq(&json!(1), &json!(1.0)));
    assert!(json_eq(&json!(-3), &json!(-3.0)));
    assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
    assert!(!json_eq(&json!(u64::MAX), &json!(u64::MAX - 1)));
    assert!(!json_eq(&json!(1), &json!(2)));
    assert!(!json_eq(&json!(0.9), &json!(0.95)));
    assert!(!json_eq(&json!(1), &json!("1")));
    assert!(json_eq(&json!({"a": 1, "b": null}), &json!({"a": 1.0})));
    assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    assert!(!json_eq(&json!({"a": 1, "b": 2}), &json!({"a": 1})));
    assert!(json_eq(&json!([1, {"x": 2}]), &json!([1.0, {"x": 2.0}])));
    assert!(!json_eq(&json!([1, 2]), &json!([1])));
}

// ---------------------------------------------------------------- changeable fields

fn changed(base: Value, change: Value) -> (World, QdrantCollectionSpec) {
    let world = World::after_create(&spec(base.clone()));
    (world, spec(merged(base, Some(&change))))
}

#[test]
fn replication_factor_changed() {
    let (world, s) = changed(unnamed(), json!({"replicationFactor": 3}));
    assert_update(
        &world.diff(&s),
        json!({"params": {"replication_factor": 3}}),
    );
}

#[test]
fn write_consistency_factor_changed() {
    let (world, s) = changed(unnamed(), json!({"writeConsistencyFactor": 2}));
    assert_update(
        &world.diff(&s),
        json!({"params": {"write_consistency_factor": 2}}),
    );
}

#[test]
fn on_disk_payload_changed() {
    let (world, s) = changed(unnamed(), json!({"onDiskPayload": false}));
    assert_update(
        &world.diff(&s),
        json!({"params": {"on_disk_payload": false}}),
    );
}

#[test]
fn hnsw_sends_only_differing_keys() {
    let (world, s) = changed(
        unnamed(),
        json!({"hnswConfig": {"m": 32, "efConstruct": 100, "onDisk": false, "payloadM": 8}}),
    );
    assert_update(
        &world.diff(&s),
        json!({"hnsw_config": {"m": 32, "payload_m": 8}}),
    );
}

#[test]
fn optimizers_use_request_spelling() {
    let (world, s) = changed(
        unnamed(),
        json!({"optimizersConfig": {"deletedThreshold": 0.2, "indexingThreshold": 0,
                                    "maxOptimizationThreads": 1, "maxSegmentSize": 100000}}),
    );
    assert_update(
        &world.diff(&s),
        json!({"optimizers_config": {"indexing_threshold": 0, "max_optimization_threads": 1,
                                     "max_segment_size": 100000}}),
    );
}

#[test]
fn quantization_turned_on() {
    let (world, s) = changed(
        unnamed(),
        json!({"quantizationConfig": {"binary": {"alwaysRam": true}}}),
    );
    assert_eq!(world.config["quantization_config"], Value::Null);
    assert_update(
        &world.diff(&s),
        json!({"quantization_config": {"binary": {"always_ram": true}}}),
    );
}

#[test]
fn quantization_kind_changed_sends_the_new_kind_only() {
    let base = merged(
        unnamed(),
        Some(
            &json!({"quantizationConfig": {"scalar": {"type": "Int8", "quantile": 0.99,
                                                        "alwaysRam": true}}}),
        ),
    );
    let (world, s) = changed(
        base,
        json!({"quantizationConfig": {"product": {"compression": "X32"}}}),
    );
    assert_update(
        &world.diff(&s),
        json!({"quantization_config": {"product": {"compression": "x32"}}}),
    );
}

#[test]
fn quantization_same_kind_keeps_qdrant_keys_the_spec_leaves_unset() {
    let s = spec(merged(
        unnamed(),
        Some(&json!({"quantizationConfig": {"scalar": {"type": "Int8", "quantile": 0.95}}})),
    ));
    let mut world = World::after_create(&s);
    // Changed behind the operator's back: quantile and always_ram.
    world.config["quantization_config"] =
        json!({"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}});
    assert_update(
        &world.diff(&s),
        json!({"quantization_config": {"scalar": {"type": "int8", "quantile": 0.95,
                                                  "always_ram": true}}}),
    );
}

#[test]
fn binary_quantization_extra_qdrant_keys_are_in_sync() {
    let s = spec(merged(
        unnamed(),
        Some(&json!({"quantizationConfig": {"binary": {"alwaysRam": true}}})),
    ));
    let mut world = World::after_create(&s);
    world.config["quantization_config"] =
        json!({"binary": {"always_ram": true, "encoding": "two_bits"}});
    assert_eq!(world.diff(&s), Diff::default());
}

#[test]
fn strict_mode_absent_in_qdrant_sends_everything_set() {
    let (world, s) = changed(
        unnamed(),
        json!({"strictModeConfig": {"enabled": true, "maxQueryLimit": 50}}),
    );
    assert!(world.config.get("strict_mode_config").is_none());
    assert_update(
        &world.diff(&s),
        json!({"strict_mode_config": {"enabled": true, "max_query_limit": 50}}),
    );
}

#[test]
fn strict_mode_sends_only_differing_keys() {
    let base = merged(
        unnamed(),
        Some(
            &json!({"strictModeConfig": {"enabled": true, "maxQueryLimit": 50,
                                          "searchMaxOversampling": 1.5}}),
        ),
    );
    let (world, s) = changed(
        base,
        json!({"strictModeConfig": {"enabled": true, "maxQueryLimit": 50,
                                    "searchMaxOversampling": 2.0, "maxPointsCount": 10}}),
    );
    assert_update(
        &world.diff(&s),
        json!({"strict_mode_config": {"search_max_oversampling": 2.0, "max_points_count": 10}}),
    );
}

#[test]
fn unnamed_vector_changes_go_under_the_empty_name() {
    let (world, s) = changed(
        unnamed(),
        json!({"vectors": {"size": 4, "distance": "Cosine", "onDisk": true,
                           "hnsw": {"m": 0, "payloadM": 16},
                           "quantization": {"scalar": {"type": "Int8"}}}}),
    );
    assert_update(
        &world.diff(&s),
        json!({"vectors": {"": {
            "on_disk": true,
            "hnsw_config": {"m": 0, "payload_m": 16},
            "quantization_config": {"scalar": {"type": "int8"}},
        }}}),
    );
}

#[test]
fn vector_on_disk_false_when_qdrant_has_none_is_sent_once() {
    let (world, s) = changed(
        unnamed(),
        json!({"vectors": {"size": 4, "distance": "Cosine", "onDisk": false}}),
    );
    assert_update(
        &world.diff(&s),
        json!({"vectors": {"": {"on_disk": false}}}),
    );
    // ... and after Qdrant applied it, nothing more.
    let applied = World::after_create(&s);
    assert_eq!(applied.diff(&s), Diff::default());
}

#[test]
fn named_vector_changes() {
    let base = json!({"namedVectors": {
        "image": {"size": 512, "distance": "Euclid", "hnsw": {"m": 16}},
        "text": {"size": 768, "distance": "Cosine"},
    }});
    let (world, s) = changed(
        base,
        json!({"namedVectors": {
            "image": {"size": 512, "distance": "Euclid", "hnsw": {"m": 8, "efConstruct": 64}},
            "text": {"size": 768, "distance": "Cosine",
                     "quantization": {"product": {"compression": "X8", "alwaysRam": false}}},
        }}),
    );
    assert_update(
        &world.diff(&s),
        json!({"vectors": {
            "image": {"hnsw_config": {"m": 8, "ef_construct": 64}},
            "text": {"quantization_config": {"product": {"compression": "x8", "always_ram": false}}},
        }}),
    );
}

#[test]
fn sparse_index_changes() {
    let base = json!({"sparseVectors": {
        "bm25": {"modifier": "Idf", "index": {"onDisk": false}},
        "plain": {},
    }});
    let (world, s) = changed(
        base,
        json!({"sparseVectors": {
            "bm25": {"modifier": "Idf", "index": {"onDisk": true, "fullScanThreshold": 100}},
            "plain": {"index": {"onDisk": false}},
        }}),
    );
    assert_update(
        &world.diff(&s),
        json!({"sparse_vectors": {
            "bm25": {"index": {"on_disk": true, "full_scan_threshold": 100}},
            "plain": {"index": {"on_disk": false}},
        }}),
    );
}

#[test]
fn several_changes_make_one_patch() {
    let (world, s) = changed(
        unnamed(),
        json!({
            "vectors": {"size": 4, "distance": "Cosine", "onDisk": true},
            "replicationFactor": 2,
            "onDiskPayload": false,
            "hnswConfig": {"efConstruct": 256},
            "optimizersConfig": {"flushIntervalSec": 30},
            "quantizationConfig": {"scalar": {"type": "Int8", "alwaysRam": true}},
            "strictModeConfig": {"enabled": false},
        }),
    );
    assert_update(
        &world.diff(&s),
        json!({
            "vectors": {"": {"on_disk": true}},
            "params": {"replication_factor": 2, "on_disk_payload": false},
            "hnsw_config": {"ef_construct": 256},
            "optimizers_config": {"flush_interval_sec": 30},
            "quantization_config": {"scalar": {"type": "int8", "always_ram": true}},
            "strict_mode_config": {"enabled": false},
        }),
    );
}

#[test]
fn changes_behind_the_operators_back_are_reverted() {
    let s = full_spec();
    let mut world = World::after_create(&s);
    world.config["params"]["on_disk_payload"] = json!(true);
    world.config["hnsw_config"]["payload_m"] = json!(0);
    world.config["optimizer_config"]["deleted_threshold"] = json!(0.9);
    world.config["quantization_config"] = Value::Null;
    world.config["params"]["vectors"]["image"]["on_disk"] = json!(false);
    assert_update(
        &world.diff(&s),
        json!({
            "params": {"on_disk_payload": false},
            "hnsw_config": {"payload_m": 16},
            "optimizers_config": {"deleted_threshold": 0.25},
            "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}},
            "vectors": {"image": {"on_disk": true}},
        }),
    );
}

// ---------------------------------------------------------------- immutable fields

#[test]
fn vector_size_changed() {
    let (world, s) = changed(
        unnamed(),
        json!({"vectors": {"size": 8, "distance": "Cosine"}}),
    );
    assert_drift(&world.diff(&s), &[drift("spec.vectors.size", "8", "4")]);
}

#[test]
fn vector_distance_changed() {
    let (world, s) = changed(
        unnamed(),
        json!({"vectors": {"size": 4, "distance": "Dot"}}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift("spec.vectors.distance", "\"Dot\"", "\"Cosine\"")],
    );
}

#[test]
fn vector_datatype_changed() {
    // Qdrant shows no datatype for float32 vectors.
    let (world, s) = changed(
        unnamed(),
        json!({"vectors": {"size": 4, "distance": "Cosine", "datatype": "Float16"}}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift("spec.vectors.datatype", "\"float16\"", "\"float32\"")],
    );
    let (world, s) = changed(
        json!({"vectors": {"size": 4, "distance": "Cosine", "datatype": "Uint8"}}),
        json!({"vectors": {"size": 4, "distance": "Cosine", "datatype": "Float32"}}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift("spec.vectors.datatype", "\"float32\"", "\"uint8\"")],
    );
    // float32 is what Qdrant means by no datatype.
    let (world, s) = changed(
        unnamed(),
        json!({"vectors": {"size": 4, "distance": "Cosine", "datatype": "Float32"}}),
    );
    assert_eq!(world.diff(&s), Diff::default());
}

#[test]
fn multivector_added() {
    let (world, s) = changed(
        unnamed(),
        json!({"vectors": {"size": 4, "distance": "Cosine", "multivector": {"comparator": "MaxSim"}}}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift(
            "spec.vectors.multivector",
            r#"{"comparator":"max_sim"}"#,
            "null",
        )],
    );
}

#[test]
fn named_vector_distance_and_size_changed() {
    let base = json!({"namedVectors": {
        "image": {"size": 512, "distance": "Euclid"},
        "text": {"size": 768, "distance": "Cosine"},
    }});
    let (world, s) = changed(
        base,
        json!({"namedVectors": {
            "image": {"size": 1024, "distance": "Cosine"},
            "text": {"size": 768, "distance": "Cosine"},
        }}),
    );
    assert_drift(
        &world.diff(&s),
        &[
            drift(
                "spec.namedVectors.image.distance",
                "\"Cosine\"",
                "\"Euclid\"",
            ),
            drift("spec.namedVectors.image.size", "1024", "512"),
        ],
    );
}

#[test]
fn named_vector_missing_in_qdrant() {
    let base = json!({"namedVectors": {"image": {"size": 512, "distance": "Euclid"}}});
    let (world, s) = changed(
        base,
        json!({"namedVectors": {
            "image": {"size": 512, "distance": "Euclid"},
            "text": {"size": 768, "distance": "Cosine", "onDisk": true},
        }}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift(
            "spec.namedVectors.text",
            r#"{"distance":"Cosine","on_disk":true,"size":768}"#,
            "null",
        )],
    );
}

#[test]
fn named_vector_only_in_qdrant_is_reported_not_deleted() {
    let base = json!({"namedVectors": {
        "image": {"size": 512, "distance": "Euclid"},
        "old": {"size": 3, "distance": "Dot"},
    }});
    let (world, s) = changed(
        base,
        json!({"namedVectors": {"image": {"size": 512, "distance": "Euclid", "onDisk": true}}}),
    );
    let d = world.diff(&s);
    assert_drift_eq(
        &d.drift,
        &[drift(
            "spec.namedVectors.old",
            "null",
            r#"{"distance":"Dot","size":3}"#,
        )],
    );
    // The other vector's change still goes through; nothing touches "old".
    assert_eq!(
        d.update,
        Some(json!({"vectors": {"image": {"on_disk": true}}}))
    );
}

#[test]
fn unnamed_in_spec_named_in_qdrant() {
    let world = World::after_create(&spec(
        json!({"namedVectors": {"a": {"size": 4, "distance": "Cosine"}}}),
    ));
    let s = spec(json!({"vectors": {"size": 4, "distance": "Cosine", "onDisk": true}}));
    assert_drift(
        &world.diff(&s),
        &[drift(
            "spec.vectors",
            r#"{"distance":"Cosine","on_disk":true,"size":4}"#,
            r#"{"a":{"distance":"Cosine","size":4}}"#,
        )],
    );
}

#[test]
fn named_in_spec_unnamed_in_qdrant() {
    let world = World::after_create(&spec(unnamed()));
    let s = spec(json!({"namedVectors": {"a": {"size": 4, "distance": "Cosine"}}}));
    assert_drift(
        &world.diff(&s),
        &[drift(
            "spec.namedVectors",
            r#"{"a":{"distance":"Cosine","size":4}}"#,
            r#"{"distance":"Cosine","size":4}"#,
        )],
    );
}

#[test]
fn dense_vector_in_spec_sparse_only_collection() {
    let world = World::after_create(&spec(json!({"sparseVectors": {"text": {}}})));
    let s =
        spec(json!({"vectors": {"size": 4, "distance": "Cosine"}, "sparseVectors": {"text": {}}}));
    assert_drift(
        &world.diff(&s),
        &[drift(
            "spec.vectors",
            r#"{"distance":"Cosine","size":4}"#,
            "{}",
        )],
    );
}

#[test]
fn shard_number_changed() {
    let (world, s) = changed(
        merged(unnamed(), Some(&json!({"shardNumber": 3}))),
        json!({"shardNumber": 6}),
    );
    assert_drift(&world.diff(&s), &[drift("spec.shardNumber", "6", "3")]);
}

#[test]
fn sharding_method_changed() {
    // Qdrant omits sharding_method when it was never set: that is auto.
    let (world, s) = changed(unnamed(), json!({"shardingMethod": "Custom"}));
    assert!(world.config["params"].get("sharding_method").is_none());
    assert_drift(
        &world.diff(&s),
        &[drift("spec.shardingMethod", "\"custom\"", "\"auto\"")],
    );
    let (world, s) = changed(unnamed(), json!({"shardingMethod": "Auto"}));
    assert_eq!(world.diff(&s), Diff::default());
    let (world, s) = changed(
        merged(unnamed(), Some(&json!({"shardingMethod": "Custom"}))),
        json!({"shardingMethod": "Auto"}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift("spec.shardingMethod", "\"auto\"", "\"custom\"")],
    );
}

#[test]
fn wal_config_changed() {
    let (world, s) = changed(
        unnamed(),
        json!({"walConfig": {"walCapacityMb": 128, "walSegmentsAhead": 0}}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift("spec.walConfig.walCapacityMb", "128", "32")],
    );
}

#[test]
fn sparse_modifier_changes_in_place() {
    let (world, s) = changed(
        json!({"sparseVectors": {"text": {}}}),
        json!({"sparseVectors": {"text": {"modifier": "Idf"}}}),
    );
    let d = world.diff(&s);
    assert_update(&d, json!({"sparse_vectors": {"text": {"modifier": "idf"}}}));
    assert!(d.drift.is_empty());
    let (world, s) = changed(
        json!({"sparseVectors": {"text": {"modifier": "Idf"}}}),
        json!({"sparseVectors": {"text": {"modifier": "None"}}}),
    );
    assert_update(
        &world.diff(&s),
        json!({"sparse_vectors": {"text": {"modifier": "none"}}}),
    );
}

#[test]
fn sparse_vector_missing_in_qdrant() {
    let (world, s) = changed(
        json!({"sparseVectors": {"a": {}}}),
        json!({"sparseVectors": {"a": {}, "b": {"modifier": "Idf"}}}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift(
            "spec.sparseVectors.b",
            r#"{"modifier":"idf"}"#,
            "null",
        )],
    );
}

#[test]
fn sparse_vector_only_in_qdrant() {
    let (world, s) = changed(
        json!({"sparseVectors": {"a": {}, "b": {"modifier": "Idf"}}}),
        json!({"sparseVectors": {"a": {}}}),
    );
    assert_drift(
        &world.diff(&s),
        &[drift(
            "spec.sparseVectors.b",
            "null",
            r#"{"modifier":"idf"}"#,
        )],
    );
}

#[test]
fn drift_is_sorted_and_changes_still_apply() {
    let base = json!({"vectors": {"size": 4, "distance": "Cosine"}, "shardNumber": 1,
                      "walConfig": {"walSegmentsAhead": 0}});
    let (world, s) = changed(
        base,
        json!({"vectors": {"size": 8, "distance": "Dot", "onDisk": true}, "shardNumber": 2,
               "walConfig": {"walSegmentsAhead": 2}, "replicationFactor": 2}),
    );
    let d = world.diff(&s);
    assert_drift_eq(
        &d.drift,
        &[
            drift("spec.shardNumber", "2", "1"),
            drift("spec.vectors.distance", "\"Dot\"", "\"Cosine\""),
            drift("spec.vectors.size", "8", "4"),
            drift("spec.walConfig.walSegmentsAhead", "2", "0"),
        ],
    );
    assert_eq!(
        d.update,
        Some(json!({"vectors": {"": {"on_disk": true}}, "params": {"replication_factor": 2}}))
    );
}

// ---------------------------------------------------------------- payload indexes

fn with_indexes(indexes: Value) -> QdrantCollectionSpec {
    spec(merged(unnamed(), Some(&json!({"payloadIndexes": indexes}))))
}

#[test]
fn index_added() {
    let world = World::after_create(&with_indexes(json!([{"field": "a", "schema": "Keyword"}])));
    let s = with_indexes(json!([
        {"field": "c", "schema": "Integer", "params": {"lookup": true}},
        {"field": "a", "schema": "Keyword"},
        {"field": "b", "schema": "Text"},
    ]));
    let d = world.diff(&s);
    assert_eq!(
        d.create_indexes,
        [
            ("b".to_string(), json!("text")),
            ("c".to_string(), json!({"type": "integer", "lookup": true})),
        ]
    );
    assert!(d.delete_indexes.is_empty());
    assert_eq!(d.update, None);
    assert!(d.needs_writes());
}

#[test]
fn index_removed() {
    let world = World::after_create(&with_indexes(json!([
        {"field": "z", "schema": "Keyword"},
        {"field": "a", "schema": "Keyword"},
        {"field": "m", "schema": "Geo"},
    ])));
    let s = with_indexes(json!([{"field": "m", "schema": "Geo"}]));
    let d = world.diff(&s);
    assert_eq!(d.delete_indexes, ["a", "z"]);
    assert!(d.create_indexes.is_empty());
    assert!(d.needs_writes());
    // No payloadIndexes at all: every index the spec declared goes.
    assert_eq!(world.diff(&spec(unnamed())).delete_indexes, ["a", "m", "z"]);
}

#[test]
fn index_created_outside_the_operator_stays() {
    // "tenant" was created by an application: never declared, so never deleted, whether the
    // spec lists other indexes, drops a declared one, or lists none.
    let mut world = World::after_create(&with_indexes(json!([
        {"field": "a", "schema": "Keyword"},
        {"field": "b", "schema": "Integer"},
    ])));
    world.schema.insert(
        "tenant".into(),
        json!({"data_type": "keyword", "points": 3}),
    );
    let others = with_indexes(json!([
        {"field": "a", "schema": "Keyword"},
        {"field": "b", "schema": "Integer"},
        {"field": "c", "schema": "Bool"},
    ]));
    let d = world.diff(&others);
    assert!(d.delete_indexes.is_empty(), "{d:?}");
    assert_eq!(d.create_indexes, [("c".to_string(), json!("bool"))]);
    let dropped = with_indexes(json!([{"field": "a", "schema": "Keyword"}]));
    assert_eq!(world.diff(&dropped).delete_indexes, ["b"]);
    assert_eq!(world.diff(&spec(unnamed())).delete_indexes, ["a", "b"]);
    // Nothing declared before (a collection adopted now): nothing is deleted at all.
    world.declared = Declared::default();
    assert!(world.diff(&dropped).delete_indexes.is_empty());
    // A declared index Qdrant no longer has is not "deleted" again.
    world.declared = Declared::of(&others);
    assert_eq!(world.diff(&dropped).delete_indexes, ["b"]);
}

#[test]
fn index_deletions_are_sorted_across_changed_and_removed() {
    let world = World::after_create(&with_indexes(json!([
        {"field": "a", "schema": "Keyword"},
        {"field": "z", "schema": "Keyword"},
    ])));
    // "z" changes (delete + create), "a" goes: deletions in name order all the same.
    let s = with_indexes(json!([{"field": "z", "schema": "Uuid"}]));
    let d = world.diff(&s);
    assert_eq!(d.delete_indexes, ["a", "z"]);
    assert_eq!(d.create_indexes, [("z".to_string(), json!("uuid"))]);
}

#[test]
fn duplicate_index_field_first_entry_wins() {
    // Validation refuses duplicates; should one slip through, the first entry counts.
    let world = World::after_create(&with_indexes(json!([{"field": "f", "schema": "Keyword"}])));
    let s = with_indexes(json!([
        {"field": "f", "schema": "Keyword"},
        {"field": "f", "schema": "Integer"},
    ]));
    assert_eq!(world.diff(&s), Diff::default());
}

#[test]
fn index_type_changed_is_recreated() {
    let world = World::after_create(&with_indexes(
        json!([{"field": "year", "schema": "Keyword"}]),
    ));
    let s = with_indexes(json!([{"field": "year", "schema": "Integer"}]));
    let d = world.diff(&s);
    assert_eq!(d.delete_indexes, ["year"]);
    assert_eq!(d.create_indexes, [("year".to_string(), json!("integer"))]);
}

#[test]
fn index_params_changed_is_recreated() {
    let world = World::after_create(&with_indexes(json!([
        {"field": "tenant", "schema": "Keyword"},
        {"field": "body", "schema": "Text", "params": {"tokenizer": "word"}},
    ])));
    let s = with_indexes(json!([
        {"field": "tenant", "schema": "Keyword", "params": {"is_tenant": true}},
        {"field": "body", "schema": "Text", "params": {"tokenizer": "multilingual"}},
    ]));
    let d = world.diff(&s);
    assert_eq!(d.delete_indexes, ["body", "tenant"]);
    assert_eq!(
        d.create_indexes,
        [
            (
                "body".to_string(),
                json!({"type": "text", "tokenizer": "multilingual"})
            ),
            (
                "tenant".to_string(),
                json!({"type": "keyword", "is_tenant": true})
            ),
        ]
    );
    // Params dropped from the spec: the index is recreated without them.
    let world = World::after_create(&s);
    let plain = with_indexes(json!([
        {"field": "tenant", "schema": "Keyword"},
        {"field": "body", "schema": "Text", "params": {"tokenizer": "multilingual"}},
    ]));
    let d = world.diff(&plain);
    assert_eq!(d.delete_indexes, ["tenant"]);
    assert_eq!(d.create_indexes, [("tenant".to_string(), json!("keyword"))]);
}

#[test]
fn index_params_as_qdrant_reports_them_are_equal() {
    // Qdrant's nulls, its default text tokenizer, the bare type vs {"type"} only, and 2 vs 2.0.
    let s = with_indexes(json!([
        {"field": "year", "schema": "Integer", "params": {"range": false}},
        {"field": "body", "schema": "Text", "params": {"min_token_len": 2}},
        {"field": "title", "schema": "Text"},
        {"field": "tag", "schema": "Keyword"},
    ]));
    let schema: BTreeMap<String, Value> = serde_json::from_value(json!({
        "year": {"data_type": "integer", "points": 5,
                 "params": {"type": "integer", "lookup": null, "range": false,
                            "is_principal": null}},
        "body": {"data_type": "text", "points": 5,
                 "params": {"type": "text", "tokenizer": "word", "min_token_len": 2.0}},
        "title": {"data_type": "text", "points": 5,
                  "params": {"type": "text", "tokenizer": "word"}},
        "tag": {"data_type": "keyword", "points": 5, "params": {"type": "keyword"}},
    }))
    .unwrap();
    let config = qdrant_get(&create_request(&s));
    let d = diff(
        &s,
        NAME,
        &Actual {
            config: &config,
            payload_schema: &schema,
            aliases: &[],
            declared: &Declared::default(),
        },
    );
    assert_eq!(d, Diff::default());
}

// ---------------------------------------------------------------- aliases

/// Qdrant holds `aliases` (`(alias, collection)`); the object declared `declared` before.
fn aliases_world(aliases: &[(&str, &str)], declared: &[&str]) -> World {
    let mut world = World::after_create(&spec(unnamed()));
    world.aliases = aliases
        .iter()
        .map(|(a, c)| (a.to_string(), c.to_string()))
        .collect();
    world.declared.aliases = declared.iter().map(|a| a.to_string()).collect();
    world
}

fn with_aliases(aliases: &[&str]) -> QdrantCollectionSpec {
    spec(merged(unnamed(), Some(&json!({"aliases": aliases}))))
}

#[test]
fn alias_created() {
    let world = aliases_world(&[("other-prod", "other")], &[]);
    let d = world.diff(&with_aliases(&["prod", "latest"]));
    assert_eq!(
        d.alias_actions,
        [
            json!({"create_alias": {"collection_name": NAME, "alias_name": "latest"}}),
            json!({"create_alias": {"collection_name": NAME, "alias_name": "prod"}}),
        ]
    );
    assert!(d.needs_writes());
    assert_eq!(d.update, None);
}

#[test]
fn alias_in_place_needs_nothing() {
    let world = aliases_world(&[("prod", NAME), ("other-prod", "other")], &["prod"]);
    let d = world.diff(&with_aliases(&["prod"]));
    assert!(d.alias_actions.is_empty());
    assert!(!d.needs_writes());
}

#[test]
fn alias_moved_from_another_collection() {
    let world = aliases_world(&[("prod", "docs-v1"), ("staging", "docs-v1")], &[]);
    let d = world.diff(&with_aliases(&["prod"]));
    assert_eq!(
        d.alias_actions,
        [
            json!({"delete_alias": {"alias_name": "prod"}}),
            json!({"create_alias": {"collection_name": NAME, "alias_name": "prod"}}),
        ]
    );
}

#[test]
fn alias_removed_and_other_collections_left_alone() {
    let world = aliases_world(
        &[
            ("old", NAME),
            ("prod", NAME),
            ("zeta", NAME),
            ("other-prod", "other"),
            ("unlisted", "other"),
        ],
        &["old", "prod", "zeta", "unlisted"],
    );
    let d = world.diff(&with_aliases(&["prod"]));
    assert_eq!(
        d.alias_actions,
        [
            json!({"delete_alias": {"alias_name": "old"}}),
            json!({"delete_alias": {"alias_name": "zeta"}}),
        ]
    );
    // No aliases in the spec: this collection's declared aliases go, the others stay.
    let d = world.diff(&spec(unnamed()));
    assert_eq!(
        d.alias_actions,
        [
            json!({"delete_alias": {"alias_name": "old"}}),
            json!({"delete_alias": {"alias_name": "prod"}}),
            json!({"delete_alias": {"alias_name": "zeta"}}),
        ]
    );
}

#[test]
fn alias_create_move_and_remove_together() {
    let world = aliases_world(
        &[("b-old", NAME), ("c-move", "legacy"), ("keep", NAME)],
        &["b-old", "keep"],
    );
    let d = world.diff(&with_aliases(&["keep", "c-move", "a-new"]));
    assert_eq!(
        d.alias_actions,
        [
            json!({"delete_alias": {"alias_name": "b-old"}}),
            json!({"create_alias": {"collection_name": NAME, "alias_name": "a-new"}}),
            json!({"delete_alias": {"alias_name": "c-move"}}),
            json!({"create_alias": {"collection_name": NAME, "alias_name": "c-move"}}),
        ]
    );
}

#[test]
fn alias_created_outside_the_operator_stays() {
    // "app-live" points here but was never declared: it stays whatever the spec lists, while
    // the declared "old" goes once the spec drops it.
    let world = aliases_world(&[("app-live", NAME), ("old", NAME)], &["old"]);
    let d = world.diff(&with_aliases(&["new"]));
    assert_eq!(
        d.alias_actions,
        [
            json!({"delete_alias": {"alias_name": "old"}}),
            json!({"create_alias": {"collection_name": NAME, "alias_name": "new"}}),
        ]
    );
    assert_eq!(
        world.diff(&spec(unnamed())).alias_actions,
        [json!({"delete_alias": {"alias_name": "old"}})]
    );
    // A declared alias someone moved to another collection is not taken back or deleted.
    let moved = aliases_world(&[("old", "elsewhere")], &["old"]);
    assert!(moved.diff(&spec(unnamed())).alias_actions.is_empty());
}

// ---------------------------------------------------------------- determinism, needs_writes

#[test]
fn same_input_same_output_whatever_the_order() {
    let s = full_spec();
    let mut world = World::after_create(&s);
    world.config["params"]["shard_number"] = json!(5);
    world.config["params"]["vectors"]["image"]["size"] = json!(3);
    world.config["hnsw_config"]["m"] = json!(4);
    world.schema.remove("tenant");
    world
        .schema
        .insert("stale".into(), json!({"data_type": "keyword", "points": 0}));
    world.aliases = vec![
        ("z".into(), NAME.into()),
        ("prod".into(), "x".into()),
        ("a".into(), NAME.into()),
    ];
    // Declared before: "stale", "z" and "a" are the operator's to delete.
    world.declared.payload_indexes.insert("stale".into());
    world
        .declared
        .aliases
        .extend(["z".to_string(), "a".to_string()]);
    let first = world.diff(&s);
    assert_eq!(first, world.diff(&s));
    world.aliases.reverse();
    let mut reordered = s.clone();
    reordered.payload_indexes.reverse();
    reordered.aliases.reverse();
    assert_eq!(first, world.diff(&reordered));
    assert_eq!(
        first.alias_actions,
        [
            json!({"delete_alias": {"alias_name": "a"}}),
            json!({"delete_alias": {"alias_name": "z"}}),
            json!({"create_alias": {"collection_name": NAME, "alias_name": "latest"}}),
            json!({"delete_alias": {"alias_name": "prod"}}),
            json!({"create_alias": {"collection_name": NAME, "alias_name": "prod"}}),
        ]
    );
    assert_drift_eq(
        &first.drift,
        &[
            drift("spec.namedVectors.image.size", "512", "3"),
            drift("spec.shardNumber", "2", "5"),
        ],
    );
    assert_eq!(first.update, Some(json!({"hnsw_config": {"m": 24}})));
    assert_eq!(first.delete_indexes, ["stale"]);
    assert_eq!(
        first.create_indexes,
        [(
            "tenant".to_string(),
            json!({"type": "keyword", "is_tenant": true})
        )]
    );
}

#[test]
fn needs_writes_cases() {
    assert!(!Diff::default().needs_writes());
    let only_drift = Diff {
        drift: vec![drift("spec.shardNumber", "2", "1")],
        ..Diff::default()
    };
    assert!(!only_drift.needs_writes());
    for d in [
        Diff {
            update: Some(json!({"params": {}})),
            ..Diff::default()
        },
        Diff {
            create_indexes: vec![("a".into(), json!("keyword"))],
            ..Diff::default()
        },
        Diff {
            delete_indexes: vec!["a".into()],
            ..Diff::default()
        },
        Diff {
            alias_actions: vec![json!({"delete_alias": {"alias_name": "a"}})],
            ..Diff::default()
        },
    ] {
        assert!(d.needs_writes(), "{d:?}");
    }
}

#[test]
fn missing_blocks_in_qdrant_are_changes_not_panics() {
    // A sparse response (older Qdrant, proxy): whatever the spec sets and Qdrant lacks is sent.
    let config = json!({"params": {"vectors": {"size": 4, "distance": "Cosine"}}});
    let s = spec(json!({
        "vectors": {"size": 4, "distance": "Cosine"},
        "replicationFactor": 1,
        "hnswConfig": {"m": 16},
        "optimizersConfig": {"flushIntervalSec": 5},
        "walConfig": {"walCapacityMb": 32},
    }));
    let d = diff(
        &s,
        NAME,
        &Actual {
            config: &config,
            payload_schema: &BTreeMap::new(),
            aliases: &[],
            declared: &Declared::default(),
        },
    );
    assert_eq!(
        d.update,
        Some(json!({
            "params": {"replication_factor": 1},
            "hnsw_config": {"m": 16},
            "optimizers_config": {"flush_interval_sec": 5},
        }))
    );
    assert_drift_eq(
        &d.drift,
        &[drift("spec.walConfig.walCapacityMb", "32", "null")],
    );
}
