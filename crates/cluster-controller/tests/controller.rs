//! The real kube-runtime Controller (watches, owned children, graceful shutdown) running
//! against the in-process fake API server: the wiring of `controller::run`, not just the
//! reconcile function.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use cluster_controller::{context::Context, controller};
use reconcile_lib::{guard, metrics::Metrics, runtime::Shutdown};
use serde_json::json;
use testkit::{apiserver::FakeApiServer, eventually};

/// `controller::run` in namespace `ns` against `fake`, with the resync an hour away: anything
/// a test sees is driven by watch events.
struct Running {
    trigger: reconcile_lib::runtime::ShutdownTrigger,
    run: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(fake: &FakeApiServer) -> Self {
        let mut ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")));
        ctx.resync = Duration::from_secs(3600);
        let (trigger, shutdown) = Shutdown::channel();
        let run = tokio::spawn(controller::run(
            fake.client(),
            Some("ns".into()),
            Arc::new(ctx),
            shutdown,
        ));
        Self { trigger, run }
    }

    /// Fires the shutdown; the controller must stop within 10 s.
    async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.run)
            .await
            .expect("stops on shutdown")
            .unwrap();
    }
}

#[tokio::test]
async fn the_controller_reconciles_on_watch_events_and_stops_on_shutdown() {
    let fake = FakeApiServer::new();
    let running = Running::start(&fake);

    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "ns"}, "spec": {"replicas": 3}}),
    );
    eventually("the StatefulSet", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "demo")
            .is_some()
    })
    .await;
    eventually("the status", || {
        fake.get(
            "qdrant.operator.dev/v1alpha1",
            "qdrantclusters",
            Some("ns"),
            "demo",
        )
        .is_some_and(|q| q["status"]["phase"] == json!("Creating"))
    })
    .await;

    // An owned child deleted behind the controller's back comes back through the owns() watch.
    fake.remove("v1", "services", Some("ns"), "demo-headless");
    eventually("the headless Service restored", || {
        fake.get("v1", "services", Some("ns"), "demo-headless")
            .is_some()
    })
    .await;

    // A spec change is picked up from the watch.
    fake.edit(
        "qdrant.operator.dev/v1alpha1",
        "qdrantclusters",
        Some("ns"),
        "demo",
        |q| q["spec"]["replicas"] = json!(5),
    );
    eventually("the StatefulSet scaled", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "demo")
            .is_some_and(|s| s["spec"]["replicas"] == json!(5))
    })
    .await;

    // Objects in other namespaces are not this controller's business.
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "elsewhere", "namespace": "other"}, "spec": {"replicas": 1}}),
    );

    running.stop().await;
    assert!(
        fake.get("apps/v1", "statefulsets", Some("other"), "elsewhere")
            .is_none()
    );
}

/// A stored QdrantCluster the controller cannot decode (`replicas` past i32, as written before
/// the CRD bounded it) does not stop the watch: the other clusters are reconciled, the bad one
/// gets a Warning event naming the problem, and once fixed it is reconciled too.
#[tokio::test]
async fn an_undecodable_cluster_does_not_stall_the_others() {
    let fake = FakeApiServer::new();
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "broken", "namespace": "ns"}, "spec": {"replicas": 5_000_000_000_u64}}),
    );
    let running = Running::start(&fake);
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "good", "namespace": "ns"}, "spec": {"replicas": 3}}),
    );
    eventually("the good cluster's StatefulSet", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "good")
            .is_some()
    })
    .await;
    eventually("a Warning event on the broken cluster", || {
        fake.has_event("ns", guard::INVALID_OBJECT, "broken", "5000000000")
    })
    .await;
    assert!(
        fake.get("apps/v1", "statefulsets", Some("ns"), "broken")
            .is_none()
    );
    // Fixed: reconciled like any other.
    fake.edit(
        "qdrant.operator.dev/v1alpha1",
        "qdrantclusters",
        Some("ns"),
        "broken",
        |q| q["spec"]["replicas"] = json!(1),
    );
    eventually("the fixed cluster's StatefulSet", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "broken")
            .is_some()
    })
    .await;
    running.stop().await;
}

/// `--namespaces a,b`: one controller per listed namespace, sharing one context; clusters in
/// those namespaces are reconciled, one in another namespace is not.
#[tokio::test]
async fn watching_a_list_of_namespaces_reconciles_only_those() {
    let fake = FakeApiServer::new();
    for ns in ["a", "b", "c"] {
        fake.insert(
            json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
            "metadata": {"name": "demo", "namespace": ns}, "spec": {"replicas": 1}}),
        );
    }
    let mut ctx = Context::new(fake.client(), Arc::new(Metrics::new("test")));
    ctx.resync = Duration::from_secs(3600);
    let ctx = Arc::new(ctx);
    let (trigger, shutdown) = Shutdown::channel();
    let scopes = vec![Some("a".to_string()), Some("b".to_string())];
    let run = {
        let fake = fake.clone();
        tokio::spawn(reconcile_lib::cli::run_scoped(
            scopes,
            fake.client(),
            ctx,
            shutdown,
            controller::run,
        ))
    };
    for ns in ["a", "b"] {
        eventually("the StatefulSet of a watched namespace", || {
            fake.get("apps/v1", "statefulsets", Some(ns), "demo")
                .is_some()
        })
        .await;
    }
    assert!(
        fake.get("apps/v1", "statefulsets", Some("c"), "demo")
            .is_none()
    );
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.contains("/namespaces/c/")),
        "namespace c was read"
    );
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();
}

