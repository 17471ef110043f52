//! Rolling-restart gate: every blocking condition alone blocks with its own message; the
//! highest outdated ordinal goes first; a restarted pod that is not back in time stops the
//! rollout; done when every pod runs the update revision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_controller::day2::gate::{
    ClusterObservation, PodObservation, RestartDecision, Restarting, decide_restart,
};
use cluster_controller::day2::plan::{CollectionPlacement, Replica, ReplicaState, Transfer};

fn pod(ordinal: u32, revision: &str) -> PodObservation {
    PodObservation {
        ordinal,
        ready: true,
        terminating: false,
        revision: Some(revision.to_owned()),
        readyz: Some(true),
        pending_operations: Some(0),
    }
}

/// A healthy 3-pod cluster whose pods all run the old revision, with one collection
/// `articles` (shards 0..4, RF 2) fully Active.
fn healthy() -> ClusterObservation {
    let shards = (0..4u32)
        .map(|s| {
            let a = 100 + u64::from(s % 3);
            let b = 100 + u64::from((s + 1) % 3);
            (
                s,
                vec![
                    Replica::new(a, ReplicaState::Active),
                    Replica::new(b, ReplicaState::Active),
                ],
            )
        })
        .collect();
    ClusterObservation {
        statefulset: "qdrant".to_owned(),
        replicas: 3,
        update_revision: "new".to_owned(),
        pods: (0..3).map(|o| pod(o, "old")).collect(),
        leader: Some(100),
        placement: BTreeMap::from([(
            "articles".to_owned(),
            CollectionPlacement {
                replication_factor: 2,
                shards,
                transfers: vec![],
            },
        )]),
        busy: vec![],
        restarting: None,
        pod_timeout: Duration::from_secs(300),
    }
}

fn pod_mut(obs: &mut ClusterObservation, ordinal: u32) -> &mut PodObservation {
    obs.pods.iter_mut().find(|p| p.ordinal == ordinal).unwrap()
}

fn restart(ordinal: u32) -> impl Fn(&RestartDecision) -> bool {
    move |d| matches!(d, RestartDecision::RestartPod { ordinal: o, .. } if *o == ordinal)
}

fn single_wait(obs: &ClusterObservation) -> String {
    match decide_restart(obs) {
        RestartDecision::Wait { reasons } => {
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            reasons.into_iter().next().unwrap()
        }
        other => panic!("expected Wait, got {other:?}"),
    }
}

#[test]
fn healthy_cluster_restarts_highest_outdated_ordinal_first() {
    let obs = healthy();
    assert_eq!(
        decide_restart(&obs),
        RestartDecision::RestartPod {
            ordinal: 2,
            reason: "restarting pod qdrant-2: it runs revision old, the update revision is new"
                .to_owned()
        }
    );
    // Pods in any order: the same pod.
    let mut shuffled = healthy();
    shuffled.pods.reverse();
    assert_eq!(decide_restart(&shuffled), decide_restart(&obs));

    // Pod 2 done: pod 1 next; then pod 0.
    let mut obs = healthy();
    pod_mut(&mut obs, 2).revision = Some("new".into());
    assert!(restart(1)(&decide_restart(&obs)));
    pod_mut(&mut obs, 1).revision = Some("new".into());
    assert!(restart(0)(&decide_restart(&obs)));

    // An outdated pod below an updated one is still found (e.g. pod 1 alone outdated).
    let mut obs = healthy();
    pod_mut(&mut obs, 2).revision = Some("new".into());
    pod_mut(&mut obs, 0).revision = Some("new".into());
    assert!(restart(1)(&decide_restart(&obs)));

    // A pod without the revision label counts as outdated.
    let mut obs = healthy();
    for o in 0..3 {
        pod_mut(&mut obs, o).revision = Some("new".into());
    }
    pod_mut(&mut obs, 1).revision = None;
    assert!(restart(1)(&decide_restart(&obs)));
}

#[test]
fn done_when_every_pod_runs_the_update_revision() {
    let mut obs = healthy();
    for o in 0..3 {
        pod_mut(&mut obs, o).revision = Some("new".into());
    }
    assert_eq!(decide_restart(&obs), RestartDecision::Done);
    // Even if the cluster is busy now: nothing left to restart.
    obs.busy.push("QdrantBackup nightly".into());
    assert_eq!(decide_restart(&obs), RestartDecision::Done);
    // A pod beyond spec.replicas (being scaled away) does not count.
    obs.pods.push(pod(3, "old"));
    assert_eq!(decide_restart(&obs), RestartDecision::Done);
}

