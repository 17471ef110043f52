//! The backup kinds, reconciled by the backup-controller:
//!
//! - `QdrantBackup` (short name `qbak`): one backup run. Snapshots of the listed collections
//!   (per shard, from one healthy replica each) are streamed into S3 with a `manifest.json`
//!   that describes them. The spec is immutable: a QdrantBackup is the record of one run.
//! - `QdrantBackupSchedule` (short name `qbs`): a cron schedule (run by a Kubernetes CronJob
//!   whose job creates a QdrantBackup from `backupTemplate`) and retention of old backups.
//! - `QdrantRestore` (short name `qrs`): recovers collections from a QdrantBackup or from a
//!   manifest in S3 into a QdrantCluster or any reachable Qdrant, optionally renamed.
//!
//! The storage types ([`S3Storage`], [`BackupStorage`], [`UploadOptions`]) are shared by the
//! three kinds; the target (`cluster` or `connection`) reuses the QdrantCollection's
//! [`ClusterRef`] and [`Connection`].

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    collection::{ClusterRef, Connection},
    conditions::Condition,
};

/// Region used when `storage.s3.region` is not set.
pub const DEFAULT_S3_REGION: &str = "us-east-1";
/// Default key of the access key id in `credentialsSecretRef`.
pub const DEFAULT_ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
/// Default key of the secret access key in `credentialsSecretRef`.
pub const DEFAULT_SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Default multipart upload part size, MiB.
pub const DEFAULT_PART_SIZE_MIB: u32 = 8;
/// Smallest part size S3 accepts for every part but the last, MiB.
pub const MIN_PART_SIZE_MIB: u32 = 5;
/// Largest part size the operator allows, MiB (memory grows with it).
pub const MAX_PART_SIZE_MIB: u32 = 512;
/// Default number of parts uploaded at once.
pub const DEFAULT_UPLOAD_CONCURRENCY: u32 = 3;
/// Largest number of parts uploaded at once.
pub const MAX_UPLOAD_CONCURRENCY: u32 = 16;
/// Default lifetime of a presigned URL handed to Qdrant, seconds.
pub const DEFAULT_PRESIGNED_URL_EXPIRY_SECONDS: u32 = 3600;
/// Shortest presigned URL lifetime allowed, seconds.
pub const MIN_PRESIGNED_URL_EXPIRY_SECONDS: u32 = 60;
/// Longest presigned URL lifetime S3 allows (7 days), seconds.
pub const MAX_PRESIGNED_URL_EXPIRY_SECONDS: u32 = 604_800;
/// Longest key prefix allowed in `storage.s3.prefix` (S3 keys are at most 1024 bytes; the
/// operator appends the backup's own path).
pub const MAX_PREFIX_LEN: usize = 512;
/// The `@` macros a Kubernetes CronJob accepts in `schedule`.
pub const CRON_MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

// ---------------------------------------------------------------------------------------------
// Shared storage types
// ---------------------------------------------------------------------------------------------

/// Where backups are stored. Only S3 (and S3-compatible stores) for now; the wrapper leaves
/// room for other stores.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorage {
    /// An S3 bucket (AWS S3 or an S3-compatible store such as MinIO, Ceph RGW, Cloudflare R2).
    pub s3: S3Storage,
}

