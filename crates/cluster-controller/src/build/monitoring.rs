//! Prometheus monitoring of the peers (`spec.monitoring`), for the prometheus-operator: a
//! PodMonitor that scrapes every peer's `/metrics` with the cluster's read-only key (Qdrant
//! answers 401 without a key when one is set), a PrometheusRule with alerts, and a Grafana
//! dashboard ConfigMap. Pure.

use std::collections::BTreeMap;

use api_types::QdrantCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Names, child_meta, owner_reference,
    secret::{KeyKind, key_refs},
    selector_labels, served_keys,
};

/// The spec of a prometheus-operator object, as JSON: the operator writes it whole.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PodMonitor",
    namespaced,
    schema = "disabled"
)]
pub struct PodMonitorSpec(pub BTreeMap<String, Value>);

/// The spec of a PrometheusRule, as JSON.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PrometheusRule",
    namespaced,
    schema = "disabled"
)]
pub struct PrometheusRuleSpec(pub BTreeMap<String, Value>);

/// Label the Grafana sidecar of kube-prometheus-stack loads dashboards by.
pub const DASHBOARD_LABEL: &str = "grafana_dashboard";

/// Whether `spec.monitoring.enabled`.
pub fn enabled(qc: &QdrantCluster) -> bool {
    qc.spec.monitoring.as_ref().is_some_and(|m| m.enabled)
}

/// Metadata of a monitoring object: the child metadata plus `spec.monitoring.labels` (what
/// Prometheus selects by, e.g. `release: kube-prometheus-stack`).
fn meta(qc: &QdrantCluster, name: &str) -> kube::api::ObjectMeta {
    let mut meta = child_meta(qc, name);
    if let Some(m) = &qc.spec.monitoring {
        meta.labels
            .get_or_insert_with(Default::default)
            .extend(m.labels.clone());
    }
    meta
}

/// The PodMonitor `<cluster>`: every pod of the cluster, port `http`, path `/metrics`, every
/// `spec.monitoring.interval` (default 30s). With keys, `Authorization: Bearer` from the served
/// keys Secret: its `read-only-api-key` when the cluster has one, else `operator-api-key`.
/// With client TLS, `https` verified against `ca.crt` of the serving Secret, for the name
/// `<cluster>.<ns>.svc`. `None` unless enabled.
pub fn pod_monitor(qc: &QdrantCluster) -> Option<PodMonitor> {
    if !enabled(qc) {
        return None;
    }
    let names = Names::of(qc);
    let interval = qc
        .spec
        .monitoring
        .as_ref()
        .and_then(|m| m.interval.clone())
        .unwrap_or_else(|| "30s".into());
    let mut endpoint = json!({"port": "http", "path": "/metrics", "interval": interval,
        "scheme": names.client_scheme()});
    let keys = key_refs(qc);
    if !keys.is_empty() {
        let key = if keys.iter().any(|k| k.kind == KeyKind::ReadOnly) {
            served_keys::READ_ONLY_API_KEY
        } else {
            served_keys::OPERATOR_API_KEY
        };
        endpoint["authorization"] = json!({"type": "Bearer",
            "credentials": {"name": names.served_keys_secret, "key": key}});
    }
    if names.client_tls {
        endpoint["tlsConfig"] = json!({
            "ca": {"secret": {"name": names.tls_secret, "key": super::tls::CA_KEY}},
            "serverName": format!("{}.{}.svc", names.cluster, names.namespace)});
    }
    let spec = BTreeMap::from([
        (
            "selector".to_string(),
            json!({"matchLabels": selector_labels(qc)}),
        ),
        (
            "namespaceSelector".to_string(),
            json!({"matchNames": [names.namespace]}),
        ),
        ("podMetricsEndpoints".to_string(), json!([endpoint])),
    ]);
    let mut pm = PodMonitor::new(&names.cluster, PodMonitorSpec(spec));
    pm.metadata = meta(qc, &names.cluster);
    Some(pm)
}

