//! Tests of the fake Kubernetes API server: the real `kube` client and `kube::runtime`
//! watchers run against it, in-process and over HTTP.

use std::{collections::BTreeMap, error::Error, time::Duration};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::ConfigMap};
use kube::{
    Api,
    api::{
        DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
        WatchParams,
    },
    core::Status,
    runtime::watcher::{self, Event},
};
use serde_json::{Value, json};
use testkit::apiserver::{Failure, FakeApiServer};

type TestResult = Result<(), Box<dyn Error + Send + Sync>>;
type BoxError = Box<dyn Error + Send + Sync>;

const WAIT: Duration = Duration::from_secs(10);

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let to_map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: (!labels.is_empty()).then(|| to_map(labels)),
            ..ObjectMeta::default()
        },
        data: Some(to_map(data)),
        ..ConfigMap::default()
    }
}

fn stateful_set(name: &str, replicas: i32) -> Result<StatefulSet, BoxError> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "qdrant", "image": "qdrant/qdrant:v1.18.0" }] }
            }
        },
        "status": { "replicas": 7, "availableReplicas": 7 }
    }))?)
}

fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Result<Box<Status>, BoxError> {
    match result {
        Err(kube::Error::Api(status)) => Ok(status),
        Err(other) => Err(format!("expected an API error, got {other}").into()),
        Ok(value) => Err(format!("expected an API error, got success: {value:?}").into()),
    }
}

fn rv<K: kube::Resource>(obj: &K) -> Result<String, BoxError> {
    obj.meta()
        .resource_version
        .clone()
        .ok_or_else(|| "no resourceVersion".into())
}

fn names(list: &[ConfigMap]) -> Vec<String> {
    list.iter()
        .map(|cm| cm.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn create_get_list_with_selectors() -> TestResult {
    let fake = FakeApiServer::new();
    let client = fake.client();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let created = api
        .create(
            &PostParams::default(),
            &config_map("a", &[("app", "x"), ("tier", "db")], &[("k", "v")]),
        )
        .await?;
    assert!(
        created
            .metadata
            .uid
            .as_deref()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    api.create(
        &PostParams::default(),
        &config_map("b", &[("app", "y")], &[]),
    )
    .await?;
    api.create(&PostParams::default(), &config_map("c", &[], &[]))
        .await?;
    Api::<ConfigMap>::namespaced(client.clone(), "other")
        .create(
            &PostParams::default(),
            &config_map("d", &[("app", "x")], &[]),
        )
        .await?;

    let got = api.get("a").await?;
    assert_eq!(got.data, created.data);
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );

    let list = |selector: &'static str| {
        let api = api.clone();
        async move {
            Ok::<_, kube::Error>(names(
                &api.list(&ListParams::default().labels(selector))
                    .await?
                    .items,
            ))
        }
    };
    assert_eq!(list("app=x").await?, ["a"]);
    assert_eq!(list("app!=x").await?, ["b", "c"]);
    assert_eq!(list("app").await?, ["a", "b"]);
    assert_eq!(list("!app").await?, ["c"]);
    assert_eq!(list("app in (x,y),tier=db").await?, ["a"]);
    assert_eq!(list("").await?, ["a", "b", "c"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await?;
    assert_eq!(names(&by_name.items), ["b"]);
    let everywhere = Api::<ConfigMap>::all(client)
        .list(&ListParams::default().labels("app=x"))
        .await?;
    assert_eq!(names(&everywhere.items), ["a", "d"]);

    let status = api_error(api.get("missing").await)?;
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    let status = api_error(
        api.create(&PostParams::default(), &config_map("a", &[], &[]))
            .await,
    )?;
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(fake.writes().len(), 5);
    Ok(())
}

#[tokio::test]
async fn list_pages_and_generate_name() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    let mut generated = config_map("", &[], &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".to_owned());
    let first = api.create(&PostParams::default(), &generated).await?;
    let second = api.create(&PostParams::default(), &generated).await?;
    let (first, second) = (first.metadata.name, second.metadata.name);
    assert!(
        first
            .as_deref()
            .is_some_and(|n| n.starts_with("gen-") && n.len() == 9)
    );
    assert_ne!(first, second);
    for name in ["p1", "p2", "p3"] {
        api.create(&PostParams::default(), &config_map(name, &[], &[]))
            .await?;
    }
    let page = api.list(&ListParams::default().limit(2)).await?;
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().ok_or("no continue token")?;
    let rest = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await?;
    assert_eq!(rest.items.len(), 3);
    assert!(rest.metadata.continue_.as_deref().is_none_or(str::is_empty));
    assert_eq!(
        page.metadata.resource_version,
        rest.metadata.resource_version
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_is_idempotent_and_tracks_generation() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<StatefulSet> = Api::default_namespaced(fake.client());
    let params = PatchParams::apply("qdrant-operator").force();
    let first = api
        .patch("db", &params, &Patch::Apply(&stateful_set("db", 3)?))
        .await?;
    assert_eq!(first.metadata.generation, Some(1));
    assert!(
        first.status.is_none(),
        "apply must not set status through the main resource"
    );
    let again = api
        .patch("db", &params, &Patch::Apply(&stateful_set("db", 3)?))
        .await?;
    assert_eq!(rv(&again)?, rv(&first)?);
    assert_eq!(again.metadata.generation, Some(1));

    let scaled = api
        .patch("db", &params, &Patch::Apply(&stateful_set("db", 5)?))
        .await?;
    assert_ne!(rv(&scaled)?, rv(&first)?);
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(scaled.spec.as_ref().and_then(|s| s.replicas), Some(5));
    assert_eq!(
        fake.writes().len(),
        3,
        "the no-op apply is still a recorded write"
    );
    let writes = fake.writes();
    assert_eq!(
        writes[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(
        writes[0]
            .query
            .as_deref()
            .is_some_and(|q| q.contains("fieldManager=qdrant-operator"))
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_removes_fields_the_manager_dropped() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    let ours = PatchParams::apply("ours").force();
    let theirs = PatchParams::apply("theirs").force();
    api.patch(
        "cfg",
        &ours,
        &Patch::Apply(&config_map(
            "cfg",
            &[("a", "1"), ("b", "2")],
            &[("x", "1"), ("y", "2")],
        )),
    )
    .await?;
    api.patch(
        "cfg",
        &theirs,
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "cfg", "labels": { "c": "3" } },
            "data": { "z": "3", "y": "2" }
        })),
    )
    .await?;
    // Changed by an update (not an apply): nobody applied it, so it survives.
    api.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "w": "4" } })),
    )
    .await?;
    let after = api
        .patch(
            "cfg",
            &ours,
            &Patch::Apply(&config_map("cfg", &[("a", "1")], &[("x", "1")])),
        )
        .await?;
    let labels = after.metadata.labels.clone().unwrap_or_default();
    let data = after.data.clone().unwrap_or_default();
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["w", "x", "y", "z"],
        "y is still applied by theirs"
    );
    Ok(())
}

