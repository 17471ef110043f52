//! Health-gated rolling restarts and upgrades.
//!
//! The StatefulSet uses the `OnDelete` update strategy, so Kubernetes never replaces a pod on
//! its own: a changed pod template (image, config hash, certificate hash, resources) only
//! moves the StatefulSet's `status.updateRevision`. On each reconcile this module observes
//! every pod (Kubernetes and Qdrant), asks the pure gate ([`crate::day2::gate::decide_restart`])
//! what to do, and does at most one thing: delete the highest-ordinal outdated pod (the
//! StatefulSet recreates it at the update revision), or wait and say why.
//!
//! The pod restarted last and when are kept in `status.rollout` (`restartingPod`,
//! `restartedAt`), the only memory the gate needs: a restarted or newly elected controller
//! reads it back and goes on waiting for that pod, and a pod not back within
//! `spec.rollout.podReadyTimeoutSeconds` stops the rollout (condition Degraded) instead of
//! pushing on to the next one.
//!
//! A change of the image tag is an upgrade; a downgrade across minor versions (e.g. v1.18.x to
//! v1.17.x, which Qdrant's storage does not support) is refused before anything is applied:
//! the StatefulSet keeps its image and condition `UpgradeBlocked` says why ([`check_downgrade`]).

use std::collections::BTreeMap;
use std::time::Duration;

use api_types::{QdrantCluster, cluster::RolloutStatus};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Pod, PodSpec},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Preconditions},
};
use reconcile_lib::{error::Result, qdrant::QdrantError};
use tracing::info;

use crate::vocabulary::{reasons::DOWNGRADE_REFUSED, reported, types::UPGRADE_BLOCKED};
use crate::{
    build::Names,
    context::Context,
    day2::gate::{ClusterObservation, PodObservation, RestartDecision, Restarting, decide_restart},
    operations::{Operation, Scope},
    peers::{PeerAccess, PeersObservation},
};

/// Label the StatefulSet controller puts on each pod: the revision the pod was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// A rollout in progress, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutProgress {
    /// `status.rollout` as it should be written.
    pub status: RolloutStatus,
    /// The restarted pod did not come back in time: the rollout stopped (condition Degraded).
    pub stuck: Option<String>,
}

/// A refused image change: the live StatefulSet's image is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DowngradeRefusal {
    /// The image the pods keep (the live StatefulSet's).
    pub keep_image: String,
    /// Why, naming `spec.image.tag` (for condition UpgradeBlocked).
    pub message: String,
}

/// The Qdrant version in an image tag: `v1.18.3`, `1.18.3` or `v1.18.3-unprivileged`;
/// `None` for tags that are not versions (`latest`, `dev`, a digest).
pub fn tag_version(tag: &str) -> Option<semver::Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    semver::Version::parse(t).ok()
}

/// The tag of an image reference `repo[:tag][@digest]` (`None` without a tag).
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, tag)| tag)
}

/// Refuses `spec.image.tag` when it moves the live StatefulSet's image to an older minor
/// version (`1.18.x` -> `1.17.x`); patch downgrades and tags that are not versions pass.
/// Reads `spec.template.spec.containers[qdrant].image` of `live`.
pub fn check_downgrade(qc: &QdrantCluster, live: Option<&StatefulSet>) -> Option<DowngradeRefusal> {
    let live_image = crate::pods::qdrant_container(live?.spec.as_ref()?.template.spec.as_ref())?
        .image
        .clone()?;
    let from = tag_version(image_tag(&live_image)?)?;
    let to = tag_version(&qc.spec.image.tag)?;
    ((to.major, to.minor) < (from.major, from.minor)).then(|| DowngradeRefusal {
        message: format!(
            "spec.image.tag {} is a downgrade from {}: Qdrant does not support going back a \
             minor version (its storage format may have moved on); the pods keep {live_image}. \
             Set spec.image.tag to {}.{} or newer, or restore a backup into a new cluster",
            qc.spec.image.tag,
            image_tag(&live_image).unwrap_or_default(),
            from.major,
            from.minor
        ),
        keep_image: live_image,
    })
}

/// True when a rollout may be under way or awaited: the live StatefulSet counts fewer pods at
/// its update revision (`status.updatedReplicas`) than it has (`status.replicas`), or has not
/// observed its latest generation yet, or `status.rollout` of the cluster still records one.
/// Decides whether [`crate::observe::busy_with`] has anything to guard.
///
/// `status.currentRevision` is not used: with `OnDelete`, Kubernetes before 1.36 never moves
/// it to the update revision (kubernetes/kubernetes#73492).
pub fn may_be_rolling(qc: &QdrantCluster, live: Option<&StatefulSet>) -> bool {
    let recorded = qc.status.as_ref().is_some_and(|s| s.rollout.is_some());
    let outdated = live.is_some_and(|sts| {
        let st = sts.status.clone().unwrap_or_default();
        st.observed_generation < sts.metadata.generation
            || st.updated_replicas.unwrap_or(0) < st.replicas
    });
    recorded || outdated
}

