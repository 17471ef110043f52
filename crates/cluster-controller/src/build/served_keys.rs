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
//! - [`SALT`]: random bytes that make [`keys_hash`] useless for guessing a key;
//! - [`ROLLED_OUT_AT`]: when every pod was first seen running a rotated key (not a key; not
//!   in the hash), the start of `spec.auth.oldKeyGracePeriodSeconds`.
//!
//! [`plan`] moves that state on one step at a time, and only once every pod runs the current
//! one (its pod-template annotation [`KEYS_HASH_ANNOTATION`] equals [`keys_hash`]):
//!
//! 1. the spec's key changed from `A` to `B`: served `{api_key: B, alt: A}`. Old pods accept
//!    `A` (their `api_key`), new pods accept `B` and `A`: the operator sends `A`
//!    ([`operator_key`]) until every pod runs the new state;
//! 2. every pod serves `{B, alt A}`: the operator sends `B`, and the time is noted
//!    ([`ROLLED_OUT_AT`]). Clients may switch to `B` now; `A` is still accepted everywhere;
//! 3. once the grace period (`spec.auth.oldKeyGracePeriodSeconds`, default 1 hour) has passed
//!    since then: served `{api_key: B, alt: B}` (the old key is dropped), which rolls the pods
//!    again. Old pods accept `B` and `A`, new pods `B`: the operator sends `B`. At the end `A`
//!    is refused everywhere.
//!
//! A second rotation while one rolls waits for the roll to finish (only then would every pod
//! accept a common key); a rotation arriving during the grace period or while the old key is
//! being dropped replaces it directly (`{C, alt B}` drops `A` too). Because the pods read this Secret, not the spec's, a
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
/// Key of [`served_keys_secret`] with the time every pod was first seen running a rotated
/// key (RFC 3339).
pub const ROLLED_OUT_AT: &str = "rolled-out-at";
/// Key of the served Secret with the read-write key every controller sends now
/// ([`operator_key`]); `status.auth.apiKeySecretRef` names it, so the collection and backup
/// controllers switch keys when the cluster-controller does.
pub const OPERATOR_API_KEY: &str = "operator-api-key";
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
    /// [`ROLLED_OUT_AT`]: set while the old key is kept for the grace period.
    pub rolled_out_at: Option<jiff::Timestamp>,
}

impl std::fmt::Debug for ServedKeys {
    /// Never prints a key: only whether an old key is still accepted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedKeys")
            .field("accepts_old_key", &self.accepts_old_key())
            .field("read_only", &self.read_only_api_key.is_some())
            .field("rolled_out_at", &self.rolled_out_at)
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
            rolled_out_at: None,
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
            rolled_out_at: get(ROLLED_OUT_AT).and_then(|t| t.parse().ok()),
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
    /// Every pod runs the rotated key: the grace period of the old one starts.
    RolledOut,
    /// The grace period is over: the old key is dropped (a second roll).
    OldKeyDropped,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlan {
    /// The served state to keep or write (`None`: no key to serve).
    pub next: Option<ServedKeys>,
    /// What changed (anything but [`KeyChange::None`] is written).
    pub change: KeyChange,
    /// When to look again: the rest of the grace period.
    pub recheck: Option<std::time::Duration>,
}

/// The next served state from the `spec` key values (`None` when a configured key cannot be
/// read: nothing moves), the current `served` state, whether every existing pod runs
/// `served` (`rolled`, see [`all_pods_serve`]), the time `now` and the grace period of an old
/// key (`spec.auth.oldKeyGracePeriodSeconds`).
pub fn plan(
    spec: Option<&SpecKeys>,
    served: Option<&ServedKeys>,
    rolled: bool,
    now: jiff::Timestamp,
    grace: std::time::Duration,
    new_salt: impl FnOnce() -> String,
) -> KeyPlan {
    let keep = |s: Option<&ServedKeys>| KeyPlan {
        next: s.cloned(),
        change: KeyChange::None,
        recheck: None,
    };
    let write = |next: ServedKeys, change| KeyPlan {
        next: Some(next),
        change,
        recheck: None,
    };
    let (spec, s) = match (spec, served) {
        (Some(spec), None) => {
            return write(ServedKeys::new(spec, new_salt()), KeyChange::Created);
        }
        (Some(spec), Some(s)) if rolled => (spec, s),
        (_, served) => return keep(served),
    };
    if s.api_key != spec.api_key || s.read_only_api_key != spec.read_only_api_key {
        // Every pod accepts `s.api_key`: it stays accepted (as alt) on the new pods.
        let next = ServedKeys {
            api_key: spec.api_key.clone(),
            alt_api_key: s.api_key.clone(),
            read_only_api_key: spec.read_only_api_key.clone(),
            salt: s.salt.clone(),
            rolled_out_at: None,
        };
        return write(next, KeyChange::Rotated);
    }
    if !s.accepts_old_key() {
        return keep(Some(s));
    }
    let since = s.rolled_out_at.unwrap_or(now);
    let elapsed = std::time::Duration::try_from(now.duration_since(since)).unwrap_or_default();
    if elapsed >= grace {
        let next = ServedKeys {
            alt_api_key: s.api_key.clone(),
            rolled_out_at: None,
            ..s.clone()
        };
        return write(next, KeyChange::OldKeyDropped);
    }
    let recheck = Some(grace - elapsed);
    match s.rolled_out_at {
        Some(_) => KeyPlan {
            recheck,
            ..keep(Some(s))
        },
        None => KeyPlan {
            next: Some(ServedKeys {
                rolled_out_at: Some(now),
                ..s.clone()
            }),
            change: KeyChange::RolledOut,
            recheck,
        },
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

/// The value of [`KEYS_HASH_ANNOTATION`]: SHA-256 (hex) of the salt and every served key
/// ([`ROLLED_OUT_AT`] is not in it: noting the time restarts no pod).
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

/// The Secret `<cluster>-served-keys` holding `served` (type Opaque, owned by the cluster),
/// with [`OPERATOR_API_KEY`] = [`operator_key`]`(served, rolled)` (`rolled`: every pod runs
/// `served`).
pub fn served_keys_secret(qc: &QdrantCluster, served: &ServedKeys, rolled: bool) -> Secret {
    let names = Names::of(qc);
    let mut data = BTreeMap::from([
        (API_KEY.to_string(), bytes(&served.api_key)),
        (ALT_API_KEY.to_string(), bytes(&served.alt_api_key)),
        (SALT.to_string(), bytes(&served.salt)),
        (
            OPERATOR_API_KEY.to_string(),
            bytes(operator_key(served, rolled)),
        ),
    ]);
    if let Some(ro) = &served.read_only_api_key {
        data.insert(READ_ONLY_API_KEY.to_string(), bytes(ro));
    }
    if let Some(at) = &served.rolled_out_at {
        data.insert(ROLLED_OUT_AT.to_string(), bytes(&at.to_string()));
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
