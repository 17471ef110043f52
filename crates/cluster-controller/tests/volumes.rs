//! Volume expansion end to end in-process: the real reconcile against the fake API server
//! (PersistentVolumeClaims and StorageClasses seeded as the StatefulSet controller and the
//! cluster admin would create them) and a fake Qdrant for the peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use api_types::{
    QdrantCluster,
    cluster::ClusterPhase,
    conditions::{ConditionStatus, types},
};
use cluster_controller::{
    reconcile::reconcile,
    vocabulary::{
        reasons::{EXPANSION_NOT_SUPPORTED, EXPANSION_REJECTED, SHRINK_REFUSED},
        types::VOLUME_EXPANSION_BLOCKED,
    },
};
use common::{Env, NS, QC};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use testkit::{apiserver::Failure, qdrant::FakeQdrant};

mod common;

const PVCS: &str = "persistentvolumeclaims";

fn storage_class(name: &str, allow: Option<bool>) -> Value {
    let mut sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name}, "provisioner": "ebs.csi.aws.com"});
    if let Some(a) = allow {
        sc["allowVolumeExpansion"] = json!(a);
    }
    sc
}

impl Env<FakeQdrant> {
    /// The claim of pod `i` as the StatefulSet controller creates it from the claim template,
    /// bound with `size`.
    fn insert_claim(&self, i: i32, size: &str) {
        self.fake.insert(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": format!("storage-demo-{i}"), "namespace": NS,
                "labels": {"app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": "demo"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                "resources": {"requests": {"storage": size}}, "volumeName": format!("pv-{i}")},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}}));
    }

    fn claim(&self, i: i32) -> Value {
        self.get("v1", PVCS, &format!("storage-demo-{i}")).unwrap()
    }

    fn requested(&self, i: i32) -> String {
        self.claim(i)["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// What the external resizer and the kubelet do once they are done.
    fn finish_resize(&self, i: i32, size: &str) {
        self.edit("v1", PVCS, &format!("storage-demo-{i}"), |c| {
            c["status"]["capacity"]["storage"] = json!(size);
            c["status"].as_object_mut().unwrap().remove("conditions");
        });
    }

    fn set_size(&self, size: &str) {
        self.edit_spec::<QdrantCluster>("demo", |s| s["persistence"]["size"] = json!(size));
    }

    fn claim_patches(&self) -> Vec<(String, Option<String>)> {
        self.fake
            .writes()
            .into_iter()
            .filter(|r| r.path.contains("/persistentvolumeclaims"))
            .map(|r| (format!("{} {}", r.method, r.path), r.content_type))
            .collect()
    }

    /// A running cluster of `replicas` peers at 10Gi, each with its bound claim, and the
    /// StorageClass `standard` (`allowVolumeExpansion` as given).
    async fn running(&self, replicas: i32, allow: Option<bool>) {
        self.fake.insert(storage_class("standard", allow));
        self.seed_cluster(
            "demo",
            json!({"replicas": replicas, "persistence": {"size": "10Gi"}}),
        );
        self.reconcile().await;
        for i in 0..replicas {
            self.insert_claim(i, "10Gi");
        }
        self.mark_ready();
        self.reconcile().await;
        let st = self.qc().status.unwrap();
        assert_eq!(st.phase, ClusterPhase::Running);
        assert_eq!(st.volumes, None);
        let blocked = self.condition(VOLUME_EXPANSION_BLOCKED);
        assert_eq!(
            (blocked.status, blocked.reason.as_str()),
            (ConditionStatus::False, "NotBlocked"),
            "set on first sight"
        );
    }
}

fn patch_of(i: i32) -> (String, Option<String>) {
    (
        format!("PATCH /api/v1/namespaces/{NS}/persistentvolumeclaims/storage-demo-{i}"),
        Some("application/merge-patch+json".to_string()),
    )
}

#[tokio::test]
async fn growing_10gi_to_20gi_patches_every_claim_reports_progress_then_settles() {
    let env = Env::with_one_fake().await;
    env.running(3, Some(true)).await;

    env.set_size("20Gi");
    env.fake.clear_requests();
    let action = env.reconcile().await;
    assert_eq!(
        env.claim_patches(),
        (0..3).map(patch_of).collect::<Vec<_>>(),
        "one merge patch per claim"
    );
    for i in 0..3 {
        assert_eq!(env.requested(i), "20Gi");
        // Only the request changed: the rest of the claim is as the StatefulSet made it.
        assert_eq!(env.claim(i)["spec"]["storageClassName"], json!("standard"));
        assert_eq!(env.claim(i)["spec"]["volumeName"], json!(format!("pv-{i}")));
    }
    let sts = env.get("apps/v1", "statefulsets", "demo").unwrap();
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        json!("10Gi"),
        "the StatefulSet keeps its immutable claim template"
    );
    let st = env.qc().status.unwrap();
    let volumes = st.volumes.clone().unwrap();
    assert_eq!(volumes.requested_size, "20Gi");
    let pending: Vec<_> = volumes
        .pending
        .iter()
        .map(|c| (c.name.as_str(), c.capacity.as_deref(), c.state.as_str()))
        .collect();
    assert_eq!(
        pending,
        [
            ("storage-demo-0", Some("10Gi"), "ResizeRequested"),
            ("storage-demo-1", Some("10Gi"), "ResizeRequested"),
            ("storage-demo-2", Some("10Gi"), "ResizeRequested"),
        ]
    );
    assert_eq!(st.phase, ClusterPhase::Running, "the phase is not changed");
    assert_eq!(env.condition(types::READY).status, ConditionStatus::True);
    let progressing = env.condition(types::PROGRESSING);
    assert_eq!(
        (progressing.status, progressing.reason.as_str()),
        (ConditionStatus::True, "ExpandingVolumes")
    );
    assert!(
        progressing
            .message
            .contains("storage-demo-0 (ResizeRequested)"),
        "{}",
        progressing.message
    );
    assert_eq!(
        env.condition(VOLUME_EXPANSION_BLOCKED).status,
        ConditionStatus::False
    );
    let started = env.events_with_reason("VolumeExpansionStarted");
    assert_eq!(
        started.len(),
        1,
        "one event for the claims patched together"
    );
    assert_eq!(
        started[0]["note"],
        json!(
            "PersistentVolumeClaim storage-demo-0 from 10Gi, storage-demo-1 from 10Gi, \
             storage-demo-2 from 10Gi grows to 20Gi (spec.persistence.size)"
        )
    );
    assert_eq!(started[0]["type"], json!("Normal"));
    assert_eq!(
        action,
        Action::requeue(env.ctx.volume_requeue),
        "claims are not watched: requeue sooner while they resize"
    );

    // The resizer is at work on one claim, done with another: nothing is patched again.
    env.edit("v1", PVCS, "storage-demo-1", |c| {
        c["status"]["conditions"] = json!([{"type": "FileSystemResizePending", "status": "True"}]);
        c["status"]["allocatedResourceStatuses"] = json!({"storage": "NodeResizePending"});
    });
    env.finish_resize(2, "20Gi");
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(env.claim_patches(), [], "a claim is patched once");
    let volumes = env.qc().status.unwrap().volumes.unwrap();
    let pending: Vec<_> = volumes
        .pending
        .iter()
        .map(|c| (c.name.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(
        pending,
        [
            ("storage-demo-0", "ResizeRequested"),
            ("storage-demo-1", "FileSystemResizePending")
        ]
    );
    assert!(
        env.condition(types::PROGRESSING)
            .message
            .contains("storage-demo-1 (FileSystemResizePending"),
        "{}",
        env.condition(types::PROGRESSING).message
    );
    assert_eq!(
        env.events_with_reason("VolumeExpansionStarted")[0]["series"],
        Value::Null,
        "no new event"
    );

    // Every claim reports the new capacity (in bytes for one: compared by value).
    env.finish_resize(0, "21474836480");
    env.finish_resize(1, "20Gi");
    let action = env.reconcile().await;
    let st = env.qc().status.unwrap();
    assert_eq!(st.volumes, None, "status.volumes goes away");
    let progressing = env.condition(types::PROGRESSING);
    assert_eq!(
        (progressing.status, progressing.reason.as_str()),
        (ConditionStatus::False, "Reconciled")
    );
    assert_eq!(env.events_with_reason("VolumeExpansionCompleted").len(), 1);
    assert_eq!(action, Action::requeue(env.ctx.resync));

    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(
        env.fake
            .writes()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>(),
        Vec::<String>::new(),
        "a settled cluster sees no write, not even an event"
    );
}

#[tokio::test]
async fn shrinking_is_refused_with_a_condition_and_no_claim_is_touched() {
    let env = Env::with_one_fake().await;
    env.running(3, Some(true)).await;
    let before: Vec<Value> = (0..3).map(|i| env.claim(i)).collect();

    env.set_size("5Gi");
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(env.claim_patches(), [], "no claim is written");
    assert_eq!((0..3).map(|i| env.claim(i)).collect::<Vec<_>>(), before);
    let blocked = env.condition(VOLUME_EXPANSION_BLOCKED);
    assert_eq!(blocked.status, ConditionStatus::True);
    assert_eq!(blocked.reason, SHRINK_REFUSED);
    for part in [
        "spec.persistence.size 5Gi",
        "storage-demo-0 requests 10Gi",
        "at least 10Gi",
    ] {
        assert!(
            blocked.message.contains(part),
            "{part}: {}",
            blocked.message
        );
    }
    let volumes = env.qc().status.unwrap().volumes.unwrap();
    assert_eq!(volumes.message, blocked.message);
    assert!(volumes.pending.iter().all(|c| c.state == SHRINK_REFUSED));
    // The cluster keeps serving: a refused expansion does not make it unready.
    assert_eq!(env.condition(types::READY).status, ConditionStatus::True);
    assert_eq!(env.events_with_reason(VOLUME_EXPANSION_BLOCKED).len(), 1);

    // The refusal is reported once: a second reconcile writes nothing.
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(env.fake.writes(), []);
    assert_eq!(env.events_with_reason(VOLUME_EXPANSION_BLOCKED).len(), 1);

    // Back to the claims' size: the refusal clears, nothing is patched.
    env.set_size("10737418240");
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(env.claim_patches(), []);
    let blocked = env.condition(VOLUME_EXPANSION_BLOCKED);
    assert_eq!(
        (blocked.status, blocked.reason.as_str()),
        (ConditionStatus::False, "NotBlocked")
    );
    assert_eq!(env.qc().status.unwrap().volumes, None);
    assert_eq!(
        env.events_with_reason("VolumeExpansionCompleted"),
        Vec::<Value>::new(),
        "nothing was expanded"
    );
}

#[tokio::test]
async fn a_storage_class_without_allow_volume_expansion_is_reported_and_nothing_is_patched() {
    let env = Env::with_one_fake().await;
    env.running(3, None).await;

    env.set_size("20Gi");
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(env.claim_patches(), []);
    let blocked = env.condition(VOLUME_EXPANSION_BLOCKED);
    assert_eq!(blocked.status, ConditionStatus::True);
    assert_eq!(blocked.reason, EXPANSION_NOT_SUPPORTED);
    assert!(
        blocked
            .message
            .contains("StorageClass standard does not set allowVolumeExpansion: true"),
        "{}",
        blocked.message
    );
    assert_eq!(env.events_with_reason(VOLUME_EXPANSION_BLOCKED).len(), 1);
    assert!(
        env.fake
            .requests()
            .iter()
            .any(|r| r.path == "/apis/storage.k8s.io/v1/storageclasses/standard"),
        "the claim's StorageClass is read by name"
    );

    // The admin allows expansion: the next reconcile grows the claims.
    env.fake.edit(
        "storage.k8s.io/v1",
        "storageclasses",
        None,
        "standard",
        |sc| sc["allowVolumeExpansion"] = json!(true),
    );
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(
        env.claim_patches(),
        (0..3).map(patch_of).collect::<Vec<_>>()
    );
    assert_eq!(
        env.condition(VOLUME_EXPANSION_BLOCKED).status,
        ConditionStatus::False
    );
}

#[tokio::test]
async fn a_claim_created_later_by_a_scale_up_is_grown_too() {
    let env = Env::with_one_fake().await;
    env.running(2, Some(true)).await;
    env.set_size("20Gi");
    env.reconcile().await;
    env.finish_resize(0, "20Gi");
    env.finish_resize(1, "20Gi");
    env.reconcile().await;
    assert_eq!(env.qc().status.unwrap().volumes, None);

    // Scale up: the StatefulSet grows; its pod and claim do not exist yet.
    env.edit(QC, "qdrantclusters", "demo", |q| {
        q["spec"]["replicas"] = json!(3)
    });
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(env.claim_patches(), []);
    assert!(
        env.fake
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/persistentvolumeclaims/storage-demo-2")),
        "the new pod's claim is looked for"
    );

    // The StatefulSet controller creates it from the immutable template: at 10Gi.
    env.insert_claim(2, "10Gi");
    env.mark_ready();
    env.fake.clear_requests();
    env.reconcile().await;
    assert_eq!(env.claim_patches(), [patch_of(2)]);
    assert_eq!(env.requested(2), "20Gi");
    let volumes = env.qc().status.unwrap().volumes.unwrap();
    assert_eq!(
        volumes
            .pending
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["storage-demo-2"]
    );
}

#[tokio::test]
async fn refused_reads_and_patches_become_a_condition_and_server_errors_are_retried() {
    let env = Env::with_one_fake().await;
    env.running(1, Some(true)).await;
    env.set_size("20Gi");

    // 5xx: transient, the reconcile fails for the error policy to retry with backoff.
    env.fake.fail_next(Failure {
        method: Some(http::Method::PATCH),
        path_contains: Some("/persistentvolumeclaims/".into()),
        status: 503,
        times: 1,
    });
    let err = reconcile(Arc::new(env.qc()), env.ctx.clone())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(env.requested(0), "10Gi");

    // 403 from admission: permanent, reported, and the rest of the reconcile goes on.
    env.fake.fail_next(Failure {
        method: Some(http::Method::PATCH),
        path_contains: Some("/persistentvolumeclaims/".into()),
        status: 403,
        times: 1,
    });
    env.reconcile().await;
    let blocked = env.condition(VOLUME_EXPANSION_BLOCKED);
    assert_eq!(blocked.status, ConditionStatus::True);
    assert_eq!(blocked.reason, EXPANSION_REJECTED);
    assert!(
        blocked.message.contains("storage-demo-0 from 10Gi to 20Gi"),
        "{}",
        blocked.message
    );
    let volumes = env.qc().status.unwrap().volumes.unwrap();
    assert_eq!(volumes.pending[0].state, EXPANSION_REJECTED);
    assert_eq!(volumes.message, blocked.message);
    assert_eq!(env.qc().status.unwrap().phase, ClusterPhase::Running);

    // A claim the controller may not read (RBAC): reported, the reconcile goes on.
    env.fake.fail_next(Failure {
        method: Some(http::Method::GET),
        path_contains: Some("/persistentvolumeclaims/".into()),
        status: 403,
        times: 1,
    });
    env.reconcile().await;
    let blocked = env.condition(VOLUME_EXPANSION_BLOCKED);
    assert_eq!(
        (blocked.status, blocked.reason.as_str()),
        (ConditionStatus::True, "CannotReadVolumes")
    );
    assert_eq!(
        env.qc().status.unwrap().volumes.unwrap().pending[0].state,
        EXPANSION_REJECTED,
        "the last known progress is kept"
    );

    // Once the API server accepts it, the claim grows and the refusal clears.
    env.reconcile().await;
    assert_eq!(env.requested(0), "20Gi");
    assert_eq!(
        env.condition(VOLUME_EXPANSION_BLOCKED).status,
        ConditionStatus::False
    );
}

/// The status as a pure function: how expansion progress meets the other conditions.
mod status {
    use api_types::{
        QdrantCluster,
        cluster::{VolumeClaimStatus, VolumesStatus},
        conditions::{ConditionStatus, find_condition, types},
    };
    use cluster_controller::{
        status::{Inputs, compute},
        vocabulary::types::VOLUME_EXPANSION_BLOCKED,
        volumes::VolumesProgress,
    };
    use serde_json::json;

    fn cluster() -> QdrantCluster {
        serde_json::from_value(json!({"apiVersion": "qdrant.operator.dev/v1alpha1",
            "kind": "QdrantCluster", "metadata": {"name": "demo", "namespace": "qdrant",
            "generation": 2}, "spec": {"replicas": 3}}))
        .unwrap()
    }

    fn statefulset(updated: i32) -> k8s_openapi::api::apps::v1::StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "demo", "generation": 1},
            "spec": {"replicas": 3, "selector": {}, "template": {}, "serviceName": "demo-headless"},
            "status": {"replicas": 3, "readyReplicas": 3, "updatedReplicas": updated,
                "currentRevision": "r1", "updateRevision": if updated == 3 { "r1" } else { "r2" },
                "observedGeneration": 1}}))
        .unwrap()
    }

    fn resizing() -> VolumesProgress {
        VolumesProgress {
            status: Some(VolumesStatus {
                requested_size: "20Gi".into(),
                pending: vec![VolumeClaimStatus {
                    name: "storage-demo-0".into(),
                    capacity: Some("10Gi".into()),
                    state: "Resizing".into(),
                }],
                message:
                    "expanding volumes to 20Gi (spec.persistence.size): storage-demo-0 (Resizing)"
                        .into(),
            }),
            blocked: None,
        }
    }

    fn condition(st: &api_types::QdrantClusterStatus, t: &str) -> api_types::Condition {
        find_condition(&st.conditions, t).cloned().unwrap()
    }

    #[test]
    fn resizing_is_appended_to_another_progress_and_never_hides_a_blocker() {
        // A running cluster in a rolling update: Progressing keeps its reason, and names the
        // claims.
        let mut qc = cluster();
        qc.status = Some(api_types::QdrantClusterStatus {
            version: Some("v1.16.0".into()),
            ..Default::default()
        });
        let st = compute(
            &qc,
            &Inputs {
                statefulset: Some(statefulset(1)),
                volumes: Some(resizing()),
                ..Inputs::default()
            },
        );
        let p = condition(&st, types::PROGRESSING);
        assert_eq!(p.status, ConditionStatus::True);
        assert_eq!(p.reason, "RollingUpdate");
        assert!(
            p.message.ends_with(
                "; expanding volumes to 20Gi (spec.persistence.size): storage-demo-0 (Resizing)"
            ),
            "{}",
            p.message
        );

        // A blocker (a missing Secret) stays what Progressing reports.
        let st = compute(
            &cluster(),
            &Inputs {
                blocked: Some(("SecretNotFound".into(), "Secret x not found".into())),
                statefulset: Some(statefulset(3)),
                volumes: Some(resizing()),
                ..Inputs::default()
            },
        );
        let p = condition(&st, types::PROGRESSING);
        assert_eq!(
            (p.status, p.reason.as_str()),
            (ConditionStatus::False, "SecretNotFound")
        );
        assert_eq!(st.volumes, resizing().status, "progress is still reported");
    }

    #[test]
    fn volumes_keep_their_last_value_when_not_observed() {
        let mut qc = cluster();
        let first = compute(
            &qc,
            &Inputs {
                statefulset: Some(statefulset(3)),
                volumes: Some(VolumesProgress {
                    status: resizing().status,
                    blocked: Some(("ShrinkRefused".into(), "spec.persistence.size ...".into())),
                }),
                ..Inputs::default()
            },
        );
        let blocked = condition(&first, VOLUME_EXPANSION_BLOCKED);
        assert_eq!(
            (blocked.status, blocked.reason.as_str()),
            (ConditionStatus::True, "ShrinkRefused")
        );
        qc.status = Some(first.clone());
        // Paused: nothing observed, the last known expansion and its condition stay.
        let paused = compute(
            &qc,
            &Inputs {
                paused: true,
                ..Inputs::default()
            },
        );
        assert_eq!(paused.volumes, first.volumes);
        assert_eq!(
            condition(&paused, VOLUME_EXPANSION_BLOCKED).status,
            ConditionStatus::True
        );
        // Never observed at all: the condition is set False on first sight.
        let fresh = compute(
            &cluster(),
            &Inputs {
                statefulset: Some(statefulset(3)),
                ..Inputs::default()
            },
        );
        assert_eq!(
            condition(&fresh, VOLUME_EXPANSION_BLOCKED).status,
            ConditionStatus::False
        );
        assert_eq!(fresh.volumes, None);
    }
}