/// Each blocking condition, alone, blocks the restart with its own message.
#[test]
fn each_condition_alone_blocks_with_its_message() {
    type Case = (&'static str, fn(&mut ClusterObservation));
    let cases: Vec<Case> = vec![
        ("waiting for pod qdrant-1 to be Ready", |o| {
            pod_mut(o, 1).ready = false;
        }),
        ("waiting for pod qdrant-0 to finish terminating", |o| {
            pod_mut(o, 0).terminating = true;
        }),
        ("waiting for pod qdrant-1 to exist", |o| {
            o.pods.retain(|p| p.ordinal != 1);
        }),
        ("waiting for /readyz to pass on pod qdrant-2", |o| {
            pod_mut(o, 2).readyz = Some(false);
        }),
        ("waiting for /readyz on pod qdrant-0 to answer", |o| {
            pod_mut(o, 0).readyz = None;
        }),
        (
            "waiting for pod qdrant-1 to apply 3 pending consensus operations",
            |o| {
                pod_mut(o, 1).pending_operations = Some(3);
            },
        ),
        (
            "waiting for pod qdrant-2 to report its consensus state (GET /cluster)",
            |o| {
                pod_mut(o, 2).pending_operations = None;
            },
        ),
        ("waiting for consensus to elect a leader", |o| {
            o.leader = None;
        }),
        (
            "waiting for shard 3 of collection articles to be Active on peer 101 (state Partial)",
            |o| {
                let rs = o
                    .placement
                    .get_mut("articles")
                    .unwrap()
                    .shards
                    .get_mut(&3)
                    .unwrap();
                rs[1].state = ReplicaState::Partial;
            },
        ),
        (
            "waiting for shard 0 of collection articles to be Active on peer 100 (state Dead)",
            |o| {
                let rs = o
                    .placement
                    .get_mut("articles")
                    .unwrap()
                    .shards
                    .get_mut(&0)
                    .unwrap();
                rs[0].state = ReplicaState::Dead;
            },
        ),
        (
            "waiting for the replication of shard 2 of collection articles from peer 102 to \
             peer 101 to finish",
            |o| {
                o.placement
                    .get_mut("articles")
                    .unwrap()
                    .transfers
                    .push(Transfer::replicating(2, 102, 101));
            },
        ),
        (
            "waiting for QdrantBackup nightly-7 to finish (no restarts during backups and \
             restores)",
            |o| {
                o.busy.push("QdrantBackup nightly-7".into());
            },
        ),
        (
            "waiting for QdrantRestore from-s3 to finish (no restarts during backups and \
             restores)",
            |o| {
                o.busy.push("QdrantRestore from-s3".into());
            },
        ),
    ];
    assert!(restart(2)(&decide_restart(&healthy())));
    for (expected, break_it) in cases {
        let mut obs = healthy();
        break_it(&mut obs);
        assert_eq!(single_wait(&obs), expected);
    }
}

/// A hand-made Listener replica never becomes Active; it does not block restarts.
#[test]
fn listener_replica_does_not_block() {
    let mut obs = healthy();
    obs.placement
        .get_mut("articles")
        .unwrap()
        .shards
        .get_mut(&1)
        .unwrap()
        .push(Replica::new(100, ReplicaState::Listener));
    assert!(restart(2)(&decide_restart(&obs)));
}

/// Several problems are all listed; the summary names the first ones.
#[test]
fn several_conditions_are_all_listed() {
    let mut obs = healthy();
    obs.leader = None;
    pod_mut(&mut obs, 0).ready = false;
    obs.busy.push("QdrantBackup b".into());
    let RestartDecision::Wait { reasons } = decide_restart(&obs) else {
        panic!()
    };
    assert_eq!(
        reasons,
        vec![
            "waiting for QdrantBackup b to finish (no restarts during backups and restores)",
            "waiting for pod qdrant-0 to be Ready",
            "waiting for consensus to elect a leader",
        ]
    );
    assert_eq!(
        decide_restart(&obs).message(),
        "waiting for QdrantBackup b to finish (no restarts during backups and restores); \
         waiting for pod qdrant-0 to be Ready; waiting for consensus to elect a leader"
    );
}

/// After restarting pod 2: wait for it, then the next pod; stuck after the timeout.
#[test]
fn restarted_pod_is_awaited_then_stuck_after_timeout() {
    let mut obs = healthy();
    obs.restarting = Some(Restarting {
        ordinal: 2,
        elapsed: Duration::from_secs(30),
    });
    {
        let p = pod_mut(&mut obs, 2);
        p.revision = Some("new".into());
        p.ready = false;
        p.readyz = None;
    }
    assert_eq!(
        decide_restart(&obs),
        RestartDecision::Wait {
            reasons: vec![
                "waiting for pod qdrant-2 to be Ready".to_owned(),
                "waiting for /readyz on pod qdrant-2 to answer".to_owned(),
            ]
        }
    );

    // Exactly at the timeout: still waiting.
    obs.restarting = Some(Restarting {
        ordinal: 2,
        elapsed: Duration::from_secs(300),
    });
    assert!(matches!(decide_restart(&obs), RestartDecision::Wait { .. }));

    // Past the timeout: stuck, naming what is missing.
    obs.restarting = Some(Restarting {
        ordinal: 2,
        elapsed: Duration::from_secs(301),
    });
    assert_eq!(
        decide_restart(&obs),
        RestartDecision::Stuck {
            ordinal: 2,
            reason: "pod qdrant-2 is not back 301s after its restart (timeout 300s): waiting \
                     for pod qdrant-2 to be Ready; waiting for /readyz on pod qdrant-2 to answer"
                .to_owned()
        }
    );

    // Back (Ready, /readyz, new revision): pod 1 is next even long after the timeout.
    {
        let p = pod_mut(&mut obs, 2);
        p.ready = true;
        p.readyz = Some(true);
    }
    assert!(restart(1)(&decide_restart(&obs)));

    // Back but its shards still recover: wait (not stuck; the pod itself is back).
    obs.placement
        .get_mut("articles")
        .unwrap()
        .shards
        .get_mut(&1)
        .unwrap()[1]
        .state = ReplicaState::Recovery;
    assert_eq!(
        single_wait(&obs),
        "waiting for shard 1 of collection articles to be Active on peer 102 (state Recovery)"
    );
}

/// A deleted pod that was never recreated, or came back at the old revision.
#[test]
fn restarted_pod_missing_or_still_old_gets_stuck() {
    let mut obs = healthy();
    obs.pods.retain(|p| p.ordinal != 2);
    obs.restarting = Some(Restarting {
        ordinal: 2,
        elapsed: Duration::from_secs(10),
    });
    assert_eq!(single_wait(&obs), "waiting for pod qdrant-2 to exist");
    obs.restarting = Some(Restarting {
        ordinal: 2,
        elapsed: Duration::from_secs(600),
    });
    assert!(matches!(
        decide_restart(&obs),
        RestartDecision::Stuck { ordinal: 2, .. }
    ));

    let mut obs = healthy();
    obs.restarting = Some(Restarting {
        ordinal: 2,
        elapsed: Duration::from_secs(600),
    });
    let RestartDecision::Stuck { ordinal, reason } = decide_restart(&obs) else {
        panic!("{:?}", decide_restart(&obs))
    };
    assert_eq!(ordinal, 2);
    assert!(
        reason.ends_with("waiting for pod qdrant-2 to run revision new (it runs old)"),
        "{reason}"
    );
}

/// The last restarted pod must be back before the rollout counts as done.
#[test]
fn done_only_after_the_last_pod_is_back() {
    let mut obs = healthy();
    for o in 0..3 {
        pod_mut(&mut obs, o).revision = Some("new".into());
    }
    pod_mut(&mut obs, 0).ready = false;
    obs.restarting = Some(Restarting {
        ordinal: 0,
        elapsed: Duration::from_secs(5),
    });
    assert_eq!(single_wait(&obs), "waiting for pod qdrant-0 to be Ready");
    pod_mut(&mut obs, 0).ready = true;
    assert_eq!(decide_restart(&obs), RestartDecision::Done);
    assert_eq!(
        decide_restart(&obs).message(),
        "every pod runs the update revision"
    );
}