/// `depth` objects nested in one another: `{"a": {"a": … {}}}`.
fn nested(depth: usize) -> serde_json::Value {
    let mut value = json!({});
    for _ in 0..depth {
        value = json!({ "a": value });
    }
    value
}

/// A QdrantCluster whose `config` is nested past serde_json's recursion limit (128) would fail
/// the decoding of every list and watch event that carries it. Stored before the controller
/// starts (it arrives in the initial list) and created while it runs (a watch event), neither
/// stalls the controller: the good cluster is reconciled, each bad one gets a Warning event
/// saying how deep is too deep.
#[tokio::test]
async fn a_cluster_nested_too_deep_does_not_stall_the_others() {
    let fake = FakeApiServer::new();
    let deep = |name: &str| {
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"replicas": 1, "config": nested(130)}})
    };
    fake.insert(deep("listed"));
    let running = Running::start(&fake);
    fake.insert(
        json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "good", "namespace": "ns"}, "spec": {"replicas": 1}}),
    );
    eventually("the good cluster's StatefulSet", || {
        fake.get("apps/v1", "statefulsets", Some("ns"), "good")
            .is_some()
    })
    .await;
    fake.insert(deep("watched"));
    for name in ["listed", "watched"] {
        eventually("a Warning event on the deep cluster", || {
            fake.has_event(
                "ns",
                guard::INVALID_OBJECT,
                name,
                "nested deeper than 100 levels",
            )
        })
        .await;
        assert!(
            fake.get("apps/v1", "statefulsets", Some("ns"), name)
                .is_none()
        );
    }
    running.stop().await;
}

/// A user's key Secret is not owned, yet rotating it reconciles the cluster that reads it at
/// once (the resync is an hour away): the served copy takes the new key, keeping the old one
/// as alt while the pods run the previous state.
#[tokio::test]
async fn a_rotated_user_secret_is_seen_through_the_secret_watch() {
    let fake = FakeApiServer::new();
    let secret = |value: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "team-key", "namespace": "ns"},
            "stringData": {"token": value}})
    };
    fake.insert(secret("first-key"));
    let running = Running::start(&fake);
    fake.insert(json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
        "metadata": {"name": "demo", "namespace": "ns"},
        "spec": {"replicas": 3, "auth": {"apiKey": {"secretKeyRef": {"name": "team-key", "key": "token"}}}}}));
    let served = |key: &str| {
        fake.get("v1", "secrets", Some("ns"), "demo-served-keys")
            .and_then(|s| serde_json::from_value(s).ok())
            .and_then(|s| reconcile_lib::secrets::secret_value(&s, key))
    };
    eventually("the first key served", || {
        served("api-key").as_deref() == Some("first-key")
    })
    .await;
    // The pods, created from the template (what the StatefulSet controller would do).
    let annotation = cluster_controller::build::served_keys::KEYS_HASH_ANNOTATION;
    let hash = fake
        .get("apps/v1", "statefulsets", Some("ns"), "demo")
        .unwrap()["spec"]["template"]["metadata"]["annotations"][annotation]
        .clone();
    for i in 0..3 {
        fake.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("demo-{i}"), "namespace": "ns",
                "labels": {"app.kubernetes.io/name": "qdrant", "app.kubernetes.io/instance": "demo"},
                "annotations": {annotation: hash}},
            "spec": {"containers": [{"name": "qdrant", "image": "qdrant/qdrant"}]}}));
    }
    fake.remove("v1", "secrets", Some("ns"), "team-key");
    fake.insert(secret("second-key"));
    eventually("the rotated key served, the first as alt", || {
        served("api-key").as_deref() == Some("second-key")
            && served("alt-api-key").as_deref() == Some("first-key")
    })
    .await;
    running.stop().await;
}

/// The Secret watch's mapper: the clusters of the Secret's namespace that read it through
/// `spec.auth` or `spec.tls.secretName`; not the generated Secrets (they are owned).
#[test]
fn a_secret_maps_to_the_clusters_that_read_it() {
    let qc = |ns: &str, name: &str, spec: serde_json::Value| -> api_types::QdrantCluster {
        serde_json::from_value(json!({"apiVersion": "qdrant.operator.dev/v1alpha1",
            "kind": "QdrantCluster", "metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .unwrap()
    };
    let byo = json!({"replicas": 1, "auth": {
        "apiKey": {"secretKeyRef": {"name": "rw", "key": "k"}},
        "readOnlyApiKey": {"secretKeyRef": {"name": "ro", "key": "k"}}}});
    let clusters = [
        qc("a", "one", byo.clone()),
        qc("b", "two", byo),
        qc(
            "a",
            "three",
            json!({"replicas": 1, "tls": {"client": {"enabled": true}, "secretName": "certs"}}),
        ),
        qc("a", "gen", json!({"replicas": 1})),
    ];
    let readers = |ns: &str, name: &str| controller::readers_of_secret(ns, name, &clusters);
    assert_eq!(readers("a", "rw"), [("a".to_string(), "one".to_string())]);
    assert_eq!(readers("a", "ro"), [("a".to_string(), "one".to_string())]);
    assert_eq!(readers("b", "rw"), [("b".to_string(), "two".to_string())]);
    assert_eq!(
        readers("a", "certs"),
        [("a".to_string(), "three".to_string())]
    );
    assert!(
        readers("a", "gen-api-key").is_empty(),
        "owned: seen through owns()"
    );
    assert!(readers("c", "rw").is_empty());
}
