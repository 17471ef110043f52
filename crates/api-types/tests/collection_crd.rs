//! QdrantCollection CRD checks: structural schema, descriptions, names and columns, and the
//! verdicts of the schema and CEL rules on good and bad objects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::{with, without};
use kube::CustomResourceExt;
use serde_json::{Value, json};

mod common;

fn schema() -> Value {
    let (_, crd) = api_types::crd::all()
        .into_iter()
        .find(|(file, _)| *file == "qdrantcollections.yaml")
        .unwrap();
    assert_eq!(
        crd.spec.names.kind,
        api_types::QdrantCollection::crd().spec.names.kind
    );
    serde_json::to_value(&crd.spec.versions[0].schema).unwrap()["openAPIV3Schema"].clone()
}

#[test]
fn integers_past_their_type_are_refused_by_the_schema() {
    // Stored, such a value would fail the controllers' decoding of every list and watch of
    // the kind (u32 fields), so the API server must refuse it.
    for field in ["shardNumber", "replicationFactor", "writeConsistencyFactor"] {
        let v = with(good(), &format!("/spec/{field}"), json!(5_000_000_000_u64));
        let e = schema_errors(&v);
        assert!(
            e.iter()
                .any(|m| m.contains(&format!("/spec/{field}")) && m.contains("4294967295")),
            "{field}: {e:?}"
        );
        let ok = with(good(), &format!("/spec/{field}"), json!(u32::MAX));
        assert_eq!(schema_errors(&ok), Vec::<String>::new(), "{field}");
    }
}

fn good() -> Value {
    json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCollection",
        "metadata": {"name": "articles", "namespace": "default"},
        "spec": {
            "cluster": {"name": "demo"},
            "vectors": {"size": 768, "distance": "Cosine", "onDisk": true},
            "shardNumber": 6, "replicationFactor": 2,
            "quantizationConfig": {"scalar": {"type": "Int8", "quantile": 0.99, "alwaysRam": true}},
            "payloadIndexes": [{"field": "category", "schema": "Keyword", "params": {"is_tenant": true}}, {"field": "year", "schema": "Integer"}],
            "aliases": ["articles-current"],
            "deletionPolicy": "Retain"
        }
    })
}

fn schema_errors(obj: &Value) -> Vec<String> {
    common::schema_errors(&schema(), obj)
}

fn cel_errors(obj: &Value, old: Option<&Value>) -> Vec<String> {
    common::cel_errors(&schema(), obj, old)
}

#[test]
fn structural_with_free_form_only_in_index_params() {
    let v = api_types::crd::structural_violations(&schema(), &[".spec.payloadIndexes[].params"]);
    assert!(v.is_empty(), "{v:?}");
    let text = serde_json::to_string(&schema()).unwrap();
    assert_eq!(
        text.matches("x-kubernetes-preserve-unknown-fields").count(),
        1
    );
}

#[test]
fn every_field_has_a_description() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        for (k, v) in node
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let p = format!("{path}.{k}");
            if v.get("description").is_none() {
                missing.push(p.clone());
            }
            walk(v, &p, missing);
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
        if let Some(ap) = node.get("additionalProperties").filter(|v| v.is_object()) {
            walk(ap, &format!("{path}{{}}"), missing);
        }
    }
    let mut missing = vec![];
    walk(&schema()["properties"]["spec"], "spec", &mut missing);
    walk(&schema()["properties"]["status"], "status", &mut missing);
    assert!(missing.is_empty(), "{missing:?}");
}

