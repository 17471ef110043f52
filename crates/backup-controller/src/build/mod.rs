//! Build: the desired children of a QdrantBackupSchedule, each a pure function of the spec
//! and the controller's image (no network).
//!
//! A schedule owns four objects, all in its namespace, all with a controller owner reference
//! to it (deleting the schedule garbage-collects them):
//!
//! - a CronJob `<schedule>` ([`cronjob::cron_job`]) whose Job runs
//!   `backup-controller create-backup --schedule <schedule>`,
//! - a ServiceAccount, a Role and a RoleBinding `<schedule>-backup-scheduler`
//!   ([`cronjob::service_account`], [`cronjob::role`], [`cronjob::role_binding`]) that let
//!   that pod read its schedule and create QdrantBackups, and nothing more.

pub mod cronjob;
pub mod volume_snapshot;

use std::collections::BTreeMap;

use api_types::QdrantBackupSchedule;
use k8s_openapi::{
    api::{
        batch::v1::CronJob,
        core::v1::ServiceAccount,
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};

/// Label keys and values the operator puts on the children of a schedule and on the
/// QdrantBackups it creates.
pub mod labels {
    /// `app.kubernetes.io/component`.
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    /// `app.kubernetes.io/managed-by`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Our managed-by value.
    pub const MANAGER: &str = "qdrant-operator";
    /// Our component value for a schedule's children.
    pub const BACKUP_SCHEDULE: &str = "backup-schedule";
    /// `qdrant.operator.dev/schedule`: the QdrantBackupSchedule's name, on its children and on
    /// every QdrantBackup it created (retention lists backups by this label).
    pub const SCHEDULE: &str = "qdrant.operator.dev/schedule";
}

/// Longest schedule name: the CronJob takes it, and Kubernetes limits CronJob names to 52
/// characters (its Jobs append `-<minutes since the epoch>` and must fit a 63-character
/// label value).
pub const MAX_SCHEDULE_NAME_LEN: usize = 52;

/// Names of every child of one schedule, derived from `metadata.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The QdrantBackupSchedule's name; also the CronJob's.
    pub schedule: String,
    /// Namespace of the schedule and all children.
    pub namespace: String,
    /// ServiceAccount, Role and RoleBinding of the CronJob's pods:
    /// `<schedule>-backup-scheduler`.
    pub scheduler: String,
}

impl Names {
    /// Names for `qbs`; the namespace defaults to `default` (as kubectl does for a file
    /// without one).
    pub fn of(qbs: &QdrantBackupSchedule) -> Self {
        let schedule = qbs.name_any();
        Self {
            namespace: qbs.namespace().unwrap_or_else(|| "default".into()),
            scheduler: format!("{schedule}-backup-scheduler"),
            schedule,
        }
    }

    /// The CronJob's name: the schedule's.
    pub fn cron_job(&self) -> &str {
        &self.schedule
    }
}

/// The label selecting the QdrantBackups of the schedule `name`:
/// `qdrant.operator.dev/schedule=<name>`.
pub fn backup_selector(name: &str) -> String {
    format!("{}={name}", labels::SCHEDULE)
}

/// Labels of every child (and of the CronJob's Jobs and pods): managed-by, component and the
/// schedule's name.
pub fn common_labels(qbs: &QdrantBackupSchedule) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
        (
            labels::COMPONENT.to_string(),
            labels::BACKUP_SCHEDULE.to_string(),
        ),
        (labels::SCHEDULE.to_string(), qbs.name_any()),
    ])
}

/// The controller owner reference to `qbs`, or `None` when `qbs` has no uid (an object that
/// never reached an API server).
pub fn owner_reference(qbs: &QdrantBackupSchedule) -> Option<OwnerReference> {
    qbs.controller_owner_ref(&())
}

/// Metadata of a child named `name`: namespace, common labels, owner reference.
pub fn child_meta(qbs: &QdrantBackupSchedule, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(Names::of(qbs).namespace),
        labels: Some(common_labels(qbs)),
        owner_references: owner_reference(qbs).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Every desired child of a schedule, ready to apply (in this order: the pod's identity and
/// permissions before the CronJob that uses them).
#[derive(Debug, Clone)]
pub struct Desired {
    /// ServiceAccount of the CronJob's pods.
    pub service_account: ServiceAccount,
    /// What those pods may do: read the schedule, create (and read) QdrantBackups.
    pub role: Role,
    /// Binds the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// The CronJob that creates a QdrantBackup at each scheduled time.
    pub cron_job: CronJob,
}

/// Builds every desired child of `qbs` (validated beforehand); `image` is the container image
/// the CronJob runs (the controller's own, which has the `create-backup` subcommand).
pub fn build(qbs: &QdrantBackupSchedule, image: &str) -> Desired {
    Desired {
        service_account: cronjob::service_account(qbs),
        role: cronjob::role(qbs),
        role_binding: cronjob::role_binding(qbs),
        cron_job: cronjob::cron_job(qbs, image),
    }
}
