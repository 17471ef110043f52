//! `scale-down-plan CLUSTER N`: what the operator would do to take a cluster down to N peers,
//! or why it would refuse, from its own pure planner
//! ([`cluster_controller::day2::plan::plan_scale_down`]) run forward on what Qdrant reports
//! now. Nothing is written anywhere.

use std::collections::{BTreeMap, BTreeSet};

use cluster_controller::{
    build::Names,
    day2::plan::{
        CollectionPlacement, Peer, PeerId, Replica, ReplicaState, ScaleDownStep, ShardOp,
        plan_scale_down,
    },
    scale::{ClusterView, observe},
};
use reconcile_lib::qdrant::QdrantClient;

use crate::{PluginError, Result};

/// The preview ([`preview`]) of a scale-down of QdrantCluster `namespace/name` to `target`
/// peers, from the StatefulSet size the cluster reports (`status.replicas`, else
/// `spec.replicas`) and what `qdrant` reports (`GET /cluster`, the placement of every
/// collection).
///
/// # Errors
/// [`PluginError::NotFound`] for a missing cluster; [`PluginError::Input`] when `target` is
/// not below the current size; the API's and Qdrant's errors.
pub async fn report(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    qdrant: &QdrantClient,
    target: u32,
) -> Result<String> {
    let qc = crate::get_cluster(client, namespace, name).await?;
    let current = qc
        .status
        .as_ref()
        .map(|s| s.replicas)
        .filter(|r| *r > 0)
        .unwrap_or(qc.spec.replicas);
    let current = u32::try_from(current).unwrap_or(0);
    if target >= current {
        return Err(PluginError::Input(format!(
            "the cluster has {current} pods: a scale-down goes below that, not to {target}"
        )));
    }
    let view = observe(qdrant).await?;
    let names = Names::of(&qc);
    let mut out = format!(
        "scale-down of QdrantCluster {namespace}/{name} from {current} to {target} pods:\n"
    );
    for (i, step) in preview(&view, &names, current, target).iter().enumerate() {
        out.push_str(&format!("  {}. {step}\n", i + 1));
    }
    Ok(out)
}

/// At most this many planner steps are previewed (a cluster of a few hundred shards needs
/// far fewer).
pub const MAX_STEPS: usize = 1000;

/// Pure: the steps the operator would take from `current` to `target` pods on `view` (Qdrant's
/// consensus members and placement, [`cluster_controller::scale::observe`]), one line each,
/// assuming each shard operation completes as planned:
///
/// - `move shard S of C from peer A to peer B` (and replicate, drop), in the planner's batches;
/// - `remove peer P (pod N) from consensus`, `StatefulSet shrinks to R`;
/// - a refusal (the planner's reasons) or a wait (a transfer already running) ends the plan.
pub fn preview(view: &ClusterView, names: &Names, current: u32, target: u32) -> Vec<String> {
    let mut members: BTreeMap<PeerId, String> = view.members.clone();
    let mut placement = view.placement.clone();
    let mut current = current;
    let mut out = vec![];
    for _ in 0..MAX_STEPS {
        let consensus: BTreeSet<PeerId> = members.keys().copied().collect();
        let peers: Vec<Peer> = ClusterView {
            members: members.clone(),
            placement: BTreeMap::new(),
        }
        .peers_by_uri(names);
        match plan_scale_down(&peers, &consensus, current, target, &placement) {
            ScaleDownStep::Issue(ops) => {
                for op in &ops {
                    out.push(op.to_string());
                    apply(&mut placement, op);
                }
            }
            ScaleDownStep::RemovePeer { peer_id, ordinal } => {
                out.push(format!(
                    "remove peer {peer_id} (pod {}-{ordinal}) from consensus",
                    names.cluster
                ));
                members.remove(&peer_id);
            }
            ScaleDownStep::Shrink { replicas } => {
                out.push(format!("StatefulSet shrinks to {replicas} pods"));
                current = replicas;
            }
            ScaleDownStep::Done => {
                out.push(format!("done: {current} pods"));
                return out;
            }
            step @ ScaleDownStep::Refuse(_) => {
                out.push(format!("refused: {}", step.message()));
                return out;
            }
            step @ ScaleDownStep::Wait(_) => {
                out.push(format!("first waits: {}", step.message()));
                return out;
            }
        }
    }
    out.push(format!("(stopped after {MAX_STEPS} steps)"));
    out
}

/// `op` as if Qdrant had completed it: a move or replication adds an Active replica on the
/// destination (a move also drops the source's), a drop removes the replica.
fn apply(placement: &mut BTreeMap<String, CollectionPlacement>, op: &ShardOp) {
    let Some(p) = placement.get_mut(op.collection()) else {
        return;
    };
    match op {
        ShardOp::Move {
            shard_id, from, to, ..
        } => {
            let replicas = p.shards.entry(*shard_id).or_default();
            replicas.retain(|r| r.peer != *from);
            replicas.push(Replica::new(*to, ReplicaState::Active));
        }
        ShardOp::Replicate { shard_id, to, .. } => {
            p.shards
                .entry(*shard_id)
                .or_default()
                .push(Replica::new(*to, ReplicaState::Active));
        }
        ShardOp::DropReplica { shard_id, peer, .. } => {
            if let Some(replicas) = p.shards.get_mut(shard_id) {
                replicas.retain(|r| r.peer != *peer);
            }
        }
    }
}
