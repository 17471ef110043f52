//! Scale-down and rebalance planning: exact steps for the issue's scenarios, refusals, waits,
//! resuming mid-plan, determinism, and an exhaustive sweep over small placements driven
//! through a simulator that enforces Qdrant's own validation rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cluster_controller::day2::plan::{
    CollectionPlacement, Peer, PeerId, Refusal, Replica, ReplicaState, ScaleDownStep, ShardOp,
    Transfer, plan_rebalance, plan_scale_down,
};
use serde_json::json;

use ReplicaState::{Active, Dead, Listener, Partial, Recovery};
use common::placement::{Placement, id, mv, peers, placement, rep};

fn consensus(n: u32) -> BTreeSet<PeerId> {
    (0..n).map(id).collect()
}

/// A collection with `rf` and shards given as `(shard, [(peer, state)])`.
fn col(rf: u32, shards: &[(u32, &[(PeerId, ReplicaState)])]) -> CollectionPlacement {
    CollectionPlacement {
        replication_factor: rf,
        shards: shards
            .iter()
            .map(|(s, rs)| {
                (
                    *s,
                    rs.iter()
                        .map(|(p, st)| Replica::new(*p, st.clone()))
                        .collect(),
                )
            })
            .collect(),
        transfers: vec![],
    }
}

fn drop_(c: &str, shard_id: u32, peer: PeerId) -> ShardOp {
    ShardOp::DropReplica {
        collection: c.to_owned(),
        shard_id,
        peer,
    }
}

fn waits(step: &ScaleDownStep) -> &[String] {
    match step {
        ScaleDownStep::Wait(w) => w,
        other => panic!("expected Wait, got {other:?}"),
    }
}

