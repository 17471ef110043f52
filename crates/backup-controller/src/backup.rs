//! Reconciling a QdrantBackup: Pending → Running → Succeeded | Failed.
//!
//! - **Pending:** validate the spec (invalid: Failed, the spec is immutable); resolve the
//!   target (a QdrantCluster must be Ready and neither Scaling nor Upgrading, else wait); read
//!   the S3 credentials Secret (missing: wait); `HeadBucket` (no such bucket, wrong
//!   credentials: Failed with S3's reason). Then status Running with attempt 1 and the run
//!   starts as a task ([`crate::jobs`]), which writes progress and the final phase itself.
//! - **Running, task here:** nothing to do. **Running, no task here** (the controller
//!   restarted or leadership moved): the attempt's leftovers are removed (multipart uploads
//!   aborted, objects deleted), and a new attempt starts in a new directory, up to
//!   [`Context::max_attempts`], then Failed with reason `Interrupted`.
//! - **Succeeded / Failed:** final.
//! - **Deletion** (finalizer [`BACKUP_FINALIZER`]): a running task is cancelled (its uploads
//!   aborted); with `deletionPolicy: Delete` every object of the backup is deleted from S3.
//!
//! Objects go to `<prefix>/<namespace>/<name>/<uid first 8>-<attempt>/`: a new attempt, or a
//! new QdrantBackup of the same name, never overwrites an earlier object.

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantBackup, QdrantRestore,
    backup::{
        BackupDeletionPolicy, BackupMethod, BackupPhase, FailedAttempt, QdrantBackupStatus,
        format_size,
    },
    validation::validate_backup_spec,
};
use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, finalizer::Event as FinalizerEvent},
};
use reconcile_lib::{
    error::{Error, Result},
    target::TargetRef,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    context::{BACKUP_FINALIZER, Context},
    fence::{Fence, FenceError},
    manifest::BackupIdentity,
    phase::{self, fail_now, now, wait, with_phase},
    run::{
        self,
        backup::{BackupFailure, BackupJob},
    },
    s3::Bucket,
    storage::{self, Storage},
    target::{self, Resolution},
    upload::UploadSettings,
    volume_snapshots,
};

/// Reconciles one QdrantBackup (the function the Controller runs).
pub async fn reconcile(qbak: Arc<QdrantBackup>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.shared.metrics.reconcile_started();
    let ns = qbak.namespace().unwrap_or_else(|| "default".into());
    let api: Api<QdrantBackup> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
    ctx.shared
        .reconcile_with_finalizer(&api, BACKUP_FINALIZER, qbak.clone(), |event| async {
            match event {
                FinalizerEvent::Apply(b) => sync(b, &ctx).await,
                FinalizerEvent::Cleanup(b) => cleanup(&b, &ctx).await,
            }
        })
        .await
}

/// The error policy: count the error and requeue after this object's next backoff delay.
pub fn error_policy(qbak: Arc<QdrantBackup>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.shared.on_error(&*qbak, error)
}

fn uid(qbak: &QdrantBackup) -> String {
    qbak.uid().unwrap_or_default()
}

/// The key prefix shared by every attempt of this backup (ends with `-`).
fn attempts_prefix(qbak: &QdrantBackup, bucket: &Bucket) -> String {
    let uid = uid(qbak);
    let short: String = uid.chars().take(8).collect();
    bucket.location().key(&format!(
        "{}/{}/{short}-",
        qbak.namespace().unwrap_or_default(),
        qbak.name_any()
    ))
}

fn attempt_directory(qbak: &QdrantBackup, bucket: &Bucket, attempt: u32) -> String {
    format!("{}{attempt}", attempts_prefix(qbak, bucket))
}

/// What a run needs that the reconcile resolves first.
struct Prepared {
    source: run::backup::Source,
    source_label: String,
    bucket: Bucket,
}

