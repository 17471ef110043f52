//! Status types shared by every kind: Kubernetes-shaped conditions and the condition vocabulary.
//!
//! The shape follows the Kubernetes API conventions (`metav1.Condition`): one entry per `type`,
//! `status` True/False/Unknown, a CamelCase `reason`, a human `message`, the
//! `observedGeneration` the condition was computed for, and `lastTransitionTime`, which only
//! moves when `status` changes. The list is a map keyed by `type`
//! (`x-kubernetes-list-type: map`), so server-side apply merges entries by type.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types used across kinds.
pub mod types {
    /// The summary: the object is doing what its spec asks. `kubectl wait --for=condition=Ready`.
    pub const READY: &str = "Ready";
    /// The controller is moving the object towards its spec (creating, scaling, rolling).
    pub const PROGRESSING: &str = "Progressing";
    /// The object runs, but below what the spec asks (some replicas not ready).
    pub const DEGRADED: &str = "Degraded";
    /// The pause annotation is set: the controller applies no changes.
    pub const PAUSED: &str = "Paused";
    /// kstatus: True while the controller works towards the spec (Flux, `kstatus` and Argo CD
    /// read the object as in progress).
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: True when the controller cannot make progress without a change from the user
    /// (a refused spec, a missing dependency it will not create, a refused day-2 step, a failed
    /// run).
    pub const STALLED: &str = "Stalled";
}

/// Reasons every kind shares.
pub mod reasons {
    /// Paused True: annotation `qdrant.operator.dev/paused` is `"true"`.
    pub const PAUSE_ANNOTATION_SET: &str = "PauseAnnotationSet";
    /// Paused False.
    pub const NOT_PAUSED: &str = "NotPaused";
}

/// The status of a condition, as the Kubernetes API conventions spell it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell yet.
    Unknown,
}

impl ConditionStatus {
    /// `True` when `b`, else `False`.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// One observation of an aspect of an object's state (Kubernetes `metav1.Condition` shape).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition, CamelCase, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition: True, False or Unknown.
    pub status: ConditionStatus,
    /// Machine-readable CamelCase reason for the last transition, e.g. `AllReplicasReady`.
    pub reason: String,
    /// Human-readable explanation; names the spec field when the cause is bad input.
    #[serde(default)]
    pub message: String,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    #[schemars(with = "String")]
    pub last_transition_time: Timestamp,
}

/// Adds `x-kubernetes-list-type: map` keyed by `type` to a conditions list schema.
pub fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema.insert(
        "description".into(),
        "Current state of the object, one entry per condition type (Ready, ...).".into(),
    );
    schema
}

/// Sets `cond` in `conditions`, keyed by type. `lastTransitionTime` is kept from the existing
/// entry when the status did not change, so re-setting an unchanged condition changes nothing
/// but reason, message and observedGeneration. Returns true when anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut cond: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == cond.type_) {
        Some(existing) => {
            if existing.status == cond.status {
                cond.last_transition_time = existing.last_transition_time;
            }
            if *existing == cond {
                false
            } else {
                *existing = cond;
                true
            }
        }
        None => {
            conditions.push(cond);
            true
        }
    }
}

/// Finds the condition of `type_`.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of `type_` already says `reason` with `message`: a controller
/// uses it to publish a Warning event only when a refusal first appears or changes.
pub fn condition_says(conditions: &[Condition], type_: &str, reason: &str, message: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.reason == reason && c.message == message)
}

/// True when the condition of `type_` is `True` and was computed for `generation`.
pub fn is_true_for_generation(
    conditions: &[Condition],
    type_: &str,
    generation: Option<i64>,
) -> bool {
    find_condition(conditions, type_)
        .is_some_and(|c| c.status == ConditionStatus::True && c.observed_generation == generation)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, reason: &str, at: &str) -> Condition {
        Condition {
            type_: types::READY.into(),
            status,
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: at.parse().unwrap(),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut list = vec![];
        assert!(set_condition(
            &mut list,
            cond(ConditionStatus::False, "Creating", "2026-01-01T00:00:00Z")
        ));
        // Same status, new reason: reason changes, time stays.
        assert!(set_condition(
            &mut list,
            cond(ConditionStatus::False, "Scaling", "2026-01-02T00:00:00Z")
        ));
        assert_eq!(list[0].reason, "Scaling");
        assert_eq!(
            list[0].last_transition_time.to_string(),
            "2026-01-01T00:00:00Z"
        );
        // Identical: nothing changes.
        assert!(!set_condition(
            &mut list,
            cond(ConditionStatus::False, "Scaling", "2026-01-03T00:00:00Z")
        ));
        // Status flips: time moves.
        assert!(set_condition(
            &mut list,
            cond(ConditionStatus::True, "Ready", "2026-01-04T00:00:00Z")
        ));
        assert_eq!(
            list[0].last_transition_time.to_string(),
            "2026-01-04T00:00:00Z"
        );
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn ready_for_generation() {
        let list = vec![cond(ConditionStatus::True, "Ready", "2026-01-01T00:00:00Z")];
        assert!(is_true_for_generation(&list, types::READY, Some(1)));
        assert!(!is_true_for_generation(&list, types::READY, Some(2)));
        assert!(!is_true_for_generation(&list, types::PAUSED, Some(1)));
    }
}
