//! The keys the pods serve, and how a rotated key reaches them without a refused request.
//!
//! The pods never read the user's (or the generated) key Secrets directly: their environment
//! comes from the operator's own Secret `<cluster>-served-keys` ([`served_keys_secret`]),
//! owned by the QdrantCluster, holding
//!
//! - [`API_KEY`]: `service.api_key` of the pods started from the current template;
//! - [`ALT_API_KEY`]: `service.alt_api_key` (Qdrant 1.18's second accepted read-write key):
//!   the previous read-write key while a rotation rolls, the same value as [`API_KEY`] once
//!   the old key is dropped;
//! - [`READ_ONLY_API_KEY`]: `service.read_only_api_key`, when `spec.auth.readOnlyApiKey` is
//!   set (Qdrant has no second read-only key);
//! - [`SALT`]: random bytes that make [`keys_hash`] useless for guessing a key.
//!
//! [`plan`] moves that state on one step at a time, and only once every pod runs the current
//! one (its pod-template annotation [`KEYS_HASH_ANNOTATION`] equals [`keys_hash`]):
//!
//! 1. the spec's key changed from `A` to `B`: served `{api_key: B, alt: A}`. Old pods accept
//!    `A` (their `api_key`), new pods accept `B` and `A`: the operator sends `A`
//!    ([`operator_key`]) until every pod runs the new state;
//! 2. every pod serves `{B, alt A}`: served `{api_key: B, alt: B}` (the old key is dropped),
//!    which rolls the pods again. Old pods accept `B` and `A`, new pods `B`: the operator sends
//!    `B`. At the end `A` is refused everywhere.
//!
//! A second rotation while one rolls waits for the roll to finish (only then would every pod
//! accept a common key); a rotation arriving while the old key is being dropped replaces it
//! directly (`{C, alt B}` drops `A` too). Because the pods read this Secret, not the spec's, a
//! pod that restarts for any other reason mid-roll starts with the served state, which always
//! accepts the key the operator sends.
//!
//! Everything here is pure.

use std::collections::BTreeMap;

use api_types::QdrantCluster;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use sha2::{Digest, Sha256};

use super::{Names, child_meta};

/// Key of [`served_keys_secret`] with the read-write key (`QDRANT__SERVICE__API_KEY`).
pub const API_KEY: &str = "api-key";
/// Key of [`served_keys_secret`] with the second accepted read-write key
/// (`QDRANT__SERVICE__ALT_API_KEY`).
pub const ALT_API_KEY: &str = "alt-api-key";
/// Key of [`served_keys_secret`] with the read-only key (`QDRANT__SERVICE__READ_ONLY_API_KEY`).
pub const READ_ONLY_API_KEY: &str = "read-only-api-key";
/// Key of [`served_keys_secret`] with the salt of [`keys_hash`].
pub const SALT: &str = "salt";
/// Environment variable of Qdrant's second read-write key (`service.alt_api_key`).
pub const ALT_API_KEY_ENV: &str = "QDRANT__SERVICE__ALT_API_KEY";

/// Pod-template annotation with [`keys_hash`] of the served keys: a rotated key changes the
/// template, which rolls the pods through the health gate. Never the key itself.
pub const KEYS_HASH_ANNOTATION: &str = "qdrant.operator.dev/keys-hash";

/// The key values `spec.auth` asks for, as read from their Secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecKeys {
    /// The read-write key (`spec.auth.apiKey`).
    pub api_key: String,
    /// The read-only key (`spec.auth.readOnlyApiKey`), when configured.
    pub read_only_api_key: Option<String>,
}

/// The content of [`served_keys_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct ServedKeys {
    /// [`API_KEY`].
    pub api_key: String,
    /// [`ALT_API_KEY`]; equal to `api_key` when no old key is accepted any more.
    pub alt_api_key: String,
    /// [`READ_ONLY_API_KEY`].
    pub read_only_api_key: Option<String>,
    /// [`SALT`] (hex).
    pub salt: String,
}

impl std::fmt::Debug for ServedKeys {
    /// Never prints a key: only whether an old key is still accepted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedKeys")
            .field("accepts_old_key", &self.accepts_old_key())
            .field("read_only", &self.read_only_api_key.is_some())
            .finish_non_exhaustive()
    }
}

impl ServedKeys {
    /// The first served state for `spec`: no old key accepted.
    pub fn new(spec: &SpecKeys, salt: String) -> Self {
        Self {
            api_key: spec.api_key.clone(),
            alt_api_key: spec.api_key.clone(),
            read_only_api_key: spec.read_only_api_key.clone(),
            salt,
        }
    }

    /// True while a previous read-write key is still accepted (`alt` differs).
    pub fn accepts_old_key(&self) -> bool {
        self.alt_api_key != self.api_key
    }

