//! Build tests: the bodies of `PUT /collections/{name}` and the `field_schema` of
//! `PUT /collections/{name}/index`, exactly as Qdrant 1.18 spells them (shapes checked against
//! `lib/storage/src/content_manager/collection_meta_ops.rs` `CreateCollection`,
//! `lib/collection/src/operations/types.rs` `VectorParams`, `lib/segment/src/types.rs` and
//! `docs/redoc/master/openapi.json` at tag v1.18.3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::collection::{
    Distance, MultivectorComparator, PayloadIndex, PayloadSchemaType, ProductCompression,
    QdrantCollectionSpec, ScalarType, ShardingMethod, SparseModifier, VectorDatatype,
};
use collection_controller::build::{self, create_request, field_schema};
use serde_json::{Value, json};

/// A spec from its YAML-ish JSON (camelCase, as a user writes it).
fn spec(extra: Value) -> QdrantCollectionSpec {
    let mut base = json!({"cluster": {"name": "demo"}});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value(base).unwrap()
}

fn index(v: Value) -> PayloadIndex {
    serde_json::from_value(v).unwrap()
}

#[test]
fn unnamed_vector_minimal_has_only_vectors() {
    let body = create_request(&spec(
        json!({"vectors": {"size": 384, "distance": "Cosine"}}),
    ));
    assert_eq!(
        body,
        json!({"vectors": {"size": 384, "distance": "Cosine"}})
    );
}

#[test]
fn unnamed_vector_with_every_field() {
    let body = create_request(&spec(json!({"vectors": {
        "size": 128,
        "distance": "Dot",
        "onDisk": true,
        "datatype": "Float16",
        "multivector": {"comparator": "MaxSim"},
        "hnsw": {"m": 32, "efConstruct": 200, "onDisk": false},
        "quantization": {"binary": {"alwaysRam": true}},
    }})));
    assert_eq!(
        body,
        json!({"vectors": {
            "size": 128,
            "distance": "Dot",
            "on_disk": true,
            "datatype": "float16",
            "multivector_config": {"comparator": "max_sim"},
            "hnsw_config": {"m": 32, "ef_construct": 200, "on_disk": false},
            "quantization_config": {"binary": {"always_ram": true}},
        }})
    );
}

#[test]
fn named_vectors_are_a_map() {
    let body = create_request(&spec(json!({"namedVectors": {
        "image": {"size": 512, "distance": "Euclid", "datatype": "Uint8"},
        "text": {"size": 768, "distance": "Cosine", "onDisk": false},
    }})));
    assert_eq!(
        body,
        json!({"vectors": {
            "image": {"size": 512, "distance": "Euclid", "datatype": "uint8"},
            "text": {"size": 768, "distance": "Cosine", "on_disk": false},
        }})
    );
}

#[test]
fn empty_named_vectors_is_an_empty_map() {
    let body = create_request(&spec(json!({"namedVectors": {}})));
    assert_eq!(body, json!({"vectors": {}}));
}

#[test]
fn hybrid_dense_and_sparse() {
    let body = create_request(&spec(json!({
        "namedVectors": {"dense": {"size": 4, "distance": "Manhattan"}},
        "sparseVectors": {
            "bm25": {"modifier": "Idf", "index": {"onDisk": true, "fullScanThreshold": 5000}},
            "splade": {"modifier": "None"},
            "plain": {},
        },
    })));
    assert_eq!(
        body,
        json!({
            "vectors": {"dense": {"size": 4, "distance": "Manhattan"}},
            "sparse_vectors": {
                "bm25": {"modifier": "idf", "index": {"on_disk": true, "full_scan_threshold": 5000}},
                "splade": {"modifier": "none"},
                "plain": {},
            },
        })
    );
}

#[test]
fn sparse_only_collection_has_no_vectors_key() {
    // Qdrant's CreateCollection has `#[serde(default)] vectors`: absent means no dense vectors.
    let body = create_request(&spec(json!({"sparseVectors": {"text": {}}})));
    assert_eq!(body, json!({"sparse_vectors": {"text": {}}}));
    assert!(body.get("vectors").is_none());
}

#[test]
fn multivector_late_interaction() {
    let body = create_request(&spec(json!({"namedVectors": {
        "colbert": {"size": 128, "distance": "Cosine", "multivector": {"comparator": "MaxSim"},
                    "hnsw": {"m": 0}},
    }})));
    assert_eq!(
        body["vectors"]["colbert"],
        json!({"size": 128, "distance": "Cosine",
               "multivector_config": {"comparator": "max_sim"}, "hnsw_config": {"m": 0}})
    );
}

