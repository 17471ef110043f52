//! One backup run: snapshot each shard on one healthy replica (or the whole collection on a
//! single node), stream each snapshot into S3, verify it, delete it from Qdrant, and write
//! `manifest.json` last.
//!
//! Pure planning ([`plan_shards`]) is separate from the calls ([`run`]). On any failure the
//! run removes what it wrote under its directory (aborting multipart uploads and deleting
//! finished objects), so a failed backup leaves nothing partial in S3; the Qdrant snapshot it
//! took is deleted in every case.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use api_types::backup::BackupArtifact;
use bytes::Bytes;
use reconcile_lib::qdrant::{QdrantClient, QdrantError, SnapshotDescription};
use tokio_util::sync::CancellationToken;

use crate::{
    manifest::{
        self, BackupIdentity, MANIFEST_FILE, Manifest, ManifestCollection, ManifestShard,
        SnapshotKind,
    },
    s3::{Bucket, S3Error},
    upload::{UploadError, UploadSettings, Uploaded, upload_stream},
};

/// What one run backs up, and where to.
#[derive(Debug, Clone)]
pub struct BackupJob {
    /// The QdrantBackup (namespace, name, uid, attempt), recorded in the manifest.
    pub identity: BackupIdentity,
    /// `spec.collections`; empty = all collections.
    pub collections: Vec<String>,
    /// For humans, recorded in the manifest: `QdrantCluster ns/name` or the URL.
    pub source: String,
    /// Full key prefix of this attempt's directory in the bucket (no trailing `/`).
    pub directory: String,
    /// Part size and concurrency.
    pub upload: UploadSettings,
}

/// The Qdrant side: the main endpoint and, in distributed mode, one client per peer id.
pub struct Source {
    /// The cluster's client Service or the connection URL.
    pub endpoint: QdrantClient,
    /// Clients for single peers (shard snapshots must be taken on a peer holding the shard).
    pub peers: BTreeMap<u64, QdrantClient>,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupOutcome {
    /// The manifest that was written.
    pub manifest: Manifest,
    /// Full key of the manifest.
    pub manifest_key: String,
    /// One per object, in upload order.
    pub artifacts: Vec<BackupArtifact>,
}

/// Why a run failed: a CamelCase reason for the condition and a message naming the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackupFailure {
    /// `CollectionNotFound`, `NoActiveReplica`, `PeerUnknown`, `QdrantError`, `S3Error`,
    /// `SnapshotDownloadFailed`, `ChecksumMismatch` or `Cancelled`.
    pub reason: &'static str,
    /// What failed, naming the collection, shard, peer or object.
    pub message: String,
    /// Whether a new attempt may succeed: Qdrant or S3 unreachable, timing out or answering
    /// 5xx/429 (after each request's own retries), a download cut off, a size or checksum
    /// mismatch. False for what needs the user (a missing collection, refused credentials).
    pub transient: bool,
}

/// A failure that another attempt cannot fix.
fn fail(reason: &'static str, message: impl Into<String>) -> BackupFailure {
    BackupFailure {
        reason,
        message: message.into(),
        transient: false,
    }
}

/// A failure that another attempt may not meet.
fn transient(reason: &'static str, message: impl Into<String>) -> BackupFailure {
    BackupFailure {
        transient: true,
        ..fail(reason, message)
    }
}

fn qdrant(what: &str, e: QdrantError) -> BackupFailure {
    BackupFailure {
        transient: e.is_transient(),
        ..fail("QdrantError", format!("{what}: {e}"))
    }
}

fn s3(e: &S3Error, message: String) -> BackupFailure {
    BackupFailure {
        transient: e.is_transient(),
        ..fail("S3Error", message)
    }
}

