//! Shard placement, shard transfers and replicas.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::REPLICA_STATES;
use super::collections::{FakeCollection, collection_not_found, wrong_input};
use super::handle::FakeQdrant;
use super::model;
use super::server::{Answering, Failure, Shared, State, decode, reply, validated};

impl FakeQdrant {
    /// The shard placement of collection `name` (exact name): shard id → its replicas as
    /// (peer id, state), sorted by peer id. States are spelled as Qdrant does (`Active`,
    /// `Partial`, `Recovery`, `Dead`, ...).
    ///
    /// # Panics
    /// When there is no collection `name` (a test bug).
    pub fn placement(&self, name: &str) -> BTreeMap<u32, Vec<(u64, String)>> {
        let state = self.shared.lock();
        let Some(collection) = state.collections.get(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        collection
            .shards
            .iter()
            .map(|(shard, replicas)| {
                let replicas = replicas
                    .iter()
                    .map(|(peer, state)| (*peer, (*state).to_owned()))
                    .collect();
                (*shard, replicas)
            })
            .collect()
    }

    /// Sets the state of the replica of `shard` on `peer` in collection `name` (adding the
    /// replica if the peer has none), behind the operator's back: e.g. `Dead` after a failed
    /// write, or `Active` on a peer that Qdrant would have filled.
    ///
    /// # Panics
    /// When there is no collection `name` or no shard `shard` in it, or `state` is not one of
    /// Qdrant's replica states ([`REPLICA_STATES`]) — test bugs.
    pub fn set_replica_state(&self, name: &str, shard: u32, peer: u64, state: &str) {
        let Some(known) = REPLICA_STATES.iter().find(|s| **s == state) else {
            panic!("{state:?} is not a Qdrant replica state (one of {REPLICA_STATES:?})");
        };
        let mut guard = self.shared.lock();
        let Some(collection) = guard.collections.get_mut(name) else {
            panic!("the fake Qdrant has no collection {name:?}");
        };
        let Some(replicas) = collection.shards.get_mut(&shard) else {
            panic!("collection {name:?} of the fake Qdrant has no shard {shard}");
        };
        replicas.insert(peer, *known);
    }

    /// Finishes every shard transfer in progress, in every collection, as Qdrant does when a
    /// transfer succeeds: the target replica becomes `Active`, and for a move (`sync: false`)
    /// the source replica is removed. Returns how many transfers finished.
    pub fn complete_transfers(&self) -> usize {
        let mut state = self.shared.lock();
        state
            .collections
            .values_mut()
            .map(FakeCollection::complete_transfers)
            .sum()
    }

    /// When `true`, a transfer started by `move_shard` or `replicate_shard` finishes before
    /// the request is answered (as [`Self::complete_transfers`] would finish it), so it never
    /// shows in `shard_transfers`. Default `false`: transfers run until
    /// [`Self::complete_transfers`].
    pub fn set_transfers_complete_instantly(&self, instantly: bool) {
        self.shared.lock().transfers_complete_instantly = instantly;
    }
}

// ---------------------------------------------------------------------------------------------
// Shard placement, shard transfers and peers
// ---------------------------------------------------------------------------------------------

/// A shard transfer in progress (Qdrant's `ShardTransfer`; its key is everything but `sync`
/// and `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FakeTransfer {
    pub(super) shard_id: u32,
    pub(super) to_shard_id: Option<u32>,
    pub(super) from: u64,
    pub(super) to: u64,
    /// `true` for `replicate_shard` (the source replica stays), `false` for `move_shard`.
    pub(super) sync: bool,
    pub(super) method: model::ShardTransferMethod,
}

impl FakeTransfer {
    /// The shard the target replica belongs to.
    fn target_shard(&self) -> u32 {
        self.to_shard_id.unwrap_or(self.shard_id)
    }

    /// Qdrant's `ShardTransfer::is_source_or_target`.
    pub(super) fn involves(&self, peer: u64, shard: u32) -> bool {
        (self.from == peer && self.shard_id == shard)
            || (self.to == peer && self.target_shard() == shard)
    }

    /// Same transfer key: shard, target shard and both peers.
    fn same_key(&self, other: &Self) -> bool {
        (self.shard_id, self.to_shard_id, self.from, self.to)
            == (other.shard_id, other.to_shard_id, other.from, other.to)
    }

    /// The `shard_transfers` entry of `GET /collections/{c}/cluster`. Qdrant's free-text
    /// `comment` (progress, reported only by the peers running the transfer) is left out.
    fn info(&self) -> Value {
        let mut info = json!({
            "shard_id": self.shard_id,
            "from": self.from,
            "to": self.to,
            "sync": self.sync,
            "method": self.method,
        });
        if let (Some(to_shard_id), Value::Object(map)) = (self.to_shard_id, &mut info) {
            map.insert("to_shard_id".to_owned(), json!(to_shard_id));
        }
        info
    }
}