#[tokio::test]
async fn status_subresource_is_isolated() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<StatefulSet> = Api::default_namespaced(fake.client());
    let created = api
        .create(&PostParams::default(), &stateful_set("db", 3)?)
        .await?;
    assert!(created.status.is_none(), "create drops status");

    let with_status = api
        .patch_status(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 9 }, "status": { "replicas": 3, "readyReplicas": 2 } })),
        )
        .await?;
    assert_eq!(with_status.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(
        with_status.status.as_ref().and_then(|s| s.ready_replicas),
        Some(2)
    );
    assert_eq!(with_status.metadata.generation, Some(1));
    assert_ne!(rv(&with_status)?, rv(&created)?);

    let patched = api
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 4 }, "status": { "readyReplicas": 0 } })),
        )
        .await?;
    assert_eq!(patched.spec.as_ref().and_then(|s| s.replicas), Some(4));
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.ready_replicas),
        Some(2)
    );
    assert_eq!(patched.metadata.generation, Some(2));

    let mut replaced = patched.clone();
    if let Some(status) = replaced.status.as_mut() {
        status.replicas = 1;
    }
    let replaced = api
        .replace_status("db", &PostParams::default(), &replaced)
        .await?;
    assert_eq!(replaced.status.as_ref().map(|s| s.replicas), Some(1));
    assert_eq!(replaced.metadata.generation, Some(2));

    // ConfigMaps have no status subresource.
    let cms: Api<ConfigMap> = Api::default_namespaced(fake.client());
    cms.create(&PostParams::default(), &config_map("c", &[], &[]))
        .await?;
    let status = api_error(cms.get_status("c").await)?;
    assert_eq!(status.code, 404);
    Ok(())
}

