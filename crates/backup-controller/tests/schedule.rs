//! QdrantBackupSchedule scenarios: the real reconcile and `create_backup` against the
//! in-process fake Kubernetes API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use api_types::{
    QdrantBackup, QdrantBackupSchedule,
    conditions::{Condition, ConditionStatus, find_condition},
};
use backup_controller::{
    create_backup::create_backup,
    schedule::{reconcile, types},
};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use testkit::apiserver::Failure;

mod common;

use common::Env;

const NS: &str = "search";
const API: &str = "qdrant.operator.dev/v1alpha1";
const IMAGE: &str = "ghcr.io/qdrant-operator/backup-controller:0.1.0";

fn env() -> Env {
    Env::new(NS, IMAGE, (), |_| {})
}

fn template() -> Value {
    json!({
        "cluster": {"name": "demo"},
        "collections": ["articles"],
        "storage": {"s3": {
            "bucket": "qdrant-backups",
            "prefix": "prod",
            "endpoint": "http://minio.minio.svc:9000",
            "forcePathStyle": true,
            "credentialsSecretRef": {"name": "s3-credentials"}
        }},
        "deletionPolicy": "Delete"
    })
}

fn nightly() -> Value {
    json!({
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Berlin",
        "successfulJobsHistoryLimit": 4,
        "failedJobsHistoryLimit": 2,
        "startingDeadlineSeconds": 600,
        "backupTemplate": template(),
    })
}

impl Env {
    /// Seeds the schedule `name` and returns its uid.
    fn schedule(&self, name: &str, spec: Value) -> String {
        let stored = self.seed(json!({
            "apiVersion": API, "kind": "QdrantBackupSchedule",
            "metadata": {"name": name},
            "spec": spec,
        }));
        stored["metadata"]["uid"].as_str().unwrap().to_string()
    }

    /// A user's edit of the schedule's spec (the schedule must exist).
    fn edit_schedule_spec(&self, name: &str, f: impl FnOnce(&mut Value)) {
        assert!(self.edit_spec::<QdrantBackupSchedule>(name, f));
    }

    async fn reconcile(&self, name: &str) {
        reconcile(
            Arc::new(self.current::<QdrantBackupSchedule>(name)),
            self.ctx.clone(),
        )
        .await
        .unwrap();
    }

    fn condition(&self, name: &str, t: &str) -> Condition {
        let st = self.current::<QdrantBackupSchedule>(name).status.unwrap();
        find_condition(&st.conditions, t)
            .cloned()
            .unwrap_or_else(|| panic!("{t} missing"))
    }

    fn cron_job(&self, name: &str) -> Option<Value> {
        self.get("batch/v1", "cronjobs", name)
    }

    /// Seeds a QdrantBackup of the schedule `owner_uid` created `age` ago.
    fn backup(&self, name: &str, owner_uid: Option<&str>, age: SignedDuration, phase: &str) {
        let created = Timestamp::now() - age;
        let created = Timestamp::from_second(created.as_second()).unwrap();
        let owners: Vec<Value> = owner_uid
            .map(|uid| {
                json!({"apiVersion": API, "kind": "QdrantBackupSchedule", "name": "nightly",
                       "uid": uid, "controller": true})
            })
            .into_iter()
            .collect();
        self.seed(json!({
            "apiVersion": API, "kind": "QdrantBackup",
            "metadata": {
                "name": name,
                "creationTimestamp": created.to_string(),
                "labels": {"qdrant.operator.dev/schedule": "nightly"},
                "ownerReferences": owners,
            },
            "spec": template(),
            "status": {"phase": phase},
        }));
    }

    fn backups(&self) -> Vec<String> {
        self.names(API, "qdrantbackups")
    }