/// Qdrant's placement of a new collection (`ShardDistributionProposal::new`,
/// `lib/storage/src/content_manager/shard_distribution.rs`): shard after shard, each replica
/// goes to the peer holding the fewest replicas so far, ties broken by a random per-peer bias;
/// that is a round robin over the peers in a random order. The fake goes round in the order of
/// `peers` instead (peers 1, 2, 3 with 3 shards and 2 replicas: shard 0 on 1 and 2, shard 1 on
/// 3 and 1, shard 2 on 2 and 3). At most one replica per peer (`replication_factor` is capped
/// at the number of peers); every replica starts `Active`; custom sharding creates no shard.
pub(super) fn initial_placement(
    config: &Value,
    peers: &[u64],
) -> BTreeMap<u32, BTreeMap<u64, &'static str>> {
    let params = &config["params"];
    if params["sharding_method"] == "custom" || peers.is_empty() {
        return BTreeMap::new();
    }
    let shard_number = params["shard_number"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    let replicas = params["replication_factor"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1)
        .min(peers.len());
    let mut next_peer = peers.iter().cycle();
    (0..shard_number)
        .map(|shard| {
            let placed = next_peer
                .by_ref()
                .take(replicas)
                .map(|peer| (*peer, "Active"))
                .collect();
            (shard, placed)
        })
        .collect()
}

/// Qdrant's `ReplicaState::is_active`: a replica that can be the source of truth.
pub(super) fn is_active(state: &str) -> bool {
    matches!(state, "Active" | "ReshardingScaleDown")
}

pub(super) fn bad_request(message: impl std::fmt::Display) -> Failure {
    (StatusCode::BAD_REQUEST, format!("Bad request: {message}"))
}

impl State {
    /// The peer the fake answers as.
    pub(super) fn this_peer_id(&self) -> u64 {
        self.cluster
            .as_ref()
            .map_or(self.standalone_peer_id, |c| c.peer_id)
    }

    /// The peers known to consensus in their configured order, the answering peer included;
    /// outside cluster mode, the answering peer alone.
    pub(super) fn peer_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = Vec::new();
        if let Some(cluster) = &self.cluster {
            for (id, _) in &cluster.peers {
                if !ids.contains(id) {
                    ids.push(*id);
                }
            }
        }
        let me = self.this_peer_id();
        if !ids.contains(&me) {
            ids.push(me);
        }
        ids
    }
}

impl FakeCollection {
    /// `GET /collections/{c}/cluster` as peer `me` answers it (`Collection::cluster_info` in
    /// `lib/collection/src/collection/collection_ops.rs`).
    fn cluster_info(&self, me: u64) -> Value {
        let mut local = Vec::new();
        let mut remote = Vec::new();
        for (shard, replicas) in &self.shards {
            for (peer, state) in replicas {
                if *peer == me {
                    local.push(json!({
                        "shard_id": shard,
                        "points_count": self.points_of(*shard),
                        "state": state,
                    }));
                } else {
                    remote.push(json!({"shard_id": shard, "peer_id": peer, "state": state}));
                }
            }
        }
        let mut transfers: Vec<&FakeTransfer> = self.transfers.iter().collect();
        transfers.sort_by_key(|t| t.shard_id);
        let transfers: Vec<Value> = transfers.into_iter().map(FakeTransfer::info).collect();
        json!({
            "peer_id": me,
            "shard_count": self.shards.len(),
            "local_shards": local,
            "remote_shards": remote,
            "shard_transfers": transfers,
        })
    }

    /// Points of shard `shard`.
    pub(super) fn points_of(&self, shard: u32) -> u64 {
        self.shard_points.get(&shard).copied().unwrap_or(0)
    }

    /// Points of the whole collection: the sum over its shards.
    pub(super) fn points_count(&self) -> u64 {
        self.shards
            .keys()
            .map(|shard| self.points_of(*shard))
            .sum::<u64>()
            + self.unplaced_points
            + self.stored_points_count()
    }

    /// Spreads `points` evenly over the shards, the first ones getting the remainder.
    pub(super) fn set_points(&mut self, points: u64) {
        let shards: Vec<u32> = self.shards.keys().copied().collect();
        self.shard_points.clear();
        if shards.is_empty() {
            self.unplaced_points = points;
            return;
        }
        self.unplaced_points = 0;
        let count = u64::try_from(shards.len()).unwrap_or(u64::MAX);
        for (index, shard) in (0u64..).zip(shards) {
            let share = points / count + u64::from(index < points % count);
            self.shard_points.insert(shard, share);
        }
    }

