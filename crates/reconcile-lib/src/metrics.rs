//! Prometheus metrics shared by every controller, built on `prometheus-client`.
//!
//! One [`Metrics`] per controller process. Every series carries the constant label
//! `controller="<name>"`, so the three controllers can be scraped into one Prometheus without
//! clashing. Exposed series (OpenMetrics text, see [`Metrics::encode`]):
//!
//! | series | type | labels | meaning |
//! |---|---|---|---|
//! | `qdrant_operator_reconcile_total` | counter | `controller` | reconciles started |
//! | `qdrant_operator_reconcile_errors_total` | counter | `controller`, `reason` | reconciles that failed, by reason |
//! | `qdrant_operator_reconcile_duration_seconds` | histogram | `controller` | wall-clock time of one reconcile, seconds |
//! | `qdrant_operator_leader` | gauge | `controller` | 1 while this replica holds the leader-election Lease, else 0 |
//!
//! The `/metrics` endpoint that serves this text lives in [`crate::server`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric name registered by [`Metrics`].
pub const METRIC_PREFIX: &str = "qdrant_operator";

/// Upper bounds, in seconds, of the `qdrant_operator_reconcile_duration_seconds` buckets.
///
/// From 10 ms (a no-op reconcile answered from caches) to 30 s (a reconcile that waits on slow
/// Qdrant or API-server calls); anything longer lands in the implicit `+Inf` bucket.
pub const RECONCILE_DURATION_BUCKETS: [f64; 11] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Default [`Metrics::stall_after`]: 15 minutes. A reconcile makes only bounded calls (every
/// Kubernetes, Qdrant and S3 request has a timeout; transfers run as tasks, not in reconciles),
/// so one that runs this long is wedged.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(15 * 60);

/// Reconciles in flight: start instants by measurer id.
type InFlight = Arc<Mutex<BTreeMap<u64, Instant>>>;

/// Label set of `qdrant_operator_reconcile_errors_total` (besides the constant `controller`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// The metrics of one controller process, plus the registry that encodes them.
///
/// Cheap to share: wrap it in an `Arc` and hand clones to the reconciler and to
/// [`crate::server`]. All recording methods take `&self` and are lock-free except the first
/// use of a new error `reason` (a short write lock inside `prometheus-client`'s `Family`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ReasonLabels, Counter>,
    duration: Histogram,
    leader: Gauge,
    in_flight: InFlight,
    next_id: AtomicU64,
    stall_after: Duration,
    domain: Domain,
}

/// Buckets of `qdrant_operator_{backup,restore}_duration_seconds`: 1 s to 4 h.
pub const RUN_DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// Label set of the domain metrics that have one label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The operator's domain metrics (all registered by every controller, written by the one
/// that knows: clusters and day-2 steps by the cluster-controller, backup and restore runs by
/// the backup-controller).
#[derive(Debug)]
struct Domain {
    /// `clusters{phase}`: QdrantClusters by `status.phase`, from each one's last reconcile.
    clusters: Family<KindLabels, Gauge>,
    /// The phase each cluster was counted under, by `namespace/name`.
    phases: Mutex<BTreeMap<String, String>>,
    /// `day2_steps_total{kind}`: steps a day-2 operation took (drains, restarts, shard
    /// moves, recoveries, volume patches), by operation.
    day2_steps: Family<KindLabels, Counter>,
    /// `backup_bytes_total`: bytes uploaded by succeeded backups.
    backup_bytes: Counter,
    /// `backup_duration_seconds{kind}` and `restore_duration_seconds{kind}` by result
    /// (`Succeeded`, `Failed`).
    backup_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    restore_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
}

fn run_histogram() -> Histogram {
    Histogram::new(RUN_DURATION_BUCKETS)
}

