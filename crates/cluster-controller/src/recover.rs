//! Peer recovery: a pod whose volume came back empty rejoins with a fresh peer id, and the
//! shards its old (stale) peer held are copied back to it. One step per reconcile: observe
//! through the pods, ask the planner ([`crate::day2::recover::plan_recovery`]), carry out that
//! one step.
//!
//! Observation, every time (nothing is remembered between reconciles):
//!
//! - what each pod reports, from the reconcile's peers observation (`GET /cluster` on each
//!   pod, [`crate::peers::observe`]);
//! - through a live member (the lowest pod that answered): the consensus members and their p2p
//!   URIs (`GET /cluster`), the recovery records (`GET /cluster/metadata/keys`, then
//!   `GET /cluster/metadata/keys/{key}` for each [`RECORD_KEY_PREFIX`] key);
//! - only when a pod did not answer while a member that no pod reports carries its URI: the
//!   cluster's Pods (`GET /api/v1/namespaces/{ns}/pods?labelSelector=<selector labels>`); such
//!   a pod's Qdrant container's termination message holds [`FRESH_STORAGE_MARKER`] when
//!   Qdrant stopped with no Raft state of a joined peer on the volume although the cluster
//!   listed the pod as a member (never after a first start, nor after a crash of a peer that
//!   joined: the script checks the state Qdrant stopped with);
//! - only when a stale peer or a record exists: every collection's placement
//!   ([`crate::scale::observe_placement`]).
//!
//! Then at most one write to Qdrant: a record (`PUT /cluster/metadata/keys/{key}?wait=true`),
//! shard operations (`POST /collections/{c}/cluster`, at most one per collection), a peer
//! removal (`DELETE /cluster/peer/{id}`, never `force`) or a record deletion (`DELETE
//! /cluster/metadata/keys/{key}?wait=true`).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use api_types::{
    QdrantCluster,
    conditions::{ConditionStatus, find_condition, types},
};
use k8s_openapi::api::core::v1::Pod;
use reconcile_lib::{
    context::object_key,
    error::Error,
    qdrant::{QdrantClient, QdrantError},
};
use tracing::{info, warn};

use crate::vocabulary::{reasons::PEER_RECOVERY, reasons::PEER_RECOVERY_BLOCKED};
use crate::{
    build::{
        Names,
        statefulset::{CONTAINER, FRESH_STORAGE_MARKER},
    },
    context::Context,
    day2::{
        plan::ShardOp,
        recover::{
            PodState, RECORD_KEY_PREFIX, RecoveryInput, RecoveryRecord, RecoveryStep,
            plan_recovery, stale_peers,
        },
    },
    operations::{Operation, Scope},
    peers::{PeerAccess, PeersObservation},
    scale,
};

/// A recovery in progress: what it does or waits for, or why it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryProgress {
    /// For humans: the step's message.
    pub message: String,
    /// True when refused ([`PEER_RECOVERY_BLOCKED`]).
    pub blocked: bool,
}

/// True when the Qdrant container of `pod` last stopped (or just stopped) with no Raft state
/// of a joined peer on its volume although the cluster listed the pod as a member, and is not
/// running again: a line of its termination message
/// (`status.containerStatuses[qdrant].lastState.terminated.message`, or
/// `state.terminated.message`) starts with [`FRESH_STORAGE_MARKER`], and `state.running` is
/// unset (waiting in its restart back-off, or terminated).
///
/// A running container is never evidence: the marker in `lastState` describes the previous
/// instance, while the running one may have joined with a new peer id meanwhile (Qdrant lets a
/// new peer replace an old one on the same URI once the old one holds no shard), and that
/// new peer, merely slow to answer, must not be taken for the stale one. Seen with real
/// peers on a loaded machine: the pod's new peer was removed from consensus while it joined.
/// A volume that really came back empty keeps failing its join (exit 101) while the old peer
/// holds shards, so each back-off gives the recovery its next step.
pub fn shows_fresh_storage(pod: &Pod) -> bool {
    let Some(status) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER))
    else {
        return false;
    };
    if status.state.as_ref().is_some_and(|s| s.running.is_some()) {
        return false;
    }
    let message = |state: Option<&k8s_openapi::api::core::v1::ContainerState>| {
        state
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.message.clone())
    };
    [
        message(status.last_state.as_ref()),
        message(status.state.as_ref()),
    ]
    .into_iter()
    .flatten()
    .any(|m| m.lines().any(|l| l.starts_with(FRESH_STORAGE_MARKER)))
}

/// True when the stored status reports a recovery (so an interruption keeps it visible).
fn recovery_reported(qc: &QdrantCluster) -> bool {
    qc.status.as_ref().is_some_and(|s| {
        find_condition(&s.conditions, types::DEGRADED).is_some_and(|c| {
            c.status == ConditionStatus::True
                && (c.reason == PEER_RECOVERY || c.reason == PEER_RECOVERY_BLOCKED)
        })
    })
}