/// An S3 bucket and key prefix, with the credentials to reach it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Bucket name, following S3's naming rules: 3-63 characters of lowercase letters, digits,
    /// dots and hyphens, starting and ending with a letter or digit, no `..`, not formatted as
    /// an IPv4 address, no `xn--`, `sthree-` or `amzn-s3-demo-` prefix and no `-s3alias`,
    /// `--ol-s3`, `.mrap`, `--x-s3` or `--table-s3` suffix.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    #[x_kube(
        validation = kube::core::Rule::new("!self.contains('..')").message("bucket must not contain two adjacent periods (..)"),
        validation = kube::core::Rule::new("!self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')").message("bucket must not be formatted as an IP address"),
        validation = kube::core::Rule::new("!(self.startsWith('xn--') || self.startsWith('sthree-') || self.startsWith('amzn-s3-demo-'))").message("bucket must not start with xn--, sthree- or amzn-s3-demo- (reserved by S3)"),
        validation = kube::core::Rule::new("!(self.endsWith('-s3alias') || self.endsWith('--ol-s3') || self.endsWith('.mrap') || self.endsWith('--x-s3') || self.endsWith('--table-s3'))").message("bucket must not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3 (reserved by S3)")
    )]
    pub bucket: String,
    /// Key prefix under which the operator writes, e.g. `qdrant/prod`. Each backup goes to
    /// `<prefix>/<namespace>/<backup name>/`. No leading `/` and no `..` segment; empty or
    /// unset writes at the top of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(
        validation = kube::core::Rule::new("!self.startsWith('/')").message("prefix must not start with /"),
        validation = kube::core::Rule::new("!self.matches('(^|/)[.][.](/|$)')").message("prefix must not contain a .. segment")
    )]
    pub prefix: Option<String>,
    /// Region of the bucket (for S3-compatible stores, whatever region they expect; most
    /// accept the default).
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Endpoint URL of an S3-compatible store, e.g. `http://minio.minio.svc:9000` or
    /// `https://<account>.r2.cloudflarestorage.com`. Unset: AWS S3 for the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Address the bucket in the path (`https://endpoint/bucket/key`) instead of the host
    /// (`https://bucket.endpoint/key`). Most S3-compatible stores (MinIO) need true.
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret in this namespace holding the access keys. When unset, the controller uses the
    /// ambient AWS credentials of its own pod (environment, web identity / IRSA, EKS Pod
    /// Identity, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<S3CredentialsSecretRef>,
}

fn default_region() -> String {
    DEFAULT_S3_REGION.into()
}

/// A Secret holding S3 access keys, and the keys within it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsSecretRef {
    /// Name of the Secret, in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the Secret holding the access key id.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_id_key: String,
    /// Key of the Secret holding the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_access_key_key: String,
    /// Key of the Secret holding a session token (temporary credentials). Unset: none is
    /// sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub session_token_key: Option<String>,
}

fn default_access_key_id_key() -> String {
    DEFAULT_ACCESS_KEY_ID_KEY.into()
}
fn default_secret_access_key_key() -> String {
    DEFAULT_SECRET_ACCESS_KEY_KEY.into()
}

/// How snapshots are uploaded: an S3 multipart upload, streamed from Qdrant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadOptions {
    /// Size of each multipart upload part in MiB (5-512, default 8). The controller holds
    /// about partSizeMiB x (concurrency + 1) of snapshot data in memory per upload, whatever
    /// the snapshot size. S3 allows 10,000 parts: for a snapshot larger than
    /// partSizeMiB x 10,000 (about 78 GiB at 8) the part size grows to fit, since Qdrant
    /// announces the snapshot's size.
    #[serde(rename = "partSizeMiB", default = "default_part_size_mib")]
    #[schemars(range(min = 5, max = 512))]
    pub part_size_mib: u32,
    /// Parts uploaded at once (1-16). More is faster on high-latency links and costs
    /// partSizeMiB of memory each.
    #[serde(default = "default_upload_concurrency")]
    #[schemars(range(min = 1, max = 16))]
    pub concurrency: u32,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_size_mib: DEFAULT_PART_SIZE_MIB,
            concurrency: DEFAULT_UPLOAD_CONCURRENCY,
        }
    }
}

impl UploadOptions {
    /// Part size in bytes.
    pub fn part_size_bytes(&self) -> u64 {
        u64::from(self.part_size_mib) * 1024 * 1024
    }
}

fn default_part_size_mib() -> u32 {
    DEFAULT_PART_SIZE_MIB
}
fn default_upload_concurrency() -> u32 {
    DEFAULT_UPLOAD_CONCURRENCY
}

/// Phase of a QdrantBackup, of a QdrantRestore and of each collection of a restore, for
/// humans; automation reads the conditions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum BackupPhase {
    /// Accepted, not started yet (waiting for the cluster to be Ready, or for a Secret).
    #[default]
    Pending,
    /// Snapshots are being taken and uploaded (or downloaded and recovered).
    Running,
    /// Finished: every artifact is in S3 and the manifest is written (or every collection is
    /// recovered).
    Succeeded,
    /// Gave up; see `message` and the conditions. Nothing partial is left in S3.
    Failed,
}