impl Metrics {
    /// Creates the registry and registers the four series, all labelled
    /// `controller="<controller>"` (e.g. `"cluster-controller"`).
    ///
    /// Counters start at 0, the gauge at 0 (not leader); no error series exists until the first
    /// [`Metrics::reconcile_failed`].
    pub fn new(controller: &str) -> Self {
        let labels = [(
            Cow::Borrowed("controller"),
            Cow::Owned(controller.to_owned()),
        )];
        let mut registry = Registry::with_prefix_and_labels(METRIC_PREFIX, labels.into_iter());

        let reconciles = Counter::default();
        registry.register(
            "reconcile",
            "Reconciles started by this controller",
            reconciles.clone(),
        );

        let errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error reason",
            errors.clone(),
        );

        let duration = Histogram::new(RECONCILE_DURATION_BUCKETS);
        registry.register_with_unit(
            "reconcile_duration",
            "Wall-clock duration of one reconcile",
            Unit::Seconds,
            duration.clone(),
        );

        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader-election Lease, else 0",
            leader.clone(),
        );

        let domain = Domain {
            clusters: Family::default(),
            phases: Mutex::default(),
            day2_steps: Family::default(),
            backup_bytes: Counter::default(),
            backup_duration: Family::new_with_constructor(run_histogram),
            restore_duration: Family::new_with_constructor(run_histogram),
        };
        registry.register(
            "clusters",
            "QdrantClusters by status.phase (label kind), as last reconciled",
            domain.clusters.clone(),
        );
        registry.register(
            "day2_steps",
            "Steps taken by day-2 operations (label kind: scale-down, peer recovery, rollout, rebalance, volume expansion)",
            domain.day2_steps.clone(),
        );
        registry.register_with_unit(
            "backup",
            "Bytes uploaded to S3 by succeeded QdrantBackups",
            Unit::Bytes,
            domain.backup_bytes.clone(),
        );
        registry.register_with_unit(
            "backup_duration",
            "Duration of finished QdrantBackups, by result (label kind)",
            Unit::Seconds,
            domain.backup_duration.clone(),
        );
        registry.register_with_unit(
            "restore_duration",
            "Duration of finished QdrantRestores, by result (label kind)",
            Unit::Seconds,
            domain.restore_duration.clone(),
        );

        Self {
            registry,
            reconciles,
            errors,
            duration,
            leader,
            in_flight: InFlight::default(),
            next_id: AtomicU64::new(0),
            stall_after: DEFAULT_STALL_AFTER,
            domain,
        }
    }

    /// Counts QdrantCluster `key` (`namespace/name`) under `phase` in
    /// `qdrant_operator_clusters{kind=<phase>}` (moving it from the phase it was counted under),
    /// or removes it (`None`: deleted).
    pub fn cluster_phase(&self, key: &str, phase: Option<&str>) {
        let mut phases = self
            .domain
            .phases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let gauge = |p: &str| {
            self.domain
                .clusters
                .get_or_create(&KindLabels {
                    kind: p.to_string(),
                })
                .clone()
        };
        if let Some(old) = phases.get(key) {
            if Some(old.as_str()) == phase {
                return;
            }
            gauge(old).dec();
        }
        match phase {
            Some(p) => {
                gauge(p).inc();
                phases.insert(key.to_string(), p.to_string());
            }
            None => {
                phases.remove(key);
            }
        }
    }

    /// One step of day-2 operation `operation` (`qdrant_operator_day2_steps_total`).
    pub fn day2_step(&self, operation: &str) {
        self.domain
            .day2_steps
            .get_or_create(&KindLabels {
                kind: operation.to_string(),
            })
            .inc();
    }

    /// A finished QdrantBackup: its duration by `result` and, when it succeeded, its bytes.
    pub fn backup_finished(&self, result: &str, duration: Duration, bytes: u64) {
        self.domain
            .backup_duration
            .get_or_create(&KindLabels {
                kind: result.to_string(),
            })
            .observe(duration.as_secs_f64());
        self.domain.backup_bytes.inc_by(bytes);
    }

    /// A finished QdrantRestore: its duration by `result`.
    pub fn restore_finished(&self, result: &str, duration: Duration) {
        self.domain
            .restore_duration
            .get_or_create(&KindLabels {
                kind: result.to_string(),
            })
            .observe(duration.as_secs_f64());
    }

    /// Sets [`Self::stall_after`] (tests use milliseconds).
    pub fn with_stall_after(mut self, stall_after: Duration) -> Self {
        self.stall_after = stall_after;
        self
    }

    /// How long one reconcile may run before [`Self::stalled`] reports it and `/healthz`
    /// fails (so the kubelet's liveness probe restarts a wedged controller).
    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }

    /// The age of the oldest reconcile still running, when it is past [`Self::stall_after`].
    pub fn stalled(&self) -> Option<Duration> {
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let oldest = in_flight.values().min()?.elapsed();
        (oldest > self.stall_after).then_some(oldest)
    }

    /// Counts one reconcile and starts timing it.
    ///
    /// The returned [`ReconcileMeasurer`] records the elapsed wall-clock time into
    /// `qdrant_operator_reconcile_duration_seconds` when it is dropped, so keep it alive for the
    /// whole reconcile (`let _timer = metrics.reconcile_started();`).
    pub fn reconcile_started(&self) -> ReconcileMeasurer {
        self.reconciles.inc();
        let start = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, start);
        ReconcileMeasurer {
            start,
            id,
            in_flight: self.in_flight.clone(),
            histogram: self.duration.clone(),
        }
    }

    /// Counts one failed reconcile under `reason`.
    ///
    /// `reason` becomes a label value: pass a short, bounded, CamelCase or snake_case identifier
    /// (typically the error enum's `metric_label()`), never a free-form message, or the number of
    /// series grows without bound.
    pub fn reconcile_failed(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Sets `qdrant_operator_leader` to 1 (`true`) or 0 (`false`).
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Whether the last [`Metrics::set_leader`] said this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    /// The registry, to register controller-specific metrics before sharing `self`.
    ///
    /// Metrics registered here get the `qdrant_operator_` prefix and the `controller` label too.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Encodes every registered metric in the OpenMetrics text format (ending in `# EOF`).
    ///
    /// Serve it with content type `application/openmetrics-text; version=1.0.0; charset=utf-8`.
    ///
    /// # Errors
    /// Only a `std::fmt::Error` from a metric encoder; writing to a `String` does not fail.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Times one reconcile; created by [`Metrics::reconcile_started`].
///
/// On drop, observes the seconds since creation in
/// `qdrant_operator_reconcile_duration_seconds` — on success, error and early return alike —
/// and leaves the reconciles in flight that [`Metrics::stalled`] watches.
#[derive(Debug)]
#[must_use = "the reconcile duration is recorded when this value is dropped; bind it to a variable"]
pub struct ReconcileMeasurer {
    start: Instant,
    id: u64,
    in_flight: InFlight,
    histogram: Histogram,
}

impl Drop for ReconcileMeasurer {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The value of the sample line whose name-and-labels part is exactly `series`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
    }

    #[test]
    fn domain_metrics_count_clusters_by_phase_steps_and_runs() {
        let m = Metrics::new("cluster-controller");
        let phase = |text: &str, p: &str| {
            sample(
                text,
                &format!(
                    r#"qdrant_operator_clusters{{controller="cluster-controller",kind="{p}"}}"#
                ),
            )
        };
        m.cluster_phase("ns/a", Some("Creating"));
        m.cluster_phase("ns/b", Some("Creating"));
        m.cluster_phase("ns/a", Some("Running"));
        m.cluster_phase("ns/a", Some("Running"));
        let text = m.encode().unwrap();
        assert_eq!(phase(&text, "Creating"), Some(1.0), "{text}");
        assert_eq!(phase(&text, "Running"), Some(1.0), "{text}");
        m.cluster_phase("ns/b", None);
        assert_eq!(phase(&m.encode().unwrap(), "Creating"), Some(0.0));

        m.day2_step("scale-down");
        m.day2_step("scale-down");
        m.backup_finished("Succeeded", Duration::from_secs(90), 1024);
        m.backup_finished("Failed", Duration::from_secs(3), 0);
        m.restore_finished("Succeeded", Duration::from_secs(20));
        let text = m.encode().unwrap();
        let get = |series: &str| sample(&text, series);
        assert_eq!(
            get(
                r#"qdrant_operator_day2_steps_total{controller="cluster-controller",kind="scale-down"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            get(r#"qdrant_operator_backup_bytes_total{controller="cluster-controller"}"#),
            Some(1024.0),
            "{text}"
        );
        assert_eq!(
            get(
                r#"qdrant_operator_backup_duration_seconds_count{controller="cluster-controller",kind="Succeeded"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            get(
                r#"qdrant_operator_backup_duration_seconds_sum{controller="cluster-controller",kind="Succeeded"}"#
            ),
            Some(90.0),
            "{text}"
        );
        assert_eq!(
            get(
                r#"qdrant_operator_restore_duration_seconds_count{controller="cluster-controller",kind="Succeeded"}"#
            ),
            Some(1.0),
            "{text}"
        );
    }

    #[test]
    fn fresh_metrics_encode_zeroes_and_eof() {
        let m = Metrics::new("cluster-controller");
        let text = m.encode().unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"qdrant_operator_reconcile_total{controller="cluster-controller"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"qdrant_operator_leader{controller="cluster-controller"}"#
            ),
            Some(0.0)
        );
        assert!(text.contains("# TYPE qdrant_operator_reconcile_duration_seconds histogram"));
        assert!(text.contains("# UNIT qdrant_operator_reconcile_duration_seconds seconds"));
        // prometheus-client leaves an empty family out entirely: no error series (nor its
        // TYPE line) before the first failure.
        assert!(!text.contains("reconcile_errors"), "{text}");
        m.reconcile_failed("Timeout");
        assert!(
            m.encode()
                .unwrap()
                .contains("# TYPE qdrant_operator_reconcile_errors counter")
        );
    }

    #[test]
    fn reconciles_errors_and_durations_are_counted() {
        let m = Metrics::new("backup-controller");
        {
            let _timer = m.reconcile_started();
        }
        {
            let _timer = m.reconcile_started();
            m.reconcile_failed("QdrantUnavailable");
        }
        m.reconcile_failed("QdrantUnavailable");
        m.reconcile_failed("InvalidSpec");

        let text = m.encode().unwrap();
        let c = r#"controller="backup-controller""#;
        assert_eq!(
            sample(&text, &format!("qdrant_operator_reconcile_total{{{c}}}")),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"qdrant_operator_reconcile_errors_total{{{c},reason="QdrantUnavailable"}}"#
                )
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(r#"qdrant_operator_reconcile_errors_total{{{c},reason="InvalidSpec"}}"#)
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("qdrant_operator_reconcile_duration_seconds_count{{{c}}}")
            ),
            Some(2.0)
        );
        // Two near-instant reconciles fall into every bucket, including the smallest one.
        assert_eq!(
            sample(
                &text,
                &format!(r#"qdrant_operator_reconcile_duration_seconds_bucket{{{c},le="0.01"}}"#)
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(r#"qdrant_operator_reconcile_duration_seconds_bucket{{{c},le="30.0"}}"#)
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(r#"qdrant_operator_reconcile_duration_seconds_bucket{{{c},le="+Inf"}}"#)
            ),
            Some(2.0),
            "{text}"
        );
    }

    #[test]
    fn leader_gauge_follows_set_leader() {
        let m = Metrics::new("collection-controller");
        let series = r#"qdrant_operator_leader{controller="collection-controller"}"#;
        m.set_leader(true);
        assert!(m.is_leader());
        assert_eq!(sample(&m.encode().unwrap(), series), Some(1.0));
        m.set_leader(false);
        assert!(!m.is_leader());
        assert_eq!(sample(&m.encode().unwrap(), series), Some(0.0));
    }

    #[test]
    fn extra_metrics_get_prefix_and_controller_label() {
        let mut m = Metrics::new("cluster-controller");
        let g: Gauge = Gauge::default();
        m.registry_mut()
            .register("managed_clusters", "Clusters managed", g.clone());
        g.set(3);
        assert_eq!(
            sample(
                &m.encode().unwrap(),
                r#"qdrant_operator_managed_clusters{controller="cluster-controller"}"#
            ),
            Some(3.0)
        );
    }
}
