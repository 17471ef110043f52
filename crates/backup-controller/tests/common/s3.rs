//! A real S3-compatible server for tests and the benchmark.
//!
//! When `S3_ENDPOINT`, `S3_ACCESS_KEY_ID` and `S3_SECRET_ACCESS_KEY` are set (`.ci/run` and
//! `just test` start one moto server for the whole run), that server is used. Otherwise this
//! process starts its own from `testdata/s3_server.py` (moto, from PyPI: `python3 -m pip
//! install 'moto[server]'`), which stops when this process exits (its stdin closes).
//! A missing moto is a test failure with the install command in the message, never a skip.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock},
};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use backup_controller::s3::{Bucket, S3Location, StaticCredentials};

/// Endpoint and the one access key the server accepts.
#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

struct Spawned {
    _child: Child,
    _stdin: ChildStdin,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();
static CHILD: Mutex<Option<Spawned>> = Mutex::new(None);

/// The shared server (see the module docs).
pub fn server() -> S3Server {
    reconcile_lib::runtime::install_crypto_provider();
    SERVER
        .get_or_init(|| {
            if let (Ok(endpoint), Ok(id), Ok(secret)) = (
                std::env::var("S3_ENDPOINT"),
                std::env::var("S3_ACCESS_KEY_ID"),
                std::env::var("S3_SECRET_ACCESS_KEY"),
            ) {
                return S3Server {
                    endpoint,
                    access_key_id: id,
                    secret_access_key: secret,
                    region: std::env::var("S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
                };
            }
            spawn()
        })
        .clone()
}

fn spawn() -> S3Server {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/s3_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 must be installed to run the S3 tests");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        panic!(
            "the S3 test server did not start ({script}); install moto with \
             `python3 -m pip install 'moto[server]==5.2.5'` or set S3_ENDPOINT, \
             S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"
        )
    });
    let stdin = child.stdin.take().expect("stdin");
    *CHILD.lock().unwrap() = Some(Spawned {
        _child: child,
        _stdin: stdin,
    });
    S3Server {
        endpoint: v["endpoint"].as_str().unwrap().to_string(),
        access_key_id: v["accessKeyId"].as_str().unwrap().to_string(),
        secret_access_key: v["secretAccessKey"].as_str().unwrap().to_string(),
        region: v["region"].as_str().unwrap().to_string(),
    }
}

impl S3Server {
    pub fn credentials(&self) -> StaticCredentials {
        StaticCredentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: None,
        }
    }

    pub fn location(&self, bucket: &str, prefix: &str) -> S3Location {
        S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region: self.region.clone(),
            endpoint: Some(self.endpoint.clone()),
            force_path_style: true,
        }
    }

    /// A [`Bucket`] client for bucket `name` (which must exist) with the server's key.
    pub async fn bucket(&self, name: &str, prefix: &str) -> Bucket {
        Bucket::connect(self.location(name, prefix), Some(self.credentials())).await
    }

    /// A raw SDK client, for test set-up and for checking what landed.
    pub async fn raw(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "test",
            ))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates a new bucket with a unique name and returns a [`Bucket`] on it.
    pub async fn new_bucket(&self, prefix: &str) -> Bucket {
        let name = format!(
            "t-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.raw()
            .await
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .expect("create bucket");
        self.bucket(&name, prefix).await
    }
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