fn refusals(step: &ScaleDownStep) -> &[Refusal] {
    match step {
        ScaleDownStep::Refuse(r) => r,
        other => panic!("expected Refuse, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// A small Qdrant: applies operations the way Qdrant v1.18 does and panics on anything Qdrant
// would refuse (so a planner bug fails the test, not a cluster).

#[derive(Clone, Debug)]
struct Sim {
    peers: Vec<Peer>,
    consensus: BTreeSet<PeerId>,
    replicas: u32,
    placement: Placement,
}

impl Sim {
    fn new(n: u32, placement: Placement) -> Self {
        Self {
            peers: peers(n),
            consensus: consensus(n),
            replicas: n,
            placement,
        }
    }

    fn plan(&self, target: u32) -> ScaleDownStep {
        plan_scale_down(
            &self.peers,
            &self.consensus,
            self.replicas,
            target,
            &self.placement,
        )
    }

    /// `POST /collections/{c}/cluster`: validation as in Qdrant (`validate_transfer`,
    /// `update_shard_replica_changes`), then the start of the transfer (target replica in
    /// `Recovery`, the snapshot method's initial state) or the drop.
    fn start(&mut self, op: &ShardOp) {
        let c = self.placement.get_mut(op.collection()).unwrap();
        let replicas = c.shards.get_mut(&op.shard_id()).unwrap();
        match op {
            ShardOp::Move { from, to, .. } | ShardOp::Replicate { from, to, .. } => {
                assert!(
                    self.consensus.contains(to),
                    "{op}: Peer {to} does not exist"
                );
                assert!(
                    replicas
                        .iter()
                        .any(|r| r.peer == *from && r.state.is_transfer_source()),
                    "{op}: Shard is not active on peer {from}"
                );
                assert!(
                    !c.transfers
                        .iter()
                        .any(|t| t.shard_id == op.shard_id()
                            && (t.involves(*from) || t.involves(*to))),
                    "{op}: Shard is already involved in a transfer"
                );
                assert!(
                    !replicas.iter().any(|r| r.peer == *to),
                    "{op}: the target already holds the shard (would be reset to Recovery)"
                );
                replicas.push(Replica::new(*to, Recovery));
                c.transfers.push(match op {
                    ShardOp::Move { .. } => Transfer::moving(op.shard_id(), *from, *to),
                    _ => Transfer::replicating(op.shard_id(), *from, *to),
                });
            }
            ShardOp::DropReplica { peer, .. } => {
                let others_active = replicas
                    .iter()
                    .any(|r| r.peer != *peer && r.state.is_active());
                assert!(
                    replicas.len() > 1 && others_active,
                    "{op}: Shard must have at least one active replica after removing {peer}"
                );
                let before = replicas.len();
                replicas.retain(|r| r.peer != *peer);
                assert_eq!(replicas.len() + 1, before, "{op}: no replica on {peer}");
            }
        }
    }

    /// Every running transfer finishes: the target becomes Active; a move drops the source.
    fn finish_transfers(&mut self) {
        for c in self.placement.values_mut() {
            for t in std::mem::take(&mut c.transfers) {
                let rs = c.shards.get_mut(&t.shard_id).unwrap();
                for r in rs.iter_mut().filter(|r| r.peer == t.to) {
                    r.state = Active;
                }
                if !t.sync {
                    rs.retain(|r| r.peer != t.from);
                }
            }
        }
    }

    /// Qdrant's automatic recovery of `Dead` replicas from an `Active` copy, on the peers
    /// that stay (the leaving pods are taken to be broken: worst case). True if anything
    /// changed.
    fn recover(&mut self, target: u32) -> bool {
        let mut changed = false;
        for c in self.placement.values_mut() {
            for rs in c.shards.values_mut() {
                if !rs.iter().any(|r| r.state == Active) {
                    continue;
                }
                for r in rs.iter_mut() {
                    if r.state == Dead && r.peer < id(target) {
                        r.state = Active;
                        changed = true;
                    }
                }
            }
        }
        changed
    }

    /// `DELETE /cluster/peer/{id}` without force.
    fn remove_peer(&mut self, peer: PeerId) {
        let has_shards = self
            .placement
            .values()
            .flat_map(|c| c.shards.values())
            .flatten()
            .any(|r| r.peer == peer);
        assert!(
            !has_shards,
            "Cannot remove peer {peer} as there are shards on it"
        );
        assert!(self.consensus.remove(&peer), "peer {peer} not in consensus");
    }

    fn shrink(&mut self, replicas: u32) {
        assert_eq!(replicas + 1, self.replicas, "shrink by exactly one pod");
        let leaving = self.peers.iter().find(|p| p.ordinal == replicas).unwrap();
        assert!(
            !self.consensus.contains(&leaving.peer_id),
            "shrinking pod {replicas} while peer {} is still in consensus",
            leaving.peer_id
        );
        self.replicas = replicas;
        self.peers.retain(|p| p.ordinal < replicas);
    }

    /// Drives the plan to the end. Returns every non-Wait step. After each Issue the plan is
    /// asked again while the transfers run: it must wait and issue nothing for those
    /// collections (no duplicates).
    fn run(&mut self, target: u32) -> Vec<ScaleDownStep> {
        let mut steps = vec![];
        for _ in 0..200 {
            let step = self.plan(target);
            match &step {
                ScaleDownStep::Issue(ops) => {
                    let leaving = id(self.replicas - 1);
                    let cols: BTreeSet<&str> = ops.iter().map(ShardOp::collection).collect();
                    assert_eq!(cols.len(), ops.len(), "one op per collection: {ops:?}");
                    for op in ops {
                        match op {
                            ShardOp::Move { from, .. } => assert_eq!(*from, leaving),
                            ShardOp::DropReplica { peer, .. } => assert_eq!(*peer, leaving),
                            ShardOp::Replicate { .. } => {}
                        }
                        self.start(op);
                    }
                    let again = self.plan(target);
                    if let ScaleDownStep::Issue(more) = &again {
                        for op in more {
                            assert!(
                                self.placement[op.collection()].transfers.is_empty(),
                                "{op} issued while a transfer runs in its collection"
                            );
                        }
                    }
                    self.finish_transfers();
                }
                ScaleDownStep::Wait(w) => {
                    assert!(
                        self.recover(target),
                        "waiting for something Qdrant will not do: {w:?}"
                    );
                }
                ScaleDownStep::RemovePeer { peer_id, ordinal } => {
                    assert_eq!(*ordinal, self.replicas - 1, "highest ordinal first");
                    self.remove_peer(*peer_id);
                }
                ScaleDownStep::Shrink { replicas } => self.shrink(*replicas),
                ScaleDownStep::Refuse(_) => {
                    steps.push(step);
                    return steps;
                }
                ScaleDownStep::Done => {
                    steps.push(step);
                    return steps;
                }
            }
            steps.push(step);
        }
        panic!("no end after 200 steps: {steps:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The issue's scenarios

/// 3 -> 2 with an RF1 and an RF2 collection: exact operations and order.
#[test]
fn three_to_two_with_rf1_and_rf2_collections() {
    let (p0, p1, p2) = (id(0), id(1), id(2));
    let mut sim = Sim::new(
        3,
        placement(vec![
            (
                "a",
                col(
                    1,
                    &[
                        (0, &[(p0, Active)]),
                        (1, &[(p1, Active)]),
                        (2, &[(p2, Active)]),
                    ],
                ),
            ),
            (
                "b",
                col(
                    2,
                    &[
                        (0, &[(p0, Active), (p1, Active)]),
                        (1, &[(p1, Active), (p2, Active)]),
                        (2, &[(p2, Active), (p0, Active)]),
                    ],
                ),
            ),
        ]),
    );
    let steps = sim.run(2);
    assert_eq!(
        steps,
        vec![
            // a: the only copy of shard 2 moves (both peers hold 1 of a and 3 overall: ordinal
            // 0 wins); b: shard 1 can only go to peer 100, which lacks it.
            ScaleDownStep::Issue(vec![mv("a", 2, p2, p0), mv("b", 1, p2, p0)]),
            // b shard 2 lacks only on peer 101.
            ScaleDownStep::Issue(vec![mv("b", 2, p2, p1)]),
            ScaleDownStep::RemovePeer {
                peer_id: p2,
                ordinal: 2
            },
            ScaleDownStep::Shrink { replicas: 2 },
            ScaleDownStep::Done,
        ]
    );
    // Every RF2 shard still has two Active copies, on the remaining peers.
    for rs in sim.placement["b"].shards.values() {
        let mut on: Vec<PeerId> = rs.iter().map(|r| r.peer).collect();
        on.sort_unstable();
        assert_eq!(on, vec![p0, p1]);
        assert!(rs.iter().all(|r| r.state == Active));
    }
    assert_eq!(sim.placement["a"].shards.len(), 3);
}

/// The operations render Qdrant's `POST /collections/{c}/cluster` bodies.
#[test]
fn operations_render_qdrant_bodies() {
    assert_eq!(
        mv("a", 3, 104, 100).body(),
        json!({"move_shard": {"shard_id": 3, "from_peer_id": 104, "to_peer_id": 100}})
    );
    assert_eq!(
        rep("a", 3, 101, 102).body(),
        json!({"replicate_shard": {"shard_id": 3, "from_peer_id": 101, "to_peer_id": 102}})
    );
    assert_eq!(
        drop_("a", 3, 104).body(),
        json!({"drop_replica": {"shard_id": 3, "peer_id": 104}})
    );
    assert_eq!(mv("articles", 3, 104, 100).collection(), "articles");
    assert_eq!(
        mv("articles", 3, 104, 100).to_string(),
        "move shard 3 of collection articles from peer 104 to peer 100"
    );
}

/// 5 -> 2: one peer at a time, highest ordinal first; remove and shrink between peers.
#[test]
fn five_to_two_one_peer_at_a_time_highest_first() {
    let shards: Vec<(u32, Vec<(PeerId, ReplicaState)>)> =
        (0..5).map(|s| (s, vec![(id(s), Active)])).collect();
    let shards: Vec<(u32, &[(PeerId, ReplicaState)])> =
        shards.iter().map(|(s, r)| (*s, r.as_slice())).collect();
    let mut sim = Sim::new(5, placement(vec![("c", col(1, &shards))]));
    let steps = sim.run(2);
    assert_eq!(
        steps,
        vec![
            ScaleDownStep::Issue(vec![mv("c", 4, id(4), id(0))]),
            ScaleDownStep::RemovePeer {
                peer_id: id(4),
                ordinal: 4
            },
            ScaleDownStep::Shrink { replicas: 4 },
            ScaleDownStep::Issue(vec![mv("c", 3, id(3), id(1))]),
            ScaleDownStep::RemovePeer {
                peer_id: id(3),
                ordinal: 3
            },
            ScaleDownStep::Shrink { replicas: 3 },
            ScaleDownStep::Issue(vec![mv("c", 2, id(2), id(0))]),
            ScaleDownStep::RemovePeer {
                peer_id: id(2),
                ordinal: 2
            },
            ScaleDownStep::Shrink { replicas: 2 },
            ScaleDownStep::Done,
        ]
    );
}

/// A single-replica shard is moved, never dropped, even when other shards are replicated.
#[test]
fn single_replica_shard_is_moved_not_dropped() {
    let p = placement(vec![("solo", col(1, &[(0, &[(id(2), Active)])]))]);
    let step = plan_scale_down(&peers(3), &consensus(3), 3, 2, &p);
    assert_eq!(
        step,
        ScaleDownStep::Issue(vec![mv("solo", 0, id(2), id(0))])
    );
}

/// A copy beyond the replication factor is moved, not dropped, while a remaining peer lacks
/// the shard: scale-down keeps the number of copies the user has.
#[test]
fn extra_copy_is_kept_when_a_remaining_peer_lacks_the_shard() {
    let p = placement(vec![(
        "c",
        col(1, &[(0, &[(id(0), Active), (id(2), Active)])]),
    )]);
    let step = plan_scale_down(&peers(3), &consensus(3), 3, 2, &p);
    assert_eq!(step, ScaleDownStep::Issue(vec![mv("c", 0, id(2), id(1))]));
}

/// A replica whose shard every remaining peer already holds (Active, RF met) is dropped.
#[test]
fn replica_on_every_remaining_peer_is_dropped() {
    let all: &[(PeerId, ReplicaState)] = &[(id(0), Active), (id(1), Active), (id(2), Active)];
    let p = placement(vec![("c", col(2, &[(0, all)]))]);
    let step = plan_scale_down(&peers(3), &consensus(3), 3, 2, &p);
    assert_eq!(step, ScaleDownStep::Issue(vec![drop_("c", 0, id(2))]));
}

/// RF above the target size: refused, naming the collection; nothing moves, not even for the
/// collections that would fit.
#[test]
fn replication_factor_above_target_is_refused_naming_the_collection() {
    let three: &[(PeerId, ReplicaState)] = &[(id(0), Active), (id(1), Active), (id(2), Active)];
    let p = placement(vec![
        ("big", col(3, &[(0, three)])),
        ("small", col(1, &[(0, &[(id(2), Active)])])),
    ]);
    let step = plan_scale_down(&peers(3), &consensus(3), 3, 2, &p);
    let r = refusals(&step);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].collection.as_deref(), Some("big"));
    assert_eq!(r[0].shard_id, None);
    assert!(
        r[0].reason
            .contains("replication factor 3 needs at least 3 peers but the target size is 2"),
        "{}",
        r[0].reason
    );
    assert!(
        step.message()
            .starts_with("collection big: replication factor 3")
    );
}

/// A target of zero leaves nowhere to put the data.
#[test]
fn target_zero_is_refused() {
    let p = placement(vec![("c", col(1, &[(0, &[(id(0), Active)])]))]);
    let step = plan_scale_down(&peers(1), &consensus(1), 1, 0, &p);
    let r = refusals(&step);
    assert_eq!(r[0].collection, None);
    assert!(r[0].reason.contains("no peer to hold the data"));
}

#[test]
fn nothing_to_do_when_not_shrinking() {
    let p = placement(vec![("c", col(1, &[(0, &[(id(0), Active)])]))]);
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(3), 3, 3, &p),
        ScaleDownStep::Done
    );
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(3), 3, 5, &p),
        ScaleDownStep::Done
    );
}

