//! Shard placement planning for scale-down and (opt-in) rebalancing after scale-up.
//!
//! Everything here is a pure function of what the controller observed: the pods' peer ids
//! (`GET /cluster` on each pod), the consensus member set (keys of `peers` in `GET /cluster`),
//! and per collection the shard placement and running transfers
//! (`GET /collections/{c}/cluster`, see [`CollectionPlacement::from_cluster_info`]) plus the replication factor
//! (`config.params.replication_factor` of `GET /collections/{c}`).
//!
//! # Stateless by design
//!
//! [`plan_scale_down`] and [`plan_rebalance`] keep no memory. What is under way shows up in
//! Qdrant's own state (a running transfer is listed in `shard_transfers`; a move that finished
//! has put an `Active` replica on the target and removed the source), so a controller that
//! restarts, or a newly elected leader, re-observes and gets the next step where the last one
//! stopped:
//!
//! - while any transfer runs in a collection nothing new is issued for that collection, so an
//!   operation is never issued while its effect is under way (and Qdrant itself refuses a
//!   second transfer of the same shard touching the same peers: "Shard {s} is already involved
//!   in transfer {from} -> {to}");
//! - a finished operation changed the placement, so the planner moves on to the next replica;
//! - a transfer Qdrant aborted leaves the source untouched (move: the half-filled target is
//!   removed; replication: the target is marked `Dead` and Qdrant recovers it), so planning
//!   again issues a fresh attempt, never a duplicate.
//!
//! The controller's status only records what it decided, for humans; it is never read back to
//! plan.
//!
//! # Qdrant behaviour relied upon (read in Qdrant v1.18.3)
//!
//! - A transfer's source must be `Active` (or `ReshardingScaleDown`) on that peer
//!   (`lib/collection/src/shards/transfer/helpers.rs`, `validate_transfer`).
//! - Starting a transfer puts the receiver's replica into `Partial` (stream_records) or
//!   `Recovery` (snapshot, the 1.18 default; wal_delta), even when the receiver already had an
//!   `Active` replica (`lib/collection/src/collection/shard_transfer.rs`,
//!   `start_shard_transfer`). Targets therefore never hold the shard already.
//! - Finishing a move (`sync: false`) promotes the receiver to `Active` and only then removes
//!   the source; aborting it removes the receiver and leaves the source as it was
//!   (`finish_shard_transfer`, `abort_shard_transfer`). A move therefore never lowers the
//!   number of `Active` copies, even for a shard's only copy.
//! - `drop_replica` is refused for a shard's last replica or last `Active` replica ("Shard {s}
//!   must have at least one active replica after removing {peer}",
//!   `lib/collection/src/collection/collection_ops.rs`), and aborts transfers touching it.
//! - `DELETE /cluster/peer/{id}` without `force` is refused while any collection lists a
//!   replica on that peer in any state, `Dead` included ("Cannot remove peer {id} as there are
//!   shards on it", `src/actix/api/cluster_api.rs`, `peer_has_shards` in
//!   `lib/storage/src/content_manager/toc/mod.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// A Qdrant peer id: the `u64` Qdrant picks at first start, as in `peer_id` of `GET /cluster`
/// and `GET /collections/{c}/cluster`.
pub type PeerId = u64;

/// The zone of each peer whose pod's node has a zone label (`spec.zoneTopologyKey`), as
/// observed with `spec.zoneAware`; a peer absent here has no known zone. Empty when zone
/// awareness is off: then every zone-aware choice below falls back to the zone-blind one.
pub type Zones = BTreeMap<PeerId, String>;

/// The distinct known zones of `replicas` (any state), leaving out the replica on `except`.
pub fn zones_of<'a>(
    replicas: &[Replica],
    zones: &'a Zones,
    except: Option<PeerId>,
) -> BTreeSet<&'a str> {
    replicas
        .iter()
        .filter(|r| Some(r.peer) != except)
        .filter_map(|r| zones.get(&r.peer).map(String::as_str))
        .collect()
}

/// State of one replica of one shard, spelled as Qdrant spells it in JSON (`"Active"`,
/// `"Dead"`, ...; enum `ReplicaState` of `docs/redoc/master/openapi.json`). A spelling this
/// operator does not know (a newer Qdrant) is kept in [`ReplicaState::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ReplicaState {
    /// Holds the full data and serves reads and writes: the only state counted as a safe copy.
    Active,
    /// Failed (missed updates or crashed). Qdrant recovers it automatically by a transfer from
    /// an `Active` replica when one exists; it is never a transfer source.
    Dead,
    /// Receiving data through a running stream_records transfer.
    Partial,
    /// The collection is being created.
    Initializing,
    /// Receives updates but serves no searches (set up by hand, e.g. a backup replica). Never
    /// becomes `Active` on its own and cannot be a transfer source.
    Listener,
    /// Snapshot transfer in progress (Qdrant 1.7-1.8 only; deprecated).
    PartialSnapshot,
    /// Receiving data through a snapshot or wal_delta transfer.
    Recovery,
    /// Receiving points while the collection is resharded up.
    Resharding,
    /// Giving points away while the collection is resharded down (still counted as active by
    /// Qdrant until resharding commits).
    ReshardingScaleDown,
    /// Active for readers, partial for writers (the end of a transfer).
    ActiveRead,
    /// Waiting for a shard snapshot to be uploaded by hand; like `Partial` but takes no
    /// updates.
    ManualRecovery,
    /// A state this operator does not know.
    Other(String),
}

