//! A QdrantBackup with `spec.method: VolumeSnapshot`: one CSI VolumeSnapshot
//! (`snapshot.storage.k8s.io/v1`) of each peer's data volume, Pending → Running → Succeeded |
//! Failed, driven by reconciles (no task: every step is recorded in status, so a restarted or
//! new leader carries on where the last one stopped).
//!
//! - **Pending:** the API server must serve `snapshot.storage.k8s.io/v1` with
//!   `volumesnapshots` (discovery, `GET /apis/snapshot.storage.k8s.io/v1`; else reason
//!   `VolumeSnapshotCRDsMissing`), VolumeSnapshotClass `spec.volumeSnapshot.className` must
//!   exist (else `VolumeSnapshotClassNotFound`); both wait, phase Pending, so installing them
//!   lets the backup go on. The QdrantCluster must be Ready and neither Scaling nor Upgrading.
//!   Every data claim `storage-<cluster>-<ordinal>` of `spec.replicas` must exist
//!   (`ClaimNotFound` fails). Then, per collection, `GET /collections/{c}` (its
//!   `flush_interval_sec`) and an exact count; the counts go to `status.pointCounts`, the
//!   planned snapshots to `status.volumeSnapshots`, phase Running.
//! - **Running, before `status.flushedAfter`:** wait. Qdrant writes every acknowledged update
//!   to its WAL and flushes its segments every `flush_interval_sec`; once the longest interval
//!   (plus a second) has passed since the counts, every segment holds what was counted.
//! - **Running, after:** every VolumeSnapshot is created (`POST`, names
//!   `<backup>-<claim>`), then watched: all `readyToUse` → Succeeded; one with
//!   `status.error` → Failed (`VolumeSnapshotFailed`, the CSI driver's message); one deleted
//!   behind our back → Failed (`VolumeSnapshotLost`).
//! - **Deletion:** `deletionPolicy: Delete` deletes the backup's VolumeSnapshots (those in
//!   status and any labelled `qdrant.operator.dev/backup=<name>`), once no unfinished
//!   QdrantRestore reads the backup; `Retain` keeps them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use api_types::{
    QdrantBackup, QdrantCluster,
    backup::{
        BackupDeletionPolicy, BackupPhase, CollectionPoints, PeerVolumeSnapshot, QdrantBackupStatus,
    },
};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    core::DynamicObject,
    runtime::controller::Action,
};
use reconcile_lib::{
    error::{Error, Result},
    target::TargetRef,
};
use tracing::info;

use crate::{
    build::volume_snapshot::{
        self as build, BACKUP_LABEL, GROUP_VERSION, volume_snapshot_class_resource,
        volume_snapshot_resource,
    },
    context::Context,
    phase::{fail_now, now, wait, with_phase},
    target::{self, Resolution},
};

/// Why VolumeSnapshots cannot be taken now: a CamelCase reason and a message for humans.
pub type Unsupported = (&'static str, String);

/// Whether the cluster can take VolumeSnapshots of class `class`: `None` when it can, else
/// the reason (`VolumeSnapshotCRDsMissing`, `VolumeSnapshotClassNotFound`) and a message.
/// Calls discovery (`GET /apis/snapshot.storage.k8s.io/v1`) and `GET` of the class.
///
/// # Errors
/// Kubernetes API failures other than the 404s that mean "missing".
pub async fn unsupported(client: &Client, class: &str) -> Result<Option<Unsupported>> {
    let missing_crds = || {
        Some((
            "VolumeSnapshotCRDsMissing",
            format!(
                "the API server does not serve {GROUP_VERSION} volumesnapshots: install the VolumeSnapshot CRDs and the snapshot controller of the Kubernetes external-snapshotter, and a CSI driver with snapshot support"
            ),
        ))
    };
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) if list.resources.iter().any(|r| r.name == "volumesnapshots") => {}
        Ok(_) => return Ok(missing_crds()),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(missing_crds()),
        Err(e) => return Err(e.into()),
    }
    let classes: Api<DynamicObject> =
        Api::all_with(client.clone(), &volume_snapshot_class_resource());
    if classes.get_opt(class).await?.is_none() {
        return Ok(Some((
            "VolumeSnapshotClassNotFound",
            format!(
                "VolumeSnapshotClass {class} (spec.volumeSnapshot.className) not found; create it for the CSI driver of the cluster's volumes"
            ),
        )));
    }
    Ok(None)
}