/// Resolves target and storage; `Err(action)` when the backup must wait or has failed.
async fn prepare(
    qbak: &QdrantBackup,
    ctx: &Context,
    status: &QdrantBackupStatus,
) -> Result<std::result::Result<Prepared, Action>> {
    let ns = qbak.namespace().unwrap_or_else(|| "default".into());
    let client = ctx.shared.applier.client();
    let spec = &qbak.spec;
    let target = TargetRef {
        cluster: spec.cluster.as_ref(),
        connection: spec.connection.as_ref(),
    };
    let (source, source_label) = match target::resolve(ctx, &ns, target, "backups").await? {
        Resolution::Ready { source, label } => (*source, label),
        Resolution::Waiting { reason, message } => {
            return Ok(Err(wait(qbak, ctx, status.clone(), reason, &message).await?));
        }
    };
    let Some(s3) = spec.s3() else {
        return Ok(Err(fail_now(
            qbak,
            ctx,
            status.clone(),
            "InvalidSpec",
            "spec.storage: required when method is Snapshot (the default)",
        )
        .await?));
    };
    let bucket = match storage::connect(client, &ns, s3).await? {
        Storage::Ready(b) => b,
        Storage::Waiting { reason, message } => {
            return Ok(Err(wait(qbak, ctx, status.clone(), reason, &message).await?));
        }
    };
    if let Err(e) = bucket.check().await {
        let reason = s3_reason(e.code.as_deref());
        let hint = match reason {
            "S3AccessDenied" => {
                "; check the keys in spec.storage.s3.credentialsSecretRef and the bucket policy"
            }
            "BucketNotFound" => "; check spec.storage.s3.bucket, region and endpoint",
            _ => "",
        };
        return Ok(Err(fail_now(
            qbak,
            ctx,
            status.clone(),
            reason,
            &format!("spec.storage.s3: {e}{hint}"),
        )
        .await?));
    }
    Ok(Ok(Prepared {
        source,
        source_label,
        bucket,
    }))
}

/// CamelCase reason of an S3 error code.
fn s3_reason(code: Option<&str>) -> &'static str {
    match code {
        Some("NoSuchBucket" | "NotFound") => "BucketNotFound",
        Some(
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "Forbidden"
            | "InvalidToken"
            | "ExpiredToken",
        ) => "S3AccessDenied",
        _ => "S3Error",
    }
}

async fn sync(qbak: Arc<QdrantBackup>, ctx: &Context) -> Result<Action> {
    if phase::held_by_pause(&*qbak, ctx) {
        return phase::paused(&*qbak, ctx).await;
    }
    let status = qbak.status.clone().unwrap_or_default();
    if qbak.spec.method == BackupMethod::VolumeSnapshot {
        if status.phase == BackupPhase::Pending
            && let Err(e) = validate_backup_spec(&qbak.spec)
        {
            return fail_now(&*qbak, ctx, status, "InvalidSpec", &e.to_string()).await;
        }
        return volume_snapshots::sync(qbak, ctx, status).await;
    }
    match status.phase {
        BackupPhase::Succeeded | BackupPhase::Failed => Ok(Action::await_change()),
        BackupPhase::Running if ctx.jobs.is_running(&uid(&qbak)) => Ok(Action::requeue(ctx.resync)),
        BackupPhase::Running => resume(qbak, ctx).await,
        BackupPhase::Pending => {
            if let Err(e) = validate_backup_spec(&qbak.spec) {
                return fail_now(&*qbak, ctx, status, "InvalidSpec", &e.to_string()).await;
            }
            match prepare(&qbak, ctx, &status).await? {
                Ok(prepared) => start(qbak, ctx, status, prepared, 1).await,
                Err(action) => Ok(action),
            }
        }
    }
}

