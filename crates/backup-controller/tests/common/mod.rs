//! Shared test support: [`Env`], the [`Harness`] with the backup-controller's context and its
//! reconcile loops; the S3 server and a fault-injecting proxy in front of it.
//!
//! A test file adds its own helpers with an `impl Env<...>` block of its own: `Env` is a type
//! of the file's crate, like every module of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod faults;
pub mod real;
pub mod s3;

use std::{ops::Deref, sync::Arc};

use api_types::{QdrantBackup, QdrantMigration, QdrantRestore};
use backup_controller::{backup, context::Context, migration, restore};
use reconcile_lib::metrics::Metrics;
use reconcile_lib::qdrant::QdrantClient;
use serde_json::{Value, json};
use testkit::harness::{Harness, Patience};

/// How each controller context of an [`Env`] is set up beyond [`Context::new`].
type Configure = Arc<dyn Fn(&mut Context) + Send + Sync>;

/// One test's world: the harness (dereferenced to: `env.fake`, `env.get(..)`,
/// `env.current::<K>(..)` ...), a controller context, and the rest of the file's world `W`
/// (an S3 bucket, the cluster-controller that brings real peers up).
pub struct Env<W = ()> {
    pub harness: Harness,
    pub ctx: Arc<Context>,
    pub world: W,
    image: String,
    configure: Configure,
}

impl<W> Deref for Env<W> {
    type Target = Harness;

    fn deref(&self) -> &Harness {
        &self.harness
    }
}

impl<W> Env<W> {
    /// An empty fake API server in namespace `ns`, and a controller whose jobs run `image`,
    /// set up by `configure` (as are those of [`Env::controller`]).
    pub fn new(
        ns: &str,
        image: &str,
        world: W,
        configure: impl Fn(&mut Context) + Send + Sync + 'static,
    ) -> Self {
        Self::with_harness(Harness::new(ns), image, world, configure)
    }

    /// [`Env::new`] over `harness`, for a world that needs the fake API server first.
    pub fn with_harness(
        harness: Harness,
        image: &str,
        world: W,
        configure: impl Fn(&mut Context) + Send + Sync + 'static,
    ) -> Self {
        let configure: Configure = Arc::new(configure);
        let ctx = controller(&harness, image, &configure);
        Self {
            harness,
            ctx,
            world,
            image: image.to_owned(),
            configure,
        }
    }

    /// A second controller process against the same API server (a new leader: its own task
    /// registry), set up as [`Env::ctx`].
    pub fn controller(&self) -> Arc<Context> {
        controller(&self.harness, &self.image, &self.configure)
    }

    /// Reconciles QdrantBackup `name` by `ctx` (errors ignored) until its phase is final
    /// (the run is a background task); `Err` with it once `patience` ran out.
    pub async fn finish_backup(
        &self,
        name: &str,
        ctx: &Arc<Context>,
        patience: Patience,
    ) -> Result<QdrantBackup, QdrantBackup> {
        self.reconcile_until(
            name,
            patience,
            async |b| {
                let _ = backup::reconcile(b, ctx.clone()).await;
            },
            |b: &QdrantBackup| b.status.as_ref().is_some_and(|s| s.phase.is_finished()),
        )
        .await
    }

    /// [`Env::finish_backup`] of QdrantRestore `name`.
    pub async fn finish_restore(
        &self,
        name: &str,
        ctx: &Arc<Context>,
        patience: Patience,
    ) -> Result<QdrantRestore, QdrantRestore> {
        self.reconcile_until(
            name,
            patience,
            async |r| {
                let _ = restore::reconcile(r, ctx.clone()).await;
            },
            |r: &QdrantRestore| r.status.as_ref().is_some_and(|s| s.phase.is_finished()),
        )
        .await
    }
}

impl<W> Env<W> {
    /// Reconciles QdrantMigration `name` by `ctx` (errors ignored) until its phase is final;
    /// `Err` with it once `patience` ran out.
    pub async fn finish_migration(
        &self,
        name: &str,
        ctx: &Arc<Context>,
        patience: Patience,
    ) -> Result<QdrantMigration, QdrantMigration> {
        self.reconcile_until(
            name,
            patience,
            async |m| {
                let _ = migration::reconcile(m, ctx.clone()).await;
            },
            |m: &QdrantMigration| m.status.as_ref().is_some_and(|s| s.phase.is_finished()),
        )
        .await
    }
}

/// The collection the migration scenarios copy: two named dense vectors (Cosine, Dot) and a
/// sparse vector.
pub fn migration_collection() -> Value {
    json!({
        "vectors": {
            "text": {"size": 8, "distance": "Cosine"},
            "image": {"size": 4, "distance": "Dot"}
        },
        "sparse_vectors": {"keywords": {}}
    })
}

/// Point `i` of a migration scenario of `n` points: numeric ids, except the last five, which
/// are UUIDs (Qdrant scrolls them after every number); vectors and payload derived from `i`.
#[allow(clippy::cast_precision_loss)]
pub fn migration_point(i: u64, n: u64) -> Value {
    let id = if i + 5 >= n {
        json!(format!("00000000-0000-4000-8000-{i:012x}"))
    } else {
        json!(i)
    };
    let f = |k: u64| ((i * 31 + k * 7) % 97) as f32 / 97.0 + 0.01;
    json!({
        "id": id,
        "vector": {
            "text": (0..8).map(f).collect::<Vec<f32>>(),
            "image": (0..4).map(|k| f(k + 8)).collect::<Vec<f32>>(),
            "keywords": {"indices": [i % 13, 100 + i % 17], "values": [f(20), f(21)]}
        },
        "payload": {"n": i, "title": format!("document {i}"), "tags": ["migrated", if i.is_multiple_of(2) { "even" } else { "odd" }]}
    })
}

/// Creates `collection` ([`migration_collection`]) through `client` and writes `n` points
/// ([`migration_point`]) in batches of 500.
pub async fn seed_migration_source(client: &QdrantClient, collection: &str, n: u64) {
    client
        .create_collection(collection, &migration_collection())
        .await
        .unwrap();
    let points: Vec<Value> = (0..n).map(|i| migration_point(i, n)).collect();
    for batch in points.chunks(500) {
        client.upsert_points(collection, batch).await.unwrap();
    }
}

fn controller(harness: &Harness, image: &str, configure: &Configure) -> Arc<Context> {
    let mut ctx = Context::new(harness.client(), Arc::new(Metrics::new("test")), image);
    configure(&mut ctx);
    Arc::new(ctx)
}
