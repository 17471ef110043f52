//! Safe scale-down: observe Qdrant, ask the planner ([`crate::day2::plan`]) for the next step,
//! carry out that one step. Called on every reconcile while the live StatefulSet has more
//! pods than `spec.replicas`; the StatefulSet keeps its size until the planner says to shrink.
//!
//! Everything is re-observed each time (peers from `GET /cluster`, placement from
//! `GET /collections/{c}/cluster`), so a restarted or newly elected controller resumes where
//! the last one stopped and never issues an operation twice.

use std::collections::{BTreeMap, BTreeSet};

use std::time::Duration;

use reconcile_lib::{
    error::Error,
    qdrant::{QdrantClient, QdrantError},
};

use crate::{
    build::Names,
    day2::{
        plan::{CollectionPlacement, Peer, PeerId, ScaleDownStep, plan_scale_down_in_zones},
        zones::zones_by_peer,
    },
    operations::{Operation, Scope},
    vocabulary::{reasons::SCALE_DOWN_REFUSED, reported, types::SCALE_DOWN_BLOCKED},
};

/// What the StatefulSet should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleDecision {
    /// Keep `replicas` pods: shards are still moving off the leaving peer, or the scale-down
    /// is refused (`blocked`). `message` says what is happening or why it is refused.
    Hold {
        /// Pods to keep.
        replicas: i32,
        /// What the controller is doing or waiting for (for conditions and events).
        message: String,
        /// True when the scale-down is refused (condition ScaleDownBlocked).
        blocked: bool,
    },
    /// Shrink the StatefulSet to `replicas`: the peers above it hold nothing and left
    /// consensus.
    Shrink {
        /// Pods to keep.
        replicas: i32,
    },
}

/// The StatefulSet ordinal of a peer from its p2p URI
/// (`http://<cluster>-<ordinal>.<cluster>-headless.<ns>.svc:6335/`).
pub fn ordinal_from_uri(uri: &str, names: &Names) -> Option<u32> {
    let url = url::Url::parse(uri).ok()?;
    let host = url.host_str()?;
    let pod = host.split('.').next()?;
    names.pod_ordinal(pod)
}

/// Qdrant's view of the cluster, as one member answers it: the consensus members and every
/// collection's placement. Read by [`observe`]; shared by the scale-down ([`step`]) and the
/// peer recovery ([`crate::recover`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// Consensus members: peer id -> p2p URI (`peers` of `GET /cluster`).
    pub members: BTreeMap<PeerId, String>,
    /// Every collection's placement and running transfers, by name.
    pub placement: BTreeMap<String, CollectionPlacement>,
}

impl ClusterView {
    /// The members' ids.
    pub fn consensus(&self) -> BTreeSet<PeerId> {
        self.members.keys().copied().collect()
    }

    /// Each member whose p2p URI names a pod of this cluster, as (ordinal, peer id).
    pub fn peers_by_uri(&self, names: &Names) -> Vec<Peer> {
        members_by_ordinal(&self.members, names)
            .into_iter()
            .filter_map(|(peer_id, ordinal)| ordinal.map(|ordinal| Peer { ordinal, peer_id }))
            .collect()
    }
}

/// Consensus members (peer id -> p2p URI) -> the pod ordinal their URI names, if any
/// ([`ordinal_from_uri`]).
pub fn members_by_ordinal(
    members: &BTreeMap<PeerId, String>,
    names: &Names,
) -> BTreeMap<PeerId, Option<u32>> {
    members
        .iter()
        .map(|(id, uri)| (*id, ordinal_from_uri(uri, names)))
        .collect()
}

/// Every collection's placement as the member behind `client` sees it: `GET /collections`,
/// then per collection `GET /collections/{c}` (for `config.params.replication_factor`,
/// 1 when absent) and `GET /collections/{c}/cluster`.
///
/// Errors: Qdrant's, unchanged.
pub async fn observe_placement(
    client: &QdrantClient,
) -> Result<BTreeMap<String, CollectionPlacement>, QdrantError> {
    let mut placement = BTreeMap::new();
    for collection in client.collections().await? {
        let rf = client
            .collection_info(&collection)
            .await?
            .and_then(|c| {
                c.config
                    .pointer("/params/replication_factor")
                    .and_then(|v| v.as_u64())
            })
            .unwrap_or(1);
        let cluster = client.collection_cluster_info(&collection).await?;
        let rf = u32::try_from(rf).unwrap_or(u32::MAX);
        placement.insert(
            collection,
            CollectionPlacement::from_cluster_info(&cluster, rf),
        );
    }
    Ok(placement)
}

