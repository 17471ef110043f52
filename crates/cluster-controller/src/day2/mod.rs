//! Day-2 operations as pure decisions over observed state (no network): which shard
//! replica moves before a peer leaves ([`plan`]), whether a pod may be restarted now
//! ([`gate`]), how a pod whose volume came back empty rejoins ([`recover`]), and which
//! replica moves into another zone ([`zones`]). The
//! reconcile loop observes Qdrant and Kubernetes, asks these functions, and carries out one
//! step at a time, so a restarted controller resumes from observed state.

pub mod gate;
pub mod plan;
pub mod recover;
pub mod zones;