/// A collection living only on leaving peers ends up on the remaining ones, intact.
#[test]
fn collection_only_on_leaving_peers_moves_to_remaining_peers() {
    let p = placement(vec![(
        "edge",
        col(
            1,
            &[
                (0, &[(id(3), Active)]),
                (1, &[(id(4), Active)]),
                (2, &[(id(4), Active)]),
            ],
        ),
    )]);
    let mut sim = Sim::new(5, p);
    assert_eq!(
        sim.plan(2),
        ScaleDownStep::Issue(vec![mv("edge", 1, id(4), id(0))])
    );
    sim.run(2);
    let shards = &sim.placement["edge"].shards;
    assert_eq!(shards.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    for rs in shards.values() {
        assert_eq!(rs.len(), 1);
        assert!([id(0), id(1)].contains(&rs[0].peer), "{rs:?}");
        assert_eq!(rs[0].state, Active);
    }
}

/// A transfer already running in a collection: wait for it, issue nothing there (no second
/// transfer), while another collection proceeds.
#[test]
fn running_transfer_waits_and_is_not_issued_twice() {
    let mut a = col(
        1,
        &[
            (0, &[(id(0), Active)]),
            (1, &[(id(2), Active), (id(0), Recovery)]),
            (2, &[(id(2), Active)]),
        ],
    );
    a.transfers.push(Transfer::moving(1, id(2), id(0)));
    let b = col(1, &[(0, &[(id(2), Active)])]);
    let p = placement(vec![("a", a.clone()), ("b", b)]);
    let step = plan_scale_down(&peers(3), &consensus(3), 3, 2, &p);
    assert_eq!(step, ScaleDownStep::Issue(vec![mv("b", 0, id(2), id(1))]));

    let only_a = placement(vec![("a", a)]);
    let step = plan_scale_down(&peers(3), &consensus(3), 3, 2, &only_a);
    assert_eq!(
        waits(&step),
        ["waiting for the move of shard 1 of collection a from peer 102 to peer 100 to finish"]
    );
}

/// A transfer (e.g. Qdrant recovering a replica) that merely touches the leaving peer also
/// holds its collection back.
#[test]
fn transfer_touching_the_leaving_peer_waits() {
    let mut a = col(2, &[(0, &[(id(0), Active), (id(2), Partial)])]);
    a.transfers.push(Transfer::replicating(0, id(0), id(2)));
    let p = placement(vec![("a", a)]);
    let step = plan_scale_down(&peers(3), &consensus(3), 3, 2, &p);
    assert_eq!(
        waits(&step),
        [
            "waiting for the replication of shard 0 of collection a from peer 100 to peer 102 \
             to finish"
        ]
    );
}

/// A restarted controller: the placement shows how far the last one got.
#[test]
fn restart_mid_plan_resumes_from_observed_placement() {
    // The first move finished (shard 2 now Active on 100, gone from 102): next shard.
    let p = placement(vec![(
        "a",
        col(
            1,
            &[
                (0, &[(id(0), Active)]),
                (1, &[(id(2), Active)]),
                (2, &[(id(0), Active)]),
            ],
        ),
    )]);
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(3), 3, 2, &p),
        ScaleDownStep::Issue(vec![mv("a", 1, id(2), id(1))])
    );

    // A replication made for a Dead replica finished: now drop the Dead one.
    let p = placement(vec![(
        "a",
        col(
            2,
            &[(0, &[(id(0), Active), (id(1), Active), (id(2), Dead)])],
        ),
    )]);
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(3), 3, 2, &p),
        ScaleDownStep::Issue(vec![drop_("a", 0, id(2))])
    );

    // That replication was aborted (Qdrant marks the target Dead and recovers it): wait.
    let p = placement(vec![(
        "a",
        col(2, &[(0, &[(id(0), Active), (id(1), Dead), (id(2), Dead)])]),
    )]);
    assert_eq!(
        waits(&plan_scale_down(&peers(3), &consensus(3), 3, 2, &p)),
        [
            "collection a: waiting for shard 0 to be Active on peer 101 (state Dead) before \
             moving it off peer 102"
        ]
    );

    // A move that was aborted left the source as it was: the move is issued afresh.
    let p = placement(vec![("a", col(1, &[(0, &[(id(2), Active)])]))]);
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(3), 3, 2, &p),
        ScaleDownStep::Issue(vec![mv("a", 0, id(2), id(0))])
    );

    // Removed from consensus but the StatefulSet not yet shrunk: shrink.
    let p = placement(vec![("a", col(1, &[(0, &[(id(0), Active)])]))]);
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(2), 3, 2, &p),
        ScaleDownStep::Shrink { replicas: 2 }
    );
}

