//! `kubectl-qdrant`: the `kubectl qdrant` plugin (put the binary on `PATH`). Every subcommand
//! is in the library ([`kubectl_qdrant`]); this file parses flags, builds the clients and
//! prints.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use kubectl_qdrant::{PluginError, pause, plan, render, runs, status};
use reconcile_lib::qdrant::{ApiKey, QdrantClient, QdrantConnection};

#[derive(Parser)]
#[command(
    name = "kubectl-qdrant",
    about = "The Qdrant operator from kubectl",
    version
)]
struct Cli {
    /// Namespace of the objects (default: the kube context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct QdrantArgs {
    /// A Qdrant REST URL of the cluster (e.g. http://localhost:6333 after
    /// `kubectl port-forward svc/<cluster> 6333`). The key is QDRANT_API_KEY, else the one the
    /// cluster's status names (status.auth.apiKeySecretRef).
    #[arg(long, env = "QDRANT_URL")]
    qdrant_url: Option<url::Url>,
}

#[derive(Subcommand)]
enum Command {
    /// Peers, Raft roles, conditions and what the operator waits for; with --qdrant-url also
    /// the shard replicas per peer and the running transfers.
    Status {
        /// The QdrantCluster.
        cluster: String,
        #[command(flatten)]
        qdrant: QdrantArgs,
    },
    /// Create a QdrantBackup of CLUSTER now and wait for it.
    Backup {
        /// The QdrantCluster.
        cluster: String,
        /// A QdrantBackupSchedule (or QdrantBackup) whose storage to use.
        #[arg(long)]
        storage_from: String,
        /// Back up only these collections (repeat); default every collection.
        #[arg(long = "collection")]
        collections: Vec<String>,
        /// Name of the QdrantBackup (default: <cluster>-<unix time>).
        #[arg(long)]
        name: Option<String>,
        /// Create it and return.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_seconds: u64,
    },
    /// Create a QdrantRestore of BACKUP into --cluster and wait for it.
    Restore {
        /// The QdrantBackup.
        backup: String,
        /// The QdrantCluster to restore into.
        #[arg(long)]
        cluster: String,
        /// NAME or NAME=NEW_NAME (repeat); default every collection of the backup.
        #[arg(long = "collection")]
        collections: Vec<String>,
        /// Name of the QdrantRestore (default: <backup>-restore-<unix time>).
        #[arg(long)]
        name: Option<String>,
        /// Create it and return.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_seconds: u64,
    },
    /// Set the pause annotation: the operator leaves the object alone.
    Pause {
        /// qc, qcol, qbak, qbs, qrs (or the kind's name).
        kind: String,
        /// The object.
        name: String,
    },
    /// Remove the pause annotation.
    Resume {
        /// qc, qcol, qbak, qbs, qrs (or the kind's name).
        kind: String,
        /// The object.
        name: String,
    },
    /// What a scale-down of CLUSTER to REPLICAS peers would move, or why it would be refused
    /// (the operator's planner on what Qdrant reports now; nothing is changed).
    ScaleDownPlan {
        /// The QdrantCluster.
        cluster: String,
        /// The peer count to preview.
        replicas: u32,
        #[command(flatten)]
        qdrant: QdrantArgs,
    },
    /// What the operator would create (or send to Qdrant) for FILE, offline; `-` reads stdin.
    Render {
        /// A YAML file of any of the operator's kinds, several documents allowed.
        file: PathBuf,
        /// The operator image a QdrantBackupSchedule's CronJob runs.
        #[arg(long, default_value = "ghcr.io/qdrant-operator/qdrant-operator:0.1.0")]
        image: String,
    },
}

fn main() -> ExitCode {
    reconcile_lib::runtime::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<String, PluginError> {
    if let Command::Render { file, image } = &cli.command {
        let input = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(file)
        }
        .map_err(|e| PluginError::Input(format!("{}: {e}", file.display())))?;
        return render::render(&input, image);
    }
    let client = reconcile_lib::runtime::client()
        .await
        .map_err(|e| PluginError::Input(e.to_string()))?;
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let wait = |no_wait: bool, timeout: u64| {
        (!no_wait).then_some(runs::Wait {
            timeout: Duration::from_secs(timeout),
            poll: Duration::from_secs(2),
        })
    };
    match cli.command {
        Command::Status { cluster, qdrant } => {
            let q = qdrant_client(&client, &ns, &cluster, &qdrant).await?;
            status::report(&client, &ns, &cluster, q.as_ref()).await
        }
        Command::Backup {
            cluster,
            storage_from,
            collections,
            name,
            no_wait,
            timeout_seconds,
        } => {
            let name = name.unwrap_or_else(|| format!("{cluster}-{now}"));
            let storage = runs::StorageFrom { from: storage_from };
            runs::backup(
                &client,
                &ns,
                &cluster,
                &name,
                &collections,
                &storage,
                wait(no_wait, timeout_seconds),
            )
            .await
        }
        Command::Restore {
            backup,
            cluster,
            collections,
            name,
            no_wait,
            timeout_seconds,
        } => {
            let name = name.unwrap_or_else(|| format!("{backup}-restore-{now}"));
            runs::restore(
                &client,
                &ns,
                &backup,
                &cluster,
                &name,
                &collections,
                wait(no_wait, timeout_seconds),
            )
            .await
        }
        Command::Pause { kind, name } => pause::set(&client, &ns, &kind, &name, true).await,
        Command::Resume { kind, name } => pause::set(&client, &ns, &kind, &name, false).await,
        Command::ScaleDownPlan {
            cluster,
            replicas,
            qdrant,
        } => {
            let Some(q) = qdrant_client(&client, &ns, &cluster, &qdrant).await? else {
                return Err(PluginError::Input(
                    "scale-down-plan asks Qdrant: give --qdrant-url (or QDRANT_URL)".into(),
                ));
            };
            plan::report(&client, &ns, &cluster, &q, replicas).await
        }
        Command::Render { .. } => Err(PluginError::Input(
            "render is handled before a client is built".into(),
        )),
    }
}

/// A Qdrant client for `--qdrant-url`, with QDRANT_API_KEY or the cluster's operator key.
async fn qdrant_client(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
    args: &QdrantArgs,
) -> Result<Option<QdrantClient>, PluginError> {
    let Some(url) = &args.qdrant_url else {
        return Ok(None);
    };
    let key = match std::env::var("QDRANT_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    {
        Some(k) => Some(k),
        None => status::cluster_api_key(client, ns, cluster).await?,
    };
    let mut conn = QdrantConnection::new(url.clone());
    conn.api_key = key.map(ApiKey::new);
    Ok(Some(QdrantClient::new(&conn)?))
}
