//! The API-key step of a reconcile: reads the keys `spec.auth` points at (creating the
//! generated Secrets when missing), keeps the operator's copy the pods read
//! (`<cluster>-served-keys`, [`crate::build::served_keys`]) one step behind a rotation, and
//! says which key the operator sends to Qdrant right now.
//!
//! Calls the Kubernetes API only: `GET` the key Secrets and `<cluster>-served-keys`, `POST`
//! (create) the generated Secrets, server-side apply `<cluster>-served-keys` when its state
//! moves, and `GET pods` (by the cluster's selector) only while a rotation may be rolling.
//! Key values never reach a log, an event, an annotation or the status: the pod template
//! carries only their salted hash.

use api_types::QdrantCluster;
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Secret};
use kube::{Api, ResourceExt};
use reconcile_lib::{
    apply::Outcome,
    context::{Shared, object_key},
    error::Result,
};
use tracing::info;

use crate::build::{
    Names, secret,
    served_keys::{
        self, KEYS_HASH_ANNOTATION, KeyChange, ServedKeys, SpecKeys, all_pods_serve, keys_hash,
    },
};

/// What the key step found or did.
#[derive(Debug, Clone, Default)]
pub struct KeysOutcome {
    /// The read-write key to send to the pods: one every running pod accepts
    /// ([`served_keys::operator_key`]); `None` without a key.
    pub operator_key: Option<String>,
    /// [`served_keys::keys_hash`] of the served state, for `Observed::keys_hash`.
    pub keys_hash: Option<String>,
    /// Reason and message when a key Secret of `spec.auth` is missing.
    pub blocked: Option<(String, String)>,
    /// Reconcile again after this long: the rest of an old key's grace period.
    pub recheck: Option<std::time::Duration>,
}

/// Runs the key step for `qc` (see the module docs). `live_sts` is the StatefulSet before
/// this reconcile's apply (no StatefulSet: no pod to wait for).
///
/// Errors: Kubernetes API failures (transient ones are retried by the error policy). A
/// missing user Secret is reported in [`KeysOutcome::blocked`]; the pods keep the served keys.
pub async fn reconcile(
    qc: &QdrantCluster,
    shared: &Shared,
    names: &Names,
    live_sts: Option<&StatefulSet>,
) -> Result<KeysOutcome> {
    let client = shared.applier.client().clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let mut out = KeysOutcome::default();

    // The spec's keys: generated ones are created once; referenced ones must exist.
    let mut api_key = None;
    let mut read_only = None;
    let mut all_read = true;
    for key in secret::key_refs(qc) {
        let live = if key.generated {
            match secrets.get_opt(&key.secret.name).await? {
                Some(s) => Some(s),
                None => {
                    let desired = secret::generated_secret(qc, &key, &secret::random_key());
                    let (s, outcome) = shared.applier.create_if_missing(&desired).await?;
                    if outcome == Outcome::Created {
                        shared
                            .events
                            .normal(
                                qc,
                                "SecretCreated",
                                "Create",
                                format!("generated API key in Secret {}", key.secret.name),
                            )
                            .await;
                    }
                    Some(s)
                }
            }
        } else {
            secrets.get_opt(&key.secret.name).await?
        };
        let value = live
            .as_ref()
            .and_then(|s| reconcile_lib::secrets::secret_value(s, &key.secret.key));
        if value.is_none() {
            all_read = false;
            if out.blocked.is_none() {
                out.blocked = Some((
                    "SecretNotFound".to_string(),
                    format!(
                        "Secret {} with key {} (from spec.auth) not found in namespace {}",
                        key.secret.name, key.secret.key, names.namespace
                    ),
                ));
            }
        }
        match key.kind {
            secret::KeyKind::ReadWrite => api_key = value,
            secret::KeyKind::ReadOnly => read_only = value,
        }
    }
    let spec = match api_key {
        Some(api_key) if all_read => Some(SpecKeys {
            api_key,
            read_only_api_key: read_only,
        }),
        _ => None,
    };

    // The served state, and whether every pod runs it.
    let live = secrets.get_opt(&names.served_keys_secret).await?;
    let served = live.as_ref().and_then(ServedKeys::from_secret);
    let settled = served.as_ref().is_some_and(|s| {
        !s.accepts_old_key()
            && spec.as_ref().is_none_or(|spec| {
                spec.api_key == s.api_key && spec.read_only_api_key == s.read_only_api_key
            })
    });
    // Only a rotation in flight needs the pods: otherwise every pod accepts `api_key`.
    let pod_hashes = if settled || live_sts.is_none() {
        vec![]
    } else {
        crate::pods::list(&client, qc, names)
            .await?
            .into_iter()
            .map(|p| {
                let terminating = p.metadata.deletion_timestamp.is_some();
                (!terminating)
                    .then(|| p.annotations().get(KEYS_HASH_ANNOTATION).cloned())
                    .flatten()
            })
            .collect()
    };
    let rolled = |s: &ServedKeys| {
        let hash = keys_hash(s);
        all_pods_serve(&hash, pod_hashes.iter().map(Option::as_deref))
    };
    let plan = served_keys::plan(
        spec.as_ref(),
        served.as_ref(),
        served.as_ref().is_some_and(rolled),
        jiff::Timestamp::now(),
        qc.spec.auth.old_key_grace_period(),
        served_keys::random_salt,
    );
    out.recheck = plan.recheck;
    let Some(next) = plan.next else {
        return Ok(out);
    };
    let now_rolled = rolled(&next);
    // Applied at every reconcile (the applier writes only a change): the operator key moves
    // from the previous key to the new one when the pods have rolled, with no other change.
    let desired = served_keys::served_keys_secret(qc, &next, now_rolled);
    shared.applier.apply(&desired).await?;
    if plan.change != KeyChange::None {
        let message = match plan.change {
            KeyChange::Created | KeyChange::None => None,
            KeyChange::Rotated => Some((
                "ApiKeyRotating",
                format!(
                    "a key of spec.auth changed: Secret {} now serves it, and the previous \
                     read-write key as alt_api_key; the pods restart one at a time, the \
                     operator sends the previous key until every pod runs the new one",
                    names.served_keys_secret
                ),
            )),
            KeyChange::RolledOut => Some((
                "ApiKeyRolledOut",
                format!(
                    "every pod accepts the new read-write key (and still the previous one): \
                     switch clients to the new key; the previous one is dropped in {}s \
                     (spec.auth.oldKeyGracePeriodSeconds), by a second roll",
                    plan.recheck.unwrap_or_default().as_secs()
                ),
            )),
            KeyChange::OldKeyDropped => Some((
                "OldApiKeyDropped",
                "the previous read-write key is dropped (its grace period is over): the pods \
                 restart one at a time once more, then refuse it"
                    .to_string(),
            )),
        };
        if let Some((reason, message)) = message {
            info!(cluster = %object_key(qc), %message, "API keys");
            shared.events.normal(qc, reason, "RotateKey", message).await;
        }
    }
    out.operator_key = Some(served_keys::operator_key(&next, now_rolled).to_string());
    out.keys_hash = Some(keys_hash(&next));
    Ok(out)
}
