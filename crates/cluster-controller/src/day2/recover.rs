//! Peer recovery planning: a pod whose volume came back empty must not rejoin under its old
//! (stale) peer id; the stale peer leaves consensus and the pod joins fresh, then the shards it
//! held are copied back to it.
//!
//! Everything here is a pure function of observed state: what each pod reports (`GET /cluster`
//! on it, or the start script's "fresh storage" marker in its container's termination message
//! when it does not answer), the consensus members with the pod ordinal their p2p URI names
//! (`peers` of `GET /cluster` on a live member), every collection's placement
//! ([`CollectionPlacement`]), and the recovery records the operator keeps in Qdrant's cluster
//! metadata ([`RecoveryRecord`]).
//!
//! # Qdrant behaviour this follows (read in Qdrant v1.18.3)
//!
//! - A peer started on empty storage creates `raft_state.json` with a new random peer id and
//!   Raft term 0 (`Persistent::load_or_init` in
//!   `lib/storage/src/content_manager/consensus/persistent.rs`) and, given `--bootstrap`, asks
//!   that member to add it (`Consensus::bootstrap` in `src/consensus.rs`).
//! - The member refuses while another peer registered with the same URI still lists any
//!   replica, whatever its state: `peer URI {uri} already used by peer {old} which still has
//!   shards, remove its shards first or use a different URI` (`add_peer_to_known` in
//!   `src/tonic/api/raft_api.rs`). The new process then panics (`Can't initialize consensus`,
//!   exit code 101; Qdrant's own `test_reject_rejoin_cluster_same_uri`) before its REST API
//!   starts, and retries with the same new id on every restart (its state has term 0). When
//!   the old peer holds nothing, Qdrant removes it and adds the new one itself. Two peer ids on
//!   one URI therefore never coexist in consensus, and nothing can be copied to the new peer
//!   before it joined (`replicate_shard` to a non-member: `Peer {p} does not exist`).
//! - So the order is forced: **drop** the stale peer's replicas (`drop_replica` is a
//!   consensus operation that never contacts the dead peer; it is refused only for a shard's
//!   last `Active` replica, `handle_replica_changes` in
//!   `lib/collection/src/collection/collection_ops.rs`), **remove** the stale peer
//!   (`DELETE /cluster/peer/{id}` without `force`, refused while it lists any replica), let the
//!   pod **join** fresh on its next start, then **replicate** the shards it lost to the new
//!   peer.
//! - A stale replica left `Active` (no write failed since the loss) is no copy of anything: its
//!   data went with the volume. A shard whose only `Active` replicas are on stale peers is
//!   lost; dropping those replicas would be refused anyway, and removing the peer by force
//!   would erase the shard's last trace, so the planner refuses.
//!
//! # Memory
//!
//! Once the stale replicas are dropped nothing in the placement says which shards the pod
//! lost, and the pod joins only after that. Before the first drop the planner therefore has
//! the shards recorded in Qdrant's cluster metadata (key [`RECORD_KEY_PREFIX`]`<stale peer
//! id>`, replicated by consensus like the placement itself); the record is read back on every
//! reconcile and deleted once every recorded shard is `Active` on the pod's new peer (or no
//! longer needs it). The controller itself keeps no memory: a restarted controller, or a new
//! leader, observes and continues, and never issues an operation twice (nothing is issued in
//! a collection while a transfer runs there).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::plan::{CollectionPlacement, PeerId, Refusal, ShardOp, Transfer, summarize};

/// Prefix of the Qdrant cluster metadata keys holding [`RecoveryRecord`]s; the stale peer id
/// follows, e.g. `qdrant-operator.recovery.5417320571`.
pub const RECORD_KEY_PREFIX: &str = "qdrant-operator.recovery.";

/// What pod `<cluster>-<ordinal>` shows now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodState {
    /// It answered `GET /cluster` with this `peer_id`.
    Reports(PeerId),
    /// It did not answer, and its Qdrant container last stopped with no Raft state of a
    /// joined peer on its volume although the cluster listed the pod as a member (the start
    /// script wrote [`crate::build::statefulset::FRESH_STORAGE_MARKER`] to its termination
    /// message once Qdrant stopped): the volume lost that member's data.
    FreshStorage,
    /// It did not answer, with no sign of fresh storage: down, starting, or restarting with
    /// its volume intact. Never a reason to act.
    Silent,
}

/// A consensus member whose p2p URI names a pod, but that pod now runs on a volume without
/// that peer's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StalePeer {
    /// The pod's ordinal (from the member's p2p URI).
    pub ordinal: u32,
    /// The stale peer id.
    pub peer_id: PeerId,
}

