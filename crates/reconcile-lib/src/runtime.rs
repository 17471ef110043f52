//! What every controller's `main` calls: crypto provider, Kubernetes client, Lease leader
//! election, the metrics/health server and graceful shutdown.
//!
//! ```no_run
//! use std::sync::Arc;
//! use reconcile_lib::{metrics::Metrics, runtime, telemetry};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     runtime::install_crypto_provider();
//!     let _telemetry = telemetry::init("qdrant-cluster-controller")?;
//!     let client = runtime::client().await?;
//!     let metrics = Arc::new(Metrics::new("cluster-controller"));
//!     let opts = runtime::RuntimeOptions::new("qdrant-cluster-controller");
//!     runtime::run(opts, client, metrics, |client, shutdown| async move {
//!         // Build the controller from scratch here and stop when `shutdown.wait()` resolves.
//!         let _ = client;
//!         shutdown.wait().await;
//!     })
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Leader election
//!
//! With [`RuntimeOptions::leader_election`] on, every replica campaigns for the `Lease`
//! `lease_namespace/lease_name` through `kube-lease-manager` (server-side apply, so two replicas
//! can never both acquire it). Only the holder runs the `start` closure. Timing, with the
//! default 15 s lease: the holder renews every 10 s (the lease duration minus a grace of a third
//! of it); every [`RuntimeOptions::retry_period`] (2 s) each replica also reads the Lease, so a
//! standby notices a released lease at once and campaigns immediately, and the holder notices
//! when the Lease is no longer its own or its renewal is overdue by half the grace period — it
//! then stops its controller before the lease can expire under it.
//!
//! **Losing the lease does not exit the process: the replica goes back to standby.** The
//! running controller is told to stop (its [`Shutdown`] fires) and is aborted if it has not
//! finished by the time the lease would expire (at least 1 s, at most
//! [`RuntimeOptions::shutdown_timeout`]); the replica stays Ready and campaigns again, calling
//! `start` afresh when it wins. Why standby rather than exit: a short API-server outage then
//! costs no container restarts (no `CrashLoopBackOff`, no restart alerts, no cold start of the
//! image), and because `start` builds the whole controller from scratch each time and the old
//! one is aborted when it overstays, no state from the lost term survives. Controllers must
//! therefore create all their state inside `start`, and tie any tasks they spawn to
//! [`Shutdown`] (or a `JoinSet` owned by the start future).
//!
//! On SIGTERM/SIGINT the holder fires [`Shutdown`], keeps renewing the lease while the
//! controller finishes (bounded by `shutdown_timeout`, 20 s by default, so it fits in the
//! default 30 s `terminationGracePeriodSeconds`), then releases the lease so a standby takes
//! over within one `retry_period` instead of after the lease expires, stops the HTTP server and
//! returns `Ok(())`.
//!
//! RBAC needed with leader election: `coordination.k8s.io` `leases`: `get`, `create`, `patch`
//! in `lease_namespace`.

use std::future::{Future, pending};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseParams};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{MissedTickBehavior, timeout};
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::server::{self, Health};

/// Default [`RuntimeOptions::lease_duration`]: 15 s, as in the design.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Default [`RuntimeOptions::retry_period`]: 2 s (client-go's `RetryPeriod`).
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Default [`RuntimeOptions::shutdown_timeout`]: 20 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Default [`RuntimeOptions::metrics_addr`]: `0.0.0.0:8080`.
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);

