//! `cluster-controller`: runs the QdrantCluster controller (`run`, the default), or prints
//! the objects it would apply for a file (`render -f FILE`).

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use cluster_controller::{CONTROLLER_NAME, context::Context, controller, render};
use reconcile_lib::{
    cli::{RunArgs, run_controller},
    runtime,
};

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

fn main() -> ExitCode {
    runtime::install_crypto_provider();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Render { file }) => return render_file(&file),
        Some(Command::Run(args)) => args,
        None => cli.run,
    };
    let scopes = args.watch_scopes();
    let resync = args.resync();
    // The downward API's namespace of this pod (deploy/base sets POD_NAMESPACE).
    let operator_namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty());
    run_controller(CONTROLLER_NAME, &args, move |client, metrics, shutdown| {
        let mut ctx = Context::new(client.clone(), metrics);
        ctx.resync = resync;
        ctx.operator_namespace = operator_namespace.clone();
        // One controller per watched namespace (or one for all), sharing the context.
        reconcile_lib::cli::run_scoped(
            scopes.clone(),
            client,
            Arc::new(ctx),
            shutdown,
            controller::run,
        )
    })
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
