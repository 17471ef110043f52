//! QdrantBackup, QdrantBackupSchedule and QdrantRestore CRD checks: structural schemas,
//! descriptions, names and columns, the examples in `examples/`, and the verdicts of the schema
//! and CEL rules (and of the Rust validation) on good and bad objects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::{
    QdrantBackup, QdrantBackupSchedule, QdrantBackupScheduleSpec, QdrantBackupSpec, QdrantRestore,
    QdrantRestoreSpec,
    validation::{validate_backup_spec, validate_restore, validate_schedule},
};
use common::{with, without};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

mod common;

/// The schema of `crd` as `crds/` ships it (integers bounded, `api_types::crd::bound_integers`).
fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let crd = api_types::crd::bound_integers(crd.clone());
    serde_json::to_value(&crd.spec.versions[0].schema).unwrap()["openAPIV3Schema"].clone()
}

fn backup_schema() -> Value {
    schema_of(&QdrantBackup::crd())
}
fn schedule_schema() -> Value {
    schema_of(&QdrantBackupSchedule::crd())
}
fn restore_schema() -> Value {
    schema_of(&QdrantRestore::crd())
}

fn all() -> [(&'static str, CustomResourceDefinition); 3] {
    [
        ("QdrantBackup", QdrantBackup::crd()),
        ("QdrantBackupSchedule", QdrantBackupSchedule::crd()),
        ("QdrantRestore", QdrantRestore::crd()),
    ]
}

/// Schema and CEL verdicts together (creation: no old object).
fn errors(schema: &Value, obj: &Value) -> Vec<String> {
    let mut e = common::schema_errors(schema, obj);
    e.extend(common::cel_errors(schema, obj, None));
    e
}

fn assert_refused(schema: &Value, obj: &Value, field: &str, needle: &str) {
    let e = errors(schema, obj);
    assert!(
        e.iter().any(|m| m.contains(field) && m.contains(needle)),
        "expected an error naming {field:?} with {needle:?}, got {e:?}"
    );
}

fn backup() -> Value {
    json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantBackup",
        "metadata": {"name": "demo-manual", "namespace": "default"},
        "spec": {
            "cluster": {"name": "demo"},
            "collections": ["articles"],
            "storage": {"s3": {
                "bucket": "qdrant-backups",
                "prefix": "demo",
                "credentialsSecretRef": {"name": "s3-credentials"}
            }}
        }
    })
}

fn schedule() -> Value {
    json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantBackupSchedule",
        "metadata": {"name": "demo-nightly", "namespace": "default"},
        "spec": {
            "schedule": "0 2 * * *",
            "timeZone": "Europe/Berlin",
            "backupTemplate": backup()["spec"].clone(),
            "retention": {"keepLast": 7}
        }
    })
}

fn restore() -> Value {
    json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantRestore",
        "metadata": {"name": "demo-restore", "namespace": "default"},
        "spec": {
            "source": {"backupRef": {"name": "demo-manual"}},
            "cluster": {"name": "demo-restored"},
            "collections": [{"name": "articles", "newName": "articles-2024"}]
        }
    })
}

fn example(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!(
        "{}/../../examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(
        text.starts_with("# "),
        "examples/{name} starts with a comment explaining it"
    );
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn schemas_are_structural_without_free_form_fields() {
    for (kind, crd) in all() {
        let s = schema_of(&crd);
        let v = api_types::crd::structural_violations(&s, &[]);
        assert!(v.is_empty(), "{kind}: {v:?}");
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            !text.contains("x-kubernetes-preserve-unknown-fields"),
            "{kind}"
        );
    }
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
    }
    for (kind, crd) in all() {
        let s = schema_of(&crd);
        let mut missing = vec![];
        walk(&s["properties"]["spec"], "spec", &mut missing);
        walk(&s["properties"]["status"], "status", &mut missing);
        assert!(missing.is_empty(), "{kind}: {missing:?}");
    }
}

#[test]
fn names_columns_and_subresources() {
    let expected = [
        ("qbak", vec!["Phase", "Cluster", "Size", "Age"]),
        ("qbs", vec!["Schedule", "Suspend", "Last Backup", "Age"]),
        ("qrs", vec!["Phase", "Cluster", "Source", "Size", "Age"]),
    ];
    for ((kind, crd), (short, columns)) in all().into_iter().zip(expected) {
        assert_eq!(crd.spec.group, "qdrant.operator.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["qdrant".to_string()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        let cols: Vec<_> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, columns, "{kind}");
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let conditions = &schema_of(&crd)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], json!("map"), "{kind}");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
    let source = QdrantRestore::crd().spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap()
        .into_iter()
        .find(|c| c.name == "Source")
        .unwrap();
    assert_eq!(source.json_path, ".spec.source.backupRef.name");
}

