//! Logging and tracing: `tracing-subscriber` to stderr, plus OTLP span export when configured.
//!
//! Call [`init`] once, first thing inside the Tokio runtime of `main`, and keep the returned
//! [`TelemetryGuard`] alive until `main` returns (its drop flushes buffered spans).
//!
//! Configuration comes from the environment (see [`TelemetryConfig::from_lookup`]):
//! - `RUST_LOG`: an `EnvFilter` directive string; unset or empty means [`DEFAULT_FILTER`].
//! - stderr a terminal: human-readable lines with colours; otherwise one JSON object per line
//!   (what log collectors in a cluster expect).
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set (and
//!   `OTEL_SDK_DISABLED` not `true`): spans are also exported over OTLP http/protobuf (the only
//!   protocol built in; `OTEL_EXPORTER_OTLP_PROTOCOL` is ignored) through a batch span
//!   processor, with resource `service.name` = the given service name. The other standard
//!   `OTEL_EXPORTER_OTLP_*` variables (headers, timeout, compression) and
//!   `OTEL_RESOURCE_ATTRIBUTES` are honoured by the OpenTelemetry SDK.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The filter used when `RUST_LOG` is unset or empty: everything at `info`, the kube crates
/// only from `warn`. `EnvFilter` targets match by string prefix, so `kube` also covers
/// `kube_client`, `kube_runtime` and `kube_lease_manager`.
pub const DEFAULT_FILTER: &str = "info,kube=warn";

/// How long [`TelemetryGuard`]'s drop waits for the last spans to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of [`init`] / [`init_with`].
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` (or [`TelemetryConfig::filter`]) is not a valid `EnvFilter` directive string.
    #[error("invalid log filter {filter:?} (from RUST_LOG): {source}")]
    Filter {
        /// The rejected directive string.
        filter: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global `tracing` subscriber is already installed (e.g. `init` was called twice).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialized(#[source] tracing_subscriber::util::TryInitError),
    /// OTLP export was requested but `init` was called outside a Tokio runtime; the exporter's
    /// HTTP client needs one.
    #[error("OTLP export needs a Tokio runtime; call telemetry::init inside the runtime")]
    NoRuntime,
    /// The OTLP span exporter could not be built (bad endpoint URL, bad header syntax, ...).
    #[error("building the OTLP span exporter failed: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Log line format on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured, one event per line (stderr is a terminal).
    Human,
    /// One JSON object per line, span fields included (stderr is a pipe or file, as in a pod).
    Json,
}

/// What [`init_with`] sets up; normally read from the environment by [`TelemetryConfig::from_env`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `EnvFilter` directives, e.g. `info,kube=warn`.
    pub filter: String,
    /// Log line format.
    pub format: LogFormat,
    /// Whether to export spans over OTLP (endpoint and options are read by the SDK from the
    /// `OTEL_EXPORTER_OTLP_*` variables).
    pub otlp: bool,
}

impl TelemetryConfig {
    /// Reads `RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// `OTEL_SDK_DISABLED` from the process environment and whether stderr is a terminal.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok(), std::io::stderr().is_terminal())
    }

    /// The pure decision behind [`TelemetryConfig::from_env`]: `lookup` returns an environment
    /// variable's value (or `None` when unset).
    ///
    /// - `filter`: `RUST_LOG` when set and not blank, else [`DEFAULT_FILTER`].
    /// - `format`: [`LogFormat::Human`] when `stderr_is_terminal`, else [`LogFormat::Json`].
    /// - `otlp`: either endpoint variable set and not blank, unless `OTEL_SDK_DISABLED` is `true`
    ///   (case-insensitive), as the OpenTelemetry specification says.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, stderr_is_terminal: bool) -> Self {
        let set = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let filter = set("RUST_LOG").unwrap_or_else(|| DEFAULT_FILTER.to_owned());
        let format = if stderr_is_terminal {
            LogFormat::Human
        } else {
            LogFormat::Json
        };
        let disabled =
            set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let endpoint = set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
        Self {
            filter,
            format,
            otlp: endpoint && !disabled,
        }
    }
}