/// A peer that holds nothing: remove it from consensus, then shrink.
#[test]
fn drained_peer_is_removed_then_shrunk() {
    let p = placement(vec![("a", col(1, &[(0, &[(id(0), Active)])]))]);
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(3), 3, 2, &p),
        ScaleDownStep::RemovePeer {
            peer_id: id(2),
            ordinal: 2
        }
    );
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(2), 3, 2, &p),
        ScaleDownStep::Shrink { replicas: 2 }
    );
    // No collections at all.
    assert_eq!(
        plan_scale_down(&peers(3), &consensus(3), 3, 2, &Placement::new()),
        ScaleDownStep::RemovePeer {
            peer_id: id(2),
            ordinal: 2
        }
    );
}

/// Non-Active replicas: transitional ones are waited for, Dead ones replaced or dropped,
/// unrecoverable ones refused.
#[test]
fn non_active_replicas_wait_replace_or_refuse() {
    let plan = |p: &Placement| plan_scale_down(&peers(3), &consensus(3), 3, 2, p);

    // Partial on the leaving peer, nothing else: wait for it.
    let p = placement(vec![("a", col(1, &[(0, &[(id(2), Partial)])]))]);
    assert_eq!(
        waits(&plan(&p)),
        ["collection a: waiting for shard 0 on leaving peer 102 to settle (state Partial)"]
    );

    // Partial on a remaining peer: wait for it before moving the leaving copy.
    let p = placement(vec![(
        "a",
        col(2, &[(0, &[(id(0), Partial), (id(2), Active)])]),
    )]);
    assert_eq!(
        waits(&plan(&p)),
        [
            "collection a: waiting for shard 0 to be Active on peer 100 (state Partial) before \
             moving it off peer 102"
        ]
    );

    // Dead on the leaving peer, RF met by the remaining peers: drop it.
    let p = placement(vec![(
        "a",
        col(1, &[(0, &[(id(0), Active), (id(2), Dead)])]),
    )]);
    assert_eq!(plan(&p), ScaleDownStep::Issue(vec![drop_("a", 0, id(2))]));

    // Dead on the leaving peer, RF2 with one Active copy: replicate it first.
    let p = placement(vec![(
        "a",
        col(2, &[(0, &[(id(0), Active), (id(2), Dead)])]),
    )]);
    assert_eq!(
        plan(&p),
        ScaleDownStep::Issue(vec![rep("a", 0, id(0), id(1))])
    );

    // Dead everywhere: nothing can copy it and Qdrant keeps the last replica: refuse.
    let p = placement(vec![("a", col(1, &[(0, &[(id(1), Dead), (id(2), Dead)])]))]);
    let step = plan(&p);
    let r = refusals(&step);
    assert_eq!(
        (r[0].collection.as_deref(), r[0].shard_id),
        (Some("a"), Some(0))
    );
    assert!(
        r[0].reason
            .starts_with("no replica is Active (peer 101 Dead, peer 102 Dead)"),
        "{}",
        r[0].reason
    );

    // A Listener on the leaving peer cannot be transferred or re-created: refuse.
    let p = placement(vec![(
        "a",
        col(1, &[(0, &[(id(0), Active), (id(2), Listener)])]),
    )]);
    let step = plan(&p);
    let r = refusals(&step);
    assert_eq!(r[0].shard_id, Some(0));
    assert!(r[0].reason.contains("Listener"), "{}", r[0].reason);

    // A state this operator does not know: refuse rather than guess.
    let p = placement(vec![(
        "a",
        col(
            1,
            &[(
                0,
                &[
                    (id(0), Active),
                    (id(2), ReplicaState::Other("Frozen".into())),
                ],
            )],
        ),
    )]);
    let step = plan(&p);
    assert!(refusals(&step)[0].reason.contains("state Frozen"));

    // A Listener on a remaining peer is settled: it does not hold the move back.
    let p = placement(vec![(
        "a",
        col(1, &[(0, &[(id(0), Listener), (id(2), Active)])]),
    )]);
    assert_eq!(
        plan(&p),
        ScaleDownStep::Issue(vec![mv("a", 0, id(2), id(1))])
    );
}