    /// `(reason, note)` of every event about the schedule `name`.
    fn events_about(&self, name: &str) -> Vec<(String, String)> {
        self.events()
            .iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["note"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

#[tokio::test]
async fn applies_the_cron_job_and_its_rbac() {
    let env = env();
    let uid = env.schedule("nightly", nightly());
    env.reconcile("nightly").await;

    let cj = env.cron_job("nightly").expect("CronJob created");
    assert_eq!(cj["metadata"]["ownerReferences"][0]["uid"], json!(uid));
    assert_eq!(cj["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        cj["metadata"]["labels"],
        json!({
            "app.kubernetes.io/managed-by": "qdrant-operator",
            "app.kubernetes.io/component": "backup-schedule",
            "qdrant.operator.dev/schedule": "nightly",
        })
    );
    let spec = &cj["spec"];
    assert_eq!(spec["schedule"], "0 2 * * *");
    assert_eq!(spec["timeZone"], "Europe/Berlin");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    assert_eq!(spec["successfulJobsHistoryLimit"], 4);
    assert_eq!(spec["failedJobsHistoryLimit"], 2);
    assert_eq!(spec["startingDeadlineSeconds"], 600);
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 2);
    let pod = &job["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "nightly-backup-scheduler");
    assert_eq!(pod["restartPolicy"], "OnFailure");
    assert_eq!(pod["automountServiceAccountToken"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["image"], IMAGE);
    assert_eq!(
        container["args"],
        json!(["create-backup", "--schedule", "nightly"])
    );
    assert_eq!(
        container["env"][1]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['batch.kubernetes.io/job-name']"
    );

    let sa = env
        .get("v1", "serviceaccounts", "nightly-backup-scheduler")
        .expect("ServiceAccount created");
    assert_eq!(sa["metadata"]["ownerReferences"][0]["uid"], json!(uid));
    let role = env
        .get(
            "rbac.authorization.k8s.io/v1",
            "roles",
            "nightly-backup-scheduler",
        )
        .expect("Role created");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["qdrant.operator.dev"], "resources": ["qdrantbackupschedules"],
             "resourceNames": ["nightly"], "verbs": ["get"]},
            {"apiGroups": ["qdrant.operator.dev"], "resources": ["qdrantbackups"],
             "verbs": ["create", "get"]},
        ])
    );
    let rb = env
        .get(
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            "nightly-backup-scheduler",
        )
        .expect("RoleBinding created");
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "nightly-backup-scheduler"})
    );
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "nightly-backup-scheduler", "namespace": NS}])
    );
    // Nothing else was created.
    assert_eq!(env.list("batch/v1", "jobs").len(), 0);
    assert_eq!(env.list("rbac.authorization.k8s.io/v1", "roles").len(), 1);

    let st = env
        .current::<QdrantBackupSchedule>("nightly")
        .status
        .unwrap();
    assert_eq!(st.cron_job_name.as_deref(), Some("nightly"));
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(st.backups, 0);
    let ready = env.condition("nightly", types::READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::True, "CronJobApplied")
    );
    assert_eq!(
        env.condition("nightly", types::SUSPENDED).status,
        ConditionStatus::False
    );
    assert_eq!(
        env.condition("nightly", types::PAUSED).status,
        ConditionStatus::False
    );
    assert_eq!(
        env.events_about("nightly")
            .iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>(),
        ["CronJobCreated"]
    );
}

#[tokio::test]
async fn a_second_reconcile_writes_nothing() {
    let env = env();
    let uid = env.schedule(
        "nightly",
        json!({
            "schedule": "@daily",
            "backupTemplate": template(),
            "retention": {"keepLast": 2, "maxAge": "7d"},
        }),
    );
    env.backup("nightly-1", Some(&uid), hours(30), "Succeeded");
    env.backup("nightly-2", Some(&uid), hours(6), "Succeeded");
    env.reconcile("nightly").await;
    env.fake.clear_requests();
    env.reconcile("nightly").await;
    assert_eq!(
        env.fake.writes(),
        vec![],
        "a no-op reconcile must not write (events included)"
    );
    // Reads only: the four children and the backups list.
    assert!(!env.fake.requests().is_empty());
}

