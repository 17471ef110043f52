//! The Controller: what it watches, and how it runs under the shared runtime.

use std::sync::Arc;

use api_types::QdrantCluster;
use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Secret, Service},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client,
    core::DeserializeGuard,
    runtime::{Controller, watcher},
};
use reconcile_lib::{guard, runtime::Shutdown};
use tracing::{debug, warn};

use crate::{
    build::labels,
    reconcile::{Context, error_policy, reconcile},
};

/// Runs the controller until `shutdown` fires: watches QdrantClusters (in `namespace`, or all
/// namespaces) and the children it owns (selected by `app.kubernetes.io/managed-by`), so an
/// edited or deleted child triggers a reconcile of its owner; every object is also requeued
/// at the resync interval. QdrantClusters are watched through kube's `DeserializeGuard`: one
/// that cannot be decoded gets a Warning event ([`reconcile_lib::guard`]) and the others go on.
pub async fn run(client: Client, namespace: Option<String>, ctx: Arc<Context>, shutdown: Shutdown) {
    let owned =
        watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER));
    macro_rules! api {
        ($t:ty) => {
            match &namespace {
                Some(ns) => Api::<$t>::namespaced(client.clone(), ns),
                None => Api::<$t>::all(client.clone()),
            }
        };
    }
    Controller::new(
        api!(DeserializeGuard<QdrantCluster>),
        watcher::Config::default(),
    )
    .owns(api!(StatefulSet), owned.clone())
    .owns(api!(ConfigMap), owned.clone())
    .owns(api!(Service), owned.clone())
    .owns(api!(PodDisruptionBudget), owned.clone())
    .owns(api!(Secret), owned)
    .graceful_shutdown_on(async move { shutdown.wait().await })
    .run(
        guard::reconciler(reconcile, |c: &Context| &c.shared),
        guard::error_policy(error_policy, |c: &Context| &c.shared),
        ctx,
    )
    .for_each(|res| async move {
        match res {
            Ok((obj, _)) => debug!(cluster = %obj, "reconciled"),
            Err(e) => warn!(error = %e, "reconcile error"),
        }
    })
    .await;
}