#[test]
fn list_types_and_defaults() {
    let b = backup_schema();
    let spec = &b["properties"]["spec"]["properties"];
    assert_eq!(spec["collections"]["x-kubernetes-list-type"], json!("set"));
    assert_eq!(spec["deletionPolicy"]["default"], json!("Retain"));
    assert_eq!(spec["deletionPolicy"]["enum"], json!(["Retain", "Delete"]));
    let s3 = &spec["storage"]["properties"]["s3"]["properties"];
    assert_eq!(s3["region"]["default"], json!("us-east-1"));
    assert_eq!(s3["forcePathStyle"]["default"], json!(false));
    let creds = &s3["credentialsSecretRef"]["properties"];
    assert_eq!(
        creds["accessKeyIdKey"]["default"],
        json!("AWS_ACCESS_KEY_ID")
    );
    assert_eq!(
        creds["secretAccessKeyKey"]["default"],
        json!("AWS_SECRET_ACCESS_KEY")
    );
    assert!(
        s3["credentialsSecretRef"]["description"]
            .as_str()
            .unwrap()
            .contains("ambient AWS credentials")
    );
    let upload = &spec["upload"]["properties"];
    assert_eq!(upload["partSizeMiB"]["default"], json!(8));
    assert_eq!(upload["concurrency"]["default"], json!(3));
    assert!(
        upload["partSizeMiB"]["description"]
            .as_str()
            .unwrap()
            .contains("partSizeMiB x (concurrency + 1)")
    );
    let phase = &b["properties"]["status"]["properties"]["phase"];
    assert_eq!(
        phase["enum"],
        json!(["Pending", "Running", "Succeeded", "Failed"])
    );

    let s = schedule_schema();
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(spec["suspend"]["default"], json!(false));
    assert_eq!(spec["successfulJobsHistoryLimit"]["default"], json!(3));
    assert_eq!(spec["failedJobsHistoryLimit"]["default"], json!(1));

    let r = restore_schema();
    let spec = &r["properties"]["spec"]["properties"];
    assert_eq!(spec["collections"]["x-kubernetes-list-type"], json!("map"));
    assert_eq!(
        spec["collections"]["x-kubernetes-list-map-keys"],
        json!(["name"])
    );
    assert_eq!(spec["recoveryMethod"]["default"], json!("Auto"));
    assert_eq!(
        spec["recoveryMethod"]["enum"],
        json!(["Auto", "PresignedUrl", "Upload"])
    );
    assert_eq!(spec["presignedUrlExpirySeconds"]["default"], json!(3600));
    // An optional enum keeps its field's own description (not the type's).
    let method =
        &r["properties"]["status"]["properties"]["collections"]["items"]["properties"]["method"];
    assert!(
        method["description"]
            .as_str()
            .unwrap()
            .starts_with("How the snapshots reached Qdrant"),
        "{method}"
    );
    assert_eq!(method["enum"], json!(["PresignedUrl", "Upload"]));
}

#[test]
fn good_objects_pass() {
    for (schema, obj) in [
        (backup_schema(), backup()),
        (schedule_schema(), schedule()),
        (restore_schema(), restore()),
    ] {
        assert_eq!(errors(&schema, &obj), Vec::<String>::new(), "{obj}");
    }
    let b: QdrantBackupSpec = serde_json::from_value(backup()["spec"].clone()).unwrap();
    validate_backup_spec(&b).unwrap();
    let s: QdrantBackupScheduleSpec = serde_json::from_value(schedule()["spec"].clone()).unwrap();
    validate_schedule(&s).unwrap();
    let r: QdrantRestoreSpec = serde_json::from_value(restore()["spec"].clone()).unwrap();
    validate_restore(&r).unwrap();
}

