//! Qdrant's official Helm chart (qdrant/qdrant-helm, `charts/qdrant`) as it renders a release:
//! the objects a QdrantCluster with `spec.adoption` takes over. Written by hand from the
//! chart's templates (`statefulset.yaml`, `configmap.yaml`, `service.yaml`,
//! `service-headless.yaml`, `_helpers.tpl`) and its default values: the StatefulSet leaves
//! `updateStrategy` to Kubernetes' default (`RollingUpdate`), selects by three labels, mounts
//! claim template `qdrant-storage` at its root on `/qdrant/storage`, and starts each peer
//! through the ConfigMap's `initialize.sh` with a short p2p URI found through `$HOSTNAME`.

use serde_json::{Value, json};

/// The chart's selector labels (`qdrant.selectorLabels`) of release `release`.
pub fn selector(release: &str) -> Value {
    json!({"app": "qdrant", "app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": release})
}

/// The chart's `initialize.sh` for fullname `name` (no snapshot restoration).
pub fn initialize_sh(name: &str) -> String {
    r#"#!/bin/sh
SET_INDEX=${HOSTNAME##*-}
echo "Starting initializing for pod $SET_INDEX"
if [ "$SET_INDEX" = "0" ]; then
  exec ./entrypoint.sh --uri 'http://__FULLNAME__-0.__FULLNAME__-headless:6335'
else
  exec ./entrypoint.sh --bootstrap 'http://__FULLNAME__-0.__FULLNAME__-headless:6335' --uri 'http://__FULLNAME__-'"$SET_INDEX"'.__FULLNAME__-headless:6335'
fi
"#
    .replace("__FULLNAME__", name)
}

/// The objects of Helm release `name` in namespace `ns` (its fullname is `name` too, as for
/// any release name containing `qdrant`), as the chart renders them with its default values
/// and `replicaCount: replicas`: ConfigMap, headless and client Services, StatefulSet.
pub fn helm_release(ns: &str, name: &str, replicas: i32) -> Vec<Value> {
    let labels = json!({
        "helm.sh/chart": "qdrant-1.18.3", "app": "qdrant", "app.kubernetes.io/name": "qdrant",
        "app.kubernetes.io/instance": name, "app.kubernetes.io/version": "v1.18.3",
        "app.kubernetes.io/managed-by": "Helm",
    });
    let ports = json!([
        {"name": "http", "port": 6333, "targetPort": 6333, "protocol": "TCP"},
        {"name": "grpc", "port": 6334, "targetPort": 6334, "protocol": "TCP"},
        {"name": "p2p", "port": 6335, "targetPort": 6335, "protocol": "TCP"},
    ]);
    vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": {
            "initialize.sh": initialize_sh(name),
            "production.yaml": "cluster:\n  consensus:\n    tick_period_ms: 100\n  enabled: true\n  p2p:\n    port: 6335\n",
        }}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("{name}-headless"), "namespace": ns, "labels": labels},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
                "ports": ports, "selector": selector(name)}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"type": "ClusterIP", "ports": ports, "selector": selector(name)}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector(name)},
            "serviceName": format!("{name}-headless"),
            "template": {
                "metadata": {"annotations": {"checksum/config": "c0ffee"}, "labels": selector(name)},
                "spec": {
                    "initContainers": [{"name": "ensure-dir-ownership",
                        "image": "docker.io/qdrant/qdrant:v1.18.3",
                        "command": ["chown", "-R", "1000:3000", "/qdrant/storage", "/qdrant/snapshots"],
                        "volumeMounts": [
                            {"name": "qdrant-storage", "mountPath": "/qdrant/storage"},
                            {"name": "qdrant-snapshots", "mountPath": "/qdrant/snapshots"}]}],
                    "containers": [{
                        "name": "qdrant",
                        "image": "docker.io/qdrant/qdrant:v1.18.3",
                        "imagePullPolicy": "IfNotPresent",
                        "env": [{"name": "QDRANT_INIT_FILE_PATH", "value": "/qdrant/init/.qdrant-initialized"}],
                        "command": ["/bin/bash", "-c"],
                        "args": ["./config/initialize.sh"],
                        "ports": [
                            {"name": "http", "containerPort": 6333, "protocol": "TCP"},
                            {"name": "grpc", "containerPort": 6334, "protocol": "TCP"},
                            {"name": "p2p", "containerPort": 6335, "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 6333},
                            "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 5,
                            "successThreshold": 1, "failureThreshold": 6},
                        "securityContext": {"privileged": false, "runAsNonRoot": true,
                            "runAsUser": 1000, "runAsGroup": 2000,
                            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true},
                        "volumeMounts": [
                            {"name": "qdrant-storage", "mountPath": "/qdrant/storage"},
                            {"name": "qdrant-config", "mountPath": "/qdrant/config/initialize.sh", "subPath": "initialize.sh"},
                            {"name": "qdrant-config", "mountPath": "/qdrant/config/production.yaml", "subPath": "production.yaml"},
                            {"name": "qdrant-snapshots", "mountPath": "/qdrant/snapshots"},
                            {"name": "qdrant-init", "mountPath": "/qdrant/init"}],
                    }],
                    "securityContext": {"fsGroup": 3000, "fsGroupChangePolicy": "Always"},
                    "serviceAccountName": name,
                    "volumes": [
                        {"name": "qdrant-config", "configMap": {"name": name, "defaultMode": 0o755}},
                        {"name": "qdrant-snapshots", "emptyDir": {}},
                        {"name": "qdrant-init", "emptyDir": {}}],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "qdrant-storage", "labels": {"app": "qdrant"}},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "10Gi"}}},
            }],
        }}),
    ]
}