/// The PrometheusRule `<cluster>`, group `qdrant-<cluster>`, alerts on the peers of this cluster
/// (by namespace and pod name) from Qdrant's own metrics, the kubelet's volume stats and
/// cAdvisor's memory (names as Qdrant 1.18 exports them):
///
/// - `QdrantPeerDown`: a scrape target is down for 5 minutes;
/// - `QdrantConsensusNotWorking`: `cluster_working_state{state="working"}` is 0 (no Raft
///   leader) for 2 minutes;
/// - `QdrantPendingConsensusOperations`: `cluster_pending_operations_total` above 0 for 10 m;
/// - `QdrantShardReplicasNotActive`: `collection_dead_replicas` above 0 for 10 minutes;
/// - `QdrantShardTransferStuck`: `collection_shard_transfer_outgoing` above 0 for an hour;
/// - `QdrantDiskNearlyFull`: under 10% free on a peer's volume;
/// - `QdrantMemoryNearLimit`: the container above 90% of its memory limit for 10 minutes.
pub fn prometheus_rule(qc: &QdrantCluster) -> Option<PrometheusRule> {
    if !enabled(qc) {
        return None;
    }
    let names = Names::of(qc);
    let (ns, cluster) = (&names.namespace, &names.cluster);
    let pods = format!(r#"namespace="{ns}",pod=~"{cluster}-[0-9]+""#);
    let alert = |name: &str, expr: String, duration: &str, severity: &str, summary: String| {
        json!({"alert": name, "expr": expr, "for": duration,
            "labels": {"severity": severity, "qdrant_cluster": cluster},
            "annotations": {"summary": summary}})
    };
    // The data claims `<template>-<cluster>-<ordinal>` (an adopted StatefulSet keeps its own
    // template name).
    let claims = format!("{}-{cluster}-[0-9]+", qc.spec.data_volume_claim_template());
    let rules = vec![
        alert(
            "QdrantPeerDown",
            format!("up{{{pods}}} == 0"),
            "5m",
            "critical",
            format!("Qdrant peer {{{{ $labels.pod }}}} of cluster {ns}/{cluster} is down"),
        ),
        alert(
            "QdrantConsensusNotWorking",
            format!(r#"cluster_working_state{{{pods},state="working"}} == 0"#),
            "2m",
            "critical",
            format!(
                "Raft consensus of {ns}/{cluster} is not working on {{{{ $labels.pod }}}} (no leader)"
            ),
        ),
        alert(
            "QdrantPendingConsensusOperations",
            format!("cluster_pending_operations_total{{{pods}}} > 0"),
            "10m",
            "warning",
            format!(
                "{{{{ $labels.pod }}}} of {ns}/{cluster} has consensus operations pending for 10 minutes"
            ),
        ),
        alert(
            "QdrantShardReplicasNotActive",
            format!("collection_dead_replicas{{{pods}}} > 0"),
            "10m",
            "warning",
            format!(
                "{{{{ $labels.pod }}}} of {ns}/{cluster} holds shard replicas that are not Active"
            ),
        ),
        alert(
            "QdrantShardTransferStuck",
            format!("collection_shard_transfer_outgoing{{{pods}}} > 0"),
            "1h",
            "warning",
            format!(
                "a shard transfer from {{{{ $labels.pod }}}} of {ns}/{cluster} runs for over an hour"
            ),
        ),
        alert(
            "QdrantDiskNearlyFull",
            format!(
                r#"kubelet_volume_stats_available_bytes{{namespace="{ns}",persistentvolumeclaim=~"{claims}"}} / kubelet_volume_stats_capacity_bytes{{namespace="{ns}",persistentvolumeclaim=~"{claims}"}} < 0.10"#
            ),
            "5m",
            "warning",
            format!(
                "volume {{{{ $labels.persistentvolumeclaim }}}} of {ns}/{cluster} has under 10% free (grow spec.persistence.size)"
            ),
        ),
        alert(
            "QdrantMemoryNearLimit",
            format!(
                r#"container_memory_working_set_bytes{{{pods},container="qdrant"}} / container_spec_memory_limit_bytes{{{pods},container="qdrant"}} > 0.90"#
            ),
            "10m",
            "warning",
            format!("{{{{ $labels.pod }}}} of {ns}/{cluster} uses over 90% of its memory limit"),
        ),
    ];
    let spec = BTreeMap::from([(
        "groups".to_string(),
        json!([{"name": format!("qdrant-{cluster}"), "rules": rules}]),
    )]);
    let mut rule = PrometheusRule::new(cluster, PrometheusRuleSpec(spec));
    rule.metadata = meta(qc, cluster);
    Some(rule)
}

/// The dashboard ConfigMap `<cluster>-dashboard` (label `grafana_dashboard: "1"`, the
/// convention of kube-prometheus-stack's Grafana sidecar): peers up, Raft term and pending
/// operations, points per collection, dead replicas and transfers, memory per peer, all
/// filtered to this cluster's pods. It carries the managed-by label but not the instance
/// labels, so the children sweep leaves it to [`crate::monitoring`].
pub fn dashboard(qc: &QdrantCluster) -> Option<ConfigMap> {
    if !enabled(qc) {
        return None;
    }
    let names = Names::of(qc);
    let (ns, cluster) = (&names.namespace, &names.cluster);
    let sel = format!(r#"namespace="{ns}",pod=~"{cluster}-[0-9]+""#);
    let panel = |id: u32, title: &str, expr: String, x: u32, y: u32| {
        json!({"id": id, "type": "timeseries", "title": title,
            "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "targets": [{"expr": expr, "legendFormat": "{{pod}} {{id}}"}]})
    };
    let board = json!({
        "title": format!("Qdrant {ns}/{cluster}"),
        "uid": format!("qdrant-{ns}-{cluster}").chars().take(40).collect::<String>(),
        "schemaVersion": 39,
        "tags": ["qdrant", "qdrant-operator"],
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [
            panel(1, "Peers up", format!("up{{{sel}}}"), 0, 0),
            panel(2, "Raft term", format!("cluster_term{{{sel}}}"), 12, 0),
            panel(3, "Pending consensus operations", format!("cluster_pending_operations_total{{{sel}}}"), 0, 8),
            panel(4, "Points per collection", format!("max by (id) (collection_points{{{sel}}})"), 12, 8),
            panel(5, "Dead shard replicas", format!("collection_dead_replicas{{{sel}}}"), 0, 16),
            panel(6, "Outgoing shard transfers", format!("collection_shard_transfer_outgoing{{{sel}}}"), 12, 16),
            panel(7, "Resident memory", format!("memory_resident_bytes{{{sel}}}"), 0, 24),
            panel(8, "Running optimizations", format!("collection_running_optimizations{{{sel}}}"), 12, 24),
        ],
    });
    let name = format!("{cluster}-dashboard");
    let labels = BTreeMap::from([
        (DASHBOARD_LABEL.to_string(), "1".to_string()),
        (
            super::labels::MANAGED_BY.to_string(),
            super::labels::MANAGER.to_string(),
        ),
    ]);
    Some(ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            owner_references: owner_reference(qc).map(|o| vec![o]),
            ..kube::api::ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            format!("{name}.json"),
            serde_json::to_string_pretty(&board).unwrap_or_default(),
        )])),
        ..ConfigMap::default()
    })
}
