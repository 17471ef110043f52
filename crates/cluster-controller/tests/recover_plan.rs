//! Peer recovery planning: stale-peer detection, the exact step for each situation, refusals,
//! waits, records, and an exhaustive sweep over small placements driven through a simulator
//! that enforces Qdrant 1.18's rules (drops, removals, joins, transfers) until the recovery
//! ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use cluster_controller::day2::{
    plan::{CollectionPlacement, PeerId, Refusal, Replica, ReplicaState, ShardOp, Transfer},
    recover::{
        PodState, RECORD_KEY_PREFIX, RecoveryInput, RecoveryRecord, RecoveryStep, StalePeer,
        plan_recovery, stale_peers,
    },
};
use serde_json::json;

use ReplicaState::{Active, Dead, Recovery};

type Placement = BTreeMap<String, CollectionPlacement>;

/// The stale peer of pod 2, and the fresh one its empty volume got.
const STALE: PeerId = 102;
const FRESH: PeerId = 103;

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

fn placement(cols: Vec<(&str, CollectionPlacement)>) -> Placement {
    cols.into_iter().map(|(n, c)| (n.to_owned(), c)).collect()
}

/// Members 100, 101, 102 on pods 0, 1, 2, plus `extra` (peer, ordinal).
fn members(extra: &[(PeerId, Option<u32>)]) -> BTreeMap<PeerId, Option<u32>> {
    let mut m: BTreeMap<PeerId, Option<u32>> =
        (0..3).map(|o| (100 + u64::from(o), Some(o))).collect();
    m.extend(extra.iter().copied());
    m
}

/// Pods 0 and 1 report 100 and 101; pod 2 shows `pod2`.
fn pods(pod2: PodState) -> BTreeMap<u32, PodState> {
    BTreeMap::from([
        (0, PodState::Reports(100)),
        (1, PodState::Reports(101)),
        (2, pod2),
    ])
}

fn record(shards: &[(&str, &[u32])]) -> RecoveryRecord {
    RecoveryRecord {
        ordinal: 2,
        stale_peer: STALE,
        shards: shards
            .iter()
            .map(|(c, s)| ((*c).to_owned(), s.iter().copied().collect()))
            .collect(),
    }
}

fn plan(
    pods: &BTreeMap<u32, PodState>,
    members: &BTreeMap<PeerId, Option<u32>>,
    placement: &Placement,
    records: &[RecoveryRecord],
) -> RecoveryStep {
    plan_recovery(&RecoveryInput {
        replicas: 3,
        pods,
        members,
        placement,
        records,
    })
}

fn drop_op(c: &str, shard_id: u32, peer: PeerId) -> ShardOp {
    ShardOp::DropReplica {
        collection: c.to_owned(),
        shard_id,
        peer,
    }
}

fn replicate(c: &str, shard_id: u32, from: PeerId, to: PeerId) -> ShardOp {
    ShardOp::Replicate {
        collection: c.to_owned(),
        shard_id,
        from,
        to,
    }
}

/// Three shards, RF 2, round robin over 100, 101, 102 (as Qdrant places them).
fn rf2() -> CollectionPlacement {
    col(
        2,
        &[
            (0, &[(100, Active), (101, Active)]),
            (1, &[(100, Active), (STALE, Active)]),
            (2, &[(101, Active), (STALE, Dead)]),
        ],
    )
}

// ----- Stale-peer detection ----------------------------------------------------------------

#[test]
fn a_pod_on_fresh_storage_makes_its_old_peer_stale() {
    assert_eq!(
        stale_peers(3, &pods(PodState::FreshStorage), &members(&[])),
        [StalePeer {
            ordinal: 2,
            peer_id: STALE
        }]
    );
}

#[test]
fn a_silent_pod_is_never_a_reason() {
    assert_eq!(stale_peers(3, &pods(PodState::Silent), &members(&[])), []);
    // Nor is a pod missing from the observation.
    let mut only_two = pods(PodState::Silent);
    only_two.remove(&2);
    assert_eq!(stale_peers(3, &only_two, &members(&[])), []);
}

