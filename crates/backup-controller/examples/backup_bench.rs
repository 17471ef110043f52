//! `just bench`: the backup pipeline streaming one large collection snapshot from the fake
//! Qdrant into a real local S3 server (moto, started by `testdata/s3_server.py` unless
//! `S3_ENDPOINT`, `S3_ACCESS_KEY_ID` and `S3_SECRET_ACCESS_KEY` are set): throughput of
//! [`backup_controller::run::backup::run`] beside a plain `curl | aws s3 cp -` copy of the
//! same bytes in the same run, and the controller's peak RSS (goal: under 64 MiB whatever the
//! snapshot size).
//!
//! Sizes: a small snapshot (256 MiB) first, then `BENCH_SNAPSHOT_MIB` (default 2048), so the
//! peak RSS after each shows whether memory grows with the size. Each snapshot is generated on
//! the fly by the fake (never stored) and uploaded with the default `UploadSettings` (16 MiB
//! parts, 2 in flight). The fake Qdrant runs in a child process (this binary with
//! `serve-qdrant`), so the peak RSS printed is the controller side's alone; moto, curl and
//! aws-cli are child processes too. Every uploaded object is deleted after its measurement.
//! It prints figures; it asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/s3.rs"]
mod s3;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::Instant,
};

use api_types::backup::BackupArtifact;
use backup_controller::{
    manifest::BackupIdentity,
    run::backup::{BackupJob, Source, run},
    s3::Bucket,
    upload::UploadSettings,
};
use reconcile_lib::{
    qdrant::{ApiKey, QdrantClient, QdrantConnection},
    testing::{
        bench::{FakeProcess, peak_rss_kib, serve_commands},
        qdrant::{FakeQdrant, FakeQdrantOptions},
    },
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const KEY: &str = "bench-key";
const COLLECTION: &str = "bench";
const MIB: u64 = 1024 * 1024;
const SMALL_MIB: u64 = 256;
const RSS_GOAL_MIB: f64 = 64.0;

/// Child: a single-node fake Qdrant (cluster mode off) with an API key. Prints its URL; the
/// command `padding <bytes>` sets the size of the snapshots it makes from then on.
async fn serve_qdrant() {
    let qdrant = FakeQdrant::start(FakeQdrantOptions {
        api_key: Some(KEY.into()),
        ..FakeQdrantOptions::default()
    })
    .await;
    qdrant.set_cluster_disabled();
    println!("{}", qdrant.url());
    tokio::task::spawn_blocking(move || {
        serve_commands(|line| match line.split_once(' ') {
            Some(("padding", bytes)) => match bytes.parse() {
                Ok(bytes) => {
                    qdrant.set_snapshot_padding(bytes);
                    "ok".to_string()
                }
                Err(e) => format!("error: {e}"),
            },
            _ => format!("error: unknown command {line:?}"),
        })
    })
    .await
    .unwrap();
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
fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One measurement of `backup::run`.
struct Ours {
    bytes: u64,
    secs: f64,
    parts: usize,
    peak_rss_kib: u64,
}

/// The backup run of one collection snapshot of about `mib` MiB, into `<prefix>/run-<mib>/`;
/// deletes what it wrote afterwards.
async fn measure_ours(
    source: &Source,
    bucket: &Bucket,
    raw: &aws_sdk_s3::Client,
    mib: u64,
) -> Ours {
    let job = BackupJob {
        identity: BackupIdentity {
            namespace: "bench".into(),
            name: format!("bench-{mib}"),
            uid: "00000000-0000-0000-0000-000000000000".into(),
            attempt: 1,
        },
        collections: vec![COLLECTION.into()],
        source: "fake Qdrant (bench)".into(),
        directory: bucket.location().key(&format!("run-{mib}")),
        upload: UploadSettings::default(),
    };
    let progress = |_: &BackupArtifact| {};
    let start = Instant::now();
    let outcome = run(&job, source, bucket, &progress, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("backup run of {mib} MiB failed: {} ({})", e, e.reason));
    let secs = start.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    let artifact = &outcome.artifacts[0];
    let (size, parts) = head(raw, &bucket.location().bucket, &artifact.key).await;
    assert_eq!(size, artifact.size_bytes, "object size in S3");
    bucket
        .delete_prefix(&format!("{}/", job.directory))
        .await
        .unwrap();
    Ours {
        bytes: artifact.size_bytes,
        secs,
        parts,
        peak_rss_kib: peak,
    }
}

/// The baseline: a snapshot of the same size is made on the fake (not timed), then
/// `curl | aws s3 cp -` copies it to `<prefix>/baseline-<mib>.snapshot` (timed); the object and
/// the snapshot are deleted afterwards. Returns (bytes, seconds, parts, snapshot creation
/// seconds).
async fn measure_baseline(
    client: &QdrantClient,
    server: &s3::S3Server,
    bucket: &Bucket,
    raw: &aws_sdk_s3::Client,
    mib: u64,
) -> Result<(u64, f64, usize, f64), String> {
    let created = Instant::now();
    let snapshot = client
        .create_collection_snapshot(COLLECTION)
        .await
        .map_err(|e| format!("creating the snapshot: {e}"))?;
    let create_secs = created.elapsed().as_secs_f64();
    let url = client
        .base_url()
        .join(&format!(
            "collections/{COLLECTION}/snapshots/{}",
            snapshot.name
        ))
        .unwrap();
    let key = bucket.location().key(&format!("baseline-{mib}.snapshot"));
    let target = format!("s3://{}/{key}", bucket.location().bucket);
    let mut pipeline = Command::new("bash");
    pipeline
        .args([
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
        .env_remove("AWS_SESSION_TOKEN");
    let start = Instant::now();
    let status = tokio::task::spawn_blocking(move || pipeline.status())
        .await
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let copied = match status {
        Ok(s) if s.success() => {
            let (size, parts) = head(raw, &bucket.location().bucket, &key).await;
            if size == snapshot.size {
                Ok((size, secs, parts, create_secs))
            } else {
                Err(format!(
                    "the copy holds {size} bytes, the snapshot {}",
                    snapshot.size
                ))
            }
        }
        Ok(s) => Err(format!("curl | aws s3 cp failed ({s})")),
        Err(e) => Err(format!("cannot run bash: {e}")),
    };
    // The object, and any multipart upload a failed copy left behind.
    bucket.delete_prefix(&key).await.unwrap();
    client
        .delete_collection_snapshot(COLLECTION, &snapshot.name)
        .await
        .map_err(|e| format!("deleting the snapshot: {e}"))?;
    copied
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

#[tokio::main]
async fn main() {
    reconcile_lib::runtime::install_crypto_provider();
    if std::env::args().nth(1).as_deref() == Some("serve-qdrant") {
        serve_qdrant().await;
        return;
    }
    let big: u64 = std::env::var("BENCH_SNAPSHOT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let sizes: Vec<u64> = if big > SMALL_MIB {
        vec![SMALL_MIB, big]
    } else {
        vec![big]
    };

    let server = s3::server();
    let bucket = server.new_bucket("bench").await;
    let raw = server.raw().await;
    let (mut fake, url) = FakeProcess::spawn(&["serve-qdrant"]).unwrap();
    let client = QdrantClient::new(
        &QdrantConnection::new(url.parse().unwrap()).with_api_key(ApiKey::new(KEY)),
    )
    .unwrap();
    client
        .create_collection(
            COLLECTION,
            &json!({"vectors": {"size": 4, "distance": "Cosine"}}),
        )
        .await
        .unwrap();
    let source = Source {
        endpoint: client.clone(),
        peers: BTreeMap::new(),
    };
    let baseline_tools: Vec<&str> = ["curl", "aws"]
        .into_iter()
        .filter(|p| !available(p))
        .collect();
    let rss_start = peak_rss_kib();

    let settings = UploadSettings::default();
    println!(
        "backup-controller: one collection snapshot from the fake Qdrant (separate process) into moto S3 at {}; multipart, {} MiB parts, concurrency {}",
        server.endpoint,
        settings.part_size as u64 / MIB,
        settings.concurrency
    );
    println!(
        "  {:>9}  {:>28}  {:>28}  {:>14}",
        "snapshot", "backup::run", "curl | aws s3 cp (baseline)", "controller"
    );
    println!(
        "  {:>9}  {:>8} {:>9} {:>9}  {:>8} {:>9} {:>9}  {:>14}",
        "MiB", "s", "MiB/s", "parts", "s", "MiB/s", "parts", "peak RSS MiB"
    );
    let mut peaks = vec![];
    let mut creates = vec![];
    for &mib in &sizes {
        assert_eq!(fake.query(&format!("padding {}", mib * MIB)).unwrap(), "ok");
        let ours = measure_ours(&source, &bucket, &raw, mib).await;
        let baseline = if baseline_tools.is_empty() {
            match measure_baseline(&client, &server, &bucket, &raw, mib).await {
                Ok((bytes, secs, parts, create)) => {
                    creates.push((mib, create, ours.bytes, ours.secs));
                    format!("{secs:>8.2} {:>9.1} {parts:>9}", mib_per_s(bytes, secs))
                }
                Err(e) => {
                    eprintln!("  baseline at {mib} MiB failed: {e}");
                    format!("{:>28}", "failed")
                }
            }
        } else {
            format!("{:>28}", "skipped")
        };
        println!(
            "  {:>9.1}  {:>8.2} {:>9.1} {:>9}  {baseline}  {:>14.1}",
            ours.bytes as f64 / MIB as f64,
            ours.secs,
            mib_per_s(ours.bytes, ours.secs),
            ours.parts,
            ours.peak_rss_kib as f64 / 1024.0
        );
        peaks.push(ours.peak_rss_kib);
    }
    if !baseline_tools.is_empty() {
        println!(
            "  baseline skipped: {} not found (`python3 -m pip install awscli`; `just bench` installs it)",
            baseline_tools
                .iter()
                .map(|t| if *t == "aws" { "aws CLI" } else { t })
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }
    for (mib, create, bytes, secs) in creates {
        println!(
            "  snapshot creation on the fake at {mib} MiB (SHA-256 in the child): {create:.2} s, inside backup::run's time and outside the baseline's; backup::run without it: {:.1} MiB/s",
            mib_per_s(bytes, secs - create)
        );
    }
    let peak = peaks.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "  controller peak RSS: {peak:.1} MiB (at start {:.1} MiB): {} the {RSS_GOAL_MIB:.0} MiB goal",
        rss_start as f64 / 1024.0,
        if peak < RSS_GOAL_MIB { "under" } else { "OVER" }
    );
    if let [first, .., last] = peaks[..] {
        println!(
            "  peak RSS growth from {} MiB to {big} MiB snapshots: {:+.1} MiB",
            sizes[0],
            (last as f64 - first as f64) / 1024.0
        );
    }
    raw.delete_bucket()
        .bucket(&bucket.location().bucket)
        .send()
        .await
        .unwrap();
}
