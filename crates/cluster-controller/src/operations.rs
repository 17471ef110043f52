//! The day-2 operations behind one trait, run by one driver in one declared order.
//!
//! Each operation (scale-down, downgrade refusal, volume expansion, peer recovery, rollout,
//! rebalance, zone balance) implements [`Operation`]: whether it has anything to look at now (pure, from the
//! reconcile's [`Observation`]), one step that observes what its pure planner needs, asks it,
//! and carries out at most one action, the progress it reports when Qdrant fails, and what
//! its progress means for the other operations and the requeue. The [`Driver`] holds the
//! rules every operation shares:
//!
//! - **At most one disruptive step per reconcile.** A disruptive operation (one that drains,
//!   restarts or moves shards) runs only while no earlier disruptive operation holds the
//!   cluster; one whose progress [`holds`](Operation::holds) it stops the later ones. With the
//!   order of [`crate::reconcile`] that is scale-down > recovery > rollout > rebalance >
//!   zone balance.
//! - **One rule for Qdrant errors.** A [`QdrantError`] from a step is logged with the
//!   operation's name and becomes the operation's [`interrupted`](Operation::interrupted)
//!   progress; the next reconcile observes again. Kubernetes errors are returned for the error
//!   policy.
//! - **One requeue.** The earliest [`requeue`](Operation::requeue) of any progress, else the
//!   resync interval.
//! - **One count.** Each reconcile in which an operation's progress [`holds`](Operation::holds)
//!   counts once in `qdrant_operator_day2_steps_total{kind=<operation>}`.

use std::{future::Future, time::Duration};

use api_types::QdrantCluster;
use k8s_openapi::api::apps::v1::StatefulSet;
use reconcile_lib::{context::object_key, error::Error, qdrant::QdrantError};
use tracing::warn;

use crate::{
    build::Names,
    context::Context,
    peers::{PeerAccess, PeersObservation},
};

/// What one reconcile observed, once, for every operation: the live StatefulSet before apply,
/// the running backups and restores, and after apply the applied StatefulSet and Qdrant's
/// view of its peers. Built by [`crate::observe`].
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The StatefulSet as it was before this reconcile applied anything (`None`: not created
    /// yet).
    pub live: Option<StatefulSet>,
    /// QdrantBackups and QdrantRestores of this cluster that are Running (`kind/name`); listed
    /// only when a disruptive step may be due, else empty.
    pub busy: Vec<String>,
    /// The StatefulSet as this reconcile applied it; `None` before apply.
    pub applied: Option<StatefulSet>,
    /// `GET /cluster` of every pod, once some pod is ready: `None` before apply or while no
    /// pod is ready, `Err` with why when no pod answered.
    pub peers: Option<Result<PeersObservation, String>>,
}

impl Observation {
    /// `spec.replicas` of the live StatefulSet.
    pub fn live_replicas(&self) -> Option<i32> {
        self.live
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
    }

    /// `status.readyReplicas` of the applied StatefulSet (0 before apply).
    pub fn ready_replicas(&self) -> i32 {
        self.applied
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    }

    /// `volumeClaimTemplates` of the live StatefulSet: immutable, so the build keeps them.
    pub fn claim_templates(
        &self,
    ) -> Option<Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim>> {
        self.live
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.volume_claim_templates.clone())
    }

    /// Qdrant's view when every pod that answered agreed enough to read it.
    pub fn peers_ok(&self) -> Option<&PeersObservation> {
        self.peers.as_ref().and_then(|p| p.as_ref().ok())
    }
}

/// What an operation works with: the cluster, its child names, the controller's context, how
/// to reach each pod's Qdrant, and the reconcile's observation.
pub struct Scope<'a> {
    /// The QdrantCluster being reconciled.
    pub qc: &'a QdrantCluster,
    /// Its children's names.
    pub names: &'a Names,
    /// Clients, events and settings.
    pub ctx: &'a Context,
    /// How the operator reaches each pod's Qdrant (URL, key, CA, timeout).
    pub access: &'a PeerAccess,
    /// What this reconcile observed.
    pub observation: &'a Observation,
}