    /// True when any shard has a replica on `peer`, whatever its state.
    pub(super) fn has_replica_on(&self, peer: u64) -> bool {
        self.shards
            .values()
            .any(|replicas| replicas.contains_key(&peer))
    }

    /// `move_shard` / `replicate_shard`: the checks of `do_update_collection_cluster`
    /// (`src/common/collections.rs`), then those applied through consensus
    /// (`validate_transfer` in `lib/collection/src/shards/transfer/helpers.rs`), then the
    /// start (`Collection::start_shard_transfer`): the target replica is created, or reset,
    /// in `Partial` (`stream_records`) or `Recovery` (`snapshot`, `wal_delta`).
    pub(super) fn start_transfer(
        &mut self,
        name: &str,
        peers: &[u64],
        transfer: FakeTransfer,
    ) -> Result<(), Failure> {
        use model::ShardTransferMethod as Method;

        let shard = transfer.shard_id;
        let Some(source) = self.shards.get(&shard) else {
            return Err(bad_request(format!(
                "Shard {shard} of {name} does not exist"
            )));
        };
        for peer in [transfer.to, transfer.from] {
            if !peers.contains(&peer) {
                return Err(bad_request(format!("Peer {peer} does not exist")));
            }
        }
        if !source.get(&transfer.from).is_some_and(|s| is_active(s)) {
            return Err(bad_request(format!(
                "Shard {shard} is not active on peer {}",
                transfer.from
            )));
        }
        let touches = |peer: u64| peer == transfer.from || peer == transfer.to;
        if let Some(other) = self
            .transfers
            .iter()
            .find(|t| t.shard_id == shard && (touches(t.from) || touches(t.to)))
        {
            return Err(bad_request(format!(
                "Shard {shard} is already involved in transfer {} -> {}",
                other.from, other.to
            )));
        }
        let initial_state = match (transfer.method, transfer.to_shard_id) {
            (Method::ReshardingStreamRecords, to_shard)
                if to_shard.is_none_or(|to| !self.shards.contains_key(&to)) =>
            {
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Service internal error: Destination shard {shard} does not exist"),
                ));
            }
            (Method::ReshardingStreamRecords, Some(to_shard)) if to_shard == shard => {
                return Err(bad_request(format!(
                    "Source and target shard must be different for resharding transfer, both are {to_shard}"
                )));
            }
            (Method::ReshardingStreamRecords, _) => {
                return Err(wrong_input(
                    "can't start resharding transfer, because resharding is not in progress",
                ));
            }
            (_, Some(to_shard)) => {
                return Err(bad_request(format!(
                    "Target shard {to_shard} can only be set for ReshardingStreamRecords or filtered streaming records transfers"
                )));
            }
            (Method::StreamRecords, None) => "Partial",
            (Method::Snapshot | Method::WalDelta, None) => "Recovery",
        };
        if let Some(target) = self.shards.get_mut(&transfer.target_shard()) {
            target.insert(transfer.to, initial_state);
        }
        self.transfers.push(transfer);
        Ok(())
    }

    /// A successful end (`Collection::finish_shard_transfer`): the target replica, if still
    /// there, becomes `Active`; then a move removes the source replica.
    pub(super) fn finish_transfer(&mut self, transfer: &FakeTransfer) {
        let target_active = match self
            .shards
            .get_mut(&transfer.target_shard())
            .and_then(|replicas| replicas.get_mut(&transfer.to))
        {
            Some(state) => {
                *state = "Active";
                true
            }
            None => false,
        };
        if !transfer.sync
            && target_active
            && let Some(replicas) = self.shards.get_mut(&transfer.shard_id)
        {
            replicas.remove(&transfer.from);
        }
        self.transfers.retain(|t| !t.same_key(transfer));
    }

    /// An aborted transfer (`Collection::abort_shard_transfer`): a replication's target
    /// replica becomes `Dead`, a move's is removed.
    pub(super) fn abort_transfer(&mut self, transfer: &FakeTransfer) {
        if let Some(replicas) = self.shards.get_mut(&transfer.target_shard()) {
            if transfer.sync {
                if let Some(state) = replicas.get_mut(&transfer.to) {
                    *state = "Dead";
                }
            } else {
                replicas.remove(&transfer.to);
            }
        }
        self.transfers.retain(|t| !t.same_key(transfer));
    }

    /// Finishes every transfer; returns how many.
    fn complete_transfers(&mut self) -> usize {
        let transfers = self.transfers.clone();
        for transfer in &transfers {
            self.finish_transfer(transfer);
        }
        transfers.len()
    }

    /// `abort_transfer`: 404 unless such a transfer runs (`check_transfer_exists`).
    fn abort_requested(&mut self, name: &str, key: &FakeTransfer) -> Result<(), Failure> {
        let Some(transfer) = self.transfers.iter().find(|t| t.same_key(key)).copied() else {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "Not found: Shard transfer {} -> {} for collection {name}:{} does not exist",
                    key.from, key.to, key.shard_id
                ),
            ));
        };
        self.abort_transfer(&transfer);
        Ok(())
    }

    /// `drop_replica`: the checks of `do_update_collection_cluster`, then
    /// `Collection::handle_replica_changes` (never the last replica, nor the last active
    /// one), which also aborts the transfers from or to that replica.
    fn drop_replica(
        &mut self,
        name: &str,
        peers: &[u64],
        shard: u32,
        peer: u64,
    ) -> Result<(), Failure> {
        let Some(replicas) = self.shards.get(&shard) else {
            return Err(bad_request(format!(
                "Shard {shard} of {name} does not exist"
            )));
        };
        if !peers.contains(&peer) {
            return Err(bad_request(format!("Peer {peer} does not exist")));
        }
        let Some(state) = replicas.get(&peer) else {
            return Err(bad_request(format!(
                "Peer {peer} has no replica of shard {shard}"
            )));
        };
        // `ReplicaSet::is_last_source_of_truth_replica`.
        let active: Vec<u64> = replicas
            .iter()
            .filter(|(_, s)| is_active(s))
            .map(|(p, _)| *p)
            .collect();
        let last_source_of_truth = if active.is_empty() {
            matches!(*state, "Initializing" | "Listener")
        } else {
            active == [peer]
        };
        if replicas.len() == 1 || last_source_of_truth {
            return Err(bad_request(format!(
                "Shard {shard} must have at least one active replica after removing {peer}"
            )));
        }
        let related: Vec<FakeTransfer> = self
            .transfers
            .iter()
            .filter(|t| t.involves(peer, shard))
            .copied()
            .collect();
        for transfer in &related {
            self.abort_transfer(transfer);
        }
        if let Some(replicas) = self.shards.get_mut(&shard) {
            replicas.remove(&peer);
        }
        Ok(())
    }

    /// `DELETE /cluster/peer/{peer}?force=true` (`Collection::remove_shards_at_peer`): aborts
    /// the transfers from or to the peer and removes its replicas.
    pub(super) fn remove_peer(&mut self, peer: u64) {
        let related: Vec<FakeTransfer> = self
            .transfers
            .iter()
            .filter(|t| t.from == peer || t.to == peer)
            .copied()
            .collect();
        for transfer in &related {
            self.abort_transfer(transfer);
        }
        for replicas in self.shards.values_mut() {
            replicas.remove(&peer);
        }
    }
}

