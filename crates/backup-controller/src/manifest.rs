//! `manifest.json`: the record that makes a set of snapshot objects a backup.
//!
//! Written last, after every snapshot is in S3 and verified; a backup without its manifest is
//! incomplete by definition. Object keys inside are relative to the manifest's own directory,
//! so a backup copied to another bucket or prefix stays restorable. Credentials never appear
//! here.
//!
//! Shape (JSON, camelCase):
//!
//! ```json
//! {"formatVersion": 1, "createdAt": "2026-11-21T02:00:13Z",
//!  "backup": {"namespace": "db", "name": "nightly-29123", "uid": "…", "attempt": 1},
//!  "source": "QdrantCluster db/demo", "qdrantVersion": "1.18.3",
//!  "collections": [{"name": "docs", "config": {…GET /collections/docs result.config…},
//!    "shardNumber": 2, "replicationFactor": 2, "pointsCount": 1000, "snapshot": "Shard",
//!    "shards": [{"shardId": 0, "peerId": 11, "key": "docs/shard-0.snapshot",
//!      "sizeBytes": 123, "sha256": "…", "pointsCount": 500}]}]}
//! ```

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a backup's directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest format this controller writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Largest manifest the restore reads, in bytes (16 MiB).
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT_VERSION`] at the time of writing.
    pub format_version: u32,
    /// When the manifest was written (RFC 3339).
    pub created_at: String,
    /// The QdrantBackup that wrote it.
    pub backup: BackupIdentity,
    /// What was backed up, for humans: `QdrantCluster <ns>/<name>` or the connection URL.
    pub source: String,
    /// Qdrant version of the source (`GET /`).
    pub qdrant_version: String,
    /// One entry per collection.
    pub collections: Vec<ManifestCollection>,
}

/// The QdrantBackup object behind a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupIdentity {
    /// Namespace of the QdrantBackup.
    pub namespace: String,
    /// Name of the QdrantBackup.
    pub name: String,
    /// UID of the QdrantBackup.
    pub uid: String,
    /// Attempt that wrote this manifest (1-based).
    pub attempt: u32,
}

/// How a collection was snapshotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// One snapshot per shard, each from one healthy replica (distributed mode).
    Shard,
    /// One snapshot of the whole collection (a single node).
    Collection,
}

/// One collection in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestCollection {
    /// Collection name at backup time.
    pub name: String,
    /// `result.config` of `GET /collections/{name}`, verbatim.
    pub config: serde_json::Value,
    /// `config.params.shard_number`.
    pub shard_number: u32,
    /// `config.params.replication_factor`.
    pub replication_factor: u32,
    /// Exact point count (`POST /collections/{name}/points/count`, `exact: true`) taken just
    /// before the snapshots; writes during the backup can make the snapshots differ.
    pub points_count: u64,
    /// Shard or whole-collection snapshots.
    pub snapshot: SnapshotKind,
    /// The snapshot objects: one per shard, or one for the collection.
    pub shards: Vec<ManifestShard>,
}

/// One snapshot object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestShard {
    /// Shard id (`None` for a whole-collection snapshot).
    pub shard_id: Option<u32>,
    /// Peer the snapshot was taken on (`None` outside distributed mode).
    pub peer_id: Option<u64>,
    /// Object key relative to the manifest's directory.
    pub key: String,
    /// Object size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the object, lowercase hex (Qdrant's snapshot checksum, re-computed while
    /// streaming).
    pub sha256: String,
    /// Points the shard held when snapshotted (Qdrant's per-shard estimate).
    pub points_count: u64,
}

impl ManifestCollection {
    /// `(shard_number, replication_factor)` read from a collection config
    /// (`params.shard_number`, `params.replication_factor`; 1 when absent).
    pub fn layout(config: &serde_json::Value) -> (u32, u32) {
        let read = |k: &str| {
            config["params"][k]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(1)
        };
        (read("shard_number"), read("replication_factor"))
    }
}

/// The object key of snapshot `shard` of `collection`, relative to the backup directory:
/// `<collection>/shard-<id>.snapshot`, or `<collection>/collection.snapshot`.
pub fn snapshot_key(collection: &str, shard: Option<u32>) -> String {
    match shard {
        Some(id) => format!("{collection}/shard-{id}.snapshot"),
        None => format!("{collection}/collection.snapshot"),
    }
}

/// Parses a manifest. Errors name what is wrong: not JSON, or a newer format.
pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
    let m: Manifest =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest.json is not valid: {e}"))?;
    if m.format_version > FORMAT_VERSION {
        return Err(format!(
            "manifest.json has format version {}, this controller reads up to {FORMAT_VERSION}",
            m.format_version
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_reads_params_with_defaults() {
        let config = serde_json::json!({"params": {"shard_number": 3, "replication_factor": 2}});
        assert_eq!(ManifestCollection::layout(&config), (3, 2));
        assert_eq!(ManifestCollection::layout(&serde_json::json!({})), (1, 1));
    }

    #[test]
    fn keys_are_relative_and_distinct() {
        assert_eq!(snapshot_key("docs", Some(2)), "docs/shard-2.snapshot");
        assert_eq!(snapshot_key("docs", None), "docs/collection.snapshot");
    }

    #[test]
    fn parse_refuses_newer_formats_and_garbage() {
        let mut m = Manifest {
            format_version: FORMAT_VERSION,
            created_at: "2026-01-01T00:00:00Z".into(),
            backup: BackupIdentity {
                namespace: "ns".into(),
                name: "b".into(),
                uid: "u".into(),
                attempt: 1,
            },
            source: "s".into(),
            qdrant_version: "1.18.3".into(),
            collections: vec![],
        };
        let ok = serde_json::to_vec(&m).unwrap_or_default();
        assert_eq!(parse(&ok), Ok(m.clone()));
        m.format_version = FORMAT_VERSION + 1;
        let newer = serde_json::to_vec(&m).unwrap_or_default();
        assert!(matches!(parse(&newer), Err(e) if e.contains("format version 2")));
        assert!(matches!(parse(b"{"), Err(e) if e.contains("not valid")));
    }
}
