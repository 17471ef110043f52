//! config.yaml: the operator's settings (cluster mode, ports, storage paths, TLS) over the
//! user's free-form `spec.config`. API keys never go here; they reach Qdrant as environment
//! variables from Secrets. TLS settings only name the files of the mounted Secret.

use api_types::{
    QdrantCluster, QdrantClusterSpec,
    cluster::{GRPC_PORT, HTTP_PORT, P2P_PORT},
};
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Names, child_meta,
    tls::{CA_KEY, CERT_KEY, CERT_TTL_SECONDS, PRIVATE_KEY_KEY, TLS_DIR},
};

/// Key of config.yaml in the ConfigMap; mounted as `/qdrant/config/production.yaml`, the file
/// Qdrant's image reads over its defaults (`RUN_MODE=production`).
pub const CONFIG_KEY: &str = "production.yaml";
/// Where the data volume is mounted.
pub const STORAGE_PATH: &str = "/qdrant/storage";
/// Where snapshots are written (a sub-path of the data volume).
pub const SNAPSHOTS_PATH: &str = "/qdrant/snapshots";

/// config.yaml could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `spec.config` is not a mapping.
    #[error("spec.config must be a mapping of Qdrant configuration keys")]
    NotAMapping,
    /// YAML serialization failed.
    #[error("cannot serialize config.yaml: {0}")]
    Serialize(String),
}

/// The settings the operator owns, as a JSON tree. With any of `spec.tls.client` /
/// `spec.tls.p2p` enabled: `service.enable_tls` and `cluster.p2p.enable_tls` as the spec says,
/// and `tls` pointing at the serving Secret's files under [`TLS_DIR`], re-read every
/// [`CERT_TTL_SECONDS`] (HTTPS only, in Qdrant). With TLS off no TLS key is written, so
/// config.yaml (and its hash) is what it was before TLS existed.
fn operator_settings(spec: &QdrantClusterSpec) -> Value {
    let mut settings = json!({
        "cluster": {"enabled": true, "p2p": {"port": P2P_PORT}},
        "service": {"host": "0.0.0.0", "http_port": HTTP_PORT, "grpc_port": GRPC_PORT},
        "storage": {"storage_path": STORAGE_PATH, "snapshots_path": SNAPSHOTS_PATH},
    });
    let tls = spec.tls();
    if tls.any_enabled() {
        merge(
            &mut settings,
            json!({
                "cluster": {"p2p": {"enable_tls": tls.p2p_enabled()}},
                "service": {"enable_tls": tls.client_enabled()},
                "tls": {
                    "cert": format!("{TLS_DIR}/{CERT_KEY}"),
                    "key": format!("{TLS_DIR}/{PRIVATE_KEY_KEY}"),
                    "ca_cert": format!("{TLS_DIR}/{CA_KEY}"),
                    "cert_ttl": CERT_TTL_SECONDS,
                },
            }),
        );
    }
    settings
}

/// Deep-merges `overlay` into `base` (maps merge recursively; anything else replaces).
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// config.yaml for `spec`: the user's `spec.config` with the operator's settings merged over
/// it (validation refuses user values for operator-owned keys beforehand; the merge order
/// guarantees ours win regardless). Keys are sorted, so the text, and its hash, is stable.
pub fn config_yaml(spec: &QdrantClusterSpec) -> Result<String, ConfigError> {
    let mut tree = match &spec.config {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(ConfigError::NotAMapping),
    };
    merge(&mut tree, operator_settings(spec));
    serde_saphyr::to_string(&tree).map_err(|e| ConfigError::Serialize(e.to_string()))
}

/// SHA-256 of config.yaml, hex; goes on the pod template so a config change rolls the pods.
pub fn hash(config: &str) -> String {
    hex::encode(Sha256::digest(config.as_bytes()))
}

/// Key of the cluster's member list in the ConfigMap (not part of config.yaml, nor of its
/// hash: it changes without rolling the pods). One p2p URI per line, by ordinal, of the pods
/// that reported themselves as consensus members at the last observation (`status.peers`).
/// The start script bootstraps from one of them, so a pod whose volume came back empty, pod 0
/// included, joins the cluster instead of founding a new one.
pub const BOOTSTRAP_PEERS_KEY: &str = "bootstrap-peers";

/// The [`BOOTSTRAP_PEERS_KEY`] value for `qc`: `names.peer_uri(o)` and a newline for each
/// ordinal `o < spec.replicas` named by a pod in `status.peers`, ascending; `None` before
/// any pod reported, and for a one-pod cluster (whose only peer, if its volume is lost, can
/// only found the cluster anew).
pub fn bootstrap_peers(qc: &QdrantCluster) -> Option<String> {
    if qc.spec.replicas < 2 {
        return None;
    }
    let names = Names::of(qc);
    let limit = u32::try_from(qc.spec.replicas).unwrap_or(0);
    let ordinals: std::collections::BTreeSet<u32> = qc
        .status
        .as_ref()
        .map(|s| s.peers.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| names.pod_ordinal(&p.pod))
        .filter(|o| *o < limit)
        .collect();
    (!ordinals.is_empty()).then(|| {
        ordinals
            .into_iter()
            .map(|o| format!("{}\n", names.peer_uri(o)))
            .collect()
    })
}