/// One day-2 operation (module docs).
pub trait Operation: Sync {
    /// Name in logs.
    const NAME: &'static str;
    /// True for an operation that drains, restarts or moves shards: at most one such step
    /// per reconcile.
    const DISRUPTIVE: bool;
    /// What it reports for status.
    type Progress: Send;

    /// Pure: whether the operation has anything to look at in this reconcile.
    fn wanted(&self, scope: &Scope<'_>) -> bool;

    /// One step: observe what the planner needs, plan (pure), act at most once. `Ok(None)`
    /// when there is nothing to do.
    ///
    /// # Errors
    /// [`Error::Qdrant`] (turned into [`Operation::interrupted`] by the driver) or a
    /// Kubernetes error (returned to the error policy).
    fn step(
        &self,
        scope: &Scope<'_>,
    ) -> impl Future<Output = Result<Option<Self::Progress>, Error>> + Send;

    /// Pure: the progress to report when Qdrant failed during [`Operation::step`]. By
    /// default none: the operation reports nothing until Qdrant answers again.
    fn interrupted(&self, _scope: &Scope<'_>, _error: &QdrantError) -> Option<Self::Progress> {
        None
    }

    /// Pure: true when this progress holds the cluster, so no later disruptive operation runs
    /// in this reconcile (only read for [`Operation::DISRUPTIVE`] ones). By default any
    /// progress holds it.
    fn holds(&self, _progress: &Self::Progress) -> bool {
        true
    }

    /// Pure: how soon to look again while this progress lasts (`None`, the default: the
    /// resync is soon enough).
    fn requeue(&self, _scope: &Scope<'_>, _progress: &Self::Progress) -> Option<Duration> {
        None
    }
}

/// Runs operations with the shared rules (module docs) and collects the requeue.
#[derive(Debug, Default)]
pub struct Driver {
    holder: Option<&'static str>,
    requeue: Option<Duration>,
}

impl Driver {
    /// A driver for one reconcile: nothing holds the cluster yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `op` in `scope` unless a disruptive operation already holds the cluster (then
    /// `op`, if disruptive, is skipped: `Ok(None)`) or `op` is not wanted.
    ///
    /// # Errors
    /// Kubernetes errors of the step, unchanged.
    pub async fn run<O: Operation>(
        &mut self,
        scope: &Scope<'_>,
        op: &O,
    ) -> Result<Option<O::Progress>, Error> {
        if O::DISRUPTIVE && self.holder.is_some() {
            return Ok(None);
        }
        if !op.wanted(scope) {
            return Ok(None);
        }
        let progress = match op.step(scope).await {
            Ok(progress) => progress,
            Err(Error::Qdrant(error)) => {
                warn!(cluster = %object_key(scope.qc), operation = O::NAME, %error,
                    "Qdrant failed; the next reconcile observes again");
                op.interrupted(scope, &error)
            }
            Err(error) => return Err(error),
        };
        if let Some(p) = &progress {
            if O::DISRUPTIVE && op.holds(p) {
                self.holder = Some(O::NAME);
            }
            if op.holds(p) {
                scope.ctx.shared.metrics.day2_step(O::NAME);
            }
            if let Some(after) = op.requeue(scope, p) {
                self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
            }
        }
        Ok(progress)
    }

    /// The operation that holds the cluster in this reconcile, if any.
    pub fn holder(&self) -> Option<&'static str> {
        self.holder
    }

    /// When to reconcile again: the earliest requeue an operation asked for, capped by
    /// `resync`.
    pub fn requeue(&self, resync: Duration) -> Duration {
        self.requeue.map_or(resync, |r| r.min(resync))
    }
}
