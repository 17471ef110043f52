//! A QdrantRestore whose `spec.source.backupRef` names a VolumeSnapshot backup: the peers'
//! data claims start from the backup's VolumeSnapshots (`dataSource`), then the cluster's own
//! peers come up on them. Driven by reconciles (no task), Pending → Running → Succeeded |
//! Failed.
//!
//! **Peer identity.** Each restored volume holds a peer's Raft state: its peer id and the p2p
//! URIs of every peer (`<pod>.<cluster>-headless.<namespace>.svc`). A peer started with a
//! different `--uri` announces its new address to the peers at their *old* URIs (Qdrant's
//! `Consensus::recover`), so a copy under another name would talk to the source cluster if it
//! still runs. A restore therefore goes into the cluster the snapshots were taken of: same
//! name, same namespace (`PeerIdentityMismatch` otherwise), typically after it was lost or
//! deleted together with its claims.
//!
//! - **Pending:** the backup must have Succeeded (wait while it runs). `spec.cluster.name`
//!   must be the backup's cluster; `spec.collections` must be empty (whole volumes are
//!   restored). The QdrantCluster must exist with the pause annotation
//!   (`qdrant.operator.dev/paused: "true"`, so the cluster-controller creates no StatefulSet
//!   yet; wait `ClusterNotFound`, fail `ClusterNotPaused`), with `spec.replicas` equal to the
//!   number of snapshots (`ReplicasMismatch`); the StatefulSet must not exist
//!   (`StatefulSetExists`); no claim of those names may exist unless it is one this restore
//!   created (`ClaimExists`: a restore never overwrites a volume). Then every claim
//!   `storage-<cluster>-<ordinal>` is created with `dataSource` its peer's VolumeSnapshot and
//!   the cluster's `spec.persistence` (size at least the snapshot's `restoreSize`). Running.
//! - **Running:** waits for the user to remove the pause annotation (`WaitingForUnpause`), then
//!   for the cluster to be Ready (the StatefulSet adopts the claims by name). Then each
//!   collection's exact point count is read through every peer and must equal the count the
//!   backup recorded (`PointCountMismatch` otherwise) → Succeeded.

use std::collections::BTreeMap;

use api_types::{
    QdrantBackup, QdrantCluster, QdrantRestore,
    backup::{BackupMethod, BackupPhase, QdrantRestoreStatus, RestoreCollectionStatus},
    is_paused,
};
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::PersistentVolumeClaim};
use kube::{Api, ResourceExt, api::PostParams, runtime::controller::Action};
use reconcile_lib::{
    error::{Error, Result},
    target::TargetRef,
};
use tracing::info;

use crate::{
    build::{labels, volume_snapshot as build},
    context::Context,
    phase::{fail_now, now, wait, with_phase},
    target::{self, Resolution},
    volume_snapshots::restorable,
};

/// Label on each restored claim: the QdrantRestore that created it.
pub const RESTORE_LABEL: &str = "qdrant.operator.dev/restore";

/// The QdrantBackup `spec.source.backupRef` names, when it is a VolumeSnapshot backup (`GET`).
///
/// # Errors
/// Kubernetes API failures.
pub async fn volume_backup(qrs: &QdrantRestore, ctx: &Context) -> Result<Option<QdrantBackup>> {
    let Some(r) = &qrs.spec.source.backup_ref else {
        return Ok(None);
    };
    let ns = qrs.namespace().unwrap_or_else(|| "default".into());
    let api: Api<QdrantBackup> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
    Ok(api
        .get_opt(&r.name)
        .await?
        .filter(|b| b.spec.method == BackupMethod::VolumeSnapshot))
}

/// Reconciles a restore from VolumeSnapshot backup `qbak` (not paused, spec validated).
///
/// # Errors
/// Kubernetes API failures (retried with backoff); Qdrant unreachable while counting
/// (`Error::Waiting`).
pub async fn sync(
    qrs: &QdrantRestore,
    ctx: &Context,
    status: QdrantRestoreStatus,
    qbak: &QdrantBackup,
) -> Result<Action> {
    match status.phase {
        BackupPhase::Succeeded | BackupPhase::Failed => Ok(Action::await_change()),
        BackupPhase::Pending => pending(qrs, ctx, status, qbak).await,
        BackupPhase::Running => running(qrs, ctx, status).await,
    }
}

