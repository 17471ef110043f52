//! Zone-aware placement (`spec.zoneAware`), table tests of the pure planners: the zone
//! balance ([`plan_zone_balance`]), and the zone-aware choices of the scale-down drain and the
//! rebalance ([`plan_scale_down_in_zones`], [`plan_rebalance_in_zones`]) beside their
//! zone-blind answers on the same placement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cluster_controller::day2::{
    plan::{
        CollectionPlacement, PeerId, Replica, ReplicaState, ScaleDownStep, ShardOp, Transfer,
        Zones, plan_rebalance, plan_rebalance_in_zones, plan_scale_down, plan_scale_down_in_zones,
    },
    zones::{ZoneVerdict, plan_zone_balance, zones_by_peer},
};

use ReplicaState::{Active, Dead, Partial};
use common::placement::{Placement, id, mv, peers, placement, rep};

/// Peer `100 + i` is in `zones[i]`.
fn zones(of: &[&str]) -> Zones {
    of.iter()
        .enumerate()
        .map(|(i, z)| (id(i as u32), (*z).to_owned()))
        .collect()
}

/// A collection with `rf` and shards given as `(shard, [peer ...])`, every replica Active.
fn col(rf: u32, shards: &[(u32, &[PeerId])]) -> CollectionPlacement {
    CollectionPlacement {
        replication_factor: rf,
        shards: shards
            .iter()
            .map(|(s, ps)| (*s, ps.iter().map(|p| Replica::new(*p, Active)).collect()))
            .collect(),
        transfers: vec![],
    }
}

#[test]
fn zone_balance_table() {
    let (a, b, c) = (id(0), id(1), id(2));
    let d = id(3);
    struct Case {
        name: &'static str,
        n: u32,
        zones: Zones,
        placement: Placement,
        verdict: ZoneVerdict,
        op: Option<ShardOp>,
    }
    let mut transferring = col(2, &[(0, &[a, b])]);
    transferring.transfers = vec![Transfer::moving(0, b, c)];
    let mut moving_in = col(2, &[(0, &[a, b, c])]);
    moving_in.shards.get_mut(&0).unwrap()[2].state = ReplicaState::Recovery;
    moving_in.transfers = vec![Transfer::moving(0, b, c)];
    let mut recovering = col(2, &[(0, &[a, b])]);
    recovering.shards.get_mut(&0).unwrap()[1].state = Partial;
    let mut dead = col(2, &[(0, &[a, b])]);
    for r in dead.shards.get_mut(&0).unwrap() {
        r.state = Dead;
    }
    let cases = vec![
        Case {
            name: "rf2 shard in zone a moves one replica to the only peer of zone b \
                   (the source: the highest ordinal among equally loaded peers)",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![("c", col(2, &[(0, &[a, b])]))]),
            verdict: ZoneVerdict::InOneZone,
            op: Some(mv("c", 0, b, c)),
        },
        Case {
            name: "the source is the zone-a peer holding most of the collection",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![(
                "c",
                col(2, &[(0, &[a, b]), (1, &[a, c]), (2, &[a, c])]),
            )]),
            verdict: ZoneVerdict::InOneZone,
            op: Some(mv("c", 0, a, c)),
        },
        Case {
            name: "the target is the least loaded peer of the other zones",
            n: 4,
            zones: zones(&["a", "a", "b", "c"]),
            placement: placement(vec![("c", col(2, &[(0, &[a, b]), (1, &[a, c])]))]),
            verdict: ZoneVerdict::InOneZone,
            op: Some(mv("c", 0, a, d)),
        },
        Case {
            name: "already spread: nothing to do",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![("c", col(2, &[(0, &[a, c]), (1, &[b, c])]))]),
            verdict: ZoneVerdict::Spread,
            op: None,
        },
        Case {
            name: "replication factor 1 with one replica: not a shard to spread",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![("c", col(1, &[(0, &[a]), (1, &[b])]))]),
            verdict: ZoneVerdict::Spread,
            op: None,
        },
        Case {
            name: "replication factor 2 with one replica: replicate into the other zone",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![("c", col(2, &[(0, &[a])]))]),
            verdict: ZoneVerdict::InOneZone,
            op: Some(rep("c", 0, a, c)),
        },
        Case {
            name: "every peer in one zone: nowhere to go",
            n: 3,
            zones: zones(&["a", "a", "a"]),
            placement: placement(vec![("c", col(2, &[(0, &[a, b])]))]),
            verdict: ZoneVerdict::SingleZone,
            op: None,
        },
        Case {
            name: "a peer without a zone: nothing moves",
            n: 3,
            zones: zones(&["a", "a"]),
            placement: placement(vec![("c", col(2, &[(0, &[a, b])]))]),
            verdict: ZoneVerdict::Unknown,
            op: None,
        },
        Case {
            name: "a running transfer in the collection: wait",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![("c", transferring)]),
            verdict: ZoneVerdict::InOneZone,
            op: None,
        },
        Case {
            name: "a replica still receiving its move into zone b does not count yet",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![("c", moving_in)]),
            verdict: ZoneVerdict::InOneZone,
            op: None,
        },
        Case {
            name: "a replica that is not Active yet: wait",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![("c", recovering)]),
            verdict: ZoneVerdict::InOneZone,
            op: None,
        },
        Case {
            name: "dead replicas only: nothing to copy from",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![("c", dead)]),
            verdict: ZoneVerdict::InOneZone,
            op: None,
        },
        Case {
            name: "a replica on a peer no pod reports: that collection waits, the next acts",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![
                ("a-stray", col(2, &[(0, &[a, 999])])),
                ("b-fine", col(2, &[(0, &[a, b])])),
            ]),
            verdict: ZoneVerdict::InOneZone,
            // Peer a holds more replicas overall (one in a-stray): it gives the replica.
            op: Some(mv("b-fine", 0, a, c)),
        },
        Case {
            name: "two collections in one zone: one operation per step, the first by name",
            n: 3,
            zones: zones(&["a", "a", "b"]),
            placement: placement(vec![
                ("x", col(2, &[(0, &[a, b])])),
                ("y", col(2, &[(0, &[a, b])])),
            ]),
            verdict: ZoneVerdict::InOneZone,
            op: Some(mv("x", 0, b, c)),
        },
    ];
    for case in cases {
        let plan = plan_zone_balance(&peers(case.n), &case.zones, &case.placement);
        println!(
            "{}: {:?} {:?} — {}",
            case.name,
            plan.verdict,
            plan.op,
            plan.message()
        );
        assert_eq!(plan.verdict, case.verdict, "{}", case.name);
        assert_eq!(plan.op, case.op, "{}", case.name);
        if plan.verdict == ZoneVerdict::InOneZone && plan.op.is_none() {
            assert!(
                !plan.waits.is_empty(),
                "{}: says what it waits for",
                case.name
            );
        }
        if plan.verdict == ZoneVerdict::InOneZone {
            assert!(
                plan.message().contains(&plan.in_one_zone[0]),
                "{}: {}",
                case.name,
                plan.message()
            );
        }
    }
}