/// One step of a rolling restart (see the module documentation). `sts` is the StatefulSet
/// as applied; `busy` the running backups and restores of the cluster ([`crate::observe::busy_with`]).
///
/// `peers` is this reconcile's `GET /cluster` round ([`crate::peers::observe`]): the leader and
/// each pod's pending consensus operations. Reads the pods (`GET pods` by the cluster's
/// selector) and, only while some pod is outdated or a restarted pod is awaited, asks every
/// pod `GET /readyz`, and the first pod with a client the shard placement
/// ([`crate::scale::observe_placement`]). Deletes at most one
/// pod, with a UID precondition so a pod recreated meanwhile is never deleted by mistake.
///
/// Returns `None` when every pod runs the update revision and no restarted pod is awaited.
///
/// Errors: the API server's when listing or deleting pods.
pub async fn step(
    qc: &QdrantCluster,
    ctx: &Context,
    names: &Names,
    sts: &StatefulSet,
    access: &PeerAccess,
    peers: Option<&PeersObservation>,
    busy: &[String],
) -> Result<Option<RolloutProgress>> {
    let Some(observed) = observe(qc, ctx, names, sts, access).await? else {
        return Ok(None);
    };
    let plan = plan(qc, names, sts, peers, busy, &observed);
    act(qc, ctx, names, &observed, plan).await
}

/// What a rollout step observes: the pods at their ordinals below the StatefulSet's
/// `spec.replicas`, the update revision, how many pods run it, the restart recorded in
/// `status.rollout`, each pod's Kubernetes and `/readyz` state, and the shard placement.
struct Observed {
    update_revision: String,
    replicas: u32,
    pods: BTreeMap<u32, Pod>,
    updated: usize,
    prev: Option<RolloutStatus>,
    restarting: Option<Restarting>,
    observed: Vec<PodObservation>,
    placement: Option<BTreeMap<String, crate::day2::plan::CollectionPlacement>>,
}

/// The rollout's observation, or `None` when every pod runs the update revision and no
/// restarted pod is awaited (then Qdrant is not asked).
async fn observe(
    qc: &QdrantCluster,
    ctx: &Context,
    names: &Names,
    sts: &StatefulSet,
    access: &PeerAccess,
) -> Result<Option<Observed>> {
    let Some(update_revision) = sts.status.as_ref().and_then(|s| s.update_revision.clone()) else {
        return Ok(None);
    };
    let replicas = sts
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .map_or(0, |r| u32::try_from(r.max(0)).unwrap_or(0));
    let client = ctx.shared.applier.client().clone();
    let pods: BTreeMap<u32, Pod> = crate::pods::list(&client, qc, names)
        .await?
        .into_iter()
        .filter_map(|p| names.pod_ordinal(&p.name_any()).map(|o| (o, p)))
        .filter(|(o, _)| *o < replicas)
        .collect();
    let revision = |p: &Pod| p.labels().get(REVISION_LABEL).cloned();

    let prev = qc.status.as_ref().and_then(|s| s.rollout.clone());
    let restarting = prev.as_ref().and_then(|r| {
        let ordinal = names.pod_ordinal(r.restarting_pod.as_deref()?)?;
        let at = r.restarted_at.as_deref()?.parse::<jiff::Timestamp>().ok()?;
        let elapsed = jiff::Timestamp::now().duration_since(at);
        Some(Restarting {
            ordinal,
            elapsed: Duration::try_from(elapsed).unwrap_or_default(),
        })
    });
    let updated = pods
        .values()
        .filter(|p| revision(p).as_deref() == Some(update_revision.as_str()))
        .count();
    if updated == pods.len() && restarting.is_none() {
        return Ok(None);
    }

    // Observe Qdrant on every pod: `/readyz` here, consensus from this reconcile's
    // `GET /cluster` round (`peers`).
    let mut observed = vec![];
    let mut placement_map = None;
    for (&ordinal, pod) in &pods {
        let client = access.client(names, ordinal).ok();
        let readyz = match &client {
            Some(c) => match c.readyz().await {
                Ok(()) => Some(true),
                // An HTTP answer other than 200 (503 `some shards are not ready`).
                Err(QdrantError::Server { .. } | QdrantError::UnexpectedResponse { .. }) => {
                    Some(false)
                }
                Err(_) => None,
            },
            None => None,
        };
        if placement_map.is_none()
            && let Some(c) = &client
        {
            placement_map = crate::scale::observe_placement(c).await.ok();
        }
        observed.push(PodObservation {
            ordinal,
            ready: crate::pods::is_ready(pod),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            revision: revision(pod),
            readyz,
            pending_operations: None,
        });
    }
    Ok(Some(Observed {
        update_revision,
        replicas,
        pods,
        updated,
        prev,
        restarting,
        observed,
        placement: placement_map,
    }))
}

