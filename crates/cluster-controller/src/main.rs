//! `cluster-controller`: runs the QdrantCluster controller (`run`, the default), or prints
//! the objects it would apply for a file (`render -f FILE`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};
use cluster_controller::{CONTROLLER_NAME, controller, reconcile::Context, render};
use reconcile_lib::{metrics::Metrics, runtime, telemetry};

#[derive(Parser)]
#[command(
    version,
    about = "Reconciles QdrantCluster resources into running Qdrant clusters."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the current kube context or in-cluster config.
    Run(RunArgs),
    /// Print, as multi-document YAML, the objects the controller would apply for a
    /// QdrantCluster file. No cluster needed.
    Render {
        /// The QdrantCluster YAML file (`-` for standard input).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Elect a leader through a Lease (turn off only for local development).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Resync interval in seconds: every cluster is reconciled at least this often.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
}

fn main() -> ExitCode {
    runtime::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Render { file }) => render_file(&file),
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

fn render_file(file: &PathBuf) -> ExitCode {
    let input = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    let input = match input {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match render::render(&input) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
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
        let _telemetry = match telemetry::init(CONTROLLER_NAME) {
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
        let metrics = Arc::new(Metrics::new(CONTROLLER_NAME));
        let mut opts = runtime::RuntimeOptions::new(CONTROLLER_NAME);
        opts.metrics_addr = args.metrics_addr;
        opts.leader_election = args.leader_election;
        let namespace = args.namespace.clone();
        let resync = Duration::from_secs(args.resync_seconds);
        let m = metrics.clone();
        let result = runtime::run(opts, client, metrics, move |client, shutdown| {
            let mut ctx = Context::new(client.clone(), m.clone());
            ctx.resync = resync;
            controller::run(client, namespace.clone(), Arc::new(ctx), shutdown)
        })
        .await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "controller stopped");
                ExitCode::FAILURE
            }
        }
    })
}