#[test]
fn a_pod_reporting_another_peer_on_its_own_uri_or_outside_consensus_makes_the_old_one_stale() {
    // Two ids on pod 2's URI (older Qdrant let this happen).
    assert_eq!(
        stale_peers(
            3,
            &pods(PodState::Reports(FRESH)),
            &members(&[(FRESH, Some(2))])
        ),
        [StalePeer {
            ordinal: 2,
            peer_id: STALE
        }]
    );
    // Pod 2 runs a peer consensus does not know (it founded a cluster of its own).
    assert_eq!(
        stale_peers(3, &pods(PodState::Reports(FRESH)), &members(&[])),
        [StalePeer {
            ordinal: 2,
            peer_id: STALE
        }]
    );
}

#[test]
fn a_misrouted_answer_proves_nothing() {
    // Pod 2 answered as peer 100, which consensus lists under pod 0: no conclusion.
    assert_eq!(
        stale_peers(3, &pods(PodState::Reports(100)), &members(&[])),
        []
    );
    // Every pod answering as the same peer (one fake behind every pod): nothing is stale.
    let same = BTreeMap::from([
        (0, PodState::Reports(100)),
        (1, PodState::Reports(100)),
        (2, PodState::Reports(100)),
    ]);
    assert_eq!(stale_peers(3, &same, &members(&[])), []);
}

#[test]
fn a_peer_some_pod_reports_is_never_stale() {
    // Pod 1 reports 102 (its URI says pod 2): 102 is alive somewhere; pod 2 fresh or not.
    let pods = BTreeMap::from([
        (0, PodState::Reports(100)),
        (1, PodState::Reports(STALE)),
        (2, PodState::FreshStorage),
    ]);
    assert_eq!(stale_peers(3, &pods, &members(&[])), []);
}

#[test]
fn peers_beyond_the_replicas_or_of_no_pod_are_left_alone() {
    // Pod 2 is beyond spec.replicas = 2: the scale-down handles it.
    assert_eq!(
        stale_peers(2, &pods(PodState::FreshStorage), &members(&[])),
        []
    );
    // A member whose URI names no pod of this cluster.
    let m = BTreeMap::from([(100, Some(0)), (101, Some(1)), (7, None)]);
    let p = BTreeMap::from([(0, PodState::Reports(100)), (1, PodState::Reports(101))]);
    assert_eq!(stale_peers(3, &p, &m), []);
}

// ----- Steps ---------------------------------------------------------------------------------

#[test]
fn a_healthy_cluster_needs_nothing() {
    let p = placement(vec![("a", rf2())]);
    assert_eq!(
        plan(&pods(PodState::Reports(STALE)), &members(&[]), &p, &[]),
        RecoveryStep::Idle
    );
    assert_eq!(
        plan(&pods(PodState::Silent), &members(&[]), &p, &[]),
        RecoveryStep::Idle
    );
}

#[test]
fn the_stale_peers_shards_are_recorded_before_anything_is_dropped() {
    let p = placement(vec![
        ("a", rf2()),
        ("b", col(1, &[(0, &[(100, Active)]), (1, &[(101, Active)])])),
    ]);
    let step = plan(&pods(PodState::FreshStorage), &members(&[]), &p, &[]);
    assert_eq!(step, RecoveryStep::Record(record(&[("a", &[1, 2])])));
    assert!(step.message().contains("recording"), "{}", step.message());
}

#[test]
fn a_shard_placed_on_the_stale_peer_after_the_record_is_recorded_too() {
    let p = placement(vec![
        ("a", rf2()),
        ("new", col(2, &[(0, &[(101, Active), (STALE, Dead)])])),
    ]);
    let step = plan(
        &pods(PodState::FreshStorage),
        &members(&[]),
        &p,
        &[record(&[("a", &[1, 2]), ("gone", &[0])])],
    );
    assert_eq!(
        step,
        RecoveryStep::Record(record(&[("a", &[1, 2]), ("gone", &[0]), ("new", &[0])]))
    );
}

#[test]
fn recorded_stale_replicas_are_dropped_one_per_collection_lowest_shard_first() {
    let p = placement(vec![
        ("a", rf2()),
        ("b", col(2, &[(4, &[(STALE, Active), (101, Active)])])),
    ]);
    let records = [record(&[("a", &[1, 2]), ("b", &[4])])];
    assert_eq!(
        plan(&pods(PodState::FreshStorage), &members(&[]), &p, &records),
        RecoveryStep::Issue(vec![drop_op("a", 1, STALE), drop_op("b", 4, STALE)])
    );
}

