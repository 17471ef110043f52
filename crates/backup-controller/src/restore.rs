//! Reconciling a QdrantRestore: Pending → Running → Succeeded | Failed.
//!
//! - **Pending:** validate; find the manifest (`spec.source.backupRef`: the QdrantBackup must
//!   be Succeeded — wait while it runs, fail when it failed; or `spec.source.s3`); resolve the
//!   target (a QdrantCluster must be Ready and neither Scaling nor Upgrading, else wait); read
//!   the manifest from S3 (missing or unreadable: Failed naming the key). Then Running, and
//!   the run starts as a task ([`crate::jobs`]) that writes per-collection progress and the
//!   final phase itself.
//! - **Running, no task here** (the controller restarted): Failed with reason `Interrupted`;
//!   a restore is not retried automatically because collections it created may be partial —
//!   the message names them, to be deleted before a new QdrantRestore.
//! - **Deletion** (finalizer [`RESTORE_FINALIZER`]): a running task is cancelled. Restored
//!   collections stay.

use std::{sync::Arc, time::Duration};

use api_types::{
    QdrantBackup, QdrantRestore,
    backup::{BackupPhase, QdrantRestoreStatus, RestoreCollectionStatus, format_size},
    validation::validate_restore,
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
use tracing::warn;

use crate::{
    context::{Context, RESTORE_FINALIZER},
    fence::{Fence, FenceError},
    manifest::{self, MAX_MANIFEST_BYTES, Manifest},
    phase::{self, fail_now, now, wait, with_phase},
    run::{
        self,
        restore::{RestoreFailure, RestoreJob},
    },
    s3::Bucket,
    storage::{self, Storage},
    target::{self, Resolution},
    volume_restore,
};

/// Reconciles one QdrantRestore (the function the Controller runs).
pub async fn reconcile(qrs: Arc<QdrantRestore>, ctx: Arc<Context>) -> Result<Action> {
    let _measure = ctx.shared.metrics.reconcile_started();
    let ns = qrs.namespace().unwrap_or_else(|| "default".into());
    let api: Api<QdrantRestore> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
    ctx.shared
        .reconcile_with_finalizer(&api, RESTORE_FINALIZER, qrs.clone(), |event| async {
            match event {
                FinalizerEvent::Apply(r) => sync(r, &ctx).await,
                FinalizerEvent::Cleanup(r) => {
                    ctx.jobs.cancel(&r.uid().unwrap_or_default()).await;
                    Ok(Action::await_change())
                }
            }
        })
        .await
}

/// The error policy: count the error and requeue after this object's next backoff delay.
pub fn error_policy(qrs: Arc<QdrantRestore>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.shared.on_error(&*qrs, error)
}

async fn sync(qrs: Arc<QdrantRestore>, ctx: &Context) -> Result<Action> {
    if phase::held_by_pause(&*qrs, ctx) {
        return phase::paused(&*qrs, ctx).await;
    }
    let status = qrs.status.clone().unwrap_or_default();
    let uid = qrs.uid().unwrap_or_default();
    if !status.phase.is_finished()
        && let Some(qbak) = volume_restore::volume_backup(&qrs, ctx).await?
    {
        if status.phase == BackupPhase::Pending
            && let Err(e) = validate_restore(&qrs.spec)
        {
            return fail_now(&*qrs, ctx, status, "InvalidSpec", &e.to_string()).await;
        }
        return volume_restore::sync(&qrs, ctx, status, &qbak).await;
    }
    match status.phase {
        BackupPhase::Succeeded | BackupPhase::Failed => Ok(Action::await_change()),
        BackupPhase::Running if ctx.jobs.is_running(&uid) => Ok(Action::requeue(ctx.resync)),
        BackupPhase::Running => {
            let ns = qrs.namespace().unwrap_or_else(|| "default".into());
            let api: Api<QdrantRestore> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
            let Some(fresh) = api.get_opt(&qrs.name_any()).await? else {
                return Ok(Action::await_change());
            };
            let status = fresh.status.clone().unwrap_or_default();
            if status.phase != BackupPhase::Running || ctx.jobs.is_running(&uid) {
                return Ok(Action::requeue(ctx.wait_requeue));
            }
            let message = format!(
                "interrupted (the controller restarted or lost leadership); collections possibly partial: [{}] — delete them and create a new QdrantRestore",
                touched(&status.collections)
            );
            fail_now(&fresh, ctx, status, "Interrupted", &message).await
        }
        BackupPhase::Pending => pending(qrs, ctx, status).await,
    }
}

/// Where the manifest is: the bucket's storage spec and the manifest's full key.
enum ManifestSource {
    Found(api_types::backup::S3Storage, String),
    Wait(&'static str, String),
    Fail(&'static str, String),
}

async fn manifest_source(qrs: &QdrantRestore, ctx: &Context) -> Result<ManifestSource> {
    let ns = qrs.namespace().unwrap_or_else(|| "default".into());
    if let Some(s3) = &qrs.spec.source.s3 {
        return Ok(ManifestSource::Found(
            s3.storage.clone(),
            s3.manifest_key.clone(),
        ));
    }
    let Some(r) = &qrs.spec.source.backup_ref else {
        return Ok(ManifestSource::Fail(
            "InvalidSpec",
            "spec.source: set exactly one of backupRef or s3".into(),
        ));
    };
    let api: Api<QdrantBackup> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
    let Some(qbak) = api.get_opt(&r.name).await? else {
        return Ok(ManifestSource::Wait(
            "BackupNotFound",
            format!(
                "QdrantBackup {} (spec.source.backupRef.name) not found in namespace {ns}",
                r.name
            ),
        ));
    };
    let status = qbak.status.clone().unwrap_or_default();
    match (status.phase, status.manifest_key) {
        (BackupPhase::Succeeded, Some(key)) => match qbak.spec.s3() {
            Some(s3) => Ok(ManifestSource::Found(s3.clone(), key)),
            None => Ok(ManifestSource::Fail(
                "InvalidSpec",
                format!(
                    "QdrantBackup {} (spec.source.backupRef.name) has no spec.storage",
                    r.name
                ),
            )),
        },
        (BackupPhase::Failed, _) => Ok(ManifestSource::Fail(
            "BackupFailed",
            format!(
                "QdrantBackup {} (spec.source.backupRef.name) failed: {}",
                r.name,
                status.message.unwrap_or_default()
            ),
        )),
        (phase, _) => Ok(ManifestSource::Wait(
            "BackupNotComplete",
            format!(
                "waiting for QdrantBackup {} (spec.source.backupRef.name) to succeed; it is {phase:?}",
                r.name
            ),
        )),
    }
}

async fn pending(
    qrs: Arc<QdrantRestore>,
    ctx: &Context,
    status: QdrantRestoreStatus,
) -> Result<Action> {
    if let Err(e) = validate_restore(&qrs.spec) {
        return fail_now(&*qrs, ctx, status, "InvalidSpec", &e.to_string()).await;
    }
    let (storage_spec, manifest_key) = match manifest_source(&qrs, ctx).await? {
        ManifestSource::Found(s, k) => (s, k),
        ManifestSource::Wait(reason, m) => return wait(&*qrs, ctx, status, reason, &m).await,
        ManifestSource::Fail(reason, m) => return fail_now(&*qrs, ctx, status, reason, &m).await,
    };
    let ns = qrs.namespace().unwrap_or_else(|| "default".into());
    let client = ctx.shared.applier.client();
    let target = TargetRef {
        cluster: qrs.spec.cluster.as_ref(),
        connection: qrs.spec.connection.as_ref(),
    };
    let source = match target::resolve(ctx, &ns, target, "restores").await? {
        Resolution::Ready { source, .. } => *source,
        Resolution::Waiting { reason, message } => {
            return wait(&*qrs, ctx, status, reason, &message).await;
        }
    };
    let bucket = match storage::connect(client, &ns, &storage_spec).await? {
        Storage::Ready(b) => b,
        Storage::Waiting { reason, message } => {
            return wait(&*qrs, ctx, status, reason, &message).await;
        }
    };
    let manifest = match read_manifest(&bucket, &manifest_key).await {
        Ok(m) => m,
        Err((reason, message)) => return fail_now(&*qrs, ctx, status, reason, &message).await,
    };
    let directory = manifest_key
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default();
    let job = RestoreJob {
        manifest,
        directory,
        collections: qrs
            .spec
            .collections
            .iter()
            .map(|c| (c.name.clone(), c.target_name().to_string()))
            .collect(),
        method: qrs.spec.recovery_method,
        url_expiry: Duration::from_secs(u64::from(qrs.spec.presigned_url_expiry_seconds)),
    };
    let selected = match run::restore::select(&job.manifest, &job.collections) {
        Ok(s) => s,
        Err(e) => return fail_now(&*qrs, ctx, status, e.reason, &e.message).await,
    };
    let mut status = status;
    status.start_time = Some(now());
    status.collections = run::restore::initial_status(&selected);
    let message = format!(
        "restoring {} collection(s) from {}",
        status.collections.len(),
        bucket.location().url(&manifest_key)
    );
    let status = with_phase(
        &*qrs,
        status,
        BackupPhase::Running,
        "RestoreRunning",
        &message,
    );
    let written = ctx.shared.applier.apply_status(&*qrs, &status).await?;
    ctx.shared
        .events
        .normal(&*qrs, "Started", "Restore", message)
        .await;
    let applier = ctx.shared.applier.clone();
    let events = ctx.shared.events.clone();
    let metrics = ctx.shared.metrics.clone();
    let obj = Arc::new(written);
    ctx.jobs
        .start(&qrs.uid().unwrap_or_default(), move |cancel| async move {
            run_task(
                obj, applier, events, metrics, job, source, bucket, status, cancel,
            )
            .await;
        });
    Ok(Action::requeue(ctx.resync))
}

/// Reads and parses the manifest at `key`: `Err((reason, message))` naming the key.
async fn read_manifest(
    bucket: &Bucket,
    key: &str,
) -> std::result::Result<Manifest, (&'static str, String)> {
    let bytes = bucket
        .get_small_object(key, MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| {
            let reason = match e.code.as_deref() {
                Some("NoSuchKey" | "NoSuchBucket") => "ManifestNotFound",
                _ => "S3Error",
            };
            (reason, format!("reading the manifest: {e}"))
        })?;
    manifest::parse(&bytes).map_err(|m| {
        (
            "InvalidManifest",
            format!("{}: {m}", bucket.location().url(key)),
        )
    })
}

/// The task: runs the restore, writing per-collection progress and the outcome through a
/// [`Fence`]. Superseded (another process failed the restore as `Interrupted`): the run is
/// cancelled at once and a Warning event names the collections this task touched.
#[allow(clippy::too_many_arguments)]
async fn run_task(
    qrs: Arc<QdrantRestore>,
    applier: reconcile_lib::apply::Applier,
    events: reconcile_lib::events::Events,
    metrics: Arc<reconcile_lib::metrics::Metrics>,
    job: RestoreJob,
    source: run::backup::Source,
    bucket: Bucket,
    mut status: QdrantRestoreStatus,
    cancel: CancellationToken,
) {
    let fence = Fence::new(&applier, &*qrs);
    let run_cancel = cancel.child_token();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<RestoreCollectionStatus>>();
    let progress = move |s: &[RestoreCollectionStatus]| {
        let _ = tx.send(s.to_vec());
    };
    let run = run::restore::run(&job, &source, &bucket, &progress, &run_cancel);
    let (outcome, superseded) = fence
        .drive(
            run,
            &mut rx,
            &run_cancel,
            &mut status,
            |status, collections| {
                let changed = collections != status.collections;
                status.collections = collections;
                changed
            },
        )
        .await;
    if let Some(why) = superseded {
        return give_way(&qrs, &events, &status.collections, &why).await;
    }
    let (final_status, reason, message, succeeded) = match outcome {
        Ok((collections, bytes)) => {
            status.collections = collections;
            status.total_bytes = bytes;
            status.size = Some(format_size(bytes));
            let points: u64 = status
                .collections
                .iter()
                .filter_map(|c| c.restored_points)
                .sum();
            let message = format!(
                "restored {} collection(s), {points} points, {}",
                status.collections.len(),
                format_size(bytes)
            );
            let status = with_phase(
                &*qrs,
                status,
                BackupPhase::Succeeded,
                "RestoreSucceeded",
                &message,
            );
            (status, "Succeeded", message, true)
        }
        Err((
            _,
            RestoreFailure {
                reason: "Cancelled",
                ..
            },
        )) => return,
        Err((collections, failure)) => {
            if !collections.is_empty() {
                status.collections = collections;
            }
            let status = with_phase(
                &*qrs,
                status,
                BackupPhase::Failed,
                failure.reason,
                &failure.message,
            );
            (status, failure.reason, failure.message, false)
        }
    };
    let written = fence.write(&final_status).await;
    if written.is_ok() {
        let result = if succeeded { "Succeeded" } else { "Failed" };
        metrics.restore_finished(
            result,
            crate::phase::run_duration::<QdrantRestore>(&final_status),
        );
    }
    match written {
        Ok(()) if succeeded => events.normal(&*qrs, reason, "Restore", message).await,
        Ok(()) => events.warning(&*qrs, reason, "Restore", message).await,
        Err(FenceError::Superseded(why)) => {
            give_way(&qrs, &events, &final_status.collections, &why).await;
        }
        Err(e) => warn!(error = %e, "writing the restore outcome failed"),
    }
}

/// A superseded restore stops: a Warning event names the target collections it touched (they
/// may be partial; the process that ended the restore listed only those it knew of).
async fn give_way(
    qrs: &QdrantRestore,
    events: &reconcile_lib::events::Events,
    collections: &[RestoreCollectionStatus],
    why: &str,
) {
    let message = format!(
        "{why}; this process stopped its run; collections it touched, possibly partial: [{}]",
        touched(collections)
    );
    warn!(restore = %qrs.name_any(), %message, "restore superseded");
    events.warning(qrs, "Superseded", "Restore", message).await;
}

/// The target collections a restore has started on (any phase but Pending), comma-separated.
fn touched(collections: &[RestoreCollectionStatus]) -> String {
    collections
        .iter()
        .filter(|c| c.phase != BackupPhase::Pending)
        .map(|c| c.target_name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
