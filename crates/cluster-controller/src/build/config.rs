//! config.yaml: the operator's settings (cluster mode, ports, storage paths) over the user's
//! free-form `spec.config`. API keys never go here; they reach Qdrant as environment
//! variables from Secrets.

use api_types::{
    QdrantCluster, QdrantClusterSpec,
    cluster::{GRPC_PORT, HTTP_PORT, P2P_PORT},
};
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Names, child_meta};

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

/// The settings the operator owns, as a JSON tree.
fn operator_settings() -> Value {
    json!({
        "cluster": {"enabled": true, "p2p": {"port": P2P_PORT}},
        "service": {"host": "0.0.0.0", "http_port": HTTP_PORT, "grpc_port": GRPC_PORT},
        "storage": {"storage_path": STORAGE_PATH, "snapshots_path": SNAPSHOTS_PATH},
    })
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
    merge(&mut tree, operator_settings());
    serde_saphyr::to_string(&tree).map_err(|e| ConfigError::Serialize(e.to_string()))
}

/// SHA-256 of config.yaml, hex; goes on the pod template so a config change rolls the pods.
pub fn hash(config: &str) -> String {
    hex::encode(Sha256::digest(config.as_bytes()))
}

/// The ConfigMap `<cluster>-config` holding config.yaml.
pub fn config_map(qc: &QdrantCluster, config: String) -> ConfigMap {
    ConfigMap {
        metadata: child_meta(qc, &Names::of(qc).config_map),
        data: Some([(CONFIG_KEY.to_string(), config)].into()),
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
    fn hash_is_stable_and_sensitive() {
        let a = config_yaml(&spec(json!({"log_level": "INFO", "a": {"b": 1, "c": 2}}))).unwrap();
        let b = config_yaml(&spec(json!({"a": {"c": 2, "b": 1}, "log_level": "INFO"}))).unwrap();
        assert_eq!(hash(&a), hash(&b));
        let c = config_yaml(&spec(json!({"log_level": "DEBUG"}))).unwrap();
        assert_ne!(hash(&a), hash(&c));
        assert_eq!(hash(&a).len(), 64);
    }
}
