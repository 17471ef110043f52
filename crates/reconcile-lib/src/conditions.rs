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

/// Where an object stands for kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus`, which Flux and
/// `kubectl`-style waiters use): the pair of conditions `Reconciling` and `Stalled` that
/// [`set_kstatus`] writes. With both False and `status.observedGeneration` current, kstatus
/// calls the object Current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kstatus {
    /// Nothing under way and nothing refused (or paused: the controller does nothing).
    Current {
        /// Reason of both False conditions (e.g. `Reconciled`, `Paused`).
        reason: String,
    },
    /// Work is under way: `Reconciling` True with this reason and message.
    Reconciling {
        /// CamelCase reason, usually the one Ready or Progressing carries.
        reason: String,
        /// For humans.
        message: String,
    },
    /// The controller cannot go on until the user acts: `Stalled` True.
    Stalled {
        /// CamelCase reason, usually the one Ready carries.
        reason: String,
        /// For humans: what is wrong and what to change.
        message: String,
    },
}

impl Kstatus {
    /// [`Kstatus::Current`] with `reason`.
    pub fn current(reason: &str) -> Self {
        Self::Current {
            reason: reason.to_string(),
        }
    }

    /// [`Kstatus::Reconciling`].
    pub fn reconciling(reason: &str, message: &str) -> Self {
        Self::Reconciling {
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }

    /// [`Kstatus::Stalled`].
    pub fn stalled(reason: &str, message: &str) -> Self {
        Self::Stalled {
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

/// Writes `Reconciling` and `Stalled` for `state` into `conditions` (at most one of them
/// True; the False one carries the other's reason so `kubectl get -o yaml` reads well).
/// Transition times move only when a status changes ([`set_condition`]).
pub fn set_kstatus(conditions: &mut Vec<Condition>, generation: Option<i64>, state: &Kstatus) {
    let (reconciling, stalled) = match state {
        Kstatus::Current { reason } => (
            (ConditionStatus::False, reason.as_str(), ""),
            (ConditionStatus::False, reason.as_str(), ""),
        ),
        Kstatus::Reconciling { reason, message } => (
            (ConditionStatus::True, reason.as_str(), message.as_str()),
            (ConditionStatus::False, reason.as_str(), ""),
        ),
        Kstatus::Stalled { reason, message } => (
            (ConditionStatus::False, reason.as_str(), ""),
            (ConditionStatus::True, reason.as_str(), message.as_str()),
        ),
    };
    for (type_, (status, reason, message)) in
        [(types::RECONCILING, reconciling), (types::STALLED, stalled)]
    {
        set_condition(
            conditions,
            new_condition(type_, status, reason, message, generation),
        );
    }
}