/// For each shard, the peer to snapshot it on: an `Active` replica, spreading the work over
/// peers (fewest shards chosen so far, then lowest peer id). `replicas` is
/// `(shard, peer, state)` as in [`reconcile_lib::qdrant::CollectionClusterInfo::replicas`].
///
/// Errors: the shard ids with no `Active` replica.
pub fn plan_shards(replicas: &[(u32, u64, &str)]) -> Result<Vec<(u32, u64)>, Vec<u32>> {
    let shards: BTreeSet<u32> = replicas.iter().map(|r| r.0).collect();
    let mut load: BTreeMap<u64, usize> = BTreeMap::new();
    let mut plan = vec![];
    let mut missing = vec![];
    for shard in shards {
        let candidates = replicas
            .iter()
            .filter(|(s, _, state)| *s == shard && *state == "Active")
            .map(|(_, p, _)| *p);
        match candidates.min_by_key(|p| (load.get(p).copied().unwrap_or(0), *p)) {
            Some(peer) => {
                *load.entry(peer).or_default() += 1;
                plan.push((shard, peer));
            }
            None => missing.push(shard),
        }
    }
    if missing.is_empty() {
        Ok(plan)
    } else {
        Err(missing)
    }
}

/// Runs one backup (see the module docs). `progress` is called after each object lands.
///
/// Qdrant calls: `GET /`, `GET /collections`, `GET /collections/{c}`, `GET /cluster`,
/// `POST /collections/{c}/points/count`, `GET /collections/{c}/cluster`, then per shard on
/// the chosen peer `POST /collections/{c}/shards/{s}/snapshots`, `GET` (download) and
/// `DELETE` of it (or the `/collections/{c}/snapshots` equivalents on a single node).
/// S3 calls: see [`upload_stream`], then `PutObject` of the manifest.
pub async fn run(
    job: &BackupJob,
    source: &Source,
    bucket: &Bucket,
    progress: &(dyn Fn(&BackupArtifact) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<BackupOutcome, BackupFailure> {
    match run_inner(job, source, bucket, progress, cancel).await {
        Ok(outcome) => Ok(outcome),
        Err(failure) => {
            if let Err(e) = bucket.delete_prefix(&format!("{}/", job.directory)).await {
                tracing::warn!(directory = %job.directory, error = %e, "removing the failed backup's objects failed");
            }
            Err(failure)
        }
    }
}

async fn run_inner(
    job: &BackupJob,
    source: &Source,
    bucket: &Bucket,
    progress: &(dyn Fn(&BackupArtifact) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<BackupOutcome, BackupFailure> {
    let endpoint = &source.endpoint;
    let version = endpoint
        .version()
        .await
        .map_err(|e| qdrant("GET / (version)", e))?
        .version;
    let names = if job.collections.is_empty() {
        endpoint
            .collections()
            .await
            .map_err(|e| qdrant("listing collections", e))?
    } else {
        job.collections.clone()
    };
    let distributed = endpoint
        .cluster_info()
        .await
        .map_err(|e| qdrant("GET /cluster", e))?
        .is_enabled();

    let mut collections = vec![];
    let mut artifacts = vec![];
    for name in &names {
        let Some(info) = endpoint
            .collection_info(name)
            .await
            .map_err(|e| qdrant(&format!("GET /collections/{name}"), e))?
        else {
            return Err(fail(
                "CollectionNotFound",
                format!("collection {name} (spec.collections) does not exist in Qdrant"),
            ));
        };
        let points_count = endpoint
            .count_points(name, true)
            .await
            .map_err(|e| qdrant(&format!("counting the points of {name}"), e))?;
        let (shard_number, replication_factor) = ManifestCollection::layout(&info.config);
        let mut shards = vec![];
        if distributed {
            let cluster = endpoint
                .collection_cluster_info(name)
                .await
                .map_err(|e| qdrant(&format!("GET /collections/{name}/cluster"), e))?;
            let plan = plan_shards(&cluster.replicas()).map_err(|missing| {
                fail(
                    "NoActiveReplica",
                    format!("collection {name}: shards {missing:?} have no Active replica"),
                )
            })?;
            for (shard, peer) in plan {
                let client = source.peers.get(&peer).ok_or_else(|| {
                    fail(
                        "PeerUnknown",
                        format!(
                            "collection {name} shard {shard}: no REST URL for peer {peer} (status.peers of the QdrantCluster)"
                        ),
                    )
                })?;
                let (entry, artifact) =
                    snapshot_one(job, bucket, client, name, Some((shard, peer)), cancel).await?;
                progress(&artifact);
                shards.push(entry);
                artifacts.push(artifact);
            }
        } else {
            let (mut entry, artifact) =
                snapshot_one(job, bucket, endpoint, name, None, cancel).await?;
            entry.points_count = points_count;
            progress(&artifact);
            shards.push(entry);
            artifacts.push(artifact);
        }
        collections.push(ManifestCollection {
            name: name.clone(),
            config: info.config,
            shard_number,
            replication_factor,
            points_count,
            snapshot: if distributed {
                SnapshotKind::Shard
            } else {
                SnapshotKind::Collection
            },
            shards,
        });
    }

    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        created_at: jiff::Timestamp::now().to_string(),
        backup: job.identity.clone(),
        source: job.source.clone(),
        qdrant_version: version,
        collections,
    };
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| fail("S3Error", format!("encoding the manifest: {e}")))?;
    let manifest_key = format!("{}/{MANIFEST_FILE}", job.directory);
    if cancel.is_cancelled() {
        return Err(fail("Cancelled", "the backup was cancelled"));
    }
    bucket
        .put_object(&manifest_key, Bytes::from(body), "application/json")
        .await
        .map_err(|e| s3(&e, e.to_string()))?;
    Ok(BackupOutcome {
        manifest,
        manifest_key,
        artifacts,
    })
}

/// Snapshots one shard on `client` (or the whole collection when `shard` is `None`), streams
/// it to S3, deletes the snapshot from Qdrant, and checks size and SHA-256 against Qdrant's
/// description.
async fn snapshot_one(
    job: &BackupJob,
    bucket: &Bucket,
    client: &QdrantClient,
    collection: &str,
    shard: Option<(u32, u64)>,
    cancel: &CancellationToken,
) -> Result<(ManifestShard, BackupArtifact), BackupFailure> {
    let started = Instant::now();
    let what = match shard {
        Some((s, p)) => format!("collection {collection} shard {s} on peer {p}"),
        None => format!("collection {collection}"),
    };
    let shard_id = shard.map(|s| s.0);
    let points_count = match shard {
        Some((s, _)) => client
            .collection_cluster_info(collection)
            .await
            .map_err(|e| qdrant(&what, e))?
            .local_shards
            .iter()
            .find(|l| l.shard_id == s)
            .map(|l| l.points_count)
            .unwrap_or(0),
        None => 0,
    };
    let desc: SnapshotDescription = match shard_id {
        Some(s) => client.create_shard_snapshot(collection, s).await,
        None => client.create_collection_snapshot(collection).await,
    }
    .map_err(|e| qdrant(&format!("snapshot of {what}"), e))?;

    let relative = manifest::snapshot_key(collection, shard_id);
    let key = format!("{}/{relative}", job.directory);
    let uploaded = stream_snapshot(
        bucket, client, collection, shard_id, &desc, &key, job.upload, cancel, &what,
    )
    .await;
    // The snapshot file on the Qdrant node is removed whatever happened to the upload.
    let deleted = match shard_id {
        Some(s) => {
            client
                .delete_shard_snapshot(collection, s, &desc.name)
                .await
        }
        None => {
            client
                .delete_collection_snapshot(collection, &desc.name)
                .await
        }
    };
    if let Err(e) = deleted {
        tracing::warn!(snapshot = %desc.name, error = %e, "deleting the snapshot from Qdrant failed");
    }
    let uploaded = uploaded?;
    if uploaded.size != desc.size {
        return Err(transient(
            "ChecksumMismatch",
            format!(
                "{what}: Qdrant reported a {} byte snapshot, {} bytes were uploaded",
                desc.size, uploaded.size
            ),
        ));
    }
    if let Some(expected) = &desc.checksum
        && !expected.eq_ignore_ascii_case(&uploaded.sha256)
    {
        return Err(transient(
            "ChecksumMismatch",
            format!(
                "{what}: SHA-256 of the uploaded bytes is {}, Qdrant reported {expected}",
                uploaded.sha256
            ),
        ));
    }
    let duration_millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok((
        ManifestShard {
            shard_id,
            peer_id: shard.map(|s| s.1),
            key: relative,
            size_bytes: uploaded.size,
            sha256: uploaded.sha256.clone(),
            points_count,
        },
        BackupArtifact {
            collection: collection.to_string(),
            shard_id,
            peer_id: shard.map(|s| s.1),
            key: uploaded.key,
            size_bytes: uploaded.size,
            sha256: uploaded.sha256,
            duration_millis,
        },
    ))
}

/// The streaming step of a backup run: downloads the snapshot `desc` that Qdrant holds on
/// `client` (a shard snapshot of `shard_id`, or a collection snapshot when `None`) and streams
/// it into the S3 object `key` by multipart upload, hashing it on the way; memory stays about
/// `part_size × (concurrency + 1)` whatever the snapshot size. The snapshot stays in Qdrant
/// and nothing is compared with `desc` but the expected length (when the download has no
/// `Content-Length`); `what` names the snapshot in error messages.
///
/// Errors: `SnapshotDownloadFailed`, `S3Error` or `Cancelled`; the multipart upload has then
/// been aborted.
#[allow(clippy::too_many_arguments)]
pub async fn stream_snapshot(
    bucket: &Bucket,
    client: &QdrantClient,
    collection: &str,
    shard_id: Option<u32>,
    desc: &SnapshotDescription,
    key: &str,
    settings: UploadSettings,
    cancel: &CancellationToken,
    what: &str,
) -> Result<Uploaded, BackupFailure> {
    let download = match shard_id {
        Some(s) => {
            client
                .download_shard_snapshot(collection, s, &desc.name)
                .await
        }
        None => {
            client
                .download_collection_snapshot(collection, &desc.name)
                .await
        }
    }
    .map_err(|e| BackupFailure {
        transient: e.is_transient(),
        ..fail(
            "SnapshotDownloadFailed",
            format!("downloading the snapshot of {what}: {e}"),
        )
    })?;
    let expected = download.content_length.or(Some(desc.size));
    upload_stream(bucket, key, download.stream, expected, settings, cancel)
        .await
        .map_err(|e| match e {
            UploadError::Source { .. } => transient(
                "SnapshotDownloadFailed",
                format!("downloading the snapshot of {what}: {e}"),
            ),
            UploadError::Cancelled => fail("Cancelled", "the backup was cancelled"),
            UploadError::S3(s3_error) => s3(
                &s3_error,
                format!("uploading the snapshot of {what}: {s3_error}"),
            ),
            UploadError::SizeMismatch { .. } => {
                transient("S3Error", format!("uploading the snapshot of {what}: {e}"))
            }
            e => fail("S3Error", format!("uploading the snapshot of {what}: {e}")),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_spreads_over_active_replicas() {
        let replicas = [
            (0, 1, "Active"),
            (0, 2, "Active"),
            (1, 1, "Active"),
            (1, 2, "Active"),
            (2, 2, "Dead"),
            (2, 3, "Active"),
        ];
        assert_eq!(plan_shards(&replicas), Ok(vec![(0, 1), (1, 2), (2, 3)]));
    }

    #[test]
    fn plan_skips_non_active_and_reports_shards_without_one() {
        let replicas = [
            (0, 1, "Partial"),
            (0, 2, "Active"),
            (1, 1, "Dead"),
            (1, 3, "Recovery"),
            (2, 3, "Initializing"),
        ];
        assert_eq!(plan_shards(&replicas), Err(vec![1, 2]));
    }
}