impl BackupPhase {
    /// True for Succeeded and Failed: nothing more will happen.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Phase of a QdrantRestore (the same values as a backup's).
pub type RestorePhase = BackupPhase;

/// What deleting a QdrantBackup does to its objects in S3.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum BackupDeletionPolicy {
    /// Keep the snapshots and the manifest in S3; they can still be restored from with an
    /// `s3` source.
    #[default]
    Retain,
    /// Delete the snapshots and the manifest from S3 with the QdrantBackup (also when
    /// retention of a QdrantBackupSchedule deletes it).
    Delete,
}

// ---------------------------------------------------------------------------------------------
// QdrantBackup
// ---------------------------------------------------------------------------------------------

/// Desired backup: what to back up and where to. Immutable once created.
// kube-derive takes one `printcolumn(...)` per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "qdrant.operator.dev",
    version = "v1alpha1",
    kind = "QdrantBackup",
    namespaced,
    status = "QdrantBackupStatus",
    shortname = "qbak",
    category = "qdrant",
    derive = "PartialEq",
    doc = "One backup of Qdrant collections to S3 (snapshots per shard plus a manifest), taken by the qdrant-operator backup-controller. The spec is immutable: the object is the record of one run.",
    validation = kube::core::Rule::new("self.spec == oldSelf.spec").message("spec is immutable: a QdrantBackup is the record of one backup run; create a new QdrantBackup to back up again").field_path(".spec"),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded or Failed"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.cluster.name",
        description = "QdrantCluster backed up"
    ),
    printcolumn(
        name = "Size",
        type_ = "string",
        json_path = ".status.size",
        description = "Total size of the snapshots in S3"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.cluster) != has(self.connection)").message("set exactly one of cluster or connection"),
    validation = kube::core::Rule::new("(has(self.method) && self.method == 'VolumeSnapshot') || has(self.storage)").message("storage is required when method is Snapshot (the default)"),
    validation = kube::core::Rule::new("!has(self.method) || self.method != 'VolumeSnapshot' || has(self.volumeSnapshot)").message("volumeSnapshot (with className) is required when method is VolumeSnapshot"),
    validation = kube::core::Rule::new("!has(self.method) || self.method != 'VolumeSnapshot' || has(self.cluster)").message("method VolumeSnapshot needs cluster: only the volumes of a QdrantCluster managed by the operator can be snapshotted")
)]
pub struct QdrantBackupSpec {
    /// A QdrantCluster in this namespace, managed by the operator. The backup waits until its
    /// Ready condition is True (and it is not scaling or upgrading) and reads the endpoint and
    /// API key from its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
    /// Any reachable Qdrant (installed with Helm, Qdrant Cloud, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// Names of the collections to back up. Empty: every collection that exists when the
    /// backup starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 255)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub collections: Vec<String>,
    /// How the backup is taken. Snapshot (default): Qdrant snapshots of every shard streamed
    /// to S3 (`storage` required). VolumeSnapshot: one Kubernetes VolumeSnapshot
    /// (`snapshot.storage.k8s.io/v1`) of each peer's data volume, taken by the cluster's CSI
    /// driver (`volumeSnapshot` and `cluster` required; `storage` unused).
    #[serde(default)]
    pub method: BackupMethod,
    /// The VolumeSnapshotClass of method VolumeSnapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot: Option<VolumeSnapshotOptions>,
    /// Where the snapshots and the manifest go (method Snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<BackupStorage>,
    /// Multipart upload settings; defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadOptions>,
    /// What deleting this object does to its objects in S3: Retain (default) keeps them;
    /// Delete deletes the snapshots and the manifest. With method VolumeSnapshot: Retain keeps
    /// the VolumeSnapshot objects, Delete deletes them (what happens to the storage snapshot
    /// behind each is the VolumeSnapshotClass's own deletionPolicy).
    #[serde(default)]
    pub deletion_policy: BackupDeletionPolicy,
}

/// How a QdrantBackup is taken.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum BackupMethod {
    /// Qdrant snapshots per shard, streamed to S3 with a manifest.
    #[default]
    Snapshot,
    /// One CSI VolumeSnapshot of each peer's data volume, cut after every collection's
    /// segments were flushed (crash-consistent per volume, thanks to Qdrant's WAL).
    VolumeSnapshot,
}