/// Pure: the gate's decision ([`decide_restart`]) over the observation with this reconcile's
/// consensus view (`peers`: leader, pending operations) and running jobs (`busy`), and the
/// `status.rollout` it implies. A restart waits while the placement is unknown.
fn plan(
    qc: &QdrantCluster,
    names: &Names,
    sts: &StatefulSet,
    peers: Option<&PeersObservation>,
    busy: &[String],
    o: &Observed,
) -> (RestartDecision, RolloutStatus) {
    let update_revision = &o.update_revision;
    let mut observed = o.observed.clone();
    for pod in &mut observed {
        pod.pending_operations =
            peers.and_then(|p| p.pending_operations.get(&pod.ordinal).copied());
    }
    let placement_known = o.placement.is_some();
    let restarted_back = o.restarting.is_some_and(|r| {
        observed
            .iter()
            .any(|p| p.ordinal == r.ordinal && p.is_back_at(update_revision))
    });
    let restarting = o.restarting.filter(|_| !restarted_back);
    let timeout =
        Duration::from_secs(u64::try_from(qc.spec.pod_ready_timeout_seconds()).unwrap_or(600));
    let obs = ClusterObservation {
        statefulset: names.cluster.clone(),
        replicas: o.replicas,
        update_revision: update_revision.clone(),
        pods: observed,
        leader: peers.and_then(|p| p.leader),
        placement: o.placement.clone().unwrap_or_default(),
        busy: busy.to_vec(),
        restarting,
        pod_timeout: timeout,
    };
    let mut decision = decide_restart(&obs);
    if !placement_known && let RestartDecision::RestartPod { .. } = decision {
        decision = RestartDecision::Wait {
            reasons: vec![
                "waiting for Qdrant to report the shard placement (GET /collections/{c}/cluster)"
                    .into(),
            ],
        };
    }

    let (from_version, to_version) = versions(qc, &o.pods, sts, update_revision);
    let status = RolloutStatus {
        update_revision: update_revision.clone(),
        updated_replicas: i32::try_from(o.updated).unwrap_or(i32::MAX),
        from_version,
        to_version,
        restarting_pod: restarting.map(|r| format!("{}-{}", names.cluster, r.ordinal)),
        restarted_at: restarting.and(o.prev.as_ref().and_then(|p| p.restarted_at.clone())),
        message: decision.message(),
    };
    (decision, status)
}

/// Carries out `plan`: a stuck rollout is reported (a Warning event `RolloutStuck` once per
/// reason, the record of the pod that did not come back kept), a restart deletes the pod with
/// a UID precondition and records it. `None` when the rollout is done.
///
/// Errors: the API server's deleting the pod.
async fn act(
    qc: &QdrantCluster,
    ctx: &Context,
    names: &Names,
    o: &Observed,
    (decision, mut status): (RestartDecision, RolloutStatus),
) -> Result<Option<RolloutProgress>> {
    let (prev, pods) = (&o.prev, &o.pods);
    let mut stuck = None;
    match &decision {
        RestartDecision::Done => return Ok(None),
        RestartDecision::Wait { .. } => {}
        RestartDecision::Stuck { reason, .. } => {
            let already = prev.as_ref().is_some_and(|p| p.message == *reason);
            if !already {
                ctx.shared
                    .events
                    .warning(qc, "RolloutStuck", "Restart", reason.clone())
                    .await;
            }
            stuck = Some(reason.clone());
            // Keep the record of the pod that did not come back.
            if let Some(prev) = &prev {
                status.restarting_pod = prev.restarting_pod.clone();
                status.restarted_at = prev.restarted_at.clone();
            }
        }
        RestartDecision::RestartPod { ordinal, reason } => {
            let pod_name = format!("{}-{ordinal}", names.cluster);
            let uid = pods.get(ordinal).and_then(|p| p.uid());
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            Api::<Pod>::namespaced(ctx.shared.applier.client().clone(), &names.namespace)
                .delete(&pod_name, &params)
                .await?;
            info!(cluster = %names.cluster, pod = %pod_name, "restarted pod for the rollout");
            ctx.shared
                .events
                .normal(qc, "PodRestarted", "Restart", reason.clone())
                .await;
            status.restarting_pod = Some(pod_name.clone());
            status.restarted_at = Some(
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .unwrap_or_else(|_| jiff::Timestamp::now())
                    .to_string(),
            );
            status.message = format!("{reason}; waiting for it to come back");
        }
    }
    Ok(Some(RolloutProgress { status, stuck }))
}