/// The shards a stale peer held, kept in Qdrant's cluster metadata from before its first
/// replica is dropped until the pod's new peer holds them again.
///
/// Stored as JSON `{"ordinal": 2, "stale_peer": 5417320571, "shards": {"articles": [0, 3]}}`
/// under [`RecoveryRecord::key`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRecord {
    /// The pod whose volume came back empty.
    pub ordinal: u32,
    /// Its stale peer id.
    pub stale_peer: PeerId,
    /// Collection name -> the shards that had a replica on the stale peer.
    pub shards: BTreeMap<String, BTreeSet<u32>>,
}

impl RecoveryRecord {
    /// The cluster metadata key: [`RECORD_KEY_PREFIX`] and the stale peer id.
    pub fn key(&self) -> String {
        format!("{RECORD_KEY_PREFIX}{}", self.stale_peer)
    }

    /// The JSON value stored under [`Self::key`].
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "ordinal": self.ordinal,
            "stale_peer": self.stale_peer,
            "shards": self.shards,
        })
    }

    /// The record stored under `key`, if `key` is a recovery key and `value` a record for
    /// the peer the key names; `None` otherwise (a foreign or hand-edited key).
    pub fn from_metadata(key: &str, value: &serde_json::Value) -> Option<Self> {
        let peer: PeerId = key.strip_prefix(RECORD_KEY_PREFIX)?.parse().ok()?;
        let record: Self = serde_json::from_value(value.clone()).ok()?;
        (record.stale_peer == peer).then_some(record)
    }

    fn shard_count(&self) -> usize {
        self.shards.values().map(BTreeSet::len).sum()
    }
}

/// Everything [`plan_recovery`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct RecoveryInput<'a> {
    /// `spec.replicas`: pods `0..replicas` are expected; peers and records of higher
    /// ordinals are left to the scale-down.
    pub replicas: u32,
    /// What each pod shows, by ordinal; a missing ordinal counts as [`PodState::Silent`].
    pub pods: &'a BTreeMap<u32, PodState>,
    /// Consensus members (`peers` of `GET /cluster` on a live member) -> the pod ordinal their
    /// p2p URI names (`None`: a URI of no pod of this cluster).
    pub members: &'a BTreeMap<PeerId, Option<u32>>,
    /// Every collection's placement and running transfers, by name.
    pub placement: &'a BTreeMap<String, CollectionPlacement>,
    /// The recovery records found in the cluster metadata.
    pub records: &'a [RecoveryRecord],
}

/// The next step of the peer recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryStep {
    /// Nothing to recover.
    Idle,
    /// Write this record (`PUT /cluster/metadata/keys/{key}?wait=true`) before any replica of
    /// its stale peer is dropped.
    Record(RecoveryRecord),
    /// Shards whose only `Active` replicas are on stale peers: nothing is dropped or removed
    /// until a person restores or deletes them.
    Refuse(Vec<Refusal>),
    /// Send these operations (`drop_replica` of stale replicas, `replicate_shard` to a
    /// recovered pod's new peer; at most one per collection, each to
    /// `POST /collections/{c}/cluster`), then observe again.
    Issue(Vec<ShardOp>),
    /// The stale peer holds nothing: `DELETE /cluster/peer/{peer_id}` without `force`.
    RemovePeer {
        /// The stale peer.
        peer_id: PeerId,
        /// Its pod's ordinal.
        ordinal: u32,
    },
    /// The record is done (or its pod was scaled away): delete its key
    /// (`DELETE /cluster/metadata/keys/{key}?wait=true`).
    Forget(RecoveryRecord),
    /// Nothing to do until Qdrant or the pod moves on; each entry says what is awaited.
    Wait(Vec<String>),
}

impl RecoveryStep {
    /// One-line human summary for a status condition message.
    pub fn message(&self) -> String {
        match self {
            Self::Idle => "no peer to recover".to_owned(),
            Self::Record(r) => format!(
                "pod ordinal {} came back with an empty volume; its stale peer {} held {} \
                 shard replica(s): recording them before dropping the stale replicas",
                r.ordinal,
                r.stale_peer,
                r.shard_count()
            ),
            Self::Refuse(refusals) => format!(
                "peer recovery refused, the stale peers are kept: {}",
                summarize(&refusals.iter().map(ToString::to_string).collect::<Vec<_>>())
            ),
            Self::Issue(ops) => summarize(&ops.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Self::RemovePeer { peer_id, ordinal } => format!(
                "removing stale peer {peer_id} (pod ordinal {ordinal}) from consensus so the pod \
                 can join with a fresh peer id"
            ),
            Self::Forget(r) => format!(
                "pod ordinal {} recovered: every shard of stale peer {} is back; deleting the \
                 recovery record",
                r.ordinal, r.stale_peer
            ),
            Self::Wait(reasons) => summarize(reasons),
        }
    }
}

impl fmt::Display for StalePeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {} (pod ordinal {})", self.peer_id, self.ordinal)
    }
}