/// Settings of method VolumeSnapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotOptions {
    /// Name of the VolumeSnapshotClass (`snapshot.storage.k8s.io/v1`, cluster-scoped) whose
    /// CSI driver takes the snapshots; it must serve the StorageClass of the cluster's volumes.
    /// The backup waits (phase Pending, reason VolumeSnapshotClassNotFound) while it is missing.
    #[schemars(length(min = 1, max = 253))]
    pub class_name: String,
}

impl QdrantBackupSpec {
    /// The S3 storage (`spec.storage.s3`), when set.
    pub fn s3(&self) -> Option<&S3Storage> {
        self.storage.as_ref().map(|s| &s.s3)
    }

    /// The upload settings, with defaults when unset.
    pub fn upload_options(&self) -> UploadOptions {
        self.upload.clone().unwrap_or_default()
    }
}

/// One object of a backup in S3: a snapshot of one shard (or of a whole collection).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupArtifact {
    /// Collection the snapshot belongs to.
    pub collection: String,
    /// Shard id, for a shard snapshot; unset for a whole-collection snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<u32>,
    /// Qdrant peer the snapshot was taken on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<u64>,
    /// Object key in the bucket.
    pub key: String,
    /// Size of the object in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the object, lowercase hex.
    pub sha256: String,
    /// Time from requesting the snapshot to the completed upload, milliseconds.
    pub duration_millis: u64,
}

/// The VolumeSnapshot of one peer's data volume (method VolumeSnapshot).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerVolumeSnapshot {
    /// Ordinal of the pod (and of the StatefulSet's claim) in the cluster.
    pub ordinal: u32,
    /// Qdrant peer id of the pod, from the QdrantCluster's `status.peers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<u64>,
    /// The PersistentVolumeClaim snapshotted: `<claim template>-<cluster>-<ordinal>`.
    pub claim_name: String,
    /// Name of the VolumeSnapshot (same namespace).
    pub volume_snapshot_name: String,
    /// The snapshot's `status.readyToUse`: the storage system has cut it and a claim can be
    /// restored from it.
    #[serde(default)]
    pub ready_to_use: bool,
    /// The snapshot's `status.restoreSize` (the smallest claim it can be restored into).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<String>,
    /// The VolumeSnapshotContent bound to it (`status.boundVolumeSnapshotContentName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_volume_snapshot_content_name: Option<String>,
    /// The snapshot's `status.error.message`, when the CSI driver reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The exact number of points of one collection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionPoints {
    /// Collection name.
    pub name: String,
    /// Exact point count (`POST /collections/{name}/points/count` with `exact: true`).
    pub points: u64,
}

/// An attempt of a backup that ended without success and was retried (or was the last).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedAttempt {
    /// The attempt number (1-based).
    pub attempt: u32,
    /// CamelCase reason, e.g. `S3Error`, `QdrantError`, `SnapshotDownloadFailed`,
    /// `Interrupted`.
    pub reason: String,
    /// What failed, naming the collection, shard, peer or object.
    pub message: String,
    /// When the attempt ended (RFC 3339).
    pub time: String,
}

/// Observed state of a backup. Written by the backup-controller only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct QdrantBackupStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, Succeeded or Failed.
    #[serde(default)]
    pub phase: BackupPhase,
    /// Attempts started so far. A transient failure (Qdrant or S3 unreachable, timing out or
    /// answering 5xx after each request's own retries; a snapshot download cut off; a size or
    /// checksum mismatch) or an interruption (the controller restarted or lost leadership)
    /// starts the next attempt in a new directory, up to 3 attempts in all; each earlier
    /// attempt is listed in `failedAttempts`.
    #[serde(default)]
    pub attempt: u32,
    /// The attempts that did not finish, oldest first: why each ended and when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<FailedAttempt>,
    /// When the current attempt started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the backup succeeded or failed for good (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Qdrant version the snapshots were taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdrant_version: Option<String>,
    /// Where this backup's objects are: `s3://<bucket>/<key prefix>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Object key of `manifest.json`. Set only once the manifest is written, i.e. when the
    /// backup is complete and restorable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    /// Names of the collections backed up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// Objects written to S3, one per shard snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<BackupArtifact>,
    /// Method VolumeSnapshot: the VolumeSnapshot of each peer's data volume, by pod ordinal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_snapshots: Vec<PeerVolumeSnapshot>,
    /// Method VolumeSnapshot: the exact point count of each collection, taken just before the
    /// segments were flushed and the snapshots cut (a restore compares against it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub point_counts: Vec<CollectionPoints>,
    /// Method VolumeSnapshot: when the snapshots may be cut (RFC 3339): the point counts were
    /// taken, and every collection's `flush_interval_sec` (Qdrant flushes its segments at that
    /// interval) plus one second must pass first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flushed_after: Option<String>,
    /// Total size of the artifacts in bytes.
    #[serde(default)]
    pub total_bytes: u64,
    /// Total size, human-readable (e.g. `1.5 GiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Last progress or error message, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Conditions: Ready (True once Succeeded), Paused.
    #[serde(default)]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}

