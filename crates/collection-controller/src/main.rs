//! `collection-controller`: runs the QdrantCollection controller.

use std::{process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use collection_controller::{CONTROLLER_NAME, controller, reconcile::Context};
use reconcile_lib::{
    cli::{RunArgs, run_controller},
    runtime,
};

#[derive(Parser)]
#[command(
    version,
    about = "Reconciles QdrantCollection resources into collections, payload indexes and aliases in Qdrant."
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
}

fn main() -> ExitCode {
    runtime::install_crypto_provider();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Run(args)) => args,
        None => cli.run,
    };
    let scopes = args.watch_scopes();
    let resync = args.resync();
    run_controller(CONTROLLER_NAME, &args, move |client, metrics, shutdown| {
        let mut ctx = Context::new(client.clone(), metrics);
        ctx.resync = resync;
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
