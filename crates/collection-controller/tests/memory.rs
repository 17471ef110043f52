//! Memory placement for the server at hand (`collection_controller::memory`): the lowering
//! table of Qdrant 1.19's `memory` to the deprecated flags of older servers, the refusals, and
//! the requests built from the result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;

use api_types::QdrantCollectionSpec;
use collection_controller::{
    build,
    memory::{for_server, knows_memory, parse_version, uses_memory},
};
use serde_json::{Value, json};

const V1_18: (u64, u64) = (1, 18);
const V1_19: (u64, u64) = (1, 19);

fn spec(extra: Value) -> QdrantCollectionSpec {
    let mut base = json!({"connection": {"url": "http://q:6333"}});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value(base).unwrap()
}

/// The create body for `extra` on a server of `version`.
fn body(extra: Value, version: (u64, u64)) -> Value {
    let s = spec(extra);
    build::create_request(&for_server(&s, version, "x").unwrap())
}

#[test]
fn versions_parse_from_servers_and_image_tags() {
    assert_eq!(parse_version("1.18.3"), Some((1, 18)));
    assert_eq!(parse_version("v1.19.0"), Some((1, 19)));
    assert_eq!(parse_version("1.19.0-dev"), Some((1, 19)));
    assert_eq!(parse_version("latest"), None);
    assert!(!knows_memory((1, 18)));
    assert!(knows_memory((1, 19)));
    assert!(knows_memory((2, 0)));
}

#[test]
fn a_spec_without_memory_is_used_as_is_and_needs_no_version() {
    let s = spec(json!({"vectors": {"size": 4, "distance": "Dot", "onDisk": true}}));
    assert!(!uses_memory(&s));
    assert!(matches!(for_server(&s, (0, 0), "?"), Ok(Cow::Borrowed(_))));
}

#[test]
fn qdrant_1_19_gets_memory_as_is() {
    let b = body(
        json!({"vectors": {"size": 4, "distance": "Dot", "memory": "Cold",
                           "hnsw": {"memory": "Pinned"},
                           "quantization": {"product": {"compression": "X16", "memory": "Cached"}}},
               "sparseVectors": {"t": {"index": {"memory": "Cached"}}},
               "payload": {"memory": "Cold"}}),
        V1_19,
    );
    assert_eq!(
        b["vectors"],
        json!({"size": 4, "distance": "Dot", "memory": "cold",
               "hnsw_config": {"memory": "pinned"},
               "quantization_config": {"product": {"compression": "x16", "memory": "cached"}}})
    );
    assert_eq!(
        b["sparse_vectors"]["t"]["index"],
        json!({"memory": "cached"})
    );
    assert_eq!(b["payload"], json!({"memory": "cold"}));
    assert!(b.get("on_disk_payload").is_none());
}

#[test]
fn older_qdrant_gets_the_deprecated_flags_qdrant_reads_the_same_way() {
    // (spec fragment, JSON pointer into the create body, expected value): Qdrant 1.19's own
    // `Memory::from_on_disk` (Cold = on_disk, Cached = in RAM), `from_on_disk_heap` for the
    // sparse index (Pinned = in RAM) and `always_ram = Pinned` for quantized vectors.
    let cases = [
        (
            json!({"vectors": {"size": 4, "distance": "Dot", "memory": "Cold"}}),
            "/vectors/on_disk",
            json!(true),
        ),
        (
            json!({"vectors": {"size": 4, "distance": "Dot", "memory": "Cached"}}),
            "/vectors/on_disk",
            json!(false),
        ),
        (
            json!({"namedVectors": {"img": {"size": 4, "distance": "Dot", "memory": "Cold"}}}),
            "/vectors/img/on_disk",
            json!(true),
        ),
        (
            json!({"hnswConfig": {"m": 8, "memory": "Cold"}}),
            "/hnsw_config/on_disk",
            json!(true),
        ),
        (
            json!({"hnswConfig": {"memory": "Cached"}}),
            "/hnsw_config/on_disk",
            json!(false),
        ),
        (
            json!({"vectors": {"size": 4, "distance": "Dot", "hnsw": {"memory": "Cold"}}}),
            "/vectors/hnsw_config/on_disk",
            json!(true),
        ),
        (
            json!({"sparseVectors": {"t": {"index": {"memory": "Cold"}}}}),
            "/sparse_vectors/t/index/on_disk",
            json!(true),
        ),
        (
            json!({"sparseVectors": {"t": {"index": {"memory": "Pinned"}}}}),
            "/sparse_vectors/t/index/on_disk",
            json!(false),
        ),
        (
            json!({"quantizationConfig": {"scalar": {"type": "Int8", "memory": "Pinned"}}}),
            "/quantization_config/scalar/always_ram",
            json!(true),
        ),
        (
            json!({"vectors": {"size": 4, "distance": "Dot", "quantization": {"binary": {"memory": "Pinned"}}}}),
            "/vectors/quantization_config/binary/always_ram",
            json!(true),
        ),
        (
            json!({"payload": {"memory": "Cold"}}),
            "/on_disk_payload",
            json!(true),
        ),
        (
            json!({"payload": {"memory": "Cached"}}),
            "/on_disk_payload",
            json!(false),
        ),
    ];
    for (extra, pointer, want) in cases {
        let b = body(extra.clone(), V1_18);
        assert_eq!(b.pointer(pointer), Some(&want), "{extra} -> {b}");
        assert!(!b.to_string().contains("memory"), "{extra} -> {b}");
        assert!(b.get("payload").is_none(), "{b}");
    }
}

