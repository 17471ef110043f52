//! Health gate of rolling restarts: a pure decision over observed state whether the next pod
//! may be restarted now, which one, or what the rollout waits for.
//!
//! The controller restarts pods itself (one at a time, highest ordinal first) by deleting a
//! pod whose `controller-revision-hash` label differs from the StatefulSet's
//! `status.updateRevision`; the StatefulSet recreates it at the new revision. Before each
//! restart, and after it before the next one, the whole cluster must be healthy:
//!
//! - every pod `0..replicas` exists, is not terminating and is Ready (Kubernetes);
//! - `GET /readyz` answers 200 on every pod (Qdrant's readiness: consensus caught up and the
//!   peer's own unhealthy shards recovered, `src/common/health.rs` in Qdrant v1.18.3);
//! - consensus has a leader and no peer has pending operations (`raft_info.leader`,
//!   `raft_info.pending_operations` of `GET /cluster`);
//! - every shard replica of every collection is `Active` and no shard transfer runs
//!   (`GET /collections/{c}/cluster`); a hand-made `Listener` replica is accepted, since it
//!   never becomes `Active` on its own (Qdrant's `is_healthy` counts it as healthy too);
//! - no QdrantBackup or QdrantRestore of this cluster is Running.
//!
//! The function keeps no memory: the controller passes the pod it restarted last and how long
//! ago (from its status), and a pod that is not back within the timeout stops the rollout.

use std::collections::BTreeMap;
use std::time::Duration;

use super::plan::{CollectionPlacement, PeerId, summarize};

/// One pod of the StatefulSet as observed now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodObservation {
    /// The pod's StatefulSet ordinal.
    pub ordinal: u32,
    /// The pod's `Ready` condition is True.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// The pod's `controller-revision-hash` label (`None`: label missing).
    pub revision: Option<String>,
    /// `GET /readyz` on this pod: `Some(true)` for 200, `Some(false)` for any other status,
    /// `None` when it did not answer (or was not asked).
    pub readyz: Option<bool>,
    /// `raft_info.pending_operations` of `GET /cluster` on this pod (`None`: no answer).
    pub pending_operations: Option<u64>,
}

impl PodObservation {
    /// The pod counts as back after a restart: not terminating, Ready, `/readyz` passing, and
    /// at `update_revision` (what [`decide_restart`] waits for before going on).
    pub fn is_back_at(&self, update_revision: &str) -> bool {
        pod_problems("", Some(self)).is_empty() && self.revision.as_deref() == Some(update_revision)
    }
}

/// The pod the controller restarted last (recorded in its status) and the time since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restarting {
    /// The restarted pod's ordinal.
    pub ordinal: u32,
    /// Time since the controller deleted the pod.
    pub elapsed: Duration,
}

/// Everything [`decide_restart`] looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterObservation {
    /// The StatefulSet's name; pods are `<statefulset>-<ordinal>` (used in messages).
    pub statefulset: String,
    /// `spec.replicas` of the StatefulSet: pods `0..replicas` are expected.
    pub replicas: u32,
    /// `status.updateRevision` of the StatefulSet: the revision every pod should run.
    pub update_revision: String,
    /// The pods found (any order; pods with an ordinal `>= replicas` are ignored).
    pub pods: Vec<PodObservation>,
    /// `raft_info.leader` of `GET /cluster` (any pod's view), `None` when no pod knows one.
    pub leader: Option<PeerId>,
    /// Every collection's placement and transfers (`GET /collections/{c}/cluster`).
    pub placement: BTreeMap<String, CollectionPlacement>,
    /// Running QdrantBackups / QdrantRestores of this cluster, e.g. `QdrantBackup nightly-1`.
    pub busy: Vec<String>,
    /// The pod restarted last, while the controller still tracks it.
    pub restarting: Option<Restarting>,
    /// How long a restarted pod may take to be back (Ready, `/readyz` passing, at the update
    /// revision) before the rollout stops.
    pub pod_timeout: Duration,
}

/// What the rolling restart does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Every pod runs the update revision (and the last restarted one is back).
    Done,
    /// Delete this pod now; the StatefulSet recreates it at the update revision.
    RestartPod {
        /// The pod's ordinal (the highest outdated one).
        ordinal: u32,
        /// Why, for events and status.
        reason: String,
    },
    /// Not now; each entry says exactly what is awaited.
    Wait {
        /// What is awaited, most important first.
        reasons: Vec<String>,
    },
    /// The restarted pod is not back within the timeout: the rollout stops (Degraded).
    Stuck {
        /// The pod that did not come back.
        ordinal: u32,
        /// What it is still missing.
        reason: String,
    },
}

