//! The steps of a QdrantMigration, free of Kubernetes: each takes the source and target
//! clients and one collection's status, talks to Qdrant, and updates that status. The
//! reconciler ([`crate::migration`]) runs a bounded number of steps per reconcile and writes
//! the status after each, so the scroll cursor in status is never more than one batch behind
//! what the target holds.
//!
//! A collection goes Pending → Copying → (CatchingUp) → Verifying → Succeeded:
//! - **start** ([`start`]): `GET /collections/{c}` and an exact count on the source; on the
//!   target `GET /collections/{t}` — absent: `PUT /collections/{t}` with the source's config
//!   ([`create_body`]) and the migration's UID under [`MIGRATION_METADATA_KEY`] in `metadata`;
//!   present with this migration's UID there (the controller stopped right after creating
//!   it): adopted; present otherwise: `CollectionExists` (a migration never writes into a
//!   collection it did not create); then the source's payload indexes on the target
//!   ([`index_schemas`], `PUT /collections/{t}/index`);
//! - **copy** ([`copy_batch`]): `POST /collections/{c}/points/scroll` from the cursor with
//!   vectors and payloads, `PUT /collections/{t}/points?wait=true` of the same points, then
//!   the cursor moves to `next_page_offset`;
//! - **verify** ([`verify`]): exact counts on both sides must be equal; `sampleSize` ids from
//!   Qdrant's random sample on the source are read by id on both sides and compared
//!   ([`same_point`]).

use api_types::migration::{
    MIGRATION_METADATA_KEY, MigrationCollectionStatus, MigrationMethod, MigrationMethodUsed,
    MigrationStage,
};
use reconcile_lib::{
    qdrant::{
        QdrantClient, QdrantError, SnapshotPriority, SnapshotRecover, minor_version, same_point,
    },
    target::Resolved,
};
use serde_json::{Value, json};

use crate::run::restore::{create_body, out_of_sync};

/// The two ends of a migration, as resolved: `client` for the main endpoint, and what is
/// needed to reach single peers (a snapshot transfer snapshots a shard on a source peer and
/// recovers it on a target peer).
#[derive(Debug)]
pub struct Sides {
    /// Read from.
    pub source: Resolved,
    /// Written to.
    pub target: Resolved,
}

/// Why a step did not complete: a CamelCase reason, a message naming the collection, and
/// whether another try may succeed (Qdrant unreachable, 5xx, 429).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StepFailure {
    /// `CollectionNotFound`, `CollectionExists`, `PointCountMismatch`, `SampleMismatch` or
    /// `QdrantError`.
    pub reason: &'static str,
    /// What failed.
    pub message: String,
    /// True when the same step may succeed later (the status is left as it was).
    pub transient: bool,
}

fn fail(reason: &'static str, message: impl Into<String>) -> StepFailure {
    StepFailure {
        reason,
        message: message.into(),
        transient: false,
    }
}

fn qdrant(what: String, e: &QdrantError) -> StepFailure {
    StepFailure {
        reason: "QdrantError",
        message: format!("{what}: {}", reconcile_lib::redact::urls_in(&e.to_string())),
        transient: e.is_transient(),
    }
}

/// The scroll cursor as status records it: a numeric id as its digits, a UUID as is.
pub fn offset_to_status(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The scroll cursor of status as Qdrant takes it: digits are a numeric id, anything else a
/// UUID string.
pub fn offset_from_status(offset: &str) -> Value {
    match offset.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(offset),
    }
}

/// The first collection that is not Succeeded (the one to work on), if any.
pub fn current(collections: &[MigrationCollectionStatus]) -> Option<usize> {
    collections
        .iter()
        .position(|c| c.stage != MigrationStage::Succeeded)
}

/// `(points copied, points total)` over every collection, both passes' first-pass counts.
pub fn totals(collections: &[MigrationCollectionStatus]) -> (u64, u64) {
    collections.iter().fold((0, 0), |(copied, total), c| {
        (
            copied + c.points_copied,
            total + c.points_total.unwrap_or(0),
        )
    })
}

