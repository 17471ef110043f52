//! The quotas operation: Qdrant 1.19's cluster-wide resource quotas, from
//! `spec.config.storage.quotas` (`enabled`, `max_resident_memory_percent`,
//! `max_disk_usage_percent`, `release_margin_percent`). Not disruptive.
//!
//! The config file carries `storage.quotas` as the user wrote it, which Qdrant 1.19 reads on
//! a peer's first start. Once a quota config was set through the API, Qdrant persists it and
//! the file no longer counts, so a change of `spec.config.storage.quotas` is applied with
//! `PUT /quotas?wait=true` (consensus: one request for the whole cluster) whenever `GET
//! /quotas` reports another config. Nothing is sent while the pods roll (an upgrade can mix
//! versions: a 1.18 peer has no quotas in its consensus state) nor while any pod runs a
//! Qdrant before 1.19 (each pod's `GET /` is asked): condition QuotasApplied says why.
//! Removing `storage.quotas` from the spec sends `{"enabled": false}` once (after a running
//! rollout; nothing when the pods run a Qdrant before 1.19, which has no quotas), so the
//! limits go with the spec. A cluster that never had quotas costs no request.

use reconcile_lib::{
    error::Result,
    qdrant::{QdrantError, QuotaConfig, minor_version},
};

use crate::{
    operations::{Operation, Scope},
    vocabulary::{reasons, types},
};

/// The first Qdrant version with `/quotas`: 1.19.
pub const QUOTAS_SINCE: (u64, u64) = (1, 19);

/// What the quotas step found or did, for condition QuotasApplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotasProgress {
    /// True when Qdrant enforces the spec's quota config.
    pub applied: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For humans: the config in force, or what is awaited.
    pub message: String,
}

/// The quotas operation (module docs).
pub struct Quotas;

impl Operation for Quotas {
    const NAME: &'static str = "quotas";
    const DISRUPTIVE: bool = false;
    type Progress = QuotasProgress;

    /// Once some pod answered `GET /cluster`, while `spec.config.storage.quotas` is set, and
    /// after it was removed until Qdrant's quotas are disabled (condition reason
    /// `QuotasRemoved`).
    fn wanted(&self, scope: &Scope<'_>) -> bool {
        scope.observation.peers_ok().is_some()
            && (desired(scope.qc).is_some() || was_applied(scope.qc))
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<QuotasProgress>> {
        let desired = desired(scope.qc);
        let removing = desired.is_none();
        // Removed from the spec: `QuotaConfig::default()` is `{"enabled": false}`.
        let want = desired.unwrap_or_default();
        if crate::rollout::may_be_rolling(scope.qc, scope.observation.applied.as_ref()) {
            return Ok(Some(QuotasProgress {
                applied: false,
                reason: reasons::QUOTAS_WAITING_FOR_ROLLOUT.into(),
                message: "the pods are rolling (an upgrade can mix Qdrant versions): \
                          storage.quotas is applied once every pod runs the new revision"
                    .into(),
            }));
        }
        let replicas = scope
            .observation
            .applied
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        for ordinal in 0..u32::try_from(replicas).unwrap_or(0) {
            let client = scope.access.client(scope.names, ordinal)?;
            let served = client.version().await?.version;
            if minor_version(&served).is_none_or(|v| v < QUOTAS_SINCE) && removing {
                return Ok(Some(QuotasProgress {
                    applied: false,
                    reason: reasons::QUOTAS_REMOVED.into(),
                    message: format!(
                        "spec.config.storage.quotas was removed; pod {}-{ordinal} runs {served}, \
                         which has no quotas: nothing to disable",
                        scope.names.cluster
                    ),
                }));
            }
            if minor_version(&served).is_none_or(|v| v < QUOTAS_SINCE) {
                return Ok(Some(QuotasProgress {
                    applied: false,
                    reason: reasons::QUOTAS_NEED_NEWER_QDRANT.into(),
                    message: format!(
                        "spec.config.storage.quotas needs Qdrant {}.{} or newer on every pod; \
                         pod {}-{ordinal} runs {served}, which ignores it: nothing is enforced",
                        QUOTAS_SINCE.0, QUOTAS_SINCE.1, scope.names.cluster
                    ),
                }));
            }
        }
        let client = scope.access.client(scope.names, 0)?;
        let actual = client.quotas().await?;
        if actual != want {
            client.set_quotas(&want).await?;
            scope
                .ctx
                .shared
                .events
                .normal(
                    scope.qc,
                    "QuotasApplied",
                    "Quotas",
                    format!(
                        "PUT /quotas: {} (was {})",
                        describe(&want),
                        describe(&actual)
                    ),
                )
                .await;
        }
        Ok(Some(if removing {
            QuotasProgress {
                applied: false,
                reason: reasons::QUOTAS_REMOVED.into(),
                message: "spec.config.storage.quotas was removed: Qdrant's quotas are disabled"
                    .into(),
            }
        } else {
            QuotasProgress {
                applied: true,
                reason: reasons::QUOTAS_APPLIED.into(),
                message: format!("Qdrant enforces {}", describe(&want)),
            }
        }))
    }

    /// No condition change when a pod could not be asked: the next reconcile asks again.
    fn interrupted(&self, _scope: &Scope<'_>, _error: &QdrantError) -> Option<QuotasProgress> {
        None
    }

    /// Applying quotas is not a day-2 step.
    fn holds(&self, _: &QuotasProgress) -> bool {
        false
    }
}

/// `spec.config.storage.quotas` as Qdrant's `QuotaConfig`; `None` when unset or not a valid
/// one (validation refuses such a spec before any operation runs).
pub fn desired(qc: &api_types::QdrantCluster) -> Option<QuotaConfig> {
    let q = qc.spec.config.as_ref()?.get("storage")?.get("quotas")?;
    serde_json::from_value(q.clone()).ok()
}

/// True when condition QuotasApplied says quotas were in the spec and their removal is not
/// done yet (any reason but `QuotasRemoved`), so removing them from the spec disables them
/// once, also when the last step waited for a rollout.
fn was_applied(qc: &api_types::QdrantCluster) -> bool {
    qc.status.as_ref().is_some_and(|s| {
        api_types::conditions::find_condition(&s.conditions, types::QUOTAS_APPLIED)
            .is_some_and(|c| c.reason != reasons::QUOTAS_REMOVED)
    })
}

/// `enabled, memory 90%, disk 85%, margin 5%` for messages.
fn describe(c: &QuotaConfig) -> String {
    let mut parts = vec![if c.enabled { "enabled" } else { "disabled" }.to_string()];
    for (name, v) in [
        ("memory", c.max_resident_memory_percent),
        ("disk", c.max_disk_usage_percent),
        ("release margin", c.release_margin_percent),
    ] {
        if let Some(v) = v {
            parts.push(format!("{name} {v}%"));
        }
    }
    parts.join(", ")
}