/// The stale consensus members, by ordinal: member `S` whose p2p URI names pod `o <
/// replicas`, that no pod reports, while pod `o`
///
/// - reports another peer `R` that consensus lists under pod `o`'s URI too (two ids on one
///   URI, which Qdrant 1.18 no longer lets happen) or does not list at all (pod `o` runs a
///   peer outside this cluster), or
/// - does not answer and shows [`PodState::FreshStorage`].
///
/// A pod that reports a peer consensus lists under *another* pod's URI proves nothing (a
/// misrouted answer), and a silent pod is never a reason: its volume may be intact.
pub fn stale_peers(
    replicas: u32,
    pods: &BTreeMap<u32, PodState>,
    members: &BTreeMap<PeerId, Option<u32>>,
) -> Vec<StalePeer> {
    let reported: BTreeSet<PeerId> = pods
        .values()
        .filter_map(|p| match p {
            PodState::Reports(id) => Some(*id),
            PodState::FreshStorage | PodState::Silent => None,
        })
        .collect();
    let mut stale: Vec<StalePeer> = members
        .iter()
        .filter_map(|(&peer_id, &ordinal)| {
            let ordinal = ordinal.filter(|o| *o < replicas)?;
            if reported.contains(&peer_id) {
                return None;
            }
            let is_stale = match pods.get(&ordinal).copied().unwrap_or(PodState::Silent) {
                PodState::Reports(other) => match members.get(&other) {
                    None => true,
                    Some(o) => *o == Some(ordinal),
                },
                PodState::FreshStorage => true,
                PodState::Silent => false,
            };
            is_stale.then_some(StalePeer { ordinal, peer_id })
        })
        .collect();
    stale.sort();
    stale
}

/// Collection -> shards with a replica (any state) on `peer`.
fn shards_on(
    placement: &BTreeMap<String, CollectionPlacement>,
    peer: PeerId,
) -> BTreeMap<String, BTreeSet<u32>> {
    placement
        .iter()
        .filter_map(|(name, c)| {
            let shards: BTreeSet<u32> = c
                .shards
                .iter()
                .filter(|(_, rs)| rs.iter().any(|r| r.peer == peer))
                .map(|(s, _)| *s)
                .collect();
            (!shards.is_empty()).then(|| (name.clone(), shards))
        })
        .collect()
}

/// True when every shard of `held` is in `recorded`.
fn covered(
    held: &BTreeMap<String, BTreeSet<u32>>,
    recorded: &BTreeMap<String, BTreeSet<u32>>,
) -> bool {
    held.iter().all(|(name, shards)| {
        recorded
            .get(name)
            .is_some_and(|r| shards.iter().all(|s| r.contains(s)))
    })
}

/// Where a record stands once its stale peer is no longer stale.
enum Restore {
    /// The pod's new peer is not a member yet (or the pod runs a peer of another cluster).
    NotJoined(String),
    /// The pod runs member `target`; `pending` shards still need it.
    Joined {
        target: PeerId,
        /// (collection, shard) still to copy, or to wait for.
        pending: Vec<(String, u32)>,
    },
}

