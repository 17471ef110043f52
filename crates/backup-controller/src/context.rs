//! What every reconcile of the three kinds shares.

use std::{sync::Arc, time::Duration};

use reconcile_lib::{context::Shared, metrics::Metrics, target::EndpointRewrite};

use crate::jobs::Jobs;

/// Name of the controller: its Lease, its events and its metrics.
pub const CONTROLLER_NAME: &str = "qdrant-backup-controller";

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "qdrant-backup-controller";

/// Finalizer on QdrantBackups: cancels a running backup and applies `deletionPolicy`.
pub const BACKUP_FINALIZER: &str = "qdrant.operator.dev/backup";

/// Finalizer on QdrantRestores: cancels a running restore.
pub const RESTORE_FINALIZER: &str = "qdrant.operator.dev/restore";

/// The reconcile context.
pub struct Context {
    /// Applier, events, metrics and backoff, as every controller has them.
    pub shared: Shared,
    /// Backups and restores running in this process, by object UID.
    pub jobs: Jobs,
    /// Timeout of each Qdrant request (snapshot transfers use Qdrant's own longer limits).
    pub qdrant_timeout: Duration,
    /// Periodic resync of every object.
    pub resync: Duration,
    /// Requeue while waiting for a cluster, a Secret or a running job.
    pub wait_requeue: Duration,
    /// Attempts of a backup (interrupted by a controller restart, or failed transiently)
    /// before it is Failed.
    pub max_attempts: u32,
    /// Wait before the first retry of a transiently failed backup attempt; doubled for each
    /// further one.
    pub retry_backoff: Duration,
    /// Container image the CronJobs of QdrantBackupSchedules run (this controller's own).
    pub image: String,
    /// Rewrites Qdrant URLs before connecting (tests point cluster endpoints at fakes).
    pub rewrite: Option<EndpointRewrite>,
    /// Timeout of each Qdrant request of a QdrantMigration (a scroll or an upsert of a whole
    /// batch with `wait=true` can take longer than [`Self::qdrant_timeout`]).
    pub migration_timeout: Duration,
    /// Steps (one batch, one collection start or one verification each) a reconcile of a
    /// QdrantMigration runs before it requeues; the status is written after every step.
    pub migration_steps_per_reconcile: u32,
    /// Requeue of a QdrantMigration with work left.
    pub migration_requeue: Duration,
}

impl Context {
    /// Defaults: 10 s Qdrant timeout, 5 min resync, 10 s wait requeue, 3 attempts, 30 s retry
    /// backoff; migrations: 60 s per Qdrant request, 8 steps per reconcile, requeued after
    /// 100 ms.
    pub fn new(client: kube::Client, metrics: Arc<Metrics>, image: impl Into<String>) -> Self {
        Self {
            shared: Shared::new(client, FIELD_MANAGER, CONTROLLER_NAME, metrics),
            jobs: Jobs::default(),
            qdrant_timeout: Duration::from_secs(10),
            resync: Duration::from_secs(300),
            wait_requeue: Duration::from_secs(10),
            max_attempts: 3,
            retry_backoff: Duration::from_secs(30),
            image: image.into(),
            rewrite: None,
            migration_timeout: Duration::from_secs(60),
            migration_steps_per_reconcile: 8,
            migration_requeue: Duration::from_millis(100),
        }
    }
}