pub(super) async fn get_collection_cluster(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(answering): Extension<Answering>,
    Path(name): Path<String>,
) -> Response {
    let started = Instant::now();
    let state = shared.lock();
    let me = answering.peer;
    let result = state
        .resolve(&name)
        .and_then(|real| {
            state
                .collections
                .get(&real)
                .ok_or_else(|| collection_not_found(&real))
        })
        .map(|collection| collection.cluster_info(me));
    reply(result, started)
}

/// `POST /collections/{c}/cluster` (`do_update_collection_cluster` in
/// `src/common/collections.rs`): decode (400) and validate (422) the operation, refuse outside
/// cluster mode, find the collection (404), then apply it.
pub(super) async fn update_collection_cluster(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = (|| -> Result<Value, Failure> {
        let operation: model::ClusterOperations = decode(&body)?;
        validated(operation.validate())?;
        let mut state = shared.lock();
        if state.cluster.is_none() {
            return Err(bad_request("Distributed mode disabled"));
        }
        let peers = state.peer_ids();
        let instantly = state.transfers_complete_instantly;
        let collection = state.resolve_mut(&name)?;
        match operation {
            model::ClusterOperations::MoveShard(op) => {
                let transfer = op.move_shard.transfer(false);
                collection.start_transfer(&name, &peers, transfer)?;
                if instantly {
                    collection.finish_transfer(&transfer);
                }
            }
            model::ClusterOperations::ReplicateShard(op) => {
                let transfer = op.replicate_shard.transfer(true);
                collection.start_transfer(&name, &peers, transfer)?;
                if instantly {
                    collection.finish_transfer(&transfer);
                }
            }
            model::ClusterOperations::AbortTransfer(op) => {
                collection.abort_requested(&name, &op.abort_transfer.key())?;
            }
            model::ClusterOperations::DropReplica(op) => {
                let model::Replica { shard_id, peer_id } = op.drop_replica;
                collection.drop_replica(&name, &peers, shard_id, peer_id)?;
            }
        }
        Ok(json!(true))
    })();
    reply(result, started)
}