/// While a recovery was reported, a step that could not observe keeps it visible with `why`.
fn interrupted(qc: &QdrantCluster, why: String) -> Option<RecoveryProgress> {
    recovery_reported(qc).then_some(RecoveryProgress {
        message: why,
        blocked: false,
    })
}

/// One step of the peer recovery of `qc`, given the reconcile's peers observation. Returns
/// the progress to report, `None` when there is nothing to recover.
///
/// # Errors
/// Qdrant's ([`Error::Qdrant`]: the [`Recovery`] operation reports the interruption) and the
/// Kubernetes API's listing the Pods ([`Error::Kube`], for the error policy to retry).
pub async fn step(
    qc: &QdrantCluster,
    ctx: &Context,
    names: &Names,
    access: &PeerAccess,
    peers: Option<&Result<PeersObservation, String>>,
) -> Result<Option<RecoveryProgress>, Error> {
    let Some(Ok(observed)) = peers else {
        return Ok(interrupted(
            qc,
            "cannot continue the peer recovery: no pod answered GET /cluster".to_owned(),
        ));
    };
    let mut pods: BTreeMap<u32, PodState> = BTreeMap::new();
    for p in &observed.peers {
        if let Some(ordinal) = names.pod_ordinal(&p.pod) {
            pods.entry(ordinal).or_insert(PodState::Reports(p.peer_id));
        }
    }
    let Some(&member) = pods.keys().next() else {
        return Ok(interrupted(
            qc,
            "cannot continue the peer recovery: no pod answered GET /cluster".to_owned(),
        ));
    };
    observe_and_act(qc, ctx, names, access, member, &observed.members, pods).await
}

async fn observe_and_act(
    qc: &QdrantCluster,
    ctx: &Context,
    names: &Names,
    access: &PeerAccess,
    member: u32,
    uris: &BTreeMap<u64, String>,
    mut pods: BTreeMap<u32, PodState>,
) -> Result<Option<RecoveryProgress>, Error> {
    let client = access.client(names, member)?;
    let members = scale::members_by_ordinal(uris, names);
    let replicas = u32::try_from(qc.spec.replicas.max(0)).unwrap_or(0);
    let records = read_records(qc, &client).await?;

    // A pod that did not answer matters only when a member nobody reports carries its URI.
    let reported: BTreeSet<u64> = pods
        .values()
        .filter_map(|p| match p {
            PodState::Reports(id) => Some(*id),
            PodState::FreshStorage | PodState::Silent => None,
        })
        .collect();
    let suspects: BTreeSet<u32> = members
        .iter()
        .filter(|(id, _)| !reported.contains(id))
        .filter_map(|(_, ordinal)| *ordinal)
        .filter(|o| *o < replicas && !pods.contains_key(o))
        .collect();
    let listed = if suspects.is_empty() {
        vec![]
    } else {
        crate::pods::list(ctx.shared.applier.client(), qc, names).await?
    };
    for ordinal in suspects {
        let name = format!("{}-{ordinal}", names.cluster);
        let fresh = listed.iter().any(|pod| {
            pod.metadata.name.as_deref() == Some(name.as_str()) && shows_fresh_storage(pod)
        });
        pods.insert(
            ordinal,
            if fresh {
                PodState::FreshStorage
            } else {
                PodState::Silent
            },
        );
    }

    if records.is_empty() && stale_peers(replicas, &pods, &members).is_empty() {
        return Ok(None);
    }
    let placement = scale::observe_placement(&client).await?;
    let step = plan_recovery(&RecoveryInput {
        replicas,
        pods: &pods,
        members: &members,
        placement: &placement,
        records: &records,
    });
    act(qc, ctx, names, &client, &records, step).await
}