// ---------------------------------------------------------------------------------------------
// QdrantBackupSchedule
// ---------------------------------------------------------------------------------------------

/// Desired schedule: when to back up, what, and how many backups to keep.
// kube-derive takes one `printcolumn(...)` per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "qdrant.operator.dev",
    version = "v1alpha1",
    kind = "QdrantBackupSchedule",
    namespaced,
    status = "QdrantBackupScheduleStatus",
    shortname = "qbs",
    category = "qdrant",
    derive = "PartialEq",
    doc = "Scheduled backups of Qdrant collections to S3: a Kubernetes CronJob creates a QdrantBackup from backupTemplate at each scheduled time, and the qdrant-operator backup-controller enforces retention.",
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".spec.schedule",
        description = "Cron schedule"
    ),
    printcolumn(
        name = "Suspend",
        type_ = "boolean",
        json_path = ".spec.suspend",
        description = "Whether new backups are suspended"
    ),
    printcolumn(
        name = "Last Backup",
        type_ = "string",
        json_path = ".status.lastBackup",
        description = "Name of the most recent QdrantBackup"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct QdrantBackupScheduleSpec {
    /// Cron schedule as a Kubernetes CronJob takes it: five space-separated fields (minute
    /// hour day-of-month month day-of-week, e.g. `0 2 * * *`) or one of @yearly, @annually,
    /// @monthly, @weekly, @daily, @midnight, @hourly. Set the time zone in timeZone, not with
    /// a TZ= or CRON_TZ= prefix.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(
        validation = kube::core::Rule::new("!(self.startsWith('TZ=') || self.startsWith('CRON_TZ='))").message("schedule must not start with TZ= or CRON_TZ=: set spec.timeZone instead"),
        validation = kube::core::Rule::new("self.matches('^ *(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^ ]+( +[^ ]+){4}) *$')").message("schedule must have exactly 5 space-separated fields (minute hour day-of-month month day-of-week) or be one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly")
    )]
    pub schedule: String,
    /// IANA time zone of the schedule, e.g. `Europe/Berlin`. Unset: the time zone of
    /// kube-controller-manager (usually UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// Stop creating new backups (the CronJob is suspended); running ones finish and
    /// retention still applies.
    #[serde(default)]
    pub suspend: bool,
    /// The spec of each QdrantBackup created (cluster or connection, collections, storage,
    /// upload, deletionPolicy). Changes apply to the backups created afterwards.
    pub backup_template: QdrantBackupSpec,
    /// Which backups to keep. Unset: all are kept. Retention only counts and deletes
    /// QdrantBackups this schedule created; their S3 objects go with them when their
    /// deletionPolicy is Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Finished Jobs of the CronJob to keep that succeeded (the QdrantBackups are governed by
    /// retention, not by this).
    #[serde(default = "default_successful_jobs_history_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: i32,
    /// Finished Jobs of the CronJob to keep that failed.
    #[serde(default = "default_failed_jobs_history_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: i32,
    /// Seconds after a scheduled time within which a missed run (controller down, cluster
    /// busy) may still start; later it is skipped. Unset: no deadline. Values below 10 can
    /// make every run be missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
}

fn default_successful_jobs_history_limit() -> i32 {
    3
}
fn default_failed_jobs_history_limit() -> i32 {
    1
}