/// The ConfigMap `<cluster>-config` holding config.yaml and, once the cluster formed, the
/// members to bootstrap from ([`bootstrap_peers`]).
pub fn config_map(qc: &QdrantCluster, config: String) -> ConfigMap {
    let mut data = std::collections::BTreeMap::from([(CONFIG_KEY.to_string(), config)]);
    if let Some(peers) = bootstrap_peers(qc) {
        data.insert(BOOTSTRAP_PEERS_KEY.to_string(), peers);
    }
    ConfigMap {
        metadata: child_meta(qc, &Names::of(qc).config_map),
        data: Some(data),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(config: Value) -> QdrantClusterSpec {
        serde_json::from_value(json!({"config": config})).unwrap()
    }

    #[test]
    fn operator_settings_are_present_without_user_config() {
        let yaml = config_yaml(&serde_json::from_value(json!({})).unwrap()).unwrap();
        let v: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(v["cluster"]["enabled"], json!(true));
        assert_eq!(v["cluster"]["p2p"]["port"], json!(6335));
        assert_eq!(v["service"]["http_port"], json!(6333));
        assert_eq!(v["service"]["grpc_port"], json!(6334));
        assert_eq!(v["storage"]["storage_path"], json!("/qdrant/storage"));
        assert!(!yaml.contains("api_key"));
    }

    #[test]
    fn user_config_is_merged_and_cannot_override_owned_keys() {
        let yaml = config_yaml(&spec(json!({
            "log_level": "DEBUG",
            "storage": {"performance": {"max_search_threads": 4}, "storage_path": "/elsewhere"},
            "cluster": {"consensus": {"tick_period_ms": 50}},
        })))
        .unwrap();
        let v: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(v["log_level"], json!("DEBUG"));
        assert_eq!(v["storage"]["performance"]["max_search_threads"], json!(4));
        assert_eq!(v["cluster"]["consensus"]["tick_period_ms"], json!(50));
        assert_eq!(v["cluster"]["enabled"], json!(true));
        // Validation refuses this key; the merge still keeps ours.
        assert_eq!(v["storage"]["storage_path"], json!("/qdrant/storage"));
    }

    #[test]
    fn tls_settings_follow_the_spec() {
        let yaml = |tls: Value| {
            let y = config_yaml(&serde_json::from_value(json!({"tls": tls})).unwrap()).unwrap();
            serde_saphyr::from_str::<Value>(&y).unwrap()
        };
        // Off (absent, or both disabled): no TLS key at all.
        for off in [Value::Null, json!({"client": {"enabled": false}})] {
            let v = yaml(off);
            assert_eq!(v.get("tls"), None);
            assert_eq!(v["service"].get("enable_tls"), None);
            assert_eq!(v["cluster"]["p2p"].get("enable_tls"), None);
        }
        let v = yaml(json!({"client": {"enabled": true}}));
        assert_eq!(v["service"]["enable_tls"], json!(true));
        assert_eq!(v["cluster"]["p2p"]["enable_tls"], json!(false));
        assert_eq!(v["cluster"]["p2p"]["port"], json!(6335));
        assert_eq!(
            v["tls"],
            json!({"cert": "/qdrant/tls/tls.crt", "key": "/qdrant/tls/tls.key",
                   "ca_cert": "/qdrant/tls/ca.crt", "cert_ttl": 3600})
        );
        let v = yaml(json!({"p2p": {"enabled": true}, "secretName": "mine"}));
        assert_eq!(v["service"]["enable_tls"], json!(false));
        assert_eq!(v["cluster"]["p2p"]["enable_tls"], json!(true));
        assert_eq!(v["tls"]["ca_cert"], json!("/qdrant/tls/ca.crt"));
    }

    #[test]
    fn tls_keys_in_spec_config_are_still_refused() {
        // The owned-keys validation stays in force with TLS on.
        let spec: QdrantClusterSpec = serde_json::from_value(json!({
            "tls": {"client": {"enabled": true}},
            "config": {"tls": {"cert": "/elsewhere"}, "service": {"enable_tls": false}},
        }))
        .unwrap();
        let err = api_types::validation::validate_cluster(&spec)
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.config.tls"), "{err}");
        assert!(err.contains("spec.config.service.enable_tls"), "{err}");
        // And the merge keeps ours regardless.
        let v: Value = serde_saphyr::from_str(&config_yaml(&spec).unwrap()).unwrap();
        assert_eq!(v["tls"]["cert"], json!("/qdrant/tls/tls.crt"));
        assert_eq!(v["service"]["enable_tls"], json!(true));
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = config_yaml(&spec(json!({"log_level": "INFO", "a": {"b": 1, "c": 2}}))).unwrap();
        let b = config_yaml(&spec(json!({"a": {"c": 2, "b": 1}, "log_level": "INFO"}))).unwrap();
        assert_eq!(hash(&a), hash(&b));
        let c = config_yaml(&spec(json!({"log_level": "DEBUG"}))).unwrap();
        assert_ne!(hash(&a), hash(&c));
        assert_eq!(hash(&a).len(), 64);
    }
}
