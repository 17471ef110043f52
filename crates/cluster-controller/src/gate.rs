//! The gate in front of every reconcile: a paused cluster or an invalid spec applies nothing.
//! Pure: [`check`] reads the annotations, the spec and the name only.

use api_types::{
    QdrantCluster, is_paused,
    validation::{FieldError, ValidationErrors, validate_cluster},
};
use kube::ResourceExt;

/// Why nothing is applied in this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The pause annotation (`qdrant.operator.dev/paused: "true"`) is set: only the Paused
    /// condition is written.
    Paused,
    /// The spec (or the name) was refused; the message names each field.
    Invalid(String),
}

/// The closed gate of `qc`, or `None` when the reconcile may go on. Pause wins over an
/// invalid spec.
pub fn check(qc: &QdrantCluster) -> Option<Gate> {
    if is_paused(&qc.metadata) {
        return Some(Gate::Paused);
    }
    validate_cluster(&qc.spec)
        .and(validate_name(qc))
        .err()
        .map(|errors| Gate::Invalid(errors.to_string()))
}

/// `metadata.name` must leave room for the children's names: the StatefulSet's pods and
/// their `controller-revision-hash` label limit it to 52 characters. With `spec.adoption`,
/// `statefulSetName` must be `metadata.name` (every child is named after the cluster).
///
/// # Errors
/// A [`FieldError`] on `metadata.name` when it is longer, and one on
/// `spec.adoption.statefulSetName` when it names another StatefulSet.
pub fn validate_name(qc: &QdrantCluster) -> Result<(), ValidationErrors> {
    let name = qc.name_any();
    let mut errors = Vec::new();
    if name.len() > 52 {
        errors.push(FieldError {
            field: "metadata.name".into(),
            message: format!(
                "must be at most 52 characters (the StatefulSet's limit), got {}",
                name.len()
            ),
        });
    }
    if let Some(a) = &qc.spec.adoption
        && a.stateful_set_name != name
    {
        errors.push(FieldError {
            field: "spec.adoption.statefulSetName".into(),
            message: format!(
                "must equal metadata.name {name:?}, got {:?}: the operator names the StatefulSet, its pods and its Services after the QdrantCluster, so name the QdrantCluster {:?} to take that StatefulSet over",
                a.stateful_set_name, a.stateful_set_name
            ),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}