#[tokio::test]
async fn merge_and_json_patches() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    let created = api
        .create(
            &PostParams::default(),
            &config_map("cfg", &[("keep", "1")], &[("a", "1"), ("b", "2")]),
        )
        .await?;
    let merged = api
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "new": "2" } }, "data": { "a": null, "c": "3" } })),
        )
        .await?;
    let data = merged.data.clone().unwrap_or_default();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(merged.metadata.labels.clone().unwrap_or_default().len(), 2);
    assert_eq!(merged.metadata.uid, created.metadata.uid);
    assert_ne!(rv(&merged)?, rv(&created)?);

    let noop = api
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "c": "3" } })),
        )
        .await?;
    assert_eq!(
        rv(&noop)?,
        rv(&merged)?,
        "a no-op patch keeps the resourceVersion"
    );

    let json_patch = Patch::<()>::Json(serde_json::from_value(json!([
        { "op": "replace", "path": "/data/b", "value": "20" },
        { "op": "add", "path": "/data/d", "value": "4" }
    ]))?);
    let patched = api
        .patch("cfg", &PatchParams::default(), &json_patch)
        .await?;
    let data = patched.data.unwrap_or_default();
    assert_eq!(data.get("b").map(String::as_str), Some("20"));
    assert_eq!(data.get("d").map(String::as_str), Some("4"));

    let failing = Patch::<()>::Json(serde_json::from_value(json!([
        { "op": "test", "path": "/data/b", "value": "nope" }
    ]))?);
    let status = api_error(api.patch("cfg", &PatchParams::default(), &failing).await)?;
    assert_eq!(status.code, 422);
    let status = api_error(
        api.patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
    )?;
    assert_eq!(status.code, 404);
    Ok(())
}

#[tokio::test]
async fn replace_with_stale_resource_version_conflicts() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    let created = api
        .create(
            &PostParams::default(),
            &config_map("cfg", &[], &[("a", "1")]),
        )
        .await?;
    let mut first = created.clone();
    first.data = Some(BTreeMap::from([("a".to_owned(), "2".to_owned())]));
    let replaced = api.replace("cfg", &PostParams::default(), &first).await?;
    assert_eq!(
        replaced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("2")
    );

    let mut stale = created;
    stale.data = Some(BTreeMap::from([("a".to_owned(), "3".to_owned())]));
    let status = api_error(api.replace("cfg", &PostParams::default(), &stale).await)?;
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let live = api.get("cfg").await?;
    assert_eq!(live.data, replaced.data);

    let status = api_error(
        api.replace(
            "missing",
            &PostParams::default(),
            &config_map("missing", &[], &[]),
        )
        .await,
    )?;
    assert_eq!(status.code, 404);
    Ok(())
}

