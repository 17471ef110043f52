//! Services: a headless one for peer DNS (`<pod>.<cluster>-headless`), and the client one.

use api_types::{
    QdrantCluster,
    cluster::{GRPC_PORT, HTTP_PORT, P2P_PORT},
};
use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{Names, child_meta, selector_labels};

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".into()),
        app_protocol: None,
        ..ServicePort::default()
    }
}

/// The headless Service `<cluster>-headless`: stable per-pod DNS for Raft peers, published
/// before pods are ready (`publishNotReadyAddresses`), so peers can find each other while
/// the cluster forms. Ports: http 6333, grpc 6334, p2p 6335.
pub fn headless(qc: &QdrantCluster) -> Service {
    Service {
        metadata: child_meta(qc, &Names::of(qc).headless),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(qc)),
            ports: Some(vec![
                port("http", HTTP_PORT),
                port("grpc", GRPC_PORT),
                port("p2p", P2P_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The client Service `<cluster>`: REST 6333 and gRPC 6334 of ready pods, of
/// `spec.service.type`, with the user's annotations, labels and source ranges.
pub fn client(qc: &QdrantCluster) -> Service {
    let s = &qc.spec.service;
    let mut meta = child_meta(qc, &Names::of(qc).cluster);
    if !s.labels.is_empty() {
        let mut labels = s.labels.clone();
        labels.extend(meta.labels.take().unwrap_or_default());
        meta.labels = Some(labels);
    }
    if !s.annotations.is_empty() {
        meta.annotations = Some(s.annotations.clone());
    }
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some(s.type_.as_str().to_string()),
            selector: Some(selector_labels(qc)),
            ports: Some(vec![port("http", HTTP_PORT), port("grpc", GRPC_PORT)]),
            load_balancer_source_ranges: (!s.load_balancer_source_ranges.is_empty())
                .then(|| s.load_balancer_source_ranges.clone()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