impl ReplicaState {
    /// Qdrant's spelling of the state.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "Active",
            Self::Dead => "Dead",
            Self::Partial => "Partial",
            Self::Initializing => "Initializing",
            Self::Listener => "Listener",
            Self::PartialSnapshot => "PartialSnapshot",
            Self::Recovery => "Recovery",
            Self::Resharding => "Resharding",
            Self::ReshardingScaleDown => "ReshardingScaleDown",
            Self::ActiveRead => "ActiveRead",
            Self::ManualRecovery => "ManualRecovery",
            Self::Other(s) => s,
        }
    }

    /// A safe, settled copy: exactly `Active`. (Qdrant's own `is_active` also counts
    /// `ReshardingScaleDown`, which only exists while resharding runs; the planners wait for
    /// resharding to finish instead.)
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Active)
    }

    /// Qdrant accepts a transfer from a replica in this state (`Active` or
    /// `ReshardingScaleDown`).
    pub fn is_transfer_source(&self) -> bool {
        matches!(self, Self::Active | Self::ReshardingScaleDown)
    }

    /// The replica stays in this state until someone acts (`Active`, or a hand-made
    /// `Listener`): nothing to wait for.
    pub fn is_settled(&self) -> bool {
        matches!(self, Self::Active | Self::Listener)
    }

    /// The replica is in the middle of something Qdrant drives to an end by itself (a
    /// transfer, creation, resharding, a manual snapshot recovery): worth waiting for.
    pub fn is_transitional(&self) -> bool {
        matches!(
            self,
            Self::Initializing
                | Self::Partial
                | Self::PartialSnapshot
                | Self::Recovery
                | Self::Resharding
                | Self::ReshardingScaleDown
                | Self::ActiveRead
                | Self::ManualRecovery
        )
    }
}

impl From<String> for ReplicaState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "Active" => Self::Active,
            "Dead" => Self::Dead,
            "Partial" => Self::Partial,
            "Initializing" => Self::Initializing,
            "Listener" => Self::Listener,
            "PartialSnapshot" => Self::PartialSnapshot,
            "Recovery" => Self::Recovery,
            "Resharding" => Self::Resharding,
            "ReshardingScaleDown" => Self::ReshardingScaleDown,
            "ActiveRead" => Self::ActiveRead,
            "ManualRecovery" => Self::ManualRecovery,
            _ => Self::Other(s),
        }
    }
}

impl From<ReplicaState> for String {
    fn from(s: ReplicaState) -> Self {
        s.as_str().to_owned()
    }
}

impl fmt::Display for ReplicaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One replica of a shard: which peer holds it and in which state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The peer holding the replica.
    pub peer: PeerId,
    /// The replica's state on that peer.
    pub state: ReplicaState,
}

impl Replica {
    /// A replica of `state` on `peer`.
    pub fn new(peer: PeerId, state: ReplicaState) -> Self {
        Self { peer, state }
    }
}

/// A running shard transfer: one entry of `shard_transfers` in
/// `GET /collections/{c}/cluster` (`ShardTransferInfo` in Qdrant's OpenAPI). Fields Qdrant
/// sends but planning does not need (`comment`) are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The shard being transferred.
    pub shard_id: u32,
    /// Target shard when it differs (resharding transfers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_shard_id: Option<u32>,
    /// Source peer.
    pub from: PeerId,
    /// Destination peer.
    pub to: PeerId,
    /// `true`: a replication (the source keeps its replica); `false`: a move.
    #[serde(default)]
    pub sync: bool,
    /// `stream_records`, `snapshot`, `wal_delta` or `resharding_stream_records`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl Transfer {
    /// A move of `shard_id` from `from` to `to`, as `move_shard` starts it.
    pub fn moving(shard_id: u32, from: PeerId, to: PeerId) -> Self {
        Self {
            shard_id,
            to_shard_id: None,
            from,
            to,
            sync: false,
            method: None,
        }
    }

    /// A replication of `shard_id` from `from` to `to`, as `replicate_shard` (or Qdrant's
    /// automatic recovery of a `Dead` replica) starts it.
    pub fn replicating(shard_id: u32, from: PeerId, to: PeerId) -> Self {
        Self {
            sync: true,
            ..Self::moving(shard_id, from, to)
        }
    }

    /// True when `peer` sends or receives in this transfer.
    pub fn involves(&self, peer: PeerId) -> bool {
        self.from == peer || self.to == peer
    }

    /// Human description within `collection`, e.g.
    /// `the move of shard 3 of collection articles from peer 104 to peer 100`.
    pub fn describe(&self, collection: &str) -> String {
        let kind = if self.sync { "replication" } else { "move" };
        format!(
            "the {kind} of shard {} of collection {collection} from peer {} to peer {}",
            self.shard_id, self.from, self.to
        )
    }
}

/// Where one collection's shard replicas live and which transfers run, as one peer sees it.
///
/// Built from `GET /collections/{c}/cluster` with [`CollectionPlacement::from_cluster_info`]
/// plus the replication factor of `GET /collections/{c}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectionPlacement {
    /// `config.params.replication_factor` of `GET /collections/{c}`: the wanted number of
    /// copies of each shard.
    pub replication_factor: u32,
    /// Shard id -> its replicas (one per peer).
    pub shards: BTreeMap<u32, Vec<Replica>>,
    /// Transfers running now (`shard_transfers`).
    pub transfers: Vec<Transfer>,
}

