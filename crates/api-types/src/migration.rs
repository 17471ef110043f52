//! `QdrantMigration` (short name `qmig`), reconciled by the backup-controller: copies
//! collections from one Qdrant to another (a QdrantCluster, or any Qdrant reachable by URL such
//! as one installed with Helm) by streaming points in batches — scroll on the source, upsert
//! on the target, vectors (named, sparse, multivectors) and payloads as Qdrant returns them —
//! with the scroll cursor in status so a restarted controller resumes, verification by exact
//! counts and sampled points, an optional second (catch-up) pass and an optional alias switch
//! on the target for the cutover.
//!
//! The source and target reuse the QdrantCollection's [`ClusterRef`] and [`Connection`].

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    collection::{ClusterRef, Connection},
    conditions::Condition,
};

/// Default points per scroll/upsert batch.
pub const DEFAULT_BATCH_SIZE: u32 = 256;
/// Largest batch allowed (one batch is held in the controller's memory).
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// Default number of points compared by id after the copy.
pub const DEFAULT_SAMPLE_SIZE: u32 = 100;
/// Largest sample allowed.
pub const MAX_SAMPLE_SIZE: u32 = 1000;
/// Metadata key the migration writes into each collection it creates on the target (value:
/// the QdrantMigration's UID), so a restarted controller recognises its own collection and a
/// human sees where it came from.
pub const MIGRATION_METADATA_KEY: &str = "qdrant.operator.dev/migration";

/// One end of a migration: exactly one of `cluster` or `connection`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.cluster) != has(self.connection)").message("set exactly one of cluster or connection")
)]
pub struct MigrationEndpoint {
    /// A QdrantCluster in this namespace, managed by the operator. The migration waits until
    /// its Ready condition is True for its current generation and reads the endpoint and API
    /// key from its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
    /// Any reachable Qdrant (installed with Helm, Qdrant Cloud, another Kubernetes cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
}

impl QdrantMigrationSpec {
    /// True when QdrantCluster `cluster` (same namespace) is the source or the target.
    pub fn involves_cluster(&self, cluster: &str) -> bool {
        [&self.source, &self.target]
            .iter()
            .any(|e| e.cluster.as_ref().is_some_and(|c| c.name == cluster))
    }
}

/// Desired migration: from where, to where, which collections and how. Immutable once created:
/// a QdrantMigration is the record of one run.
// kube-derive takes one `printcolumn(...)` per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "qdrant.operator.dev",
    version = "v1alpha1",
    kind = "QdrantMigration",
    namespaced,
    status = "QdrantMigrationStatus",
    shortname = "qmig",
    category = "qdrant",
    derive = "PartialEq",
    doc = "A copy of Qdrant collections from one Qdrant (a QdrantCluster or any reachable Qdrant) to another, by streaming points in batches, verified by exact counts and sampled points, performed once by the qdrant-operator backup-controller. The spec is immutable.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Verifying, Succeeded or Failed"
    ),
    printcolumn(
        name = "Progress",
        type_ = "string",
        json_path = ".status.progress",
        description = "Points copied of points counted on the source"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self == oldSelf").message("spec is immutable: a QdrantMigration is the record of one run; create a new QdrantMigration to migrate again"),
    validation = kube::core::Rule::new("!has(self.aliasSwitch) || (has(self.collections) && size(self.collections) == 1)").message("aliasSwitch needs exactly one entry in collections (the alias points to one collection)").field_path(".aliasSwitch")
)]
pub struct QdrantMigrationSpec {
    /// Where the collections are read from (never written to).
    pub source: MigrationEndpoint,
    /// Where the collections are created and written to. A collection of the target name must
    /// not exist there: a migration never writes into a collection it did not create.
    pub target: MigrationEndpoint,
    /// Collections to copy, each optionally under another name on the target. Empty: every
    /// collection of the source when the migration starts, under its own name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub collections: Vec<MigrationCollection>,
    /// How points get across. Stream: through the controller (scroll on the source, upsert on
    /// the target). Snapshot: shard by shard as Qdrant shard snapshots that the target
    /// downloads from the source peer; needs the same Qdrant minor version on both sides and
    /// automatic sharding, else refused (SnapshotNotPossible). Auto (default): Snapshot when
    /// both sides allow it, else Stream; a snapshot transfer that fails falls back to
    /// streaming.
    #[serde(default)]
    pub method: MigrationMethod,
    /// Points per batch (1-10000, default 256): each batch is one scroll request on the source
    /// and one upsert (`wait=true`) on the target, held in the controller's memory between
    /// them. After each batch the scroll cursor is written to status.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 10_000))]
    pub batch_size: u32,
    /// Verification after the copy; defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<MigrationVerify>,
    /// After the first pass, scroll the whole source once more and upsert every point again
    /// (idempotent): points written or changed on the source during the first pass reach the
    /// target. Deletions on the source are not propagated, and writes during the second pass
    /// may still be missed; stop writes to the source for an exact copy.
    #[serde(default)]
    pub catch_up: bool,
    /// Point an alias of the target Qdrant at the copied collection once it is verified (the
    /// cutover for clients that query the alias). Needs exactly one entry in collections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_switch: Option<AliasSwitch>,
}

fn default_batch_size() -> u32 {
    DEFAULT_BATCH_SIZE
}

/// One collection to copy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationCollection {
    /// Name of the collection on the source (an alias resolves to its collection).
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Name of the collection on the target. Unset: the source name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub target_name: Option<String>,
}

impl MigrationCollection {
    /// The collection's name on the target: `targetName`, else `name`.
    pub fn target_name(&self) -> &str {
        self.target_name.as_deref().unwrap_or(&self.name)
    }
}