/// [`ClusterView`] through `client`: `GET /cluster`, then [`observe_placement`].
///
/// Errors: Qdrant's, unchanged.
pub async fn observe(client: &QdrantClient) -> Result<ClusterView, QdrantError> {
    let info = client.cluster_info().await?;
    let members = info
        .peers
        .iter()
        .map(|(id, p)| (*id, p.uri.clone()))
        .collect();
    Ok(ClusterView {
        members,
        placement: observe_placement(client).await?,
    })
}

/// Observes the cluster through `client` (any peer that stays: pod 0) with [`observe`], plans,
/// and carries out one step. Calls `GET /cluster`, `GET /collections`, `GET /collections/{c}`
/// and `GET /collections/{c}/cluster` for each collection, then at most: one
/// `POST /collections/{c}/cluster` per collection, or one `DELETE /cluster/peer/{id}`.
/// `zones` (pod ordinal -> zone, read with `spec.zoneAware`, else empty) makes the drain
/// prefer targets in zones a shard is not in yet
/// ([`crate::day2::plan::plan_scale_down_in_zones`]).
///
/// Errors: Qdrant's, unchanged (the caller holds the size and retries).
pub async fn step(
    names: &Names,
    current: i32,
    target: i32,
    client: &QdrantClient,
    zones: &BTreeMap<u32, String>,
) -> Result<ScaleDecision, QdrantError> {
    let view = observe(client).await?;
    let consensus = view.consensus();
    let peers = view.peers_by_uri(names);
    let placement = view.placement;
    let as_u32 = |n: i32| u32::try_from(n.max(0)).unwrap_or(0);
    let step = plan_scale_down_in_zones(
        &peers,
        &consensus,
        as_u32(current),
        as_u32(target),
        &placement,
        &zones_by_peer(&peers, zones),
    );
    let message = step.message();
    let hold = |message: String, blocked: bool| ScaleDecision::Hold {
        replicas: current,
        message,
        blocked,
    };
    Ok(match step {
        ScaleDownStep::Issue(ops) => {
            for op in &ops {
                client
                    .update_collection_cluster(op.collection(), &op.body())
                    .await?;
            }
            hold(message, false)
        }
        ScaleDownStep::Wait(_) => hold(message, false),
        ScaleDownStep::RemovePeer { peer_id, .. } => {
            client.remove_peer(peer_id).await?;
            hold(message, false)
        }
        ScaleDownStep::Shrink { replicas } => ScaleDecision::Shrink {
            replicas: i32::try_from(replicas).unwrap_or(current),
        },
        ScaleDownStep::Refuse(_) => hold(message, true),
        ScaleDownStep::Done => ScaleDecision::Shrink { replicas: target },
    })
}

/// A scale-down in progress: what it does or waits for, or why it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDownProgress {
    /// For humans: the planner's step message.
    pub message: String,
    /// True when refused.
    pub blocked: bool,
}

/// What a scale-down step decided: the pods the StatefulSet keeps (`spec.replicas` once the
/// leaving peers are drained and removed), and the progress to report while it holds more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDownOutcome {
    /// `spec.replicas` the StatefulSet is applied with.
    pub replicas: i32,
    /// `None` once the StatefulSet may shrink.
    pub progress: Option<ScaleDownProgress>,
}

/// The scale-down operation: while the live StatefulSet has more pods than `spec.replicas`,
/// drain the leaving peers through pod 0 (which never leaves) and only then let the
/// StatefulSet shrink. Waits for running backups and restores. A refusal is reported
/// (condition ScaleDownBlocked, a Warning event when the message changes), never an error;
/// an unreachable Qdrant keeps the current size.
pub struct ScaleDown;