/// Applies `op` as Qdrant finishes it: a move puts an Active replica on the target and removes
/// the source; a replication adds an Active replica on the target.
fn finish(placement: &mut Placement, op: &ShardOp) {
    let c = placement.get_mut(op.collection()).unwrap();
    let replicas = c.shards.get_mut(&op.shard_id()).unwrap();
    match op {
        ShardOp::Move { from, to, .. } => {
            assert!(!replicas.iter().any(|r| r.peer == *to), "target is new");
            replicas.retain(|r| r.peer != *from);
            replicas.push(Replica::new(*to, Active));
        }
        ShardOp::Replicate { to, .. } => {
            assert!(!replicas.iter().any(|r| r.peer == *to), "target is new");
            replicas.push(Replica::new(*to, Active));
        }
        ShardOp::DropReplica { .. } => panic!("the zone balance never drops: {op}"),
    }
    replicas.sort_by_key(|r| r.peer);
}

/// From many placements in one zone, repeated one-operation steps end with every shard in two
/// zones, never lower a shard's copy count, and never put two copies on one peer.
#[test]
fn repeated_zone_balance_steps_spread_every_shard_and_keep_every_copy() {
    let zone_sets: [&[&str]; 3] = [
        &["a", "a", "b"],
        &["a", "a", "b", "b"],
        &["a", "b", "a", "c"],
    ];
    let mut runs = 0;
    for z in zone_sets {
        let n = z.len() as u32;
        let zs = zones(z);
        // Every rf-2 placement of two shards over the zone-a peers, plus an rf-1 collection.
        let in_a: Vec<PeerId> = (0..n).filter(|i| z[*i as usize] == "a").map(id).collect();
        for (s0, s1) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let pair = |k: usize| -> Vec<PeerId> {
                let first = in_a[k % in_a.len()];
                let second = in_a[(k + 1) % in_a.len()];
                vec![first, second]
            };
            let (p0, p1) = (pair(s0), pair(s1));
            let mut pl = placement(vec![
                ("double", col(2, &[(0, &p0), (1, &p1)])),
                ("single", col(1, &[(0, &[in_a[0]])])),
            ]);
            let copies = |pl: &Placement| -> Vec<usize> {
                pl.values()
                    .flat_map(|c| c.shards.values().map(Vec::len))
                    .collect()
            };
            let before = copies(&pl);
            let mut steps = 0;
            loop {
                let plan = plan_zone_balance(&peers(n), &zs, &pl);
                match plan.op {
                    Some(op) => finish(&mut pl, &op),
                    None => {
                        assert_eq!(plan.verdict, ZoneVerdict::Spread, "{pl:?}");
                        break;
                    }
                }
                steps += 1;
                assert!(steps <= 4, "ends: {pl:?}");
            }
            assert_eq!(copies(&pl), before, "no copy lost or added at rf 2");
            for (s, rs) in &pl["double"].shards {
                let spread: BTreeSet<&str> = rs.iter().map(|r| zs[&r.peer].as_str()).collect();
                assert!(spread.len() >= 2, "shard {s}: {rs:?}");
                let distinct: BTreeSet<PeerId> = rs.iter().map(|r| r.peer).collect();
                assert_eq!(distinct.len(), rs.len());
            }
            println!("zones {z:?}, shards on {p0:?} {p1:?}: spread in {steps} steps");
            runs += 1;
        }
    }
    assert_eq!(runs, 12);
}

