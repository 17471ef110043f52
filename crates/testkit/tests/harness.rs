//! The harness's helpers against the fake they wrap: namespaced seeds and reads, typed by kind,
//! edits, events, and the polling loops' limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use serde_json::json;
use testkit::harness::{Harness, Patience, repeat_until};

#[tokio::test]
async fn seeds_reads_and_edits_in_its_namespace_typed_by_kind() {
    let h = Harness::new("ns");
    // The namespace is filled in; a given one is kept.
    h.seed(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
        "data": {"k": "1"}}),
    );
    h.seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "b", "namespace": "other"}}));
    assert!(h.fake.get("v1", "configmaps", Some("ns"), "a").is_some());
    assert!(h.get("v1", "configmaps", "b").is_none());
    assert_eq!(h.names("v1", "configmaps"), ["a"]);

    let cm: ConfigMap = h.current("a");
    assert_eq!(cm.data.unwrap()["k"], "1");
    assert!(h.try_current::<ConfigMap>("b").is_none());

    let svc: Service = h.seed_spec("web", json!({"ports": [{"port": 80}]}));
    assert_eq!(svc.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(svc.metadata.generation, Some(1));
    assert!(h.edit_spec::<Service>("web", |s| s["ports"][0]["port"] = json!(8080)));
    let svc: Service = h.current("web");
    assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, 8080);
    assert_eq!(
        svc.metadata.generation,
        Some(2),
        "a spec edit moves the generation"
    );
    assert!(!h.edit_spec::<Service>("missing", |_| {}));

    let stored = h.seed_with_status(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}),
        |obj| json!({"seenGeneration": obj["metadata"]["generation"]}),
    );
    assert_eq!(stored["status"], json!({"seenGeneration": 1}));
    assert!(h.remove("v1", "services", "s"));
    assert!(h.try_current::<Service>("s").is_none());
}

#[test]
#[should_panic(expected = "no configmaps ns/absent")]
fn current_names_what_is_missing() {
    Harness::new("ns").current::<ConfigMap>("absent");
}

#[tokio::test]
async fn events_and_writes_excluding_events() {
    let h = Harness::new("ns");
    for (name, reason, count) in [
        ("e1", "Scaled", None),
        ("e2", "Scaled", Some(3)),
        ("e3", "Other", None),
    ] {
        let mut e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": name}, "reason": reason, "note": "went from 3 to 2",
            "regarding": {"name": "demo"}});
        if let Some(c) = count {
            e["series"] = json!({"count": c});
        }
        h.seed(e);
    }
    assert_eq!(h.events().len(), 3);
    assert_eq!(h.events_with_reason("Scaled").len(), 2);
    assert_eq!(h.event_count("Scaled"), 4, "a series counts as its count");
    assert!(h.has_event("Scaled", "demo", "3 to 2"));
    assert!(!h.has_event("Scaled", "other", "3 to 2"));

    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(h.client(), "ns");
    events.delete("e3", &Default::default()).await.unwrap();
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(h.client(), "ns");
    let cm = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    )
    .unwrap();
    cms.create(&Default::default(), &cm).await.unwrap();
    assert_eq!(
        h.writes_excluding_events(),
        ["POST /api/v1/namespaces/ns/configmaps"]
    );
}

#[tokio::test]
async fn reconcile_until_checks_before_each_reconcile_within_its_patience() {
    let h = Harness::new("ns");
    h.seed(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"},
        "data": {"runs": "0"}}),
    );
    let runs = |cm: &ConfigMap| cm.data.as_ref().unwrap()["runs"].parse::<u32>().unwrap();
    // A "reconcile" that counts itself in the object.
    let step = async |cm: Arc<ConfigMap>| {
        let next = runs(&cm) + 1;
        h.edit("v1", "configmaps", "n", |o| {
            o["data"]["runs"] = json!(next.to_string())
        });
    };
    let every = Duration::from_millis(1);

    let done = h
        .reconcile_until("n", Patience::rounds(10, every), step, |cm| runs(cm) == 3)
        .await
        .unwrap();
    assert_eq!(runs(&done), 3, "reconciled exactly until it held");
    // Already done: returned without a reconcile.
    let again = h
        .reconcile_until("n", Patience::rounds(10, every), step, |cm| runs(cm) >= 3)
        .await
        .unwrap();
    assert_eq!(runs(&again), 3);
    // Out of patience: two rounds, two reconciles, the stored object in the error.
    let short = h
        .reconcile_until("n", Patience::rounds(2, every), step, |cm| runs(cm) == 100)
        .await
        .unwrap_err();
    assert_eq!(runs(&short), 5);
}

#[tokio::test]
async fn repeat_until_stops_at_its_limit_in_rounds_or_time() {
    let mut rounds = 0;
    let out = repeat_until(Patience::rounds(4, Duration::ZERO), async || {
        rounds += 1;
        false
    })
    .await;
    assert!(out.is_err());
    assert_eq!(rounds, 4);

    let mut rounds = 0;
    let out = repeat_until(Patience::rounds(4, Duration::ZERO), async || {
        rounds += 1;
        rounds == 2
    })
    .await;
    assert!(out.is_ok());
    assert_eq!(rounds, 2);

    let took = repeat_until(
        Patience::timeout(Duration::from_millis(50), Duration::from_millis(10)),
        async || false,
    )
    .await
    .unwrap_err();
    assert!(took > Duration::from_millis(50), "{took:?}");
}