    /// Reads [`served_keys_secret`]; `None` when [`API_KEY`], [`ALT_API_KEY`] or [`SALT`] is
    /// missing or empty.
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        let get = |k: &str| reconcile_lib::secrets::secret_value(secret, k);
        Some(Self {
            api_key: get(API_KEY)?,
            alt_api_key: get(ALT_API_KEY)?,
            read_only_api_key: get(READ_ONLY_API_KEY),
            salt: get(SALT)?,
        })
    }
}

/// What [`plan`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// The served state is as it was.
    None,
    /// First served state (a new cluster, or one created before the operator served keys).
    Created,
    /// A rotated key is being rolled out (the previous read-write key kept as alt).
    Rotated,
    /// Every pod runs the rotated key: the old one is dropped (a second roll).
    OldKeyDropped,
}

/// The next served state from the `spec` key values (`None` when a configured key cannot be
/// read: nothing moves), the current `served` state, and whether every existing pod runs
/// `served` (`rolled`, see [`all_pods_serve`]).
pub fn plan(
    spec: Option<&SpecKeys>,
    served: Option<&ServedKeys>,
    rolled: bool,
    new_salt: impl FnOnce() -> String,
) -> (Option<ServedKeys>, KeyChange) {
    match (spec, served) {
        (Some(spec), None) => (Some(ServedKeys::new(spec, new_salt())), KeyChange::Created),
        (Some(spec), Some(s)) if rolled => {
            if s.api_key != spec.api_key || s.read_only_api_key != spec.read_only_api_key {
                // Every pod accepts `s.api_key`: it stays accepted (as alt) on the new pods.
                let next = ServedKeys {
                    api_key: spec.api_key.clone(),
                    alt_api_key: s.api_key.clone(),
                    read_only_api_key: spec.read_only_api_key.clone(),
                    salt: s.salt.clone(),
                };
                (Some(next), KeyChange::Rotated)
            } else if s.accepts_old_key() {
                let next = ServedKeys {
                    alt_api_key: s.api_key.clone(),
                    ..s.clone()
                };
                (Some(next), KeyChange::OldKeyDropped)
            } else {
                (Some(s.clone()), KeyChange::None)
            }
        }
        (_, served) => (served.cloned(), KeyChange::None),
    }
}

/// The read-write key the operator sends: one every running pod accepts. Once every pod runs
/// `served` (`rolled`), its `api_key`; before, its `alt_api_key` (the key of the previous
/// state, which both the old pods and the new ones accept).
pub fn operator_key(served: &ServedKeys, rolled: bool) -> &str {
    if rolled {
        &served.api_key
    } else {
        &served.alt_api_key
    }
}

/// The value of [`KEYS_HASH_ANNOTATION`]: SHA-256 (hex) of the salt and every served key.
/// Changes with any key; reveals nothing about them without the salt (which only the
/// Secret holds).
pub fn keys_hash(served: &ServedKeys) -> String {
    let mut h = Sha256::new();
    h.update(b"qdrant-operator/served-keys/v1\0");
    for part in [
        Some(served.salt.as_str()),
        Some(served.api_key.as_str()),
        Some(served.alt_api_key.as_str()),
        served.read_only_api_key.as_deref(),
    ] {
        match part {
            Some(p) => {
                h.update(b"1");
                h.update(p.as_bytes());
            }
            None => h.update(b"0"),
        }
        h.update(b"\0");
    }
    hex::encode(h.finalize())
}

/// True when every pod in `pod_hashes` (each existing pod's [`KEYS_HASH_ANNOTATION`], `None`
/// for a pod without it or one that is terminating) runs the served state of hash `hash`.
/// Pods that do not exist yet count as running it: they are created from the current
/// template, and read the current Secret.
pub fn all_pods_serve<'a>(
    hash: &str,
    pod_hashes: impl IntoIterator<Item = Option<&'a str>>,
) -> bool {
    pod_hashes.into_iter().all(|h| h == Some(hash))
}

/// The Secret `<cluster>-served-keys` holding `served` (type Opaque, owned by the cluster).
pub fn served_keys_secret(qc: &QdrantCluster, served: &ServedKeys) -> Secret {
    let names = Names::of(qc);
    let mut data = BTreeMap::from([
        (API_KEY.to_string(), bytes(&served.api_key)),
        (ALT_API_KEY.to_string(), bytes(&served.alt_api_key)),
        (SALT.to_string(), bytes(&served.salt)),
    ]);
    if let Some(ro) = &served.read_only_api_key {
        data.insert(READ_ONLY_API_KEY.to_string(), bytes(ro));
    }
    Secret {
        metadata: child_meta(qc, &names.served_keys_secret),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

fn bytes(s: &str) -> ByteString {
    ByteString(s.as_bytes().to_vec())
}

/// A new salt: 16 random bytes, hex-encoded.
pub fn random_salt() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}
