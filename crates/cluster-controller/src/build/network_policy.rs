//! NetworkPolicy (networking.k8s.io/v1) of the peers, when `spec.networkPolicy.enabled`: the
//! p2p port only between the cluster's own pods, REST and gRPC only from the allowed clients
//! and the operator's namespace. Pure.

use api_types::{
    QdrantCluster,
    cluster::{GRPC_PORT, HTTP_PORT, P2P_PORT},
};
use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{Names, child_meta, selector_labels};

/// The label every namespace carries with its own name (Kubernetes 1.21+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The NetworkPolicy `<cluster>`, or `None` unless `spec.networkPolicy.enabled`. It selects the
/// cluster's pods and allows ingress:
///
/// - TCP 6335 (p2p) from the cluster's pods only;
/// - TCP 6333 and 6334 from each of `spec.networkPolicy.allowedClients` and from every pod
///   of `operator_namespace` (the operator's controllers).
///
/// Everything else inbound is denied (`policyTypes: [Ingress]`); egress is left alone.
pub fn network_policy(qc: &QdrantCluster, operator_namespace: &str) -> Option<NetworkPolicy> {
    let spec = qc.spec.network_policy.as_ref().filter(|n| n.enabled)?;
    let cluster_pods = || LabelSelector {
        match_labels: Some(selector_labels(qc)),
        match_expressions: None,
    };
    let tcp = |port: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        end_port: None,
    };
    let operator = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(
                [(
                    NAMESPACE_NAME_LABEL.to_string(),
                    operator_namespace.to_string(),
                )]
                .into(),
            ),
            match_expressions: None,
        }),
        ..NetworkPolicyPeer::default()
    };
    let clients: Vec<NetworkPolicyPeer> = spec
        .allowed_clients
        .iter()
        .cloned()
        .chain(std::iter::once(operator))
        .collect();
    Some(NetworkPolicy {
        metadata: child_meta(qc, &Names::of(qc).cluster),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(cluster_pods()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(cluster_pods()),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp(P2P_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(clients),
                    ports: Some(vec![tcp(HTTP_PORT), tcp(GRPC_PORT)]),
                },
            ]),
            egress: None,
        }),
    })
}
