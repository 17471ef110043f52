//! kstatus' `Reconciling` and `Stalled` on a QdrantCollection, as a table over the reconcile
//! outcomes. Pure: `status::compute` with no cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::{
    QdrantCollection,
    collection::FieldDrift,
    conditions::types::{RECONCILING, STALLED},
};
use collection_controller::status::{Outcome, compute};
use reconcile_lib::qdrant::CollectionInfo;
use serde_json::json;

fn collection() -> QdrantCollection {
    serde_json::from_value(json!({"apiVersion": "qdrant.operator.dev/v1alpha1",
        "kind": "QdrantCollection", "metadata": {"name": "docs", "namespace": "ns", "generation": 1},
        "spec": {"cluster": {"name": "demo"}, "vectors": {"size": 4, "distance": "Cosine"}}}))
    .unwrap()
}

fn synced(drift: Vec<FieldDrift>) -> Outcome {
    let info: CollectionInfo =
        serde_json::from_value(json!({"status": "green", "config": {}, "points_count": 3}))
            .unwrap();
    Outcome::Synced {
        name: "docs".into(),
        info: Box::new(info),
        drift,
        wrote: false,
        aliases: vec![],
        payload_indexes: vec![],
    }
}

#[test]
fn kstatus_table() {
    /// (what, outcome, the True one of Reconciling/Stalled and its reason)
    type Row = (&'static str, Outcome, Option<(&'static str, &'static str)>);
    let rows: Vec<Row> = vec![
        ("paused", Outcome::Paused, None),
        (
            "invalid",
            Outcome::Invalid("spec.vectors.size: must be > 0".into()),
            Some((STALLED, "InvalidSpec")),
        ),
        (
            "waiting for the cluster",
            Outcome::Waiting {
                reason: "ClusterNotReady".into(),
                message: "cluster demo is Creating".into(),
            },
            Some((RECONCILING, "ClusterNotReady")),
        ),
        (
            "refused by Qdrant",
            Outcome::QdrantError {
                reason: "QdrantBadRequest".into(),
                message: "bad vectors".into(),
            },
            Some((STALLED, "QdrantBadRequest")),
        ),
        (
            "owned by another object",
            Outcome::OwnedByAnotherObject {
                name: "docs".into(),
                owner: "ns/other".into(),
            },
            Some((STALLED, "OwnedByAnotherObject")),
        ),
        (
            "deleting",
            Outcome::Deleting {
                name: "docs".into(),
            },
            Some((RECONCILING, "Deleting")),
        ),
        ("synced", synced(vec![]), None),
        (
            "synced with immutable drift",
            synced(vec![FieldDrift {
                field: "spec.vectors.size".into(),
                desired: "8".into(),
                actual: "4".into(),
            }]),
            Some((STALLED, "ImmutableFieldsDiffer")),
        ),
    ];
    let mut wrong = vec![];
    for (what, outcome, want) in rows {
        let st = compute(&collection(), &outcome);
        let got =
            testkit::kstatus::verdict(&st.conditions).unwrap_or_else(|e| panic!("{what}: {e}"));
        let want = want.map(|(t, reason)| (t, reason.to_string()));
        if got != want {
            wrong.push(format!("{what}: want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