/// `(fromVersion, toVersion)` when the rollout changes the image tag: the tag of the outdated
/// pods' Qdrant container and `spec.image.tag` (or the kept image's tag).
fn versions(
    qc: &QdrantCluster,
    pods: &BTreeMap<u32, Pod>,
    sts: &StatefulSet,
    update_revision: &str,
) -> (Option<String>, Option<String>) {
    let container_tag = |spec: Option<&PodSpec>| {
        crate::pods::qdrant_container(spec)?
            .image
            .as_deref()
            .and_then(image_tag)
            .map(str::to_owned)
    };
    let to = container_tag(sts.spec.as_ref().and_then(|s| s.template.spec.as_ref()))
        .unwrap_or_else(|| qc.spec.image.tag.clone());
    let from = pods
        .values()
        .filter(|p| p.labels().get(REVISION_LABEL).map(String::as_str) != Some(update_revision))
        .filter_map(|p| container_tag(p.spec.as_ref()))
        .find(|t| *t != to);
    match from {
        Some(from) => (Some(from), Some(to)),
        None => (None, None),
    }
}

/// The downgrade refusal: an image change across minor versions backwards is refused before
/// anything is applied; the StatefulSet keeps its live image ([`check_downgrade`]) and a
/// Warning event `DowngradeRefused` is sent once per message. Pure apart from that event.
pub struct Downgrade;

impl Operation for Downgrade {
    const NAME: &'static str = "downgrade refusal";
    const DISRUPTIVE: bool = false;
    type Progress = DowngradeRefusal;

    fn wanted(&self, scope: &Scope<'_>) -> bool {
        scope.observation.live.is_some()
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<DowngradeRefusal>> {
        let qc = scope.qc;
        let refusal = check_downgrade(qc, scope.observation.live.as_ref());
        if let Some(refusal) = &refusal
            && !reported(qc, UPGRADE_BLOCKED, DOWNGRADE_REFUSED, &refusal.message)
        {
            scope
                .ctx
                .shared
                .events
                .warning(qc, "DowngradeRefused", "Upgrade", refusal.message.clone())
                .await;
        }
        Ok(refusal)
    }

    /// A refusal is not a step.
    fn holds(&self, _: &DowngradeRefusal) -> bool {
        false
    }
}

/// The rolling restart or upgrade ([`step`]): one pod at a time, only while the whole cluster
/// is healthy. Disruptive: never in the same reconcile as a scale-down or peer recovery step.
pub struct Rollout;

impl Operation for Rollout {
    const NAME: &'static str = "rollout";
    const DISRUPTIVE: bool = true;
    type Progress = RolloutProgress;

    fn wanted(&self, scope: &Scope<'_>) -> bool {
        scope.observation.applied.is_some()
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<RolloutProgress>> {
        let Some(sts) = &scope.observation.applied else {
            return Ok(None);
        };
        step(
            scope.qc,
            scope.ctx,
            scope.names,
            sts,
            scope.access,
            scope.observation.peers_ok(),
            &scope.observation.busy,
        )
        .await
    }

    fn requeue(&self, scope: &Scope<'_>, _: &RolloutProgress) -> Option<Duration> {
        Some(scope.ctx.scale_down_requeue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_versions() {
        assert_eq!(image_tag("qdrant/qdrant:v1.18.3"), Some("v1.18.3"));
        assert_eq!(
            image_tag("registry:5000/qdrant/qdrant:v1.18.3"),
            Some("v1.18.3")
        );
        assert_eq!(image_tag("registry:5000/qdrant/qdrant"), None);
        assert_eq!(
            image_tag("qdrant/qdrant:v1.18.3@sha256:abc"),
            Some("v1.18.3")
        );
        assert_eq!(tag_version("v1.18.3").map(|v| v.minor), Some(18));
        assert_eq!(
            tag_version("1.17.0-unprivileged").map(|v| v.minor),
            Some(17)
        );
        assert_eq!(tag_version("latest"), None);
        assert_eq!(tag_version("v1.18"), None);
    }
}
