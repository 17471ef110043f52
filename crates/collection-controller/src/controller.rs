//! The Controller: what it watches, and how it runs under the shared runtime.

use std::sync::Arc;

use api_types::{QdrantCluster, QdrantCollection};
use kube::{
    Api, Client, Resource,
    core::DeserializeGuard,
    runtime::{Controller, reflector::ObjectRef, watcher},
};
use reconcile_lib::{guard, runtime::Shutdown};

use crate::reconcile::{Context, error_policy, reconcile};

/// Runs the controller until `shutdown` fires: watches QdrantCollections (in `namespace`, or
/// all namespaces), and QdrantClusters so that a cluster becoming Ready triggers the
/// collections that point at it; every collection is also resynced periodically to find
/// changes made behind the operator's back. Both kinds are watched through kube's
/// `DeserializeGuard`: a collection that cannot be decoded gets a Warning event
/// ([`reconcile_lib::guard`]), and neither kind's bad object stops the others.
pub async fn run(client: Client, namespace: Option<String>, ctx: Arc<Context>, shutdown: Shutdown) {
    let (collections, clusters) = match &namespace {
        Some(ns) => (
            Api::<DeserializeGuard<QdrantCollection>>::namespaced(client.clone(), ns),
            Api::<DeserializeGuard<QdrantCluster>>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::<DeserializeGuard<QdrantCollection>>::all(client.clone()),
            Api::<DeserializeGuard<QdrantCluster>>::all(client.clone()),
        ),
    };
    let controller = Controller::new(collections, watcher::Config::default());
    let store = controller.store();
    let results = controller
        .watches(
            clusters,
            watcher::Config::default(),
            move |cluster: DeserializeGuard<QdrantCluster>| {
                let ns = cluster.meta().namespace.clone();
                let name = cluster.meta().name.clone();
                store
                    .state()
                    .into_iter()
                    .filter(|guarded| {
                        guarded.0.as_ref().is_ok_and(|c| {
                            c.metadata.namespace == ns
                                && c.spec.cluster.as_ref().map(|r| Some(&r.name))
                                    == Some(name.as_ref())
                        })
                    })
                    .map(|c| ObjectRef::from_obj(&*c))
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
