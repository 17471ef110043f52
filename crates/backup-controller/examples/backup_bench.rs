//! `just bench`: the backup pipeline streaming a shard snapshot taken by a real Qdrant (the
//! server of `../shared/qdrant/`, or `QDRANT_BIN`) into a real local S3 server (moto, started
//! by `testdata/s3_server.py` unless `S3_ENDPOINT`, `S3_ACCESS_KEY_ID` and
//! `S3_SECRET_ACCESS_KEY` are set), beside a plain `curl | aws s3 cp -` copy of the same
//! snapshot file, and the controller's peak RSS (goal: under 64 MiB whatever the snapshot
//! size).
//!
//! 1. **Write.** A single-node Qdrant in cluster mode (so the backup takes shard snapshots,
//!    as it does on a cluster) with an API key, on 127.0.0.1 with free ports and its own
//!    temporary storage directory. One collection, one shard, [`DIM`]-dimension float32
//!    vectors stored on disk, indexing off (`optimizers_config.indexing_threshold: 0`: no
//!    HNSW is built). A child process (this binary with `write-points`) upserts
//!    `BENCH_SNAPSHOT_MIB` MiB of vectors (default 1024) with random values through
//!    `PUT /collections/{c}/points?wait=true`, [`WRITE_CONCURRENCY`] batches of about
//!    [`BATCH_VECTOR_BYTES`] in flight; the exact point count is checked afterwards.
//! 2. **`backup::run`**, end to end, as the controller runs a QdrantBackup: snapshot the shard
//!    on its peer, stream it into an S3 multipart upload (SHA-256 on the way), verify size
//!    and checksum against Qdrant's, delete the snapshot, write `manifest.json`.
//! 3. **One shard snapshot** is taken (timed) and streamed twice: by
//!    [`backup_controller::run::backup::stream_snapshot`] (the streaming step `backup::run`
//!    uses, from the Qdrant download into the S3 multipart upload) and by
//!    `curl <download URL> | aws s3 cp - s3://...`. Same file, same server, same S3.
//!
//! Qdrant, moto, curl and aws-cli are child processes, and so is the writer, so the peak RSS
//! printed (`VmHWM`) is the controller side's alone. Uploads use the default
//! `UploadSettings`. Every uploaded object is deleted after its measurement; the snapshot,
//! the Qdrant storage directory and the bucket are removed at the end. Each phase has a
//! deadline ([`phase_timeout`]), so the run stops by itself. Without the Qdrant binary it
//! prints the SKIP line and exits 0 having measured nothing. It prints figures; it asserts
//! nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/s3.rs"]
mod s3;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use api_types::backup::BackupArtifact;
use backup_controller::{
    manifest::BackupIdentity,
    run::backup::{BackupJob, Source, run, stream_snapshot},
    s3::Bucket,
    upload::UploadSettings,
};
use futures::{StreamExt, TryStreamExt};
use reconcile_lib::qdrant::{QdrantClient, SnapshotDescription};
use serde_json::json;
use testkit::{
    bench::peak_rss_kib,
    real_qdrant::{self, SingleNode, SingleNodeOptions},
};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const BENCH: &str = "backup_bench";
const KEY: &str = "bench-key";
const COLLECTION: &str = "bench";
const MIB: u64 = 1024 * 1024;
const DEFAULT_SNAPSHOT_MIB: u64 = 1024;
const RSS_GOAL_MIB: f64 = 64.0;
/// Vector dimension: large vectors keep the per-point overhead (ids, WAL records) small.
const DIM: u64 = 4096;
/// Vector bytes per upsert request; its JSON (about 5 bytes per value) stays well under
/// Qdrant's default 32 MB request limit.
const BATCH_VECTOR_BYTES: u64 = 8 * MIB;
/// Upsert requests in flight: one being parsed while another is applied.
const WRITE_CONCURRENCY: usize = 2;
/// Free space asked for in the temporary directory, in snapshot sizes: the storage, the
/// snapshot, Qdrant's temporary copy while it builds one, and the objects and parts moto keeps.
const DISK_FACTOR: u64 = 5;