/// Retention of a schedule's backups (only QdrantBackups this schedule created). A backup is
/// deleted when either rule says so, except that running backups and the newest successful
/// backup are never deleted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.keepLast) || has(self.maxAge)").message("retention must set keepLast, maxAge or both")
)]
pub struct Retention {
    /// Keep the newest this-many successful backups and delete older ones. Failed backups are
    /// kept only until a newer backup succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Delete backups created longer ago than this: a whole number followed by m (minutes),
    /// h (hours), d (days of 24 h) or w (weeks), e.g. `30m`, `12h`, `7d`, `2w`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 16), regex(pattern = r"^[1-9][0-9]*[mhdw]$"))]
    pub max_age: Option<String>,
}

/// Observed state of a schedule. Written by the backup-controller only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct QdrantBackupScheduleStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Name of the CronJob that creates the backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_job_name: Option<String>,
    /// When the CronJob last created a backup (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// Name of the most recent QdrantBackup of this schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// Name of the most recent QdrantBackup of this schedule that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<String>,
    /// QdrantBackups of this schedule currently kept.
    #[serde(default)]
    pub backups: u32,
    /// Conditions: Ready (the CronJob matches the spec), Paused.
    #[serde(default)]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}

// ---------------------------------------------------------------------------------------------
// QdrantRestore
// ---------------------------------------------------------------------------------------------

/// Desired restore: from which backup, into which Qdrant, which collections. Immutable once
/// created.
// kube-derive takes one `printcolumn(...)` per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "qdrant.operator.dev",
    version = "v1alpha1",
    kind = "QdrantRestore",
    namespaced,
    status = "QdrantRestoreStatus",
    shortname = "qrs",
    category = "qdrant",
    derive = "PartialEq",
    doc = "A restore of Qdrant collections from a QdrantBackup or an S3 manifest into a QdrantCluster or any reachable Qdrant, performed once by the qdrant-operator backup-controller. The spec is immutable.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded or Failed"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.cluster.name",
        description = "QdrantCluster restored into"
    ),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.source.backupRef.name",
        description = "QdrantBackup restored from"
    ),
    printcolumn(
        name = "Size",
        type_ = "string",
        json_path = ".status.size",
        description = "Total size of the snapshots recovered"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self == oldSelf").message("spec is immutable: a QdrantRestore is the record of one restore run; create a new QdrantRestore to restore again"),
    validation = kube::core::Rule::new("has(self.cluster) != has(self.connection)").message("set exactly one of cluster or connection")
)]
pub struct QdrantRestoreSpec {
    /// The backup to restore from.
    pub source: RestoreSource,
    /// Target: a QdrantCluster in this namespace. The restore waits until its Ready condition
    /// is True.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
    /// Target: any reachable Qdrant (installed with Helm, Qdrant Cloud, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// Collections to restore, each optionally under a new name. Empty: every collection in
    /// the backup's manifest, under its own name. A target collection that already exists is
    /// overwritten by the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub collections: Vec<RestoreCollection>,
    /// How Qdrant gets the snapshots. Auto (default): a presigned S3 URL Qdrant downloads
    /// itself, falling back to a streamed upload through the controller when Qdrant cannot
    /// download it. PresignedUrl: only the URL (fails when Qdrant cannot reach S3). Upload:
    /// always stream through the controller.
    #[serde(default)]
    pub recovery_method: RecoveryMethod,
    /// Lifetime of each presigned URL, seconds (60 to 604800, i.e. 7 days). It must outlast
    /// Qdrant's download of the largest snapshot.
    #[serde(default = "default_presigned_url_expiry_seconds")]
    #[schemars(range(min = 60, max = 604_800))]
    pub presigned_url_expiry_seconds: u32,
}

fn default_presigned_url_expiry_seconds() -> u32 {
    DEFAULT_PRESIGNED_URL_EXPIRY_SECONDS
}

/// Where a restore reads the backup from: exactly one of backupRef or s3.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.backupRef) != has(self.s3)").message("set exactly one of source.backupRef or source.s3")
)]
pub struct RestoreSource {
    /// A QdrantBackup in this namespace; it must have Succeeded. Its storage (and
    /// credentials) and manifest are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_ref: Option<BackupRef>,
    /// A manifest in S3, e.g. from another Kubernetes cluster or from a QdrantBackup deleted
    /// with deletionPolicy Retain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Source>,
}