/// Decides the next step of recovering pods whose volume came back empty.
///
/// In order (each returns):
///
/// 1. A stale peer ([`stale_peers`]) holds replicas that no record lists:
///    [`RecoveryStep::Record`] (the union with its existing record), before anything is
///    dropped.
/// 2. A shard with a replica on a stale peer has no `Active` replica on any other peer:
///    [`RecoveryStep::Refuse`], naming every such shard; nothing is dropped or removed.
/// 3. Per collection (by name), at most one operation, none while a transfer runs in it
///    (each running transfer is reported as awaited):
///    - **drop** the replica of the lowest shard held by a stale peer (lowest ordinal first);
///    - else **replicate** a recorded shard to the pod's new peer, for records whose stale
///      peer is no longer stale and whose pod reports a member that consensus lists under the
///      pod's URI: the lowest recorded shard that the new peer lacks and that has fewer
///      replicas than `max(replication_factor, 1)`, from its `Active` replica on the lowest
///      peer id. A recorded shard is done once the new peer holds it `Active`, once it has
///      enough replicas elsewhere, or once it (or its collection) is gone; a replica of it on
///      the new peer in another state is awaited, as is a shard with no `Active` replica to
///      copy from.
///
///    [`RecoveryStep::Issue`] when any collection has an operation.
/// 4. A stale peer that holds nothing and no transfer involves: [`RecoveryStep::RemovePeer`]
///    (lowest ordinal first).
/// 5. A record whose pod is beyond `replicas`, or whose shards are all done:
///    [`RecoveryStep::Forget`].
/// 6. [`RecoveryStep::Wait`] with everything awaited (transfers, the pod joining, replicas
///    becoming `Active`), else [`RecoveryStep::Idle`].
pub fn plan_recovery(input: &RecoveryInput<'_>) -> RecoveryStep {
    let stale = stale_peers(input.replicas, input.pods, input.members);
    let stale_ids: BTreeSet<PeerId> = stale.iter().map(|s| s.peer_id).collect();
    let record_of = |peer: PeerId| input.records.iter().find(|r| r.stale_peer == peer);

    // 1. Record what each stale peer holds before anything is dropped.
    for s in &stale {
        let held = shards_on(input.placement, s.peer_id);
        let recorded = record_of(s.peer_id);
        if held.is_empty() || recorded.is_some_and(|r| covered(&held, &r.shards)) {
            continue;
        }
        let mut shards = recorded.map(|r| r.shards.clone()).unwrap_or_default();
        for (name, ids) in held {
            shards.entry(name).or_default().extend(ids);
        }
        return RecoveryStep::Record(RecoveryRecord {
            ordinal: s.ordinal,
            stale_peer: s.peer_id,
            shards,
        });
    }

    // 2. Shards that only stale peers held Active are lost: refuse.
    let refusals = lost_shards(input.placement, &stale, &stale_ids);
    if !refusals.is_empty() {
        return RecoveryStep::Refuse(refusals);
    }

    // Records whose stale peer is no longer stale: where their pod stands.
    let mut waits = vec![];
    // (new peer, recorded shards it still needs), per record whose pod rejoined.
    let mut restoring: Vec<(PeerId, Vec<(String, u32)>)> = vec![];
    let mut finished: Vec<&RecoveryRecord> = vec![];
    let mut records: Vec<&RecoveryRecord> = input.records.iter().collect();
    records.sort_by_key(|r| (r.ordinal, r.stale_peer));
    for r in records {
        if r.ordinal >= input.replicas {
            finished.push(r);
            continue;
        }
        if stale_ids.contains(&r.stale_peer) {
            continue;
        }
        match restore_state(input, r) {
            Restore::NotJoined(why) => waits.push(why),
            Restore::Joined { pending, .. } if pending.is_empty() => finished.push(r),
            Restore::Joined { target, pending } => restoring.push((target, pending)),
        }
    }

    // 3. One operation per collection: drops first, then copies to recovered pods.
    let mut ops = vec![];
    for (name, c) in input.placement {
        let drop = stale.iter().find_map(|s| {
            c.shards
                .iter()
                .find(|(_, rs)| rs.iter().any(|r| r.peer == s.peer_id))
                .map(|(&shard_id, _)| ShardOp::DropReplica {
                    collection: name.clone(),
                    shard_id,
                    peer: s.peer_id,
                })
        });
        let mut copy = None;
        for (target, pending) in &restoring {
            for (_, shard_id) in pending.iter().filter(|(n, _)| n == name) {
                match copy_decision(name, c, *shard_id, *target) {
                    Copy::Op(op) => {
                        copy.get_or_insert(op);
                    }
                    Copy::Wait(why) => waits.push(why),
                }
            }
        }
        if drop.is_none() && copy.is_none() {
            continue;
        }
        if !c.transfers.is_empty() {
            waits.extend(c.transfer_waits(name));
            continue;
        }
        if let Some(op) = drop.or(copy) {
            ops.push(op);
        }
    }
    if !ops.is_empty() {
        return RecoveryStep::Issue(ops);
    }

    // 4. A stale peer that holds nothing leaves consensus, once no transfer involves it.
    for s in &stale {
        if input.placement.values().any(|c| c.count_on(s.peer_id) > 0) {
            continue;
        }
        let mut involving: Vec<(&String, &Transfer)> = input
            .placement
            .iter()
            .flat_map(|(name, c)| c.transfers.iter().map(move |t| (name, t)))
            .filter(|(_, t)| t.involves(s.peer_id))
            .collect();
        if involving.is_empty() {
            return RecoveryStep::RemovePeer {
                peer_id: s.peer_id,
                ordinal: s.ordinal,
            };
        }
        involving.sort_by_key(|(name, t)| (name.as_str(), t.shard_id, t.from, t.to));
        waits.extend(
            involving
                .iter()
                .map(|(name, t)| format!("waiting for {} to end", t.describe(name))),
        );
    }

    // 5. Records that are done, or whose pod was scaled away.
    if let Some(r) = finished.first() {
        return RecoveryStep::Forget((*r).clone());
    }

    if waits.is_empty() {
        RecoveryStep::Idle
    } else {
        RecoveryStep::Wait(waits)
    }
}

