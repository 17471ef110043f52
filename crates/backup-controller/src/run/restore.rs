//! One restore run: for each chosen collection of a manifest, create the collection with the
//! manifest's config, recover each shard from its snapshot object, and verify the point count.
//!
//! Bytes go from S3 to Qdrant directly where possible: Qdrant is handed a presigned GET URL
//! (`PUT .../snapshots/recover`). When that is disabled (`spec.recoveryMethod: Upload`) or
//! Qdrant cannot download it (`Auto`: the store is not reachable from the Qdrant pods), the
//! controller streams the object from S3 into Qdrant's upload endpoint instead, with memory
//! bounded by the transport's buffers.

use std::{collections::BTreeMap, time::Duration};

use api_types::{
    backup::{BackupPhase, RecoveryMethod, RecoveryMethodUsed, RestoreCollectionStatus},
    collection::OPERATOR_METADATA_KEYS,
};
use futures::TryStreamExt;
use reconcile_lib::qdrant::{QdrantClient, QdrantError, SnapshotPriority, SnapshotRecover};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::{
    manifest::{Manifest, ManifestCollection, ManifestShard, SnapshotKind},
    run::backup::Source,
    s3::Bucket,
};

/// What one run restores.
#[derive(Debug, Clone)]
pub struct RestoreJob {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Full key prefix of the manifest's directory (keys in the manifest are relative to it).
    pub directory: String,
    /// `(name in the manifest, target name)`; empty = every collection under its own name.
    pub collections: Vec<(String, String)>,
    /// `spec.recoveryMethod`.
    pub method: RecoveryMethod,
    /// `spec.presignedUrlExpirySeconds`.
    pub url_expiry: Duration,
}

/// Why a run failed: a CamelCase reason and a message naming the collection and cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RestoreFailure {
    /// `CollectionNotInBackup`, `CollectionExists`, `QdrantError`, `S3Error`,
    /// `RecoveryFailed`, `PeerUnknown`, `ReplicasNotSynced`, `PointCountMismatch` or
    /// `Cancelled`.
    pub reason: &'static str,
    /// What failed.
    pub message: String,
}

fn fail(reason: &'static str, message: impl Into<String>) -> RestoreFailure {
    RestoreFailure {
        reason,
        message: message.into(),
    }
}