#[test]
fn names_and_columns() {
    let crd = api_types::QdrantCollection::crd();
    assert_eq!(crd.spec.names.short_names, Some(vec!["qcol".to_string()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["qdrant".to_string()]));
    let cols: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(cols, ["Cluster", "Phase", "Status", "Points", "Age"]);
    let idx = &schema()["properties"]["spec"]["properties"]["payloadIndexes"];
    assert_eq!(idx["x-kubernetes-list-type"], json!("map"));
    assert_eq!(idx["x-kubernetes-list-map-keys"], json!(["field"]));
}

#[test]
fn good_object_passes() {
    assert_eq!(schema_errors(&good()), Vec::<String>::new());
    assert_eq!(cel_errors(&good(), None), Vec::<String>::new());
    let spec: api_types::QdrantCollectionSpec =
        serde_json::from_value(good()["spec"].clone()).unwrap();
    api_types::validation::validate_collection(&spec, "articles").unwrap();
}

#[test]
fn schema_refuses_bad_values() {
    for (pointer, value) in [
        ("/spec/vectors/size", json!(0)),
        ("/spec/vectors/distance", json!("Hamming")),
        ("/spec/shardNumber", json!(0)),
        ("/spec/deletionPolicy", json!("Orphan")),
        (
            "/spec/payloadIndexes",
            json!([{"field": "x", "schema": "Blob"}]),
        ),
        (
            "/spec/quantizationConfig",
            json!({"product": {"compression": "X3"}}),
        ),
    ] {
        let e = schema_errors(&with(good(), pointer, value.clone()));
        assert!(!e.is_empty(), "{pointer} = {value} should be refused");
    }
}

#[test]
fn cel_exactly_one_target() {
    let both = with(good(), "/spec/connection", json!({"url": "http://q:6333"}));
    assert!(
        cel_errors(&both, None)
            .iter()
            .any(|m| m.contains("exactly one of cluster or connection"))
    );
    let neither = without(good(), "/spec/cluster");
    assert!(
        cel_errors(&neither, None)
            .iter()
            .any(|m| m.contains("exactly one of cluster or connection"))
    );
    let conn = with(
        without(good(), "/spec/cluster"),
        "/spec/connection",
        json!({"url": "https://q.example:6333"}),
    );
    assert_eq!(cel_errors(&conn, None), Vec::<String>::new());
}

#[test]
fn cel_vectors_or_named_vectors() {
    let v = with(
        good(),
        "/spec/namedVectors",
        json!({"image": {"size": 512, "distance": "Dot"}}),
    );
    assert!(cel_errors(&v, None).iter().any(|m| m.contains("not both")));
}

#[test]
fn cel_collection_name_is_immutable() {
    let old = with(good(), "/spec/collectionName", json!("articles-v1"));
    let renamed = with(good(), "/spec/collectionName", json!("articles-v2"));
    assert!(
        cel_errors(&renamed, Some(&old))
            .iter()
            .any(|m| m.contains("immutable"))
    );
    let unset = good();
    assert!(
        cel_errors(&unset, Some(&old))
            .iter()
            .any(|m| m.contains("immutable")),
        "unsetting is a change too"
    );
    assert_eq!(cel_errors(&old, Some(&old)), Vec::<String>::new());
}

#[test]
fn cel_cluster_is_immutable() {
    let moved = with(good(), "/spec/cluster", json!({"name": "other"}));
    assert!(
        cel_errors(&moved, Some(&good()))
            .iter()
            .any(|m| m.contains("spec.cluster is immutable"))
    );
    let to_connection = with(
        without(good(), "/spec/cluster"),
        "/spec/connection",
        json!({"url": "http://q:6333"}),
    );
    assert!(
        cel_errors(&to_connection, Some(&good()))
            .iter()
            .any(|m| m.contains("spec.cluster is immutable"))
    );
    assert_eq!(cel_errors(&good(), Some(&good())), Vec::<String>::new());
}

#[test]
fn schema_bounds_fractions() {
    let e = schema_errors(&with(
        good(),
        "/spec/quantizationConfig",
        json!({"scalar": {"type": "Int8", "quantile": 0.2}}),
    ));
    assert!(!e.is_empty());
    let e = schema_errors(&with(
        good(),
        "/spec/optimizersConfig",
        json!({"deletedThreshold": 1.5}),
    ));
    assert!(!e.is_empty());
}

#[test]
fn cel_one_quantization_kind() {
    let two = with(
        good(),
        "/spec/quantizationConfig",
        json!({"scalar": {"type": "Int8"}, "binary": {}}),
    );
    assert!(
        cel_errors(&two, None)
            .iter()
            .any(|m| m.contains("exactly one of scalar, product or binary"))
    );
    let none = with(good(), "/spec/quantizationConfig", json!({}));
    assert!(
        cel_errors(&none, None)
            .iter()
            .any(|m| m.contains("exactly one of scalar, product or binary"))
    );
}

#[test]
fn validation_names_fields() {
    let mut spec: api_types::QdrantCollectionSpec =
        serde_json::from_value(good()["spec"].clone()).unwrap();
    spec.aliases = vec!["a".into(), "a".into(), "articles".into()];
    spec.payload_indexes.push(spec.payload_indexes[0].clone());
    spec.quantization_config
        .as_mut()
        .unwrap()
        .scalar
        .as_mut()
        .unwrap()
        .quantile = Some(0.1);
    spec.aliases = vec!["a".into(), "a".into(), "articles".into()];
    let err = api_types::validation::validate_collection(&spec, "articles").unwrap_err();
    let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.quantizationConfig.scalar.quantile",
            "spec.payloadIndexes[2].field",
            "spec.aliases[1]",
            "spec.aliases[2]"
        ]
    );
    assert!(
        err.to_string()
            .contains("spec.aliases[2]: an alias cannot have the collection's own name")
    );
}

