//! What every controller binary's `run` subcommand shares: the common flags and the process
//! life cycle (tokio runtime, telemetry, Kubernetes client, metrics, [`crate::runtime::run`]).

use std::{future::Future, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use crate::{
    metrics::Metrics,
    runtime::{self, Shutdown},
    telemetry,
};

/// Flags of `<controller> run`, each also read from an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Watch only these namespaces, comma-separated (e.g. `team-a,team-b`); wins over
    /// `--namespace`. Each namespace gets its own watches; the RBAC can then be namespaced
    /// (deploy/overlays/namespaced).
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Elect a leader through a Lease (turn off only for local development).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Resync interval in seconds: every object is reconciled at least this often.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
}

impl RunArgs {
    /// What to watch: one entry per namespace of `--namespaces` (blank ones dropped, each
    /// once), else `--namespace`, else `[None]` (all namespaces).
    pub fn watch_scopes(&self) -> Vec<Option<String>> {
        let mut listed: Vec<Option<String>> = vec![];
        for ns in self
            .namespaces
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
        {
            if !listed.iter().any(|l| l.as_deref() == Some(ns)) {
                listed.push(Some(ns.to_string()));
            }
        }
        if listed.is_empty() {
            listed.push(self.namespace.clone().filter(|n| !n.is_empty()));
        }
        listed
    }

    /// The resync interval.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds)
    }
}

/// Runs controller `name` until SIGTERM/SIGINT: builds a multi-threaded tokio runtime,
/// initialises telemetry (see [`telemetry::init`]), builds the Kubernetes client (kubeconfig or
/// in-cluster), and hands `start` to [`runtime::run`] (leader election, health and metrics
/// server). `start` receives the client, the metrics and the shutdown signal each time this
/// replica becomes leader. Returns the process exit code; errors are logged.
pub fn run_controller<F, Fut>(name: &'static str, args: &RunArgs, start: F) -> ExitCode
where
    F: Fn(kube::Client, Arc<Metrics>, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let _telemetry = match telemetry::init(name) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("warning: telemetry: {e}");
                None
            }
        };
        let client = match runtime::client().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build a Kubernetes client");
                return ExitCode::FAILURE;
            }
        };
        let metrics = Arc::new(Metrics::new(name));
        let mut opts = runtime::RuntimeOptions::new(name);
        opts.metrics_addr = args.metrics_addr;
        opts.leader_election = args.leader_election;
        let m = metrics.clone();
        match runtime::run(opts, client, metrics, move |client, shutdown| {
            start(client, m.clone(), shutdown)
        })
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "controller stopped");
                ExitCode::FAILURE
            }
        }
    })
}

/// Runs `run` (a controller's `controller::run`) once per watch scope
/// ([`RunArgs::watch_scopes`]) concurrently, each with a clone of `client`, `ctx` and
/// `shutdown`, and returns when every one has ended (each ends when the shutdown fires). Every
/// controller's `start` closure returns this future.
pub async fn run_scoped<C, F, Fut>(
    scopes: Vec<Option<String>>,
    client: kube::Client,
    ctx: Arc<C>,
    shutdown: Shutdown,
    run: F,
) where
    F: Fn(kube::Client, Option<String>, Arc<C>, Shutdown) -> Fut,
    Fut: Future<Output = ()>,
{
    futures::future::join_all(
        scopes
            .into_iter()
            .map(|namespace| run(client.clone(), namespace, ctx.clone(), shutdown.clone())),
    )
    .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod scope_tests {
    use clap::Parser;

    use super::RunArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn scopes(args: &[&str]) -> Vec<Option<String>> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().run.watch_scopes()
    }

    #[test]
    fn namespaces_win_over_namespace_and_default_to_all() {
        assert_eq!(scopes(&[]), vec![None]);
        assert_eq!(scopes(&["--namespace", "a"]), vec![Some("a".to_string())]);
        assert_eq!(
            scopes(&["--namespace", "x", "--namespaces", "a,b, ,a"]),
            vec![Some("a".to_string()), Some("b".to_string())]
        );
    }
}