/// The `PUT /collections/{c}` body that recreates a collection from the `config` Qdrant
/// returned for it (`GET /collections/{c}` `result.config`): `params` fields at the top level,
/// `optimizer_config` renamed `optimizers_config`, a null `quantization_config` dropped, the
/// operator's own `metadata` keys ([`OPERATOR_METADATA_KEYS`]) left out.
pub fn create_body(config: &Value) -> Value {
    let mut body = Map::new();
    if let Some(params) = config.get("params").and_then(Value::as_object) {
        for (k, v) in params {
            if !v.is_null() {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    for (from, to) in [
        ("hnsw_config", "hnsw_config"),
        ("optimizer_config", "optimizers_config"),
        ("wal_config", "wal_config"),
        ("quantization_config", "quantization_config"),
        ("strict_mode_config", "strict_mode_config"),
        ("metadata", "metadata"),
    ] {
        if let Some(v) = config.get(from)
            && !v.is_null()
        {
            body.insert(to.to_string(), v.clone());
        }
    }
    // The operator's own keys name the object that owned the source collection: a restored
    // collection starts unowned, for a QdrantCollection of its own to adopt.
    if let Some(Value::Object(metadata)) = body.get_mut("metadata") {
        for key in OPERATOR_METADATA_KEYS {
            metadata.remove(key);
        }
        if metadata.is_empty() {
            body.remove("metadata");
        }
    }
    Value::Object(body)
}

/// Which collections of `manifest` to restore under which name: `selection` entries must
/// exist in the manifest (error names the missing one); empty = all.
pub fn select<'m>(
    manifest: &'m Manifest,
    selection: &[(String, String)],
) -> Result<Vec<(&'m ManifestCollection, String)>, RestoreFailure> {
    if selection.is_empty() {
        return Ok(manifest
            .collections
            .iter()
            .map(|c| (c, c.name.clone()))
            .collect());
    }
    selection
        .iter()
        .map(|(name, target)| {
            manifest
                .collections
                .iter()
                .find(|c| &c.name == name)
                .map(|c| (c, target.clone()))
                .ok_or_else(|| {
                    fail(
                        "CollectionNotInBackup",
                        format!(
                            "collection {name} (spec.collections) is not in the backup; it has: {}",
                            manifest
                                .collections
                                .iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })
        })
        .collect()
}

/// The initial per-collection status of a run.
pub fn initial_status(selected: &[(&ManifestCollection, String)]) -> Vec<RestoreCollectionStatus> {
    selected
        .iter()
        .map(|(c, target)| RestoreCollectionStatus {
            name: c.name.clone(),
            target_name: target.clone(),
            phase: BackupPhase::Pending,
            shards_total: u32::try_from(c.shards.len()).unwrap_or(u32::MAX),
            shards_restored: 0,
            expected_points: Some(c.points_count),
            restored_points: None,
            method: None,
            message: None,
        })
        .collect()
}

/// Runs one restore into `target`. `progress` receives the per-collection status after every
/// step. Returns the final per-collection status and the bytes restored.
///
/// Qdrant calls: `GET /collections/{t}`, `GET /cluster`, `PUT /collections/{t}` (which claims
/// the name: a collection created meanwhile fails the restore with `CollectionExists`),
/// `GET /collections/{t}/cluster`, `PUT /collections/{t}/shards/{s}/snapshots/recover` (or
/// `POST .../snapshots/upload`) on a peer holding the shard, or the `/collections/{t}/snapshots`
/// equivalents for a whole-collection snapshot, then (in cluster mode) `GET
/// /collections/{t}/cluster` on every peer until the replicas are in sync
/// ([`wait_for_replicas`]), then `POST /collections/{t}/points/count`.
/// S3 calls: presigned `GetObject` (signed locally), or `GetObject` streamed for uploads.
pub async fn run(
    job: &RestoreJob,
    target: &Source,
    bucket: &Bucket,
    progress: &(dyn Fn(&[RestoreCollectionStatus]) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<(Vec<RestoreCollectionStatus>, u64), (Vec<RestoreCollectionStatus>, RestoreFailure)> {
    let selected = match select(&job.manifest, &job.collections) {
        Ok(s) => s,
        Err(e) => return Err((vec![], e)),
    };
    let mut statuses = initial_status(&selected);
    let mut bytes = 0u64;
    let distributed = match target.endpoint.cluster_info().await {
        Ok(info) => info.is_enabled(),
        Err(e) => return Err((statuses, fail("QdrantError", format!("GET /cluster: {e}")))),
    };
    for (i, (collection, target_name)) in selected.iter().enumerate() {
        statuses[i].phase = BackupPhase::Running;
        progress(&statuses);
        let result = restore_collection(
            job,
            target,
            bucket,
            collection,
            target_name,
            distributed,
            (&mut statuses, i),
            &mut bytes,
            progress,
            cancel,
        )
        .await;
        match result {
            Ok(()) => {
                statuses[i].phase = BackupPhase::Succeeded;
                progress(&statuses);
            }
            Err(e) => {
                statuses[i].phase = BackupPhase::Failed;
                statuses[i].message = Some(e.message.clone());
                progress(&statuses);
                return Err((statuses, e));
            }
        }
    }
    Ok((statuses, bytes))
}

#[allow(clippy::too_many_arguments)]
async fn restore_collection(
    job: &RestoreJob,
    target: &Source,
    bucket: &Bucket,
    collection: &ManifestCollection,
    target_name: &str,
    distributed: bool,
    (statuses, index): (&mut [RestoreCollectionStatus], usize),
    bytes: &mut u64,
    progress: &(dyn Fn(&[RestoreCollectionStatus]) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<(), RestoreFailure> {
    let endpoint = &target.endpoint;
    let qerr = |what: String| move |e| fail("QdrantError", format!("{what}: {e}"));
    if endpoint
        .collection_info(target_name)
        .await
        .map_err(qerr(format!("GET /collections/{target_name}")))?
        .is_some()
    {
        return Err(fail(
            "CollectionExists",
            format!(
                "collection {target_name} already exists in the target; delete it or restore under another name (spec.collections[].newName)"
            ),
        ));
    }
    // The restore claims the name by creating the collection itself: Qdrant refuses (409) a
    // collection created meanwhile by someone else, where a collection snapshot recovery would
    // silently overwrite it.
    let body = create_body(&collection.config);
    endpoint
        .create_collection(target_name, &body)
        .await
        .map_err(|e| match e {
            QdrantError::Conflict { .. } => fail(
                "CollectionExists",
                format!(
                    "collection {target_name} was created in the target while the restore started; it is left as it is (restore under another name: spec.collections[].newName)"
                ),
            ),
            e => fail("QdrantError", format!("creating collection {target_name}: {e}")),
        })?;
    match collection.snapshot {
        SnapshotKind::Collection => {
            let shard = collection.shards.first().ok_or_else(|| {
                fail(
                    "CollectionNotInBackup",
                    format!("the manifest lists no snapshot for {}", collection.name),
                )
            })?;
            // Recovering a collection snapshot replaces the points of the (empty) collection
            // just created; Qdrant 1.18.3 keeps that collection's metadata (the source's, less
            // the operator's keys) rather than the snapshot's.
            let method = recover(job, bucket, endpoint, target_name, None, shard, cancel).await?;
            *bytes += shard.size_bytes;
            statuses[index].method = Some(method);
            statuses[index].shards_restored += 1;
            progress(statuses);
        }
        SnapshotKind::Shard => {
            let holders: BTreeMap<u32, Vec<u64>> = if distributed {
                let info = endpoint
                    .collection_cluster_info(target_name)
                    .await
                    .map_err(qerr(format!("GET /collections/{target_name}/cluster")))?;
                let mut holders: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
                for (shard, peer, _) in info.replicas() {
                    holders.entry(shard).or_default().push(peer);
                }
                holders
            } else {
                BTreeMap::new()
            };
            for shard in &collection.shards {
                let id = shard.shard_id.unwrap_or(0);
                let client = if distributed {
                    let peer = holders
                        .get(&id)
                        .and_then(|p| p.iter().find(|p| target.peers.contains_key(p)))
                        .ok_or_else(|| {
                            fail(
                                "PeerUnknown",
                                format!(
                                    "collection {target_name} shard {id}: no replica on a peer with a known REST URL (status.peers of the QdrantCluster)"
                                ),
                            )
                        })?;
                    target.peers.get(peer).unwrap_or(endpoint)
                } else {
                    endpoint
                };
                let method =
                    recover(job, bucket, client, target_name, Some(id), shard, cancel).await?;
                *bytes += shard.size_bytes;
                statuses[index].method = Some(method);
                statuses[index].shards_restored += 1;
                progress(statuses);
            }
        }
    }
    if distributed && collection.snapshot == SnapshotKind::Shard {
        statuses[index].message = Some(format!(
            "waiting for every replica of {target_name} to hold the restored points"
        ));
        progress(statuses);
        wait_for_replicas(target, target_name, REPLICA_SYNC_TIMEOUT, cancel).await?;
        statuses[index].message = None;
    }
    let count = endpoint
        .count_points(target_name, true)
        .await
        .map_err(qerr(format!("counting the points of {target_name}")))?;
    statuses[index].restored_points = Some(count);
    if count != collection.points_count {
        return Err(fail(
            "PointCountMismatch",
            format!(
                "collection {target_name} holds {count} points after the restore, the manifest recorded {}",
                collection.points_count
            ),
        ));
    }
    Ok(())
}

/// How long the replicas of a restored collection may take to catch up with the recovered
/// ones (Qdrant's shard transfers) before the run fails.
pub const REPLICA_SYNC_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often [`wait_for_replicas`] asks.
const REPLICA_SYNC_POLL: Duration = Duration::from_millis(500);

/// What keeps a restored collection's replicas from being in sync, or `None` when they are:
/// from the view of one peer (`all`, every replica's state and the transfers) and of every
/// holder (`local`: its own replicas with their point counts).
fn replicas_out_of_sync(
    all: &reconcile_lib::qdrant::CollectionClusterInfo,
    local: &[reconcile_lib::qdrant::CollectionClusterInfo],
) -> Option<String> {
    let not_active: Vec<String> = all
        .replicas()
        .into_iter()
        .filter(|(_, _, state)| *state != "Active")
        .map(|(shard, peer, state)| format!("shard {shard} on peer {peer} is {state}"))
        .collect();
    if !not_active.is_empty() {
        return Some(not_active.join(", "));
    }
    if !all.shard_transfers.is_empty() {
        return Some(format!(
            "{} shard transfers running",
            all.shard_transfers.len()
        ));
    }
    let mut counts: BTreeMap<u32, BTreeMap<u64, u64>> = BTreeMap::new();
    for info in local {
        for shard in &info.local_shards {
            counts
                .entry(shard.shard_id)
                .or_default()
                .insert(info.peer_id, shard.points_count);
        }
    }
    let differing: Vec<String> = counts
        .iter()
        .filter(|(_, by_peer)| {
            let mut values = by_peer.values();
            let first = values.next();
            values.any(|v| Some(v) != first)
        })
        .map(|(shard, by_peer)| format!("shard {shard} holds {by_peer:?} points (peer: count)"))
        .collect();
    (!differing.is_empty()).then(|| differing.join(", "))
}

/// Waits until the replicas of `collection` hold what was recovered: every replica `Active`,
/// no shard transfer running, and the replicas of each shard reporting the same point count.
///
/// Why: Qdrant answers a shard snapshot recovery with `priority: snapshot` once the local
/// replica is restored, and only then proposes the shard's other replicas `Dead` (a consensus
/// operation it does not wait for) and copies the recovered one to them. Until that proposal
/// is applied the other replicas are `Active` and empty, so a count right away reads them
/// (seen with Qdrant 1.18.3: 2027 of 3000 points on a 2-peer cluster). The point counts tell
/// an empty replica from a synced one however fast the transfer ran.
///
/// Qdrant calls: `GET /collections/{c}/cluster` on the endpoint and on every known peer, every
/// [`REPLICA_SYNC_POLL`]. Errors: `ReplicasNotSynced` after `timeout` (naming what is still
/// out of sync), `QdrantError`, `Cancelled`.
async fn wait_for_replicas(
    target: &Source,
    collection: &str,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), RestoreFailure> {
    let started = tokio::time::Instant::now();
    loop {
        let Some(why) = out_of_sync(target, collection).await.map_err(|e| {
            fail(
                "QdrantError",
                format!("GET /collections/{collection}/cluster: {e}"),
            )
        })?
        else {
            return Ok(());
        };
        if started.elapsed() >= timeout {
            return Err(fail(
                "ReplicasNotSynced",
                format!(
                    "collection {collection}: the replicas did not catch up with the restored shards within {}s: {why}",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(fail("Cancelled", "the restore was cancelled")),
            () = tokio::time::sleep(REPLICA_SYNC_POLL) => {}
        }
    }
}

/// One look of [`wait_for_replicas`]: what keeps the replicas of `collection` on `target` from
/// holding the same points (every replica Active, no transfer, equal counts per shard), or
/// `None` when nothing does. Qdrant calls: `GET /collections/{c}/cluster` on the endpoint and
/// on every peer of `target`.
///
/// # Errors
/// The first failed request's.
pub async fn out_of_sync(target: &Source, collection: &str) -> Result<Option<String>, QdrantError> {
    let all = target.endpoint.collection_cluster_info(collection).await?;
    let mut local = Vec::with_capacity(target.peers.len());
    for client in target.peers.values() {
        local.push(client.collection_cluster_info(collection).await?);
    }
    Ok(replicas_out_of_sync(&all, &local))
}

/// Recovers one snapshot object into `collection` (shard `shard`, or the whole collection)
/// on `client`, by presigned URL and/or streamed upload as `job.method` says; returns the
/// method that worked.
async fn recover(
    job: &RestoreJob,
    bucket: &Bucket,
    client: &QdrantClient,
    collection: &str,
    shard: Option<u32>,
    object: &ManifestShard,
    cancel: &CancellationToken,
) -> Result<RecoveryMethodUsed, RestoreFailure> {
    if cancel.is_cancelled() {
        return Err(fail("Cancelled", "the restore was cancelled"));
    }
    let key = format!("{}/{}", job.directory, object.key);
    let what = match shard {
        Some(s) => format!("collection {collection} shard {s}"),
        None => format!("collection {collection}"),
    };
    let mut url_error = None;
    if job.method != RecoveryMethod::Upload {
        let url = bucket
            .presigned_get(&key, job.url_expiry)
            .await
            .map_err(|e| fail("S3Error", e.to_string()))?;
        let mut request = SnapshotRecover::new(url);
        request.priority = Some(SnapshotPriority::Snapshot);
        request.checksum = Some(object.sha256.clone());
        let result = match shard {
            Some(s) => client.recover_shard_snapshot(collection, s, &request).await,
            None => {
                client
                    .recover_collection_snapshot(collection, &request)
                    .await
            }
        };
        match result {
            Ok(()) => return Ok(RecoveryMethodUsed::PresignedUrl),
            Err(e) if job.method == RecoveryMethod::Auto => {
                tracing::info!(%what, error = %e, "recovery from the presigned URL failed; streaming the snapshot instead");
                url_error = Some(e.to_string());
            }
            Err(e) => {
                return Err(fail(
                    "RecoveryFailed",
                    format!("{what}: recovery from the presigned URL failed: {e}"),
                ));
            }
        }
    }
    let (len, stream) = bucket
        .get_object_stream(&key)
        .await
        .map_err(|e| fail("S3Error", e.to_string()))?;
    let body = reqwest::Body::wrap_stream(stream.map_err(std::io::Error::other));
    let result = match shard {
        Some(s) => {
            client
                .upload_shard_snapshot(
                    collection,
                    s,
                    body,
                    Some(len),
                    Some(SnapshotPriority::Snapshot),
                    Some(&object.sha256),
                )
                .await
        }
        None => {
            client
                .upload_collection_snapshot(
                    collection,
                    body,
                    Some(len),
                    Some(SnapshotPriority::Snapshot),
                    Some(&object.sha256),
                )
                .await
        }
    };
    if shard.is_none() && result.is_ok() {
        // Qdrant keeps an uploaded collection snapshot in its snapshot directory under the
        // part's file name; remove it.
        let name = format!("{collection}-upload.snapshot");
        if let Err(e) = client.delete_collection_snapshot(collection, &name).await {
            tracing::warn!(snapshot = %name, error = %e, "deleting the uploaded snapshot from Qdrant failed");
        }
    }
    match result {
        Ok(_) => Ok(RecoveryMethodUsed::Upload),
        Err(e) => Err(fail(
            "RecoveryFailed",
            match url_error {
                Some(u) => format!(
                    "{what}: recovery from the presigned URL failed ({u}), and the streamed upload failed: {e}"
                ),
                None => format!("{what}: the streamed upload failed: {e}"),
            },
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(v: Value) -> reconcile_lib::qdrant::CollectionClusterInfo {
        serde_json::from_value(v).unwrap()
    }

    /// Peer 1's and peer 2's own view of shard 0 (rf 2), with these point counts and states.
    fn views(
        counts: (u64, u64),
        remote_state: &str,
    ) -> Vec<reconcile_lib::qdrant::CollectionClusterInfo> {
        vec![
            info(serde_json::json!({"peer_id": 1, "shard_count": 1,
                "local_shards": [{"shard_id": 0, "points_count": counts.0, "state": "Active"}],
                "remote_shards": [{"shard_id": 0, "peer_id": 2, "state": remote_state}]})),
            info(serde_json::json!({"peer_id": 2, "shard_count": 1,
                "local_shards": [{"shard_id": 0, "points_count": counts.1, "state": remote_state}],
                "remote_shards": [{"shard_id": 0, "peer_id": 1, "state": "Active"}]})),
        ]
    }

    #[test]
    fn replicas_are_in_sync_only_when_active_idle_and_equal() {
        // Right after the recovery: the other replica still Active, but empty.
        let v = views((1000, 0), "Active");
        let why = replicas_out_of_sync(&v[0], &v).unwrap();
        assert!(why.contains("shard 0 holds {1: 1000, 2: 0}"), "{why}");
        // Marked Dead, then being copied.
        let v = views((1000, 0), "Dead");
        assert!(
            replicas_out_of_sync(&v[0], &v)
                .unwrap()
                .contains("peer 2 is Dead")
        );
        let mut all = views((1000, 400), "Active");
        all[0].shard_transfers = vec![reconcile_lib::qdrant::ShardTransferInfo {
            shard_id: 0,
            to_shard_id: None,
            from: 1,
            to: 2,
            sync: true,
            method: None,
            comment: None,
        }];
        let local = all.clone();
        assert!(
            replicas_out_of_sync(&all[0], &local)
                .unwrap()
                .contains("1 shard transfers")
        );
        // Synced.
        let v = views((1000, 1000), "Active");
        assert_eq!(replicas_out_of_sync(&v[0], &v), None);
    }

    #[test]
    fn create_body_lifts_params_and_renames_optimizer_config() {
        let config = serde_json::json!({
            "params": {"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 2,
                       "replication_factor": 2, "write_consistency_factor": 1,
                       "on_disk_payload": true, "sparse_vectors": null},
            "hnsw_config": {"m": 16},
            "optimizer_config": {"indexing_threshold": 10000},
            "wal_config": {"wal_capacity_mb": 32},
            "quantization_config": null
        });
        let body = create_body(&config);
        assert_eq!(
            body,
            serde_json::json!({
                "vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 2,
                "replication_factor": 2, "write_consistency_factor": 1, "on_disk_payload": true,
                "hnsw_config": {"m": 16}, "optimizers_config": {"indexing_threshold": 10000},
                "wal_config": {"wal_capacity_mb": 32}
            })
        );
    }

    #[test]
    fn create_body_keeps_the_users_metadata_and_drops_the_owner_mark() {
        let owned = serde_json::json!({
            "params": {"vectors": {"size": 4, "distance": "Cosine"}},
            "metadata": {"team": "search",
                         "qdrant.operator.dev/owner": {"namespace": "a", "name": "b", "uid": "u"},
                         "qdrant.operator.dev/declared": {"payloadIndexes": [], "aliases": []}}
        });
        assert_eq!(
            create_body(&owned)["metadata"],
            serde_json::json!({"team": "search"})
        );
        let only_ours = serde_json::json!({
            "params": {"vectors": {"size": 4, "distance": "Cosine"}},
            "metadata": {"qdrant.operator.dev/owner": {"namespace": "a", "name": "b", "uid": "u"}}
        });
        assert!(create_body(&only_ours).get("metadata").is_none());
    }
}
