//! Update status: the QdrantCollection status as a pure function of what the sync observed.

use api_types::{
    QdrantCollection, QdrantCollectionStatus,
    collection::{CollectionPhase, FieldDrift},
    conditions::{ConditionStatus, set_condition},
};
use reconcile_lib::{
    conditions::{Kstatus, new_condition, now_seconds, set_kstatus},
    qdrant::CollectionInfo,
};

/// Condition types of a QdrantCollection besides Ready and Paused.
pub mod types {
    pub use api_types::conditions::types::{PAUSED, READY};
    /// Qdrant holds every changeable setting of the spec.
    pub const SYNCED: &str = "Synced";
    /// Some fields differ and cannot change in place.
    pub const CONFIG_DRIFT: &str = "ConfigDrift";
}

/// The outcome of one reconcile.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The pause annotation is set.
    Paused,
    /// The spec was refused (message names the field).
    Invalid(String),
    /// The spec asks for something the target's Qdrant version cannot do (a `memory`
    /// placement without an older equivalent, see [`crate::memory`]); nothing was written.
    NeedsNewerQdrant(String),
    /// The target is not usable yet.
    Waiting {
        /// CamelCase reason.
        reason: String,
        /// What is awaited.
        message: String,
    },
    /// Qdrant answered with an error (reason `Qdrant...`, Qdrant's own message).
    QdrantError {
        /// CamelCase reason.
        reason: String,
        /// Qdrant's message.
        message: String,
    },
    /// The collection was synced.
    Synced {
        /// Name in Qdrant.
        name: String,
        /// The collection as Qdrant reports it after the sync.
        info: Box<CollectionInfo>,
        /// Immutable differences.
        drift: Vec<FieldDrift>,
        /// Whether this sync wrote anything to Qdrant.
        wrote: bool,
        /// Aliases now managed.
        aliases: Vec<String>,
        /// Payload index fields now managed.
        payload_indexes: Vec<String>,
    },
    /// The collection in Qdrant is marked as owned by another object: nothing was written.
    OwnedByAnotherObject {
        /// Name in Qdrant.
        name: String,
        /// The other owner, as [`crate::ownership::Claim::Foreign`] describes it.
        owner: String,
    },
    /// Deleting with `deletionPolicy: Delete` (kept while Qdrant is retried).
    Deleting {
        /// Name in Qdrant.
        name: String,
    },
}

/// Reason of Ready and Synced (False) for [`Outcome::NeedsNewerQdrant`].
pub const NEEDS_NEWER_QDRANT: &str = "NeedsNewerQdrant";

/// Reason of Ready and Synced (False) for a collection marked as owned by another object.
pub const OWNED_BY_ANOTHER_OBJECT: &str = "OwnedByAnotherObject";

/// The message of [`OWNED_BY_ANOTHER_OBJECT`]: which collection, which owner, what this
/// object does about it and how to resolve it.
pub fn owned_elsewhere(name: &str, owner: &str) -> String {
    format!(
        "collection {name} in Qdrant is owned by QdrantCollection {owner} (metadata key {key}): \
         this object changes nothing in it and never deletes it; delete one of the two objects \
         or give this one another collectionName",
        key = crate::ownership::OWNER_KEY,
    )
}