/// A Running backup with no task in this process: clean up the interrupted attempt and start
/// the next one, or give up after `max_attempts`.
async fn resume(qbak: Arc<QdrantBackup>, ctx: &Context) -> Result<Action> {
    // The cache may lag behind a task of ours that just finished: read the object fresh.
    let ns = qbak.namespace().unwrap_or_else(|| "default".into());
    let api: Api<QdrantBackup> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
    let Some(fresh) = api.get_opt(&qbak.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let mut status = fresh.status.clone().unwrap_or_default();
    if status.phase != BackupPhase::Running || ctx.jobs.is_running(&uid(&fresh)) {
        return Ok(Action::requeue(ctx.wait_requeue));
    }
    let fresh = Arc::new(fresh);
    let prepared = match prepare(&fresh, ctx, &status).await? {
        Ok(p) => p,
        Err(action) => return Ok(action),
    };
    let interrupted = attempt_directory(&fresh, &prepared.bucket, status.attempt);
    if let Err(e) = prepared
        .bucket
        .delete_prefix(&format!("{interrupted}/"))
        .await
    {
        warn!(directory = %interrupted, error = %e, "removing an interrupted attempt failed");
        return Err(Error::Waiting(format!(
            "removing the interrupted attempt {interrupted}: {e}"
        )));
    }
    status.failed_attempts.push(FailedAttempt {
        attempt: status.attempt,
        reason: "Interrupted".into(),
        message: "the controller restarted or lost leadership during the attempt".into(),
        time: now(),
    });
    if status.attempt >= ctx.max_attempts {
        let message = format!(
            "interrupted {} times (the controller restarted or lost leadership during the backup); giving up",
            status.attempt
        );
        return fail_now(&*fresh, ctx, status, "Interrupted", &message).await;
    }
    ctx.shared
        .events
        .normal(
            &*fresh,
            "Retrying",
            "Backup",
            format!(
                "attempt {} was interrupted; starting attempt {}",
                status.attempt,
                status.attempt + 1
            ),
        )
        .await;
    let next = status.attempt + 1;
    start(fresh, ctx, status, prepared, next).await
}

/// `status` reset for attempt `attempt` writing to `directory`, phase Running with `reason`
/// and `message`; the earlier attempts stay in `failedAttempts`.
fn attempt_status(
    qbak: &QdrantBackup,
    mut status: QdrantBackupStatus,
    attempt: u32,
    location: String,
    reason: &str,
    message: &str,
) -> QdrantBackupStatus {
    status.attempt = attempt;
    status.start_time = Some(now());
    status.completion_time = None;
    status.location = Some(location);
    status.manifest_key = None;
    status.artifacts.clear();
    status.total_bytes = 0;
    status.size = None;
    with_phase(qbak, status, BackupPhase::Running, reason, message)
}

/// How a run retries a transient failure: up to `max_attempts` in all, the `n`-th retry after
/// `backoff × 2^(n-1)`.
#[derive(Debug, Clone, Copy)]
struct Retry {
    max_attempts: u32,
    backoff: Duration,
}

impl Retry {
    fn delay_after(&self, attempt: u32) -> Duration {
        self.backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
    }
}

/// Marks the backup Running with `attempt` and starts the run as a task.
async fn start(
    qbak: Arc<QdrantBackup>,
    ctx: &Context,
    status: QdrantBackupStatus,
    prepared: Prepared,
    attempt: u32,
) -> Result<Action> {
    let Prepared {
        source,
        source_label,
        bucket,
    } = prepared;
    let directory = attempt_directory(&qbak, &bucket, attempt);
    let message = format!(
        "backing up to {}/ (attempt {attempt})",
        bucket.location().url(&directory)
    );
    let status = attempt_status(
        &qbak,
        status,
        attempt,
        format!("{}/", bucket.location().url(&directory)),
        "BackupRunning",
        &message,
    );
    let written = ctx.shared.applier.apply_status(&*qbak, &status).await?;
    ctx.shared
        .events
        .normal(&*qbak, "Started", "Backup", message)
        .await;
    info!(backup = %qbak.name_any(), attempt, %directory, "backup started");

    let options = qbak.spec.upload_options();
    let job = BackupJob {
        identity: BackupIdentity {
            namespace: qbak.namespace().unwrap_or_default(),
            name: qbak.name_any(),
            uid: uid(&qbak),
            attempt,
        },
        collections: qbak.spec.collections.clone(),
        source: source_label,
        directory,
        upload: UploadSettings::from_mib(options.part_size_mib, options.concurrency),
    };
    let task = Task {
        fence: Fence::new(&ctx.shared.applier, &written),
        qbak: Arc::new(written),
        events: ctx.shared.events.clone(),
        metrics: ctx.shared.metrics.clone(),
        source,
        attempts_prefix: attempts_prefix(&qbak, &bucket),
        bucket,
        retry: Retry {
            max_attempts: ctx.max_attempts,
            backoff: ctx.retry_backoff,
        },
    };
    ctx.jobs
        .start(&uid(&qbak), move |cancel: CancellationToken| async move {
            task.run(job, status, cancel).await;
        });
    Ok(Action::requeue(ctx.resync))
}

/// What a backup task holds while it runs its attempts.
struct Task {
    qbak: Arc<QdrantBackup>,
    fence: Fence<QdrantBackup>,
    events: reconcile_lib::events::Events,
    /// Where the finished run's duration and bytes are counted.
    metrics: Arc<reconcile_lib::metrics::Metrics>,
    source: run::backup::Source,
    bucket: Bucket,
    /// [`attempts_prefix`]: the directory of attempt `n` is this followed by `n`.
    attempts_prefix: String,
    retry: Retry,
}

/// How one attempt of a task ended.
enum AttemptEnd {
    Done(Box<std::result::Result<run::backup::BackupOutcome, BackupFailure>>),
    Superseded(String),
}

impl Task {
    /// The task: runs attempts until one succeeds, fails for good, or is superseded; each
    /// artifact, each retry and the outcome are written to status through the [`Fence`]. A
    /// transient failure starts the next attempt (new directory, `failedAttempts` extended,
    /// a `Retrying` event) after the backoff, up to the attempt limit. Superseded (another
    /// process resumed the backup as a later attempt): the run is cancelled (its uploads
    /// aborted) and this attempt's directory is deleted, so the attempt that won is the only
    /// one left in S3.
    async fn run(
        mut self,
        mut job: BackupJob,
        mut status: QdrantBackupStatus,
        cancel: CancellationToken,
    ) {
        loop {
            let outcome = match self.attempt(&job, &mut status, &cancel).await {
                AttemptEnd::Superseded(why) => return self.give_way(&job.directory, &why).await,
                AttemptEnd::Done(outcome) => *outcome,
            };
            match outcome {
                Err(failure) if failure.transient && status.attempt < self.retry.max_attempts => {
                    match self.next_attempt(&mut job, status, failure, &cancel).await {
                        Some(next) => status = next,
                        None => return,
                    }
                }
                outcome => return self.finish(&job, status, outcome).await,
            }
        }
    }

    /// Runs one attempt, writing each artifact to status as it lands.
    async fn attempt(
        &self,
        job: &BackupJob,
        status: &mut QdrantBackupStatus,
        cancel: &CancellationToken,
    ) -> AttemptEnd {
        let run_cancel = cancel.child_token();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let progress = move |a: &api_types::backup::BackupArtifact| {
            let _ = tx.send(a.clone());
        };
        let run = run::backup::run(job, &self.source, &self.bucket, &progress, &run_cancel);
        let (outcome, superseded) = self
            .fence
            .drive(run, &mut rx, &run_cancel, status, |status, artifact| {
                status.total_bytes += artifact.size_bytes;
                status.size = Some(format_size(status.total_bytes));
                status.message = Some(format!("uploaded {}", artifact.key));
                status.artifacts.push(artifact);
                true
            })
            .await;
        match superseded {
            Some(why) => AttemptEnd::Superseded(why),
            None => AttemptEnd::Done(Box::new(outcome)),
        }
    }

    /// After a transient failure of `status.attempt` (whose objects the run removed): records
    /// it, switches `job` to the next attempt's directory, writes the status and waits out the
    /// backoff. `None` when the task must end (superseded, the write failed, or cancelled).
    async fn next_attempt(
        &mut self,
        job: &mut BackupJob,
        mut status: QdrantBackupStatus,
        failure: BackupFailure,
        cancel: &CancellationToken,
    ) -> Option<QdrantBackupStatus> {
        let failed = status.attempt;
        let next = failed + 1;
        let delay = self.retry.delay_after(failed);
        status.failed_attempts.push(FailedAttempt {
            attempt: failed,
            reason: failure.reason.to_string(),
            message: failure.message.clone(),
            time: now(),
        });
        let directory = format!("{}{next}", self.attempts_prefix);
        let message = format!(
            "attempt {failed} failed ({}: {}); attempt {next} starts in {} s, to {}/",
            failure.reason,
            failure.message,
            delay.as_secs(),
            self.bucket.location().url(&directory)
        );
        let status = attempt_status(
            &self.qbak,
            status,
            next,
            format!("{}/", self.bucket.location().url(&directory)),
            "BackupRetrying",
            &message,
        );
        match self.fence.write_next(&status).await {
            Ok(()) => {}
            Err(FenceError::Superseded(why)) => {
                self.give_way(&job.directory, &why).await;
                return None;
            }
            Err(e) => {
                // The status still names the failed attempt: the next reconcile finds no task
                // here and resumes it as the next attempt.
                warn!(error = %e, "writing the backup retry failed; the next reconcile resumes it");
                return None;
            }
        }
        self.events
            .normal(&*self.qbak, "Retrying", "Backup", message)
            .await;
        info!(backup = %self.qbak.name_any(), attempt = next, ?delay, reason = failure.reason, "backup retrying");
        job.directory = directory;
        job.identity.attempt = next;
        tokio::select! {
            () = tokio::time::sleep(delay) => Some(status),
            () = cancel.cancelled() => None,
        }
    }

    /// Writes the final phase of `outcome` (Succeeded, or Failed for good) and its event.
    async fn finish(
        &self,
        job: &BackupJob,
        mut status: QdrantBackupStatus,
        outcome: std::result::Result<run::backup::BackupOutcome, BackupFailure>,
    ) {
        let qbak = &*self.qbak;
        let (final_status, reason, message, succeeded) = match outcome {
            Ok(done) => {
                status.artifacts = done.artifacts;
                status.total_bytes = status.artifacts.iter().map(|a| a.size_bytes).sum();
                status.size = Some(format_size(status.total_bytes));
                status.collections = done
                    .manifest
                    .collections
                    .iter()
                    .map(|c| c.name.clone())
                    .collect();
                status.qdrant_version = Some(done.manifest.qdrant_version.clone());
                status.manifest_key = Some(done.manifest_key.clone());
                let message = format!(
                    "{} collection(s), {} object(s), {} in {}",
                    status.collections.len(),
                    status.artifacts.len(),
                    format_size(status.total_bytes),
                    self.bucket.location().url(&done.manifest_key)
                );
                let status = with_phase(
                    qbak,
                    status,
                    BackupPhase::Succeeded,
                    "BackupSucceeded",
                    &message,
                );
                (status, "Succeeded", message, true)
            }
            Err(BackupFailure {
                reason: "Cancelled",
                ..
            }) => {
                // Cancelled by shutdown or deletion: leave the status Running so the next
                // leader resumes it (deletion removes the object anyway).
                return;
            }
            Err(failure) => {
                status.artifacts.clear();
                status.total_bytes = 0;
                status.size = None;
                status.failed_attempts.push(FailedAttempt {
                    attempt: status.attempt,
                    reason: failure.reason.to_string(),
                    message: failure.message.clone(),
                    time: now(),
                });
                let message = if failure.transient {
                    format!(
                        "{} (attempt {} of {}; giving up)",
                        failure.message, status.attempt, self.retry.max_attempts
                    )
                } else {
                    failure.message
                };
                let status =
                    with_phase(qbak, status, BackupPhase::Failed, failure.reason, &message);
                (status, failure.reason, message, false)
            }
        };
        let written = self.fence.write(&final_status).await;
        if written.is_ok() {
            let bytes = if succeeded {
                final_status.total_bytes
            } else {
                0
            };
            let result = if succeeded { "Succeeded" } else { "Failed" };
            let took = crate::phase::run_duration::<QdrantBackup>(&final_status);
            self.metrics.backup_finished(result, took, bytes);
        }
        match written {
            Ok(()) if succeeded => self.events.normal(qbak, reason, "Backup", message).await,
            Ok(()) => self.events.warning(qbak, reason, "Backup", message).await,
            Err(FenceError::Superseded(why)) => self.give_way(&job.directory, &why).await,
            Err(e) => warn!(error = %e, "writing the backup outcome failed"),
        }
    }

    /// A superseded attempt steps aside: deletes the objects it wrote under `directory` (its
    /// own attempt directory: the attempt that took over writes elsewhere) and says so in an
    /// event.
    async fn give_way(&self, directory: &str, why: &str) {
        let bucket = &self.bucket;
        if let Err(e) = bucket.delete_prefix(&format!("{directory}/")).await {
            warn!(%directory, error = %e, "removing the superseded attempt's objects failed");
        }
        let message = format!(
            "{why}; this process stopped its run and removed what it wrote under {}/",
            bucket.location().url(directory)
        );
        info!(backup = %self.qbak.name_any(), %message, "backup attempt superseded");
        self.events
            .normal(&*self.qbak, "Superseded", "Backup", message)
            .await;
    }
}

/// The QdrantRestores of `namespace` that read backup `name` (`spec.source.backupRef`) and
/// have not finished (GET the namespace's QdrantRestores; undecodable ones are skipped).
async fn restores_reading(ctx: &Context, namespace: &str, name: &str) -> Result<Vec<String>> {
    let api: Api<kube::core::DeserializeGuard<QdrantRestore>> =
        Api::namespaced(ctx.shared.applier.client().clone(), namespace);
    let list = api.list(&Default::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|guarded| guarded.0.ok())
        .filter(|r| {
            r.spec
                .source
                .backup_ref
                .as_ref()
                .is_some_and(|b| b.name == name)
                && !r.status.as_ref().is_some_and(|s| s.phase.is_finished())
        })
        .map(|r| r.name_any())
        .collect())
}

