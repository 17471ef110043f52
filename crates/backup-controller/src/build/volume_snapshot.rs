//! Method VolumeSnapshot, pure: the `snapshot.storage.k8s.io/v1` objects a QdrantBackup
//! creates (one VolumeSnapshot per peer data volume), what their status says, the restored
//! claims of a QdrantRestore, and how long to wait for Qdrant's segment flush. No network.
//!
//! The objects are handled as [`DynamicObject`]s: the VolumeSnapshot CRDs belong to the
//! Kubernetes external-snapshotter, not to this operator, and may not be installed at all.

use std::{collections::BTreeMap, time::Duration};

use api_types::{QdrantBackup, backup::PeerVolumeSnapshot};
use k8s_openapi::{
    api::core::v1::PersistentVolumeClaim, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    ResourceExt,
    core::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::{Value, json};

use super::labels;

/// API group of VolumeSnapshots, VolumeSnapshotClasses and VolumeSnapshotContents.
pub const GROUP: &str = "snapshot.storage.k8s.io";
/// The version served by the external-snapshotter since Kubernetes 1.20.
pub const VERSION: &str = "v1";
/// `snapshot.storage.k8s.io/v1`.
pub const GROUP_VERSION: &str = "snapshot.storage.k8s.io/v1";
/// Label on each VolumeSnapshot: the QdrantBackup that took it.
pub const BACKUP_LABEL: &str = "qdrant.operator.dev/backup";
/// Label on each VolumeSnapshot: the QdrantCluster whose volume it is.
pub const CLUSTER_LABEL: &str = "qdrant.operator.dev/cluster";
/// Annotation on each VolumeSnapshot: the pod ordinal whose volume it is.
pub const ORDINAL_ANNOTATION: &str = "qdrant.operator.dev/ordinal";
/// Qdrant's default `optimizer_config.flush_interval_sec` (config.yaml, 1.18).
pub const DEFAULT_FLUSH_INTERVAL_SECONDS: u64 = 5;
/// Longest name of a Kubernetes object (a DNS subdomain).
const MAX_NAME_LEN: usize = 253;

/// The VolumeSnapshot resource (namespaced).
pub fn volume_snapshot_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "VolumeSnapshot"),
        "volumesnapshots",
    )
}

/// The VolumeSnapshotClass resource (cluster-scoped).
pub fn volume_snapshot_class_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "VolumeSnapshotClass"),
        "volumesnapshotclasses",
    )
}

/// The name of backup `backup`'s VolumeSnapshot of claim `claim`: `<backup>-<claim>`, e.g.
/// `nightly-storage-demo-0`; when longer than 253 characters, cut and ended with 10 hex
/// digits of a hash of the full name, so it stays unique and deterministic (a resumed
/// reconcile finds the snapshot it created).
pub fn snapshot_name(backup: &str, claim: &str) -> String {
    let full = format!("{backup}-{claim}");
    if full.len() <= MAX_NAME_LEN {
        return full;
    }
    // FNV-1a: stable across processes and Rust versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in full.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let suffix = format!("-{:010x}", hash & 0xff_ffff_ffff);
    let keep = MAX_NAME_LEN - suffix.len();
    let head: String = full.chars().take(keep).collect();
    format!("{}{suffix}", head.trim_end_matches(['-', '.']))
}

/// The planned VolumeSnapshots of a backup of cluster `cluster`: one per pod ordinal
/// `0..replicas` (its data claim `<template>-<cluster>-<ordinal>`, `template` being the
/// cluster's data claim template, `storage` unless adopted), with the peer id from `peers`
/// (`(pod name, peer id)` of the QdrantCluster's `status.peers`), not ready yet.
pub fn plan(
    backup: &str,
    cluster: &str,
    template: &str,
    replicas: u32,
    peers: &BTreeMap<String, u64>,
) -> Vec<PeerVolumeSnapshot> {
    (0..replicas)
        .map(|ordinal| {
            let claim = api_types::cluster::data_claim_name(template, cluster, ordinal);
            PeerVolumeSnapshot {
                ordinal,
                peer_id: peers.get(&format!("{cluster}-{ordinal}")).copied(),
                volume_snapshot_name: snapshot_name(backup, &claim),
                claim_name: claim,
                ready_to_use: false,
                restore_size: None,
                bound_volume_snapshot_content_name: None,
                error: None,
            }
        })
        .collect()
}