#[tokio::test]
async fn delete_with_finalizer_waits_for_its_removal() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    let mut cm = config_map("cfg", &[], &[]);
    cm.metadata.finalizers = Some(vec!["qdrant.operator.dev/cleanup".to_owned()]);
    let created = api.create(&PostParams::default(), &cm).await?;

    let deleted = api.delete("cfg", &DeleteParams::default()).await?;
    let marked = deleted.left().ok_or("expected the object back")?;
    assert!(marked.metadata.deletion_timestamp.is_some());
    let live = api.get("cfg").await?;
    assert!(live.metadata.deletion_timestamp.is_some());
    assert_ne!(rv(&live)?, rv(&created)?);
    // Deleting again changes nothing.
    api.delete("cfg", &DeleteParams::default()).await?;
    assert_eq!(rv(&api.get("cfg").await?)?, rv(&live)?);

    api.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await?;
    assert!(api.get_opt("cfg").await?.is_none());

    api.create(&PostParams::default(), &config_map("plain", &[], &[]))
        .await?;
    api.delete("plain", &DeleteParams::default()).await?;
    assert!(api.get_opt("plain").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn owner_deletion_collects_dependents() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    let owner_ref = |cm: &ConfigMap| -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "name": cm.metadata.name, "uid": cm.metadata.uid, "controller": true
        })
    };
    let with_owners =
        |name: &str, owners: &[Value], finalizers: &[&str]| -> Result<ConfigMap, BoxError> {
            Ok(serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": name, "ownerReferences": owners, "finalizers": finalizers }
            }))?)
        };
    let pp = PostParams::default();
    let parent = api.create(&pp, &config_map("parent", &[], &[])).await?;
    let other = api.create(&pp, &config_map("other", &[], &[])).await?;
    let child = api
        .create(&pp, &with_owners("child", &[owner_ref(&parent)], &[])?)
        .await?;
    api.create(&pp, &with_owners("grandchild", &[owner_ref(&child)], &[])?)
        .await?;
    api.create(
        &pp,
        &with_owners("guarded", &[owner_ref(&parent)], &["x/y"])?,
    )
    .await?;
    api.create(
        &pp,
        &with_owners("shared", &[owner_ref(&parent), owner_ref(&other)], &[])?,
    )
    .await?;

    api.delete("parent", &DeleteParams::background()).await?;
    assert!(api.get_opt("parent").await?.is_none());
    assert!(api.get_opt("child").await?.is_none());
    assert!(api.get_opt("grandchild").await?.is_none());
    let guarded = api.get("guarded").await?;
    assert!(guarded.metadata.deletion_timestamp.is_some());
    let shared = api.get("shared").await?;
    let refs = shared.metadata.owner_references.unwrap_or_default();
    assert_eq!(refs.len(), 1);
    assert_eq!(Some(refs[0].uid.clone()), other.metadata.uid);

    // Removing behind the back also collects dependents.
    assert!(fake.remove("v1", "configmaps", Some("default"), "other"));
    assert!(api.get_opt("shared").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn injected_failures_answer_a_status_then_recover() -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    let created = api
        .create(
            &PostParams::default(),
            &config_map("cfg", &[], &[("a", "1")]),
        )
        .await?;
    fake.fail_next(Failure {
        method: Some(http::Method::PATCH),
        path_contains: Some("/configmaps/cfg".to_owned()),
        status: 409,
        times: 1,
    });
    fake.fail_next(Failure {
        method: None,
        path_contains: None,
        status: 503,
        times: 2,
    });
    let patch = Patch::Merge(json!({ "data": { "a": "2" } }));
    let status = api_error(api.patch("cfg", &PatchParams::default(), &patch).await)?;
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let status = api_error(api.get("cfg").await)?;
    assert_eq!(
        (status.code, status.reason.as_str()),
        (503, "ServiceUnavailable")
    );
    let status = api_error(api.patch("cfg", &PatchParams::default(), &patch).await)?;
    assert_eq!(status.code, 503);
    assert_eq!(
        fake.get("v1", "configmaps", Some("default"), "cfg")
            .and_then(|o| o.pointer("/data/a").cloned()),
        Some(json!("1")),
        "failed requests change nothing"
    );
    let patched = api.patch("cfg", &PatchParams::default(), &patch).await?;
    assert_ne!(rv(&patched)?, rv(&created)?);
    assert_eq!(fake.writes().len(), 4);
    assert_eq!(fake.requests().len(), 5);
    fake.clear_requests();
    assert!(fake.requests().is_empty());

    fake.fail_next(Failure {
        method: Some(http::Method::POST),
        path_contains: None,
        status: 500,
        times: 1,
    });
    let status = api_error(
        api.create(&PostParams::default(), &config_map("new", &[], &[]))
            .await,
    )?;
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    assert!(api.get_opt("new").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn helpers_seed_edit_and_list() -> TestResult {
    let fake = FakeApiServer::new();
    let seeded = fake.insert(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "db", "namespace": "default" },
        "spec": { "replicas": 1 },
        "status": { "replicas": 1 }
    }));
    assert!(seeded.pointer("/metadata/uid").is_some());
    assert_eq!(seeded.pointer("/metadata/generation"), Some(&json!(1)));
    let api: Api<StatefulSet> = Api::default_namespaced(fake.client());
    let got = api.get("db").await?;
    assert_eq!(got.status.as_ref().map(|s| s.replicas), Some(1));

    assert!(
        fake.edit("apps/v1", "statefulsets", Some("default"), "db", |o| {
            o["status"]["replicas"] = json!(2);
        })
    );
    let after_status = api.get("db").await?;
    assert_eq!(after_status.metadata.generation, Some(1));
    assert_ne!(rv(&after_status)?, rv(&got)?);
    assert!(
        fake.edit("apps/v1", "statefulsets", Some("default"), "db", |o| {
            o["spec"]["replicas"] = json!(3);
        })
    );
    assert_eq!(api.get("db").await?.metadata.generation, Some(2));
    let before = rv(&api.get("db").await?)?;
    assert!(fake.edit("apps/v1", "statefulsets", Some("default"), "db", |_| {}));
    assert_eq!(
        rv(&api.get("db").await?)?,
        before,
        "an edit that changes nothing is no change"
    );
    assert!(!fake.edit("apps/v1", "statefulsets", Some("default"), "nope", |_| {}));

    fake.insert(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "a", "namespace": "x" } }));
    fake.insert(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "b", "namespace": "y" } }));
    assert_eq!(fake.list("v1", "configmaps", None).len(), 2);
    assert_eq!(fake.list("v1", "configmaps", Some("x")).len(), 1);
    assert!(fake.get("v1", "configmaps", Some("y"), "b").is_some());
    assert!(fake.get("v1", "configmaps", None, "b").is_none());
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.method == http::Method::GET)
    );
    Ok(())
}