#[test]
fn optional_enum_fields_keep_their_own_description() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    let desc = |v: &Value| v["description"].as_str().unwrap_or_default().to_string();
    assert!(
        desc(&spec["shardingMethod"]).contains("fixed at creation"),
        "{}",
        desc(&spec["shardingMethod"])
    );
    assert!(desc(&spec["vectors"]["properties"]["datatype"]).contains("fixed at creation"));
    let sparse = &spec["sparseVectors"]["additionalProperties"]["properties"]["modifier"];
    assert!(desc(sparse).contains("Changeable"), "{}", desc(sparse));
    assert_eq!(spec["shardingMethod"]["enum"], json!(["Auto", "Custom"]));
}

#[test]
fn memory_placements_pass_the_schema_cel_and_validation() {
    let v = with(
        with(
            with(
                without(good(), "/spec/vectors/onDisk"),
                "/spec/vectors/memory",
                json!("Cold"),
            ),
            "/spec/payload",
            json!({"memory": "Cached"}),
        ),
        "/spec/hnswConfig",
        json!({"memory": "Pinned"}),
    );
    let v = with(
        v,
        "/spec/sparseVectors",
        json!({"text": {"index": {"memory": "Cached"}}}),
    );
    assert_eq!(schema_errors(&v), Vec::<String>::new());
    assert_eq!(cel_errors(&v, None), Vec::<String>::new());
    let spec: api_types::QdrantCollectionSpec = serde_json::from_value(v["spec"].clone()).unwrap();
    api_types::validation::validate_collection(&spec, "articles").unwrap();
}

#[test]
fn memory_refusals_name_the_field() {
    // (pointer, value, CEL message part, validation field)
    let cases = [
        (
            "/spec/vectors/memory",
            json!("Pinned"),
            "not supported for dense vector storage",
            "spec.vectors.memory",
        ),
        // good() has vectors.onDisk: memory beside it.
        (
            "/spec/vectors/memory",
            json!("Cold"),
            "set memory or the deprecated onDisk, not both",
            "spec.vectors.memory",
        ),
        (
            "/spec/quantizationConfig/scalar/memory",
            json!("Pinned"),
            "set memory or the deprecated alwaysRam, not both",
            "spec.quantizationConfig.scalar.memory",
        ),
        (
            "/spec/payload",
            json!({"memory": "Pinned"}),
            "not supported for payload storage",
            "spec.payload.memory",
        ),
        (
            "/spec/hnswConfig",
            json!({"memory": "Cold", "onDisk": true}),
            "set memory or the deprecated onDisk, not both",
            "spec.hnswConfig.memory",
        ),
        (
            "/spec/sparseVectors",
            json!({"t": {"index": {"memory": "Cold", "onDisk": true}}}),
            "set memory or the deprecated onDisk, not both",
            "spec.sparseVectors.t.index.memory",
        ),
    ];
    for (pointer, value, cel, field) in cases {
        let v = with(good(), pointer, value.clone());
        let e = cel_errors(&v, None);
        assert!(
            e.iter().any(|m| m.contains(cel)),
            "{pointer}={value}: {e:?}"
        );
        let spec: api_types::QdrantCollectionSpec =
            serde_json::from_value(v["spec"].clone()).unwrap();
        let err = api_types::validation::validate_collection(&spec, "articles")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{field}: ")),
            "{pointer}={value}: {err}"
        );
    }
    let both = with(
        with(good(), "/spec/payload", json!({"memory": "Cold"})),
        "/spec/onDiskPayload",
        json!(true),
    );
    assert!(
        cel_errors(&both, None)
            .iter()
            .any(|m| m.contains("set payload.memory or the deprecated onDiskPayload, not both"))
    );
    let bad_index = with(
        good(),
        "/spec/payloadIndexes",
        json!([{"field": "a", "schema": "Keyword", "params": {"memory": "hot"}}]),
    );
    let spec: api_types::QdrantCollectionSpec =
        serde_json::from_value(bad_index["spec"].clone()).unwrap();
    let err = api_types::validation::validate_collection(&spec, "articles")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.payloadIndexes[0].params.memory: must be cold, cached or pinned"),
        "{err}"
    );
    let bad_value = with(good(), "/spec/vectors/memory", json!("Hot"));
    assert!(!schema_errors(&bad_value).is_empty());
}
