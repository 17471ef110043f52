//! Custom resource types of the Qdrant operator (group `qdrant.operator.dev`, version
//! `v1alpha1`, category `qdrant`), the status types every kind shares, spec validation that the
//! schema cannot express, and CRD generation for `crds/`.

pub mod backup;
pub mod cluster;
pub mod collection;
pub mod conditions;
pub mod crd;
pub mod migration;
pub mod schema;
pub mod validation;

pub use backup::{
    QdrantBackup, QdrantBackupSchedule, QdrantBackupScheduleSpec, QdrantBackupScheduleStatus,
    QdrantBackupSpec, QdrantBackupStatus, QdrantRestore, QdrantRestoreSpec, QdrantRestoreStatus,
};
pub use cluster::{QdrantCluster, QdrantClusterSpec, QdrantClusterStatus};
pub use collection::{QdrantCollection, QdrantCollectionSpec, QdrantCollectionStatus};
pub use conditions::{Condition, ConditionStatus};
pub use migration::{QdrantMigration, QdrantMigrationSpec, QdrantMigrationStatus};

/// API group of every kind.
pub const GROUP: &str = "qdrant.operator.dev";

/// Annotation that pauses reconciliation of any object when set to `"true"`.
pub const PAUSED_ANNOTATION: &str = "qdrant.operator.dev/paused";

/// True when `metadata.annotations["qdrant.operator.dev/paused"] == "true"`.
pub fn is_paused(meta: &kube::api::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v == "true")
}
