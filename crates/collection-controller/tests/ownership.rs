//! Ownership tests: who holds a collection, read from `result.config.metadata` of `GET
//! /collections/{name}` as Qdrant 1.18 returns it (absent when the collection never had
//! metadata; `null` values kept as given at creation).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use collection_controller::ownership::{
    Claim, DECLARED_KEY, Declared, OWNER_KEY, Owner, claim, mark, release,
};
use serde_json::{Value, json};

fn me() -> Owner {
    Owner {
        namespace: "search".into(),
        name: "articles".into(),
        uid: "uid-1".into(),
    }
}

fn config_with(metadata: Value) -> Value {
    json!({"params": {"vectors": {"size": 4, "distance": "Dot"}}, "metadata": metadata})
}

#[test]
fn no_or_null_owner_is_unmarked() {
    let no_metadata = json!({"params": {"vectors": {"size": 4, "distance": "Dot"}}});
    assert_eq!(claim(&no_metadata, &me()), Claim::Unmarked);
    assert_eq!(claim(&config_with(json!({})), &me()), Claim::Unmarked);
    assert_eq!(
        claim(&config_with(json!({"team": "a", OWNER_KEY: null})), &me()),
        Claim::Unmarked
    );
}

#[test]
fn our_mark_returns_what_we_declared() {
    let declared = Declared {
        payload_indexes: ["year".to_string(), "lang".to_string()].into(),
        aliases: ["live".to_string()].into(),
    };
    let metadata = mark(&me(), &declared);
    assert_eq!(
        metadata,
        json!({
            OWNER_KEY: {"namespace": "search", "name": "articles", "uid": "uid-1"},
            DECLARED_KEY: {"payloadIndexes": ["lang", "year"], "aliases": ["live"]},
        })
    );
    assert_eq!(claim(&config_with(metadata), &me()), Claim::Ours(declared));
    // A record someone damaged counts as nothing declared: nothing is deleted on its account.
    let damaged = config_with(json!({
        OWNER_KEY: {"namespace": "search", "name": "articles", "uid": "uid-1"},
        DECLARED_KEY: "everything",
    }));
    assert_eq!(claim(&damaged, &me()), Claim::Ours(Declared::default()));
}

#[test]
fn another_uid_or_an_unknown_owner_value_is_foreign() {
    // Same namespace and name, another uid: a re-created object is another object.
    let other = config_with(
        json!({OWNER_KEY: {"namespace": "search", "name": "articles", "uid": "uid-2"}}),
    );
    assert_eq!(
        claim(&other, &me()),
        Claim::Foreign("search/articles (uid uid-2)".into())
    );
    let odd = config_with(json!({OWNER_KEY: "someone"}));
    assert_eq!(
        claim(&odd, &me()),
        Claim::Foreign(format!("{OWNER_KEY}: \"someone\""))
    );
}

#[test]
fn release_nulls_both_keys() {
    assert_eq!(release(), json!({OWNER_KEY: null, DECLARED_KEY: null}));
}

#[test]
fn declared_of_the_spec_and_union() {
    let spec: api_types::collection::QdrantCollectionSpec = serde_json::from_value(json!({
        "cluster": {"name": "demo"},
        "payloadIndexes": [{"field": "b", "schema": "Keyword"}, {"field": "a", "schema": "Integer"}],
        "aliases": ["z", "y"],
    }))
    .unwrap();
    let now = Declared::of(&spec);
    assert_eq!(
        serde_json::to_value(&now).unwrap(),
        json!({"payloadIndexes": ["a", "b"], "aliases": ["y", "z"]})
    );
    let before = Declared {
        payload_indexes: ["c".to_string()].into(),
        aliases: ["y".to_string()].into(),
    };
    assert_eq!(
        serde_json::to_value(now.union(&before)).unwrap(),
        json!({"payloadIndexes": ["a", "b", "c"], "aliases": ["y", "z"]})
    );
}