/// Carries out one recovery `step` through `client` (a member pod's Qdrant) and sends its
/// events: record the stale peer in the cluster metadata, issue shard operations, remove the
/// stale peer, or forget a finished record. Returns the progress to report; `None` when idle.
///
/// Errors: Qdrant's ([`Error::Qdrant`]).
async fn act(
    qc: &QdrantCluster,
    ctx: &Context,
    names: &Names,
    client: &QdrantClient,
    records: &[RecoveryRecord],
    step: RecoveryStep,
) -> Result<Option<RecoveryProgress>, Error> {
    let message = step.message();
    info!(cluster = %object_key(qc), step = %message, "peer recovery");
    match &step {
        RecoveryStep::Idle => return Ok(None),
        RecoveryStep::Record(record) => {
            let first = !records.iter().any(|r| r.stale_peer == record.stale_peer);
            client
                .set_cluster_metadata(&record.key(), &record.to_value())
                .await?;
            if first {
                ctx.shared
                    .events
                    .warning(
                        qc,
                        "StalePeerDetected",
                        "Recover",
                        format!(
                            "pod {}-{} came back with an empty volume; its old peer {} is \
                             stale: its {} shard replica(s) are recorded in Qdrant's cluster \
                             metadata ({}), then dropped, the peer removed, and the shards \
                             copied to the pod's new peer",
                            names.cluster,
                            record.ordinal,
                            record.stale_peer,
                            record.shards.values().map(BTreeSet::len).sum::<usize>(),
                            record.key()
                        ),
                    )
                    .await;
            }
        }
        RecoveryStep::Refuse(_) => {
            if !crate::vocabulary::reported(qc, types::DEGRADED, PEER_RECOVERY_BLOCKED, &message) {
                ctx.shared
                    .events
                    .warning(qc, "PeerRecoveryBlocked", "Recover", message.clone())
                    .await;
            }
        }
        RecoveryStep::Issue(ops) => {
            for op in ops {
                client
                    .update_collection_cluster(op.collection(), &op.body())
                    .await?;
                let reason = match op {
                    ShardOp::Replicate { .. } => "ShardReplicated",
                    ShardOp::DropReplica { .. } | ShardOp::Move { .. } => "StaleReplicaDropped",
                };
                ctx.shared
                    .events
                    .normal(qc, reason, "Recover", format!("started: {op}"))
                    .await;
            }
        }
        RecoveryStep::RemovePeer { peer_id, ordinal } => {
            client.remove_peer(*peer_id).await?;
            ctx.shared
                .events
                .normal(
                    qc,
                    "StalePeerRemoved",
                    "Recover",
                    format!(
                        "stale peer {peer_id} of pod {}-{ordinal} removed from consensus; the \
                         pod joins with a fresh peer id on its next start",
                        names.cluster
                    ),
                )
                .await;
        }
        RecoveryStep::Forget(record) => {
            client.delete_cluster_metadata(&record.key()).await?;
            ctx.shared
                .events
                .normal(qc, "PeerRecovered", "Recover", message.clone())
                .await;
        }
        RecoveryStep::Wait(_) => {}
    }
    Ok(Some(RecoveryProgress {
        blocked: matches!(step, RecoveryStep::Refuse(_)),
        message,
    }))
}

/// The recovery records in the cluster metadata; keys under [`RECORD_KEY_PREFIX`] that do not
/// hold a record are logged and ignored.
async fn read_records(
    qc: &QdrantCluster,
    client: &QdrantClient,
) -> Result<Vec<RecoveryRecord>, Error> {
    let mut records = vec![];
    for key in client.cluster_metadata_keys().await? {
        if !key.starts_with(RECORD_KEY_PREFIX) {
            continue;
        }
        let value = client.cluster_metadata(&key).await?;
        match RecoveryRecord::from_metadata(&key, &value) {
            Some(record) => records.push(record),
            None => warn!(
                cluster = %object_key(qc),
                %key,
                "ignoring a cluster metadata key that holds no recovery record"
            ),
        }
    }
    Ok(records)
}

/// The peer recovery operation ([`step`]): a pod whose volume came back empty rejoins with a
/// fresh peer id and gets its shards back. Disruptive: never in the same reconcile as a
/// scale-down step; a recovery in progress holds the rollout and the rebalance.
pub struct Recovery;

impl Operation for Recovery {
    const NAME: &'static str = "peer recovery";
    const DISRUPTIVE: bool = true;
    type Progress = RecoveryProgress;

    fn wanted(&self, scope: &Scope<'_>) -> bool {
        scope.observation.applied.is_some()
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<RecoveryProgress>, Error> {
        step(
            scope.qc,
            scope.ctx,
            scope.names,
            scope.access,
            scope.observation.peers.as_ref(),
        )
        .await
    }

    fn interrupted(&self, scope: &Scope<'_>, error: &QdrantError) -> Option<RecoveryProgress> {
        interrupted(
            scope.qc,
            format!("cannot reach Qdrant to continue the peer recovery: {error}"),
        )
    }

    fn requeue(&self, scope: &Scope<'_>, _: &RecoveryProgress) -> Option<Duration> {
        Some(scope.ctx.scale_down_requeue)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pod(state: serde_json::Value, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-2"},
            "status": {"containerStatuses": [{"name": CONTAINER, "ready": false,
                "restartCount": 1, "image": "qdrant/qdrant", "imageID": "", "state": state,
                "lastState": {"terminated": {"exitCode": 101, "message": message}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn fresh_storage_only_from_a_container_that_is_not_running_again() {
        let marker = format!("{FRESH_STORAGE_MARKER}: no Raft state of a joined peer\n");
        let waiting = serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let running = serde_json::json!({"running": {"startedAt": "2026-12-02T00:38:36Z"}});
        assert!(shows_fresh_storage(&pod(waiting.clone(), &marker)));
        // The next instance runs (and may have joined with a new peer id): no evidence.
        assert!(!shows_fresh_storage(&pod(running, &marker)));
        assert!(!shows_fresh_storage(&pod(waiting, "panicked\n")));
    }
}