#[test]
fn every_config_block() {
    let body = create_request(&spec(json!({
        "vectors": {"size": 8, "distance": "Cosine"},
        "shardNumber": 6,
        "shardingMethod": "Custom",
        "replicationFactor": 2,
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
        "payloadIndexes": [{"field": "tenant", "schema": "Keyword"}],
        "aliases": ["prod"],
        "deletionPolicy": "Delete",
    })));
    assert_eq!(
        body,
        json!({
            "vectors": {"size": 8, "distance": "Cosine"},
            "shard_number": 6,
            "sharding_method": "custom",
            "replication_factor": 2,
            "write_consistency_factor": 1,
            "on_disk_payload": false,
            "hnsw_config": {"m": 24, "ef_construct": 128, "full_scan_threshold": 20000,
                            "max_indexing_threads": 4, "on_disk": true, "payload_m": 16},
            "optimizers_config": {"deleted_threshold": 0.25, "vacuum_min_vector_number": 2000,
                                  "default_segment_number": 4, "max_segment_size": 200000,
                                  "memmap_threshold": 50000, "indexing_threshold": 30000,
                                  "flush_interval_sec": 10, "max_optimization_threads": 2},
            "wal_config": {"wal_capacity_mb": 64, "wal_segments_ahead": 1},
            "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}},
            "strict_mode_config": {"enabled": true, "max_query_limit": 100, "max_timeout": 30,
                                   "unindexed_filtering_retrieve": false,
                                   "unindexed_filtering_update": false,
                                   "search_max_hnsw_ef": 256, "search_allow_exact": false,
                                   "search_max_oversampling": 2.5,
                                   "upsert_max_batchsize": 1000, "max_points_count": 1000000},
        })
    );
}

#[test]
fn partial_blocks_carry_only_what_is_set() {
    let body = create_request(&spec(json!({
        "vectors": {"size": 8, "distance": "Cosine"},
        "hnswConfig": {"m": 0},
        "optimizersConfig": {"indexingThreshold": 0},
        "walConfig": {},
        "strictModeConfig": {"enabled": false},
    })));
    assert_eq!(body["hnsw_config"], json!({"m": 0}));
    assert_eq!(body["optimizers_config"], json!({"indexing_threshold": 0}));
    assert_eq!(body["wal_config"], json!({}));
    assert_eq!(body["strict_mode_config"], json!({"enabled": false}));
    for absent in [
        "sparse_vectors",
        "shard_number",
        "sharding_method",
        "replication_factor",
        "write_consistency_factor",
        "on_disk_payload",
        "quantization_config",
    ] {
        assert!(body.get(absent).is_none(), "{absent} should be omitted");
    }
}

#[test]
fn each_quantization_kind() {
    let cases = [
        (
            json!({"scalar": {"type": "Int8"}}),
            json!({"scalar": {"type": "int8"}}),
        ),
        (
            json!({"scalar": {"type": "Int8", "quantile": 0.95, "alwaysRam": false}}),
            json!({"scalar": {"type": "int8", "quantile": 0.95, "always_ram": false}}),
        ),
        (
            json!({"product": {"compression": "X16", "alwaysRam": true}}),
            json!({"product": {"compression": "x16", "always_ram": true}}),
        ),
        (
            json!({"product": {"compression": "X4"}}),
            json!({"product": {"compression": "x4"}}),
        ),
        (
            json!({"binary": {"alwaysRam": true}}),
            json!({"binary": {"always_ram": true}}),
        ),
        (json!({"binary": {}}), json!({"binary": {}})),
    ];
    for (spec_q, want) in cases {
        let body = create_request(&spec(json!({
            "vectors": {"size": 8, "distance": "Cosine", "quantization": spec_q},
            "quantizationConfig": spec_q,
        })));
        assert_eq!(
            body["quantization_config"], want,
            "collection level: {spec_q}"
        );
        assert_eq!(
            body["vectors"]["quantization_config"], want,
            "vector level: {spec_q}"
        );
    }
}

#[test]
fn quantization_without_a_kind_is_omitted() {
    let body = create_request(&spec(json!({
        "vectors": {"size": 8, "distance": "Cosine"},
        "quantizationConfig": {},
    })));
    assert!(body.get("quantization_config").is_none());
}

