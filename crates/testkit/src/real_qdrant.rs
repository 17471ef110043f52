//! Real Qdrant servers for tests: the Qdrant server binary of `../shared/qdrant/` (beside the
//! workspace, or wherever `QDRANT_BIN` points), started as a child process.
//!
//! - [`binary`] finds the server; [`skip_line`] is the one line a test prints when it is
//!   absent (the real-server part of a test is then skipped, never silently dropped).
//! - [`QdrantProcess`] is one running server process: its output goes to a log file, and it is
//!   killed when dropped (also when the test panics).
//! - [`SingleNode`] is a single-node server on 127.0.0.1 with free ports and its own storage
//!   directory, as the Qdrant contract suite runs against.
//! - [`wait_ready`] polls `GET /readyz` (Qdrant's readiness: every shard of every collection
//!   loaded and, in cluster mode, consensus established).
//!
//! The peers of a cluster, one per pod of a StatefulSet, are in [`crate::real_cluster`].

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};
use url::Url;

use reconcile_lib::qdrant::{QdrantClient, QdrantConnection};

/// Environment variable naming the Qdrant server binary (overrides [`default_binary_path`]).
pub const BINARY_ENV: &str = "QDRANT_BIN";

/// How long a server may take to answer `/readyz` after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `../shared/qdrant/qdrant` beside the workspace root (where the project's machines keep the
/// Qdrant 1.18.3 test server).
pub fn default_binary_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/qdrant/qdrant")
}

/// The Qdrant server binary to run: `$QDRANT_BIN` when set (it must exist), else
/// [`default_binary_path`] when that file exists, else `None`.
///
/// # Panics
///
/// When `QDRANT_BIN` is set to a path that does not exist: a test told to use a server that
/// is not there must fail, not skip.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{BINARY_ENV}={} does not name a file",
            path.display()
        );
        return Some(path);
    }
    let path = default_binary_path();
    path.is_file().then_some(path)
}

/// The line a test prints when it skips its real-Qdrant part: names the test and where the
/// binary was looked for.
pub fn skip_line(test: &str) -> String {
    format!(
        "SKIP [{test}]: no Qdrant server binary (set {BINARY_ENV} or put it at {}): the real-Qdrant part is not run",
        default_binary_path().display()
    )
}

/// A free TCP port on `ip` (bound once and released, so another process could take it first;
/// good enough on a test machine).
///
/// Errors: the bind error.
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(TcpListener::bind(SocketAddr::new(ip, 0))?
        .local_addr()?
        .port())
}

/// One running Qdrant server process, killed when dropped.
pub struct QdrantProcess {
    child: Child,
    log: PathBuf,
}