#[test]
fn nothing_is_issued_in_a_collection_while_a_transfer_runs() {
    let mut a = rf2();
    a.transfers.push(Transfer::replicating(0, 100, 101));
    let p = placement(vec![
        ("a", a),
        ("b", col(2, &[(4, &[(STALE, Active), (101, Active)])])),
    ]);
    let records = [record(&[("a", &[1, 2]), ("b", &[4])])];
    assert_eq!(
        plan(&pods(PodState::FreshStorage), &members(&[]), &p, &records),
        RecoveryStep::Issue(vec![drop_op("b", 4, STALE)])
    );
    // Only that collection left: wait, naming the transfer.
    let only_a = placement(vec![("a", p["a"].clone())]);
    match plan(
        &pods(PodState::FreshStorage),
        &members(&[]),
        &only_a,
        &records,
    ) {
        RecoveryStep::Wait(w) => assert_eq!(
            w,
            [
                "waiting for the replication of shard 0 of collection a from peer 100 to peer 101 \
              to finish"
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_shard_only_the_stale_peer_held_active_is_refused_and_nothing_is_dropped() {
    let p = placement(vec![
        ("a", rf2()),
        (
            "lost",
            col(
                2,
                &[
                    (0, &[(STALE, Active), (101, Dead)]),
                    (1, &[(STALE, Dead)]),
                    (2, &[(100, Active)]),
                ],
            ),
        ),
    ]);
    let records = [record(&[("a", &[1, 2]), ("lost", &[0, 1])])];
    let step = plan(&pods(PodState::FreshStorage), &members(&[]), &p, &records);
    let RecoveryStep::Refuse(refusals) = &step else {
        panic!("{step:?}");
    };
    let shards: Vec<(Option<&str>, Option<u32>)> = refusals
        .iter()
        .map(|r: &Refusal| (r.collection.as_deref(), r.shard_id))
        .collect();
    assert_eq!(shards, [(Some("lost"), Some(0)), (Some("lost"), Some(1))]);
    let message = step.message();
    assert!(
        message.contains("collection lost shard 0")
            && message.contains("collection lost shard 1")
            && message.contains("peer 102 (pod ordinal 2)"),
        "{message}"
    );
    // Recording still comes first: the record is bookkeeping, not a removal.
    assert!(matches!(
        plan(&pods(PodState::FreshStorage), &members(&[]), &p, &[]),
        RecoveryStep::Record(_)
    ));
}

#[test]
fn a_stale_peer_that_holds_nothing_is_removed_without_a_record() {
    let p = placement(vec![("b", col(1, &[(0, &[(100, Active)])]))]);
    assert_eq!(
        plan(&pods(PodState::FreshStorage), &members(&[]), &p, &[]),
        RecoveryStep::RemovePeer {
            peer_id: STALE,
            ordinal: 2
        }
    );
    // Not while a transfer still involves it.
    let mut b = col(1, &[(0, &[(100, Active)])]);
    b.transfers.push(Transfer::replicating(0, STALE, 100));
    let p = placement(vec![("b", b)]);
    assert!(matches!(
        plan(&pods(PodState::FreshStorage), &members(&[]), &p, &[]),
        RecoveryStep::Wait(_)
    ));
}

#[test]
fn after_the_removal_the_pod_is_awaited() {
    // Stale replicas dropped, 102 gone from consensus, pod 2 still crash-looping.
    let p = placement(vec![(
        "a",
        col(
            2,
            &[
                (0, &[(100, Active), (101, Active)]),
                (1, &[(100, Active)]),
                (2, &[(101, Active)]),
            ],
        ),
    )]);
    let mut m = members(&[]);
    m.remove(&STALE);
    let records = [record(&[("a", &[1, 2])])];
    for pod2 in [PodState::FreshStorage, PodState::Silent] {
        match plan(&pods(pod2), &m, &p, &records) {
            RecoveryStep::Wait(w) => {
                assert_eq!(w.len(), 1);
                assert!(w[0].contains("waiting for pod ordinal 2 to join"), "{w:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    // A pod that founded a cluster of its own is named as such.
    match plan(&pods(PodState::Reports(999)), &m, &p, &records) {
        RecoveryStep::Wait(w) => assert!(w[0].contains("started a cluster of its own"), "{w:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_rejoined_pod_gets_the_recorded_shards_back_one_transfer_per_collection() {
    let mut m = members(&[(FRESH, Some(2))]);
    m.remove(&STALE);
    let p = placement(vec![
        (
            "a",
            col(
                2,
                &[
                    (0, &[(100, Active), (101, Active)]),
                    (1, &[(100, Dead), (101, Active)]),
                    (2, &[(101, Active)]),
                ],
            ),
        ),
        // Not recorded: left alone although under-replicated.
        ("other", col(2, &[(0, &[(100, Active)])])),
    ]);
    // Shard 1 already has 2 replicas elsewhere (one Dead): nothing to copy; shard 2 lacks one.
    let records = [record(&[("a", &[1, 2])])];
    assert_eq!(
        plan(&pods(PodState::Reports(FRESH)), &m, &p, &records),
        RecoveryStep::Issue(vec![replicate("a", 2, 101, FRESH)])
    );
    // The source is the lowest Active peer.
    let p2 = placement(vec![(
        "a",
        col(
            2,
            &[(5, &[(101, Active), (100, Active)]), (6, &[(101, Active)])],
        ),
    )]);
    let records = [record(&[("a", &[5, 6])])];
    let mut one = p2.clone();
    one.get_mut("a").unwrap().replication_factor = 3;
    assert_eq!(
        plan(&pods(PodState::Reports(FRESH)), &m, &one, &records),
        RecoveryStep::Issue(vec![replicate("a", 5, 100, FRESH)])
    );
}

#[test]
fn a_copy_under_way_is_awaited_and_never_issued_twice() {
    let mut m = members(&[(FRESH, Some(2))]);
    m.remove(&STALE);
    let mut a = col(
        2,
        &[
            (1, &[(100, Active), (FRESH, Recovery)]),
            (2, &[(101, Active)]),
        ],
    );
    a.transfers.push(Transfer::replicating(1, 100, FRESH));
    let p = placement(vec![("a", a)]);
    let records = [record(&[("a", &[1, 2])])];
    match plan(&pods(PodState::Reports(FRESH)), &m, &p, &records) {
        RecoveryStep::Wait(w) => {
            assert!(
                w.iter()
                    .any(|x| x.contains("shard 1 of collection a to become Active on peer 103")),
                "{w:?}"
            );
            assert!(
                w.iter()
                    .any(|x| x.contains("waiting for the replication of shard 1")),
                "{w:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_recorded_shard_without_an_active_source_is_awaited() {
    let mut m = members(&[(FRESH, Some(2))]);
    m.remove(&STALE);
    let p = placement(vec![("a", col(2, &[(1, &[(100, Dead)])]))]);
    let records = [record(&[("a", &[1])])];
    match plan(&pods(PodState::Reports(FRESH)), &m, &p, &records) {
        RecoveryStep::Wait(w) => assert_eq!(
            w,
            ["shard 1 of collection a has no Active replica to copy to peer 103 from"]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_finished_record_is_forgotten() {
    let mut m = members(&[(FRESH, Some(2))]);
    m.remove(&STALE);
    let p = placement(vec![(
        "a",
        col(
            2,
            &[
                (1, &[(100, Active), (FRESH, Active)]),
                // Enough copies elsewhere.
                (2, &[(100, Active), (101, Active)]),
            ],
        ),
    )]);
    // Shard 9 and collection "gone" no longer exist.
    let r = record(&[("a", &[1, 2, 9]), ("gone", &[0])]);
    let step = plan(
        &pods(PodState::Reports(FRESH)),
        &m,
        &p,
        std::slice::from_ref(&r),
    );
    assert_eq!(step, RecoveryStep::Forget(r));
    assert!(step.message().contains("recovered"), "{}", step.message());
}

#[test]
fn a_record_of_a_pod_scaled_away_is_forgotten() {
    let r = RecoveryRecord {
        ordinal: 5,
        ..record(&[("a", &[1])])
    };
    let p = placement(vec![("a", rf2())]);
    assert_eq!(
        plan(
            &pods(PodState::Reports(STALE)),
            &members(&[]),
            &p,
            std::slice::from_ref(&r)
        ),
        RecoveryStep::Forget(r)
    );
}

#[test]
fn a_restored_volume_gets_back_what_was_dropped() {
    // Pod 2 reports 102 again (its old volume came back) after one replica was dropped.
    let p = placement(vec![(
        "a",
        col(
            2,
            &[
                (1, &[(100, Active)]),
                (2, &[(101, Active), (STALE, Active)]),
            ],
        ),
    )]);
    let records = [record(&[("a", &[1, 2])])];
    assert_eq!(
        plan(&pods(PodState::Reports(STALE)), &members(&[]), &p, &records),
        RecoveryStep::Issue(vec![replicate("a", 1, 100, STALE)])
    );
}

#[test]
fn two_stale_peers_sharing_a_shard_lose_it() {
    let pods = BTreeMap::from([
        (0, PodState::Reports(100)),
        (1, PodState::FreshStorage),
        (2, PodState::FreshStorage),
    ]);
    let p = placement(vec![(
        "a",
        col(
            2,
            &[
                (0, &[(101, Active), (STALE, Active)]),
                (1, &[(100, Active), (101, Dead)]),
            ],
        ),
    )]);
    let records = [
        RecoveryRecord {
            ordinal: 1,
            stale_peer: 101,
            shards: [("a".to_owned(), BTreeSet::from([0, 1]))].into(),
        },
        record(&[("a", &[0])]),
    ];
    match plan(&pods, &members(&[]), &p, &records) {
        RecoveryStep::Refuse(r) => {
            assert_eq!(r.len(), 1);
            assert_eq!(
                (r[0].collection.as_deref(), r[0].shard_id),
                (Some("a"), Some(0))
            );
            assert!(
                r[0].reason.contains("peer 101 (pod ordinal 1)")
                    && r[0].reason.contains("peer 102 (pod ordinal 2)"),
                "{}",
                r[0].reason
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn records_round_trip_through_the_cluster_metadata() {
    let r = record(&[("a", &[2, 1]), ("b", &[0])]);
    assert_eq!(r.key(), format!("{RECORD_KEY_PREFIX}102"));
    assert_eq!(
        r.to_value(),
        json!({"ordinal": 2, "stale_peer": 102, "shards": {"a": [1, 2], "b": [0]}})
    );
    assert_eq!(
        RecoveryRecord::from_metadata(&r.key(), &r.to_value()),
        Some(r.clone())
    );
    // Not ours, or not matching its key, or not a record: ignored.
    assert_eq!(RecoveryRecord::from_metadata("other", &r.to_value()), None);
    assert_eq!(
        RecoveryRecord::from_metadata(&format!("{RECORD_KEY_PREFIX}7"), &r.to_value()),
        None
    );
    assert_eq!(
        RecoveryRecord::from_metadata(&r.key(), &json!({"ordinal": 2})),
        None
    );
}

// ----- Exhaustive sweep through a Qdrant simulator ------------------------------------------

/// Qdrant 1.18's rules for what the planner issues, and the pod's join attempts.
struct Sim {
    members: BTreeMap<PeerId, Option<u32>>,
    placement: Placement,
    records: BTreeMap<String, RecoveryRecord>,
    joined: bool,
    issued: Vec<ShardOp>,
    removed: Vec<PeerId>,
    refused: bool,
}

impl Sim {
    fn pods(&self) -> BTreeMap<u32, PodState> {
        pods(if self.joined {
            PodState::Reports(FRESH)
        } else {
            PodState::FreshStorage
        })
    }

    fn holds(&self, peer: PeerId) -> bool {
        self.placement.values().any(|c| c.involves(peer))
    }

    /// `AddPeerToKnown`: refused while the stale peer (same URI) lists a replica; otherwise
    /// it replaces the stale peer.
    fn try_join(&mut self) {
        if self.joined || (self.members.contains_key(&STALE) && self.holds(STALE)) {
            return;
        }
        self.members.remove(&STALE);
        self.members.insert(FRESH, Some(2));
        self.joined = true;
    }

    fn apply(&mut self, op: &ShardOp) {
        let c = self.placement.get_mut(op.collection()).expect("collection");
        assert!(c.transfers.is_empty(), "issued while a transfer runs: {op}");
        match op {
            ShardOp::DropReplica { shard_id, peer, .. } => {
                let rs = c.shards.get_mut(shard_id).expect("shard");
                assert!(rs.iter().any(|r| r.peer == *peer), "no replica: {op}");
                let active: Vec<PeerId> = rs
                    .iter()
                    .filter(|r| r.state.is_active())
                    .map(|r| r.peer)
                    .collect();
                assert!(
                    rs.len() > 1 && active != [*peer] && !active.is_empty(),
                    "Qdrant refuses {op}: {rs:?}"
                );
                rs.retain(|r| r.peer != *peer);
            }
            ShardOp::Replicate {
                shard_id, from, to, ..
            } => {
                assert!(
                    self.members.contains_key(to),
                    "Peer {to} does not exist: {op}"
                );
                let rs = c.shards.get_mut(shard_id).expect("shard");
                assert!(
                    rs.iter().any(|r| r.peer == *from && r.state.is_active()),
                    "not active on source: {op}"
                );
                rs.retain(|r| r.peer != *to);
                rs.push(Replica::new(*to, Recovery));
                rs.sort_by_key(|r| r.peer);
                c.transfers
                    .push(Transfer::replicating(*shard_id, *from, *to));
            }
            ShardOp::Move { .. } => panic!("recovery never moves: {op}"),
        }
        self.issued.push(op.clone());
    }

    fn complete_transfers(&mut self) {
        for c in self.placement.values_mut() {
            for t in std::mem::take(&mut c.transfers) {
                if let Some(r) = c
                    .shards
                    .get_mut(&t.shard_id)
                    .and_then(|rs| rs.iter_mut().find(|r| r.peer == t.to))
                {
                    r.state = Active;
                }
            }
        }
    }

    /// Runs the planner until it is idle or refuses; `fast_restarts`: the pod retries its
    /// join before every plan (else only while the planner waits).
    fn run(&mut self, fast_restarts: bool) {
        for _ in 0..60 {
            if fast_restarts {
                self.try_join();
            }
            let records: Vec<RecoveryRecord> = self.records.values().cloned().collect();
            let pods = self.pods();
            let step = plan_recovery(&RecoveryInput {
                replicas: 3,
                pods: &pods,
                members: &self.members,
                placement: &self.placement,
                records: &records,
            });
            assert!(!step.message().is_empty());
            match step {
                // Nothing left for the operator; the pod may still have to join by itself.
                RecoveryStep::Idle if !self.joined => {
                    self.try_join();
                    if !self.joined {
                        return;
                    }
                }
                RecoveryStep::Idle => return,
                RecoveryStep::Record(r) => {
                    assert!(self.issued.is_empty() || self.records.contains_key(&r.key()));
                    self.records.insert(r.key(), r);
                }
                RecoveryStep::Refuse(_) => {
                    self.refused = true;
                    return;
                }
                RecoveryStep::Issue(ops) => {
                    let collections: BTreeSet<&str> = ops.iter().map(ShardOp::collection).collect();
                    assert_eq!(
                        collections.len(),
                        ops.len(),
                        "one op per collection: {ops:?}"
                    );
                    for op in &ops {
                        if matches!(op, ShardOp::DropReplica { .. }) {
                            assert!(
                                self.records
                                    .contains_key(&format!("{RECORD_KEY_PREFIX}{STALE}")),
                                "dropped before recording: {op}"
                            );
                        }
                        self.apply(op);
                    }
                }
                RecoveryStep::RemovePeer { peer_id, ordinal } => {
                    assert_eq!((peer_id, ordinal), (STALE, 2));
                    assert!(!self.holds(peer_id), "Cannot remove peer {peer_id}");
                    self.members.remove(&peer_id);
                    self.removed.push(peer_id);
                }
                RecoveryStep::Forget(r) => {
                    assert!(self.records.remove(&r.key()).is_some());
                }
                RecoveryStep::Wait(w) => {
                    assert!(!w.is_empty());
                    self.complete_transfers();
                    self.try_join();
                }
            }
        }
        panic!("the recovery did not end: {:?}", self.placement);
    }
}

/// Every shard state of one peer: absent, Active or Dead.
const CHOICES: [Option<ReplicaState>; 3] = [None, Some(Active), Some(Dead)];

fn shard_cases() -> Vec<Vec<Replica>> {
    let mut out = vec![];
    for a in CHOICES.iter() {
        for b in CHOICES.iter() {
            for c in CHOICES.iter() {
                let rs: Vec<Replica> = [(100, a), (101, b), (STALE, c)]
                    .into_iter()
                    .filter_map(|(p, s)| s.clone().map(|s| Replica::new(p, s)))
                    .collect();
                if !rs.is_empty() {
                    out.push(rs);
                }
            }
        }
    }
    out
}

#[test]
fn every_small_placement_recovers_or_is_refused_safely() {
    let cases = shard_cases();
    let mut runs = 0;
    for rf in 1..=3 {
        for s0 in &cases {
            for s1 in &cases {
                for fast_restarts in [false, true] {
                    let original = placement(vec![(
                        "c",
                        CollectionPlacement {
                            replication_factor: rf,
                            shards: BTreeMap::from([(0, s0.clone()), (1, s1.clone())]),
                            transfers: vec![],
                        },
                    )]);
                    let mut sim = Sim {
                        members: members(&[]),
                        placement: original.clone(),
                        records: BTreeMap::new(),
                        joined: false,
                        issued: vec![],
                        removed: vec![],
                        refused: false,
                    };
                    sim.run(fast_restarts);
                    runs += 1;
                    check_outcome(&original, &sim, rf);
                }
            }
        }
    }
    assert_eq!(runs, 3 * 26 * 26 * 2);
}

fn check_outcome(original: &Placement, sim: &Sim, rf: u32) {
    let before = &original["c"];
    let after = &sim.placement["c"];
    let lost = before.shards.values().any(|rs| {
        rs.iter().any(|r| r.peer == STALE)
            && !rs.iter().any(|r| r.peer != STALE && r.state.is_active())
    });
    let ctx = format!("rf {rf}, before {before:?}, after {after:?}");
    if lost {
        assert!(sim.refused, "a lost shard must be refused: {ctx}");
        assert!(sim.issued.is_empty(), "nothing dropped when refused: {ctx}");
        assert!(
            sim.members.contains_key(&STALE),
            "the stale peer is kept: {ctx}"
        );
        return;
    }
    assert!(!sim.refused, "{ctx}");
    assert!(sim.joined, "the pod joined: {ctx}");
    assert!(!sim.members.contains_key(&STALE), "{ctx}");
    assert!(sim.records.is_empty(), "the record is forgotten: {ctx}");
    assert!(after.transfers.is_empty(), "{ctx}");
    let want = usize::try_from(rf.max(1)).unwrap();
    for (shard, rs) in &before.shards {
        let now = &after.shards[shard];
        assert!(now.iter().all(|r| r.peer != STALE), "{ctx}");
        // Replicas on the other peers are untouched.
        let others = |v: &[Replica]| -> Vec<Replica> {
            v.iter()
                .filter(|r| r.peer != STALE && r.peer != FRESH)
                .cloned()
                .collect()
        };
        assert_eq!(others(now), others(rs), "{ctx}");
        let had_stale = rs.iter().any(|r| r.peer == STALE);
        let remaining = rs.iter().filter(|r| r.peer != STALE).count();
        let on_fresh = now.iter().find(|r| r.peer == FRESH);
        if had_stale && remaining < want {
            assert_eq!(
                on_fresh.map(|r| &r.state),
                Some(&Active),
                "shard {shard} is copied back to the new peer: {ctx}"
            );
        } else {
            assert!(on_fresh.is_none(), "shard {shard} needs no copy: {ctx}");
        }
    }
    // No operation issued twice.
    let unique: BTreeSet<String> = sim.issued.iter().map(ToString::to_string).collect();
    assert_eq!(unique.len(), sim.issued.len(), "{:?}", sim.issued);
}