/// How a migration moves points.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum MigrationMethod {
    /// Snapshot when both sides allow it, else Stream; a failed snapshot transfer falls back
    /// to streaming.
    #[default]
    Auto,
    /// Stream points through the controller: scroll the source, upsert into the target.
    Stream,
    /// Shard snapshots: each shard is snapshotted on a source peer holding an Active replica,
    /// recovered on a target peer holding the shard from that peer's snapshot URL (with the
    /// source's API key), and the snapshot file deleted from the source. No point passes
    /// through the controller.
    Snapshot,
}

/// How a copied collection is verified.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationVerify {
    /// Points picked at random on the source (Qdrant's `sample: random` query), read by id
    /// from both sides and compared: ids, payloads and vectors (numbers to a relative
    /// tolerance of 1e-5, as the target may normalize a Cosine vector again). 0-1000, default
    /// 100; 0 checks the exact counts only.
    #[serde(default = "default_sample_size")]
    #[schemars(range(min = 0, max = 1000))]
    pub sample_size: u32,
}

impl Default for MigrationVerify {
    fn default() -> Self {
        Self {
            sample_size: DEFAULT_SAMPLE_SIZE,
        }
    }
}

fn default_sample_size() -> u32 {
    DEFAULT_SAMPLE_SIZE
}

/// The alias to point at the copied collection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AliasSwitch {
    /// Alias name on the target Qdrant. Created, or moved from the collection it points to,
    /// in one `POST /collections/aliases` request (delete then create, applied atomically by
    /// Qdrant).
    #[schemars(length(min = 1, max = 255))]
    pub alias: String,
}

/// Phase of a QdrantMigration, for humans; automation reads the conditions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum MigrationPhase {
    /// Accepted, not started (waiting for a QdrantCluster to be Ready, or for a Secret).
    #[default]
    Pending,
    /// Copying points (first pass or catch-up pass).
    Running,
    /// Comparing counts and sampled points.
    Verifying,
    /// Every collection copied and verified (and the alias switched, when asked).
    Succeeded,
    /// Gave up; see `message` and the conditions. What was copied stays on the target.
    Failed,
}

impl MigrationPhase {
    /// True for Succeeded and Failed: nothing more will happen.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Where one collection of a migration is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum MigrationStage {
    /// Not started.
    #[default]
    Pending,
    /// First pass: the target collection exists, points are being copied.
    Copying,
    /// Second pass (spec.catchUp): every point copied again.
    CatchingUp,
    /// Counts and samples being compared.
    Verifying,
    /// Copied and verified.
    Succeeded,
    /// Failed; see message.
    Failed,
}

/// How a collection's points got across.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::without_description)]
pub enum MigrationMethodUsed {
    /// Streamed through the controller (scroll → upsert).
    Stream,
    /// Shard snapshots recovered by the target from the source's peers.
    Snapshot,
}

/// Progress of one collection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationCollectionStatus {
    /// Name on the source.
    pub name: String,
    /// Name on the target.
    pub target_name: String,
    /// Pending, Copying, CatchingUp, Verifying, Succeeded or Failed.
    #[serde(default)]
    pub stage: MigrationStage,
    /// How the points got across: Stream or Snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<MigrationMethodUsed>,
    /// Shards of the collection (method Snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards_total: Option<u32>,
    /// Shards recovered on the target from their snapshots so far (method Snapshot); a
    /// restarted controller goes on with the next one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shards_copied: u32,
    /// Exact point count of the source when the copy started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_total: Option<u64>,
    /// Points upserted on the target in the first pass so far.
    #[serde(default)]
    pub points_copied: u64,
    /// Points upserted again in the catch-up pass so far.
    #[serde(default)]
    pub catch_up_points: u64,
    /// Batches (scroll + upsert) done, both passes.
    #[serde(default)]
    pub batches: u64,
    /// The scroll cursor: the id of the next point to read from the source (Qdrant's
    /// `next_page_offset`, a number or a UUID, written as a string), unset before the first
    /// batch and after the last. A restarted controller resumes here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// Exact point count of the source at verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_source_count: Option<u64>,
    /// Exact point count of the target at verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_target_count: Option<u64>,
    /// Points sampled and compared by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_points: Option<u32>,
    /// Sampled points that differed or were missing on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_mismatches: Option<u32>,
    /// Last progress or error message for this collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl MigrationCollectionStatus {
    /// A collection not started yet.
    pub fn pending(name: &str, target_name: &str) -> Self {
        Self {
            name: name.to_string(),
            target_name: target_name.to_string(),
            stage: MigrationStage::Pending,
            method: None,
            shards_total: None,
            shards_copied: 0,
            points_total: None,
            points_copied: 0,
            catch_up_points: 0,
            batches: 0,
            offset: None,
            verified_source_count: None,
            verified_target_count: None,
            sampled_points: None,
            sample_mismatches: None,
            message: None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Observed state of a migration. Written by the backup-controller only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct QdrantMigrationStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, Verifying, Succeeded or Failed.
    #[serde(default)]
    pub phase: MigrationPhase,
    /// When the copy started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the migration succeeded or failed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Progress of each collection, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<MigrationCollectionStatus>,
    /// Points copied over points total, summed over collections (e.g. `2560/5000`), for the
    /// printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// The alias pointed at the copied collection, once switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_alias: Option<String>,
    /// Last progress or error message, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Conditions: Ready (True once Succeeded), Reconciling/Stalled (kstatus), Paused.
    #[serde(default)]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_default_to_the_source_name() {
        let c = MigrationCollection {
            name: "a".into(),
            target_name: None,
        };
        assert_eq!(c.target_name(), "a");
        let c = MigrationCollection {
            name: "a".into(),
            target_name: Some("b".into()),
        };
        assert_eq!(c.target_name(), "b");
    }
}