impl QdrantProcess {
    /// Starts `command` with stdin closed and stdout and stderr appended to `log`, killed on
    /// drop.
    ///
    /// Errors: creating the log file or spawning the process.
    pub fn spawn(mut command: Command, log: &Path) -> std::io::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        Ok(Self {
            child: command.spawn()?,
            log: log.to_path_buf(),
        })
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit.
    ///
    /// Errors: the wait error.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Kills the process (SIGKILL: a crash, as an OOM kill or a node loss would be) and waits
    /// for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

/// The last `lines` lines of the file at `path` (empty when it cannot be read), without
/// Qdrant's access-log lines (`actix_web::middleware::logger`), which would crowd out what
/// explains a failure.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("actix_web::middleware::logger"))
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `GET /readyz` of `conn` every 100 ms until it answers 200 or `timeout` passes.
///
/// Errors: the last error seen, with how long it waited.
pub async fn wait_ready(conn: &QdrantConnection, timeout: Duration) -> Result<(), String> {
    let client = QdrantClient::new(conn).map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        let last = match client.readyz().await {
            Ok(()) => return Ok(()),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > timeout {
            return Err(format!("{} not ready after {timeout:?}: {last}", conn.url));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a [`SingleNode`] is started with.
#[derive(Clone, Debug, Default)]
pub struct SingleNodeOptions {
    /// `service.api_key`.
    pub api_key: Option<String>,
    /// `service.read_only_api_key`.
    pub read_only_api_key: Option<String>,
    /// Run in cluster mode (one peer, its own free p2p port), as the shard-placement API needs.
    pub cluster: bool,
}

/// A single-node Qdrant on 127.0.0.1: free REST, gRPC (and p2p) ports, storage and snapshots
/// in its own temporary directory, Qdrant's stock configuration otherwise (telemetry off).
/// Stopped and its directory removed when dropped.
pub struct SingleNode {
    /// The REST URL, `http://127.0.0.1:<port>/`.
    pub url: Url,
    /// The gRPC port.
    pub grpc_port: u16,
    /// What it was started with.
    pub options: SingleNodeOptions,
    process: QdrantProcess,
    dir: tempfile::TempDir,
}

impl SingleNode {
    /// Starts the server at `binary` and waits until `/readyz` answers.
    ///
    /// Errors: a message with the log's tail when it could not start or never became ready.
    pub async fn start(binary: &Path, options: SingleNodeOptions) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = |_| free_port(ip).map_err(|e| e.to_string());
        let (http, grpc, p2p) = (port(0)?, port(1)?, port(2)?);
        let mut cmd = Command::new(binary);
        cmd.current_dir(dir.path())
            .env("QDRANT__SERVICE__HOST", ip.to_string())
            .env("QDRANT__SERVICE__HTTP_PORT", http.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", grpc.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.path().join("storage"))
            .env(
                "QDRANT__STORAGE__SNAPSHOTS_PATH",
                dir.path().join("snapshots"),
            )
            .env("QDRANT__TELEMETRY_DISABLED", "true");
        if let Some(key) = &options.api_key {
            cmd.env("QDRANT__SERVICE__API_KEY", key);
        }
        if let Some(key) = &options.read_only_api_key {
            cmd.env("QDRANT__SERVICE__READ_ONLY_API_KEY", key);
        }
        if options.cluster {
            cmd.env("QDRANT__CLUSTER__ENABLED", "true")
                .env("QDRANT__CLUSTER__P2P__PORT", p2p.to_string())
                .arg("--uri")
                .arg(format!("http://{ip}:{p2p}"));
        }
        let process = QdrantProcess::spawn(cmd, &dir.path().join("qdrant.log"))
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let url = Url::parse(&format!("http://{ip}:{http}/")).map_err(|e| e.to_string())?;
        let conn =
            QdrantConnection::new(url.clone()).with_optional_api_key(options.api_key.clone());
        if let Err(e) = wait_ready(&conn, START_TIMEOUT).await {
            return Err(format!("{e}\n{}", process.log_tail(30)));
        }
        Ok(Self {
            url,
            grpc_port: grpc,
            options,
            process,
            dir,
        })
    }

    /// A connection to it with its read-write key.
    pub fn connection(&self) -> QdrantConnection {
        QdrantConnection::new(self.url.clone()).with_optional_api_key(self.options.api_key.clone())
    }

    /// Its directory (storage, snapshots, `qdrant.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server process.
    pub fn process(&mut self) -> &mut QdrantProcess {
        &mut self.process
    }
}

/// Writes points `ids` into `collection` (`PUT /collections/{c}/points?wait=true`, batches of
/// 256) with a `dim`-dimensional vector derived from each id and payload `{"n": id}`: the data
/// a scenario counts before and after a day-2 operation.
///
/// Errors: the first refused batch, with Qdrant's answer.
pub async fn write_points(
    conn: &QdrantConnection,
    collection: &str,
    ids: std::ops::Range<u64>,
    dim: usize,
) -> Result<(), String> {
    reconcile_lib::qdrant::ensure_default_crypto_provider();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
    if let Some(pem) = &conn.ca_bundle_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let http = builder.build().map_err(|e| e.to_string())?;
    let url = conn
        .url
        .join(&format!("collections/{collection}/points?wait=true"))
        .map_err(|e| e.to_string())?;
    let ids: Vec<u64> = ids.collect();
    for batch in ids.chunks(256) {
        let points: Vec<serde_json::Value> = batch
            .iter()
            .map(|id| {
                let vector: Vec<f32> = (0..dim)
                    .map(|i| ((id.wrapping_mul(31).wrapping_add(i as u64 * 7)) % 97) as f32 / 97.0)
                    .collect();
                serde_json::json!({"id": id, "vector": vector, "payload": {"n": id}})
            })
            .collect();
        let mut req = http
            .put(url.clone())
            .json(&serde_json::json!({"points": points}));
        if let Some(key) = &conn.api_key {
            req = req.header("api-key", key.expose());
        }
        let reply = req.send().await.map_err(|e| format!("PUT {url}: {e}"))?;
        if !reply.status().is_success() {
            let status = reply.status();
            let body = reply.text().await.unwrap_or_default();
            return Err(format!("PUT {url}: {status}: {body}"));
        }
    }
    Ok(())
}
