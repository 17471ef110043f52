//! The Controller: what it watches, and how it runs under the shared runtime.

use std::sync::Arc;

use api_types::QdrantCluster;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Secret, Service},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client, ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, reflector::ObjectRef, watcher},
};
use reconcile_lib::{guard, runtime::Shutdown};

use crate::{
    build::{labels, secret::key_refs},
    context::Context,
    reconcile::{error_policy, reconcile},
};

/// The clusters (as `(namespace, name)`) among `clusters` that read the user's Secret
/// `namespace/name`: through `spec.auth.apiKey.secretKeyRef`,
/// `spec.auth.readOnlyApiKey.secretKeyRef` or `spec.tls.secretName`. Generated Secrets are
/// not listed: they are owned, and their changes reach the owner through `owns`.
pub fn readers_of_secret<'a>(
    namespace: &str,
    name: &str,
    clusters: impl IntoIterator<Item = &'a QdrantCluster>,
) -> Vec<(String, String)> {
    clusters
        .into_iter()
        .filter(|qc| qc.namespace().as_deref() == Some(namespace))
        .filter(|qc| {
            let keys = key_refs(qc);
            keys.iter().any(|k| !k.generated && k.secret.name == name)
                || qc.spec.tls().secret_name.as_deref() == Some(name)
        })
        .map(|qc| (namespace.to_owned(), qc.name_any()))
        .collect()
}

/// Runs the controller until `shutdown` fires: watches QdrantClusters (in `namespace`, or all
/// namespaces) and the children it owns (selected by `app.kubernetes.io/managed-by`), so an
/// edited or deleted child triggers a reconcile of its owner; every object is also requeued
/// at the resync interval. Every Secret is watched too: a change to a user Secret a cluster
/// reads ([`readers_of_secret`], e.g. a rotated `secretKeyRef` key) reconciles that cluster
/// at once. QdrantClusters are watched through kube's `DeserializeGuard`: one
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
    let controller = Controller::new(
        api!(DeserializeGuard<QdrantCluster>),
        watcher::Config::default(),
    );
    let clusters = controller.store();
    let results = controller
        .owns(api!(StatefulSet), owned.clone())
        .owns(api!(ConfigMap), owned.clone())
        .owns(api!(Service), owned.clone())
        .owns(api!(PodDisruptionBudget), owned.clone())
        .owns(api!(NetworkPolicy), owned.clone())
        .owns(api!(Secret), owned)
        // The user's Secrets (`spec.auth.*.secretKeyRef`, `spec.tls.secretName`) are not owned:
        // each change is mapped to the clusters that read a Secret of that name.
        .watches(
            api!(Secret),
            watcher::Config::default(),
            move |s: Secret| {
                let namespace = s.namespace().unwrap_or_default();
                let name = s.name_any();
                let stored = clusters.state();
                let clusters = stored.iter().filter_map(|c| c.0.as_ref().ok());
                readers_of_secret(&namespace, &name, clusters)
                    .into_iter()
                    .map(|(ns, n)| ObjectRef::new(&n).within(&ns))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(async move { shutdown.wait().await })
        .run(
            guard::reconciler(reconcile, |c: &Context| &c.shared),
            guard::error_policy(error_policy, |c: &Context| &c.shared),
            ctx,
        );
    guard::drain(results).await;
}
