//! API keys: which Secret holds each key (generated or the user's), and the generated Secret.

use api_types::{
    QdrantCluster,
    cluster::{KeySource, SecretKeyRef},
};
use k8s_openapi::api::core::v1::Secret;

use super::{Names, child_meta};

/// Key inside generated Secrets.
pub const GENERATED_KEY: &str = "api-key";

/// Which key a Secret holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `service.api_key`.
    ReadWrite,
    /// `service.read_only_api_key`.
    ReadOnly,
}

impl KeyKind {
    /// Environment variable through which Qdrant reads the key.
    pub fn env_var(self) -> &'static str {
        match self {
            Self::ReadWrite => "QDRANT__SERVICE__API_KEY",
            Self::ReadOnly => "QDRANT__SERVICE__READ_ONLY_API_KEY",
        }
    }
}

/// A key the cluster uses: where it lives and whether the operator generates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// Read-write or read-only.
    pub kind: KeyKind,
    /// The Secret and key holding the value.
    pub secret: SecretKeyRef,
    /// True when the operator creates the Secret.
    pub generated: bool,
}

/// The keys of `qc` (from `spec.auth`), read-write first.
pub fn key_refs(qc: &QdrantCluster) -> Vec<KeyRef> {
    let names = Names::of(qc);
    let resolve = |kind, source: &Option<KeySource>, generated_name: &str| {
        source.as_ref().map(|s| match &s.secret_key_ref {
            Some(r) => KeyRef {
                kind,
                secret: r.clone(),
                generated: false,
            },
            None => KeyRef {
                kind,
                secret: SecretKeyRef {
                    name: generated_name.to_string(),
                    key: GENERATED_KEY.into(),
                },
                generated: true,
            },
        })
    };
    [
        resolve(
            KeyKind::ReadWrite,
            &qc.spec.auth.api_key,
            &names.api_key_secret,
        ),
        resolve(
            KeyKind::ReadOnly,
            &qc.spec.auth.read_only_api_key,
            &names.read_only_api_key_secret,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A generated key Secret with `value` (created once, never updated by the operator).
pub fn generated_secret(qc: &QdrantCluster, key: &KeyRef, value: &str) -> Secret {
    Secret {
        metadata: child_meta(qc, &key.secret.name),
        type_: Some("Opaque".into()),
        string_data: Some([(key.secret.key.clone(), value.to_string())].into()),
        ..Secret::default()
    }
}

/// A new random key: 32 bytes from the OS-seeded thread RNG, hex-encoded (64 characters).
pub fn random_key() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