async fn next_event<S>(stream: &mut S) -> Result<Event<ConfigMap>, BoxError>
where
    S: futures::Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin,
{
    match tokio::time::timeout(WAIT, stream.next()).await? {
        Some(event) => Ok(event?),
        None => Err("the watcher ended".into()),
    }
}

async fn watcher_sees_late_objects(config: watcher::Config) -> TestResult {
    let fake = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    api.create(
        &PostParams::default(),
        &config_map("early", &[("app", "q")], &[]),
    )
    .await?;
    api.create(
        &PostParams::default(),
        &config_map("ignored", &[("app", "other")], &[]),
    )
    .await?;
    let mut stream = watcher::watcher(api.clone(), config.labels("app=q")).boxed();
    let mut initial = Vec::new();
    loop {
        match next_event(&mut stream).await? {
            Event::InitApply(cm) => initial.push(cm),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(names(&initial), ["early"]);

    // Created before the watch request (replayed from history) ...
    api.create(
        &PostParams::default(),
        &config_map("late", &[("app", "q")], &[]),
    )
    .await?;
    // ... and while the watch is open (broadcast).
    let writer = fake.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.insert(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "later", "namespace": "default", "labels": { "app": "q" } }
        }));
        writer.edit("v1", "configmaps", Some("default"), "ignored", |o| {
            o["metadata"]["labels"]["app"] = json!("q");
        });
        writer.remove("v1", "configmaps", Some("default"), "early");
    });
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match next_event(&mut stream).await? {
            Event::Apply(cm) => {
                seen.push(format!("apply {}", cm.metadata.name.unwrap_or_default()))
            }
            Event::Delete(cm) => {
                seen.push(format!("delete {}", cm.metadata.name.unwrap_or_default()))
            }
            _ => {}
        }
    }
    later.await?;
    assert_eq!(
        seen,
        ["apply late", "apply later", "apply ignored", "delete early"]
    );
    Ok(())
}

#[tokio::test]
async fn watcher_with_list_then_watch_sees_late_objects() -> TestResult {
    watcher_sees_late_objects(watcher::Config::default()).await
}

#[tokio::test]
async fn watcher_with_streaming_list_sees_late_objects() -> TestResult {
    watcher_sees_late_objects(watcher::Config::default().streaming_lists()).await
}

