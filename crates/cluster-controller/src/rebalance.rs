//! Opt-in rebalancing (`spec.rebalance.enabled`): once every pod is Ready and no scale-down,
//! rolling restart, backup or restore runs, move shard replicas so that each peer holds an
//! even share. The moves are chosen by the pure planner ([`crate::day2::plan::plan_rebalance`]),
//! at most one per collection per reconcile and none in a collection where a transfer runs,
//! so repeated reconciles walk the cluster to balance one transfer at a time per collection.

use std::collections::BTreeMap;

use api_types::cluster::{PeerStatus, RebalanceStatus, ShardMove};
use std::time::Duration;

use reconcile_lib::{error::Error, qdrant::QdrantError};

use crate::{
    build::Names,
    day2::{
        plan::{CollectionPlacement, Peer, ShardOp, plan_rebalance_in_zones},
        zones::zones_by_peer,
    },
    operations::{Operation, Scope},
    peers::PeerAccess,
};

fn shard_move(collection: &str, op: &ShardOp) -> Option<ShardMove> {
    match op {
        ShardOp::Move {
            shard_id, from, to, ..
        } => Some(ShardMove {
            collection: collection.to_owned(),
            shard_id: *shard_id,
            from_peer_id: *from,
            to_peer_id: *to,
        }),
        _ => None,
    }
}

/// The running transfers of every collection, as [`ShardMove`]s.
pub fn active_moves(placement: &BTreeMap<String, CollectionPlacement>) -> Vec<ShardMove> {
    placement
        .iter()
        .flat_map(|(c, p)| {
            p.transfers.iter().map(move |t| ShardMove {
                collection: c.clone(),
                shard_id: t.shard_id,
                from_peer_id: t.from,
                to_peer_id: t.to,
            })
        })
        .collect()
}

/// The peers to balance over from the peers the pods reported (`status.peers` as observed
/// this reconcile): pod `<cluster>-<i>` gives ordinal `i`.
pub fn peers_of(names: &Names, observed: &[PeerStatus]) -> Vec<Peer> {
    observed
        .iter()
        .filter_map(|p| {
            let ordinal = names.pod_ordinal(&p.pod)?;
            Some(Peer {
                ordinal,
                peer_id: p.peer_id,
            })
        })
        .collect()
}

/// One rebalancing step through pod 0: reads the placement of every collection
/// ([`crate::scale::observe_placement`]), plans, and sends each planned move
/// (`POST /collections/{c}/cluster` with `move_shard`).
///
/// `peers` are the cluster's peers, one per Ready pod, every pod counted; `zones` (pod ordinal
/// -> zone, read with `spec.zoneAware`, else empty) keeps every move from taking a shard out
/// of a zone ([`crate::day2::plan::plan_rebalance_in_zones`]). Returns `None` when the
/// cluster is balanced and no transfer runs, else what was planned and what runs.
///
/// Errors: Qdrant's (the caller reports and retries on the next reconcile).
pub async fn step(
    names: &Names,
    access: &PeerAccess,
    peers: &[Peer],
    zones: &BTreeMap<u32, String>,
) -> Result<Option<RebalanceStatus>, QdrantError> {
    let client = access.client(names, 0)?;
    let placement = crate::scale::observe_placement(&client).await?;
    let plan = plan_rebalance_in_zones(peers, &placement, &zones_by_peer(peers, zones));
    let active = active_moves(&placement);
    if plan.is_balanced() && active.is_empty() {
        return Ok(None);
    }
    let mut planned = vec![];
    for op in &plan.ops {
        client
            .update_collection_cluster(op.collection(), &op.body())
            .await?;
        planned.extend(shard_move(op.collection(), op));
    }
    let mut parts = vec![];
    if !planned.is_empty() {
        parts.push(format!(
            "moving {}",
            planned.iter().map(describe).collect::<Vec<_>>().join(", ")
        ));
    }
    parts.extend(plan.deferred.iter().cloned());
    Ok(Some(RebalanceStatus {
        planned,
        active,
        message: if parts.is_empty() {
            "waiting for the running transfers to finish".to_owned()
        } else {
            parts.join("; ")
        },
    }))
}

fn describe(m: &ShardMove) -> String {
    format!(
        "shard {} of collection {} from peer {} to peer {}",
        m.shard_id, m.collection, m.from_peer_id, m.to_peer_id
    )
}

/// The opt-in rebalance (`spec.rebalance`): only a settled cluster (every pod ready, every
/// peer known, no backup or restore running) moves shards ([`step`]). Disruptive: it runs
/// only when no scale-down, recovery or rollout step holds the cluster.
pub struct Rebalance;

impl Operation for Rebalance {
    const NAME: &'static str = "rebalance";
    const DISRUPTIVE: bool = true;
    type Progress = RebalanceStatus;

    fn wanted(&self, scope: &Scope<'_>) -> bool {
        let (qc, observation) = (scope.qc, scope.observation);
        let replicas = usize::try_from(qc.spec.replicas).unwrap_or(0);
        qc.spec.rebalance_enabled()
            && observation.ready_replicas() == qc.spec.replicas
            && observation.busy.is_empty()
            && observation
                .peers_ok()
                .is_some_and(|observed| observed.peers.len() == replicas)
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<RebalanceStatus>, Error> {
        let Some(observed) = scope.observation.peers_ok() else {
            return Ok(None);
        };
        let peers = peers_of(scope.names, &observed.peers);
        let qc = scope.qc;
        let zones = if qc.spec.zone_aware {
            let key = qc.spec.zone_topology_key();
            crate::pods::zones(scope.ctx.shared.applier.client(), qc, scope.names, key)
                .await?
                .by_ordinal
        } else {
            BTreeMap::new()
        };
        Ok(step(scope.names, scope.access, &peers, &zones).await?)
    }

    fn requeue(&self, scope: &Scope<'_>, r: &RebalanceStatus) -> Option<Duration> {
        (!r.planned.is_empty() || !r.active.is_empty()).then_some(scope.ctx.scale_down_requeue)
    }
}
