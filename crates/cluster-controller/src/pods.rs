//! The cluster's pods as Kubernetes reports them: listing them and reading the Qdrant
//! container. Shared by the rolling restart ([`crate::rollout`]) and peer recovery
//! ([`crate::recover`]).

use api_types::QdrantCluster;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::{Api, api::ListParams};

use crate::build::{Names, selector_string, statefulset::CONTAINER};

/// The cluster's pods (`GET /api/v1/namespaces/{ns}/pods?labelSelector=...` with
/// [`crate::build::selector_labels`]), in the API server's order.
///
/// Errors: the API server's.
pub async fn list(
    client: &kube::Client,
    qc: &QdrantCluster,
    names: &Names,
) -> kube::Result<Vec<Pod>> {
    Api::<Pod>::namespaced(client.clone(), &names.namespace)
        .list(&ListParams::default().labels(&selector_string(qc)))
        .await
        .map(|l| l.items)
}

/// The Qdrant container (named [`CONTAINER`]) of a pod spec or pod template spec.
pub fn qdrant_container(spec: Option<&PodSpec>) -> Option<&Container> {
    spec?.containers.iter().find(|c| c.name == CONTAINER)
}

/// The pod's `Ready` condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