/// The VolumeSnapshot of `planned` for `qbak` with class `class`: in the backup's namespace,
/// source `persistentVolumeClaimName`, labels naming the backup and the cluster, the ordinal
/// as an annotation. No owner reference: the QdrantBackup's `deletionPolicy` decides whether
/// the snapshot outlives it (Retain), not the garbage collector.
pub fn volume_snapshot(
    qbak: &QdrantBackup,
    cluster: &str,
    planned: &PeerVolumeSnapshot,
    class: &str,
) -> DynamicObject {
    let mut obj = DynamicObject::new(&planned.volume_snapshot_name, &volume_snapshot_resource());
    obj.metadata = ObjectMeta {
        name: Some(planned.volume_snapshot_name.clone()),
        namespace: qbak.namespace(),
        labels: Some(BTreeMap::from([
            (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
            (BACKUP_LABEL.to_string(), qbak.name_any()),
            (CLUSTER_LABEL.to_string(), cluster.to_string()),
        ])),
        annotations: Some(BTreeMap::from([(
            ORDINAL_ANNOTATION.to_string(),
            planned.ordinal.to_string(),
        )])),
        ..ObjectMeta::default()
    };
    obj.data = json!({"spec": {
        "volumeSnapshotClassName": class,
        "source": {"persistentVolumeClaimName": planned.claim_name},
    }});
    obj
}

/// `planned` updated from the live VolumeSnapshot `live` (its JSON): `status.readyToUse`,
/// `restoreSize`, `boundVolumeSnapshotContentName` and `error.message`.
pub fn observe(planned: &PeerVolumeSnapshot, live: &Value) -> PeerVolumeSnapshot {
    let status = &live["status"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    PeerVolumeSnapshot {
        ready_to_use: status["readyToUse"].as_bool().unwrap_or(false),
        restore_size: text(&status["restoreSize"]).or_else(|| planned.restore_size.clone()),
        bound_volume_snapshot_content_name: text(&status["boundVolumeSnapshotContentName"]),
        error: text(&status["error"]["message"]),
        ..planned.clone()
    }
}

/// How long to wait after the point counts before cutting the snapshots: the longest
/// `optimizer_config.flush_interval_sec` of the collections (`configs`, each a `GET
/// /collections/{c}` `config`; Qdrant's default 5 s when absent), plus one second. Qdrant
/// flushes every segment at that interval; acknowledged writes are in the WAL before that.
pub fn flush_wait<'a>(configs: impl IntoIterator<Item = &'a Value>) -> Duration {
    let longest = configs
        .into_iter()
        .map(|c| {
            c["optimizer_config"]["flush_interval_sec"]
                .as_u64()
                .unwrap_or(DEFAULT_FLUSH_INTERVAL_SECONDS)
        })
        .max()
        .unwrap_or(0);
    Duration::from_secs(longest + 1)
}

/// The claim of a restored peer: `snapshot.claim_name` in `namespace`, its size the larger of
/// `size` (the cluster's `spec.persistence.size`) and the snapshot's `restoreSize`, with
/// `accessModes`, `storageClassName` and `dataSource: {apiGroup: snapshot.storage.k8s.io,
/// kind: VolumeSnapshot, name}`. `labels` are the StatefulSet's claim labels; the
/// StatefulSet adopts a claim of the right name.
pub fn restored_claim(
    namespace: &str,
    snapshot: &PeerVolumeSnapshot,
    size: &str,
    storage_class: Option<&str>,
    access_modes: &[String],
    labels: BTreeMap<String, String>,
) -> Result<PersistentVolumeClaim, String> {
    let size = match &snapshot.restore_size {
        Some(restore) if quantity_bytes(restore)? > quantity_bytes(size)? => restore.clone(),
        _ => size.to_string(),
    };
    let mut spec = json!({
        "accessModes": access_modes,
        "resources": {"requests": {"storage": size}},
        "dataSource": {"apiGroup": GROUP, "kind": "VolumeSnapshot",
                       "name": snapshot.volume_snapshot_name},
    });
    if let Some(class) = storage_class {
        spec["storageClassName"] = json!(class);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": snapshot.claim_name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }))
    .map_err(|e| format!("claim {}: {e}", snapshot.claim_name))
}

/// Bytes of a Kubernetes quantity of storage (`10Gi`, `500M`, `1073741824`); decimal
/// fractions are rounded down. Errors: a quantity this parser does not read, naming it.
pub fn quantity_bytes(q: &str) -> Result<u128, String> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor: u128 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "P" => 1000u128.pow(5),
        "E" => 1000u128.pow(6),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return Err(format!("unsupported quantity {q:?}")),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| format!("unsupported quantity {q:?}"))?
    };
    let mut bytes = whole * factor;
    if !frac.is_empty() {
        let digits: u128 = frac
            .parse()
            .map_err(|_| format!("unsupported quantity {q:?}"))?;
        let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(u32::MAX).min(30));
        bytes += digits * factor / scale;
    }
    Ok(bytes)
}