/// Refusals for the shards with a replica on a stale peer and no `Active` replica elsewhere.
fn lost_shards(
    placement: &BTreeMap<String, CollectionPlacement>,
    stale: &[StalePeer],
    stale_ids: &BTreeSet<PeerId>,
) -> Vec<Refusal> {
    let mut refusals = vec![];
    for (name, c) in placement {
        for (&shard_id, replicas) in &c.shards {
            let on_stale: Vec<&StalePeer> = stale
                .iter()
                .filter(|s| replicas.iter().any(|r| r.peer == s.peer_id))
                .collect();
            if on_stale.is_empty()
                || replicas
                    .iter()
                    .any(|r| !stale_ids.contains(&r.peer) && r.state.is_active())
            {
                continue;
            }
            let holders = on_stale
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            refusals.push(Refusal {
                collection: Some(name.clone()),
                shard_id: Some(shard_id),
                reason: format!(
                    "no Active replica outside stale {holders}, whose volume came back empty: \
                     the shard's data is lost; restore it (e.g. a QdrantRestore) or delete the \
                     collection, and the recovery continues"
                ),
            });
        }
    }
    refusals
}

/// Whether record `r`'s pod runs a member now, and which recorded shards still need it.
fn restore_state(input: &RecoveryInput<'_>, r: &RecoveryRecord) -> Restore {
    let o = r.ordinal;
    let target = match input.pods.get(&o).copied().unwrap_or(PodState::Silent) {
        PodState::Reports(id) if input.members.get(&id) == Some(&Some(o)) => id,
        PodState::Reports(id) if !input.members.contains_key(&id) => {
            return Restore::NotJoined(format!(
                "pod ordinal {o} runs peer {id}, which consensus does not list: it is still \
                 joining, or it started a cluster of its own (then delete the pod's \
                 PersistentVolumeClaim and the pod so it joins with a fresh volume)"
            ));
        }
        PodState::Reports(_) | PodState::FreshStorage | PodState::Silent => {
            return Restore::NotJoined(format!(
                "waiting for pod ordinal {o} to join consensus with a fresh peer id (it \
                 retries on each restart, after its crash-loop back-off)"
            ));
        }
    };
    let mut pending = vec![];
    for (name, shards) in &r.shards {
        let Some(c) = input.placement.get(name) else {
            continue;
        };
        for &shard_id in shards {
            let Some(replicas) = c.shards.get(&shard_id) else {
                continue;
            };
            let done = match replicas.iter().find(|x| x.peer == target) {
                Some(x) => x.state.is_active(),
                None => {
                    let want = usize::try_from(c.replication_factor.max(1)).unwrap_or(usize::MAX);
                    replicas.len() >= want
                }
            };
            if !done {
                pending.push((name.clone(), shard_id));
            }
        }
    }
    Restore::Joined { target, pending }
}

enum Copy {
    Op(ShardOp),
    Wait(String),
}

/// The copy of `shard_id` of collection `name` to `target`, or what it waits for.
fn copy_decision(name: &str, c: &CollectionPlacement, shard_id: u32, target: PeerId) -> Copy {
    let replicas = c.shards.get(&shard_id).map(Vec::as_slice).unwrap_or(&[]);
    if let Some(mine) = replicas.iter().find(|r| r.peer == target) {
        return Copy::Wait(format!(
            "waiting for shard {shard_id} of collection {name} to become Active on peer \
             {target} (state {})",
            mine.state
        ));
    }
    match replicas
        .iter()
        .filter(|r| r.state.is_active())
        .min_by_key(|r| r.peer)
    {
        Some(source) => Copy::Op(ShardOp::Replicate {
            collection: name.to_owned(),
            shard_id,
            from: source.peer,
            to: target,
        }),
        None => Copy::Wait(format!(
            "shard {shard_id} of collection {name} has no Active replica to copy to peer \
             {target} from"
        )),
    }
}
