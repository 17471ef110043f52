//! Condition helpers for controllers: build a condition stamped with the current time and the
//! object's generation; [`api_types::conditions::set_condition`] keeps `lastTransitionTime`
//! unless the status changes.

pub use api_types::conditions::{Condition, ConditionStatus, find_condition, set_condition, types};

/// A condition of `type_` computed for `generation`, stamped now.
pub fn new_condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now_seconds(),
    }
}

/// Now, truncated to whole seconds (the precision Kubernetes uses for condition times).
pub fn now_seconds() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Applies a full set of conditions to `existing`, keeping the transition time of each whose
/// status did not change; conditions not in `desired` are kept as they are. Returns the
/// merged list.
pub fn merge_conditions(existing: &[Condition], desired: Vec<Condition>) -> Vec<Condition> {
    let mut out = existing.to_vec();
    for c in desired {
        set_condition(&mut out, c);
    }
    out
}
