//! Apply the desired children as one set, then sweep the owned orphans.
//!
//! [`apply`] destructures [`Desired`] without `..`, so a child added to the build but not
//! applied here fails to compile. After applying, the ConfigMaps, Services and
//! PodDisruptionBudgets that carry the cluster's instance labels and are controlled by this
//! QdrantCluster (owner UID) but were not built this time are deleted (e.g. the
//! PodDisruptionBudget once `spec.podDisruptionBudget` is turned off, the NetworkPolicy once
//! `spec.networkPolicy` is). StatefulSets, Secrets and
//! PersistentVolumeClaims are never swept: they hold state.

use api_types::QdrantCluster;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Service},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
use kube::ResourceExt;
use reconcile_lib::{
    apply::Outcome,
    context::{Shared, object_key},
    error::Result,
};
use tracing::info;

use crate::build::{Desired, Names, selector_string};

/// Applies every child of `desired` (server-side apply as the controller's field manager;
/// unchanged children are not written), sweeps the orphans (module docs), and sends one
/// Normal event `Applied` listing what was created, updated or deleted. Returns the applied
/// StatefulSet.
///
/// # Errors
/// The API server's, from any apply, list or delete.
pub async fn apply(
    shared: &Shared,
    qc: &QdrantCluster,
    names: &Names,
    desired: Desired,
) -> Result<StatefulSet> {
    let Desired {
        config_map,
        headless_service,
        client_service,
        statefulset,
        pdb,
        network_policy,
    } = desired;
    let applier = &shared.applier;
    let mut changes = Changes::default();
    changes.note(
        "ConfigMap",
        &config_map,
        applier.apply(&config_map).await?.1,
    );
    changes.note(
        "Service",
        &headless_service,
        applier.apply(&headless_service).await?.1,
    );
    changes.note(
        "Service",
        &client_service,
        applier.apply(&client_service).await?.1,
    );
    let (sts, outcome) = applier.apply(&statefulset).await?;
    changes.note("StatefulSet", &sts, outcome);
    if let Some(pdb) = &pdb {
        changes.note("PodDisruptionBudget", pdb, applier.apply(pdb).await?.1);
    }
    if let Some(policy) = &network_policy {
        changes.note("NetworkPolicy", policy, applier.apply(policy).await?.1);
    }

    let uid = qc.uid().unwrap_or_default();
    let selector = selector_string(qc);
    let ns = names.namespace.as_str();
    let config_maps = [config_map.name_any()];
    let services = [headless_service.name_any(), client_service.name_any()];
    let pdbs: Vec<String> = pdb.iter().map(ResourceExt::name_any).collect();
    let policies: Vec<String> = network_policy.iter().map(ResourceExt::name_any).collect();
    for (kind, deleted) in [
        (
            "ConfigMap",
            applier
                .sweep_owned::<ConfigMap>(ns, &selector, &uid, &as_strs(&config_maps))
                .await?,
        ),
        (
            "Service",
            applier
                .sweep_owned::<Service>(ns, &selector, &uid, &as_strs(&services))
                .await?,
        ),
        (
            "PodDisruptionBudget",
            applier
                .sweep_owned::<PodDisruptionBudget>(ns, &selector, &uid, &as_strs(&pdbs))
                .await?,
        ),
        (
            "NetworkPolicy",
            applier
                .sweep_owned::<NetworkPolicy>(ns, &selector, &uid, &as_strs(&policies))
                .await?,
        ),
    ] {
        for name in deleted {
            changes.0.push(format!("{kind} {name} deleted"));
        }
    }

    if !changes.0.is_empty() {
        let summary = changes.0.join(", ");
        info!(cluster = %object_key(qc), %summary, "applied");
        shared.events.normal(qc, "Applied", "Apply", summary).await;
    }
    Ok(sts)
}

fn as_strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// What an apply changed, for the `Applied` event: `"<Kind> <name> created|updated|deleted"`.
#[derive(Default)]
struct Changes(Vec<String>);

impl Changes {
    fn note<K: ResourceExt>(&mut self, kind: &str, obj: &K, outcome: Outcome) {
        let verb = match outcome {
            Outcome::Unchanged => return,
            Outcome::Created => "created",
            Outcome::Updated => "updated",
        };
        self.0.push(format!("{kind} {} {verb}", obj.name_any()));
    }
}