async fn pending(
    qrs: &QdrantRestore,
    ctx: &Context,
    status: QdrantRestoreStatus,
    qbak: &QdrantBackup,
) -> Result<Action> {
    let backup = qbak.name_any();
    let bstatus = qbak.status.clone().unwrap_or_default();
    match bstatus.phase {
        BackupPhase::Succeeded => {}
        BackupPhase::Failed => {
            let message = format!(
                "QdrantBackup {backup} (spec.source.backupRef.name) failed: {}",
                bstatus.message.unwrap_or_default()
            );
            return fail_now(qrs, ctx, status, "BackupFailed", &message).await;
        }
        phase => {
            let message = format!(
                "waiting for QdrantBackup {backup} (spec.source.backupRef.name) to succeed; it is {phase:?}"
            );
            return wait(qrs, ctx, status, "BackupNotComplete", &message).await;
        }
    }
    let snapshots = match restorable(&bstatus) {
        Ok(s) => s.to_vec(),
        Err(e) => {
            let message = format!("QdrantBackup {backup}: {e}");
            return fail_now(qrs, ctx, status, "BackupNotRestorable", &message).await;
        }
    };
    if !qrs.spec.collections.is_empty() {
        let message = "spec.collections: a VolumeSnapshot backup restores whole volumes (every collection, under its own name); leave spec.collections empty";
        return fail_now(qrs, ctx, status, "InvalidSpec", message).await;
    }
    let source_cluster = qbak
        .spec
        .cluster
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let Some(target) = qrs.spec.cluster.as_ref().map(|c| c.name.clone()) else {
        let message = "spec.cluster: a VolumeSnapshot backup restores into a QdrantCluster (its volumes), not a connection";
        return fail_now(qrs, ctx, status, "InvalidSpec", message).await;
    };
    if target != source_cluster {
        let message = format!(
            "spec.cluster.name is {target}, but QdrantBackup {backup} holds the volumes of QdrantCluster {source_cluster}: each volume carries its peer's Raft state with the peers' p2p URIs (<pod>.{source_cluster}-headless.<namespace>.svc), and a peer started under another URI announces itself to the old ones; restore into QdrantCluster {source_cluster} in this namespace"
        );
        return fail_now(qrs, ctx, status, "PeerIdentityMismatch", &message).await;
    }
    let client = ctx.shared.applier.client();
    let ns = qrs.namespace().unwrap_or_else(|| "default".into());
    let clusters: Api<QdrantCluster> = Api::namespaced(client.clone(), &ns);
    let Some(qc) = clusters.get_opt(&target).await? else {
        let message = format!(
            "QdrantCluster {target} not found: create it with spec.replicas {} and the annotation {}: \"true\" (so that no StatefulSet is created before its claims are restored)",
            snapshots.len(),
            api_types::PAUSED_ANNOTATION
        );
        return wait(qrs, ctx, status, "ClusterNotFound", &message).await;
    };
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let mine = |c: &PersistentVolumeClaim, snapshot: &str| {
        c.labels().get(RESTORE_LABEL) == Some(&qrs.name_any())
            && c.spec
                .as_ref()
                .and_then(|s| s.data_source.as_ref())
                .is_some_and(|d| d.name == snapshot)
    };
    let mut existing = Vec::new();
    for s in &snapshots {
        if let Some(c) = claims.get_opt(&s.claim_name).await? {
            if !mine(&c, &s.volume_snapshot_name) {
                let message = format!(
                    "PersistentVolumeClaim {} already exists: a restore never overwrites a volume; delete it (and the StatefulSet {target}) first",
                    s.claim_name
                );
                return fail_now(qrs, ctx, status, "ClaimExists", &message).await;
            }
            existing.push(s.claim_name.clone());
        }
    }
    if !is_paused(&qc.metadata) {
        let message = format!(
            "QdrantCluster {target} is not paused: its peers would start on new empty volumes; delete it and create it again with the annotation {}: \"true\"",
            api_types::PAUSED_ANNOTATION
        );
        return fail_now(qrs, ctx, status, "ClusterNotPaused", &message).await;
    }
    if usize::try_from(qc.spec.replicas).ok() != Some(snapshots.len()) {
        let message = format!(
            "QdrantCluster {target} has spec.replicas {}, the backup {} peer volume(s): set spec.replicas to {}",
            qc.spec.replicas,
            snapshots.len(),
            snapshots.len()
        );
        return fail_now(qrs, ctx, status, "ReplicasMismatch", &message).await;
    }
    if statefulsets.get_opt(&target).await?.is_some() {
        let message = format!(
            "StatefulSet {target} exists: its claims would not start from the snapshots; delete it and its claims first"
        );
        return fail_now(qrs, ctx, status, "StatefulSetExists", &message).await;
    }
    let p = &qc.spec.persistence;
    let modes: Vec<String> = p
        .access_modes
        .iter()
        .map(|m| m.as_str().to_string())
        .collect();
    for s in &snapshots {
        if existing.contains(&s.claim_name) {
            continue;
        }
        let labels = BTreeMap::from([
            (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
            (RESTORE_LABEL.to_string(), qrs.name_any()),
        ]);
        let claim = build::restored_claim(
            &ns,
            s,
            &p.size,
            p.storage_class_name.as_deref(),
            &modes,
            labels,
        )
        .map_err(Error::InvalidSpec)?;
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Err(Error::Waiting(format!(
                    "claim {} appeared meanwhile; checking it again",
                    s.claim_name
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut status = status;
    status.start_time = Some(now());
    status.collections = bstatus
        .point_counts
        .iter()
        .map(|c| RestoreCollectionStatus {
            name: c.name.clone(),
            target_name: c.name.clone(),
            phase: BackupPhase::Running,
            shards_total: 0,
            shards_restored: 0,
            expected_points: Some(c.points),
            restored_points: None,
            method: None,
            message: None,
        })
        .collect();
    let message = unpause_message(&target, snapshots.len(), &backup);
    let status = with_phase(
        qrs,
        status,
        BackupPhase::Running,
        "WaitingForUnpause",
        &message,
    );
    ctx.shared.applier.apply_status(qrs, &status).await?;
    ctx.shared
        .events
        .normal(qrs, "ClaimsRestored", "Restore", message)
        .await;
    info!(restore = %qrs.name_any(), cluster = %target, "claims created from VolumeSnapshots");
    Ok(Action::requeue(ctx.wait_requeue))
}

fn unpause_message(cluster: &str, claims: usize, backup: &str) -> String {
    format!(
        "created {claims} claim(s) of QdrantCluster {cluster} from the VolumeSnapshots of QdrantBackup {backup}; remove the annotation {} from QdrantCluster {cluster} to start its peers on them",
        api_types::PAUSED_ANNOTATION
    )
}

async fn running(
    qrs: &QdrantRestore,
    ctx: &Context,
    status: QdrantRestoreStatus,
) -> Result<Action> {
    let ns = qrs.namespace().unwrap_or_else(|| "default".into());
    let target_ref = TargetRef {
        cluster: qrs.spec.cluster.as_ref(),
        connection: None,
    };
    let clusters: Api<QdrantCluster> = Api::namespaced(ctx.shared.applier.client().clone(), &ns);
    let cluster = target_ref
        .cluster
        .map(|c| c.name.clone())
        .unwrap_or_default();
    if clusters
        .get_opt(&cluster)
        .await?
        .is_some_and(|qc| is_paused(&qc.metadata))
    {
        return Ok(Action::requeue(ctx.wait_requeue));
    }
    let source = match target::resolve(ctx, &ns, target_ref, "restores").await? {
        Resolution::Ready { source, .. } => *source,
        Resolution::Waiting { message, .. } => {
            let message = format!("waiting for the restored cluster: {message}");
            let status = with_phase(
                qrs,
                status,
                BackupPhase::Running,
                "WaitingForCluster",
                &message,
            );
            crate::phase::write(qrs, ctx, &status).await?;
            return Ok(Action::requeue(ctx.wait_requeue));
        }
    };
    let mut status = status;
    let mut clients: Vec<(String, &reconcile_lib::qdrant::QdrantClient)> = source
        .peers
        .iter()
        .map(|(id, c)| (format!("peer {id}"), c))
        .collect();
    if clients.is_empty() {
        clients.push(("the cluster endpoint".into(), &source.endpoint));
    }
    for c in &mut status.collections {
        let expected = c.expected_points.unwrap_or_default();
        for (who, client) in &clients {
            let counted = client
                .count_points(&c.target_name, true)
                .await
                .map_err(|e| {
                    Error::Waiting(format!("counting {} through {who}: {e}", c.target_name))
                })?;
            if counted != expected {
                let message = format!(
                    "collection {}: {counted} points through {who}, the backup counted {expected}",
                    c.target_name
                );
                c.phase = BackupPhase::Failed;
                c.restored_points = Some(counted);
                c.message = Some(message.clone());
                return fail_now(qrs, ctx, status, "PointCountMismatch", &message).await;
            }
        }
        c.phase = BackupPhase::Succeeded;
        c.restored_points = Some(expected);
        c.message = Some(format!(
            "{expected} points through each of {} peer(s)",
            clients.len()
        ));
    }
    let points: u64 = status
        .collections
        .iter()
        .filter_map(|c| c.restored_points)
        .sum();
    let message = format!(
        "QdrantCluster {cluster} runs on the restored volumes: {} collection(s), {points} points, counted through each of {} peer(s)",
        status.collections.len(),
        clients.len()
    );
    let status = with_phase(
        qrs,
        status,
        BackupPhase::Succeeded,
        "RestoreSucceeded",
        &message,
    );
    crate::phase::write(qrs, ctx, &status).await?;
    ctx.shared
        .events
        .normal(qrs, "Succeeded", "Restore", message)
        .await;
    ctx.shared.metrics.restore_finished(
        "Succeeded",
        crate::phase::run_duration::<QdrantRestore>(&status),
    );
    Ok(Action::await_change())
}
