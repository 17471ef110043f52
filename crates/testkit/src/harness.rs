//! What every controller's reconcile tests do with the fake API server, once: a [`Harness`]
//! holds a [`FakeApiServer`] and the namespace the test works in, and seeds, reads, edits and
//! inspects objects there, generically over the kind.
//!
//! A controller's tests wrap it in a thin environment of their own that adds only what is
//! theirs: the controller's `Context` and its reconcile function (testkit depends on no
//! controller, it is their dev-dependency). Typed helpers take the kind as a type parameter
//! and find its `apiVersion`, `kind` and plural through [`kube::Resource`], so one helper
//! serves a `QdrantCluster`, a `QdrantBackup` or a `StatefulSet`:
//!
//! ```ignore
//! let h = Harness::new("qdrant");
//! h.seed_spec::<QdrantCluster>("demo", json!({"replicas": 3}));
//! reconcile(Arc::new(h.current::<QdrantCluster>("demo")), ctx).await?;
//! let sts: StatefulSet = h.current("demo");
//! assert!(h.has_event("Created", "demo", "StatefulSet"));
//! ```
//!
//! Untyped helpers ([`get`](Harness::get), [`edit`](Harness::edit), [`list`](Harness::list))
//! name a collection as [`FakeApiServer`] does (`api_version` as in objects, lowercase
//! `plural`), always in the harness's namespace; the fake itself stays at hand as
//! [`Harness::fake`] for anything else (cluster-scoped objects, recorded requests, injected
//! failures).
//!
//! [`reconcile_until`](Harness::reconcile_until) and [`repeat_until`] are the polling loops
//! the tests drive a controller with: reconcile, look, wait, up to a [`Patience`].
//! [`qdrant_writes`] and [`qdrant_reads`] sum up what a controller asked of a [`FakeQdrant`].

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{apiserver::FakeApiServer, qdrant::FakeQdrant};

/// The fake API server and the namespace a test works in, with the helpers every
/// controller's tests share. See the [module documentation](self).
#[derive(Clone)]
pub struct Harness {
    /// The fake API server behind the controller's client.
    pub fake: FakeApiServer,
    namespace: String,
}

/// The `apiVersion` and plural of kind `K`.
fn collection_of<K: Resource<DynamicType = ()>>() -> (String, String) {
    (
        K::api_version(&()).into_owned(),
        K::plural(&()).into_owned(),
    )
}

/// `value` as a `K`; panics naming `what` (a bad object is a bug in the test).
fn typed<K: DeserializeOwned>(value: Value, what: &str) -> K {
    serde_json::from_value(value)
        .unwrap_or_else(|error| panic!("{what} does not deserialize as its kind: {error}"))
}