/// Reconciles a VolumeSnapshot backup in `status.phase` (not paused, spec validated).
///
/// # Errors
/// Kubernetes API failures (retried with backoff), Qdrant unreachable while counting
/// (`Error::Waiting`, retried).
pub async fn sync(
    qbak: Arc<QdrantBackup>,
    ctx: &Context,
    status: QdrantBackupStatus,
) -> Result<Action> {
    match status.phase {
        BackupPhase::Succeeded | BackupPhase::Failed => Ok(Action::await_change()),
        BackupPhase::Pending => pending(&qbak, ctx, status).await,
        BackupPhase::Running => running(&qbak, ctx, status).await,
    }
}

fn class_of(qbak: &QdrantBackup) -> &str {
    qbak.spec
        .volume_snapshot
        .as_ref()
        .map(|v| v.class_name.as_str())
        .unwrap_or_default()
}

fn cluster_of(qbak: &QdrantBackup) -> &str {
    qbak.spec
        .cluster
        .as_ref()
        .map(|c| c.name.as_str())
        .unwrap_or_default()
}

async fn pending(qbak: &QdrantBackup, ctx: &Context, status: QdrantBackupStatus) -> Result<Action> {
    let client = ctx.shared.applier.client();
    let ns = qbak.namespace().unwrap_or_else(|| "default".into());
    if let Some((reason, message)) = unsupported(client, class_of(qbak)).await? {
        return wait(qbak, ctx, status, reason, &message).await;
    }
    let target = TargetRef {
        cluster: qbak.spec.cluster.as_ref(),
        connection: None,
    };
    let source = match target::resolve(ctx, &ns, target, "backups").await? {
        Resolution::Ready { source, .. } => *source,
        Resolution::Waiting { reason, message } => {
            return wait(qbak, ctx, status, reason, &message).await;
        }
    };
    let cluster = cluster_of(qbak);
    let clusters: Api<QdrantCluster> = Api::namespaced(client.clone(), &ns);
    let Some(qc) = clusters.get_opt(cluster).await? else {
        return Err(Error::Waiting(format!("QdrantCluster {cluster} vanished")));
    };
    let replicas = u32::try_from(qc.spec.replicas).unwrap_or(0);
    let peers: BTreeMap<String, u64> = qc
        .status
        .as_ref()
        .map(|s| s.peers.iter().map(|p| (p.pod.clone(), p.peer_id)).collect())
        .unwrap_or_default();
    let planned = build::plan(
        &qbak.name_any(),
        cluster,
        qc.spec.data_volume_claim_template(),
        replicas,
        &peers,
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    for p in &planned {
        if claims.get_opt(&p.claim_name).await?.is_none() {
            let message = format!(
                "PersistentVolumeClaim {} (the data volume of pod {cluster}-{}) not found",
                p.claim_name, p.ordinal
            );
            return fail_now(qbak, ctx, status, "ClaimNotFound", &message).await;
        }
    }

    let qdrant = &source.endpoint;
    let unreachable =
        |e: reconcile_lib::qdrant::QdrantError| Error::Waiting(format!("Qdrant: {e}"));
    let names = if qbak.spec.collections.is_empty() {
        qdrant.collections().await.map_err(unreachable)?
    } else {
        qbak.spec.collections.clone()
    };
    let mut configs = Vec::new();
    let mut counts = Vec::new();
    for name in &names {
        let Some(info) = qdrant.collection_info(name).await.map_err(unreachable)? else {
            let message = format!("collection {name} (spec.collections) not found in Qdrant");
            return fail_now(qbak, ctx, status, "CollectionNotFound", &message).await;
        };
        configs.push(info.config);
        let points = qdrant.count_points(name, true).await.map_err(unreachable)?;
        counts.push(CollectionPoints {
            name: name.clone(),
            points,
        });
    }
    let version = qdrant.version().await.map_err(unreachable)?.version;
    let flush = build::flush_wait(&configs);
    let after = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::try_from(flush).unwrap_or_default())
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let mut status = status;
    status.attempt = 1;
    status.start_time = Some(now());
    status.qdrant_version = Some(version);
    status.collections = names;
    status.point_counts = counts;
    status.volume_snapshots = planned;
    // Rounded up to the second (status times are whole seconds): never earlier than the wait.
    let up = after.as_second() + i64::from(after.subsec_nanosecond() > 0);
    status.flushed_after = Some(
        jiff::Timestamp::from_second(up)
            .unwrap_or(after)
            .to_string(),
    );
    let message = format!(
        "counted the points of {} collection(s); the {} VolumeSnapshot(s) of QdrantCluster {cluster} are cut once Qdrant's segment flush ({} s) has run",
        status.collections.len(),
        status.volume_snapshots.len(),
        flush.as_secs()
    );
    let status = with_phase(
        qbak,
        status,
        BackupPhase::Running,
        "FlushingSegments",
        &message,
    );
    ctx.shared.applier.apply_status(qbak, &status).await?;
    ctx.shared
        .events
        .normal(qbak, "Started", "Backup", message)
        .await;
    info!(backup = %qbak.name_any(), %cluster, "volume snapshot backup started");
    Ok(Action::requeue(flush))
}