/// Refusals cover every leaving peer up front: nothing moves off pod 4 when pod 3 holds an
/// unrecoverable shard.
#[test]
fn refusal_on_a_later_leaving_peer_blocks_from_the_start() {
    let p = placement(vec![
        ("ok", col(1, &[(0, &[(id(4), Active)])])),
        ("broken", col(1, &[(7, &[(id(3), Dead)])])),
    ]);
    let step = plan_scale_down(&peers(5), &consensus(5), 5, 2, &p);
    let r = refusals(&step);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].collection.as_deref(), r[0].shard_id),
        (Some("broken"), Some(7))
    );
    assert!(r[0].to_string().starts_with("collection broken shard 7: "));
}

/// Pods that did not report their peer id.
#[test]
fn unknown_peer_ids() {
    let p = placement(vec![("a", col(1, &[(0, &[(id(2), Active)])]))]);

    // A remaining pod is unknown: no target can be trusted yet.
    let some: Vec<Peer> = peers(3).into_iter().filter(|p| p.ordinal != 1).collect();
    assert_eq!(
        waits(&plan_scale_down(&some, &consensus(3), 3, 2, &p)),
        [
            "waiting for pod ordinal 1 to report its peer id (GET /cluster) before moving shards to it"
        ]
    );

    // A remaining peer not in consensus.
    let partial: BTreeSet<PeerId> = [id(0), id(2)].into();
    assert_eq!(
        waits(&plan_scale_down(&peers(3), &partial, 3, 2, &p)),
        ["waiting for peer 101 (pod ordinal 1) to join consensus before moving shards to it"]
    );

    // The leaving pod is unknown and peer 102 (in consensus, holding a shard) matches no pod.
    let without_leaving = peers(2);
    let step = plan_scale_down(&without_leaving, &consensus(3), 3, 2, &p);
    assert!(
        waits(&step)[0].contains("peers 102 match no pod"),
        "{step:?}"
    );

    // The leaving pod is unknown but every peer is accounted for: it never joined; shrink.
    let p = placement(vec![("a", col(1, &[(0, &[(id(0), Active)])]))]);
    assert_eq!(
        plan_scale_down(&without_leaving, &consensus(2), 3, 2, &p),
        ScaleDownStep::Shrink { replicas: 2 }
    );
}

