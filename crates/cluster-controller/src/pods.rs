//! The cluster's pods as Kubernetes reports them: listing them and reading the Qdrant
//! container and the zone of its node. Shared by the rolling restart ([`crate::rollout`]), peer
//! recovery ([`crate::recover`]) and the zone-aware operations ([`crate::zones`],
//! [`crate::scale`], [`crate::rebalance`]).

use std::collections::BTreeMap;

use api_types::QdrantCluster;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
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

/// The zones of the cluster's pods, as [`zones`] read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodZones {
    /// Pod ordinal -> the value of its node's zone label.
    pub by_ordinal: BTreeMap<u32, String>,
    /// Pod name -> the same zone, for `status.peers[].zone`.
    pub by_pod: BTreeMap<String, String>,
    /// Why a pod has no zone: not scheduled yet, a node without the label, a node the
    /// controller may not read.
    pub problems: Vec<String>,
}

/// Reads the zone of every pod of the cluster: lists the pods
/// (`GET /api/v1/namespaces/{ns}/pods?labelSelector=...`, [`list`]), then for each distinct
/// `spec.nodeName` reads the Node (`GET /api/v1/nodes/{name}`) and takes the value of its
/// label `key` (`spec.zoneTopologyKey`). Called only with `spec.zoneAware`, so clusters
/// without it cost no request. Nodes are not watched: a node's zone label is set when it
/// registers, and a pod moving to another node changes the StatefulSet's status, which
/// triggers a reconcile.
///
/// # Errors
/// The API server's listing the pods, and its transient errors reading a Node. A Node that
/// is missing (404) or may not be read (403: the ClusterRole lacks `get` on `nodes`) is a
/// [`PodZones::problems`] entry, not an error.
pub async fn zones(
    client: &kube::Client,
    qc: &QdrantCluster,
    names: &Names,
    key: &str,
) -> kube::Result<PodZones> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut node_zone: BTreeMap<String, Result<Option<String>, String>> = BTreeMap::new();
    let mut out = PodZones::default();
    let mut pods = list(client, qc, names).await?;
    pods.sort_by_key(|p| p.metadata.name.clone());
    for pod in pods {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let Some(ordinal) = names.pod_ordinal(&name) else {
            continue;
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            out.problems
                .push(format!("pod {name} is not scheduled on a node yet"));
            continue;
        };
        if !node_zone.contains_key(&node) {
            let zone = match nodes.get_opt(&node).await {
                Ok(Some(n)) => Ok(n.metadata.labels.and_then(|l| l.get(key).cloned())),
                Ok(None) => Err(format!("node {node} of pod {name} does not exist")),
                Err(kube::Error::Api(e)) if e.code == 403 => Err(format!(
                    "cannot read node {node} of pod {name}: forbidden (the cluster-controller's \
                     ClusterRole needs get on nodes)"
                )),
                Err(e) => return Err(e),
            };
            node_zone.insert(node.clone(), zone);
        }
        match &node_zone[&node] {
            Ok(Some(zone)) => {
                out.by_ordinal.insert(ordinal, zone.clone());
                out.by_pod.insert(name, zone.clone());
            }
            Ok(None) => out
                .problems
                .push(format!("node {node} of pod {name} has no label {key}")),
            Err(why) => out.problems.push(why.clone()),
        }
    }
    Ok(out)
}
