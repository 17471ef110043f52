//! Reading kstatus' `Reconciling` and `Stalled` back from a status, for the controllers'
//! status tables.

use reconcile_lib::conditions::{
    Condition, ConditionStatus, find_condition,
    types::{RECONCILING, STALLED},
};

/// Which of `Reconciling` and `Stalled` is True in `conditions`, with its reason: `Ok(None)`
/// when both are False (kstatus: Current). `Err` names what is wrong: a condition missing, or
/// both True, or one Unknown.
pub fn verdict(conditions: &[Condition]) -> Result<Option<(&'static str, String)>, String> {
    let get = |t: &'static str| {
        find_condition(conditions, t)
            .map(|c| (c.status, c.reason.clone()))
            .ok_or_else(|| format!("no {t} condition"))
    };
    let (reconciling, stalled) = (get(RECONCILING)?, get(STALLED)?);
    match (reconciling.0, stalled.0) {
        (ConditionStatus::True, ConditionStatus::False) => Ok(Some((RECONCILING, reconciling.1))),
        (ConditionStatus::False, ConditionStatus::True) => Ok(Some((STALLED, stalled.1))),
        (ConditionStatus::False, ConditionStatus::False) => Ok(None),
        other => Err(format!("Reconciling and Stalled are {other:?}")),
    }
}