#[test]
fn zones_by_peer_maps_ordinals_to_peer_ids() {
    let by_ordinal = BTreeMap::from([(0, "a".to_owned()), (2, "b".to_owned())]);
    let z = zones_by_peer(&peers(3), &by_ordinal);
    assert_eq!(
        z,
        BTreeMap::from([(id(0), "a".to_owned()), (id(2), "b".to_owned())])
    );
}

/// The drain of a leaving peer: zone-blind it goes to the least loaded remaining peer (zone a,
/// where the shard's other copy already is); zone-aware to the peer of zone b.
#[test]
fn scale_down_moves_the_leaving_replica_into_a_zone_the_shard_lacks() {
    let (a, b, c, d) = (id(0), id(1), id(2), id(3));
    let pl = placement(vec![("c", col(2, &[(0, &[a, d]), (1, &[a, c])]))]);
    let consensus: BTreeSet<PeerId> = [a, b, c, d].into();
    let z = zones(&["a", "a", "b", "b"]);
    let blind = plan_scale_down(&peers(4), &consensus, 4, 3, &pl);
    assert_eq!(blind, ScaleDownStep::Issue(vec![mv("c", 0, d, b)]));
    let aware = plan_scale_down_in_zones(&peers(4), &consensus, 4, 3, &pl, &z);
    assert_eq!(aware, ScaleDownStep::Issue(vec![mv("c", 0, d, c)]));
    // Without zones the zone-aware planner is the zone-blind one.
    assert_eq!(
        plan_scale_down_in_zones(&peers(4), &consensus, 4, 3, &pl, &Zones::new()),
        blind
    );
}

/// The rebalance: zone-blind it moves shard 0 off the only zone-b peer (both copies then in
/// zone a); zone-aware it takes the next best move that keeps shard 0 in two zones.
#[test]
fn rebalance_never_takes_a_shard_out_of_a_zone() {
    let (a, b, c, d) = (id(0), id(1), id(2), id(3));
    let pl = placement(vec![(
        "c",
        col(2, &[(0, &[b, c]), (1, &[a, c]), (2, &[b, c])]),
    )]);
    let z = zones(&["a", "a", "b", "a"]);
    let blind = plan_rebalance(&peers(4), &pl);
    assert_eq!(blind.ops, vec![mv("c", 0, c, d)]);
    let aware = plan_rebalance_in_zones(&peers(4), &pl, &z);
    assert_eq!(aware.ops, vec![mv("c", 0, b, d)]);
    let zone_count = |pl: &Placement, op: &ShardOp| {
        let mut pl = pl.clone();
        finish(&mut pl, op);
        pl["c"].shards[&op.shard_id()]
            .iter()
            .map(|r| z[&r.peer].clone())
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert_eq!(
        zone_count(&pl, &blind.ops[0]),
        1,
        "the blind move loses zone b"
    );
    assert_eq!(zone_count(&pl, &aware.ops[0]), 2);
    assert_eq!(
        plan_rebalance_in_zones(&peers(4), &pl, &Zones::new()),
        blind
    );
}
