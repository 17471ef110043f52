//! QdrantMigration CRD checks: structural schema, descriptions, names and columns, the
//! example in `examples/`, and the verdicts of the schema, the CEL rules and the Rust
//! validation on good and bad objects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::{QdrantMigration, QdrantMigrationSpec, validation::validate_migration};
use common::{with, without};
use kube::CustomResourceExt;
use serde_json::{Value, json};

mod common;

fn schema() -> Value {
    let crd = api_types::crd::bound_integers(QdrantMigration::crd());
    serde_json::to_value(&crd.spec.versions[0].schema).unwrap()["openAPIV3Schema"].clone()
}

fn errors(obj: &Value, old: Option<&Value>) -> Vec<String> {
    let s = schema();
    let mut e = common::schema_errors(&s, obj);
    e.extend(common::cel_errors(&s, obj, old));
    e
}

fn assert_refused(obj: &Value, field: &str, needle: &str) {
    let e = errors(obj, None);
    assert!(
        e.iter().any(|m| m.contains(field) && m.contains(needle)),
        "expected an error naming {field:?} with {needle:?}, got {e:?}"
    );
}

fn migration() -> Value {
    json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantMigration",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {
            "source": {"connection": {"url": "http://qdrant.qdrant.svc:6333"}},
            "target": {"cluster": {"name": "demo"}},
            "collections": [{"name": "articles"}]
        }
    })
}

fn spec_of(obj: &Value) -> QdrantMigrationSpec {
    serde_json::from_value(obj["spec"].clone()).unwrap()
}

