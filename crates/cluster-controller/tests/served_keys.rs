//! The served keys (`build::served_keys`): the hash on the pod template, and the rotation
//! plan with the key the operator sends in each phase. Pure; the same states as the
//! real-peer scenario `a_rotated_api_key_rolls_through_the_gate_without_a_refused_request`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api_types::QdrantCluster;
use cluster_controller::build::{
    self, Observed,
    served_keys::{
        KEYS_HASH_ANNOTATION, KeyChange, ServedKeys, SpecKeys, all_pods_serve, keys_hash,
        operator_key, plan, served_keys_secret,
    },
};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

fn qc(spec: Value) -> QdrantCluster {
    serde_json::from_value(json!({
        "apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "prod", "uid": "1234"},
        "spec": spec,
    }))
    .unwrap()
}

fn spec(rw: &str, ro: Option<&str>) -> SpecKeys {
    SpecKeys {
        api_key: rw.into(),
        read_only_api_key: ro.map(Into::into),
    }
}

fn served(rw: &str, alt: &str, ro: Option<&str>) -> ServedKeys {
    ServedKeys {
        api_key: rw.into(),
        alt_api_key: alt.into(),
        read_only_api_key: ro.map(Into::into),
        salt: "5a17".into(),
        rolled_out_at: None,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// [`plan`] at `now` with a one-hour grace period, as (next, change).
fn step(
    spec: Option<&SpecKeys>,
    served: Option<&ServedKeys>,
    rolled: bool,
    now: &str,
) -> (Option<ServedKeys>, KeyChange) {
    let p = plan(spec, served, rolled, at(now), HOUR, || "fresh".to_string());
    (p.next, p.change)
}

fn template_annotation(q: &QdrantCluster, observed: &Observed) -> Option<String> {
    let sts = build::build(q, observed).unwrap().statefulset;
    sts.spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()
        .get(KEYS_HASH_ANNOTATION)
        .cloned()
}

#[test]
fn the_hash_changes_with_every_key_and_the_salt_and_never_shows_a_key() {
    let base = served("key-a", "key-a", Some("ro-a"));
    let h = keys_hash(&base);
    assert_eq!(h.len(), 64);
    assert_eq!(h, keys_hash(&base.clone()), "stable");
    let variants = [
        served("key-b", "key-a", Some("ro-a")),
        served("key-a", "key-b", Some("ro-a")),
        served("key-a", "key-a", Some("ro-b")),
        served("key-a", "key-a", None),
        ServedKeys {
            salt: "other".into(),
            ..base.clone()
        },
    ];
    for v in &variants {
        assert_ne!(keys_hash(v), h, "{v:?}");
    }
    // Moving a key between fields changes it too (no ambiguous concatenation).
    assert_ne!(
        keys_hash(&served("ab", "c", None)),
        keys_hash(&served("a", "bc", None))
    );
    for k in ["key-a", "ro-a", "5a17"] {
        assert!(!h.contains(k));
    }
    // Debug output (what a log line would show) names no key.
    let debug = format!("{base:?}");
    assert!(
        !debug.contains("key-a") && !debug.contains("ro-a"),
        "{debug}"
    );
}

#[test]
fn the_pod_template_carries_the_hash_only_with_keys() {
    let with_keys = qc(json!({"replicas": 3}));
    let observed = Observed {
        keys_hash: Some(keys_hash(&served("k1", "k1", None))),
        ..Observed::default()
    };
    assert_eq!(
        template_annotation(&with_keys, &observed),
        observed.keys_hash
    );
    let rotated = Observed {
        keys_hash: Some(keys_hash(&served("k2", "k1", None))),
        ..Observed::default()
    };
    assert_ne!(
        template_annotation(&with_keys, &rotated),
        template_annotation(&with_keys, &observed),
        "a rotated key changes the template, which rolls the pods"
    );
    let no_auth = qc(json!({"replicas": 3, "auth": {}}));
    assert_eq!(template_annotation(&no_auth, &observed), None);
    assert_eq!(
        template_annotation(&with_keys, &Observed::default()),
        None,
        "render, without the served Secret: no annotation"
    );
}

#[test]
fn the_served_secret_holds_every_key_and_is_owned() {
    let q = qc(json!({"replicas": 3}));
    let s = served_keys_secret(&q, &served("k2", "k1", Some("ro")), false);
    assert_eq!(s.metadata.name.as_deref(), Some("demo-served-keys"));
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("QdrantCluster", "1234")
    );
    assert_eq!(owner.controller, Some(true));
    let read = ServedKeys::from_secret(&s).unwrap();
    assert_eq!(read, served("k2", "k1", Some("ro")));
    // Mid-roll the key every controller sends is the previous one; once rolled, the new one.
    let operator = |s: &k8s_openapi::api::core::v1::Secret| {
        String::from_utf8(s.data.as_ref().unwrap()["operator-api-key"].0.clone()).unwrap()
    };
    assert_eq!(operator(&s), "k1");
    let rolled = served_keys_secret(&q, &served("k2", "k1", Some("ro")), true);
    assert_eq!(operator(&rolled), "k2");
    let timed = ServedKeys {
        rolled_out_at: Some(at("2026-01-01T00:10:00Z")),
        ..served("k2", "k1", None)
    };
    let read = ServedKeys::from_secret(&served_keys_secret(&q, &timed, true)).unwrap();
    assert_eq!(read, timed);
    let no_ro = served_keys_secret(&q, &served("k2", "k2", None), true);
    assert!(
        !no_ro
            .data
            .as_ref()
            .unwrap()
            .contains_key("read-only-api-key")
    );
    assert_eq!(
        ServedKeys::from_secret(&no_ro).unwrap().read_only_api_key,
        None
    );
}

/// A to B: rotate (operator sends A), every pod rolled (sends B, the hour of grace starts),
/// the hour over (A dropped, a second roll), rolled again (settled on B). Each step only once
/// every pod runs the previous state.
#[test]
fn a_rotation_keeps_the_old_key_until_every_pod_runs_the_new_one_then_drops_it() {
    let t0 = "2026-01-01T00:00:00Z";
    let a = spec("A", None);
    let (first, change) = step(Some(&a), None, false, t0);
    assert_eq!(change, KeyChange::Created);
    let first = first.unwrap();
    assert_eq!(
        first,
        ServedKeys {
            salt: "fresh".into(),
            ..served("A", "A", None)
        }
    );
    assert_eq!(operator_key(&first, false), "A");

    let b = spec("B", None);
    // Pods not all at the current state: nothing moves.
    let (held, change) = step(Some(&b), Some(&first), false, t0);
    assert_eq!((held.as_ref(), change), (Some(&first), KeyChange::None));

    let (rotating, change) = step(Some(&b), Some(&first), true, t0);
    let rotating = rotating.unwrap();
    assert_eq!(change, KeyChange::Rotated);
    assert_eq!(
        rotating,
        ServedKeys {
            salt: "fresh".into(),
            ..served("B", "A", None)
        }
    );
    assert_eq!(
        operator_key(&rotating, false),
        "A",
        "old pods accept only A"
    );
    assert_eq!(operator_key(&rotating, true), "B");

    // Mid-roll, a third key waits: no pod set would accept a common key.
    let c = spec("C", None);
    let (held, change) = step(Some(&c), Some(&rotating), false, t0);
    assert_eq!((held.unwrap(), change), (rotating.clone(), KeyChange::None));

    // Every pod runs {B, alt A}: the grace period starts, the pods keep their template.
    let p = plan(
        Some(&b),
        Some(&rotating),
        true,
        at("2026-01-01T00:10:00Z"),
        HOUR,
        || unreachable!(),
    );
    assert_eq!(p.change, KeyChange::RolledOut);
    assert_eq!(p.recheck, Some(HOUR));
    let grace = p.next.unwrap();
    assert_eq!(grace.rolled_out_at, Some(at("2026-01-01T00:10:00Z")));
    assert_eq!(
        keys_hash(&grace),
        keys_hash(&rotating),
        "no pod restarts for it"
    );
    assert_eq!(operator_key(&grace, true), "B");
    let p = plan(
        Some(&b),
        Some(&grace),
        true,
        at("2026-01-01T00:40:00Z"),
        HOUR,
        || unreachable!(),
    );
    assert_eq!((p.change, p.recheck), (KeyChange::None, Some(HOUR / 2)));

    let (dropping, change) = step(Some(&b), Some(&grace), true, "2026-01-01T01:10:00Z");
    let dropping = dropping.unwrap();
    assert_eq!(change, KeyChange::OldKeyDropped);
    assert_eq!(
        (dropping.alt_api_key.as_str(), dropping.rolled_out_at),
        ("B", None)
    );
    assert_eq!(
        operator_key(&dropping, false),
        "B",
        "old pods accept B and A"
    );

    let (settled, change) = step(Some(&b), Some(&dropping), true, "2026-01-01T02:00:00Z");
    assert_eq!((settled.unwrap(), change), (dropping, KeyChange::None));
}

#[test]
fn no_grace_drops_at_once_a_rotation_in_the_grace_skips_it_and_read_only_keys_roll_once() {
    let now = "2026-01-01T00:00:00Z";
    let p = plan(
        Some(&spec("B", None)),
        Some(&served("B", "A", None)),
        true,
        at(now),
        Duration::ZERO,
        || unreachable!(),
    );
    assert_eq!(p.change, KeyChange::OldKeyDropped);
    assert_eq!(p.next.unwrap(), served("B", "B", None));
    // Every pod serves {B, alt A}; the key moves on to C: {C, alt B}, A gone at once.
    let in_grace = ServedKeys {
        rolled_out_at: Some(at(now)),
        ..served("B", "A", None)
    };
    let (next, change) = step(Some(&spec("C", None)), Some(&in_grace), true, now);
    assert_eq!(change, KeyChange::Rotated);
    assert_eq!(next.unwrap(), served("C", "B", None));
    // Only the read-only key changes: one roll, no alt to drop afterwards.
    let (next, change) = step(
        Some(&spec("A", Some("ro2"))),
        Some(&served("A", "A", Some("ro1"))),
        true,
        now,
    );
    assert_eq!(change, KeyChange::Rotated);
    let next = next.unwrap();
    assert_eq!(next, served("A", "A", Some("ro2")));
    assert!(!next.accepts_old_key());
    // A key that cannot be read moves nothing.
    let (next, change) = step(None, Some(&served("B", "A", None)), true, now);
    assert_eq!(
        (next.unwrap(), change),
        (served("B", "A", None), KeyChange::None)
    );
    assert_eq!(step(None, None, true, now), (None, KeyChange::None));
}

#[test]
fn pods_serve_a_state_when_every_existing_pod_carries_its_hash() {
    assert!(all_pods_serve("h2", [Some("h2"), Some("h2")]));
    assert!(
        all_pods_serve("h2", []),
        "no pod yet: created from the template"
    );
    assert!(!all_pods_serve("h2", [Some("h2"), Some("h1")]));
    assert!(
        !all_pods_serve("h2", [Some("h2"), None]),
        "unannotated or terminating"
    );
}