#[test]
fn examples_pass_schema_cel_and_validation() {
    let cluster_schema = schema_of(&api_types::QdrantCluster::crd());
    let mut kinds = vec![];
    for file in [
        "qdrantbackup.yaml",
        "qdrantbackupschedule-nightly.yaml",
        "qdrantrestore.yaml",
        "qdrantbackup-volumesnapshot.yaml",
        "qdrantrestore-volumesnapshot.yaml",
    ] {
        for doc in example(file) {
            let kind = doc["kind"].as_str().unwrap().to_string();
            let schema = match kind.as_str() {
                "QdrantBackup" => backup_schema(),
                "QdrantBackupSchedule" => schedule_schema(),
                "QdrantRestore" => restore_schema(),
                "QdrantCluster" => cluster_schema.clone(),
                other => panic!("{file}: unexpected kind {other}"),
            };
            assert_eq!(errors(&schema, &doc), Vec::<String>::new(), "{file}");
            let spec = doc["spec"].clone();
            match kind.as_str() {
                "QdrantBackup" => {
                    validate_backup_spec(&serde_json::from_value(spec).unwrap()).unwrap()
                }
                "QdrantBackupSchedule" => {
                    validate_schedule(&serde_json::from_value(spec).unwrap()).unwrap()
                }
                "QdrantRestore" => {
                    validate_restore(&serde_json::from_value(spec).unwrap()).unwrap()
                }
                _ => {
                    api_types::validation::validate_cluster(&serde_json::from_value(spec).unwrap())
                        .unwrap()
                }
            }
            kinds.push(format!(
                "{kind}/{}",
                doc["metadata"]["name"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(
        kinds,
        [
            "QdrantBackup/demo-manual",
            "QdrantBackupSchedule/demo-nightly",
            "QdrantCluster/demo-restored",
            "QdrantRestore/demo-restore",
            "QdrantBackup/demo-volumes",
            "QdrantCluster/demo",
            "QdrantRestore/demo-from-volumes"
        ]
    );
    // The VolumeSnapshot restore brings back the backed-up cluster under its own name.
    let volumes = &example("qdrantbackup-volumesnapshot.yaml")[0];
    let restore = &example("qdrantrestore-volumesnapshot.yaml");
    assert_eq!(volumes["spec"]["method"], json!("VolumeSnapshot"));
    assert_eq!(
        restore[0]["metadata"]["name"],
        volumes["spec"]["cluster"]["name"]
    );
    assert_eq!(
        restore[0]["spec"]["replicas"],
        example("qdrantcluster-3-node.yaml")[0]["spec"]["replicas"]
    );
    assert_eq!(
        restore[0]["metadata"]["annotations"]["qdrant.operator.dev/paused"],
        json!("true")
    );
    assert_eq!(
        restore[1]["spec"]["source"]["backupRef"]["name"],
        volumes["metadata"]["name"]
    );
    // The restore reads the backup of the backup example, which backs up the 3-node example.
    let backup = &example("qdrantbackup.yaml")[0];
    let cluster = &example("qdrantcluster-3-node.yaml")[0];
    assert_eq!(
        backup["spec"]["cluster"]["name"],
        cluster["metadata"]["name"]
    );
    let restore = &example("qdrantrestore.yaml")[1];
    assert_eq!(
        restore["spec"]["source"]["backupRef"]["name"],
        backup["metadata"]["name"]
    );
    let schedule = &example("qdrantbackupschedule-nightly.yaml")[0];
    assert_eq!(schedule["spec"]["retention"]["keepLast"], json!(7));
    assert_eq!(schedule["spec"]["timeZone"], json!("Europe/Berlin"));
}

#[test]
fn exactly_one_of_cluster_or_connection() {
    let msg = "set exactly one of cluster or connection";
    let conn = json!({"url": "http://qdrant.qdrant.svc:6333"});
    let both = with(backup(), "/spec/connection", conn.clone());
    assert_refused(&backup_schema(), &both, "spec", msg);
    let neither = without(backup(), "/spec/cluster");
    assert_refused(&backup_schema(), &neither, "spec", msg);
    let only_conn = with(
        without(backup(), "/spec/cluster"),
        "/spec/connection",
        conn.clone(),
    );
    assert_eq!(errors(&backup_schema(), &only_conn), Vec::<String>::new());

    // The same rule holds inside a schedule's template...
    let both = with(schedule(), "/spec/backupTemplate/connection", conn.clone());
    assert_refused(&schedule_schema(), &both, "spec.backupTemplate", msg);
    let neither = without(schedule(), "/spec/backupTemplate/cluster");
    assert_refused(&schedule_schema(), &neither, "spec.backupTemplate", msg);

    // ...and for a restore's target.
    let both = with(restore(), "/spec/connection", conn);
    assert_refused(&restore_schema(), &both, "spec", msg);
    let neither = without(restore(), "/spec/cluster");
    assert_refused(&restore_schema(), &neither, "spec", msg);

    // The Rust validation says the same.
    let spec: QdrantBackupSpec =
        serde_json::from_value(without(backup(), "/spec/cluster")["spec"].clone()).unwrap();
    let e = validate_backup_spec(&spec).unwrap_err();
    assert_eq!(e.to_string(), format!("spec: {msg}"));
}

#[test]
fn volume_snapshot_method_needs_a_class_and_a_cluster_not_storage() {
    let b = backup_schema();
    let method = &b["properties"]["spec"]["properties"]["method"];
    assert_eq!(method["default"], json!("Snapshot"));
    assert_eq!(method["enum"], json!(["Snapshot", "VolumeSnapshot"]));
    let vs = with(
        with(
            without(backup(), "/spec/storage"),
            "/spec/method",
            json!("VolumeSnapshot"),
        ),
        "/spec/volumeSnapshot",
        json!({"className": "csi-snapclass"}),
    );
    assert_eq!(errors(&b, &vs), Vec::<String>::new());
    let spec: QdrantBackupSpec = serde_json::from_value(vs["spec"].clone()).unwrap();
    assert_eq!(validate_backup_spec(&spec), Ok(()));
    // No class: refused by CEL, naming volumeSnapshot.
    let no_class = without(vs.clone(), "/spec/volumeSnapshot");
    assert_refused(
        &b,
        &no_class,
        "spec",
        "volumeSnapshot (with className) is required",
    );
    // A connection cannot be snapshotted.
    let conn = with(
        without(vs.clone(), "/spec/cluster"),
        "/spec/connection",
        json!({"url": "http://qdrant.qdrant.svc:6333"}),
    );
    assert_refused(&b, &conn, "spec", "method VolumeSnapshot needs cluster");
    // The default method still needs storage; an existing object (no method) stays valid.
    let no_storage = without(backup(), "/spec/storage");
    assert_refused(
        &b,
        &no_storage,
        "spec",
        "storage is required when method is Snapshot",
    );
    assert_eq!(errors(&b, &backup()), Vec::<String>::new());
    // Inside a schedule's template too.
    let s = with(schedule(), "/spec/backupTemplate", vs["spec"].clone());
    assert_eq!(errors(&schedule_schema(), &s), Vec::<String>::new());
    let s = with(schedule(), "/spec/backupTemplate", no_class["spec"].clone());
    assert_refused(
        &schedule_schema(),
        &s,
        "spec.backupTemplate",
        "volumeSnapshot (with className) is required",
    );
}

#[test]
fn bad_bucket_names_are_refused_naming_the_field() {
    // Refused by the schema (pattern and length): the error names /spec/storage/s3/bucket.
    for bucket in [
        "ab",
        "Uppercase",
        "under_score",
        "-starts-with-hyphen",
        "ends-with-dot.",
        "has space",
        &"a".repeat(64),
    ] {
        let obj = with(backup(), "/spec/storage/s3/bucket", json!(bucket));
        assert_refused(&backup_schema(), &obj, "/spec/storage/s3/bucket", "");
        let spec: QdrantBackupSpec = serde_json::from_value(obj["spec"].clone()).unwrap();
        let e = validate_backup_spec(&spec).unwrap_err();
        assert_eq!(e.0[0].field, "spec.storage.s3.bucket", "{bucket}");
    }
    // Refused by CEL rules, with a message saying which rule.
    for (bucket, why) in [
        ("two..dots", "two adjacent periods"),
        ("192.168.5.4", "IP address"),
        ("xn--punycode", "must not start with xn--"),
        ("sthree-bucket", "must not start with"),
        ("my-bucket-s3alias", "must not end with -s3alias"),
        ("my-bucket--ol-s3", "must not end with"),
    ] {
        let obj = with(backup(), "/spec/storage/s3/bucket", json!(bucket));
        assert_eq!(
            common::schema_errors(&backup_schema(), &obj),
            Vec::<String>::new(),
            "{bucket} matches the pattern; CEL refuses it"
        );
        assert_refused(&backup_schema(), &obj, "spec.storage.s3.bucket", why);
        let spec: QdrantBackupSpec = serde_json::from_value(obj["spec"].clone()).unwrap();
        let e = validate_backup_spec(&spec).unwrap_err().to_string();
        assert!(e.starts_with("spec.storage.s3.bucket: "), "{e}");
    }
    // The same rules guard a restore's S3 source.
    let s3 = json!({"storage": {"bucket": "a..b"}, "manifestKey": "demo/default/x/manifest.json"});
    let obj = with(restore(), "/spec/source", json!({"s3": s3}));
    assert_refused(
        &restore_schema(),
        &obj,
        "spec.source.s3.storage.bucket",
        "two adjacent periods",
    );
}

#[test]
fn bad_prefixes_endpoints_and_upload_options() {
    let b = backup_schema();
    let obj = with(backup(), "/spec/storage/s3/prefix", json!("/abs"));
    assert_refused(&b, &obj, "spec.storage.s3.prefix", "must not start with /");
    let obj = with(backup(), "/spec/storage/s3/prefix", json!("a/../b"));
    assert_refused(&b, &obj, "spec.storage.s3.prefix", "..");
    let obj = with(backup(), "/spec/storage/s3/endpoint", json!("minio:9000"));
    assert_refused(&b, &obj, "/spec/storage/s3/endpoint", "");
    let obj = with(
        backup(),
        "/spec/upload",
        json!({"partSizeMiB": 4, "concurrency": 17}),
    );
    assert_refused(&b, &obj, "/spec/upload/partSizeMiB", "");
    assert_refused(&b, &obj, "/spec/upload/concurrency", "");
    let obj = with(backup(), "/spec/deletionPolicy", json!("Orphan"));
    assert_refused(&b, &obj, "/spec/deletionPolicy", "");
}

#[test]
fn backup_spec_is_immutable() {
    let old = backup();
    let changed = with(
        backup(),
        "/spec/collections",
        json!(["articles", "products"]),
    );
    let e = common::cel_errors(&backup_schema(), &changed, Some(&old));
    assert!(
        e.iter()
            .any(|m| m.contains("spec is immutable") && m.contains("record of one backup run")),
        "{e:?}"
    );
    let moved = with(backup(), "/spec/storage/s3/bucket", json!("other-bucket"));
    assert!(
        common::cel_errors(&backup_schema(), &moved, Some(&old))
            .iter()
            .any(|m| m.contains("spec is immutable"))
    );
    // Status and metadata may change.
    let mut progressed = with(
        backup(),
        "/status",
        json!({"phase": "Running", "attempt": 1}),
    );
    progressed["metadata"]["labels"] = json!({"team": "search"});
    assert_eq!(
        common::cel_errors(&backup_schema(), &progressed, Some(&old)),
        Vec::<String>::new()
    );
    // The schedule's template is a spec too, but it may change (it applies to later backups).
    let old = schedule();
    let changed = with(
        schedule(),
        "/spec/backupTemplate/collections",
        json!(["products"]),
    );
    assert_eq!(
        common::cel_errors(&schedule_schema(), &changed, Some(&old)),
        Vec::<String>::new()
    );
}

#[test]
fn restore_spec_is_immutable() {
    let old = restore();
    let changed = with(restore(), "/spec/recoveryMethod", json!("Upload"));
    let e = common::cel_errors(&restore_schema(), &changed, Some(&old));
    assert!(e.iter().any(|m| m.contains("spec is immutable")), "{e:?}");
    let progressed = with(restore(), "/status", json!({"phase": "Running"}));
    assert_eq!(
        common::cel_errors(&restore_schema(), &progressed, Some(&old)),
        Vec::<String>::new()
    );
}

#[test]
fn exactly_one_restore_source() {
    let r = restore_schema();
    let msg = "set exactly one of source.backupRef or source.s3";
    let s3 = json!({"storage": {"bucket": "qdrant-backups"}, "manifestKey": "demo/default/demo-manual/manifest.json"});
    let both = with(restore(), "/spec/source/s3", s3.clone());
    assert_refused(&r, &both, "spec.source", msg);
    let neither = with(restore(), "/spec/source", json!({}));
    assert_refused(&r, &neither, "spec.source", msg);
    let only_s3 = with(restore(), "/spec/source", json!({"s3": s3}));
    assert_eq!(errors(&r, &only_s3), Vec::<String>::new());
    let spec: QdrantRestoreSpec = serde_json::from_value(only_s3["spec"].clone()).unwrap();
    validate_restore(&spec).unwrap();

    let abs_key = with(
        restore(),
        "/spec/source",
        json!({"s3": {"storage": {"bucket": "qdrant-backups"}, "manifestKey": "/manifest.json"}}),
    );
    assert_refused(
        &r,
        &abs_key,
        "spec.source.s3.manifestKey",
        "must not start with /",
    );
    let spec: QdrantRestoreSpec = serde_json::from_value(neither["spec"].clone()).unwrap();
    let e = validate_restore(&spec).unwrap_err().to_string();
    assert!(
        e.contains("spec.source: set exactly one of backupRef or s3"),
        "{e}"
    );
}

#[test]
fn restore_collections_and_expiry() {
    let r = restore_schema();
    let obj = with(restore(), "/spec/presignedUrlExpirySeconds", json!(30));
    assert_refused(&r, &obj, "/spec/presignedUrlExpirySeconds", "");
    let obj = with(restore(), "/spec/presignedUrlExpirySeconds", json!(604_801));
    assert_refused(&r, &obj, "/spec/presignedUrlExpirySeconds", "");
    let obj = with(restore(), "/spec/recoveryMethod", json!("Carrier pigeon"));
    assert_refused(&r, &obj, "/spec/recoveryMethod", "");
    // Two collections renamed to the same target: the schema cannot see it; validation can.
    let obj = with(
        restore(),
        "/spec/collections",
        json!([{"name": "a", "newName": "c"}, {"name": "b", "newName": "c"}]),
    );
    assert_eq!(errors(&r, &obj), Vec::<String>::new());
    let spec: QdrantRestoreSpec = serde_json::from_value(obj["spec"].clone()).unwrap();
    let e = validate_restore(&spec).unwrap_err().to_string();
    assert!(
        e.starts_with("spec.collections[1].newName: restores into \"c\""),
        "{e}"
    );
}

#[test]
fn schedule_rules() {
    let s = schedule_schema();
    let obj = with(schedule(), "/spec/retention", json!({"keepLast": 0}));
    assert_refused(&s, &obj, "/spec/retention/keepLast", "");
    let spec: QdrantBackupScheduleSpec = serde_json::from_value(obj["spec"].clone()).unwrap();
    let e = validate_schedule(&spec).unwrap_err().to_string();
    assert_eq!(e, "spec.retention.keepLast: must be at least 1, got 0");

    let obj = with(schedule(), "/spec/retention", json!({}));
    assert_refused(
        &s,
        &obj,
        "spec.retention",
        "retention must set keepLast, maxAge or both",
    );
    let obj = with(schedule(), "/spec/retention", json!({"maxAge": "1y"}));
    assert_refused(&s, &obj, "/spec/retention/maxAge", "");
    let obj = with(schedule(), "/spec/retention", json!({"maxAge": "30d"}));
    assert_eq!(errors(&s, &obj), Vec::<String>::new());

    let obj = with(schedule(), "/spec/schedule", json!("TZ=UTC 0 2 * * *"));
    assert_refused(&s, &obj, "spec.schedule", "set spec.timeZone instead");
    let obj = with(schedule(), "/spec/schedule", json!("0 0 2 * * *"));
    assert_refused(
        &s,
        &obj,
        "spec.schedule",
        "exactly 5 space-separated fields",
    );
    for ok in ["@daily", "@midnight", "*/30 * * * 1-5", "0  2 * * * "] {
        let obj = with(schedule(), "/spec/schedule", json!(ok));
        assert_eq!(errors(&s, &obj), Vec::<String>::new(), "{ok}");
    }
    // What CEL cannot see (ranges, names), the Rust validation refuses.
    let obj = with(schedule(), "/spec/schedule", json!("0 25 * * *"));
    assert_eq!(errors(&s, &obj), Vec::<String>::new());
    let spec: QdrantBackupScheduleSpec = serde_json::from_value(obj["spec"].clone()).unwrap();
    let e = validate_schedule(&spec).unwrap_err().to_string();
    assert!(e.starts_with("spec.schedule: "), "{e}");
    assert!(e.contains("out of range 0-23"), "{e}");

    let obj = with(schedule(), "/spec/timeZone", json!("Europe/Atlantis"));
    let spec: QdrantBackupScheduleSpec = serde_json::from_value(obj["spec"].clone()).unwrap();
    let e = validate_schedule(&spec).unwrap_err().to_string();
    assert!(e.starts_with("spec.timeZone: "), "{e}");

    let obj = with(schedule(), "/spec/startingDeadlineSeconds", json!(-5));
    assert_refused(&s, &obj, "/spec/startingDeadlineSeconds", "");
}