/// Deletion: cancel a running task; with `deletionPolicy: Delete`, delete every object of the
/// backup (all attempts) from S3, once no unfinished QdrantRestore reads it (a deletion, by
/// the user or by a schedule's retention, waits for them: `Error::Waiting`, retried with the
/// backoff).
async fn cleanup(qbak: &QdrantBackup, ctx: &Context) -> Result<Action> {
    ctx.jobs.cancel(&uid(qbak)).await;
    if qbak.spec.method == BackupMethod::VolumeSnapshot {
        let readers = if qbak.spec.deletion_policy == BackupDeletionPolicy::Delete {
            let ns = qbak.namespace().unwrap_or_else(|| "default".into());
            restores_reading(ctx, &ns, &qbak.name_any()).await?
        } else {
            Vec::new()
        };
        return volume_snapshots::cleanup(qbak, ctx, readers).await;
    }
    if qbak.spec.deletion_policy != BackupDeletionPolicy::Delete
        || qbak
            .status
            .as_ref()
            .and_then(|s| s.location.as_ref())
            .is_none()
    {
        return Ok(Action::await_change());
    }
    let ns = qbak.namespace().unwrap_or_else(|| "default".into());
    let readers = restores_reading(ctx, &ns, &qbak.name_any()).await?;
    if !readers.is_empty() {
        return Err(Error::Waiting(format!(
            "not deleting the objects of QdrantBackup {} while QdrantRestore {} reads it",
            qbak.name_any(),
            readers.join(", ")
        )));
    }
    let Some(s3) = qbak.spec.s3() else {
        return Ok(Action::await_change());
    };
    let bucket = match storage::connect(ctx.shared.applier.client(), &ns, s3).await? {
        Storage::Ready(b) => b,
        Storage::Waiting { message, .. } => return Err(Error::Waiting(message)),
    };
    let prefix = attempts_prefix(qbak, &bucket);
    let deleted = bucket
        .delete_prefix(&prefix)
        .await
        .map_err(|e| Error::Waiting(format!("deleting the backup's objects: {e}")))?;
    info!(backup = %qbak.name_any(), deleted, %prefix, "deleted the backup's objects (deletionPolicy Delete)");
    Ok(Action::await_change())
}
