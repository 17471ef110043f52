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

use std::sync::Arc;

use api_types::{
    QdrantBackup, QdrantRestore,
    backup::{BackupDeletionPolicy, BackupPhase, QdrantBackupStatus, format_size},
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
    phase::{fail_now, now, wait, with_phase},
    run::{
        self,
        backup::{BackupFailure, BackupJob},
    },
    s3::Bucket,
    storage::{self, Storage},
    target::{self, Resolution},
    upload::UploadSettings,
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
    let bucket = match storage::connect(client, &ns, &spec.storage.s3).await? {
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
    let status = qbak.status.clone().unwrap_or_default();
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
    let status = fresh.status.clone().unwrap_or_default();
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
    let mut status = status;
    status.attempt = attempt;
    status.start_time = Some(now());
    status.completion_time = None;
    status.location = Some(format!("{}/", bucket.location().url(&directory)));
    status.manifest_key = None;
    status.artifacts.clear();
    status.total_bytes = 0;
    status.size = None;
    let message = format!(
        "backing up to {}/ (attempt {attempt})",
        bucket.location().url(&directory)
    );
    let status = with_phase(
        &*qbak,
        status,
        BackupPhase::Running,
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
    let applier = ctx.shared.applier.clone();
    let events = ctx.shared.events.clone();
    let obj = Arc::new(written);
    ctx.jobs
        .start(&uid(&qbak), move |cancel: CancellationToken| async move {
            run_task(obj, applier, events, job, source, bucket, status, cancel).await;
        });
    Ok(Action::requeue(ctx.resync))
}

/// The task: runs the backup, writing each artifact and the outcome to status through a
/// [`Fence`]. Superseded (another process resumed the backup as a later attempt): the run is
/// cancelled (its uploads aborted) and this attempt's directory is deleted, so the attempt
/// that won is the only one left in S3.
#[allow(clippy::too_many_arguments)]
async fn run_task(
    qbak: Arc<QdrantBackup>,
    applier: reconcile_lib::apply::Applier,
    events: reconcile_lib::events::Events,
    job: BackupJob,
    source: run::backup::Source,
    bucket: Bucket,
    mut status: QdrantBackupStatus,
    cancel: CancellationToken,
) {
    let fence = Fence::new(&applier, &*qbak);
    let run_cancel = cancel.child_token();
    let mut superseded = None;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let progress = move |a: &api_types::backup::BackupArtifact| {
        let _ = tx.send(a.clone());
    };
    let run = run::backup::run(&job, &source, &bucket, &progress, &run_cancel);
    tokio::pin!(run);
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            Some(artifact) = rx.recv(), if superseded.is_none() => {
                status.total_bytes += artifact.size_bytes;
                status.size = Some(format_size(status.total_bytes));
                status.message = Some(format!("uploaded {}", artifact.key));
                status.artifacts.push(artifact);
                match fence.write(&status).await {
                    Ok(()) => {}
                    Err(FenceError::Superseded(why)) => {
                        superseded = Some(why);
                        run_cancel.cancel();
                    }
                    Err(e) => warn!(error = %e, "writing backup progress failed"),
                }
            }
        }
    };
    if let Some(why) = superseded {
        return give_way(&qbak, &events, &bucket, &job.directory, &why).await;
    }
    let final_status = match outcome {
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
                bucket.location().url(&done.manifest_key)
            );
            (
                with_phase(
                    &*qbak,
                    status,
                    BackupPhase::Succeeded,
                    "BackupSucceeded",
                    &message,
                ),
                ("Succeeded", message, true),
            )
        }
        Err(BackupFailure {
            reason: "Cancelled",
            ..
        }) => {
            // Cancelled by shutdown or deletion: leave the status Running so the next leader
            // resumes it (deletion removes the object anyway).
            return;
        }
        Err(failure) => {
            status.artifacts.clear();
            status.total_bytes = 0;
            status.size = None;
            (
                with_phase(
                    &*qbak,
                    status,
                    BackupPhase::Failed,
                    failure.reason,
                    &failure.message,
                ),
                (failure.reason, failure.message, false),
            )
        }
    };
    let (final_status, (reason, message, succeeded)) = final_status;
    match fence.write(&final_status).await {
        Ok(()) if succeeded => {
            events.normal(&*qbak, reason, "Backup", message).await;
        }
        Ok(()) => events.warning(&*qbak, reason, "Backup", message).await,
        Err(FenceError::Superseded(why)) => {
            give_way(&qbak, &events, &bucket, &job.directory, &why).await;
        }
        Err(e) => warn!(error = %e, "writing the backup outcome failed"),
    }
}

/// A superseded attempt steps aside: deletes the objects it wrote under `directory` (its own
/// attempt directory: the attempt that took over writes elsewhere) and says so in an event.
async fn give_way(
    qbak: &QdrantBackup,
    events: &reconcile_lib::events::Events,
    bucket: &Bucket,
    directory: &str,
    why: &str,
) {
    if let Err(e) = bucket.delete_prefix(&format!("{directory}/")).await {
        warn!(%directory, error = %e, "removing the superseded attempt's objects failed");
    }
    let message = format!(
        "{why}; this process stopped its run and removed what it wrote under {}/",
        bucket.location().url(directory)
    );
    info!(backup = %qbak.name_any(), %message, "backup attempt superseded");
    events.normal(qbak, "Superseded", "Backup", message).await;
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
    let bucket =
        match storage::connect(ctx.shared.applier.client(), &ns, &qbak.spec.storage.s3).await? {
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