/// Keeps the OTLP pipeline alive; dropping it flushes and shuts the tracer provider down
/// (bounded by 5 s). A no-op when OTLP export is off.
///
/// Drop it inside the Tokio runtime (at the end of `async fn main`), preferably a
/// multi-threaded one: on a current-thread runtime the final export cannot make progress while
/// the drop blocks, and the last spans are lost after the timeout.
#[derive(Debug)]
#[must_use = "dropping the guard shuts span export down; keep it until main returns"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exports_spans(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        let shutdown = move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let result = if multi_thread {
            // Let the runtime keep driving the export task while this thread blocks.
            tokio::task::block_in_place(shutdown)
        } else {
            shutdown()
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "flushing spans at shutdown failed");
        }
    }
}

/// Installs the global subscriber configured from the environment ([`TelemetryConfig::from_env`])
/// for the process named `service_name` (e.g. `"qdrant-cluster-controller"`).
///
/// # Errors
/// See [`init_with`]. Calling it a second time returns [`TelemetryError::AlreadyInitialized`]
/// and changes nothing; it never panics.
pub fn init(service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    init_with(service_name, &TelemetryConfig::from_env())
}

/// Installs the global subscriber described by `config`.
///
/// # Errors
/// [`TelemetryError::Filter`] for a bad filter, [`TelemetryError::NoRuntime`] or
/// [`TelemetryError::Exporter`] when OTLP is on and cannot be set up,
/// [`TelemetryError::AlreadyInitialized`] when a global subscriber exists already.
pub fn init_with(
    service_name: &str,
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&config.filter).map_err(|source| TelemetryError::Filter {
        filter: config.filter.clone(),
        source,
    })?;
    let provider = if config.otlp {
        Some(tracer_provider(service_name)?)
    } else {
        None
    };
    // From here on the guard owns the provider, so an early return shuts it down again.
    let guard = TelemetryGuard { provider };

    let human = (config.format == LogFormat::Human).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(true)
    });
    let json = (config.format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
    });
    let otel = guard.provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service_name.to_owned()))
            // Never trace the exporter's own HTTP stack into itself.
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                !is_transport_target(meta.target())
            }))
    });

    tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(json)
        .with(otel)
        .try_init()
        .map_err(TelemetryError::AlreadyInitialized)?;

    if let Some(p) = &guard.provider {
        opentelemetry::global::set_tracer_provider(p.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    tracing::debug!(
        filter = %config.filter,
        format = ?config.format,
        otlp = config.otlp,
        "telemetry initialised"
    );
    Ok(guard)
}

/// Targets of the HTTP stack the OTLP exporter itself uses; their spans would feed back.
fn is_transport_target(target: &str) -> bool {
    [
        "hyper",
        "hyper_util",
        "reqwest",
        "h2",
        "tower",
        "opentelemetry",
        "opentelemetry_sdk",
        "opentelemetry_otlp",
        "opentelemetry_http",
    ]
    .iter()
    .any(|t| target == *t || target.strip_prefix(t).is_some_and(|r| r.starts_with("::")))
}

/// Builds the OTLP http/protobuf exporter (endpoint etc. from `OTEL_EXPORTER_OTLP_*`) behind a
/// batch span processor, with `service.name` = `service_name`.
fn tracer_provider(service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
    // reqwest (the exporter's HTTP client) panics without a process-wide rustls provider.
    crate::runtime::install_crypto_provider();
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    exporter.set_resource(&resource);
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(OnTokio {
            inner: Arc::new(exporter),
            handle,
        })
        .with_resource(resource)
        .build())
}

/// Runs each export of `inner` as a task on the Tokio runtime.
///
/// The SDK's batch span processor exports from its own thread with a plain `block_on`, but the
/// OTLP exporter's async reqwest client needs a Tokio reactor; this adapter spawns the export
/// onto the runtime and waits for its `JoinHandle`, which works from any executor.
#[derive(Debug)]
struct OnTokio {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    handle: tokio::runtime::Handle,
}