impl RestartDecision {
    /// One-line human summary for a status condition message.
    pub fn message(&self) -> String {
        match self {
            Self::Done => "every pod runs the update revision".to_owned(),
            Self::RestartPod { reason, .. } | Self::Stuck { reason, .. } => reason.clone(),
            Self::Wait { reasons } => summarize(reasons),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// What keeps `pod` (or its absence) from counting as back and healthy, in order.
fn pod_problems(name: &str, pod: Option<&PodObservation>) -> Vec<String> {
    let Some(pod) = pod else {
        return vec![format!("waiting for pod {name} to exist")];
    };
    let mut out = vec![];
    if pod.terminating {
        out.push(format!("waiting for pod {name} to finish terminating"));
    }
    if !pod.ready {
        out.push(format!("waiting for pod {name} to be Ready"));
    }
    match pod.readyz {
        Some(true) => {}
        Some(false) => out.push(format!("waiting for /readyz to pass on pod {name}")),
        None => out.push(format!("waiting for /readyz on pod {name} to answer")),
    }
    out
}

/// Decides the next move of a rolling restart from observed state.
///
/// 1. The pod restarted last is not back (missing, terminating, not Ready, `/readyz` not
///    passing, or still at an old revision): [`RestartDecision::Stuck`] once `elapsed`
///    exceeds `pod_timeout`, else [`RestartDecision::Wait`] naming what is missing.
/// 2. Every pod `0..replicas` exists at the update revision: [`RestartDecision::Done`].
/// 3. Any gate condition fails (see the module documentation):
///    [`RestartDecision::Wait`] listing every unmet condition.
/// 4. Otherwise [`RestartDecision::RestartPod`] for the highest ordinal whose revision is not
///    the update revision.
pub fn decide_restart(obs: &ClusterObservation) -> RestartDecision {
    let mut pods: BTreeMap<u32, &PodObservation> = BTreeMap::new();
    for p in obs.pods.iter().filter(|p| p.ordinal < obs.replicas) {
        pods.entry(p.ordinal).or_insert(p);
    }
    let name = |ordinal: u32| format!("{}-{ordinal}", obs.statefulset);
    let updated = |p: &PodObservation| p.revision.as_deref() == Some(obs.update_revision.as_str());

    if let Some(r) = obs.restarting.filter(|r| r.ordinal < obs.replicas) {
        let pod = pods.get(&r.ordinal).copied();
        let mut missing = pod_problems(&name(r.ordinal), pod);
        if let Some(p) = pod
            && !updated(p)
        {
            missing.push(format!(
                "waiting for pod {} to run revision {} (it runs {})",
                name(r.ordinal),
                obs.update_revision,
                p.revision.as_deref().unwrap_or("an unlabelled revision")
            ));
        }
        if !missing.is_empty() {
            if r.elapsed > obs.pod_timeout {
                return RestartDecision::Stuck {
                    ordinal: r.ordinal,
                    reason: format!(
                        "pod {} is not back {} after its restart (timeout {}): {}",
                        name(r.ordinal),
                        secs(r.elapsed),
                        secs(obs.pod_timeout),
                        missing.join("; ")
                    ),
                };
            }
            return RestartDecision::Wait { reasons: missing };
        }
    }

    let outdated: Vec<u32> = pods
        .values()
        .filter(|p| !updated(p))
        .map(|p| p.ordinal)
        .collect();
    let all_present = (0..obs.replicas).all(|o| pods.contains_key(&o));
    if outdated.is_empty() && all_present {
        return RestartDecision::Done;
    }

    let mut reasons: Vec<String> = obs
        .busy
        .iter()
        .map(|b| format!("waiting for {b} to finish (no restarts during backups and restores)"))
        .collect();
    for ordinal in 0..obs.replicas {
        let pod = pods.get(&ordinal).copied();
        reasons.extend(pod_problems(&name(ordinal), pod));
        if let Some(p) = pod {
            match p.pending_operations {
                Some(0) => {}
                Some(n) => reasons.push(format!(
                    "waiting for pod {} to apply {n} pending consensus operations",
                    name(ordinal)
                )),
                None => reasons.push(format!(
                    "waiting for pod {} to report its consensus state (GET /cluster)",
                    name(ordinal)
                )),
            }
        }
    }
    if obs.leader.is_none() {
        reasons.push("waiting for consensus to elect a leader".to_owned());
    }
    for (collection, c) in &obs.placement {
        for (shard_id, replicas) in &c.shards {
            for r in replicas.iter().filter(|r| !r.state.is_settled()) {
                reasons.push(format!(
                    "waiting for shard {shard_id} of collection {collection} to be Active on \
                     peer {} (state {})",
                    r.peer, r.state
                ));
            }
        }
        for t in &c.transfers {
            reasons.push(format!("waiting for {} to finish", t.describe(collection)));
        }
    }
    if !reasons.is_empty() {
        return RestartDecision::Wait { reasons };
    }

    match outdated.last() {
        Some(&ordinal) => {
            let p = pods.get(&ordinal);
            RestartDecision::RestartPod {
                ordinal,
                reason: format!(
                    "restarting pod {}: it runs revision {}, the update revision is {}",
                    name(ordinal),
                    p.and_then(|p| p.revision.as_deref())
                        .unwrap_or("(unlabelled)"),
                    obs.update_revision
                ),
            }
        }
        // Unreachable: no outdated pod means a pod is missing, which waits above.
        None => RestartDecision::Wait {
            reasons: vec!["waiting for every pod to exist".to_owned()],
        },
    }
}