#[tokio::test]
async fn raw_watch_events_and_expired_resource_version() -> TestResult {
    let fake = FakeApiServer::with_history_limit(3);
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    let list_rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .ok_or("no list resourceVersion")?;
    let mut cm = config_map("cfg", &[], &[("a", "1")]);
    cm.metadata.finalizers = Some(vec!["x/y".to_owned()]);
    api.create(&PostParams::default(), &cm).await?;
    api.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "a": "2" } })),
    )
    .await?;
    api.delete("cfg", &DeleteParams::default()).await?;
    let stream = api
        .watch(&WatchParams::default().timeout(1), &list_rv)
        .await?;
    let events: Vec<String> = stream
        .map_ok(|event| match event {
            WatchEvent::Added(_) => "ADDED".to_owned(),
            WatchEvent::Modified(cm) => format!(
                "MODIFIED deleting={}",
                cm.metadata.deletion_timestamp.is_some()
            ),
            WatchEvent::Deleted(_) => "DELETED".to_owned(),
            WatchEvent::Bookmark(_) => "BOOKMARK".to_owned(),
            WatchEvent::Error(status) => format!("ERROR {}", status.code),
        })
        .try_collect()
        .await?;
    assert_eq!(
        events,
        [
            "ADDED",
            "MODIFIED deleting=false",
            "MODIFIED deleting=true",
            "BOOKMARK"
        ],
        "the watch ends at its timeout with a bookmark"
    );

    // A fourth event compacts the first one away.
    api.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": [] } })),
    )
    .await?;
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &list_rv)
        .await?
        .boxed();
    match tokio::time::timeout(WAIT, stream.try_next()).await?? {
        Some(WatchEvent::Error(status)) => assert_eq!(status.code, 410),
        other => return Err(format!("expected a 410 ERROR event, got {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn serves_over_http() -> TestResult {
    // Two rustls providers are in the tree (ring, and aws-lc-rs through aws-sdk-s3): kube's
    // HTTP connector needs the process-wide one every binary installs first.
    reconcile_lib::runtime::install_crypto_provider();
    let fake = FakeApiServer::new();
    let addr = fake.serve("127.0.0.1:0".parse()?).await?;
    let config = kube::Config::new(format!("http://{addr}").parse()?);
    let client = reconcile_lib::runtime::client_for(config)?;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let created = api
        .create(
            &PostParams::default(),
            &config_map("cfg", &[], &[("a", "1")]),
        )
        .await?;
    assert_eq!(api.get("cfg").await?.metadata.uid, created.metadata.uid);
    let status = api_error(api.get("missing").await)?;
    assert_eq!(status.code, 404);

    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv(&created)?)
        .await?
        .boxed();
    fake.edit("v1", "configmaps", Some("default"), "cfg", |o| {
        o["data"]["a"] = json!("2");
    });
    match tokio::time::timeout(WAIT, stream.try_next()).await?? {
        Some(WatchEvent::Modified(cm)) => assert_eq!(
            cm.data.unwrap_or_default().get("a").map(String::as_str),
            Some("2")
        ),
        other => return Err(format!("expected MODIFIED, got {other:?}").into()),
    }
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.query.as_deref().is_some_and(|q| q.contains("watch=true")))
    );

    // The controllers' client over real HTTP: an object nested past serde's limit comes back
    // as the guard's error, beside a good one, instead of failing the list.
    let mut config = json!({});
    for _ in 0..200 {
        config = json!({ "a": config });
    }
    for (name, config) in [("deep", config), ("flat", json!({}))] {
        fake.insert(
            json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"config": config}}),
        );
    }
    let clusters: Api<kube::core::DeserializeGuard<api_types::QdrantCluster>> =
        Api::default_namespaced(client);
    let listed = clusters.list(&ListParams::default()).await?;
    let verdicts: Vec<(Option<String>, Result<(), String>)> = listed
        .items
        .iter()
        .map(|g| match &g.0 {
            Ok(c) => (c.metadata.name.clone(), Ok(())),
            Err(invalid) => (invalid.metadata.name.clone(), Err(invalid.error.clone())),
        })
        .collect();
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert!(
        verdicts.contains(&(Some("flat".into()), Ok(()))),
        "{verdicts:?}"
    );
    assert!(
        verdicts
            .iter()
            .any(|(name, verdict)| name.as_deref() == Some("deep")
                && verdict
                    .as_ref()
                    .is_err_and(|e| e.contains("spec is nested deeper than 100 levels"))),
        "{verdicts:?}"
    );
    Ok(())
}

/// As the real API server: a Secret's `stringData` is write-only, merged into `data` (base64)
/// on create and on apply, its values winning for the same key.
#[tokio::test]
async fn a_secrets_string_data_is_stored_in_data() -> TestResult {
    use k8s_openapi::api::core::v1::Secret;
    let api = FakeApiServer::new();
    let secrets: Api<Secret> = Api::namespaced(api.client(), "default");
    let created: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
        "data": {"kept": "b2xk", "both": "b2xk"},
        "stringData": {"both": "new", "plain": "text"}}))?;
    secrets.create(&PostParams::default(), &created).await?;
    let stored = api
        .get("v1", "secrets", Some("default"), "keys")
        .ok_or("stored")?;
    assert_eq!(stored.get("stringData"), None);
    assert_eq!(
        stored["data"],
        json!({"kept": "b2xk", "both": "bmV3", "plain": "dGV4dA=="})
    );
    let patch = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
        "stringData": {"plain": "other"}});
    secrets
        .patch("keys", &PatchParams::apply("test"), &Patch::Apply(&patch))
        .await?;
    let read = secrets.get("keys").await?;
    assert_eq!(read.string_data, None);
    let plain = read
        .data
        .as_ref()
        .and_then(|d| d.get("plain"))
        .ok_or("plain")?;
    assert_eq!(plain.0, b"other");
    Ok(())
}