/// Shuffled inputs give the same step; repeated calls agree.
#[test]
fn planning_is_deterministic() {
    let p = placement(vec![
        (
            "a",
            col(
                2,
                &[
                    (0, &[(id(0), Active), (id(3), Active)]),
                    (1, &[(id(3), Active), (id(1), Active)]),
                ],
            ),
        ),
        (
            "b",
            col(1, &[(0, &[(id(3), Active)]), (1, &[(id(2), Active)])]),
        ),
    ]);
    let mut shuffled = p.clone();
    for c in shuffled.values_mut() {
        for rs in c.shards.values_mut() {
            rs.reverse();
        }
    }
    let mut reversed = peers(4);
    reversed.reverse();
    let first = plan_scale_down(&peers(4), &consensus(4), 4, 2, &p);
    assert_eq!(
        first,
        ScaleDownStep::Issue(vec![mv("a", 0, id(3), id(1)), mv("b", 0, id(3), id(0))])
    );
    for _ in 0..3 {
        assert_eq!(plan_scale_down(&peers(4), &consensus(4), 4, 2, &p), first);
        assert_eq!(
            plan_scale_down(&reversed, &consensus(4), 4, 2, &shuffled),
            first
        );
    }

    // Several running transfers are reported in a fixed order whatever their input order.
    let mut c = col(1, &[(0, &[(id(2), Active)]), (1, &[(id(2), Active)])]);
    c.transfers = vec![
        Transfer::moving(1, id(2), id(0)),
        Transfer::moving(0, id(2), id(1)),
    ];
    let mut c2 = c.clone();
    c2.transfers.reverse();
    let w1 = plan_scale_down(&peers(3), &consensus(3), 3, 2, &placement(vec![("c", c)]));
    let w2 = plan_scale_down(&peers(3), &consensus(3), 3, 2, &placement(vec![("c", c2)]));
    assert_eq!(w1, w2);
    assert!(waits(&w1)[0].contains("shard 0"));
}

