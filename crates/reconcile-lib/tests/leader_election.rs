//! Leader election of `reconcile_lib::runtime::run_until` against the in-process fake API
//! server: two replicas, one lease.
//!
//! Note on the fake: it never reports server-side-apply conflicts between field managers, while
//! a real API server answers the second replica's `PATCH .../leases/{name}?fieldManager=
//! kube-lease-manager-{identity}` (`application/apply-patch+yaml`, no `force`) with 409 when the
//! first one owns `spec.holderIdentity`. Two replicas that race for a free lease can therefore
//! both believe they won for a moment against the fake; the runtime's periodic Lease read makes
//! the loser step down within one `retry_period`. The sequential test below avoids the race;
//! the concurrent one asserts only that the replicas settle on one leader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reconcile_lib::metrics::Metrics;
use reconcile_lib::runtime::{RuntimeError, RuntimeOptions, Shutdown, run_until};
use serde_json::Value;
use testkit::apiserver::FakeApiServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const LEASE: &str = "qdrant-test-controller";
const NAMESPACE: &str = "default";
const LEASE_DURATION: Duration = Duration::from_secs(10);
const RETRY_PERIOD: Duration = Duration::from_millis(500);

fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A port that was free a moment ago.
fn free_port_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The status code of `GET path` on `addr`, or `None` when nothing answers.
async fn http_status(addr: SocketAddr, path: &'static str) -> Option<u16> {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        raw.split(' ').nth(1)?.parse().ok()
    })
    .await
    .unwrap()
}

/// One replica: `run_until` with a start closure that counts its terms.
struct Replica {
    identity: &'static str,
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    /// Times the start closure was called.
    starts: Arc<AtomicUsize>,
    /// Controllers currently running (0 or 1).
    active: Arc<AtomicUsize>,
    /// Controllers that returned after their `Shutdown` fired.
    clean_stops: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    run: JoinHandle<Result<(), RuntimeError>>,
}

impl Replica {
    fn spawn(fake: &FakeApiServer, identity: &'static str) -> Self {
        let addr = free_port_addr();
        let mut opts = RuntimeOptions::new("qdrant-test-controller");
        opts.lease_name = LEASE.to_owned();
        opts.lease_namespace = NAMESPACE.to_owned();
        opts.identity = identity.to_owned();
        opts.lease_duration = LEASE_DURATION;
        opts.retry_period = RETRY_PERIOD;
        opts.shutdown_timeout = Duration::from_secs(2);
        opts.leader_election = true;
        opts.metrics_addr = addr;

        let metrics = Arc::new(Metrics::new("qdrant-test-controller"));
        let starts = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let clean_stops = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel::<()>();
        let start = {
            let (starts, active, clean_stops) =
                (starts.clone(), active.clone(), clean_stops.clone());
            move |_client: kube::Client, shutdown: Shutdown| {
                let (starts, active, clean_stops) =
                    (starts.clone(), active.clone(), clean_stops.clone());
                async move {
                    starts.fetch_add(1, Ordering::SeqCst);
                    active.fetch_add(1, Ordering::SeqCst);
                    shutdown.wait().await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    clean_stops.fetch_add(1, Ordering::SeqCst);
                }
            }
        };
        let run = tokio::spawn(run_until(
            opts,
            fake.client(),
            metrics.clone(),
            start,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            identity,
            addr,
            metrics,
            starts,
            active,
            clean_stops,
            stop: Some(stop),
            run,
        }
    }

    fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    fn starts(&self) -> usize {
        self.starts.load(Ordering::SeqCst)
    }

    /// The SIGTERM path: fires the stop future and waits for `run_until` to return.
    async fn terminate(&mut self) -> Result<(), RuntimeError> {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), &mut self.run)
            .await
            .expect("run_until returns after stop")
            .unwrap()
    }
}