/// How long releasing the lease may take at shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the HTTP server may take to stop.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of the retry backoff after API errors.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Shortest time a controller gets to stop cooperatively after losing the lease.
const MIN_LOST_LEASE_STOP: Duration = Duration::from_secs(1);
/// The in-cluster service-account namespace file.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Errors of [`client`], [`run`] and [`run_until`].
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A [`RuntimeOptions`] field is out of range; the message names it.
    #[error("invalid runtime options: {0}")]
    InvalidOptions(String),
    /// Neither a kubeconfig nor the in-cluster configuration gave a working client.
    #[error("building the Kubernetes client failed (kubeconfig or in-cluster config): {0}")]
    Client(#[source] kube::Error),
    /// The metrics/health server could not listen on `addr`.
    #[error("binding the metrics/health server on {addr} failed: {source}")]
    Bind {
        /// The address asked for ([`RuntimeOptions::metrics_addr`]).
        addr: SocketAddr,
        /// The `bind(2)` error.
        #[source]
        source: io::Error,
    },
    /// The SIGTERM/SIGINT handlers could not be installed.
    #[error("installing the SIGTERM/SIGINT handlers failed: {0}")]
    Signal(#[source] io::Error),
    /// The controller future returned although it was not asked to stop. The lease was released
    /// first, so another replica takes over while this one exits.
    #[error("the controller stopped although it was not asked to")]
    ControllerExited,
    /// The controller task panicked. The lease was released first.
    #[error("the controller panicked: {0}")]
    ControllerPanicked(#[source] JoinError),
}

/// Installs rustls' `ring` crypto provider as the process-wide default.
///
/// Call it first thing in `main`: kube and reqwest panic at their first TLS connection when
/// no provider is installed, and with both `ring` and `aws-lc-rs` in the dependency tree rustls
/// cannot pick one itself. Idempotent: does nothing when a provider (any) is installed already.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A Kubernetes client from `$KUBECONFIG` / `~/.kube/config`, else the in-cluster
/// service-account configuration (`kube::Config::infer`), built by [`client_for`].
///
/// Installs the crypto provider first ([`install_crypto_provider`]). Makes no request.
///
/// # Errors
/// [`RuntimeError::Client`] when no configuration is found or it is invalid.
pub async fn client() -> Result<kube::Client, RuntimeError> {
    install_crypto_provider();
    let config = kube::Config::infer()
        .await
        .map_err(|error| RuntimeError::Client(kube::Error::InferConfig(error)))?;
    client_for(config)
}

/// The controllers' Kubernetes client for `config`: kube's default stack (TLS, auth, timeouts
/// from the config) with [`DepthLimitLayer`](crate::depth::DepthLimitLayer) under it, so one
/// object nested too deep for serde cannot fail the lists and watches of every other.
/// [`client_over`] puts the same layer over any other service (the fake API server).
///
/// # Errors
/// [`RuntimeError::Client`] when the HTTP client cannot be built from `config` (e.g. a bad
/// TLS identity).
pub fn client_for(config: kube::Config) -> Result<kube::Client, RuntimeError> {
    Ok(kube::client::ClientBuilder::try_from(config)
        .map_err(RuntimeError::Client)?
        .with_layer(&crate::depth::DepthLimitLayer)
        .build())
}

/// A client over `service` with the layers of [`client_for`], default namespace
/// `default_namespace`. Must be called inside a Tokio runtime (the client spawns its request
/// buffer there).
pub fn client_over<S, B>(service: S, default_namespace: &str) -> kube::Client
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    kube::Client::new(
        tower::Layer::layer(&crate::depth::DepthLimitLayer, service),
        default_namespace,
    )
}

/// How [`run`] runs a controller. Build it with [`RuntimeOptions::new`], then adjust fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// The controller's name, for logs (e.g. `qdrant-cluster-controller`).
    pub controller_name: String,
    /// Name of the `coordination.k8s.io/v1` `Lease` used for leader election; created when
    /// missing. Default: the controller name.
    pub lease_name: String,
    /// Namespace of the Lease. Default: env `POD_NAMESPACE`, else the in-cluster service-account
    /// namespace, else `default`.
    pub lease_namespace: String,
    /// This replica's identity in the Lease's `holderIdentity`; must be unique among replicas
    /// and stable for the life of a pod. Default: env `POD_NAME`; else, inside a cluster, env
    /// `HOSTNAME` (the pod name); else (local development) `<hostname>-<pid>`.
    pub identity: String,
    /// How long a lease stays valid without renewal (whole seconds, rounded up; at least 2 s).
    /// Default 15 s. The holder renews when a third of it is left.
    pub lease_duration: Duration,
    /// How often each replica reads the Lease (standby: to take a released lease over at once;
    /// holder: to check its own renewal) and the base of the retry backoff. Must be shorter than
    /// `lease_duration`. Default 2 s.
    pub retry_period: Duration,
    /// How long the controller may take to stop after SIGTERM/SIGINT before it is aborted.
    /// Default 20 s.
    pub shutdown_timeout: Duration,
    /// Whether to elect a leader through the Lease (on by default). Off for local development:
    /// the controller starts at once and this process counts as leader.
    pub leader_election: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` listen. Default `0.0.0.0:8080`; port 0 picks a
    /// free port (tests).
    pub metrics_addr: SocketAddr,
}

impl RuntimeOptions {
    /// The defaults described on each field, for the controller `controller_name`, read from
    /// the environment (`POD_NAME`, `POD_NAMESPACE`, `HOSTNAME`, `KUBERNETES_SERVICE_HOST`) and
    /// the service-account namespace file.
    pub fn new(controller_name: impl Into<String>) -> Self {
        let controller_name = controller_name.into();
        let env = |k: &str| std::env::var(k).ok();
        let lease_namespace = namespace_from(
            env("POD_NAMESPACE"),
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok(),
        );
        let identity = identity_from(
            env("POD_NAME"),
            env("KUBERNETES_SERVICE_HOST").is_some(),
            env("HOSTNAME"),
            std::fs::read_to_string("/etc/hostname").ok(),
            std::process::id(),
        );
        Self {
            lease_name: controller_name.clone(),
            controller_name,
            lease_namespace,
            identity,
            lease_duration: DEFAULT_LEASE_DURATION,
            retry_period: DEFAULT_RETRY_PERIOD,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            leader_election: true,
            metrics_addr: DEFAULT_METRICS_ADDR,
        }
    }
}

fn non_blank(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The Lease namespace: `POD_NAMESPACE`, else the service-account namespace, else `default`.
fn namespace_from(pod_namespace: Option<String>, service_account: Option<String>) -> String {
    non_blank(pod_namespace)
        .or_else(|| non_blank(service_account))
        .unwrap_or_else(|| "default".to_owned())
}

/// The replica identity: `POD_NAME`; else `HOSTNAME` when in a cluster (it is the pod name
/// there); else `<hostname>-<pid>`, so two local processes on one machine never share one.
fn identity_from(
    pod_name: Option<String>,
    in_cluster: bool,
    hostname_env: Option<String>,
    etc_hostname: Option<String>,
    pid: u32,
) -> String {
    if let Some(name) = non_blank(pod_name) {
        return name;
    }
    let hostname_env = non_blank(hostname_env);
    if in_cluster && let Some(name) = hostname_env.clone() {
        return name;
    }
    let host = non_blank(etc_hostname)
        .or(hostname_env)
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{pid}")
}

/// The lease timing handed to `kube-lease-manager`, in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LeaseTiming {
    /// `leaseDurationSeconds`.
    duration_secs: u64,
    /// The holder renews when this much validity is left.
    grace_secs: u64,
}

impl LeaseTiming {
    fn duration(self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }

    /// The holder steps down when less than this validity is left without a renewal.
    fn step_down_margin(self) -> Duration {
        Duration::from_secs(self.grace_secs) / 2
    }
}

/// Checks `opts` and derives the lease timing.
fn validate(opts: &RuntimeOptions) -> Result<LeaseTiming, RuntimeError> {
    let invalid = |m: String| Err(RuntimeError::InvalidOptions(m));
    let d = opts.lease_duration;
    let duration_secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if opts.leader_election {
        if duration_secs < 2 {
            return invalid(format!("lease_duration must be at least 2s, got {d:?}"));
        }
        if opts.retry_period.is_zero() || opts.retry_period >= d {
            return invalid(format!(
                "retry_period must be greater than zero and shorter than lease_duration \
                 ({d:?}), got {:?}",
                opts.retry_period
            ));
        }
        if opts.lease_name.trim().is_empty() {
            return invalid("lease_name must not be empty".to_owned());
        }
        if opts.lease_namespace.trim().is_empty() {
            return invalid("lease_namespace must not be empty".to_owned());
        }
        if opts.identity.trim().is_empty() {
            return invalid("identity must not be empty".to_owned());
        }
    }
    Ok(LeaseTiming {
        duration_secs,
        grace_secs: (duration_secs / 3).max(1),
    })
}

/// Tells a running controller to stop: resolves [`Shutdown::wait`] on every clone.
///
/// Dropping the trigger also counts as stopping.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl ShutdownTrigger {
    /// Fires the shutdown; idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

/// A cheap `Clone` handle that tells a controller when to stop: on SIGTERM/SIGINT, or when this
/// replica loses the leader-election lease.
///
/// [`run`] creates a fresh one for every leadership term. Tests of a controller can make their
/// own with [`Shutdown::channel`].
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A new, untriggered shutdown and the trigger that fires it.
    pub fn channel() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// Resolves once the controller must stop (immediately if it already must). Cancel-safe.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // Err: the trigger is gone, which means stop as well.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Whether the controller must stop now.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }
}

/// Runs `start` under leader election (per `opts`) until SIGTERM or SIGINT, serving
/// `/metrics`, `/healthz` and `/readyz` on `opts.metrics_addr` meanwhile.
///
/// `start(client, shutdown)` builds and runs one controller; it is spawned on the runtime each
/// time this replica becomes leader (once without leader election) and must return soon after
/// `shutdown.wait()` resolves. Returns `Ok(())` after a graceful stop (controller finished or
/// aborted, lease released, server stopped). See the module docs for the whole life cycle.
///
/// # Errors
/// [`RuntimeError::InvalidOptions`], [`RuntimeError::Bind`] and [`RuntimeError::Signal`] at
/// start-up; [`RuntimeError::ControllerExited`] / [`RuntimeError::ControllerPanicked`] when the
/// controller ends without being asked to (the lease is released first). Transient API errors
/// are retried with backoff, never returned.
pub async fn run<F, Fut>(
    opts: RuntimeOptions,
    client: kube::Client,
    metrics: Arc<Metrics>,
    start: F,
) -> Result<(), RuntimeError>
where
    F: Fn(kube::Client, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let signal = termination_signal()?;
    run_until(opts, client, metrics, start, signal).await
}

/// [`run`], but stopping when `stop` resolves instead of on a signal (the hook tests use to
/// exercise the SIGTERM path).
///
/// # Errors
/// As [`run`], minus [`RuntimeError::Signal`].
pub async fn run_until<F, Fut, S>(
    opts: RuntimeOptions,
    client: kube::Client,
    metrics: Arc<Metrics>,
    start: F,
    stop: S,
) -> Result<(), RuntimeError>
where
    F: Fn(kube::Client, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    S: Future<Output = ()>,
{
    let timing = validate(&opts)?;
    let health = Health::new();
    let server = server::bind(opts.metrics_addr)
        .await
        .map_err(|source| RuntimeError::Bind {
            addr: opts.metrics_addr,
            source,
        })?;
    info!(
        controller = %opts.controller_name,
        addr = %server.local_addr(),
        "serving /metrics, /healthz and /readyz"
    );
    let (server_stop, server_stopped) = oneshot::channel::<()>();
    let mut server_task = tokio::spawn(server.serve(metrics.clone(), health.clone(), async {
        let _ = server_stopped.await;
    }));

    let ctx = Ctx {
        leases: Api::namespaced(client.clone(), &opts.lease_namespace),
        opts: &opts,
        timing,
        client: &client,
        metrics: &metrics,
        health: &health,
        start: &start,
    };
    let result = if opts.leader_election {
        ctx.run_elected(stop).await
    } else {
        ctx.run_unelected(stop).await
    };

    health.set_ready(false);
    metrics.set_leader(false);
    let _ = server_stop.send(());
    match timeout(SERVER_STOP_TIMEOUT, &mut server_task).await {
        Ok(Ok(Ok(()))) => debug!("metrics/health server stopped"),
        Ok(Ok(Err(e))) => warn!(error = %e, "metrics/health server failed"),
        Ok(Err(e)) => warn!(error = %e, "metrics/health server task panicked"),
        Err(_) => {
            warn!("metrics/health server did not stop in time; aborting it");
            server_task.abort();
        }
    }
    match &result {
        Ok(()) => info!(controller = %opts.controller_name, "stopped"),
        Err(e) => error!(controller = %opts.controller_name, error = %e, "stopped with an error"),
    }
    result
}

/// A future resolving on the first SIGTERM or SIGINT (Ctrl-C elsewhere than Unix).
fn termination_signal() -> Result<impl Future<Output = ()> + Send + 'static, RuntimeError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(RuntimeError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(RuntimeError::Signal)?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received; shutting down"),
                _ = int.recv() => info!("SIGINT received; shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            info!("Ctrl-C received; shutting down");
        })
    }
}

/// One running controller (one leadership term).
struct Leading {
    trigger: ShutdownTrigger,
    task: JoinHandle<()>,
}

impl Leading {
    fn start<F, Fut>(start: &F, client: &kube::Client) -> Self
    where
        F: Fn(kube::Client, Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (trigger, shutdown) = Shutdown::channel();
        let task = tokio::spawn(start(client.clone(), shutdown));
        Self { trigger, task }
    }

    /// Fires the controller's [`Shutdown`] and waits until it finishes, `deadline` passes, or
    /// `abort_now` resolves; in the latter two cases the task is aborted.
    async fn stop(mut self, deadline: Duration, abort_now: impl Future<Output = ()>) {
        self.trigger.trigger();
        tokio::select! {
            res = timeout(deadline, &mut self.task) => match res {
                Ok(Ok(())) => {
                    info!("controller stopped");
                    return;
                }
                Ok(Err(e)) => {
                    error!(error = %e, "controller panicked while stopping");
                    return;
                }
                Err(_) => warn!(?deadline, "controller did not stop in time; aborting it"),
            },
            () = abort_now => warn!("lease lost while the controller was stopping; aborting it"),
        }
        self.task.abort();
        let _ = timeout(Duration::from_secs(1), &mut self.task).await;
    }
}

/// Waits for `leading`'s controller to end; pending forever when there is none.
async fn join_leading(leading: &mut Option<Leading>) -> Result<(), JoinError> {
    match leading {
        Some(l) => (&mut l.task).await,
        None => pending().await,
    }
}

fn exit_error(res: Result<(), JoinError>) -> RuntimeError {
    match res {
        Ok(()) => RuntimeError::ControllerExited,
        Err(e) => RuntimeError::ControllerPanicked(e),
    }
}

/// `min(base * 2^failures, 30 s)`.
fn backoff(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF)
}

/// Sleeps `delay`; `true` when `stop` resolved first.
async fn sleep_or_stop<S: Future<Output = ()>>(delay: Duration, stop: Pin<&mut S>) -> bool {
    tokio::select! {
        () = stop => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// A pending `LeaseManager::changed()` that survives across `select!` iterations.
type ChangeFuture = BoxFuture<'static, kube_lease_manager::Result<bool>>;

/// `manager.changed()` after `delay`, owned so it can be kept while other events are handled
/// (dropping it mid-request would restart a renewal).
fn watch_changes(manager: &Arc<LeaseManager>, delay: Duration) -> ChangeFuture {
    let manager = Arc::clone(manager);
    async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        manager.changed().await
    }
    .boxed()
}

/// Keeps renewing through `changed` until the lease is lost (then returns).
async fn hold_until_lost(manager: Arc<LeaseManager>, mut changed: ChangeFuture, retry: Duration) {
    let mut failures = 0;
    loop {
        match changed.await {
            Ok(false) => return,
            Ok(true) => {
                failures = 0;
                changed = watch_changes(&manager, Duration::ZERO);
            }
            Err(e) => {
                let delay = backoff(retry, failures);
                failures += 1;
                warn!(error = %e, retry_in = ?delay, "renewing the lease while stopping failed");
                changed = watch_changes(&manager, delay);
            }
        }
    }
}

/// The Lease as the periodic read sees it.
#[derive(Debug, PartialEq, Eq)]
struct LeaseView {
    holder: Option<String>,
    /// `renewTime + leaseDurationSeconds`.
    valid_until: Option<SystemTime>,
}

fn view_of(lease: &Lease) -> LeaseView {
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let valid_until = spec.and_then(|s| {
        let renew = SystemTime::from(s.renew_time.as_ref()?.0);
        let secs = u64::try_from(s.lease_duration_seconds?).ok()?;
        renew.checked_add(Duration::from_secs(secs))
    });
    LeaseView {
        holder,
        valid_until,
    }
}

/// How long a controller that lost the lease may take to stop: until the lease expires, at
/// least [`MIN_LOST_LEASE_STOP`], at most `shutdown_timeout`.
fn lost_lease_deadline(valid_until: SystemTime, shutdown_timeout: Duration) -> Duration {
    valid_until
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .clamp(
            MIN_LOST_LEASE_STOP,
            shutdown_timeout.max(MIN_LOST_LEASE_STOP),
        )
}

/// The state of one campaign: the manager, its pending `changed()`, the running controller.
struct Term {
    manager: Arc<LeaseManager>,
    changed: ChangeFuture,
    /// Consecutive failed lease requests (the backoff exponent).
    failures: u32,
    leading: Option<Leading>,
    /// While leading: when the lease expires unless renewed, as last read.
    valid_until: SystemTime,
}

/// How one campaign with one `LeaseManager` ended.
enum Campaign {
    /// Stop was requested and handled.
    Stopped,
    /// Build a fresh `LeaseManager` (its cached view of the lease is stale) and campaign again.
    Rebuild,
    /// The controller ended on its own; the lease was released.
    Failed(RuntimeError),
}

/// Everything the run loops share.
struct Ctx<'a, F> {
    opts: &'a RuntimeOptions,
    timing: LeaseTiming,
    client: &'a kube::Client,
    metrics: &'a Metrics,
    health: &'a Health,
    leases: Api<Lease>,
    start: &'a F,
}

impl<F, Fut> Ctx<'_, F>
where
    F: Fn(kube::Client, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    async fn run_unelected<S: Future<Output = ()>>(&self, stop: S) -> Result<(), RuntimeError> {
        info!(
            controller = %self.opts.controller_name,
            "leader election disabled; starting the controller"
        );
        self.health.set_ready(true);
        self.metrics.set_leader(true);
        let mut leading = Leading::start(self.start, self.client);
        tokio::select! {
            () = stop => {
                info!("stopping the controller");
                leading.stop(self.opts.shutdown_timeout, pending()).await;
                Ok(())
            }
            res = &mut leading.task => Err(exit_error(res)),
        }
    }

    async fn run_elected<S: Future<Output = ()>>(&self, stop: S) -> Result<(), RuntimeError> {
        let opts = self.opts;
        let mut stop = pin!(stop);
        let mut failures = 0;
        info!(
            controller = %opts.controller_name,
            lease = %opts.lease_name,
            namespace = %opts.lease_namespace,
            identity = %opts.identity,
            lease_duration_secs = self.timing.duration_secs,
            "leader election: campaigning for the lease"
        );
        loop {
            let built = tokio::select! {
                biased;
                () = stop.as_mut() => {
                    info!("stop requested while standing by");
                    return Ok(());
                }
                res = self.build_manager() => res,
            };
            let manager = match built {
                Ok(m) => Arc::new(m),
                Err(e) => {
                    let delay = backoff(opts.retry_period, failures);
                    failures += 1;
                    warn!(
                        error = %e,
                        retry_in = ?delay,
                        lease = %opts.lease_name,
                        "cannot read or create the leader-election lease"
                    );
                    if sleep_or_stop(delay, stop.as_mut()).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            failures = 0;
            if !self.health.is_ready() {
                info!("ready (API server reachable)");
                self.health.set_ready(true);
            }
            match self.campaign(manager, stop.as_mut()).await {
                Campaign::Stopped => return Ok(()),
                Campaign::Rebuild => continue,
                Campaign::Failed(e) => return Err(e),
            }
        }
    }

    async fn build_manager(&self) -> kube_lease_manager::Result<LeaseManager> {
        LeaseManagerBuilder::new(self.client.clone(), &self.opts.lease_name)
            .with_namespace(&self.opts.lease_namespace)
            .with_parameters(LeaseParams::new(
                &self.opts.identity,
                self.timing.duration_secs,
                self.timing.grace_secs,
            ))
            .build()
            .await
    }

    /// Campaigns with one manager: leads while it holds the lease, stands by otherwise.
    /// Never returns [`Campaign::Rebuild`] while a controller runs.
    async fn campaign<S: Future<Output = ()>>(
        &self,
        manager: Arc<LeaseManager>,
        mut stop: Pin<&mut S>,
    ) -> Campaign {
        let retry = self.opts.retry_period;
        let mut term = Term {
            changed: watch_changes(&manager, Duration::ZERO),
            manager,
            failures: 0,
            leading: None,
            valid_until: SystemTime::UNIX_EPOCH,
        };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + retry, retry);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.as_mut() => return self.stop_campaign(term).await,
                res = &mut term.changed => self.on_changed(&mut term, res).await,
                res = join_leading(&mut term.leading), if term.leading.is_some() => {
                    return self.on_controller_exit(term, res).await;
                }
                _ = tick.tick() => {
                    if let Some(outcome) = self.on_tick(&mut term).await {
                        return outcome;
                    }
                }
            }
        }
    }

    /// Stop requested: a running controller is stopped while the lease keeps being renewed,
    /// then the lease is released.
    async fn stop_campaign(&self, term: Term) -> Campaign {
        let Term {
            manager,
            changed,
            leading,
            ..
        } = term;
        match leading {
            Some(l) => {
                info!("stop requested; stopping the controller, then releasing the lease");
                let renew = hold_until_lost(Arc::clone(&manager), changed, self.opts.retry_period);
                l.stop(self.opts.shutdown_timeout, renew).await;
                self.metrics.set_leader(false);
                // `changed` went into `renew`, dropped by now: the manager's state is unlocked.
                release(&manager).await;
            }
            None => info!("stop requested while standing by"),
        }
        Campaign::Stopped
    }

    /// `LeaseManager::changed()` answered: start or stop the controller, or back off.
    async fn on_changed(&self, term: &mut Term, res: kube_lease_manager::Result<bool>) {
        let opts = self.opts;
        let leader = match res {
            Ok(leader) => leader,
            Err(e) => {
                let delay = backoff(opts.retry_period, term.failures);
                term.failures += 1;
                warn!(
                    error = %e,
                    leader = term.leading.is_some(),
                    retry_in = ?delay,
                    "leader-election request failed; retrying"
                );
                term.changed = watch_changes(&term.manager, delay);
                return;
            }
        };
        term.failures = 0;
        term.changed = watch_changes(&term.manager, Duration::ZERO);
        if leader && term.leading.is_none() {
            info!(
                identity = %opts.identity,
                lease = %opts.lease_name,
                "acquired the lease; starting the controller"
            );
            self.metrics.set_leader(true);
            term.valid_until = SystemTime::now() + self.timing.duration();
            term.leading = Some(Leading::start(self.start, self.client));
        } else if !leader && let Some(l) = term.leading.take() {
            warn!(
                identity = %opts.identity,
                lease = %opts.lease_name,
                "lost the lease to another replica; stopping the controller and standing by"
            );
            self.step_down(l, term.valid_until).await;
        }
    }

    /// The controller ended without being asked to: release the lease and fail.
    async fn on_controller_exit(&self, term: Term, res: Result<(), JoinError>) -> Campaign {
        self.metrics.set_leader(false);
        let err = exit_error(res);
        error!(error = %err, "controller ended on its own; releasing the lease and exiting");
        let Term {
            manager, changed, ..
        } = term;
        // A pending renewal may hold the manager's state lock: drop it first.
        drop(changed);
        release(&manager).await;
        Campaign::Failed(err)
    }

    /// The periodic Lease read. Standby: campaign at once when the lease was released or
    /// deleted. Leader: step down when the lease is no longer ours or its renewal is overdue.
    async fn on_tick(&self, term: &mut Term) -> Option<Campaign> {
        let opts = self.opts;
        let observed = self.observe().await;
        let Some(l) = term.leading.take() else {
            return match observed {
                Ok(None) => {
                    info!(lease = %opts.lease_name, "the lease disappeared; recreating it");
                    Some(Campaign::Rebuild)
                }
                // While the manager is backing off after errors it retries the lock itself;
                // rebuilding would reset its backoff.
                Ok(Some(LeaseView { holder: None, .. })) if term.failures == 0 => {
                    info!(lease = %opts.lease_name, "the lease was released; campaigning now");
                    Some(Campaign::Rebuild)
                }
                Ok(Some(_)) => None,
                Err(e) => {
                    debug!(error = %e, "reading the lease failed");
                    None
                }
            };
        };
        match observed {
            Ok(Some(view)) if view.holder.as_deref() == Some(opts.identity.as_str()) => {
                if let Some(until) = view.valid_until {
                    term.valid_until = until;
                }
            }
            Ok(view) => {
                warn!(
                    holder = ?view.and_then(|v| v.holder),
                    identity = %opts.identity,
                    "the lease is no longer ours; stopping the controller and standing by"
                );
                self.step_down(l, term.valid_until).await;
                return Some(Campaign::Rebuild);
            }
            Err(e) => debug!(error = %e, "reading the lease failed"),
        }
        let left = term
            .valid_until
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if left < self.timing.step_down_margin() {
            warn!(
                ?left,
                "the lease was not renewed in time; stopping the controller before it expires"
            );
            self.step_down(l, term.valid_until).await;
            return Some(Campaign::Rebuild);
        }
        term.leading = Some(l);
        None
    }

    /// Stops a controller whose lease is lost, giving it until the lease expires.
    async fn step_down(&self, leading: Leading, valid_until: SystemTime) {
        self.metrics.set_leader(false);
        let deadline = lost_lease_deadline(valid_until, self.opts.shutdown_timeout);
        leading.stop(deadline, pending()).await;
    }

    /// Reads the Lease, bounded by `max(retry_period, 1 s)`.
    async fn observe(&self) -> Result<Option<LeaseView>, String> {
        let limit = self.opts.retry_period.max(Duration::from_secs(1));
        match timeout(limit, self.leases.get_opt(&self.opts.lease_name)).await {
            Err(_) => Err(format!("timed out after {limit:?}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(lease)) => Ok(lease.as_ref().map(view_of)),
        }
    }
}

/// Releases the lease (bounded by [`RELEASE_TIMEOUT`]); failures are logged, since the lease
/// then simply expires.
async fn release(manager: &Arc<LeaseManager>) {
    let m = Arc::clone(manager);
    // Spawned so that a panic inside kube-lease-manager cannot take the shutdown path down.
    let task = tokio::spawn(async move { m.release().await });
    match timeout(RELEASE_TIMEOUT, task).await {
        Ok(Ok(Ok(()))) => info!("released the lease; a standby replica can take over at once"),
        Ok(Ok(Err(e))) => {
            warn!(error = %e, "releasing the lease failed; a standby takes over when it expires");
        }
        Ok(Err(e)) => {
            warn!(error = %e, "releasing the lease panicked; a standby takes over when it expires");
        }
        Err(_) => warn!("releasing the lease timed out; a standby takes over when it expires"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn identity_prefers_pod_name_then_in_cluster_hostname() {
        assert_eq!(
            identity_from(s("qc-7d9f-abcde"), true, s("other"), s("node"), 7),
            "qc-7d9f-abcde"
        );
        assert_eq!(
            identity_from(None, true, s("qc-7d9f-xyz"), s("node"), 7),
            "qc-7d9f-xyz"
        );
        assert_eq!(
            identity_from(s("  "), true, s("qc-7d9f-xyz"), None, 7),
            "qc-7d9f-xyz"
        );
    }

    #[test]
    fn identity_outside_a_cluster_is_unique_per_process() {
        assert_eq!(
            identity_from(None, false, s("laptop"), s("laptop\n"), 42),
            "laptop-42"
        );
        assert_eq!(identity_from(None, false, s("box"), None, 42), "box-42");
        assert_eq!(identity_from(None, false, None, None, 42), "localhost-42");
    }

    #[test]
    fn namespace_defaults() {
        assert_eq!(namespace_from(s("ops"), s("sa-ns")), "ops");
        assert_eq!(namespace_from(None, s("sa-ns\n")), "sa-ns");
        assert_eq!(namespace_from(s(""), None), "default");
    }

    #[test]
    fn new_options_have_the_documented_defaults() {
        let o = RuntimeOptions::new("qdrant-cluster-controller");
        assert_eq!(o.lease_name, "qdrant-cluster-controller");
        assert_eq!(o.lease_duration, Duration::from_secs(15));
        assert_eq!(o.retry_period, Duration::from_secs(2));
        assert_eq!(o.shutdown_timeout, Duration::from_secs(20));
        assert!(o.leader_election);
        assert_eq!(o.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        assert!(!o.identity.is_empty());
        assert!(!o.lease_namespace.is_empty());
        assert_eq!(
            validate(&o).unwrap(),
            LeaseTiming {
                duration_secs: 15,
                grace_secs: 5
            }
        );
    }

    #[test]
    fn lease_timing_is_validated() {
        let mut o = RuntimeOptions::new("c");
        o.lease_duration = Duration::from_millis(2500);
        o.retry_period = Duration::from_millis(500);
        assert_eq!(
            validate(&o).unwrap(),
            LeaseTiming {
                duration_secs: 3,
                grace_secs: 1
            }
        );
        o.lease_duration = Duration::from_secs(1);
        assert!(matches!(
            validate(&o),
            Err(RuntimeError::InvalidOptions(m)) if m.contains("lease_duration")
        ));
        o.lease_duration = Duration::from_secs(10);
        o.retry_period = Duration::from_secs(10);
        assert!(matches!(
            validate(&o),
            Err(RuntimeError::InvalidOptions(m)) if m.contains("retry_period")
        ));
        o.retry_period = Duration::ZERO;
        assert!(validate(&o).is_err());
        o.retry_period = Duration::from_secs(1);
        o.identity = String::new();
        assert!(matches!(
            validate(&o),
            Err(RuntimeError::InvalidOptions(m)) if m.contains("identity")
        ));
        // Without leader election only the server matters.
        o.leader_election = false;
        o.lease_duration = Duration::ZERO;
        assert!(validate(&o).is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Duration::from_secs(2);
        assert_eq!(backoff(b, 0), Duration::from_secs(2));
        assert_eq!(backoff(b, 1), Duration::from_secs(4));
        assert_eq!(backoff(b, 3), Duration::from_secs(16));
        assert_eq!(backoff(b, 4), MAX_BACKOFF);
        assert_eq!(backoff(b, 1000), MAX_BACKOFF);
    }

    #[test]
    fn lost_lease_deadline_is_clamped() {
        let t = Duration::from_secs(20);
        assert_eq!(
            lost_lease_deadline(SystemTime::UNIX_EPOCH, t),
            MIN_LOST_LEASE_STOP
        );
        let far = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(lost_lease_deadline(far, t), t);
        let soon = lost_lease_deadline(SystemTime::now() + Duration::from_secs(5), t);
        assert!(soon > Duration::from_secs(4) && soon <= Duration::from_secs(5));
    }

    #[test]
    fn lease_view_reads_holder_and_validity() {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let renew = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: s("pod-a"),
                renew_time: Some(MicroTime(renew)),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(
            view_of(&lease),
            LeaseView {
                holder: s("pod-a"),
                valid_until: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_015)),
            }
        );
        let released = Lease {
            spec: Some(LeaseSpec {
                holder_identity: s(""),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(
            view_of(&released),
            LeaseView {
                holder: None,
                valid_until: None
            }
        );
        assert_eq!(view_of(&Lease::default()).holder, None);
    }

    #[tokio::test]
    async fn shutdown_fires_on_trigger_and_on_drop() {
        let (trigger, shutdown) = Shutdown::channel();
        let copy = shutdown.clone();
        assert!(!shutdown.is_triggered());
        let waiter = tokio::spawn(async move { copy.wait().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        trigger.trigger();
        trigger.trigger();
        timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(shutdown.is_triggered());
        // Waiting after the fact returns at once.
        timeout(Duration::from_secs(1), shutdown.wait())
            .await
            .unwrap();

        let (trigger, shutdown) = Shutdown::channel();
        drop(trigger);
        assert!(shutdown.is_triggered());
        timeout(Duration::from_secs(1), shutdown.wait())
            .await
            .unwrap();
    }

    /// A client whose requests would fail: leader election off never calls it.
    fn offline_client() -> kube::Client {
        install_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn local_options() -> RuntimeOptions {
        let mut o = RuntimeOptions::new("test-controller");
        o.leader_election = false;
        o.metrics_addr = "127.0.0.1:0".parse().unwrap();
        o.shutdown_timeout = Duration::from_secs(2);
        o
    }

    #[tokio::test]
    async fn without_leader_election_the_controller_runs_until_stop() {
        let metrics = Arc::new(Metrics::new("test-controller"));
        let started = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let run = tokio::spawn(run_until(
            local_options(),
            offline_client(),
            metrics.clone(),
            {
                let (started, stopped) = (started.clone(), stopped.clone());
                move |_client, shutdown: Shutdown| {
                    let (started, stopped) = (started.clone(), stopped.clone());
                    async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        shutdown.wait().await;
                        stopped.fetch_add(1, Ordering::SeqCst);
                    }
                }
            },
            async {
                let _ = stop_rx.await;
            },
        ));
        for _ in 0..100 {
            if started.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert!(metrics.is_leader());
        stop_tx.send(()).unwrap();
        timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
        assert!(!metrics.is_leader());
    }

    #[tokio::test]
    async fn a_controller_ignoring_shutdown_is_aborted_after_the_timeout() {
        let metrics = Arc::new(Metrics::new("test-controller"));
        let mut opts = local_options();
        opts.shutdown_timeout = Duration::from_millis(200);
        let result = timeout(
            Duration::from_secs(5),
            run_until(
                opts,
                offline_client(),
                metrics,
                |_client, _shutdown| pending::<()>(),
                tokio::time::sleep(Duration::from_millis(100)),
            ),
        )
        .await
        .unwrap();
        assert!(result.is_ok());
    }

    #[tokio::test]
    async fn a_controller_returning_on_its_own_is_an_error() {
        let metrics = Arc::new(Metrics::new("test-controller"));
        let result = run_until(
            local_options(),
            offline_client(),
            metrics.clone(),
            |_client, _shutdown| async {},
            pending::<()>(),
        )
        .await;
        assert!(matches!(result, Err(RuntimeError::ControllerExited)));
        assert!(!metrics.is_leader());

        let result = run_until(
            local_options(),
            offline_client(),
            metrics,
            |_client, _shutdown| async { panic!("boom") },
            pending::<()>(),
        )
        .await;
        assert!(matches!(result, Err(RuntimeError::ControllerPanicked(_))));
    }

    #[tokio::test]
    async fn bind_failure_is_reported() {
        let taken = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut opts = local_options();
        opts.metrics_addr = taken.local_addr();
        let result = run_until(
            opts,
            offline_client(),
            Arc::new(Metrics::new("t")),
            |_client, shutdown: Shutdown| async move { shutdown.wait().await },
            pending::<()>(),
        )
        .await;
        assert!(matches!(result, Err(RuntimeError::Bind { .. })));
    }
}
