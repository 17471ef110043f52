//! The Argo CD health check of `deploy/argocd/health.lua`, run in Lua 5.1 (Argo CD's dialect)
//! on statuses the controllers' own status functions compute: a refused spec and a failed run
//! are Degraded, work under way is Progressing, a paused object Suspended, a done one Healthy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::{QdrantBackup, QdrantCluster, QdrantCollection, backup::BackupPhase};
use cluster_controller::status::{Inputs, compute};
use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::{Value, json};

const SCRIPT: &str = include_str!("../../../deploy/argocd/health.lua");

/// What Argo CD would show for `obj`: (status, message) returned by the script.
fn health(obj: &Value) -> (String, String) {
    let lua = Lua::new();
    lua.globals()
        .set("obj", lua.to_value(obj).unwrap())
        .unwrap();
    let hs: Table = lua.load(SCRIPT).eval().unwrap();
    (hs.get("status").unwrap(), hs.get("message").unwrap())
}

fn cluster() -> QdrantCluster {
    serde_json::from_value(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "ns", "generation": 2}, "spec": {"replicas": 3}}),
    )
    .unwrap()
}

fn sts(ready: i32, updated: i32) -> k8s_openapi::api::apps::v1::StatefulSet {
    serde_json::from_value(json!({"metadata": {"name": "demo", "generation": 1},
        "spec": {"replicas": 3, "selector": {}, "template": {}, "serviceName": "demo-headless"},
        "status": {"replicas": 3, "readyReplicas": ready, "updatedReplicas": updated,
            "updateRevision": "r2", "observedGeneration": 1}}))
    .unwrap()
}

/// `obj` with `status` as the controllers would write it.
fn with_status<S: serde::Serialize>(obj: &impl serde::Serialize, status: &S) -> Value {
    let mut v = serde_json::to_value(obj).unwrap();
    v["status"] = serde_json::to_value(status).unwrap();
    v
}

#[test]
fn argo_cd_reads_every_kind_from_the_kstatus_conditions() {
    let qc = cluster();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a cluster with no status yet",
            serde_json::to_value(&qc).unwrap(),
            "Progressing",
        ),
        (
            "a cluster whose spec is refused",
            with_status(
                &qc,
                &compute(
                    &qc,
                    &Inputs {
                        invalid: Some("spec.replicas: must be > 0".into()),
                        ..Inputs::default()
                    },
                ),
            ),
            "Degraded",
        ),
        (
            "a creating cluster",
            with_status(
                &qc,
                &compute(
                    &qc,
                    &Inputs {
                        statefulset: Some(sts(1, 3)),
                        ..Inputs::default()
                    },
                ),
            ),
            "Progressing",
        ),
        (
            "a running cluster",
            with_status(
                &qc,
                &compute(
                    &qc,
                    &Inputs {
                        statefulset: Some(sts(3, 3)),
                        ..Inputs::default()
                    },
                ),
            ),
            "Healthy",
        ),
        (
            "a paused cluster",
            with_status(
                &qc,
                &compute(
                    &qc,
                    &Inputs {
                        paused: true,
                        ..Inputs::default()
                    },
                ),
            ),
            "Suspended",
        ),
    ];
    let backup: QdrantBackup = serde_json::from_value(json!({"apiVersion": "qdrant.operator.dev/v1alpha1",
        "kind": "QdrantBackup", "metadata": {"name": "b", "namespace": "ns", "generation": 1},
        "spec": {"cluster": {"name": "demo"}, "storage": {"s3": {"bucket": "b", "credentialsSecretRef": {"name": "s"}}}}}))
    .unwrap();
    let run = |phase, reason: &str| {
        with_status(
            &backup,
            &backup_controller::phase::with_phase(&backup, Default::default(), phase, reason, "m"),
        )
    };
    let collection: QdrantCollection = serde_json::from_value(json!({"apiVersion": "qdrant.operator.dev/v1alpha1",
        "kind": "QdrantCollection", "metadata": {"name": "docs", "namespace": "ns", "generation": 1},
        "spec": {"cluster": {"name": "demo"}, "vectors": {"size": 4, "distance": "Cosine"}}}))
    .unwrap();
    let waiting = collection_controller::status::Outcome::Waiting {
        reason: "ClusterNotReady".into(),
        message: "cluster demo is Creating".into(),
    };
    let owned = collection_controller::status::Outcome::OwnedByAnotherObject {
        name: "docs".into(),
        owner: "ns/other".into(),
    };
    let cases = cases.into_iter().chain([
        (
            "a running backup",
            run(BackupPhase::Running, "Running"),
            "Progressing",
        ),
        (
            "a failed backup",
            run(BackupPhase::Failed, "BucketNotFound"),
            "Degraded",
        ),
        (
            "a succeeded backup",
            run(BackupPhase::Succeeded, "Succeeded"),
            "Healthy",
        ),
        (
            "a collection waiting for its cluster",
            with_status(
                &collection,
                &collection_controller::status::compute(&collection, &waiting),
            ),
            "Progressing",
        ),
        (
            "a collection owned by another object",
            with_status(
                &collection,
                &collection_controller::status::compute(&collection, &owned),
            ),
            "Degraded",
        ),
    ]);
    let mut wrong = vec![];
    for (what, obj, want) in cases {
        let (got, message) = health(&obj);
        if got != want {
            wrong.push(format!("{what}: want {want}, got {got} ({message})"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let (_, message) = health(&with_status(
        &qc,
        &compute(
            &qc,
            &Inputs {
                invalid: Some("spec.replicas: must be > 0".into()),
                ..Inputs::default()
            },
        ),
    ));
    assert_eq!(message, "InvalidSpec: spec.replicas: must be > 0");
}
