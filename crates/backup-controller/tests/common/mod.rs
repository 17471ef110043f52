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

use api_types::{QdrantBackup, QdrantRestore};
use backup_controller::{backup, context::Context, restore};
use reconcile_lib::metrics::Metrics;
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

fn controller(harness: &Harness, image: &str, configure: &Configure) -> Arc<Context> {
    let mut ctx = Context::new(harness.client(), Arc::new(Metrics::new("test")), image);
    configure(&mut ctx);
    Arc::new(ctx)
}