#[test]
fn payload_index_params_are_lowered_too() {
    let s = spec(json!({"payloadIndexes": [
        {"field": "a", "schema": "Keyword", "params": {"memory": "cold", "is_tenant": true}},
        {"field": "b", "schema": "Integer", "params": {"memory": "pinned"}},
        {"field": "c", "schema": "Bool"}]}));
    assert!(uses_memory(&s));
    let lowered = for_server(&s, V1_18, "1.18.3").unwrap();
    let schemas: Vec<Value> = lowered
        .payload_indexes
        .iter()
        .map(build::field_schema)
        .collect();
    assert_eq!(
        schemas,
        [
            json!({"type": "keyword", "is_tenant": true, "on_disk": true}),
            json!({"type": "integer", "on_disk": false}),
            json!("bool"),
        ]
    );
    let native = for_server(&s, V1_19, "1.19.0").unwrap();
    assert_eq!(
        build::field_schema(&native.payload_indexes[0]),
        json!({"type": "keyword", "is_tenant": true, "memory": "cold"})
    );
}

#[test]
fn placements_without_an_older_equivalent_are_refused_by_name() {
    let s = spec(json!({
        "vectors": {"size": 4, "distance": "Dot", "hnsw": {"memory": "Pinned"}},
        "sparseVectors": {"t": {"index": {"memory": "Cached"}}},
        "quantizationConfig": {"scalar": {"type": "Int8", "memory": "Cold"}},
        "payloadIndexes": [{"field": "a", "schema": "Keyword", "params": {"memory": "cached"}}],
    }));
    let e = for_server(&s, V1_18, "1.18.3").unwrap_err();
    let fields: Vec<&str> = e.fields.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.vectors.hnsw.memory",
            "spec.quantizationConfig.scalar.memory",
            "spec.sparseVectors.t.index.memory",
            "spec.payloadIndexes[0].params.memory",
        ]
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("spec.vectors.hnsw.memory: Pinned, "),
        "{msg}"
    );
    assert!(
        msg.contains("needs Qdrant 1.19 or newer (this Qdrant is 1.18.3)"),
        "{msg}"
    );
    // The same spec is fine for 1.19.
    assert!(for_server(&s, V1_19, "1.19.0").is_ok());
}

#[test]
fn lowering_keeps_everything_else() {
    let s = spec(json!({
        "vectors": {"size": 4, "distance": "Dot", "memory": "Cold", "datatype": "Float16"},
        "shardNumber": 3, "replicationFactor": 2,
        "hnswConfig": {"m": 32, "efConstruct": 200, "memory": "Cold"},
        "aliases": ["a"],
    }));
    let lowered = for_server(&s, V1_18, "1.18.3").unwrap().into_owned();
    let mut expected = s.clone();
    expected.vectors.as_mut().unwrap().memory = None;
    expected.vectors.as_mut().unwrap().on_disk = Some(true);
    expected.hnsw_config.as_mut().unwrap().memory = None;
    expected.hnsw_config.as_mut().unwrap().on_disk = Some(true);
    assert_eq!(lowered, expected);
}

#[test]
fn on_qdrant_1_19_a_placement_is_patched_until_qdrant_reports_it() {
    use collection_controller::{
        diff::{Actual, diff},
        ownership::Declared,
    };
    let s = spec(json!({
        "vectors": {"size": 4, "distance": "Dot", "memory": "Cold", "hnsw": {"memory": "Cached"}},
        "hnswConfig": {"memory": "Cold"},
        "quantizationConfig": {"binary": {"memory": "Pinned"}},
        "sparseVectors": {"t": {"index": {"memory": "Pinned"}}},
        "payload": {"memory": "Cold"},
    }));
    let s = for_server(&s, V1_19, "1.19.0").unwrap();
    let run = |config: Value| {
        diff(
            &s,
            "c",
            &Actual {
                config: &config,
                payload_schema: &Default::default(),
                aliases: &[],
                declared: &Declared::default(),
            },
        )
        .update
    };
    // A collection created before with the deprecated flags (as a 1.18 server stored it).
    let before = json!({
        "params": {"vectors": {"size": 4, "distance": "Dot", "on_disk": true},
                   "sparse_vectors": {"t": {"index": {"on_disk": false}}},
                   "on_disk_payload": true, "shard_number": 1, "replication_factor": 1},
        "hnsw_config": {"m": 16, "on_disk": true},
        "quantization_config": {"binary": {"always_ram": true}},
    });
    assert_eq!(
        run(before),
        Some(json!({
            "vectors": {"": {"memory": "cold", "hnsw_config": {"memory": "cached"}}},
            "hnsw_config": {"memory": "cold"},
            "quantization_config": {"binary": {"always_ram": true, "memory": "pinned"}},
            "sparse_vectors": {"t": {"index": {"memory": "pinned"}}},
            "params": {"payload": {"memory": "cold"}},
        }))
    );
    // What Qdrant 1.19 reports once the PATCH is applied: nothing more to write.
    let after = json!({
        "params": {"vectors": {"size": 4, "distance": "Dot", "on_disk": true, "memory": "cold",
                               "hnsw_config": {"memory": "cached"}},
                   "sparse_vectors": {"t": {"index": {"on_disk": false, "memory": "pinned"}}},
                   "on_disk_payload": true, "payload": {"memory": "cold"},
                   "shard_number": 1, "replication_factor": 1},
        "hnsw_config": {"m": 16, "on_disk": true, "memory": "cold"},
        "quantization_config": {"binary": {"always_ram": true, "memory": "pinned"}},
    });
    assert_eq!(run(after), None);
}
