//! Server-side apply of children (`reconcile_lib::apply::Applier`) against the fake API server:
//! removals reach the child, a no-op resync writes nothing, an edit behind our back is taken
//! back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use reconcile_lib::apply::{APPLIED_HASH_ANNOTATION, Applier, Outcome};
use serde_json::json;
use testkit::apiserver::FakeApiServer;

fn config_map(annotations: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("child".into()),
            namespace: Some("default".into()),
            annotations: (!annotations.is_empty()).then(|| map(annotations)),
            ..ObjectMeta::default()
        },
        data: Some(map(data)),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn a_removed_field_is_removed_and_a_resync_writes_nothing() {
    let api = FakeApiServer::new();
    let applier = Applier::new(api.client(), "test-controller");
    let first = config_map(
        &[("team", "search"), ("tier", "gold")],
        &[("a", "1"), ("b", "2")],
    );
    let (_, outcome) = applier.apply(&first).await.unwrap();
    assert_eq!(outcome, Outcome::Created);

    // The user removes an annotation and a key from the spec: desired is now a subset of the
    // live object, and still both go.
    let second = config_map(&[("team", "search")], &[("a", "1")]);
    let (applied, outcome) = applier.apply(&second).await.unwrap();
    assert_eq!(outcome, Outcome::Updated);
    let live = api
        .get("v1", "configmaps", Some("default"), "child")
        .unwrap();
    assert_eq!(live["data"], json!({"a": "1"}));
    assert_eq!(live["metadata"]["annotations"]["team"], "search");
    assert_eq!(live["metadata"]["annotations"].get("tier"), None, "{live}");
    assert!(
        applied
            .metadata
            .annotations
            .unwrap()
            .contains_key(APPLIED_HASH_ANNOTATION)
    );

    // A resync of the same desired object: reads only.
    api.clear_requests();
    let (_, outcome) = applier.apply(&second).await.unwrap();
    assert_eq!(outcome, Outcome::Unchanged);
    assert_eq!(api.writes(), vec![], "no write on a no-op resync");

    // Someone edits a field we set: taken back.
    api.edit("v1", "configmaps", Some("default"), "child", |o| {
        o["data"]["a"] = json!("changed");
    });
    let (_, outcome) = applier.apply(&second).await.unwrap();
    assert_eq!(outcome, Outcome::Updated);
    let live = api
        .get("v1", "configmaps", Some("default"), "child")
        .unwrap();
    assert_eq!(live["data"]["a"], "1");
}