#[tokio::test]
async fn suspend_toggles_the_cron_job() {
    let env = env();
    env.schedule("nightly", nightly());
    env.reconcile("nightly").await;
    assert_eq!(env.cron_job("nightly").unwrap()["spec"]["suspend"], false);

    env.edit_schedule_spec("nightly", |s| s["suspend"] = json!(true));
    env.reconcile("nightly").await;
    assert_eq!(env.cron_job("nightly").unwrap()["spec"]["suspend"], true);
    let s = env.condition("nightly", types::SUSPENDED);
    assert_eq!(
        (s.status, s.reason.as_str()),
        (ConditionStatus::True, "SuspendedBySpec")
    );
    assert_eq!(
        env.condition("nightly", types::READY).status,
        ConditionStatus::True
    );
    assert_eq!(
        env.current::<QdrantBackupSchedule>("nightly")
            .status
            .unwrap()
            .observed_generation,
        Some(2)
    );
    assert!(
        env.events_about("nightly")
            .iter()
            .any(|(r, _)| r == "CronJobUpdated")
    );

    env.edit_schedule_spec("nightly", |s| s["suspend"] = json!(false));
    env.reconcile("nightly").await;
    assert_eq!(env.cron_job("nightly").unwrap()["spec"]["suspend"], false);
    assert_eq!(
        env.condition("nightly", types::SUSPENDED).status,
        ConditionStatus::False
    );
}

#[tokio::test]
async fn a_schedule_change_updates_the_cron_job() {
    let env = env();
    env.schedule("nightly", nightly());
    env.reconcile("nightly").await;
    env.edit_schedule_spec("nightly", |s| {
        s["schedule"] = json!("30 3 * * 1-5");
        s.as_object_mut().unwrap().remove("timeZone");
    });
    env.reconcile("nightly").await;
    let cj = env.cron_job("nightly").unwrap();
    assert_eq!(cj["spec"]["schedule"], "30 3 * * 1-5");
    assert!(cj["spec"].get("timeZone").is_none(), "{cj}");
}

#[tokio::test]
async fn an_invalid_cron_expression_is_a_condition_and_creates_nothing() {
    let env = env();
    let mut spec = nightly();
    spec["schedule"] = json!("0 0 2 * * *");
    env.schedule("nightly", spec);
    env.reconcile("nightly").await;

    assert!(env.cron_job("nightly").is_none());
    assert!(
        env.get("v1", "serviceaccounts", "nightly-backup-scheduler")
            .is_none()
    );
    let ready = env.condition("nightly", types::READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "InvalidSpec")
    );
    assert!(
        ready.message.starts_with("spec.schedule: "),
        "{}",
        ready.message
    );
    let events = env.events_about("nightly");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "InvalidSpec");
    assert!(events[0].1.contains("spec.schedule"), "{events:?}");

    // Once: a resync of the same invalid spec writes nothing, no event.
    env.fake.clear_requests();
    env.reconcile("nightly").await;
    assert_eq!(env.fake.writes(), vec![]);

    // Fixed: the CronJob appears and Ready turns True.
    env.edit_schedule_spec("nightly", |s| s["schedule"] = json!("0 2 * * *"));
    env.reconcile("nightly").await;
    assert!(env.cron_job("nightly").is_some());
    assert_eq!(
        env.condition("nightly", types::READY).status,
        ConditionStatus::True
    );
}

#[tokio::test]
async fn a_name_too_long_for_a_cron_job_is_refused() {
    let env = env();
    let name = "a".repeat(53);
    env.schedule(&name, nightly());
    env.reconcile(&name).await;
    assert!(env.cron_job(&name).is_none());
    let ready = env.condition(&name, types::READY);
    assert!(
        ready.message.starts_with("metadata.name: "),
        "{}",
        ready.message
    );
}

#[tokio::test]
async fn paused_applies_nothing() {
    let env = env();
    env.fake.insert(json!({
        "apiVersion": API, "kind": "QdrantBackupSchedule",
        "metadata": {"name": "nightly", "namespace": NS,
                     "annotations": {"qdrant.operator.dev/paused": "true"}},
        "spec": nightly(),
    }));
    env.reconcile("nightly").await;
    assert!(env.cron_job("nightly").is_none());
    assert_eq!(
        env.condition("nightly", types::PAUSED).status,
        ConditionStatus::True
    );
}