/// A QdrantBackup in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct BackupRef {
    /// Name of the QdrantBackup.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A backup manifest in S3.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct S3Source {
    /// The bucket (and credentials) holding the backup.
    pub storage: S3Storage,
    /// Object key of the backup's `manifest.json` (a QdrantBackup's `status.manifestKey`).
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(
        validation = kube::core::Rule::new("!self.startsWith('/')").message("manifestKey must not start with /")
    )]
    pub manifest_key: String,
}

/// One collection to restore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreCollection {
    /// Name of the collection in the backup.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Name to restore it under. Unset: its name in the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub new_name: Option<String>,
}

impl RestoreCollection {
    /// The collection's name in the target: `newName`, else `name`.
    pub fn target_name(&self) -> &str {
        self.new_name.as_deref().unwrap_or(&self.name)
    }
}

/// How a restore hands snapshots to Qdrant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum RecoveryMethod {
    /// A presigned URL first; a streamed upload when Qdrant cannot download it.
    #[default]
    Auto,
    /// Only a presigned URL: Qdrant downloads the snapshot from S3 itself; no bytes pass
    /// through the controller.
    PresignedUrl,
    /// Only a streamed upload: the controller downloads from S3 and uploads to Qdrant.
    Upload,
}

/// How a collection's snapshots actually reached Qdrant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::without_description)]
pub enum RecoveryMethodUsed {
    /// Qdrant downloaded them from a presigned URL.
    PresignedUrl,
    /// The controller streamed them to Qdrant.
    Upload,
}

/// Progress of one collection of a restore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreCollectionStatus {
    /// Name of the collection in the backup.
    pub name: String,
    /// Name of the collection in the target Qdrant.
    pub target_name: String,
    /// Pending, Running, Succeeded or Failed.
    #[serde(default)]
    pub phase: BackupPhase,
    /// Shards of the collection in the backup.
    #[serde(default)]
    pub shards_total: u32,
    /// Shards recovered so far.
    #[serde(default)]
    pub shards_restored: u32,
    /// Points in the collection when it was backed up, when the manifest records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_points: Option<u64>,
    /// Points in the target collection after recovery (approximate, as Qdrant counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_points: Option<u64>,
    /// How the snapshots reached Qdrant: PresignedUrl or Upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<RecoveryMethodUsed>,
    /// Last progress or error message for this collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Observed state of a restore. Written by the backup-controller only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct QdrantRestoreStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, Succeeded or Failed.
    #[serde(default)]
    pub phase: RestorePhase,
    /// When the restore started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the restore succeeded or failed for good (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Progress of each collection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<RestoreCollectionStatus>,
    /// Total size of the snapshots recovered, bytes.
    #[serde(default)]
    pub total_bytes: u64,
    /// Total size, human-readable (e.g. `1.5 GiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Last progress or error message, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Conditions: Ready (True once Succeeded), Paused.
    #[serde(default)]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// A byte count for humans, in binary units with one decimal: `512 B`, `1.5 KiB`, `2 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Tenths of the unit, rounded half up, in integers (exact for any u64).
    let mut unit = 0;
    let mut scale: u128 = 1024;
    while unit + 1 < UNITS.len() && u128::from(bytes) >= scale * 1024 {
        scale *= 1024;
        unit += 1;
    }
    let tenths = (u128::from(bytes) * 10 + scale / 2) / scale;
    let (whole, frac) = (tenths / 10, tenths % 10);
    if frac == 0 {
        format!("{whole} {}", UNITS[unit])
    } else {
        format!("{whole}.{frac} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_humans() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(format_size(10 * 1024 * 1024), "10 MiB");
        assert_eq!(format_size(u64::MAX), "16 EiB");
    }

    #[test]
    fn restore_target_names() {
        let c = RestoreCollection {
            name: "a".into(),
            new_name: None,
        };
        assert_eq!(c.target_name(), "a");
        let c = RestoreCollection {
            name: "a".into(),
            new_name: Some("b".into()),
        };
        assert_eq!(c.target_name(), "b");
    }
}