impl CollectionPlacement {
    /// The replica of `shard_id` on `peer`, if any.
    pub fn replica(&self, shard_id: u32, peer: PeerId) -> Option<&Replica> {
        self.shards
            .get(&shard_id)
            .and_then(|rs| rs.iter().find(|r| r.peer == peer))
    }

    /// True when `peer` holds a replica (any state) or takes part in a transfer.
    pub fn involves(&self, peer: PeerId) -> bool {
        self.count_on(peer) > 0 || self.transfers.iter().any(|t| t.involves(peer))
    }

    /// One "waiting for ... to finish" line per running transfer of this collection (named
    /// `name`), in (shard, source, destination) order.
    pub fn transfer_waits(&self, name: &str) -> Vec<String> {
        let mut running: Vec<&Transfer> = self.transfers.iter().collect();
        running.sort_by_key(|t| (t.shard_id, t.from, t.to));
        running
            .iter()
            .map(|t| format!("waiting for {} to finish", t.describe(name)))
            .collect()
    }

    /// Number of replicas (any state) of this collection on `peer`.
    pub fn count_on(&self, peer: PeerId) -> usize {
        self.shards
            .values()
            .filter(|rs| rs.iter().any(|r| r.peer == peer))
            .count()
    }
}

impl CollectionPlacement {
    /// The placement described by one peer's answer to `GET /collections/{c}/cluster`
    /// ([`reconcile_lib::qdrant::CollectionClusterInfo`]: the answering peer's replicas in
    /// `local_shards`, every other peer's in `remote_shards`, running `shard_transfers`), with
    /// the collection's `replication_factor` (from `GET /collections/{c}`). Replicas of each
    /// shard are sorted by peer id; unknown states are kept as [`ReplicaState::Other`].
    pub fn from_cluster_info(
        info: &reconcile_lib::qdrant::CollectionClusterInfo,
        replication_factor: u32,
    ) -> Self {
        let mut shards: BTreeMap<u32, Vec<Replica>> = BTreeMap::new();
        for l in &info.local_shards {
            shards.entry(l.shard_id).or_default().push(Replica::new(
                info.peer_id,
                ReplicaState::from(l.state.clone()),
            ));
        }
        for r in &info.remote_shards {
            shards
                .entry(r.shard_id)
                .or_default()
                .push(Replica::new(r.peer_id, ReplicaState::from(r.state.clone())));
        }
        for replicas in shards.values_mut() {
            replicas.sort_by_key(|r| r.peer);
        }
        let transfers = info
            .shard_transfers
            .iter()
            .map(|t| Transfer {
                shard_id: t.shard_id,
                to_shard_id: t.to_shard_id,
                from: t.from,
                to: t.to,
                sync: t.sync,
                method: t.method.clone(),
            })
            .collect();
        Self {
            replication_factor,
            shards,
            transfers,
        }
    }
}

/// A pod of the StatefulSet and the Qdrant peer it runs: pod `<cluster>-<ordinal>` answered
/// `GET /cluster` with `peer_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// The pod's StatefulSet ordinal.
    pub ordinal: u32,
    /// The Qdrant peer id the pod reported.
    pub peer_id: PeerId,
}

/// One shard operation: the body of one `POST /collections/{collection}/cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardOp {
    /// `move_shard`: copy the replica on `from` to `to`, then remove it from `from`.
    Move {
        /// Collection name.
        collection: String,
        /// The shard.
        shard_id: u32,
        /// Source peer (its replica must be `Active`).
        from: PeerId,
        /// Destination peer (holds no replica of the shard).
        to: PeerId,
    },
    /// `replicate_shard`: copy the replica on `from` to `to`; `from` keeps its replica.
    Replicate {
        /// Collection name.
        collection: String,
        /// The shard.
        shard_id: u32,
        /// Source peer (its replica must be `Active`).
        from: PeerId,
        /// Destination peer (holds no replica of the shard).
        to: PeerId,
    },
    /// `drop_replica`: remove the replica on `peer` (Qdrant refuses the last `Active` one).
    DropReplica {
        /// Collection name.
        collection: String,
        /// The shard.
        shard_id: u32,
        /// The peer whose replica goes.
        peer: PeerId,
    },
}

impl ShardOp {
    /// The collection whose `/collections/{collection}/cluster` takes [`ShardOp::body`].
    pub fn collection(&self) -> &str {
        match self {
            Self::Move { collection, .. }
            | Self::Replicate { collection, .. }
            | Self::DropReplica { collection, .. } => collection,
        }
    }

    /// The shard the operation acts on.
    pub fn shard_id(&self) -> u32 {
        match self {
            Self::Move { shard_id, .. }
            | Self::Replicate { shard_id, .. }
            | Self::DropReplica { shard_id, .. } => *shard_id,
        }
    }

    /// The JSON body of `POST /collections/{collection}/cluster`, e.g.
    /// `{"move_shard": {"shard_id": 3, "from_peer_id": 104, "to_peer_id": 100}}`. No `method`
    /// is sent, so Qdrant uses its configured default transfer method.
    pub fn body(&self) -> serde_json::Value {
        match self {
            Self::Move {
                shard_id, from, to, ..
            } => serde_json::json!({
                "move_shard": {"shard_id": shard_id, "from_peer_id": from, "to_peer_id": to}
            }),
            Self::Replicate {
                shard_id, from, to, ..
            } => serde_json::json!({
                "replicate_shard": {"shard_id": shard_id, "from_peer_id": from, "to_peer_id": to}
            }),
            Self::DropReplica { shard_id, peer, .. } => serde_json::json!({
                "drop_replica": {"shard_id": shard_id, "peer_id": peer}
            }),
        }
    }
}