#[test]
fn enum_spellings() {
    assert_eq!(
        [
            Distance::Cosine,
            Distance::Euclid,
            Distance::Dot,
            Distance::Manhattan
        ]
        .map(build::distance),
        ["Cosine", "Euclid", "Dot", "Manhattan"]
    );
    assert_eq!(
        [
            VectorDatatype::Float32,
            VectorDatatype::Float16,
            VectorDatatype::Uint8
        ]
        .map(build::datatype),
        ["float32", "float16", "uint8"]
    );
    assert_eq!(
        build::multivector_comparator(MultivectorComparator::MaxSim),
        "max_sim"
    );
    assert_eq!(
        [SparseModifier::None, SparseModifier::Idf].map(build::sparse_modifier),
        ["none", "idf"]
    );
    assert_eq!(
        [ShardingMethod::Auto, ShardingMethod::Custom].map(build::sharding_method),
        ["auto", "custom"]
    );
    assert_eq!(build::scalar_type(ScalarType::Int8), "int8");
    assert_eq!(
        [
            ProductCompression::X4,
            ProductCompression::X8,
            ProductCompression::X16,
            ProductCompression::X32,
            ProductCompression::X64
        ]
        .map(build::compression),
        ["x4", "x8", "x16", "x32", "x64"]
    );
}

#[test]
fn every_distance_and_datatype_in_a_request() {
    for (d, q) in [
        ("Cosine", "Cosine"),
        ("Euclid", "Euclid"),
        ("Dot", "Dot"),
        ("Manhattan", "Manhattan"),
    ] {
        let body = create_request(&spec(json!({"vectors": {"size": 3, "distance": d}})));
        assert_eq!(body["vectors"]["distance"], q);
    }
    for (d, q) in [
        ("Float32", "float32"),
        ("Float16", "float16"),
        ("Uint8", "uint8"),
    ] {
        let body = create_request(&spec(
            json!({"vectors": {"size": 3, "distance": "Dot", "datatype": d}}),
        ));
        assert_eq!(body["vectors"]["datatype"], q);
    }
}

#[test]
fn field_schema_string_form() {
    for (schema, name) in [
        ("Keyword", "keyword"),
        ("Integer", "integer"),
        ("Float", "float"),
        ("Geo", "geo"),
        ("Text", "text"),
        ("Bool", "bool"),
        ("Datetime", "datetime"),
        ("Uuid", "uuid"),
    ] {
        let idx = index(json!({"field": "f", "schema": schema}));
        assert_eq!(field_schema(&idx), json!(name), "{schema}");
    }
}

#[test]
fn field_schema_empty_params_are_the_string_form() {
    let empty = index(json!({"field": "f", "schema": "Keyword", "params": {}}));
    assert_eq!(field_schema(&empty), json!("keyword"));
    let only_type =
        index(json!({"field": "f", "schema": "Keyword", "params": {"type": "keyword"}}));
    assert_eq!(field_schema(&only_type), json!("keyword"));
}

#[test]
fn field_schema_object_form() {
    let idx = index(json!({"field": "tenant", "schema": "Keyword",
                           "params": {"is_tenant": true, "on_disk": true}}));
    assert_eq!(
        field_schema(&idx),
        json!({"type": "keyword", "is_tenant": true, "on_disk": true})
    );

    let text = index(json!({"field": "body", "schema": "Text",
                            "params": {"tokenizer": "multilingual", "min_token_len": 2,
                                       "lowercase": true,
                                       "stemmer": {"type": "snowball", "language": "english"}}}));
    assert_eq!(
        field_schema(&text),
        json!({"type": "text", "tokenizer": "multilingual", "min_token_len": 2,
               "lowercase": true, "stemmer": {"type": "snowball", "language": "english"}})
    );

    let int = index(json!({"field": "year", "schema": "Integer",
                           "params": {"lookup": false, "range": true}}));
    assert_eq!(
        field_schema(&int),
        json!({"type": "integer", "lookup": false, "range": true})
    );
}

#[test]
fn field_schema_type_comes_from_schema() {
    let idx = index(json!({"field": "f", "schema": "Uuid",
                           "params": {"type": "keyword", "is_tenant": true}}));
    assert_eq!(
        field_schema(&idx),
        json!({"type": "uuid", "is_tenant": true})
    );
    assert_eq!(PayloadSchemaType::Uuid.as_qdrant(), "uuid");
}