impl SpanExporter for OnTokio {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let task = self.handle.spawn(async move { inner.export(batch).await });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(OTelSdkError::InternalFailure(format!(
                    "span export task failed: {e}"
                )))
            })
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Already set before wrapping; this only matters if the SDK changes it later, and no
        // export can be in flight while the provider is being built.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)], tty: bool) -> TelemetryConfig {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TelemetryConfig::from_lookup(|k| env.get(k).cloned(), tty)
    }

    #[test]
    fn defaults_without_environment() {
        assert_eq!(
            config(&[], false),
            TelemetryConfig {
                filter: DEFAULT_FILTER.to_owned(),
                format: LogFormat::Json,
                otlp: false,
            }
        );
        assert_eq!(config(&[], true).format, LogFormat::Human);
        EnvFilter::try_new(DEFAULT_FILTER).unwrap();
    }

    #[test]
    fn rust_log_wins_unless_blank() {
        assert_eq!(
            config(&[("RUST_LOG", "debug,hyper=info")], false).filter,
            "debug,hyper=info"
        );
        assert_eq!(config(&[("RUST_LOG", "  ")], false).filter, DEFAULT_FILTER);
    }

    #[test]
    fn otlp_follows_endpoint_variables_and_sdk_disabled() {
        let ep = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert!(config(&[ep], false).otlp);
        assert!(
            config(
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://c:4318/v1/traces"
                )],
                false
            )
            .otlp
        );
        assert!(!config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")], false).otlp);
        assert!(!config(&[ep, ("OTEL_SDK_DISABLED", "TRUE")], false).otlp);
        assert!(config(&[ep, ("OTEL_SDK_DISABLED", "false")], false).otlp);
    }

    #[test]
    fn transport_targets_are_recognised() {
        assert!(is_transport_target("hyper"));
        assert!(is_transport_target("hyper_util::client::legacy"));
        assert!(is_transport_target("reqwest::connect"));
        assert!(is_transport_target("opentelemetry_sdk"));
        assert!(!is_transport_target("hyperion"));
        assert!(!is_transport_target("reconcile_lib::runtime"));
        assert!(!is_transport_target("kube_runtime::controller"));
    }

    #[test]
    fn bad_filter_is_an_error_not_a_panic() {
        let cfg = TelemetryConfig {
            filter: "info,=[".to_owned(),
            format: LogFormat::Json,
            otlp: false,
        };
        assert!(matches!(
            init_with("test", &cfg),
            Err(TelemetryError::Filter { .. })
        ));
    }

    #[test]
    fn otlp_outside_a_runtime_is_an_error() {
        let cfg = TelemetryConfig {
            filter: DEFAULT_FILTER.to_owned(),
            format: LogFormat::Json,
            otlp: true,
        };
        assert!(matches!(
            init_with("test", &cfg),
            Err(TelemetryError::NoRuntime)
        ));
    }

    #[test]
    fn second_init_returns_an_error() {
        let cfg = TelemetryConfig {
            filter: DEFAULT_FILTER.to_owned(),
            format: LogFormat::Human,
            otlp: false,
        };
        // Another test of this binary may have installed a subscriber first; either way the
        // second call must fail cleanly.
        let _first = init_with("test", &cfg);
        assert!(matches!(
            init_with("test", &cfg),
            Err(TelemetryError::AlreadyInitialized(_))
        ));
    }

    /// The exporter pipeline works without a collector: spans are batched, the export runs on
    /// the runtime (connection refused on an unused port) and shutdown returns promptly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn otlp_pipeline_builds_exports_and_shuts_down_without_collector() {
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};
        let provider = tracer_provider("qdrant-test").unwrap();
        let tracer = provider.tracer("test");
        tracer.in_span("one", |_cx| {});
        let guard = TelemetryGuard {
            provider: Some(provider),
        };
        assert!(guard.exports_spans());
        let started = std::time::Instant::now();
        drop(guard);
        assert!(started.elapsed() < SHUTDOWN_TIMEOUT + Duration::from_secs(2));
    }
}