impl fmt::Display for ShardOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Move {
                collection,
                shard_id,
                from,
                to,
            } => write!(
                f,
                "move shard {shard_id} of collection {collection} from peer {from} to peer {to}"
            ),
            Self::Replicate {
                collection,
                shard_id,
                from,
                to,
            } => write!(
                f,
                "replicate shard {shard_id} of collection {collection} from peer {from} to peer {to}"
            ),
            Self::DropReplica {
                collection,
                shard_id,
                peer,
            } => write!(
                f,
                "drop the replica of shard {shard_id} of collection {collection} on peer {peer}"
            ),
        }
    }
}

/// Why a scale-down cannot proceed safely. Refusals need a person (or a spec change): the
/// cluster keeps its size and reports them in the `ScaleDownBlocked` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The collection concerned; `None` for the cluster as a whole.
    pub collection: Option<String>,
    /// The shard concerned; `None` for the whole collection.
    pub shard_id: Option<u32>,
    /// What is wrong and what would unblock it.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.collection, self.shard_id) {
            (Some(c), Some(s)) => write!(f, "collection {c} shard {s}: {}", self.reason),
            (Some(c), None) => write!(f, "collection {c}: {}", self.reason),
            (None, _) => f.write_str(&self.reason),
        }
    }
}

/// The next step of a scale-down, as decided by [`plan_scale_down`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleDownStep {
    /// Send these operations (at most one per collection, each to
    /// `POST /collections/{c}/cluster`), then observe again.
    Issue(Vec<ShardOp>),
    /// Nothing to do until Qdrant finishes something; each entry says what is awaited.
    Wait(Vec<String>),
    /// The leaving peer holds nothing: remove it from consensus with
    /// `DELETE /cluster/peer/{peer_id}` (without `force`).
    RemovePeer {
        /// The peer to remove.
        peer_id: PeerId,
        /// Its pod's ordinal.
        ordinal: u32,
    },
    /// The leaving peer is out of consensus and holds nothing: set the StatefulSet's replicas
    /// to this (one less than now).
    Shrink {
        /// The new StatefulSet size.
        replicas: u32,
    },
    /// The target size cannot hold the data safely: keep the current size.
    Refuse(Vec<Refusal>),
    /// The StatefulSet is at (or below) the target size.
    Done,
}

impl ScaleDownStep {
    /// One-line human summary for a status condition message.
    pub fn message(&self) -> String {
        match self {
            Self::Issue(ops) => summarize(&ops.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Self::Wait(reasons) => summarize(reasons),
            Self::RemovePeer { peer_id, ordinal } => {
                format!("removing drained peer {peer_id} (pod ordinal {ordinal}) from consensus")
            }
            Self::Shrink { replicas } => format!("shrinking the StatefulSet to {replicas} pods"),
            Self::Refuse(refusals) => {
                summarize(&refusals.iter().map(ToString::to_string).collect::<Vec<_>>())
            }
            Self::Done => "scale-down complete".to_owned(),
        }
    }
}

/// Joins at most five entries with `"; "`, adding how many more were left out.
pub(crate) fn summarize(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        out.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    out
}

/// The pods `0..current` and the peer ids they reported.
struct Pods {
    by_ordinal: BTreeMap<u32, PeerId>,
}

impl Pods {
    fn new(peers: &[Peer], current: u32) -> Self {
        let mut sorted = peers.to_vec();
        sorted.sort();
        let mut by_ordinal = BTreeMap::new();
        for p in sorted.into_iter().filter(|p| p.ordinal < current) {
            by_ordinal.entry(p.ordinal).or_insert(p.peer_id);
        }
        Self { by_ordinal }
    }

    fn peer(&self, ordinal: u32) -> Option<Peer> {
        self.by_ordinal
            .get(&ordinal)
            .map(|&peer_id| Peer { ordinal, peer_id })
    }

    fn below(&self, target: u32) -> Vec<Peer> {
        self.by_ordinal
            .range(..target)
            .map(|(&ordinal, &peer_id)| Peer { ordinal, peer_id })
            .collect()
    }