/// Pending → Copying: reads the source collection and its exact count, creates (or adopts)
/// the target collection with the source's payload indexes, and picks how the points get
/// across (`method`, spec.method: [`snapshot_blocker`] says whether shard snapshots can).
/// `uid` is the QdrantMigration's UID.
///
/// # Errors
/// `CollectionNotFound` (source), `CollectionExists` (target, not this migration's),
/// `SnapshotNotPossible` (spec.method Snapshot, and the blocker), `QdrantError` (transient or
/// not, as the error).
pub async fn start(
    sides: &Sides,
    uid: &str,
    method: MigrationMethod,
    c: &mut MigrationCollectionStatus,
) -> Result<(), StepFailure> {
    let Some(info) = sides
        .source
        .client
        .collection_info(&c.name)
        .await
        .map_err(|e| qdrant(format!("GET /collections/{} on the source", c.name), &e))?
    else {
        return Err(fail(
            "CollectionNotFound",
            format!(
                "collection {} (spec.collections) does not exist on the source",
                c.name
            ),
        ));
    };
    let total = sides
        .source
        .client
        .count_points(&c.name, true)
        .await
        .map_err(|e| {
            qdrant(
                format!("counting the points of {} on the source", c.name),
                &e,
            )
        })?;
    let blocker = match method {
        MigrationMethod::Stream => Some("spec.method is Stream".to_string()),
        MigrationMethod::Snapshot | MigrationMethod::Auto => {
            snapshot_blocker(sides, &info.config).await?
        }
    };
    // Refused before the target is touched: no empty collection is left behind.
    if let Some(why) = &blocker
        && method == MigrationMethod::Snapshot
    {
        return Err(fail(
            "SnapshotNotPossible",
            format!(
                "spec.method Snapshot: collection {} cannot be copied by snapshot: {why} (use Auto or Stream to stream it)",
                c.name
            ),
        ));
    }
    let exists = |t: &str| {
        fail(
            "CollectionExists",
            format!(
                "collection {t} already exists on the target and was not created by this migration: a migration never writes into an existing collection (choose another spec.collections[].targetName, or delete it)"
            ),
        )
    };
    let t = c.target_name.clone();
    match sides
        .target
        .client
        .collection_info(&t)
        .await
        .map_err(|e| qdrant(format!("GET /collections/{t} on the target"), &e))?
    {
        Some(existing) => {
            if existing.config["metadata"][MIGRATION_METADATA_KEY] != json!(uid) {
                return Err(exists(&t));
            }
        }
        None => {
            let mut body = create_body(&info.config);
            body["metadata"][MIGRATION_METADATA_KEY] = json!(uid);
            match sides.target.client.create_collection(&t, &body).await {
                Ok(()) => {}
                Err(e) if e.is_already_exists() => return Err(exists(&t)),
                Err(e) => {
                    return Err(qdrant(format!("creating collection {t} on the target"), &e));
                }
            }
        }
    }
    // The source's payload indexes, before any point: Qdrant builds them as points arrive
    // (and a tenant or principal index shapes the segments from the first point on). A
    // start redone after a failure puts them again, which changes nothing.
    let indexes = index_schemas(&info.payload_schema);
    for (field, schema) in &indexes {
        sides
            .target
            .client
            .create_payload_index(&t, field, schema)
            .await
            .map_err(|e| {
                qdrant(
                    format!("creating payload index {field} on {t} on the target"),
                    &e,
                )
            })?;
    }
    c.points_total = Some(total);
    c.stage = MigrationStage::Copying;
    c.offset = None;
    let indexes = match indexes.len() {
        0 => String::new(),
        k => format!(" ({k} payload indexes created)"),
    };
    match blocker {
        Some(why) => {
            c.method = Some(MigrationMethodUsed::Stream);
            c.message = Some(format!("copying {total} points{indexes}; streaming: {why}"));
        }
        None => {
            let shards = shard_number(&info.config);
            c.method = Some(MigrationMethodUsed::Snapshot);
            c.shards_total = Some(shards);
            c.shards_copied = 0;
            c.message = Some(format!(
                "copying {total} points{indexes} as {shards} shard snapshots"
            ));
        }
    }
    Ok(())
}