/// Deadline of one phase moving `mib` MiB (write, snapshot, or one copy): two minutes plus
/// one second per MiB, i.e. slower than about 1 MiB/s counts as stuck.
fn phase_timeout(mib: u64) -> Duration {
    Duration::from_secs(120 + mib)
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

fn as_mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// A fast deterministic generator (splitmix64), so batches need no shared state.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The JSON body of one upsert: points `first..first + count`, each a `dim`-vector of random
/// values in [0, 1) with two decimals (short JSON, still 4 bytes each as float32 in Qdrant).
fn batch_body(first: u64, count: u64, dim: u64) -> String {
    let mut body = String::with_capacity((count * (dim * 5 + 32)) as usize + 16);
    body.push_str(r#"{"points":["#);
    for id in first..first + count {
        if id > first {
            body.push(',');
        }
        let _ = write!(body, r#"{{"id":{id},"vector":["#);
        let mut state = id;
        for i in 0..dim {
            if i > 0 {
                body.push(',');
            }
            let hundredths = (splitmix(&mut state) % 100) as u8;
            body.push_str("0.");
            body.push(char::from(b'0' + hundredths / 10));
            body.push(char::from(b'0' + hundredths % 10));
        }
        body.push_str("]}");
    }
    body.push_str("]}");
    body
}

/// Child: `write-points <url> <api key> <collection> <dim> <points> <batch>` upserts points
/// `0..points` in batches, [`WRITE_CONCURRENCY`] requests in flight, and prints `ok <JSON
/// bytes sent>`; on the first failed request it prints the error on stderr and exits 1.
async fn write_points(args: &[String]) {
    let [url, key, collection, dim, points, batch] = args else {
        eprintln!("usage: write-points <url> <api key> <collection> <dim> <points> <batch>");
        std::process::exit(2);
    };
    let (dim, points, batch): (u64, u64, u64) = (
        dim.parse().unwrap(),
        points.parse().unwrap(),
        batch.parse().unwrap(),
    );
    let endpoint = format!("{url}collections/{collection}/points?wait=true");
    let http = reqwest::Client::builder()
        .timeout(phase_timeout(BATCH_VECTOR_BYTES / MIB))
        .build()
        .unwrap();
    let sent = futures::stream::iter((0..points).step_by(batch as usize))
        .map(|first| {
            let (http, endpoint) = (http.clone(), endpoint.clone());
            async move {
                let count = batch.min(points - first);
                let body = tokio::task::spawn_blocking(move || batch_body(first, count, dim))
                    .await
                    .unwrap();
                let len = body.len() as u64;
                let reply = http
                    .put(&endpoint)
                    .header("api-key", key.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("points {first}..{}: {e}", first + count))?;
                let status = reply.status();
                if !status.is_success() {
                    let text = reply.text().await.unwrap_or_default();
                    return Err(format!(
                        "points {first}..{}: HTTP {status}: {text}",
                        first + count
                    ));
                }
                Ok(len)
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_fold(0u64, |sent, len| async move { Ok(sent + len) })
        .await;
    match sent {
        Ok(bytes) => println!("ok {bytes}"),
        Err(e) => {
            eprintln!("write-points: {e}");
            std::process::exit(1);
        }
    }
}

/// Free space in KiB of the file system holding `dir` (`df -Pk`), if `df` answers.
async fn free_kib(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().await.ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// Size and part count of an object (the part count from a multipart ETag's `-N` suffix).
async fn head(raw: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (u64, usize) {
    let out = raw
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HeadObject {key}: {e:?}"));
    let parts = out
        .e_tag()
        .and_then(|t| t.trim_matches('"').rsplit_once('-'))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1);
    (
        u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
        parts,
    )
}

/// Whether `program --version` runs.
async fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// One measured copy into S3.
struct Measured {
    bytes: u64,
    secs: f64,
    parts: usize,
    /// The controller's peak RSS right after it (KiB); `None` where the controller did not
    /// do the copy.
    peak_rss_kib: Option<u64>,
}

impl Measured {
    fn row(&self, label: &str) -> String {
        format!(
            "  {label:<52} {:>9.1} {:>8.2} {:>9.1} {:>6} {:>12}",
            as_mib(self.bytes),
            self.secs,
            mib_per_s(self.bytes, self.secs),
            self.parts,
            self.peak_rss_kib
                .map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
        )
    }
}

/// `backup::run` of the collection into `<prefix>/run/`, end to end; deletes what it wrote.
async fn measure_run(source: &Source, bucket: &Bucket, raw: &aws_sdk_s3::Client) -> Measured {
    let job = BackupJob {
        identity: BackupIdentity {
            namespace: "bench".into(),
            name: "bench".into(),
            uid: "00000000-0000-0000-0000-000000000000".into(),
            attempt: 1,
        },
        collections: vec![COLLECTION.into()],
        source: "real Qdrant (bench)".into(),
        directory: bucket.location().key("run"),
        upload: UploadSettings::default(),
    };
    let progress = |_: &BackupArtifact| {};
    let start = Instant::now();
    let outcome = run(&job, source, bucket, &progress, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("backup run failed: {} ({})", e, e.reason));
    let secs = start.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    let [artifact] = &outcome.artifacts[..] else {
        panic!("one shard, one object: got {:?}", outcome.artifacts);
    };
    let (size, parts) = head(raw, &bucket.location().bucket, &artifact.key).await;
    assert_eq!(size, artifact.size_bytes, "object size in S3");
    bucket
        .delete_prefix(&format!("{}/", job.directory))
        .await
        .unwrap();
    Measured {
        bytes: artifact.size_bytes,
        secs,
        parts,
        peak_rss_kib: Some(peak),
    }
}

/// [`stream_snapshot`] of the existing snapshot `desc` into `<prefix>/stream.snapshot`,
/// checked against Qdrant's size and SHA-256; deletes the object.
async fn measure_stream(
    client: &QdrantClient,
    bucket: &Bucket,
    desc: &SnapshotDescription,
) -> Result<Measured, String> {
    let key = bucket.location().key("stream.snapshot");
    let start = Instant::now();
    let uploaded = stream_snapshot(
        bucket,
        client,
        COLLECTION,
        Some(0),
        desc,
        &key,
        UploadSettings::default(),
        &CancellationToken::new(),
        "the bench's shard 0",
    )
    .await;
    let secs = start.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    bucket.delete_prefix(&key).await.unwrap();
    let uploaded = uploaded.map_err(|e| format!("{e} ({})", e.reason))?;
    if uploaded.size != desc.size {
        return Err(format!(
            "{} bytes uploaded, Qdrant's snapshot has {}",
            uploaded.size, desc.size
        ));
    }
    if let Some(sum) = &desc.checksum
        && !sum.eq_ignore_ascii_case(&uploaded.sha256)
    {
        return Err(format!(
            "SHA-256 {} uploaded, Qdrant reported {sum}",
            uploaded.sha256
        ));
    }
    Ok(Measured {
        bytes: uploaded.size,
        secs,
        parts: uploaded.parts,
        peak_rss_kib: Some(peak),
    })
}

/// The baseline: `curl | aws s3 cp -` of the existing snapshot `desc` (shard 0) into
/// `<prefix>/baseline.snapshot`, under coreutils `timeout` (which kills the whole pipeline);
/// checks the size and deletes the object (and any upload a failed copy left behind).
async fn measure_baseline(
    client: &QdrantClient,
    server: &s3::S3Server,
    bucket: &Bucket,
    raw: &aws_sdk_s3::Client,
    desc: &SnapshotDescription,
) -> Result<Measured, String> {
    let url = client
        .base_url()
        .join(&format!(
            "collections/{COLLECTION}/shards/0/snapshots/{}",
            desc.name
        ))
        .unwrap();
    let key = bucket.location().key("baseline.snapshot");
    let target = format!("s3://{}/{key}", bucket.location().bucket);
    let limit = phase_timeout(desc.size / MIB).as_secs().to_string();
    let mut pipeline = Command::new("timeout");
    pipeline
        .args([
            "-k",
            "10",
            &limit,
            "bash",
            "-c",
            r#"set -euo pipefail; curl -sSf -H "api-key: $BENCH_API_KEY" "$BENCH_URL" | aws s3 cp --only-show-errors - "$BENCH_TARGET" --endpoint-url "$BENCH_ENDPOINT""#,
        ])
        .env("BENCH_API_KEY", KEY)
        .env("BENCH_URL", url.as_str())
        .env("BENCH_TARGET", &target)
        .env("BENCH_ENDPOINT", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_access_key)
        .env("AWS_DEFAULT_REGION", &server.region)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .kill_on_drop(true);
    let start = Instant::now();
    let status = pipeline.status().await;
    let secs = start.elapsed().as_secs_f64();
    let copied = match status {
        Ok(s) if s.success() => {
            let (size, parts) = head(raw, &bucket.location().bucket, &key).await;
            if size == desc.size {
                Ok(Measured {
                    bytes: size,
                    secs,
                    parts,
                    peak_rss_kib: None,
                })
            } else {
                Err(format!(
                    "the copy holds {size} bytes, the snapshot {}",
                    desc.size
                ))
            }
        }
        Ok(s) if s.code() == Some(124) => Err(format!("timed out after {limit} s")),
        Ok(s) => Err(format!("curl | aws s3 cp failed ({s})")),
        Err(e) => Err(format!("cannot run timeout/bash: {e}")),
    };
    bucket.delete_prefix(&key).await.unwrap();
    copied
}

/// Writes `points` points through the `write-points` child; returns (JSON bytes, seconds).
async fn write_phase(node: &SingleNode, points: u64, batch: u64, vector_mib: u64) -> (u64, f64) {
    let start = Instant::now();
    let mut writer = Command::new(std::env::current_exe().unwrap());
    writer
        .args([
            "write-points",
            node.url.as_str(),
            KEY,
            COLLECTION,
            &DIM.to_string(),
            &points.to_string(),
            &batch.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let limit = phase_timeout(vector_mib);
    let out = tokio::time::timeout(limit, writer.output())
        .await
        .unwrap_or_else(|_| panic!("writing the points took longer than {limit:?}"))
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json_bytes = match stdout.trim().strip_prefix("ok ") {
        Some(n) if out.status.success() => n.parse().unwrap(),
        _ => panic!(
            "writing the points failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            real_qdrant::log_tail(&node.dir().join("qdrant.log"), 20)
        ),
    };
    (json_bytes, secs)
}

#[tokio::main]
async fn main() {
    reconcile_lib::runtime::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("write-points") {
        write_points(&args[2..]).await;
        return;
    }
    let Some(binary) = real_qdrant::binary() else {
        println!("{}", real_qdrant::skip_line(BENCH));
        println!(
            "backup-controller: nothing measured (the backup bench streams a real Qdrant snapshot)"
        );
        return;
    };
    let vector_mib: u64 = std::env::var("BENCH_SNAPSHOT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(DEFAULT_SNAPSHOT_MIB);
    let tmp = std::env::temp_dir();
    let need_kib = vector_mib * 1024 * DISK_FACTOR;
    if let Some(free) = free_kib(&tmp).await
        && free < need_kib
    {
        eprintln!(
            "backup bench: {:.1} GiB free in {}, {:.1} GiB needed for a {vector_mib} MiB snapshot; lower BENCH_SNAPSHOT_MIB or point TMPDIR elsewhere",
            free as f64 / 1024.0 / 1024.0,
            tmp.display(),
            need_kib as f64 / 1024.0 / 1024.0
        );
        std::process::exit(1);
    }

    let server = s3::server();
    let bucket = server.new_bucket("bench").await;
    let raw = server.raw().await;
    let node = SingleNode::start(
        &binary,
        SingleNodeOptions {
            api_key: Some(KEY.into()),
            cluster: true,
            ..SingleNodeOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("starting Qdrant: {e}"));
    let limit = phase_timeout(vector_mib);
    let client = QdrantClient::new(&node.connection().with_snapshot_timeout(limit)).unwrap();
    let version = client.version().await.unwrap().version;
    let peer_id = client
        .cluster_info()
        .await
        .unwrap()
        .peer_id
        .expect("cluster mode: a peer id");
    client
        .create_collection(
            COLLECTION,
            &json!({
                "vectors": {"size": DIM, "distance": "Dot", "on_disk": true},
                "shard_number": 1,
                "optimizers_config": {"indexing_threshold": 0},
            }),
        )
        .await
        .unwrap();

    let point_bytes = DIM * 4;
    let points = (vector_mib * MIB).div_ceil(point_bytes);
    let batch = (BATCH_VECTOR_BYTES / point_bytes).max(1);
    let settings = UploadSettings::default();
    println!(
        "backup-controller: shard snapshots of a real Qdrant {version} ({}, single node in cluster mode, own process) into moto S3 at {}; multipart, {} MiB parts, concurrency {}",
        std::fs::canonicalize(&binary)
            .unwrap_or(binary.clone())
            .display(),
        server.endpoint,
        settings.part_size as u64 / MIB,
        settings.concurrency
    );
    let (json_bytes, write_secs) = write_phase(&node, points, batch, vector_mib).await;
    let counted = client.count_points(COLLECTION, true).await.unwrap();
    assert_eq!(counted, points, "exact point count after the write");
    let vector_bytes = points * point_bytes;
    println!(
        "  write: {points} points × {DIM} float32 dims ({:.1} MiB of vectors, {:.1} MiB of JSON) in {write_secs:.1} s: {:.1} MiB/s of vectors, {} points per request, {WRITE_CONCURRENCY} in flight, indexing off; exact count {counted}",
        as_mib(vector_bytes),
        as_mib(json_bytes),
        mib_per_s(vector_bytes, write_secs),
        batch
    );

    let source = Source {
        endpoint: client.clone(),
        peers: BTreeMap::from([(peer_id, client.clone())]),
    };
    let baseline_tools: Vec<&str> = {
        let mut missing = vec![];
        for tool in ["curl", "aws"] {
            if !available(tool).await {
                missing.push(tool);
            }
        }
        missing
    };
    let rss_start = peak_rss_kib();

    println!(
        "  {:<52} {:>9} {:>8} {:>9} {:>6} {:>12}",
        "", "MiB", "s", "MiB/s", "parts", "peak RSS MiB"
    );
    let mut peaks = vec![];
    let ours_run = measure_run(&source, &bucket, &raw).await;
    println!(
        "{}",
        ours_run.row("backup::run (snapshot, stream, verify, delete)")
    );
    peaks.extend(ours_run.peak_rss_kib);

    let created = Instant::now();
    let desc = client.create_shard_snapshot(COLLECTION, 0).await.unwrap();
    let create_secs = created.elapsed().as_secs_f64();
    let mut verified = false;
    match measure_stream(&client, &bucket, &desc).await {
        Ok(copy) => {
            verified = true;
            println!(
                "{}",
                copy.row("stream_snapshot (download → multipart, SHA-256)")
            );
            peaks.extend(copy.peak_rss_kib);
        }
        Err(e) => println!("  stream_snapshot failed: {e}"),
    }
    if baseline_tools.is_empty() {
        match measure_baseline(&client, &server, &bucket, &raw, &desc).await {
            Ok(copy) => println!("{}", copy.row("curl | aws s3 cp - (baseline)")),
            Err(e) => println!("  curl | aws s3 cp - (baseline) failed: {e}"),
        }
    } else {
        println!(
            "  baseline skipped: {} not found (`python3 -m pip install awscli`; `just bench` installs it)",
            baseline_tools
                .iter()
                .map(|t| if *t == "aws" { "aws CLI" } else { t })
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }
    client
        .delete_shard_snapshot(COLLECTION, 0, &desc.name)
        .await
        .unwrap();
    println!(
        "  shard snapshot: {:.1} MiB ({:.3}× the vector bytes), created by Qdrant in {create_secs:.2} s (inside backup::run's time, outside the other two); SHA-256 {}",
        as_mib(desc.size),
        desc.size as f64 / vector_bytes as f64,
        match (&desc.checksum, verified) {
            (Some(_), true) => "reported by Qdrant and matched by stream_snapshot's",
            (Some(_), false) => "reported by Qdrant, not verified (stream_snapshot failed)",
            (None, _) => "not reported by Qdrant",
        }
    );
    let peak = peaks.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "  controller peak RSS: {peak:.1} MiB (before the first backup {:.1} MiB) for a {:.1} MiB snapshot: {} the {RSS_GOAL_MIB:.0} MiB goal",
        rss_start as f64 / 1024.0,
        as_mib(desc.size),
        if peak < RSS_GOAL_MIB { "under" } else { "OVER" }
    );
    raw.delete_bucket()
        .bucket(&bucket.location().bucket)
        .send()
        .await
        .unwrap();
    drop(node);
}