    fn ids_from(&self, target: u32) -> BTreeSet<PeerId> {
        self.by_ordinal.range(target..).map(|(_, &id)| id).collect()
    }
}

/// Replica counts per peer over every collection, the tie-breaker that spreads collections.
fn totals(placement: &BTreeMap<String, CollectionPlacement>) -> BTreeMap<PeerId, usize> {
    let mut totals = BTreeMap::new();
    for replica in placement.values().flat_map(|c| c.shards.values()).flatten() {
        *totals.entry(replica.peer).or_insert(0) += 1;
    }
    totals
}

fn apply_to_totals(totals: &mut BTreeMap<PeerId, usize>, op: &ShardOp) {
    let mut add = |peer: PeerId, delta: isize| {
        let n = totals.entry(peer).or_insert(0);
        *n = n.saturating_add_signed(delta);
    };
    match op {
        ShardOp::Move { from, to, .. } => {
            add(*from, -1);
            add(*to, 1);
        }
        ShardOp::Replicate { to, .. } => add(*to, 1),
        ShardOp::DropReplica { peer, .. } => add(*peer, -1),
    }
}

/// The least loaded peer of `candidates` without any replica of `replicas`' shard: first a
/// peer in a known zone that the shard's other replicas (all but the one on `leaving`) are not
/// in yet ([`Zones`]; without zones no peer is preferred), then fewest replicas of this
/// collection, then fewest overall, then lowest ordinal.
fn pick_target(
    collection: &CollectionPlacement,
    replicas: &[Replica],
    candidates: &[Peer],
    totals: &BTreeMap<PeerId, usize>,
    zones: &Zones,
    leaving: Option<PeerId>,
) -> Option<Peer> {
    let covered = zones_of(replicas, zones, leaving);
    let new_zone = |p: &Peer| {
        zones
            .get(&p.peer_id)
            .is_some_and(|z| !covered.contains(z.as_str()))
    };
    candidates
        .iter()
        .filter(|p| !replicas.iter().any(|r| r.peer == p.peer_id))
        .min_by_key(|p| {
            (
                !new_zone(p),
                collection.count_on(p.peer_id),
                totals.get(&p.peer_id).copied().unwrap_or(0),
                p.ordinal,
            )
        })
        .copied()
}

fn states(replicas: &[Replica]) -> String {
    replicas
        .iter()
        .map(|r| format!("peer {} {}", r.peer, r.state))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything that makes the scale-down to `target` unsafe, over all leaving peers at once so
/// that nothing is moved before a refusal that would come later.
fn refusals(
    pods: &Pods,
    target: u32,
    placement: &BTreeMap<String, CollectionPlacement>,
) -> Vec<Refusal> {
    let leaving = pods.ids_from(target);
    let mut out = vec![];
    for (name, c) in placement {
        let refuse = |shard_id: Option<u32>, reason: String| Refusal {
            collection: Some(name.clone()),
            shard_id,
            reason,
        };
        if c.replication_factor > target {
            out.push(refuse(
                None,
                format!(
                    "replication factor {rf} needs at least {rf} peers but the target size is \
                     {target}; lower the collection's replication factor or keep at least {rf} \
                     replicas",
                    rf = c.replication_factor
                ),
            ));
        }
        for (&shard_id, replicas) in &c.shards {
            let on_leaving: Vec<&Replica> = replicas
                .iter()
                .filter(|r| leaving.contains(&r.peer))
                .collect();
            if on_leaving.is_empty() {
                continue;
            }
            for r in &on_leaving {
                match &r.state {
                    ReplicaState::Listener => out.push(refuse(
                        Some(shard_id),
                        format!(
                            "leaving peer {} holds a Listener replica, which Qdrant cannot \
                             transfer and this operator cannot re-create; drop it by hand \
                             (drop_replica) to proceed",
                            r.peer
                        ),
                    )),
                    ReplicaState::Other(s) => out.push(refuse(
                        Some(shard_id),
                        format!(
                            "leaving peer {} holds a replica in state {s}, unknown to this \
                             operator, so it cannot tell whether moving it is safe",
                            r.peer
                        ),
                    )),
                    _ => {}
                }
            }
            let has_source = replicas.iter().any(|r| r.state.is_transfer_source());
            let settling = replicas.iter().any(|r| r.state.is_transitional());
            if !has_source && !settling {
                out.push(refuse(
                    Some(shard_id),
                    format!(
                        "no replica is Active ({}); Qdrant copies a shard only from an Active \
                         replica and never drops the last one, so removing the leaving peers \
                         would lose this shard; recover it first",
                        states(replicas)
                    ),
                ));
            }
        }
    }
    out
}

/// Where a leaving peer's replicas may go: the remaining peers, the replica totals per peer
/// (counting this step's operations) and the peers' zones.
#[derive(Clone, Copy)]
struct Targets<'a> {
    remaining: &'a [Peer],
    totals: &'a BTreeMap<PeerId, usize>,
    zones: &'a Zones,
}

enum ShardDecision {
    Op(ShardOp),
    Wait(String),
}

/// What to do about the replica of `shard_id` on `leaving`.
///
/// - `Active` there: **move** it to the least loaded remaining peer that lacks the shard
///   (keeps the copy count; Qdrant keeps the source until the target is `Active`). When every
///   remaining peer already holds the shard, **drop** it if the remaining peers keep at least
///   `max(replication_factor, 1)` `Active` copies.
/// - `Dead` there (no data Qdrant trusts, and not a transfer source): **drop** it when the
///   remaining peers already have `max(replication_factor, 1)` `Active` copies, otherwise first
///   **replicate** an `Active` copy (preferring remaining peers, lowest ordinal) onto the least
///   loaded remaining peer lacking the shard.
/// - transitional there (`Partial`, `Recovery`, ...): wait for it to settle.
///
/// In every case a non-settled replica of the shard on a remaining peer is waited for first:
/// Qdrant is recovering it, and a new transfer touching it would be refused as conflicting.
fn decide_shard(
    name: &str,
    collection: &CollectionPlacement,
    shard_id: u32,
    replicas: &[Replica],
    leaving: Peer,
    targets: &Targets<'_>,
) -> ShardDecision {
    let Targets {
        remaining,
        totals,
        zones,
    } = *targets;
    let l = leaving.peer_id;
    let is_remaining = |peer: PeerId| remaining.iter().any(|p| p.peer_id == peer);
    let Some(mine) = replicas.iter().find(|r| r.peer == l) else {
        return ShardDecision::Wait(format!(
            "collection {name}: shard {shard_id} has no replica on peer {l} any more"
        ));
    };
    if let Some(r) = replicas
        .iter()
        .find(|r| is_remaining(r.peer) && !r.state.is_settled())
    {
        return ShardDecision::Wait(format!(
            "collection {name}: waiting for shard {shard_id} to be Active on peer {} (state {}) \
             before moving it off peer {l}",
            r.peer, r.state
        ));
    }
    let want = collection.replication_factor.max(1) as usize;
    let active_remaining = replicas
        .iter()
        .filter(|r| is_remaining(r.peer) && r.state.is_active())
        .count();
    let target = pick_target(collection, replicas, remaining, totals, zones, Some(l));
    let drop = || ShardOp::DropReplica {
        collection: name.to_owned(),
        shard_id,
        peer: l,
    };
    let short = || {
        format!(
            "collection {name}: shard {shard_id} needs {want} Active replicas on the remaining \
             peers but has {active_remaining} ({}), and every remaining peer already holds one",
            states(replicas)
        )
    };
    match &mine.state {
        ReplicaState::Active => match target {
            Some(t) => ShardDecision::Op(ShardOp::Move {
                collection: name.to_owned(),
                shard_id,
                from: l,
                to: t.peer_id,
            }),
            None if active_remaining >= want => ShardDecision::Op(drop()),
            None => ShardDecision::Wait(short()),
        },
        ReplicaState::Dead => {
            if active_remaining >= want {
                return ShardDecision::Op(drop());
            }
            let ordinal_of = |peer: PeerId| remaining.iter().find(|p| p.peer_id == peer);
            let source = replicas
                .iter()
                .filter(|r| r.peer != l && r.state.is_active())
                .min_by_key(|r| match ordinal_of(r.peer) {
                    Some(p) => (0, u64::from(p.ordinal)),
                    None => (1, r.peer),
                });
            match (source, target) {
                (Some(s), Some(t)) => ShardDecision::Op(ShardOp::Replicate {
                    collection: name.to_owned(),
                    shard_id,
                    from: s.peer,
                    to: t.peer_id,
                }),
                (None, _) => ShardDecision::Wait(format!(
                    "collection {name}: shard {shard_id} is Dead on leaving peer {l} and has no \
                     Active replica to copy from yet ({})",
                    states(replicas)
                )),
                (Some(_), None) => ShardDecision::Wait(short()),
            }
        }
        s => ShardDecision::Wait(format!(
            "collection {name}: waiting for shard {shard_id} on leaving peer {l} to settle \
             (state {s})"
        )),
    }
}

/// Decides the next step of shrinking the StatefulSet from `current_replicas` to
/// `target_replicas` pods without losing a shard.
///
/// Inputs: `peers`, the pods that reported their peer id (`GET /cluster` on each pod; pods
/// that did not answer are simply absent); `consensus_peers`, the peer ids consensus knows
/// (keys of `peers` in `GET /cluster`); `placement`, every collection by name.
///
/// Leaving peers go one at a time, highest ordinal first: only the pod with ordinal
/// `current_replicas - 1` is worked on, so at most one peer is ever being drained or removed.
/// The order of checks:
///
/// 1. `current_replicas <= target_replicas`: [`ScaleDownStep::Done`].
/// 2. [`ScaleDownStep::Refuse`] (for every leaving peer at once, before anything moves): a
///    target of 0; a collection whose replication factor exceeds the target; a shard on a
///    leaving peer with no `Active` replica anywhere and none on its way to one; a `Listener`
///    or unknown-state replica on a leaving peer.
/// 3. The leaving pod never reported its peer id: [`ScaleDownStep::Shrink`] if no peer in
///    consensus or in any placement is unaccounted for (it never joined, or was removed
///    already), otherwise wait.
/// 4. The leaving peer still holds replicas: every remaining pod must have reported a peer id
///    that consensus knows (targets must exist), then per collection (by name): wait while any
///    transfer runs in it; otherwise the first shard (by id) that can act gives the
///    collection's one operation, shards that cannot act say what they wait for.
///    [`ScaleDownStep::Issue`] when any collection has an operation, else
///    [`ScaleDownStep::Wait`]. Per replica on the leaving peer, with
///    `want = max(replication_factor, 1)`:
///    - a replica of the shard on a remaining peer that is neither `Active` nor `Listener`:
///      wait (Qdrant is recovering it; a transfer touching it would conflict);
///    - `Active`: **move** it (`move_shard`) to a remaining peer without the shard. A move
///      keeps the number of copies, and Qdrant drops the source only once the target is
///      `Active`, so it is right for a shard's only copy as for any other; replicate + drop
///      would be two steps for the same result. Only when every remaining peer already holds
///      the shard is it **dropped**, and only if `want` `Active` copies remain there;
///    - `Dead` (Qdrant cannot transfer from it): **drop** it when the remaining peers already
///      hold `want` `Active` copies, otherwise first **replicate** an `Active` copy (from a
///      remaining peer, lowest ordinal, if any) to a remaining peer without the shard;
///    - transitional (`Partial`, `Recovery`, `Initializing`, resharding, ...): wait.
///
///    Targets are the least loaded remaining peer without a replica of the shard: fewest
///    replicas of the collection, then fewest overall (counting this step's operations),
///    then lowest ordinal. [`plan_scale_down_in_zones`] first prefers a peer in a zone the
///    shard's remaining replicas are not in.
/// 5. The leaving peer holds nothing: [`ScaleDownStep::RemovePeer`] while consensus still
///    knows it, then [`ScaleDownStep::Shrink`] to its ordinal.
pub fn plan_scale_down(
    peers: &[Peer],
    consensus_peers: &BTreeSet<PeerId>,
    current_replicas: u32,
    target_replicas: u32,
    placement: &BTreeMap<String, CollectionPlacement>,
) -> ScaleDownStep {
    plan_scale_down_in_zones(
        peers,
        consensus_peers,
        current_replicas,
        target_replicas,
        placement,
        &Zones::new(),
    )
}

/// [`plan_scale_down`] with the peers' zones (`spec.zoneAware`): the same steps, but a
/// replica that moves (or is re-replicated) off the leaving peer goes, among the remaining
/// peers without the shard, first to one in a zone the shard's remaining replicas are not in
/// yet, so a drain does not put every copy of a shard in one zone when it can avoid it. With
/// empty `zones` it is [`plan_scale_down`].
pub fn plan_scale_down_in_zones(
    peers: &[Peer],
    consensus_peers: &BTreeSet<PeerId>,
    current_replicas: u32,
    target_replicas: u32,
    placement: &BTreeMap<String, CollectionPlacement>,
    zones: &Zones,
) -> ScaleDownStep {
    if current_replicas <= target_replicas {
        return ScaleDownStep::Done;
    }
    if target_replicas == 0 {
        return ScaleDownStep::Refuse(vec![Refusal {
            collection: None,
            shard_id: None,
            reason: "a target of 0 replicas leaves no peer to hold the data".to_owned(),
        }]);
    }
    let pods = Pods::new(peers, current_replicas);
    let refused = refusals(&pods, target_replicas, placement);
    if !refused.is_empty() {
        return ScaleDownStep::Refuse(refused);
    }

    let leaving_ordinal = current_replicas - 1;
    let Some(leaving) = pods.peer(leaving_ordinal) else {
        return unknown_leaving_peer(&pods, leaving_ordinal, consensus_peers, placement);
    };
    let l = leaving.peer_id;

    if placement.values().any(|c| c.involves(l)) {
        let remaining = pods.below(target_replicas);
        let mut missing = vec![];
        for ordinal in 0..target_replicas {
            match pods.peer(ordinal) {
                None => missing.push(format!(
                    "waiting for pod ordinal {ordinal} to report its peer id (GET /cluster) \
                     before moving shards to it"
                )),
                Some(p) if !consensus_peers.contains(&p.peer_id) => missing.push(format!(
                    "waiting for peer {} (pod ordinal {ordinal}) to join consensus before \
                     moving shards to it",
                    p.peer_id
                )),
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            return ScaleDownStep::Wait(missing);
        }

        let mut totals = totals(placement);
        let mut ops = vec![];
        let mut waits = vec![];
        for (name, c) in placement {
            if !c.involves(l) {
                continue;
            }
            if !c.transfers.is_empty() {
                waits.extend(c.transfer_waits(name));
                continue;
            }
            for (&shard_id, replicas) in &c.shards {
                if !replicas.iter().any(|r| r.peer == l) {
                    continue;
                }
                let targets = Targets {
                    remaining: &remaining,
                    totals: &totals,
                    zones,
                };
                match decide_shard(name, c, shard_id, replicas, leaving, &targets) {
                    ShardDecision::Op(op) => {
                        apply_to_totals(&mut totals, &op);
                        ops.push(op);
                        break;
                    }
                    ShardDecision::Wait(why) => waits.push(why),
                }
            }
        }
        return if ops.is_empty() {
            ScaleDownStep::Wait(waits)
        } else {
            ScaleDownStep::Issue(ops)
        };
    }

    if consensus_peers.contains(&l) {
        ScaleDownStep::RemovePeer {
            peer_id: l,
            ordinal: leaving_ordinal,
        }
    } else {
        ScaleDownStep::Shrink {
            replicas: leaving_ordinal,
        }
    }
}

/// The leaving pod did not report a peer id: shrinking is safe only if every peer consensus
/// knows or any collection places a replica on belongs to another pod.
fn unknown_leaving_peer(
    pods: &Pods,
    ordinal: u32,
    consensus_peers: &BTreeSet<PeerId>,
    placement: &BTreeMap<String, CollectionPlacement>,
) -> ScaleDownStep {
    let known: BTreeSet<PeerId> = pods.by_ordinal.values().copied().collect();
    let mut strangers: BTreeSet<PeerId> = consensus_peers.clone();
    for c in placement.values() {
        strangers.extend(c.shards.values().flatten().map(|r| r.peer));
        strangers.extend(c.transfers.iter().flat_map(|t| [t.from, t.to]));
    }
    strangers.retain(|p| !known.contains(p));
    if strangers.is_empty() {
        return ScaleDownStep::Shrink { replicas: ordinal };
    }
    let ids = strangers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    ScaleDownStep::Wait(vec![format!(
        "waiting for pod ordinal {ordinal} to report its peer id (GET /cluster): peers {ids} \
         match no pod, so it cannot be told whether pod ordinal {ordinal} still holds shards"
    )])
}

/// The outcome of [`plan_rebalance`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebalancePlan {
    /// Moves to send now, at most one per collection.
    pub ops: Vec<ShardOp>,
    /// Collections left alone this time and why (a transfer runs, a replica is not settled, a
    /// replica sits on a peer that is not in the list).
    pub deferred: Vec<String>,
}

impl RebalancePlan {
    /// No move to make and nothing deferred: every collection is as even as these rules get.
    pub fn is_balanced(&self) -> bool {
        self.ops.is_empty() && self.deferred.is_empty()
    }
}

/// Plans moves that spread shard replicas evenly over `peers` (the cluster's Ready peers,
/// e.g. after a scale-up), at most one move per collection and only in collections where no
/// transfer runs and every replica is settled (`Active`, or a `Listener`, which is counted but
/// never moved).
///
/// A move of an `Active` replica from peer `p` to peer `q` (which lacks that shard) is chosen
/// when it makes the collection more even (`p` holds at least two more of its replicas than
/// `q`), or keeps it as even and makes the peers' totals over all collections more even
/// (`p` holds exactly one more of the collection, and at least two more overall). Among
/// candidates: the largest gap in the collection, then the largest gap overall, then the
/// lowest ordinals; the shard is the lowest id `p` can give. Each move strictly lowers the sum
/// of squared per-collection counts or keeps it and lowers the sum of squared totals, so
/// repeated planning ends. Counts are replicas, not points or bytes.
pub fn plan_rebalance(
    peers: &[Peer],
    placement: &BTreeMap<String, CollectionPlacement>,
) -> RebalancePlan {
    plan_rebalance_in_zones(peers, placement, &Zones::new())
}

/// [`plan_rebalance`] with the peers' zones (`spec.zoneAware`): the same moves, except that
/// a move never lowers the number of known zones the moved shard's replicas are in (so the
/// rebalance never undoes what [`crate::day2::zones::plan_zone_balance`] spread), and among
/// equally good moves one that raises it wins. With empty `zones` it is [`plan_rebalance`].
pub fn plan_rebalance_in_zones(
    peers: &[Peer],
    placement: &BTreeMap<String, CollectionPlacement>,
    zones: &Zones,
) -> RebalancePlan {
    let mut peers = peers.to_vec();
    peers.sort();
    peers.dedup_by_key(|p| p.ordinal);
    let known: BTreeSet<PeerId> = peers.iter().map(|p| p.peer_id).collect();
    let mut totals: BTreeMap<PeerId, usize> = totals(placement);
    totals.retain(|p, _| known.contains(p));

    let mut plan = RebalancePlan::default();
    for (name, c) in placement {
        if !c.transfers.is_empty() {
            plan.deferred.extend(c.transfer_waits(name));
            continue;
        }
        let unsettled = c
            .shards
            .iter()
            .find_map(|(s, rs)| rs.iter().find(|r| !r.state.is_settled()).map(|r| (s, r)));
        if let Some((s, r)) = unsettled {
            plan.deferred.push(format!(
                "collection {name}: waiting for shard {s} to be Active on peer {} (state {})",
                r.peer, r.state
            ));
            continue;
        }
        let stray = c
            .shards
            .iter()
            .find_map(|(s, rs)| rs.iter().find(|r| !known.contains(&r.peer)).map(|r| (s, r)));
        if let Some((s, r)) = stray {
            plan.deferred.push(format!(
                "collection {name}: shard {s} has a replica on peer {}, which is not one of the \
                 peers to balance over; not balancing this collection",
                r.peer
            ));
            continue;
        }
        if let Some(op) = best_move(name, c, &peers, &totals, zones) {
            apply_to_totals(&mut totals, &op);
            plan.ops.push(op);
        }
    }
    plan
}

/// How good a rebalancing move is: gap in the collection, gap in the totals, whether it
/// spreads the shard over more zones, then the lowest (source, destination) ordinals.
type MoveRank = (usize, usize, bool, std::cmp::Reverse<(u32, u32)>);

/// The known zones of `replicas` once the replica on `from` is on `to` instead.
fn zone_count_after_move(replicas: &[Replica], zones: &Zones, from: PeerId, to: PeerId) -> usize {
    let mut after = zones_of(replicas, zones, Some(from));
    if let Some(z) = zones.get(&to) {
        after.insert(z.as_str());
    }
    after.len()
}

fn best_move(
    name: &str,
    c: &CollectionPlacement,
    peers: &[Peer],
    totals: &BTreeMap<PeerId, usize>,
    zones: &Zones,
) -> Option<ShardOp> {
    let total = |p: &Peer| totals.get(&p.peer_id).copied().unwrap_or(0);
    let mut best: Option<(MoveRank, ShardOp)> = None;
    for p in peers {
        for q in peers {
            let (cp, cq) = (c.count_on(p.peer_id), c.count_on(q.peer_id));
            if p == q || cp <= cq {
                continue;
            }
            let gap = cp - cq;
            let total_gap = total(p).saturating_sub(total(q));
            if gap < 2 && total_gap < 2 {
                continue;
            }
            // Shards `p` can give `q` without losing a zone, those that gain one first, then
            // the lowest id.
            let shard = c
                .shards
                .iter()
                .filter(|(_, rs)| {
                    rs.iter()
                        .any(|r| r.peer == p.peer_id && r.state.is_active())
                        && !rs.iter().any(|r| r.peer == q.peer_id)
                })
                .filter_map(|(s, rs)| {
                    let before = zones_of(rs, zones, None).len();
                    let after = zone_count_after_move(rs, zones, p.peer_id, q.peer_id);
                    (after >= before).then_some((after > before, *s))
                })
                .min_by_key(|(gains, s)| (!gains, *s));
            let Some((gains_zone, shard_id)) = shard else {
                continue;
            };
            let key = (
                gap,
                total_gap,
                gains_zone,
                std::cmp::Reverse((p.ordinal, q.ordinal)),
            );
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((
                    key,
                    ShardOp::Move {
                        collection: name.to_owned(),
                        shard_id,
                        from: p.peer_id,
                        to: q.peer_id,
                    },
                ));
            }
        }
    }
    best.map(|(_, op)| op)
}