impl ScaleDown {
    fn current(scope: &Scope<'_>) -> i32 {
        scope
            .observation
            .live_replicas()
            .unwrap_or(scope.qc.spec.replicas)
    }
}

impl Operation for ScaleDown {
    const NAME: &'static str = "scale-down";
    const DISRUPTIVE: bool = true;
    type Progress = ScaleDownOutcome;

    fn wanted(&self, scope: &Scope<'_>) -> bool {
        scope
            .observation
            .live_replicas()
            .is_some_and(|current| current > scope.qc.spec.replicas)
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<ScaleDownOutcome>, Error> {
        let (qc, names) = (scope.qc, scope.names);
        let current = Self::current(scope);
        let hold = |message: String, blocked: bool| ScaleDownOutcome {
            replicas: current,
            progress: Some(ScaleDownProgress { message, blocked }),
        };
        let busy = &scope.observation.busy;
        if !busy.is_empty() {
            return Ok(Some(hold(
                format!(
                    "holding {current} pods: waiting for {} to finish before draining peers \
                     (no scale-down during backups and restores)",
                    busy.join(", ")
                ),
                false,
            )));
        }
        let client = scope.access.client(names, 0)?;
        let events = &scope.ctx.shared.events;
        let zones = if qc.spec.zone_aware {
            let key = qc.spec.zone_topology_key();
            crate::pods::zones(scope.ctx.shared.applier.client(), qc, names, key)
                .await?
                .by_ordinal
        } else {
            BTreeMap::new()
        };
        Ok(Some(
            match step(names, current, qc.spec.replicas, &client, &zones).await? {
                ScaleDecision::Shrink { replicas } => {
                    events
                    .normal(qc, "ScaledDown", "Scale", format!("peers above ordinal {} drained and removed from consensus; StatefulSet shrinks to {replicas}", replicas - 1))
                    .await;
                    ScaleDownOutcome {
                        replicas,
                        progress: None,
                    }
                }
                ScaleDecision::Hold {
                    replicas,
                    message,
                    blocked,
                } => {
                    if blocked && !reported(qc, SCALE_DOWN_BLOCKED, SCALE_DOWN_REFUSED, &message) {
                        events
                            .warning(qc, "ScaleDownBlocked", "Scale", message.clone())
                            .await;
                    }
                    ScaleDownOutcome {
                        replicas,
                        progress: Some(ScaleDownProgress { message, blocked }),
                    }
                }
            },
        ))
    }

    fn interrupted(&self, scope: &Scope<'_>, error: &QdrantError) -> Option<ScaleDownOutcome> {
        let current = Self::current(scope);
        Some(ScaleDownOutcome {
            replicas: current,
            progress: Some(ScaleDownProgress {
                message: format!(
                    "holding {current} pods: cannot reach Qdrant to plan the scale-down: {error}"
                ),
                blocked: false,
            }),
        })
    }

    fn holds(&self, outcome: &ScaleDownOutcome) -> bool {
        outcome.progress.is_some()
    }

    fn requeue(&self, scope: &Scope<'_>, outcome: &ScaleDownOutcome) -> Option<Duration> {
        outcome
            .progress
            .is_some()
            .then_some(scope.ctx.scale_down_requeue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_from_peer_uris() {
        let names = Names {
            cluster: "demo".into(),
            namespace: "ns".into(),
            headless: "demo-headless".into(),
            config_map: "demo-config".into(),
            api_key_secret: "demo-api-key".into(),
            read_only_api_key_secret: "demo-read-only-api-key".into(),
            served_keys_secret: "demo-served-keys".into(),
            ca_secret: "demo-ca".into(),
            tls_secret: "demo-tls".into(),
            client_tls: false,
            p2p_tls: false,
        };
        assert_eq!(
            ordinal_from_uri("http://demo-2.demo-headless.ns.svc:6335/", &names),
            Some(2)
        );
        assert_eq!(
            ordinal_from_uri("http://demo-10.demo-headless:6335", &names),
            Some(10)
        );
        assert_eq!(
            ordinal_from_uri("http://other-1.other-headless:6335/", &names),
            None
        );
        assert_eq!(ordinal_from_uri("not a uri", &names), None);
    }
}