impl Harness {
    /// An empty fake API server; the helpers work in `namespace`.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self::with_fake(FakeApiServer::new(), namespace)
    }

    /// A harness over an existing fake (e.g. one made with
    /// [`FakeApiServer::with_history_limit`]).
    pub fn with_fake(fake: FakeApiServer, namespace: impl Into<String>) -> Self {
        Self {
            fake,
            namespace: namespace.into(),
        }
    }

    /// The namespace every helper works in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A [`kube::Client`] talking to the fake in-process ([`FakeApiServer::client`]); must be
    /// called inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        self.fake.client()
    }

    // --- seeding -------------------------------------------------------------------------

    /// Seeds `obj` as [`FakeApiServer::insert`] does (no request recorded, `.status` kept),
    /// in the harness's namespace when `obj` names none; returns the stored object.
    ///
    /// A cluster-scoped object (a StorageClass) goes through `fake.insert`: this would give
    /// it a namespace.
    pub fn seed(&self, mut obj: Value) -> Value {
        if obj.pointer("/metadata/namespace").is_none() {
            match obj.get_mut("metadata").and_then(Value::as_object_mut) {
                Some(metadata) => {
                    metadata.insert("namespace".into(), json!(self.namespace));
                }
                None => panic!("Harness::seed: the object has no metadata: {obj}"),
            }
        }
        self.fake.insert(obj)
    }

    /// Seeds the `K` named `name` with `spec` (`apiVersion` and `kind` from `K`) and returns
    /// it as stored (uid, generation, resourceVersion filled in).
    pub fn seed_spec<K>(&self, name: &str, spec: Value) -> K
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let stored = self.seed(json!({
            "apiVersion": K::api_version(&()), "kind": K::kind(&()),
            "metadata": {"name": name, "namespace": self.namespace}, "spec": spec,
        }));
        typed(stored, &format!("seeded {} {name}", K::kind(&())))
    }

    /// Seeds `obj`, then seeds it again with the `.status` that `status` makes of the stored
    /// object (e.g. conditions naming its `metadata.generation`), as another controller
    /// would have written it. Returns the stored object.
    pub fn seed_with_status(&self, obj: Value, status: impl FnOnce(&Value) -> Value) -> Value {
        let mut stored = self.seed(obj);
        stored["status"] = status(&stored);
        self.fake.insert(stored)
    }

    // --- reading -------------------------------------------------------------------------

    /// The stored object `name` of collection (`api_version`, `plural`), if any.
    pub fn get(&self, api_version: &str, plural: &str, name: &str) -> Option<Value> {
        self.fake
            .get(api_version, plural, Some(&self.namespace), name)
    }

    /// The stored `K` named `name`, if any.
    pub fn try_current<K>(&self, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let (api_version, plural) = collection_of::<K>();
        self.get(&api_version, &plural, name)
            .map(|v| typed(v, &format!("{plural} {}/{name}", self.namespace)))
    }

    /// The stored `K` named `name`; panics when there is none.
    pub fn current<K>(&self, name: &str) -> K
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.try_current(name).unwrap_or_else(|| {
            panic!(
                "no {} {}/{name} in the fake API server",
                K::plural(&()),
                self.namespace
            )
        })
    }

    /// The stored objects of collection (`api_version`, `plural`) in the namespace, by name.
    pub fn list(&self, api_version: &str, plural: &str) -> Vec<Value> {
        self.fake.list(api_version, plural, Some(&self.namespace))
    }

    /// The names of the objects of [`list`](Self::list), in order.
    pub fn names(&self, api_version: &str, plural: &str) -> Vec<String> {
        self.list(api_version, plural)
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    // --- changing "behind the controller's back" ------------------------------------------

    /// Changes the stored object `name` with `f` as [`FakeApiServer::edit`] does; returns
    /// whether it existed.
    pub fn edit(
        &self,
        api_version: &str,
        plural: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> bool {
        self.fake
            .edit(api_version, plural, Some(&self.namespace), name, f)
    }

    /// [`edit`](Self::edit) of the `K` named `name`.
    pub fn edit_kind<K: Resource<DynamicType = ()>>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> bool {
        let (api_version, plural) = collection_of::<K>();
        self.edit(&api_version, &plural, name, f)
    }

    /// Changes the `.spec` of the `K` named `name` with `f` (a user's edit: the generation
    /// moves when the spec does); returns whether it existed.
    pub fn edit_spec<K: Resource<DynamicType = ()>>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> bool {
        self.edit_kind::<K>(name, |o| f(&mut o["spec"]))
    }

    /// Deletes the stored object `name` at once, ignoring finalizers, as
    /// [`FakeApiServer::remove`] does; returns whether it existed.
    pub fn remove(&self, api_version: &str, plural: &str, name: &str) -> bool {
        self.fake
            .remove(api_version, plural, Some(&self.namespace), name)
    }

    // --- what the controller did ----------------------------------------------------------

    /// The recorded writes ([`FakeApiServer::writes`]) other than those of events, as
    /// `METHOD path`, in order.
    pub fn writes_excluding_events(&self) -> Vec<String> {
        self.fake
            .writes()
            .into_iter()
            .filter(|r| !r.path.contains("/events"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// The `events.k8s.io/v1` Events in the namespace (what `kube`'s recorder writes).
    pub fn events(&self) -> Vec<Value> {
        self.list("events.k8s.io/v1", "events")
    }

    /// The [`events`](Self::events) with `reason`.
    pub fn events_with_reason(&self, reason: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["reason"] == json!(reason))
            .collect()
    }

    /// How many times an event with `reason` was published: `kube`'s recorder turns a repeat
    /// into a series on the first event object, so this sums `series.count` (1 without one).
    pub fn event_count(&self, reason: &str) -> u64 {
        self.events_with_reason(reason)
            .iter()
            .map(|e| e["series"]["count"].as_u64().unwrap_or(1))
            .sum()
    }

    /// True when an event in the namespace has `reason`, regards the object named `name` and
    /// its note contains `note_part` ([`FakeApiServer::has_event`]).
    pub fn has_event(&self, reason: &str, name: &str, note_part: &str) -> bool {
        self.fake
            .has_event(&self.namespace, reason, name, note_part)
    }

    // --- driving a controller -------------------------------------------------------------

    /// Reads the `K` named `name` afresh and, while `done` does not hold for it, hands it to
    /// `reconcile` (errors are the caller's to ignore or log), then waits: the loop of a test
    /// that lets a controller run something to its end. Returns the first stored `K` for
    /// which `done` held, or `Err` with the stored `K` once `patience` ran out.
    ///
    /// # Panics
    ///
    /// When the object is not there ([`current`](Self::current)).
    pub async fn reconcile_until<K, T>(
        &self,
        name: &str,
        patience: Patience,
        mut reconcile: impl AsyncFnMut(Arc<K>) -> T,
        mut done: impl FnMut(&K) -> bool,
    ) -> Result<K, K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let mut found = None;
        let _ = repeat_until(patience, async || {
            let current: K = self.current(name);
            if done(&current) {
                found = Some(current);
                return true;
            }
            reconcile(Arc::new(current)).await;
            false
        })
        .await;
        found.ok_or_else(|| self.current(name))
    }
}

/// How long a polling loop ([`repeat_until`], [`Harness::reconcile_until`]) keeps at it: a
/// pause between rounds and a limit, in rounds or in time.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    every: Duration,
    limit: Limit,
}

#[derive(Clone, Copy, Debug)]
enum Limit {
    Rounds(u32),
    Time(Duration),
}

impl Patience {
    /// At most `rounds` rounds, `every` apart.
    pub const fn rounds(rounds: u32, every: Duration) -> Self {
        Self {
            every,
            limit: Limit::Rounds(rounds),
        }
    }

    /// Rounds `every` apart until `timeout` has passed since the first began (a slow machine
    /// gets fewer rounds, not less time).
    pub const fn timeout(timeout: Duration, every: Duration) -> Self {
        Self {
            every,
            limit: Limit::Time(timeout),
        }
    }
}

/// Runs `round` until it returns true, pausing [`Patience`]'s interval after each round that
/// did not. `Ok` with the time taken, or `Err` with it once `patience` ran out (checked after
/// each round, before the pause).
pub async fn repeat_until(
    patience: Patience,
    mut round: impl AsyncFnMut() -> bool,
) -> Result<Duration, Duration> {
    let started = Instant::now();
    let mut rounds = 0u32;
    loop {
        if round().await {
            return Ok(started.elapsed());
        }
        rounds += 1;
        let out_of_patience = match patience.limit {
            Limit::Rounds(limit) => rounds >= limit,
            Limit::Time(timeout) => started.elapsed() > timeout,
        };
        if out_of_patience {
            return Err(started.elapsed());
        }
        tokio::time::sleep(patience.every).await;
    }
}

/// The requests `qdrant` served that change something (not `GET`), as `METHOD /path`, in
/// order, since it started or last cleared them.
pub fn qdrant_writes(qdrant: &FakeQdrant) -> Vec<String> {
    qdrant
        .requests()
        .into_iter()
        .filter(|(m, _)| m != http::Method::GET)
        .map(|(m, p)| format!("{m} {p}"))
        .collect()
}

/// The paths of the `GET` requests `qdrant` served, in order, since it started or last
/// cleared them.
pub fn qdrant_reads(qdrant: &FakeQdrant) -> Vec<String> {
    qdrant
        .requests()
        .into_iter()
        .filter(|(m, _)| m == http::Method::GET)
        .map(|(_, p)| p)
        .collect()
}
