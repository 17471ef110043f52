//! `backup-controller`: runs the QdrantBackup, QdrantBackupSchedule and QdrantRestore
//! controllers; `create-backup` is what the CronJobs of schedules run.

use std::{process::ExitCode, sync::Arc};

use backup_controller::{context::CONTROLLER_NAME, context::Context, controller, create_backup};
use clap::{Parser, Subcommand};
use reconcile_lib::{
    cli::{RunArgs, run_controller},
    runtime,
};

#[derive(Parser)]
#[command(
    version,
    about = "Backs Qdrant collections up to S3 (QdrantBackup, QdrantBackupSchedule), restores them (QdrantRestore) and copies them between Qdrants (QdrantMigration)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    image: ImageArg,
}

#[derive(clap::Args, Clone)]
struct ImageArg {
    /// Image the CronJobs of QdrantBackupSchedules run (this controller's own image).
    #[arg(
        long,
        env = "OPERATOR_IMAGE",
        default_value = "ghcr.io/qdrant-operator/qdrant-operator:0.1.0"
    )]
    image: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers against the cluster of the current kube context or in-cluster config.
    Run {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        image: ImageArg,
    },
    /// Create a QdrantBackup from a QdrantBackupSchedule's template (run by its CronJob).
    CreateBackup {
        /// Name of the QdrantBackupSchedule.
        #[arg(long)]
        schedule: String,
        /// Namespace of the schedule (the CronJob sets it from the downward API).
        #[arg(long, env = "POD_NAMESPACE")]
        namespace: String,
        /// Name of the Job this pod belongs to; the backup is named after it, so a retried
        /// pod does not create a second backup.
        #[arg(long, env = "JOB_NAME")]
        job_name: Option<String>,
    },
}

fn create(schedule: String, namespace: String, job_name: Option<String>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
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
        let client = match runtime::client().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: cannot build a Kubernetes client: {e}");
                return ExitCode::FAILURE;
            }
        };
        match create_backup::create_backup(client, &namespace, &schedule, job_name.as_deref()).await
        {
            Ok(name) => {
                println!("QdrantBackup {namespace}/{name} created from schedule {schedule}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn main() -> ExitCode {
    runtime::install_crypto_provider();
    let cli = Cli::parse();
    let (args, image) = match cli.command {
        Some(Command::Run { run, image }) => (run, image.image),
        Some(Command::CreateBackup {
            schedule,
            namespace,
            job_name,
        }) => return create(schedule, namespace, job_name),
        None => (cli.run, cli.image.image),
    };
    let scopes = args.watch_scopes();
    let resync = args.resync();
    run_controller(CONTROLLER_NAME, &args, move |client, metrics, shutdown| {
        let mut ctx = Context::new(client.clone(), metrics, image.clone());
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
