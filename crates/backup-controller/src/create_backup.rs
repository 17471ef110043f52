//! `backup-controller create-backup --schedule NAME`: what the pod of a schedule's CronJob
//! does at each scheduled time. It creates one QdrantBackup from the schedule's
//! `spec.backupTemplate`; the backup-controller takes it from there.
//!
//! The pod runs as the ServiceAccount `<schedule>-backup-scheduler` (see
//! [`crate::build::cronjob`]), which may only `get` its schedule and `create`/`get`
//! QdrantBackups.
//!
//! The QdrantBackup:
//! - is named after the Job (`JOB_NAME`, `<cronjob>-<minutes since the epoch>`, unique per
//!   scheduled time), so a retried pod of the same Job finds the backup its first attempt
//!   created (409 AlreadyExists) and succeeds without creating a second one. Without a job
//!   name (run by hand): `<schedule>-<UTC yyyymmddhhmmss>`.
//! - carries the label `qdrant.operator.dev/schedule: <schedule>` (retention lists by it).
//! - has the schedule as its *controller* owner reference (`controller: true`): the schedule
//!   is the only thing that creates and deletes its backups, so it is their controller, and
//!   retention deletes only backups whose controller is this very schedule (its uid), never a
//!   backup that merely carries the label (a manual one, or one of an earlier schedule of the
//!   same name). Deleting the schedule garbage-collects its backups; their S3 objects follow
//!   each backup's own `deletionPolicy`. `blockOwnerDeletion` is false: the pod's Role then
//!   needs no `update` on `qdrantbackupschedules/finalizers` (which admission requires for
//!   setting it), and a schedule deleted in the foreground does not wait for its backups'
//!   S3 cleanup.

use api_types::{QdrantBackup, QdrantBackupSchedule, validation::validate_schedule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Resource, ResourceExt, api::PostParams};
use reconcile_lib::error::Error;
use tracing::info;

use crate::build::labels;

/// Field manager of the QdrantBackups the CronJob's pods create.
pub const FIELD_MANAGER: &str = "qdrant-operator-backup-scheduler";

/// The name of the QdrantBackup of one run: the Job's name when there is one, else
/// `<schedule>-<UTC yyyymmddhhmmss>` at `now`.
pub fn backup_name(schedule: &str, job_name: Option<&str>, now: jiff::Timestamp) -> String {
    match job_name.map(str::trim).filter(|j| !j.is_empty()) {
        Some(job) => job.to_string(),
        None => format!("{schedule}-{}", now.strftime("%Y%m%d%H%M%S")),
    }
}

/// The QdrantBackup of one run of `qbs`, named `name` (see the module docs).
pub fn desired_backup(qbs: &QdrantBackupSchedule, name: &str) -> QdrantBackup {
    let owner = qbs.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(false);
        o
    });
    QdrantBackup {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: qbs.namespace(),
            labels: Some(
                [
                    (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                    (labels::SCHEDULE.to_string(), qbs.name_any()),
                ]
                .into(),
            ),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: qbs.spec.backup_template.clone(),
        status: None,
    }
}

/// Creates the QdrantBackup of this run of the schedule `schedule` in `namespace` and returns
/// its name. Calls `GET` on the schedule, `POST` of the QdrantBackup, and on 409 a `GET` of
/// the existing one.
///
/// Errors: the schedule cannot be read; it is suspended, or its spec is invalid
/// ([`Error::InvalidSpec`], naming the schedule); a QdrantBackup of that name exists but
/// belongs to something else ([`Error::InvalidSpec`]); any other API failure
/// ([`Error::Kube`]). A QdrantBackup of that name that this schedule created (a retried
/// pod) is success.
pub async fn create_backup(
    client: kube::Client,
    namespace: &str,
    schedule: &str,
    job_name: Option<&str>,
) -> Result<String, Error> {
    let schedules: Api<QdrantBackupSchedule> = Api::namespaced(client.clone(), namespace);
    let qbs = schedules.get(schedule).await?;
    if qbs.spec.suspend {
        return Err(Error::InvalidSpec(format!(
            "QdrantBackupSchedule {namespace}/{schedule} is suspended (spec.suspend: true); no backup created"
        )));
    }
    if let Err(e) = validate_schedule(&qbs.spec) {
        return Err(Error::InvalidSpec(format!(
            "QdrantBackupSchedule {namespace}/{schedule}: {e}; no backup created"
        )));
    }
    let name = backup_name(schedule, job_name, jiff::Timestamp::now());
    let backup = desired_backup(&qbs, &name);
    let backups: Api<QdrantBackup> = Api::namespaced(client, namespace);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match backups.create(&pp, &backup).await {
        Ok(_) => {
            info!(%namespace, %schedule, backup = %name, "QdrantBackup created");
            Ok(name)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = backups.get(&name).await?;
            let ours = match qbs.uid() {
                Some(uid) => existing
                    .owner_references()
                    .iter()
                    .any(|o| o.uid == uid && o.controller == Some(true)),
                None => false,
            };
            if ours {
                info!(%namespace, %schedule, backup = %name, "QdrantBackup already created by an earlier attempt");
                Ok(name)
            } else {
                Err(Error::InvalidSpec(format!(
                    "QdrantBackup {namespace}/{name} already exists and was not created by QdrantBackupSchedule {schedule}"
                )))
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names() {
        let now: jiff::Timestamp = "2026-03-10T02:00:07Z".parse().unwrap();
        assert_eq!(
            backup_name("nightly", Some("nightly-29555640"), now),
            "nightly-29555640"
        );
        assert_eq!(backup_name("nightly", None, now), "nightly-20260310020007");
        assert_eq!(
            backup_name("nightly", Some(" "), now),
            "nightly-20260310020007"
        );
    }

    #[test]
    fn backup_from_the_template() {
        let qbs: QdrantBackupSchedule = serde_json::from_value(json!({
            "apiVersion": "qdrant.operator.dev/v1alpha1",
            "kind": "QdrantBackupSchedule",
            "metadata": {"name": "nightly", "namespace": "search", "uid": "uid-1"},
            "spec": {
                "schedule": "@daily",
                "backupTemplate": {
                    "cluster": {"name": "demo"},
                    "collections": ["articles"],
                    "storage": {"s3": {"bucket": "qdrant-backups"}},
                    "deletionPolicy": "Delete"
                }
            }
        }))
        .unwrap();
        let b = serde_json::to_value(desired_backup(&qbs, "nightly-1")).unwrap();
        assert_eq!(
            b["metadata"],
            json!({
                "name": "nightly-1",
                "namespace": "search",
                "labels": {"app.kubernetes.io/managed-by": "qdrant-operator", "qdrant.operator.dev/schedule": "nightly"},
                "ownerReferences": [{
                    "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantBackupSchedule",
                    "name": "nightly", "uid": "uid-1", "controller": true, "blockOwnerDeletion": false
                }]
            })
        );
        assert_eq!(
            b["spec"],
            serde_json::to_value(&qbs.spec.backup_template).unwrap()
        );
        assert_eq!(b["kind"], "QdrantBackup");
    }
}