async fn running(qbak: &QdrantBackup, ctx: &Context, status: QdrantBackupStatus) -> Result<Action> {
    let until = status
        .flushed_after
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.duration_since(jiff::Timestamp::now()))
        .unwrap_or_default();
    if until.is_positive() {
        return Ok(Action::requeue(
            Duration::try_from(until).unwrap_or(ctx.wait_requeue),
        ));
    }
    let client = ctx.shared.applier.client();
    let ns = qbak.namespace().unwrap_or_else(|| "default".into());
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &volume_snapshot_resource());
    let cluster = cluster_of(qbak).to_string();
    let mut observed = Vec::with_capacity(status.volume_snapshots.len());
    for planned in &status.volume_snapshots {
        let live = match api.get_opt(&planned.volume_snapshot_name).await? {
            Some(live) => live,
            None if planned.ready_to_use
                || planned.bound_volume_snapshot_content_name.is_some() =>
            {
                let message = format!(
                    "VolumeSnapshot {} (claim {}) was deleted before the backup finished",
                    planned.volume_snapshot_name, planned.claim_name
                );
                return fail_now(qbak, ctx, status, "VolumeSnapshotLost", &message).await;
            }
            None => {
                let desired = build::volume_snapshot(qbak, &cluster, planned, class_of(qbak));
                match api.create(&PostParams::default(), &desired).await {
                    Ok(created) => created,
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        api.get(&planned.volume_snapshot_name).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        observed.push(build::observe(planned, &serde_json::to_value(&live)?));
    }
    let mut status = status;
    status.volume_snapshots = observed;
    if let Some(bad) = status.volume_snapshots.iter().find(|s| s.error.is_some()) {
        let message = format!(
            "VolumeSnapshot {} of claim {}: {}",
            bad.volume_snapshot_name,
            bad.claim_name,
            bad.error.as_deref().unwrap_or_default()
        );
        return fail_now(qbak, ctx, status, "VolumeSnapshotFailed", &message).await;
    }
    let ready = status
        .volume_snapshots
        .iter()
        .filter(|s| s.ready_to_use)
        .count();
    let total = status.volume_snapshots.len();
    if ready == total {
        let points = status
            .point_counts
            .iter()
            .map(|c| format!("{} {}", c.name, c.points))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!(
            "{total} VolumeSnapshot(s) of QdrantCluster {cluster} ready to use (class {}); points: [{points}]",
            class_of(qbak)
        );
        let status = with_phase(
            qbak,
            status,
            BackupPhase::Succeeded,
            "BackupSucceeded",
            &message,
        );
        crate::phase::write(qbak, ctx, &status).await?;
        ctx.shared
            .events
            .normal(qbak, "Succeeded", "Backup", message)
            .await;
        let took = crate::phase::run_duration::<QdrantBackup>(&status);
        ctx.shared.metrics.backup_finished("Succeeded", took, 0);
        return Ok(Action::await_change());
    }
    let message = format!("{ready} of {total} VolumeSnapshot(s) ready to use");
    let status = with_phase(
        qbak,
        status,
        BackupPhase::Running,
        "VolumeSnapshotsPending",
        &message,
    );
    crate::phase::write(qbak, ctx, &status).await?;
    Ok(Action::requeue(ctx.wait_requeue))
}

/// The names of every VolumeSnapshot of `qbak`: those in its status and those labelled
/// `qdrant.operator.dev/backup=<name>` (one created just before a status write was lost).
async fn snapshots_of(api: &Api<DynamicObject>, qbak: &QdrantBackup) -> Result<Vec<String>> {
    let mut names: Vec<String> = qbak
        .status
        .as_ref()
        .map(|s| {
            s.volume_snapshots
                .iter()
                .map(|v| v.volume_snapshot_name.clone())
                .collect()
        })
        .unwrap_or_default();
    let selector = format!("{BACKUP_LABEL}={}", qbak.name_any());
    for vs in api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        let name = vs.name_any();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Deletion of a VolumeSnapshot backup: with `deletionPolicy: Delete`, deletes its
/// VolumeSnapshots (the VolumeSnapshotClass's own `deletionPolicy` then decides about the
/// storage snapshot) once no unfinished QdrantRestore reads the backup; Retain keeps them.
///
/// # Errors
/// Kubernetes API failures; `Error::Waiting` while a restore reads the backup.
pub async fn cleanup(qbak: &QdrantBackup, ctx: &Context, readers: Vec<String>) -> Result<Action> {
    if qbak.spec.deletion_policy != BackupDeletionPolicy::Delete {
        return Ok(Action::await_change());
    }
    if !readers.is_empty() {
        return Err(Error::Waiting(format!(
            "not deleting the VolumeSnapshots of QdrantBackup {} while QdrantRestore {} reads it",
            qbak.name_any(),
            readers.join(", ")
        )));
    }
    let client = ctx.shared.applier.client();
    if unsupported(client, class_of(qbak))
        .await?
        .is_some_and(|(reason, _)| reason == "VolumeSnapshotCRDsMissing")
    {
        return Ok(Action::await_change()); // nothing can exist
    }
    let ns = qbak.namespace().unwrap_or_else(|| "default".into());
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &volume_snapshot_resource());
    let names = snapshots_of(&api, qbak).await?;
    for name in &names {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    info!(backup = %qbak.name_any(), deleted = names.len(), "deleted the backup's VolumeSnapshots (deletionPolicy Delete)");
    Ok(Action::await_change())
}

/// `status.volumeSnapshots` of a finished backup, for a restore: `Err` names what is missing.
pub fn restorable(
    status: &QdrantBackupStatus,
) -> std::result::Result<&[PeerVolumeSnapshot], String> {
    if status.volume_snapshots.is_empty() {
        return Err("the backup lists no VolumeSnapshot".into());
    }
    if let Some(s) = status.volume_snapshots.iter().find(|s| !s.ready_to_use) {
        return Err(format!(
            "VolumeSnapshot {} is not ready to use",
            s.volume_snapshot_name
        ));
    }
    Ok(&status.volume_snapshots)
}