#[tokio::test]
async fn create_backup_creates_the_backup_from_the_template_once() {
    let env = env();
    let uid = env.schedule("nightly", nightly());
    let client = env.fake.client();

    let name = create_backup(client.clone(), NS, "nightly", Some("nightly-29555640"))
        .await
        .unwrap();
    assert_eq!(name, "nightly-29555640");
    let b = env
        .get(API, "qdrantbackups", &name)
        .expect("QdrantBackup created");
    let schedule = env.current::<QdrantBackupSchedule>("nightly");
    assert_eq!(
        b["spec"],
        serde_json::to_value(&schedule.spec.backup_template).unwrap()
    );
    assert_eq!(b["spec"]["storage"]["s3"]["bucket"], "qdrant-backups");
    assert_eq!(
        b["metadata"]["labels"]["qdrant.operator.dev/schedule"],
        "nightly"
    );
    let owner = &b["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            &owner["kind"],
            &owner["name"],
            &owner["uid"],
            &owner["controller"]
        ),
        (
            &json!("QdrantBackupSchedule"),
            &json!("nightly"),
            &json!(uid),
            &json!(true)
        )
    );
    // It deserializes as a QdrantBackup.
    let _: QdrantBackup = serde_json::from_value(b).unwrap();

    // A retried pod of the same Job: the same name, no second backup.
    let again = create_backup(client.clone(), NS, "nightly", Some("nightly-29555640"))
        .await
        .unwrap();
    assert_eq!(again, name);
    assert_eq!(env.backups(), ["nightly-29555640"]);

    // Without a job name: <schedule>-<UTC yyyymmddhhmmss>.
    let manual = create_backup(client, NS, "nightly", None).await.unwrap();
    let suffix = manual.strip_prefix("nightly-").unwrap();
    assert_eq!(suffix.len(), 14, "{manual}");
    assert!(suffix.chars().all(|c| c.is_ascii_digit()), "{manual}");
    assert_eq!(env.backups().len(), 2);
}