/// `params.shard_number` of a collection config (Qdrant's default 1 when absent).
fn shard_number(config: &Value) -> u32 {
    config["params"]["shard_number"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
}

/// Why the collection whose source config is `config` cannot be copied as shard snapshots,
/// or `None` when it can: both ends in cluster mode (`GET /cluster` lists the peers whose
/// URLs serve the snapshots) with every peer answering the controller at its URL (`GET /` on
/// each), the same Qdrant minor version on both (`GET /` on each endpoint: a shard snapshot
/// is recovered only by the version line that wrote it), and automatic sharding (custom shard
/// keys place shards by key, which a recovered shard id does not carry).
///
/// # Errors
/// `QdrantError` from `GET /`.
pub async fn snapshot_blocker(
    sides: &Sides,
    config: &Value,
) -> Result<Option<String>, StepFailure> {
    for (end, side) in [(&sides.source, "source"), (&sides.target, "target")] {
        let peers = crate::run::peer_urls(end)
            .await
            .map_err(|e| qdrant(format!("GET /cluster on the {side}"), &e))?;
        if peers.is_empty() {
            return Ok(Some(format!(
                "the {side} runs without cluster mode, so no peer serves shard snapshots by URL"
            )));
        }
        // A peer URL that does not answer the controller (e.g. a connection through a
        // port-forward, whose peers' in-cluster names do not resolve here) would stall every
        // shard: such a migration streams through the endpoint instead.
        for (id, url) in peers {
            let reachable = match end.client_for(url.clone()) {
                Ok(client) => client.version().await.is_ok(),
                Err(_) => false,
            };
            if !reachable {
                return Ok(Some(format!(
                    "{side} peer {id} at {} does not answer (GET /)",
                    reconcile_lib::redact::urls_in(url.as_str())
                )));
            }
        }
    }
    if config["params"]["sharding_method"] == json!("custom") {
        return Ok(Some("the source uses custom sharding".into()));
    }
    let source = sides
        .source
        .client
        .version()
        .await
        .map_err(|e| qdrant("GET / on the source".into(), &e))?
        .version;
    let target = sides
        .target
        .client
        .version()
        .await
        .map_err(|e| qdrant("GET / on the target".into(), &e))?
        .version;
    let (s, t) = (minor_version(&source), minor_version(&target));
    if s.is_none() || s != t {
        return Ok(Some(format!(
            "the source runs Qdrant {source} and the target {target} (a shard snapshot needs the same minor version)"
        )));
    }
    Ok(None)
}

/// One step of a snapshot transfer (stage Copying, method Snapshot). While shards remain:
/// the next shard (`shards_copied`) is snapshotted on a source peer holding an Active replica
/// (`POST /collections/{c}/shards/{s}/snapshots?wait=true` on that peer), recovered on a
/// target peer holding the shard from the source peer's snapshot URL with the source's API
/// key (`PUT /collections/{t}/shards/{s}/snapshots/recover`, priority `snapshot`), and the
/// snapshot file deleted from the source peer. Once every shard is recovered: waits (returns
/// `Ok(false)`) until the target's replicas hold the same points ([`out_of_sync`]), then sets
/// `points_copied` to the target's exact count and moves on to CatchingUp (`catch_up`) or
/// Verifying. `Ok(true)` when something moved.
///
/// A failed recovery falls back to streaming the whole collection when `fallback` (spec.method
/// Auto): the upserts replace whatever the recovered shards hold.
///
/// # Errors
/// `QdrantError` (transient: the same shard is done again), `NoActiveReplica`, `PeerUnknown`,
/// `SnapshotFailed` (spec.method Snapshot).
pub async fn copy_shard(
    sides: &Sides,
    catch_up: bool,
    fallback: bool,
    c: &mut MigrationCollectionStatus,
) -> Result<bool, StepFailure> {
    let (source_end, target_end) = (&sides.source, &sides.target);
    let total = c.shards_total.unwrap_or(0);
    let t = c.target_name.clone();
    let target = crate::run::source(target_end)
        .await
        .map_err(|e| qdrant("listing the target's peers (GET /cluster)".into(), &e))?;
    if c.shards_copied >= total {
        if let Some(why) = out_of_sync(&target, &t)
            .await
            .map_err(|e| qdrant(format!("GET /collections/{t}/cluster on the target"), &e))?
        {
            c.message = Some(format!(
                "{total} shards recovered; waiting for the replicas on the target: {why}"
            ));
            return Ok(false);
        }
        let count = sides
            .target
            .client
            .count_points(&t, true)
            .await
            .map_err(|e| qdrant(format!("counting the points of {t} on the target"), &e))?;
        c.points_copied = count;
        c.stage = if catch_up {
            MigrationStage::CatchingUp
        } else {
            MigrationStage::Verifying
        };
        c.message = Some(format!(
            "{total} shards recovered from snapshots: {count} points on the target"
        ));
        return Ok(true);
    }
    let shard = c.shards_copied;
    let name = c.name.clone();
    let source_urls = crate::run::peer_urls(source_end)
        .await
        .map_err(|e| qdrant("listing the source's peers (GET /cluster)".into(), &e))?;
    let placement = sides
        .source
        .client
        .collection_cluster_info(&name)
        .await
        .map_err(|e| qdrant(format!("GET /collections/{name}/cluster on the source"), &e))?;
    let from = placement
        .replicas()
        .into_iter()
        .filter(|(s, p, state)| *s == shard && *state == "Active" && source_urls.contains_key(p))
        .map(|(_, p, _)| p)
        .min()
        .ok_or_else(|| {
            fail(
                "NoActiveReplica",
                format!(
                    "collection {name} shard {shard}: no Active replica on a source peer with a known URL"
                ),
            )
        })?;
    let holders = sides
        .target
        .client
        .collection_cluster_info(&t)
        .await
        .map_err(|e| qdrant(format!("GET /collections/{t}/cluster on the target"), &e))?;
    let (to, target_peer) = holders
        .replicas()
        .into_iter()
        .filter(|(s, _, _)| *s == shard)
        .find_map(|(_, p, _)| target.peers.get(&p).map(|c| (p, c.clone())))
        .ok_or_else(|| {
            fail(
                "PeerUnknown",
                format!(
                    "collection {t} shard {shard}: no replica on a target peer with a known URL"
                ),
            )
        })?;
    let from_url = source_urls[&from].clone();
    let from_client = source_end
        .client_for(from_url.clone())
        .map_err(|e| qdrant(format!("a client for source peer {from}"), &e))?;
    let snapshot = from_client
        .create_shard_snapshot(&name, shard)
        .await
        .map_err(|e| {
            qdrant(
                format!("snapshotting {name} shard {shard} on source peer {from}"),
                &e,
            )
        })?;
    let mut location = from_url;
    location
        .path_segments_mut()
        .map_err(|()| fail("PeerUnknown", "the source peer's URL cannot be a base"))?
        .pop_if_empty()
        .extend([
            "collections",
            name.as_str(),
            "shards",
            &shard.to_string(),
            "snapshots",
            snapshot.name.as_str(),
        ]);
    let mut request = SnapshotRecover::new(location.to_string());
    request.priority = Some(SnapshotPriority::Snapshot);
    request.checksum = snapshot.checksum.clone();
    request.api_key = source_end
        .connection()
        .api_key
        .as_ref()
        .map(|k| k.expose().to_string());
    let recovered = target_peer
        .recover_shard_snapshot(&t, shard, &request)
        .await;
    // The source keeps nothing of the transfer: its snapshot file goes, whatever happened.
    if let Err(e) = from_client
        .delete_shard_snapshot(&name, shard, &snapshot.name)
        .await
    {
        tracing::warn!(collection = %name, shard, snapshot = %snapshot.name, error = %e, "deleting the migration's shard snapshot from the source failed");
    }
    match recovered {
        Ok(()) => {
            c.shards_copied += 1;
            c.message = Some(format!(
                "shard {shard} recovered on target peer {to} from a snapshot of source peer {from} ({} of {total})",
                c.shards_copied
            ));
            Ok(true)
        }
        Err(e) if e.is_transient() => Err(qdrant(
            format!("recovering {t} shard {shard} on target peer {to}"),
            &e,
        )),
        Err(e) if fallback => {
            c.method = Some(MigrationMethodUsed::Stream);
            c.offset = None;
            c.message = Some(format!(
                "the snapshot transfer of shard {shard} failed ({}); streaming every point instead",
                reconcile_lib::redact::urls_in(&e.to_string())
            ));
            Ok(true)
        }
        Err(e) => Err(fail(
            "SnapshotFailed",
            format!(
                "recovering {t} shard {shard} on target peer {to} from source peer {from}: {}",
                reconcile_lib::redact::urls_in(&e.to_string())
            ),
        )),
    }
}

/// The payload indexes of a collection (`payload_schema` of `GET /collections/{c}`:
/// `{field: {data_type, params?, points}}`) as the `field_schema` of `PUT
/// /collections/{t}/index`, by field name: the index's `params` when Qdrant reports them (they
/// carry `type` and the options, e.g. `is_tenant`), else its `data_type`.
pub fn index_schemas(
    payload_schema: &std::collections::BTreeMap<String, Value>,
) -> Vec<(String, Value)> {
    payload_schema
        .iter()
        .filter_map(|(field, info)| {
            let schema = match info.get("params") {
                Some(p) if p.get("type").is_some() => p.clone(),
                _ => info.get("data_type")?.clone(),
            };
            Some((field.clone(), schema))
        })
        .collect()
}

/// One batch of a pass (Copying or CatchingUp): scroll up to `batch_size` points from the
/// cursor, upsert them into the target, move the cursor. After the last page the stage moves
/// on: Copying → CatchingUp (when `catch_up`, cursor back to the start) or Verifying;
/// CatchingUp → Verifying.
///
/// # Errors
/// `QdrantError` (transient or not): the cursor is not moved, so the batch is redone.
pub async fn copy_batch(
    sides: &Sides,
    batch_size: u32,
    catch_up: bool,
    c: &mut MigrationCollectionStatus,
) -> Result<(), StepFailure> {
    let offset = c.offset.as_deref().map(offset_from_status);
    let page = sides
        .source
        .client
        .scroll_points(&c.name, offset.as_ref(), batch_size)
        .await
        .map_err(|e| qdrant(format!("scrolling {} on the source", c.name), &e))?;
    if !page.points.is_empty() {
        sides
            .target
            .client
            .upsert_points(&c.target_name, &page.points)
            .await
            .map_err(|e| {
                qdrant(
                    format!(
                        "upserting {} points into {} on the target",
                        page.points.len(),
                        c.target_name
                    ),
                    &e,
                )
            })?;
    }
    let n = u64::try_from(page.points.len()).unwrap_or(u64::MAX);
    c.batches += 1;
    match c.stage {
        MigrationStage::CatchingUp => c.catch_up_points += n,
        _ => c.points_copied += n,
    }
    c.offset = page.next_page_offset.as_ref().and_then(offset_to_status);
    if c.offset.is_none() {
        c.stage = match c.stage {
            MigrationStage::Copying if catch_up => MigrationStage::CatchingUp,
            _ => MigrationStage::Verifying,
        };
    }
    c.message = Some(match c.stage {
        MigrationStage::CatchingUp if c.catch_up_points == 0 => format!(
            "first pass done ({} points); catch-up pass started",
            c.points_copied
        ),
        MigrationStage::CatchingUp => {
            format!("catch-up pass: {} points upserted again", c.catch_up_points)
        }
        MigrationStage::Verifying => "copied; verifying".to_string(),
        _ => format!(
            "copied {} of {} points",
            c.points_copied,
            c.points_total.unwrap_or(0)
        ),
    });
    Ok(())
}

/// Verifying → Succeeded: exact counts equal on both sides, and `sample_size` random source
/// points equal on the target ([`same_point`]).
///
/// # Errors
/// `PointCountMismatch`, `SampleMismatch` (both name the counts), `QdrantError`.
pub async fn verify(
    sides: &Sides,
    sample_size: u32,
    c: &mut MigrationCollectionStatus,
) -> Result<(), StepFailure> {
    let (s, t) = (c.name.clone(), c.target_name.clone());
    let source_count = sides
        .source
        .client
        .count_points(&s, true)
        .await
        .map_err(|e| qdrant(format!("counting {s} on the source"), &e))?;
    let target_count = sides
        .target
        .client
        .count_points(&t, true)
        .await
        .map_err(|e| qdrant(format!("counting {t} on the target"), &e))?;
    c.verified_source_count = Some(source_count);
    c.verified_target_count = Some(target_count);
    if source_count != target_count {
        return Err(fail(
            "PointCountMismatch",
            format!(
                "{s} has {source_count} points on the source and {t} {target_count} on the target (exact counts); writes or deletions on the source during the copy are not propagated"
            ),
        ));
    }
    let mut mismatches = 0u32;
    let mut sampled = 0u32;
    if sample_size > 0 && source_count > 0 {
        let ids = sides
            .source
            .client
            .sample_point_ids(&s, sample_size)
            .await
            .map_err(|e| qdrant(format!("sampling {s} on the source"), &e))?;
        let from_source = sides
            .source
            .client
            .retrieve_points(&s, &ids)
            .await
            .map_err(|e| qdrant(format!("reading the sampled points of {s}"), &e))?;
        let from_target = sides
            .target
            .client
            .retrieve_points(&t, &ids)
            .await
            .map_err(|e| qdrant(format!("reading the sampled points of {t}"), &e))?;
        for p in &from_source {
            sampled += 1;
            let same = from_target
                .iter()
                .find(|q| q.get("id") == p.get("id"))
                .is_some_and(|q| same_point(p, q));
            if !same {
                mismatches += 1;
            }
        }
    }
    c.sampled_points = Some(sampled);
    c.sample_mismatches = Some(mismatches);
    if mismatches > 0 {
        return Err(fail(
            "SampleMismatch",
            format!(
                "{mismatches} of {sampled} sampled points of {s} differ on the target {t} (payload or vectors), though both hold {source_count} points"
            ),
        ));
    }
    c.stage = MigrationStage::Succeeded;
    c.message = Some(format!(
        "verified: {source_count} points on both sides, {sampled} sampled points identical"
    ));
    Ok(())
}

/// Points `alias` of the target at `collection`: `POST /collections/aliases` with
/// `delete_alias` then `create_alias`, which Qdrant applies in order under one lock (no
/// reader sees the alias missing).
///
/// # Errors
/// `QdrantError`.
pub async fn switch_alias(
    target: &QdrantClient,
    alias: &str,
    collection: &str,
) -> Result<(), StepFailure> {
    target
        .update_aliases(&[
            json!({"delete_alias": {"alias_name": alias}}),
            json!({"create_alias": {"collection_name": collection, "alias_name": alias}}),
        ])
        .await
        .map_err(|e| {
            qdrant(
                format!("pointing alias {alias} at {collection} on the target"),
                &e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_through_status() {
        for id in [
            json!(0),
            json!(18_446_744_073_709_551_615u64),
            json!("5c56c793-69f3-4fbf-87e6-c4bf54c28c26"),
        ] {
            let shown = offset_to_status(&id);
            assert_eq!(shown.as_deref().map(offset_from_status), Some(id));
        }
        assert_eq!(offset_to_status(&Value::Null), None);
    }

    #[test]
    fn the_current_collection_is_the_first_unfinished() {
        let mut cs = vec![
            MigrationCollectionStatus::pending("a", "a"),
            MigrationCollectionStatus::pending("b", "b"),
        ];
        assert_eq!(current(&cs), Some(0));
        cs[0].stage = MigrationStage::Succeeded;
        assert_eq!(current(&cs), Some(1));
        cs[1].stage = MigrationStage::Succeeded;
        assert_eq!(current(&cs), None);
        cs[0].points_copied = 5;
        cs[0].points_total = Some(7);
        cs[1].points_copied = 1;
        assert_eq!(totals(&cs), (6, 7));
    }
}
