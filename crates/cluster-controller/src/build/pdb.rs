//! PodDisruptionBudget (policy/v1): voluntary disruptions (node drains) take at most
//! `maxUnavailable` peers at once.

use api_types::QdrantCluster;
use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{Names, child_meta, selector_labels};

/// Whether the budget exists: `spec.podDisruptionBudget.enabled`, by default when
/// `replicas >= 2` (with one peer a budget would only block node drains).
pub fn enabled(qc: &QdrantCluster) -> bool {
    qc.spec
        .pod_disruption_budget
        .as_ref()
        .and_then(|p| p.enabled)
        .unwrap_or(qc.spec.replicas >= 2)
}

/// The budget `<cluster>`, or `None` when disabled. `maxUnavailable` defaults to 1.
pub fn pdb(qc: &QdrantCluster) -> Option<PodDisruptionBudget> {
    if !enabled(qc) {
        return None;
    }
    let max = qc
        .spec
        .pod_disruption_budget
        .as_ref()
        .and_then(|p| p.max_unavailable)
        .unwrap_or(1);
    Some(PodDisruptionBudget {
        metadata: child_meta(qc, &Names::of(qc).cluster),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(qc)),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
