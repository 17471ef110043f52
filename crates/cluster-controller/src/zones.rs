//! Zone-aware replica placement (`spec.zoneAware`): once every pod is Ready and no backup or
//! restore runs, read each pod's zone (its node's `spec.zoneTopologyKey` label,
//! [`crate::pods::zones`]) and every collection's placement through pod 0
//! ([`crate::scale::observe_placement`]), ask the pure planner
//! ([`crate::day2::zones::plan_zone_balance`]), and send at most one shard operation
//! (`POST /collections/{c}/cluster`, `move_shard` or `replicate_shard`) per reconcile, so that
//! no shard with two or more replicas keeps all of them in one zone while another zone has a
//! peer. Repeated reconciles walk the cluster to the spread one transfer at a time.
//!
//! Without `spec.zoneAware` nothing here runs: no Pod list, no Node read, no Qdrant request.

use std::{collections::BTreeMap, time::Duration};

use reconcile_lib::error::Error;

use crate::{
    day2::zones::{ZoneVerdict, plan_zone_balance, zones_by_peer},
    operations::{Operation, Scope},
    rebalance::peers_of,
    vocabulary::reasons,
};

/// What the zone balance found and did, for condition `ZoneSpread` and
/// `status.peers[].zone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneProgress {
    /// Pod name -> its node's zone (pods whose zone is unknown are absent).
    pub zones: BTreeMap<String, String>,
    /// True when every shard that should be spread is (condition True).
    pub spread: bool,
    /// Reason of condition `ZoneSpread` (one of the zone reasons of
    /// [`crate::vocabulary::reasons`]).
    pub reason: &'static str,
    /// Message of condition `ZoneSpread`.
    pub message: String,
    /// True while an operation was sent in this reconcile or a transfer it waits for runs:
    /// the cluster is held (no later disruptive step) and looked at again soon.
    pub moving: bool,
}

/// The zone balance (module docs). It looks only at a settled cluster: every pod Ready and
/// at the StatefulSet's update revision (the StatefulSet observed its latest generation; so
/// turning `zoneAware` on, which adds the default zone spread to the pod template, first lets
/// the rollout restart the pods), every peer known, no backup or restore running. When Qdrant cannot be asked it reports nothing, so
/// condition `ZoneSpread` keeps its last value. Disruptive: it moves shards, so it runs only when no
/// scale-down, recovery, rollout or rebalance step holds the cluster, and it holds the
/// cluster while its move runs.
pub struct ZoneBalance;

impl Operation for ZoneBalance {
    const NAME: &'static str = "zone-balance";
    const DISRUPTIVE: bool = true;
    type Progress = ZoneProgress;

    fn wanted(&self, scope: &Scope<'_>) -> bool {
        let (qc, observation) = (scope.qc, scope.observation);
        let replicas = usize::try_from(qc.spec.replicas).unwrap_or(0);
        qc.spec.zone_aware
            && observation.ready_replicas() == qc.spec.replicas
            && !crate::rollout::may_be_rolling(qc, observation.applied.as_ref())
            && observation.busy.is_empty()
            && observation
                .peers_ok()
                .is_some_and(|observed| observed.peers.len() == replicas)
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<ZoneProgress>, Error> {
        let Some(observed) = scope.observation.peers_ok() else {
            return Ok(None);
        };
        let (qc, names) = (scope.qc, scope.names);
        let key = qc.spec.zone_topology_key();
        let pod_zones =
            crate::pods::zones(scope.ctx.shared.applier.client(), qc, names, key).await?;
        let peers = peers_of(names, &observed.peers);
        let zones = zones_by_peer(&peers, &pod_zones.by_ordinal);
        let progress = |spread, reason, message, moving| ZoneProgress {
            zones: pod_zones.by_pod.clone(),
            spread,
            reason,
            message,
            moving,
        };
        if !pod_zones.problems.is_empty() {
            let message = crate::day2::plan::summarize(&pod_zones.problems);
            return Ok(Some(progress(
                false,
                reasons::ZONES_UNKNOWN,
                message,
                false,
            )));
        }
        let client = scope.access.client(names, 0)?;
        let placement = crate::scale::observe_placement(&client).await?;
        let plan = plan_zone_balance(&peers, &zones, &placement);
        if let Some(op) = &plan.op {
            client
                .update_collection_cluster(op.collection(), &op.body())
                .await?;
            scope
                .ctx
                .shared
                .events
                .normal(qc, "SpreadingZones", "ZoneBalance", format!("{op}"))
                .await;
        }
        let running = placement.values().any(|c| !c.transfers.is_empty());
        let (spread, reason) = match plan.verdict {
            ZoneVerdict::Spread => (true, reasons::REPLICAS_SPREAD),
            ZoneVerdict::Unknown => (false, reasons::ZONES_UNKNOWN),
            ZoneVerdict::SingleZone => (false, reasons::SINGLE_ZONE),
            ZoneVerdict::InOneZone => (false, reasons::SHARDS_IN_ONE_ZONE),
        };
        let moving = plan.op.is_some() || (plan.verdict == ZoneVerdict::InOneZone && running);
        Ok(Some(progress(spread, reason, plan.message(), moving)))
    }

    fn holds(&self, progress: &ZoneProgress) -> bool {
        progress.moving
    }

    fn requeue(&self, scope: &Scope<'_>, progress: &ZoneProgress) -> Option<Duration> {
        progress.moving.then_some(scope.ctx.scale_down_requeue)
    }
}