fn holder(fake: &FakeApiServer) -> Option<String> {
    let lease = fake.get("coordination.k8s.io/v1", "leases", Some(NAMESPACE), LEASE)?;
    lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_fast_takeover_after_release() {
    init_logs();
    let fake = FakeApiServer::new();

    let mut a = Replica::spawn(&fake, "pod-a");
    wait_until("pod-a to lead", Duration::from_secs(5), || a.active() == 1).await;
    assert_eq!(holder(&fake).as_deref(), Some("pod-a"));

    let mut b = Replica::spawn(&fake, "pod-b");
    // Longer than one renewal interval of the holder (duration 4 s - grace 1 s).
    tokio::time::sleep(LEASE_DURATION).await;
    assert_eq!(a.starts(), 1, "the leader's controller runs once");
    assert_eq!(b.starts(), 0, "the standby never starts its controller");
    assert_eq!(a.active(), 1);
    assert!(a.metrics.is_leader());
    assert!(!b.metrics.is_leader());
    assert_eq!(holder(&fake).as_deref(), Some("pod-a"), "renewed by pod-a");
    // Both replicas are Ready, the standby too, so a Deployment rollout completes.
    for r in [&a, &b] {
        assert_eq!(
            http_status(r.addr, "/readyz").await,
            Some(200),
            "{}",
            r.identity
        );
        assert_eq!(
            http_status(r.addr, "/healthz").await,
            Some(200),
            "{}",
            r.identity
        );
    }

    // SIGTERM path on the leader.
    let t0 = Instant::now();
    a.terminate().await.unwrap();
    assert_eq!(
        a.clean_stops.load(Ordering::SeqCst),
        1,
        "the controller saw Shutdown"
    );
    assert_eq!(a.active(), 0);
    assert!(!a.metrics.is_leader());
    assert_ne!(
        holder(&fake).as_deref(),
        Some("pod-a"),
        "the lease is released before run_until returns"
    );
    assert_eq!(
        http_status(a.addr, "/healthz").await,
        None,
        "server stopped"
    );

    wait_until("pod-b to take over", LEASE_DURATION, || b.active() == 1).await;
    let takeover = t0.elapsed();
    assert!(
        takeover < LEASE_DURATION / 2,
        "takeover took {takeover:?}; without the release it would take until the lease expires"
    );
    assert_eq!(holder(&fake).as_deref(), Some("pod-b"));
    wait_until("pod-b's leader gauge", Duration::from_secs(1), || {
        b.metrics.is_leader()
    })
    .await;
    assert_eq!(b.starts(), 1);

    b.terminate().await.unwrap();
    assert_eq!(b.clean_stops.load(Ordering::SeqCst), 1);
    assert_eq!(holder(&fake), None, "the last replica released the lease");
    assert_eq!(a.starts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replicas_settle_on_one_leader() {
    init_logs();
    let fake = FakeApiServer::new();
    let mut replicas = [
        Replica::spawn(&fake, "pod-a"),
        Replica::spawn(&fake, "pod-b"),
    ];
    let active = |rs: &[Replica; 2]| rs.iter().map(Replica::active).sum::<usize>();

    wait_until("a leader", Duration::from_secs(5), || {
        active(&replicas) >= 1
    })
    .await;
    // Let a (fake-only, see the module docs) double acquisition resolve.
    tokio::time::sleep(RETRY_PERIOD * 3).await;
    for _ in 0..20 {
        assert_eq!(active(&replicas), 1, "exactly one controller runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = replicas.iter().position(|r| r.active() == 1).unwrap();
    assert_eq!(holder(&fake).as_deref(), Some(replicas[leader].identity));
    assert!(replicas[leader].metrics.is_leader());
    assert!(!replicas[1 - leader].metrics.is_leader());

    replicas[leader].terminate().await.unwrap();
    wait_until("the other to take over", LEASE_DURATION / 2, || {
        replicas[1 - leader].active() == 1
    })
    .await;
    replicas[1 - leader].terminate().await.unwrap();
    assert_eq!(holder(&fake), None);
    for r in &replicas {
        assert_eq!(
            r.starts(),
            r.clean_stops.load(Ordering::SeqCst),
            "{}",
            r.identity
        );
    }
}

/// Leadership lost behind the leader's back: the controller is stopped, the replica stands by
/// (no exit), and leads again with a fresh controller once the foreign lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_the_lease_stands_by_and_leads_again() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    init_logs();
    let fake = FakeApiServer::new();
    let mut a = Replica::spawn(&fake, "pod-a");
    wait_until("pod-a to lead", Duration::from_secs(5), || a.active() == 1).await;

    // Another holder appears, with a fresh renewTime (as after a partition healed).
    let now = serde_json::to_value(MicroTime(k8s_openapi::jiff::Timestamp::now())).unwrap();
    let seconds = i64::try_from(LEASE_DURATION.as_secs()).unwrap();
    assert!(fake.edit(
        "coordination.k8s.io/v1",
        "leases",
        Some(NAMESPACE),
        LEASE,
        |lease| {
            lease["spec"]["holderIdentity"] = Value::from("intruder");
            lease["spec"]["renewTime"] = now.clone();
            lease["spec"]["acquireTime"] = now;
            lease["spec"]["leaseDurationSeconds"] = Value::from(seconds);
        },
    ));
    let t0 = Instant::now();
    wait_until("pod-a to stop its controller", LEASE_DURATION, || {
        a.active() == 0
    })
    .await;
    assert!(
        t0.elapsed() < RETRY_PERIOD * 5,
        "noticed after {:?}",
        t0.elapsed()
    );
    assert_eq!(a.clean_stops.load(Ordering::SeqCst), 1, "it saw Shutdown");
    assert!(!a.metrics.is_leader());
    assert!(!a.run.is_finished(), "standby, not exit");
    assert_eq!(http_status(a.addr, "/readyz").await, Some(200));

    // The intruder never renews: once its lease expires pod-a takes over with a new term.
    wait_until("pod-a to lead again", LEASE_DURATION * 2, || {
        a.active() == 1
    })
    .await;
    assert_eq!(a.starts(), 2);
    assert_eq!(holder(&fake).as_deref(), Some("pod-a"));
    wait_until("pod-a's leader gauge", Duration::from_secs(1), || {
        a.metrics.is_leader()
    })
    .await;

    a.terminate().await.unwrap();
    assert_eq!(a.clean_stops.load(Ordering::SeqCst), 2);
    assert_eq!(holder(&fake), None);
}