/// Exhaustive sweep: one or two collections of two shards, every replica set of every shard
/// over 4 peers, RF 1 and 2, every smaller target. Through the simulator (which panics on any
/// operation Qdrant would refuse): either refused at once because RF exceeds the target, or
/// done with every shard kept with `min(its copies, target)` Active copies on the remaining
/// peers.
#[test]
fn exhaustive_small_placements_never_lose_a_shard() {
    let n = 4u32;
    let subsets: Vec<Vec<PeerId>> = (1u32..(1 << n))
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).map(id).collect())
        .collect();
    let mut runs = 0;
    for rf in 1..=2u32 {
        for s0 in &subsets {
            for s1 in &subsets {
                let shards: BTreeMap<u32, Vec<Replica>> = [(0, s0), (1, s1)]
                    .into_iter()
                    .map(|(s, ps)| (s, ps.iter().map(|&p| Replica::new(p, Active)).collect()))
                    .collect();
                let c = CollectionPlacement {
                    replication_factor: rf,
                    shards,
                    transfers: vec![],
                };
                // A second collection mirrored onto the other peers shares the step.
                let mut mirror = c.clone();
                for rs in mirror.shards.values_mut() {
                    for r in rs.iter_mut() {
                        r.peer = id(n - 1 - u32::try_from(r.peer - 100).unwrap());
                    }
                }
                for target in 1..n {
                    for p in [
                        placement(vec![("c", c.clone())]),
                        placement(vec![("c", c.clone()), ("m", mirror.clone())]),
                    ] {
                        let mut sim = Sim::new(n, p.clone());
                        let steps = sim.run(target);
                        runs += 1;
                        if rf > target {
                            assert!(
                                matches!(steps.as_slice(), [ScaleDownStep::Refuse(_)]),
                                "rf {rf} target {target}: {steps:?}"
                            );
                            continue;
                        }
                        assert_eq!(steps.last(), Some(&ScaleDownStep::Done));
                        assert_eq!(sim.replicas, target);
                        assert_eq!(sim.consensus, consensus(target));
                        for (name, before) in &p {
                            for (s, rs) in &before.shards {
                                let after = &sim.placement[name].shards[s];
                                let want = rs.len().min(target as usize);
                                assert_eq!(
                                    after.len(),
                                    want,
                                    "{name}/{s} {rs:?} -> {after:?} (target {target})"
                                );
                                assert!(
                                    after
                                        .iter()
                                        .all(|r| r.state == Active && r.peer < id(target))
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(runs, 2 * 15 * 15 * 3 * 2);
}

/// Exhaustive sweep with broken replicas: every replica set of two shards over 4 peers with
/// every replica Active or Dead, RF 1 and 2, every smaller target. Refused exactly when RF
/// exceeds the target or a shard on a leaving peer has no Active copy; otherwise done without
/// an operation Qdrant would refuse, and every shard that was on a leaving peer keeps at least
/// `min(RF, its replicas)` Active copies, all on the remaining peers, and gains no more than
/// it needs; shards that were not on leaving peers are left alone.
#[test]
fn exhaustive_with_dead_replicas_refuses_or_keeps_every_shard() {
    let n = 4u32;
    // Each peer: no replica, Active or Dead.
    let mut layouts: Vec<Vec<Replica>> = vec![];
    for code in 1..3u32.pow(n) {
        let mut rs = vec![];
        let mut c = code;
        for o in 0..n {
            match c % 3 {
                1 => rs.push(Replica::new(id(o), Active)),
                2 => rs.push(Replica::new(id(o), Dead)),
                _ => {}
            }
            c /= 3;
        }
        layouts.push(rs);
    }
    let mut outcomes = BTreeMap::<&str, usize>::new();
    for rf in 1..=2u32 {
        for l0 in &layouts {
            for l1 in &layouts {
                let c = CollectionPlacement {
                    replication_factor: rf,
                    shards: [(0, l0.clone()), (1, l1.clone())].into(),
                    transfers: vec![],
                };
                for target in 1..n {
                    let before = c.clone();
                    let mut sim = Sim::new(n, placement(vec![("c", c.clone())]));
                    let steps = sim.run(target);
                    let unrecoverable = before.shards.values().any(|rs| {
                        rs.iter().any(|r| r.peer >= id(target))
                            && !rs.iter().any(|r| r.state == Active)
                    });
                    if rf > target || unrecoverable {
                        assert!(
                            matches!(steps.as_slice(), [ScaleDownStep::Refuse(_)]),
                            "rf {rf} target {target} {before:?}: {steps:?}"
                        );
                        *outcomes.entry("refused").or_default() += 1;
                        continue;
                    }
                    assert_eq!(steps.last(), Some(&ScaleDownStep::Done), "{before:?}");
                    *outcomes.entry("done").or_default() += 1;
                    for (s, rs) in &before.shards {
                        let after = &sim.placement["c"].shards[s];
                        assert!(after.iter().all(|r| r.peer < id(target)), "{after:?}");
                        if !rs.iter().any(|r| r.peer >= id(target)) {
                            // Nothing on leaving peers: the planner leaves the shard alone.
                            let peers =
                                |v: &[Replica]| v.iter().map(|r| r.peer).collect::<Vec<_>>();
                            assert_eq!(peers(after), peers(rs));
                            continue;
                        }
                        let active = after.iter().filter(|r| r.state == Active).count();
                        let floor = rs.len().min(rf as usize);
                        assert!(
                            active >= floor,
                            "shard {s} {rs:?} -> {after:?} (rf {rf} target {target})"
                        );
                        assert!(
                            after.len() <= rs.len().max(rf as usize),
                            "{rs:?} -> {after:?}"
                        );
                    }
                }
            }
        }
    }
    assert!(
        outcomes["refused"] > 0 && outcomes["done"] > 0,
        "{outcomes:?}"
    );
}

/// The shape of `GET /collections/{c}/cluster` (Qdrant 1.18) becomes a placement.
#[test]
fn cluster_info_deserializes_into_placement() {
    let info: reconcile_lib::qdrant::CollectionClusterInfo = serde_json::from_value(json!({
        "peer_id": 100,
        "shard_count": 2,
        "local_shards": [{"shard_id": 0, "points_count": 12, "state": "Active"}],
        "remote_shards": [
            {"shard_id": 1, "peer_id": 102, "state": "Recovery"},
            {"shard_id": 0, "peer_id": 101, "state": "Active", "shard_key": null},
            {"shard_id": 1, "peer_id": 101, "state": "SomethingNew"}
        ],
        "shard_transfers": [
            {"shard_id": 1, "from": 101, "to": 102, "sync": false, "method": "snapshot",
             "comment": "Transferring records (0/12)"}
        ]
    }))
    .unwrap();
    assert_eq!(info.shard_count, 2);
    let p = CollectionPlacement::from_cluster_info(&info, 2);
    assert_eq!(p.replication_factor, 2);
    assert_eq!(
        p.shards[&0],
        vec![Replica::new(100, Active), Replica::new(101, Active)]
    );
    assert_eq!(
        p.shards[&1],
        vec![
            Replica::new(101, ReplicaState::Other("SomethingNew".into())),
            Replica::new(102, Recovery)
        ]
    );
    assert_eq!(
        p.transfers,
        vec![Transfer {
            method: Some("snapshot".into()),
            ..Transfer::moving(1, 101, 102)
        }]
    );
    // States keep Qdrant's spelling both ways.
    for s in [
        "Active",
        "Dead",
        "Partial",
        "Initializing",
        "Listener",
        "PartialSnapshot",
        "Recovery",
        "Resharding",
        "ReshardingScaleDown",
        "ActiveRead",
        "ManualRecovery",
        "Other",
    ] {
        let state: ReplicaState = serde_json::from_value(json!(s)).unwrap();
        assert_eq!(serde_json::to_value(&state).unwrap(), json!(s));
        assert_eq!(state.is_active(), s == "Active");
    }
    assert!(ReplicaState::ReshardingScaleDown.is_transfer_source());
    assert!(!ReplicaState::ActiveRead.is_transfer_source());
}

// ---------------------------------------------------------------------------------------
// Rebalance

fn apply_moves(p: &mut Placement, ops: &[ShardOp]) {
    for op in ops {
        let ShardOp::Move { from, to, .. } = op else {
            panic!("rebalance issues moves only: {op}");
        };
        let rs = p
            .get_mut(op.collection())
            .unwrap()
            .shards
            .get_mut(&op.shard_id())
            .unwrap();
        assert!(
            rs.iter().any(|r| r.peer == *from && r.state == Active),
            "{op}"
        );
        assert!(!rs.iter().any(|r| r.peer == *to), "{op}");
        for r in rs.iter_mut().filter(|r| r.peer == *from) {
            r.peer = *to;
        }
    }
}

fn counts(c: &CollectionPlacement, n: u32) -> Vec<usize> {
    (0..n).map(|o| c.count_on(id(o))).collect()
}

/// After 2 -> 4, shares even out, one move per collection per round.
#[test]
fn rebalance_after_scale_up_evens_shares() {
    let (p0, p1) = (id(0), id(1));
    let mut p = placement(vec![
        (
            "rf1",
            col(
                1,
                &[
                    (0, &[(p0, Active)]),
                    (1, &[(p1, Active)]),
                    (2, &[(p0, Active)]),
                    (3, &[(p1, Active)]),
                ],
            ),
        ),
        (
            "rf2",
            col(
                2,
                &[
                    (0, &[(p0, Active), (p1, Active)]),
                    (1, &[(p1, Active), (p0, Active)]),
                ],
            ),
        ),
    ]);
    let first = plan_rebalance(&peers(4), &p);
    assert_eq!(
        first.ops,
        // rf1: peer 100 and 102 tie with 101 and 103 and win on ordinals; rf2: after that
        // move peer 101 is the most loaded overall and 103 the least.
        vec![mv("rf1", 0, p0, id(2)), mv("rf2", 0, p1, id(3))]
    );
    let mut rounds = 0;
    loop {
        let plan = plan_rebalance(&peers(4), &p);
        let cols: BTreeSet<&str> = plan.ops.iter().map(ShardOp::collection).collect();
        assert_eq!(cols.len(), plan.ops.len(), "one move per collection");
        if plan.is_balanced() {
            break;
        }
        apply_moves(&mut p, &plan.ops);
        rounds += 1;
        assert!(rounds < 10, "{p:?}");
    }
    assert_eq!(rounds, 2);
    assert_eq!(counts(&p["rf1"], 4), vec![1, 1, 1, 1]);
    assert_eq!(counts(&p["rf2"], 4), vec![1, 1, 1, 1]);
    // Every shard kept its copies.
    assert!(p["rf2"].shards.values().all(|rs| rs.len() == 2));
}

/// Many one-shard collections: each collection is as even as it can be, but the peers'
/// totals are not; moves spread the collections over the new peers.
#[test]
fn rebalance_spreads_single_shard_collections() {
    let mut p: Placement = (0..4)
        .map(|i| (format!("c{i}"), col(1, &[(0, &[(id(i % 2), Active)])])))
        .collect();
    let mut rounds = 0;
    while !plan_rebalance(&peers(4), &p).is_balanced() {
        let ops = plan_rebalance(&peers(4), &p).ops;
        apply_moves(&mut p, &ops);
        rounds += 1;
        assert!(rounds < 10);
    }
    let totals: Vec<usize> = (0..4)
        .map(|o| p.values().map(|c| c.count_on(id(o))).sum())
        .collect();
    assert_eq!(totals, vec![1, 1, 1, 1]);
}

/// Rebalancing waits while a collection transfers or recovers, and does nothing when even.
#[test]
fn rebalance_defers_busy_collections_and_stops_when_even() {
    let mut busy = col(
        1,
        &[
            (0, &[(id(0), Active)]),
            (1, &[(id(0), Active)]),
            (2, &[(id(1), Recovery)]),
        ],
    );
    busy.transfers.push(Transfer::moving(2, id(0), id(1)));
    let recovering = col(1, &[(0, &[(id(0), Active)]), (1, &[(id(0), Dead)])]);
    let even = col(1, &[(0, &[(id(0), Active)]), (1, &[(id(1), Active)])]);
    let p = placement(vec![
        ("busy", busy),
        ("even", even.clone()),
        ("recovering", recovering),
    ]);
    let plan = plan_rebalance(&peers(2), &p);
    assert_eq!(plan.ops, vec![]);
    assert_eq!(
        plan.deferred,
        vec![
            "waiting for the move of shard 2 of collection busy from peer 100 to peer 101 to \
             finish"
                .to_owned(),
            "collection recovering: waiting for shard 1 to be Active on peer 100 (state Dead)"
                .to_owned(),
        ]
    );
    assert!(!plan.is_balanced());
    assert!(plan_rebalance(&peers(2), &placement(vec![("even", even)])).is_balanced());
}

/// Rebalance is deterministic under shuffled input.
#[test]
fn rebalance_is_deterministic() {
    let p = placement(vec![(
        "c",
        col(
            1,
            &[
                (0, &[(id(0), Active)]),
                (1, &[(id(0), Active)]),
                (2, &[(id(0), Active)]),
            ],
        ),
    )]);
    let mut reversed = peers(3);
    reversed.reverse();
    let a = plan_rebalance(&peers(3), &p);
    assert_eq!(a.ops, vec![mv("c", 0, id(0), id(1))]);
    assert_eq!(plan_rebalance(&reversed, &p), a);
}