/// The Rust validation's messages, `field: message` each.
fn validation(obj: &Value) -> Vec<String> {
    match validate_migration(&spec_of(obj)) {
        Ok(()) => vec![],
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn schema_is_structural_and_described() {
    let s = schema();
    let v = api_types::crd::structural_violations(&s, &[]);
    assert!(v.is_empty(), "{v:?}");
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
    }
    let mut missing = vec![];
    walk(&s["properties"]["spec"], "spec", &mut missing);
    walk(&s["properties"]["status"], "status", &mut missing);
    assert!(missing.is_empty(), "{missing:?}");
}

#[test]
fn names_columns_and_subresources() {
    let crd = QdrantMigration::crd();
    assert_eq!(crd.spec.group, "qdrant.operator.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "QdrantMigration");
    assert_eq!(crd.spec.names.short_names, Some(vec!["qmig".to_string()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["qdrant".to_string()]));
    let version = &crd.spec.versions[0];
    let cols: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Phase", ".status.phase"),
            ("Progress", ".status.progress"),
            ("Age", ".metadata.creationTimestamp")
        ]
    );
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let conditions = &schema()["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], json!("map"));
}

#[test]
fn good_object_passes_and_defaults_apply() {
    let obj = migration();
    assert_eq!(errors(&obj, None), Vec::<String>::new());
    assert_eq!(validation(&obj), Vec::<String>::new());
    let spec = spec_of(&obj);
    assert_eq!(spec.batch_size, 256);
    assert_eq!(spec.method, api_types::migration::MigrationMethod::Auto);
    assert!(!spec.catch_up);
}

#[test]
fn schema_and_cel_refuse_bad_input_naming_the_field() {
    // Both or neither of cluster and connection, on either side.
    let both = with(
        migration(),
        "/spec/source/cluster",
        json!({"name": "other"}),
    );
    assert_refused(
        &both,
        "spec.source",
        "set exactly one of cluster or connection",
    );
    let neither = without(migration(), "/spec/target/cluster");
    assert_refused(
        &neither,
        "spec.target",
        "set exactly one of cluster or connection",
    );
    // Ranges and enums.
    assert_refused(
        &with(migration(), "/spec/batchSize", json!(0)),
        "batchSize",
        "minimum",
    );
    assert_refused(
        &with(migration(), "/spec/batchSize", json!(10_001)),
        "batchSize",
        "maximum",
    );
    assert_refused(
        &with(migration(), "/spec/verify", json!({"sampleSize": 1001})),
        "sampleSize",
        "maximum",
    );
    assert_refused(
        &with(migration(), "/spec/method", json!("Rsync")),
        "method",
        "Rsync",
    );
    // An alias switch needs exactly one collection.
    let two = with(
        with(
            migration(),
            "/spec/collections",
            json!([{"name": "a"}, {"name": "b"}]),
        ),
        "/spec/aliasSwitch",
        json!({"alias": "live"}),
    );
    assert_refused(&two, "aliasSwitch", "exactly one entry in collections");
    let none = with(
        without(migration(), "/spec/collections"),
        "/spec/aliasSwitch",
        json!({"alias": "live"}),
    );
    assert_refused(&none, "aliasSwitch", "exactly one entry in collections");
    let one = with(migration(), "/spec/aliasSwitch", json!({"alias": "live"}));
    assert_eq!(errors(&one, None), Vec::<String>::new());
    // Immutable.
    let changed = with(migration(), "/spec/batchSize", json!(512));
    let e = errors(&changed, Some(&migration()));
    assert!(e.iter().any(|m| m.contains("spec is immutable")), "{e:?}");
    assert_eq!(
        errors(&migration(), Some(&migration())),
        Vec::<String>::new()
    );
}

#[test]
fn validation_names_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (
            with(migration(), "/spec/source/cluster", json!({"name": "x"})),
            "spec.source: set exactly one of cluster or connection",
        ),
        (
            with(
                migration(),
                "/spec/target",
                json!({"connection": {"url": "qdrant:6333"}}),
            ),
            "spec.target.connection.url: must start with http:// or https://",
        ),
        (
            with(
                migration(),
                "/spec/collections",
                json!([{"name": "a"}, {"name": "a", "targetName": "b"}]),
            ),
            "spec.collections[1].name: \"a\" is listed twice",
        ),
        (
            with(
                migration(),
                "/spec/collections",
                json!([{"name": "a", "targetName": "c"}, {"name": "b", "targetName": "c"}]),
            ),
            "spec.collections[1].targetName: copies into \"c\", as spec.collections[0] does",
        ),
        (
            with(migration(), "/spec/collections", json!([{"name": "a/b"}])),
            "spec.collections[0].name: collection name \"a/b\" must not contain '/'",
        ),
        (
            with(migration(), "/spec/batchSize", json!(0)),
            "spec.batchSize: must be between 1 and 10000 (points), got 0",
        ),
        (
            with(migration(), "/spec/verify", json!({"sampleSize": 5000})),
            "spec.verify.sampleSize: must be between 0 and 1000, got 5000",
        ),
        (
            with(
                with(migration(), "/spec/collections", json!([])),
                "/spec/aliasSwitch",
                json!({"alias": "live"}),
            ),
            "spec.aliasSwitch: needs exactly one entry in spec.collections",
        ),
        (
            with(
                migration(),
                "/spec/aliasSwitch",
                json!({"alias": "articles"}),
            ),
            "spec.aliasSwitch.alias: an alias cannot have the name of the collection",
        ),
        (
            with(
                migration(),
                "/spec/target",
                json!({"connection": {"url": "http://qdrant.qdrant.svc:6333/"}}),
            ),
            "spec.target: is the same Qdrant as spec.source",
        ),
    ];
    for (obj, expected) in cases {
        let got = validation(&obj);
        assert!(
            got.iter().any(|m| m.starts_with(expected)),
            "expected {expected:?}, got {got:?}"
        );
    }
    // The same Qdrant under other names is a legitimate copy.
    let renamed = with(
        with(
            migration(),
            "/spec/target",
            json!({"connection": {"url": "http://qdrant.qdrant.svc:6333"}}),
        ),
        "/spec/collections",
        json!([{"name": "articles", "targetName": "articles-v2"}]),
    );
    assert_eq!(validation(&renamed), Vec::<String>::new());
}

#[test]
fn the_example_passes_schema_cel_and_validation() {
    let path = format!(
        "{}/../../examples/qdrantmigration.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# "), "{path} starts with a comment");
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(doc["kind"], json!("QdrantMigration"));
    assert_eq!(errors(&doc, None), Vec::<String>::new());
    assert_eq!(validation(&doc), Vec::<String>::new());
}