#[tokio::test]
async fn create_backup_refuses_a_suspended_schedule() {
    let env = env();
    let mut spec = nightly();
    spec["suspend"] = json!(true);
    env.schedule("nightly", spec);
    let err = create_backup(env.fake.client(), NS, "nightly", Some("nightly-1"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("search/nightly"), "{msg}");
    assert!(msg.contains("suspended"), "{msg}");
    assert!(env.backups().is_empty());
}

#[tokio::test]
async fn create_backup_refuses_an_invalid_or_missing_schedule() {
    let env = env();
    let mut spec = nightly();
    spec["backupTemplate"]["storage"]["s3"]["bucket"] = json!("a..b");
    env.schedule("nightly", spec);
    let err = create_backup(env.fake.client(), NS, "nightly", Some("nightly-1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.backupTemplate.storage.s3.bucket"),
        "{err}"
    );
    assert!(
        create_backup(env.fake.client(), NS, "weekly", None)
            .await
            .is_err()
    );
    assert!(env.backups().is_empty());
}

#[tokio::test]
async fn create_backup_does_not_adopt_a_foreign_backup() {
    let env = env();
    env.schedule("nightly", nightly());
    env.backup("nightly-1", None, hours(1), "Succeeded");
    let err = create_backup(env.fake.client(), NS, "nightly", Some("nightly-1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("was not created by QdrantBackupSchedule nightly"),
        "{err}"
    );
}

/// Four Succeeded (s1 oldest .. s4 newest), one Running (newest of all), one Failed between
/// s2 and s3, and one manual backup with the label but no owner reference.
fn seed_mixed(env: &Env, uid: &str) {
    env.backup("nightly-s1", Some(uid), hours(96), "Succeeded");
    env.backup("nightly-s2", Some(uid), hours(72), "Succeeded");
    env.backup("nightly-f", Some(uid), hours(60), "Failed");
    env.backup("nightly-s3", Some(uid), hours(48), "Succeeded");
    env.backup("nightly-s4", Some(uid), hours(24), "Succeeded");
    env.backup("nightly-r", Some(uid), hours(1), "Running");
    env.backup("manual", None, hours(500), "Succeeded");
}

/// Names of the backups named by `BackupDeleted` events (their `related` object), sorted;
/// each note names its backup too.
fn deleted_names(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = env
        .events()
        .into_iter()
        .filter(|e| e["reason"] == "BackupDeleted" && e["regarding"]["name"] == "nightly")
        .map(|e| {
            let name = e["related"]["name"].as_str().unwrap().to_string();
            assert_eq!(e["related"]["kind"], "QdrantBackup");
            assert_eq!(e["type"], "Normal");
            let note = e["note"].as_str().unwrap();
            assert!(
                note.starts_with(&format!("deleted QdrantBackup {name} (retention.")),
                "{note}"
            );
            name
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn retention_keep_last() {
    let env = env();
    let mut spec = nightly();
    spec["retention"] = json!({"keepLast": 2});
    let uid = env.schedule("nightly", spec);
    seed_mixed(&env, &uid);
    env.reconcile("nightly").await;

    assert_eq!(
        env.backups(),
        ["manual", "nightly-r", "nightly-s3", "nightly-s4"]
    );
    assert_eq!(
        deleted_names(&env),
        ["nightly-f", "nightly-s1", "nightly-s2"]
    );
    let notes: Vec<String> = env
        .events_about("nightly")
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert!(
        notes.contains(
            &"deleted QdrantBackup nightly-s1 (retention.keepLast 2: older than the 2 newest successful backups)"
                .to_string()
        ),
        "{notes:?}"
    );

    let st = env
        .current::<QdrantBackupSchedule>("nightly")
        .status
        .unwrap();
    assert_eq!(st.backups, 3);
    assert_eq!(st.last_backup.as_deref(), Some("nightly-r"));
    assert_eq!(st.last_successful_backup.as_deref(), Some("nightly-s4"));

    // Steady state: nothing more to delete, nothing written.
    env.fake.clear_requests();
    env.reconcile("nightly").await;
    assert_eq!(env.fake.writes(), vec![]);
}

#[tokio::test]
async fn retention_max_age() {
    let env = env();
    let mut spec = nightly();
    spec["retention"] = json!({"maxAge": "50h"});
    let uid = env.schedule("nightly", spec);
    seed_mixed(&env, &uid);
    env.reconcile("nightly").await;

    assert_eq!(
        env.backups(),
        ["manual", "nightly-r", "nightly-s3", "nightly-s4"]
    );
    assert_eq!(
        deleted_names(&env),
        ["nightly-f", "nightly-s1", "nightly-s2"]
    );
    assert_eq!(
        env.current::<QdrantBackupSchedule>("nightly")
            .status
            .unwrap()
            .backups,
        3
    );
}

#[tokio::test]
async fn retention_max_age_never_deletes_the_last_good_backup() {
    let env = env();
    let mut spec = nightly();
    spec["retention"] = json!({"maxAge": "30m"});
    let uid = env.schedule("nightly", spec);
    seed_mixed(&env, &uid);
    env.reconcile("nightly").await;
    assert_eq!(env.backups(), ["manual", "nightly-r", "nightly-s4"]);
    let st = env
        .current::<QdrantBackupSchedule>("nightly")
        .status
        .unwrap();
    assert_eq!(st.last_successful_backup.as_deref(), Some("nightly-s4"));
}

#[tokio::test]
async fn retention_both_rules_delete_the_union() {
    let env = env();
    let mut spec = nightly();
    // keepLast 3 deletes s1 and f; maxAge 70h deletes s1, s2 (72 h) and f.
    spec["retention"] = json!({"keepLast": 3, "maxAge": "70h"});
    let uid = env.schedule("nightly", spec);
    seed_mixed(&env, &uid);
    env.reconcile("nightly").await;
    assert_eq!(
        env.backups(),
        ["manual", "nightly-r", "nightly-s3", "nightly-s4"]
    );
    assert_eq!(
        deleted_names(&env),
        ["nightly-f", "nightly-s1", "nightly-s2"]
    );
}

#[tokio::test]
async fn without_retention_every_backup_is_kept() {
    let env = env();
    let uid = env.schedule("nightly", nightly());
    seed_mixed(&env, &uid);
    env.reconcile("nightly").await;
    assert_eq!(env.backups().len(), 7);
    assert!(deleted_names(&env).is_empty());
    // The manual backup is not the schedule's: not counted.
    assert_eq!(
        env.current::<QdrantBackupSchedule>("nightly")
            .status
            .unwrap()
            .backups,
        6
    );
}

#[tokio::test]
async fn backups_being_deleted_are_not_deleted_again() {
    let env = env();
    let mut spec = nightly();
    spec["retention"] = json!({"keepLast": 1});
    let uid = env.schedule("nightly", spec);
    seed_mixed(&env, &uid);
    // The backup-controller's finalizer holds deleted backups until their S3 objects go.
    for b in env.backups() {
        env.edit(API, "qdrantbackups", &b, |o| {
            o["metadata"]["finalizers"] = json!(["qdrant.operator.dev/backup"]);
        });
    }
    env.reconcile("nightly").await;
    assert_eq!(
        deleted_names(&env),
        ["nightly-f", "nightly-s1", "nightly-s2", "nightly-s3"]
    );
    assert_eq!(
        env.current::<QdrantBackupSchedule>("nightly")
            .status
            .unwrap()
            .backups,
        2
    );
    env.fake.clear_requests();
    env.reconcile("nightly").await;
    assert_eq!(
        env.fake.writes(),
        vec![],
        "no second delete, no second event"
    );
}

#[tokio::test]
async fn status_reports_the_cron_jobs_last_schedule_time() {
    let env = env();
    let uid = env.schedule("nightly", nightly());
    env.reconcile("nightly").await;
    assert_eq!(
        env.current::<QdrantBackupSchedule>("nightly")
            .status
            .unwrap()
            .last_schedule_time,
        None
    );

    // The CronJob ran and its Job's pod created a backup.
    env.edit("batch/v1", "cronjobs", "nightly", |cj| {
        cj["status"] = json!({"lastScheduleTime": "2026-03-10T01:00:00Z"});
    });
    env.backup("nightly-29555580", Some(&uid), hours(0), "Pending");
    env.reconcile("nightly").await;
    let st = env
        .current::<QdrantBackupSchedule>("nightly")
        .status
        .unwrap();
    assert_eq!(
        st.last_schedule_time.as_deref(),
        Some("2026-03-10T01:00:00Z")
    );
    assert_eq!(st.last_backup.as_deref(), Some("nightly-29555580"));
    assert_eq!(st.last_successful_backup, None);
    assert_eq!(st.backups, 1);
    assert_eq!(st.cron_job_name.as_deref(), Some("nightly"));
}

#[tokio::test]
async fn a_forbidden_write_is_a_condition_and_a_server_error_is_retried() {
    let env = env();
    env.schedule("nightly", nightly());
    // The controller may not create the Role (e.g. it lacks create on qdrantbackups, which
    // RBAC escalation prevention requires to grant it): permanent, reported, no CronJob.
    env.fake.fail_next(Failure {
        method: Some(http::Method::PATCH),
        path_contains: Some("/roles/".into()),
        status: 403,
        times: 1,
    });
    env.reconcile("nightly").await;
    assert!(env.cron_job("nightly").is_none());
    let ready = env.condition("nightly", types::READY);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "KubeApiError")
    );

    // A 503 is transient: returned to the error policy for a retry with backoff.
    env.fake.fail_next(Failure {
        method: Some(http::Method::PATCH),
        path_contains: Some("/cronjobs/".into()),
        status: 503,
        times: 1,
    });
    let err = reconcile(
        Arc::new(env.current::<QdrantBackupSchedule>("nightly")),
        env.ctx.clone(),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");

    // Next time through, everything is applied and Ready turns True.
    env.reconcile("nightly").await;
    assert!(env.cron_job("nightly").is_some());
    assert_eq!(
        env.condition("nightly", types::READY).status,
        ConditionStatus::True
    );
}
