//! Zone-aware replica placement (`spec.zoneAware`): a pure decision over observed state.
//!
//! Inputs: the cluster's peers (pod ordinal and Qdrant peer id), the zone of each peer's pod
//! (its node's `spec.zoneTopologyKey` label, [`Zones`]) and every collection's placement
//! (`GET /collections/{c}/cluster` plus the replication factor, [`CollectionPlacement`]).
//! Output: at most one shard operation that spreads a shard over more zones, and what stands
//! in the way. Like the other planners it keeps no memory: a move that finished changed the
//! placement, a running one is listed in `shard_transfers` and waited for.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{CollectionPlacement, Peer, PeerId, ShardOp, Zones, zones_of};

/// Where the cluster stands with its zones, as [`plan_zone_balance`] found it; each variant
/// is one reason of condition `ZoneSpread`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneVerdict {
    /// Every shard that should be spread (two or more replicas, or a replication factor of
    /// two or more) has `Active` replicas in at least two zones.
    Spread,
    /// Some peer's zone is unknown (its pod is not scheduled, or its node lacks the label):
    /// nothing is moved until every peer has one.
    Unknown,
    /// Every peer is in one zone: there is nowhere to spread to.
    SingleZone,
    /// Some shards have all their replicas in one zone although another zone has a peer.
    InOneZone,
}

/// The outcome of [`plan_zone_balance`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonePlan {
    /// What the cluster's zones look like now (before [`ZonePlan::op`]).
    pub verdict: ZoneVerdict,
    /// The one operation to send now (`POST /collections/{c}/cluster`), if any.
    pub op: Option<ShardOp>,
    /// The zones the peers are in.
    pub zones: BTreeSet<String>,
    /// Each shard whose replicas are all in one zone, e.g.
    /// `collection articles shard 0: every replica in zone a`.
    pub in_one_zone: Vec<String>,
    /// What keeps a shard in one zone from being moved now (a running transfer, a replica
    /// that is not Active), or which peers have no zone.
    pub waits: Vec<String>,
}

impl ZonePlan {
    /// One line for the `ZoneSpread` condition's message.
    pub fn message(&self) -> String {
        let zones = self.zones.iter().cloned().collect::<Vec<_>>().join(", ");
        match self.verdict {
            ZoneVerdict::Spread => format!(
                "every shard with two or more replicas has replicas in at least two zones \
                 (zones: {zones})"
            ),
            ZoneVerdict::SingleZone => format!(
                "every peer is in zone {zones}: shard replicas cannot be spread over zones \
                 until pods run in another zone"
            ),
            ZoneVerdict::Unknown => super::plan::summarize(&self.waits),
            ZoneVerdict::InOneZone => {
                let mut parts = vec![];
                if let Some(op) = &self.op {
                    parts.push(format!("{op} (into another zone)"));
                }
                parts.extend(self.in_one_zone.iter().cloned());
                parts.extend(self.waits.iter().cloned());
                super::plan::summarize(&parts)
            }
        }
    }
}

/// The zones of `peers` from their pods' zones by ordinal (`by_ordinal`: pod ordinal ->
/// the zone label of its node); peers whose pod has no zone are left out.
pub fn zones_by_peer(peers: &[Peer], by_ordinal: &BTreeMap<u32, String>) -> Zones {
    peers
        .iter()
        .filter_map(|p| by_ordinal.get(&p.ordinal).map(|z| (p.peer_id, z.clone())))
        .collect()
}

