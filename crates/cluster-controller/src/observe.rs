//! Observe once per reconcile: what the day-2 operations read, into one
//! [`Observation`]. Before apply: the live StatefulSet (`GET statefulsets/<cluster>`) and, only
//! when a disruptive step may be due, the running QdrantBackups and QdrantRestores of the
//! cluster. After apply: the applied StatefulSet and, once a pod is ready, `GET /cluster` of
//! every pod ([`crate::peers::observe`]). What only one operation needs (pods, placement,
//! claims, StorageClasses, recovery records) that operation reads in its own step, and only
//! when it has something to look at.

use api_types::{
    QdrantBackup, QdrantCluster, QdrantMigration, QdrantRestore,
    backup::{BackupPhase, RestorePhase},
    migration::MigrationPhase,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::{Api, ResourceExt, api::ListParams};
use reconcile_lib::{
    context::{Shared, object_key},
    error::Result,
};
use tracing::warn;

pub use crate::operations::Observation;
use crate::{
    build::Names,
    peers::{self, PeerAccess},
    rollout,
};

/// The observation's start: the live StatefulSet (`GET statefulsets/<cluster>`; `None` when
/// it does not exist yet).
///
/// # Errors
/// The API server's.
pub async fn statefulset(shared: &Shared, names: &Names) -> Result<Observation> {
    let live = Api::<StatefulSet>::namespaced(shared.applier.client().clone(), &names.namespace)
        .get_opt(&names.cluster)
        .await?;
    Ok(Observation {
        live,
        ..Observation::default()
    })
}

/// Adds the running backups and restores ([`busy_with`]) when the cluster shrinks,
/// rebalances, is zone-aware (`spec.zoneAware`: the zone balance moves shards) or may be
/// rolling ([`rollout::may_be_rolling`]): the drains and restarts wait
/// for them. Otherwise nothing is listed.
///
/// # Errors
/// The API server's, listing the backups and restores.
pub async fn running_jobs(
    observation: &mut Observation,
    qc: &QdrantCluster,
    shared: &Shared,
    names: &Names,
) -> Result<()> {
    let shrinking = observation
        .live_replicas()
        .is_some_and(|current| current > qc.spec.replicas);
    if shrinking
        || qc.spec.rebalance_enabled()
        || qc.spec.zone_aware
        || rollout::may_be_rolling(qc, observation.live.as_ref())
    {
        observation.busy = busy_with(shared.applier.client(), names).await?;
    }
    Ok(())
}

/// Completes `observation` after apply: the applied StatefulSet, and Qdrant's view of the
/// peers once some pod is ready (a failure is kept as `Err` and logged, never returned).
pub async fn after_apply(
    observation: &mut Observation,
    qc: &QdrantCluster,
    names: &Names,
    applied: StatefulSet,
    access: &PeerAccess,
) {
    observation.applied = Some(applied);
    if observation.ready_replicas() > 0 {
        let observed = peers::observe(names, qc.spec.replicas, access).await;
        if let Err(error) = &observed {
            warn!(cluster = %object_key(qc), %error, "could not read peers from Qdrant");
        }
        observation.peers = Some(observed);
    }
}

/// Running QdrantBackups and QdrantRestores of this cluster (`spec.cluster.name`), and the
/// QdrantMigrations that read from it or write to it (`spec.source.cluster.name`,
/// `spec.target.cluster.name`) while Running or Verifying, as `QdrantBackup <name>` /
/// `QdrantRestore <name>` / `QdrantMigration <name>`: a peer restarted or drained under a
/// migration fails its scroll or upsert, and a shard moved during its verification changes
/// what the counts compare. Lists the three kinds in the cluster's namespace.
///
/// Errors: the API server's (transient ones are retried by the caller). A kind whose CRD is
/// not installed (404) counts as nothing running.
pub async fn busy_with(client: &kube::Client, names: &Names) -> Result<Vec<String>> {
    let targets = |c: &Option<api_types::collection::ClusterRef>| {
        c.as_ref().is_some_and(|c| c.name == names.cluster)
    };
    let mut busy = vec![];
    let backups: Api<QdrantBackup> = Api::namespaced(client.clone(), &names.namespace);
    for b in not_installed_is_empty(backups.list(&ListParams::default()).await)? {
        let running = b
            .status
            .as_ref()
            .is_some_and(|s| s.phase == BackupPhase::Running);
        if running && targets(&b.spec.cluster) {
            busy.push(format!("QdrantBackup {}", b.name_any()));
        }
    }
    let restores: Api<QdrantRestore> = Api::namespaced(client.clone(), &names.namespace);
    for r in not_installed_is_empty(restores.list(&ListParams::default()).await)? {
        let running = r
            .status
            .as_ref()
            .is_some_and(|s| s.phase == RestorePhase::Running);
        if running && targets(&r.spec.cluster) {
            busy.push(format!("QdrantRestore {}", r.name_any()));
        }
    }
    let migrations: Api<QdrantMigration> = Api::namespaced(client.clone(), &names.namespace);
    for m in not_installed_is_empty(migrations.list(&ListParams::default()).await)? {
        let running = m.status.as_ref().is_some_and(|s| {
            matches!(s.phase, MigrationPhase::Running | MigrationPhase::Verifying)
        });
        if running && m.spec.involves_cluster(&names.cluster) {
            busy.push(format!("QdrantMigration {}", m.name_any()));
        }
    }
    Ok(busy)
}

/// The items of a LIST, or none when the kind is not installed (404: its CRD is missing).
///
/// # Errors
/// Any other error of the list.
pub fn not_installed_is_empty<K: Clone>(
    list: kube::Result<kube::core::ObjectList<K>>,
) -> kube::Result<Vec<K>> {
    match list {
        Ok(l) => Ok(l.items),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(vec![]),
        Err(e) => Err(e),
    }
}