/// The status after `outcome`. Conditions keep their transition time unless their status
/// changes; `lastSyncTime` moves only when the sync wrote or the collection was not yet
/// known to be in sync, so a no-op resync produces an identical status.
pub fn compute(qcol: &QdrantCollection, outcome: &Outcome) -> QdrantCollectionStatus {
    let prev = qcol.status.clone().unwrap_or_default();
    let generation = qcol.metadata.generation;
    let mut st = QdrantCollectionStatus {
        observed_generation: generation,
        conditions: prev.conditions.clone(),
        ..prev.clone()
    };
    let mut set = |t: &str, s: ConditionStatus, reason: &str, message: String| {
        set_condition(
            &mut st.conditions,
            new_condition(t, s, reason, message, generation),
        );
    };
    let paused = matches!(outcome, Outcome::Paused);
    set(
        types::PAUSED,
        ConditionStatus::from_bool(paused),
        if paused {
            api_types::conditions::reasons::PAUSE_ANNOTATION_SET
        } else {
            api_types::conditions::reasons::NOT_PAUSED
        },
        String::new(),
    );
    let not_synced =
        |set: &mut dyn FnMut(&str, ConditionStatus, &str, String), reason: &str, message: &str| {
            set(
                types::READY,
                ConditionStatus::False,
                reason,
                message.to_string(),
            );
            set(
                types::SYNCED,
                ConditionStatus::False,
                reason,
                message.to_string(),
            );
        };
    match outcome {
        Outcome::Paused => {
            st.phase = CollectionPhase::Paused;
        }
        Outcome::Invalid(msg) => {
            not_synced(&mut set, "InvalidSpec", msg);
            st.phase = CollectionPhase::Failed;
        }
        Outcome::NeedsNewerQdrant(msg) => {
            not_synced(&mut set, NEEDS_NEWER_QDRANT, msg);
            st.phase = CollectionPhase::Failed;
        }
        Outcome::Waiting { reason, message } => {
            not_synced(&mut set, reason, message);
            st.phase = CollectionPhase::Waiting;
        }
        Outcome::QdrantError { reason, message } => {
            not_synced(&mut set, reason, message);
            st.phase = CollectionPhase::Failed;
        }
        Outcome::OwnedByAnotherObject { name, owner } => {
            not_synced(
                &mut set,
                OWNED_BY_ANOTHER_OBJECT,
                &owned_elsewhere(name, owner),
            );
            st.phase = CollectionPhase::Failed;
        }
        Outcome::Deleting { name } => {
            set(
                types::READY,
                ConditionStatus::False,
                "Deleting",
                format!("deleting collection {name} from Qdrant (deletionPolicy Delete)"),
            );
            st.phase = CollectionPhase::Deleting;
        }
        Outcome::Synced {
            name,
            info,
            drift,
            wrote,
            aliases,
            payload_indexes,
        } => {
            set(
                types::READY,
                ConditionStatus::True,
                "CollectionReady",
                format!("collection {name} exists in Qdrant"),
            );
            set(
                types::SYNCED,
                ConditionStatus::True,
                "InSync",
                "Qdrant holds every changeable setting of the spec".into(),
            );
            if drift.is_empty() {
                set(
                    types::CONFIG_DRIFT,
                    ConditionStatus::False,
                    "NoDrift",
                    String::new(),
                );
            } else {
                let parts: Vec<String> = drift
                    .iter()
                    .map(|d| {
                        format!(
                            "{}: spec {} but Qdrant has {}",
                            d.field, d.desired, d.actual
                        )
                    })
                    .collect();
                set(
                    types::CONFIG_DRIFT,
                    ConditionStatus::True,
                    "ImmutableFieldsDiffer",
                    format!(
                        "cannot change in place (data is never dropped to fix it): {}",
                        parts.join("; ")
                    ),
                );
            }
            st.phase = CollectionPhase::Ready;
            st.collection_name = Some(name.clone());
            st.collection_status = Some(info.status.clone());
            st.points_count = info.points_count;
            st.indexed_vectors_count = info.indexed_vectors_count;
            st.segments_count = info.segments_count;
            st.drift = drift.clone();
            st.aliases = aliases.clone();
            st.payload_indexes = payload_indexes.clone();
            let was_synced = prev.phase == CollectionPhase::Ready && prev.last_sync_time.is_some();
            if *wrote || !was_synced {
                st.last_sync_time = Some(now_seconds().to_string());
            }
        }
    }
    // Every condition is set on first sight.
    for t in [types::READY, types::SYNCED, types::CONFIG_DRIFT] {
        if api_types::conditions::find_condition(&st.conditions, t).is_none() {
            set_condition(
                &mut st.conditions,
                new_condition(
                    t,
                    ConditionStatus::Unknown,
                    "NotObserved",
                    String::new(),
                    generation,
                ),
            );
        }
    }
    let state = kstatus(outcome, &st.conditions);
    set_kstatus(&mut st.conditions, generation, &state);
    st
}

/// kstatus' `Reconciling` / `Stalled` for `outcome`: waiting and deleting reconcile; a refused
/// spec, a Qdrant refusal, a collection owned elsewhere and immutable drift stall (they need
/// the user); a synced collection and a paused object are Current. Reason and message are
/// Ready's (ConfigDrift's for drift).
fn kstatus(outcome: &Outcome, conditions: &[api_types::Condition]) -> Kstatus {
    let said = |t: &str| {
        api_types::conditions::find_condition(conditions, t)
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_default()
    };
    let (reason, message) = said(types::READY);
    match outcome {
        Outcome::Paused => Kstatus::current(api_types::conditions::types::PAUSED),
        Outcome::Waiting { .. } | Outcome::Deleting { .. } => {
            Kstatus::reconciling(&reason, &message)
        }
        Outcome::Invalid(_)
        | Outcome::NeedsNewerQdrant(_)
        | Outcome::QdrantError { .. }
        | Outcome::OwnedByAnotherObject { .. } => Kstatus::stalled(&reason, &message),
        Outcome::Synced { drift, .. } if !drift.is_empty() => {
            let (reason, message) = said(types::CONFIG_DRIFT);
            Kstatus::stalled(&reason, &message)
        }
        Outcome::Synced { .. } => Kstatus::current(&reason),
    }
}