/// Plans at most one shard operation that puts a replica of a shard whose replicas are all in
/// one zone into another zone.
///
/// A shard should be spread when it has two or more replicas (any state) or its collection's
/// replication factor is two or more; it is spread when its `Active` replicas are in two zones
/// or more (a replica receiving a transfer does not count yet). Rules, in order:
///
/// 1. A peer of `peers` without a zone in `zones`: [`ZoneVerdict::Unknown`], nothing moves
///    (a zone-blind move could make things worse).
/// 2. Fewer than two zones among the peers: [`ZoneVerdict::SingleZone`].
/// 3. Collections by name, shards by id; the first shard in one zone that can act gives the
///    one operation: its target is a peer in another zone without a replica of the shard
///    (fewest replicas of the collection, then fewest overall, then lowest ordinal).
///    - two or more replicas: **move** (`move_shard`) an `Active` one from the peer holding
///      the most replicas of the collection (then the most overall, then the highest
///      ordinal): the copy count stays, Qdrant drops the source only once the target is
///      `Active`;
///    - one replica but a replication factor of two or more: **replicate** it
///      (`replicate_shard`), which adds the copy the factor asks for.
///
///    A collection with a running transfer, a replica that is not settled (`Active` or
///    `Listener`) or a replica on a peer that is not in `peers` is waited for, not acted on.
/// 4. Some shard in one zone: [`ZoneVerdict::InOneZone`] (with or without an operation),
///    otherwise [`ZoneVerdict::Spread`].
pub fn plan_zone_balance(
    peers: &[Peer],
    zones: &Zones,
    placement: &BTreeMap<String, CollectionPlacement>,
) -> ZonePlan {
    let mut peers = peers.to_vec();
    peers.sort();
    peers.dedup_by_key(|p| p.ordinal);
    let mut plan = ZonePlan {
        verdict: ZoneVerdict::Spread,
        op: None,
        zones: peers
            .iter()
            .filter_map(|p| zones.get(&p.peer_id).cloned())
            .collect(),
        in_one_zone: vec![],
        waits: vec![],
    };
    let unknown: Vec<&Peer> = peers
        .iter()
        .filter(|p| !zones.contains_key(&p.peer_id))
        .collect();
    if !unknown.is_empty() {
        plan.verdict = ZoneVerdict::Unknown;
        plan.waits = unknown
            .iter()
            .map(|p| {
                format!(
                    "the zone of peer {} (pod ordinal {}) is unknown: its pod is not \
                     scheduled or its node has no zone label",
                    p.peer_id, p.ordinal
                )
            })
            .collect();
        return plan;
    }
    if plan.zones.len() < 2 {
        plan.verdict = ZoneVerdict::SingleZone;
        return plan;
    }
    let known: BTreeSet<PeerId> = peers.iter().map(|p| p.peer_id).collect();
    let mut totals: BTreeMap<PeerId, usize> = BTreeMap::new();
    for r in placement.values().flat_map(|c| c.shards.values()).flatten() {
        *totals.entry(r.peer).or_insert(0) += 1;
    }
    let total = |peer: PeerId| totals.get(&peer).copied().unwrap_or(0);
    for (name, c) in placement {
        let mut blocked: Option<String> = None;
        if !c.transfers.is_empty() {
            blocked = Some(c.transfer_waits(name).join("; "));
        } else if let Some((s, r)) = c
            .shards
            .iter()
            .find_map(|(s, rs)| rs.iter().find(|r| !r.state.is_settled()).map(|r| (s, r)))
        {
            blocked = Some(format!(
                "collection {name}: waiting for shard {s} to be Active on peer {} (state {})",
                r.peer, r.state
            ));
        } else if let Some((s, r)) = c
            .shards
            .iter()
            .find_map(|(s, rs)| rs.iter().find(|r| !known.contains(&r.peer)).map(|r| (s, r)))
        {
            blocked = Some(format!(
                "collection {name}: shard {s} has a replica on peer {}, which no pod of the \
                 cluster reports; not moving its shards",
                r.peer
            ));
        }
        let mut collection_waits = false;
        for (&shard_id, replicas) in &c.shards {
            if replicas.len() < 2 && c.replication_factor < 2 {
                continue;
            }
            // Only Active copies count: a replica still receiving its transfer in another
            // zone is not a copy there yet.
            let active: Vec<_> = replicas
                .iter()
                .filter(|r| r.state.is_active())
                .cloned()
                .collect();
            let covered = zones_of(&active, zones, None);
            if covered.len() >= 2 {
                continue;
            }
            // Without an Active copy, name a zone its other replicas are in. None known:
            // its replicas are on peers no pod reports (the collection waits, said above).
            let Some(zone) = covered
                .iter()
                .next()
                .copied()
                .or_else(|| zones_of(replicas, zones, None).into_iter().next())
            else {
                continue;
            };
            plan.in_one_zone.push(if covered.is_empty() {
                format!("collection {name} shard {shard_id}: no Active replica (zone {zone})")
            } else {
                format!("collection {name} shard {shard_id}: every replica in zone {zone}")
            });
            if plan.op.is_some() {
                continue;
            }
            if let Some(why) = &blocked {
                if !collection_waits {
                    plan.waits.push(why.clone());
                    collection_waits = true;
                }
                continue;
            }
            let target = peers
                .iter()
                .filter(|p| zones.get(&p.peer_id).is_some_and(|z| z != zone))
                .filter(|p| !replicas.iter().any(|r| r.peer == p.peer_id))
                .min_by_key(|p| (c.count_on(p.peer_id), total(p.peer_id), p.ordinal));
            let Some(target) = target else {
                continue;
            };
            let ordinal_of = |peer: PeerId| peers.iter().find(|p| p.peer_id == peer);
            let source = replicas
                .iter()
                .filter(|r| r.state.is_active())
                .max_by_key(|r| {
                    (
                        c.count_on(r.peer),
                        total(r.peer),
                        ordinal_of(r.peer).map(|p| p.ordinal),
                    )
                });
            let Some(source) = source else {
                plan.waits.push(format!(
                    "collection {name}: shard {shard_id} has no Active replica to copy into \
                     another zone"
                ));
                continue;
            };
            plan.op = Some(if replicas.len() >= 2 {
                ShardOp::Move {
                    collection: name.clone(),
                    shard_id,
                    from: source.peer,
                    to: target.peer_id,
                }
            } else {
                ShardOp::Replicate {
                    collection: name.clone(),
                    shard_id,
                    from: source.peer,
                    to: target.peer_id,
                }
            });
        }
    }
    if !plan.in_one_zone.is_empty() {
        plan.verdict = ZoneVerdict::InOneZone;
    }
    plan
}
