//! The monitoring operation (`spec.monitoring`): applies the PodMonitor, the PrometheusRule
//! and the dashboard ConfigMap of [`crate::build::monitoring`], or deletes the ones it
//! created once monitoring is turned off. Not disruptive. The prometheus-operator's CRDs
//! are optional: without them (the API server answers 404 for `monitoring.coreos.com/v1`)
//! condition MonitoringReady says so and the rest of the reconcile goes on.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use reconcile_lib::error::{Error, Result};

use crate::{
    build::monitoring::{self, PodMonitor, PrometheusRule},
    operations::{Operation, Scope},
    vocabulary::{reasons, types},
};

/// What the monitoring step did, for condition MonitoringReady.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringProgress {
    /// True when the PodMonitor and PrometheusRule are applied.
    pub ready: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For humans: what was applied, or what is missing.
    pub message: String,
}

/// The monitoring operation (module docs).
pub struct Monitoring;

impl Operation for Monitoring {
    const NAME: &'static str = "monitoring";
    const DISRUPTIVE: bool = false;
    type Progress = MonitoringProgress;

    /// While `spec.monitoring` is on, and once after it was turned off (to delete what it
    /// created). A cluster that never had monitoring costs no request.
    fn wanted(&self, scope: &Scope<'_>) -> bool {
        scope.observation.applied.is_some() && (monitoring::enabled(scope.qc) || was_on(scope.qc))
    }

    async fn step(&self, scope: &Scope<'_>) -> Result<Option<MonitoringProgress>> {
        let (qc, names, applier) = (scope.qc, scope.names, &scope.ctx.shared.applier);
        let uid = qc.uid().unwrap_or_default();
        let ns = names.namespace.as_str();
        let dashboard = format!("{}-dashboard", names.cluster);
        let (Some(pod_monitor), Some(rule), Some(board)) = (
            monitoring::pod_monitor(qc),
            monitoring::prometheus_rule(qc),
            monitoring::dashboard(qc),
        ) else {
            // Off: remove what this cluster owns (a missing CRD reads as nothing to delete).
            applier
                .delete_owned::<ConfigMap>(ns, &dashboard, &uid)
                .await?;
            absent_crd(
                applier
                    .delete_owned::<PodMonitor>(ns, &names.cluster, &uid)
                    .await,
            )?;
            absent_crd(
                applier
                    .delete_owned::<PrometheusRule>(ns, &names.cluster, &uid)
                    .await,
            )?;
            return Ok(None);
        };
        applier.apply(&board).await?;
        let applied = match applier.apply(&pod_monitor).await {
            Ok(_) => applier.apply(&rule).await.map(|_| ()),
            Err(e) => Err(e),
        };
        Ok(Some(match applied {
            Ok(()) => MonitoringProgress {
                ready: true,
                reason: reasons::MONITORING_APPLIED.into(),
                message: format!(
                    "PodMonitor {0} scrapes every peer's /metrics; PrometheusRule {0} and dashboard ConfigMap {dashboard} are applied",
                    names.cluster
                ),
            },
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => MonitoringProgress {
                ready: false,
                reason: reasons::PROMETHEUS_OPERATOR_MISSING.into(),
                message: format!(
                    "spec.monitoring is enabled but the API server has no monitoring.coreos.com/v1 PodMonitor or PrometheusRule (install the prometheus-operator CRDs); the dashboard ConfigMap {dashboard} is applied"
                ),
            },
            Err(e) => return Err(e),
        }))
    }

    /// Applying the monitoring objects is not a day-2 step.
    fn holds(&self, _: &MonitoringProgress) -> bool {
        false
    }
}

/// True when condition MonitoringReady says monitoring was on (any reason but
/// `MonitoringDisabled`, which is written once its objects are deleted).
fn was_on(qc: &api_types::QdrantCluster) -> bool {
    qc.status.as_ref().is_some_and(|s| {
        api_types::conditions::find_condition(&s.conditions, types::MONITORING_READY)
            .is_some_and(|c| c.reason != reasons::MONITORING_DISABLED)
    })
}

/// `Ok(false)` for a 404 (the kind itself is not installed), else `result`.
fn absent_crd(result: Result<bool>) -> Result<bool> {
    match result {
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => Ok(false),
        other => other,
    }
}
