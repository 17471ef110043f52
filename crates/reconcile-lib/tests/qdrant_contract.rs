//! Qdrant contract tests (TESTING.md, layer 4).
//!
//! Every test in the shared part runs against the in-process fake Qdrant and against a real
//! Qdrant, which is, in this order:
//! - the server at `QDRANT_URL` when it is set (`QDRANT_API_KEY` when the server has a key,
//!   `QDRANT_READ_ONLY_API_KEY` for its read-only key, `QDRANT_CA_BUNDLE` = path of a PEM CA
//!   bundle for an https server with a private CA, `QDRANT_CALLBACK_HOST` below). `just test`
//!   starts one single-node server from `../shared/qdrant/qdrant` (or `$QDRANT_BIN`) in cluster
//!   mode with both keys for the whole suite and sets all of these;
//! - else a single-node server the test starts itself from that binary
//!   (`testkit::real_qdrant`: cluster mode, both keys, free ports of 127.0.0.1,
//!   its own storage directory, stopped when the test ends), so a plain `cargo test` runs the
//!   real cases too;
//! - else none: the test prints a `SKIP [<test>]: no Qdrant server binary ...` line.
//!
//! When the real server and the fake disagree, the fake is wrong. Each test prints the
//! targets it ran against (`cargo test ... -- --nocapture` shows it).
//!
//! The collection tests create collections named `op-contract-<test>-<random>` and delete them
//! (also when the test fails); they assume the server runs Qdrant 1.18's stock `config.yaml`
//! (its defaults are asserted).
//!
//! The shard-placement tests run on a real server only what one node can do: read a
//! collection's placement, remove an unknown peer (a no-op that succeeds in cluster mode), be
//! refused removing the peer that holds a replica (sent only after `GET
//! /collections/{c}/cluster` showed that peer holds one), and be refused invalid cluster
//! operations. Moving, replicating, dropping replicas and removing emptied peers need several
//! peers and are fake-only.
//!
//! The snapshot tests create, list, download (checking size and SHA-256) and delete collection
//! and shard snapshots, count points, and recover snapshots from an upload on both targets.
//! Recovering from an HTTP location needs the server to fetch from this process: always so for
//! the fake and for a server the test started (127.0.0.1); for the server at `QDRANT_URL` only
//! when `QDRANT_CALLBACK_HOST` names a host or IP of this machine the server can reach (the
//! test then serves on all interfaces, or on 127.0.0.1 for a loopback name; `just test` sets
//! 127.0.0.1), else that part is skipped with a message. On a real server the points are
//! written with `PUT /collections/{c}/points`, and the snapshots and uploaded files the tests
//! make are deleted.
//!
//! The fake-only part covers what cannot be arranged on a real server from outside: exact
//! cluster states, several peers (peer views), readiness flips, injected failures (including
//! a download cut midway), slow replies, headers sent, the fake's snapshot bytes, and the
//! replica states after a recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use reconcile_lib::qdrant::{
    AliasDescription, ApiKey, ClusterInfo, CollectionClusterInfo, CollectionInfo, QdrantClient,
    QdrantConnection, QdrantError, RaftRole, ShardTransferInfo, SnapshotDescription,
    SnapshotDownload, SnapshotPriority, SnapshotRecover,
};
use serde_json::{Value, json};
use testkit::qdrant::{
    ClusterState, FAKE_SNAPSHOTS_PATH, FakeQdrant, FakeQdrantOptions, FakeRecovery,
    MISSING_KEY_MESSAGE, READ_ONLY_DENIED_MESSAGE, WRONG_KEY_MESSAGE,
};
use testkit::real_qdrant::{self, SingleNode, SingleNodeOptions};
use url::Url;

/// The read-write key the fake target is started with.
const FAKE_KEY: &str = "fake-read-write-key";
/// The read-only key the fake target is started with.
const FAKE_READ_ONLY_KEY: &str = "fake-read-only-key";
/// The read-write key of the real server a test starts itself (when `QDRANT_URL` is unset).
const REAL_KEY: &str = "real-read-write-key";
/// The read-only key of the real server a test starts itself.
const REAL_READ_ONLY_KEY: &str = "real-read-only-key";

/// A self-signed test CA (EC P-256, valid 2020-2100) and a server certificate it signed for
/// `localhost` and `127.0.0.1`, with the server's key. Test fixtures only.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBeDCCAR6gAwIBAgICEAAwCgYIKoZIzj0EAwIwIjEgMB4GA1UEAwwXcWRyYW50
LW9wZXJhdG9yIHRlc3QgQ0EwIBcNMjAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAw
MDBaMCIxIDAeBgNVBAMMF3FkcmFudC1vcGVyYXRvciB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEOLTqr1uPOAuyz9ETso9sskbExLpMpFNI8Ht7s+cY
UB4h2dvXE597crGsc/NQ/PqJO4pjYGl/XGtKOqiZCR6HM6NCMEAwDwYDVR0TAQH/
BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFHsc5R3s3hwDmB+WMS9X
6nybqyZcMAoGCCqGSM49BAMCA0gAMEUCIQCaC75dv2x0WiR3m5WH4mheoQVJbuAl
RLz1iC+0I212EAIgM1z0T3GKsQGlvR5j5d+qAmIDsgsoT6yWY+HAtf9Sgqw=
-----END CERTIFICATE-----
";
const TEST_SERVER_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBujCCAWGgAwIBAgICEAEwCgYIKoZIzj0EAwIwIjEgMB4GA1UEAwwXcWRyYW50
LW9wZXJhdG9yIHRlc3QgQ0EwIBcNMjAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAw
MDBaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABIQFyiXtK6kw4lvZ5vjJboZwWO8XxePLwqMvD44E/BXGeQA5L0EFRMMxEHif
zJcXvYTnzAePX2VHQ2KBWwPYzAGjgZIwgY8wDAYDVR0TAQH/BAIwADAOBgNVHQ8B
Af8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYIJbG9jYWxo
b3N0hwR/AAABMB8GA1UdIwQYMBaAFHsc5R3s3hwDmB+WMS9X6nybqyZcMB0GA1Ud
DgQWBBR83w7TwJrblFBXL1EXYJzfjM4/cDAKBggqhkjOPQQDAgNHADBEAiBxIcDM
1TreHIyJMLA3d0pWvw3zx77kVr6E5ws4KgbRqgIgJdfan5tJKNookD36zsOAn8VN
v4Npx+CdWq+lmxtCalQ=
-----END CERTIFICATE-----
";
const TEST_SERVER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoAO16ag0bKg1+i9I
bTChzH1IXz5MKnsxvpaY33+oiqmhRANCAASEBcol7SupMOJb2eb4yW6GcFjvF8Xj
y8KjLw+OBPwVxnkAOS9BBUTDMRB4n8yXF72E58wHj19lR0NigVsD2MwB
-----END PRIVATE KEY-----
";

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

/// A server the shared tests run against.
enum Target {
    Fake(FakeQdrant),
    Real {
        url: Url,
        api_key: Option<String>,
        read_only_api_key: Option<String>,
        ca_bundle_pem: Option<Vec<u8>>,
        /// A host (or IP) of this machine the server can reach, for URL recoveries.
        callback_host: Option<String>,
        /// The server this test started itself (when `QDRANT_URL` is unset), stopped when the
        /// target is dropped.
        node: Option<Box<SingleNode>>,
    },
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Fake(fake) => format!("the in-process fake Qdrant at {}", fake.url()),
            Target::Real {
                url, api_key, node, ..
            } => format!(
                "the REAL Qdrant at {url} ({}, {})",
                if node.is_some() {
                    "started by this test"
                } else {
                    "QDRANT_URL"
                },
                if api_key.is_some() {
                    "with an API key"
                } else {
                    "without API key"
                }
            ),
        }
    }

    fn url(&self) -> Url {
        match self {
            Target::Fake(fake) => fake.url(),
            Target::Real { url, .. } => url.clone(),
        }
    }

    fn api_key(&self) -> Option<String> {
        match self {
            Target::Fake(_) => Some(FAKE_KEY.to_owned()),
            Target::Real { api_key, .. } => api_key.clone(),
        }
    }

    fn read_only_api_key(&self) -> Option<String> {
        match self {
            Target::Fake(_) => Some(FAKE_READ_ONLY_KEY.to_owned()),
            Target::Real {
                read_only_api_key, ..
            } => read_only_api_key.clone(),
        }
    }

    fn connection(&self, key: Option<&str>) -> QdrantConnection {
        let mut conn = QdrantConnection::new(self.url()).with_timeout(Duration::from_secs(10));
        conn.api_key = key.map(ApiKey::new);
        if let Target::Real {
            ca_bundle_pem: Some(pem),
            ..
        } = self
        {
            conn.ca_bundle_pem = Some(pem.clone());
        }
        conn
    }

    /// A client with the target's own key.
    fn client(&self) -> QdrantClient {
        QdrantClient::new(&self.connection(self.api_key().as_deref())).expect("client builds")
    }

    /// A client with the given key (or none).
    fn client_with_key(&self, key: Option<&str>) -> QdrantClient {
        QdrantClient::new(&self.connection(key)).expect("client builds")
    }

    /// A plain reqwest client for checking raw wire shapes.
    fn raw(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if let Target::Real {
            ca_bundle_pem: Some(pem),
            ..
        } = self
        {
            for cert in reqwest::Certificate::from_pem_bundle(pem).expect("QDRANT_CA_BUNDLE") {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().expect("raw client builds")
    }

    fn endpoint(&self, path: &str) -> Url {
        self.url().join(path).expect("endpoint URL")
    }
}

/// The fake (always, with [`FAKE_KEY`]) and a real Qdrant: the one at `QDRANT_URL` when set
/// (`just test` starts one for the whole suite), else a single-node server this test starts
/// itself from [`real_qdrant::binary`] (cluster mode, with [`REAL_KEY`] and
/// [`REAL_READ_ONLY_KEY`]), else none, with [`real_qdrant::skip_line`] printed. Prints which
/// targets `test` runs against.
async fn targets(test: &str) -> Vec<Target> {
    let fake = FakeQdrant::start(FakeQdrantOptions {
        api_key: Some(FAKE_KEY.to_owned()),
        read_only_api_key: Some(FAKE_READ_ONLY_KEY.to_owned()),
        ..FakeQdrantOptions::default()
    })
    .await;
    let mut targets = vec![Target::Fake(fake)];
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(url) = env("QDRANT_URL") {
        let url = Url::parse(url.trim())
            .unwrap_or_else(|e| panic!("QDRANT_URL={url:?} is not a URL: {e}"));
        let ca_bundle_pem = env("QDRANT_CA_BUNDLE").map(|path| {
            std::fs::read(&path).unwrap_or_else(|e| panic!("QDRANT_CA_BUNDLE={path:?}: {e}"))
        });
        targets.push(Target::Real {
            url,
            api_key: env("QDRANT_API_KEY"),
            read_only_api_key: env("QDRANT_READ_ONLY_API_KEY"),
            ca_bundle_pem,
            callback_host: env("QDRANT_CALLBACK_HOST").map(|h| h.trim().to_owned()),
            node: None,
        });
    } else if let Some(binary) = real_qdrant::binary() {
        let node = SingleNode::start(
            &binary,
            SingleNodeOptions {
                api_key: Some(REAL_KEY.to_owned()),
                read_only_api_key: Some(REAL_READ_ONLY_KEY.to_owned()),
                cluster: true,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("[{test}] starting {}: {e}", binary.display()));
        targets.push(Target::Real {
            url: node.url.clone(),
            api_key: node.options.api_key.clone(),
            read_only_api_key: node.options.read_only_api_key.clone(),
            ca_bundle_pem: None,
            // The node runs on this machine's loopback.
            callback_host: Some("127.0.0.1".to_owned()),
            node: Some(Box::new(node)),
        });
    } else {
        println!("{}", real_qdrant::skip_line(test));
    }
    for target in &targets {
        println!("[{test}] running against {}", target.describe());
    }
    targets
}

async fn fake(test: &str, opts: FakeQdrantOptions) -> FakeQdrant {
    let fake = FakeQdrant::start(opts).await;
    println!(
        "[{test}] running against the in-process fake Qdrant at {} (fake-only test)",
        fake.url()
    );
    fake
}

/// A plain HTTP client for raw requests to the fake.
fn plain_http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn client_for(url: Url, key: Option<&str>) -> QdrantClient {
    let mut conn = QdrantConnection::new(url).with_timeout(Duration::from_secs(10));
    conn.api_key = key.map(ApiKey::new);
    QdrantClient::new(&conn).expect("client builds")
}

// ---------------------------------------------------------------------------------------------
// Shared contract: fake and real
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cluster_info_has_qdrants_shape() {
    for target in targets("cluster_info_has_qdrants_shape").await {
        let who = target.describe();
        let info = target
            .client()
            .cluster_info()
            .await
            .unwrap_or_else(|e| panic!("{who}: GET /cluster failed: {e}"));
        match info.status.as_str() {
            "enabled" => {
                let peer_id = info
                    .peer_id
                    .unwrap_or_else(|| panic!("{who}: enabled cluster without peer_id: {info:?}"));
                assert!(
                    info.peers.contains_key(&peer_id),
                    "{who}: own peer {peer_id} missing from peers {:?}",
                    info.peers
                );
                assert!(
                    info.peers.values().all(|p| !p.uri.is_empty()),
                    "{who}: a peer without URI: {:?}",
                    info.peers
                );
                let raft = info
                    .raft_info
                    .as_ref()
                    .unwrap_or_else(|| panic!("{who}: enabled cluster without raft_info"));
                assert!(raft.term >= 1, "{who}: Raft term {} < 1", raft.term);
                assert!(
                    info.consensus_thread_status.is_some(),
                    "{who}: enabled cluster without consensus_thread_status"
                );
                assert!(info.is_enabled());
            }
            "disabled" => {
                assert_eq!(info.peer_id, None, "{who}");
                assert!(info.peers.is_empty(), "{who}");
                assert!(!info.is_enabled());
            }
            other => panic!("{who}: cluster status {other:?} is neither enabled nor disabled"),
        }

        // The raw envelope, checked independently of the client's decoding.
        let mut req = target.raw().get(target.endpoint("cluster"));
        if let Some(key) = target.api_key() {
            req = req.header("api-key", key);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{who}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "ok", "{who}: {body}");
        assert!(body["time"].is_f64(), "{who}: time is not a number: {body}");
        assert!(body["result"]["status"].is_string(), "{who}: {body}");
        if body["result"]["status"] == "enabled" {
            let peers = body["result"]["peers"].as_object().unwrap();
            assert!(
                peers.keys().all(|k| k.parse::<u64>().is_ok()),
                "{who}: peer map keys are not decimal ids: {body}"
            );
            assert!(body["result"]["peer_id"].is_u64(), "{who}: {body}");
            assert!(
                body["result"]["raft_info"]["is_voter"].is_boolean(),
                "{who}"
            );
        }
    }
}

#[tokio::test]
async fn health_endpoints_answer_and_need_no_key() {
    for target in targets("health_endpoints_answer_and_need_no_key").await {
        let who = target.describe();
        let client = target.client();
        client
            .readyz()
            .await
            .unwrap_or_else(|e| panic!("{who}: readyz: {e}"));
        client
            .healthz()
            .await
            .unwrap_or_else(|e| panic!("{who}: healthz: {e}"));
        client
            .livez()
            .await
            .unwrap_or_else(|e| panic!("{who}: livez: {e}"));
        let version = client
            .version()
            .await
            .unwrap_or_else(|e| panic!("{who}: GET /: {e}"));
        assert_eq!(version.title, "qdrant - vector search engine", "{who}");
        assert!(!version.version.is_empty(), "{who}");

        // Exempt from authentication: a wrong key changes nothing.
        let wrong = target.client_with_key(Some("not-the-key"));
        wrong
            .readyz()
            .await
            .unwrap_or_else(|e| panic!("{who}: readyz, wrong key: {e}"));
        wrong
            .healthz()
            .await
            .unwrap_or_else(|e| panic!("{who}: healthz, wrong key: {e}"));

        // Raw bodies, without any key.
        for (path, expected) in [
            ("readyz", "all shards are ready"),
            ("healthz", "healthz check passed"),
            ("livez", "healthz check passed"),
        ] {
            let resp = target
                .raw()
                .get(target.endpoint(path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{who}: /{path}");
            assert_eq!(resp.text().await.unwrap(), expected, "{who}: /{path}");
        }
    }
}

#[tokio::test]
async fn wrong_or_missing_api_key_is_unauthorized_with_qdrants_message() {
    let test = "wrong_or_missing_api_key_is_unauthorized_with_qdrants_message";
    for target in targets(test).await {
        let who = target.describe();
        if target.api_key().is_none() {
            println!("[{test}] skipped for {who}: QDRANT_API_KEY is not set");
            continue;
        }
        for (key, expected) in [
            (Some("definitely-not-the-key"), WRONG_KEY_MESSAGE),
            (None, MISSING_KEY_MESSAGE),
        ] {
            let err = match target.client_with_key(key).cluster_info().await {
                Ok(info) => panic!("{who}: GET /cluster with key {key:?} succeeded: {info:?}"),
                Err(err) => err,
            };
            assert_eq!(
                err,
                QdrantError::Unauthorized {
                    status: 401,
                    message: expected.to_owned()
                },
                "{who}: key {key:?}"
            );
            assert!(!err.is_transient(), "{who}");
            assert_eq!(err.reason(), "QdrantUnauthorized");
            assert!(
                !err.to_string().contains("definitely-not-the-key"),
                "{who}: the key leaked into the message: {err}"
            );
        }
        // Qdrant also takes the key as a bearer token.
        let resp = target
            .raw()
            .get(target.endpoint("cluster"))
            .bearer_auth(target.api_key().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{who}: Authorization: Bearer");
    }
}

#[tokio::test]
async fn closed_port_is_unreachable_and_transient() {
    println!(
        "[closed_port_is_unreachable_and_transient] running against a closed port on 127.0.0.1 (no server)"
    );
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // dropped: nothing listens any more
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let client = client_for(url, Some("some-key"));
    for err in [
        client.cluster_info().await.unwrap_err(),
        client.readyz().await.unwrap_err(),
    ] {
        match &err {
            QdrantError::Unreachable { url, message } => {
                assert!(url.contains(&port.to_string()), "{url}");
                assert!(!message.is_empty());
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(err.is_transient());
        assert_eq!(err.reason(), "QdrantUnreachable");
        assert_eq!(err.status(), None);
    }
}

// ---------------------------------------------------------------------------------------------
// Collections, payload indexes and aliases: fake and real
// ---------------------------------------------------------------------------------------------

/// A collection name unique to this run: `op-contract-<tag>-<random hex>`.
fn unique_name(tag: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!(
        "op-contract-{tag}-{:012x}",
        hasher.finish() & 0xffff_ffff_ffff
    )
}

/// Deletes the collections it was given from a real server when dropped, also when the test
/// panics (on a thread of its own with its own runtime, as a `Drop` cannot await). Nothing to
/// do for the fake, which is dropped with the test (and whose server runs on the test's own
/// runtime, blocked while `drop` waits).
struct Cleanup {
    conn: Option<QdrantConnection>,
    collections: Vec<String>,
}

impl Cleanup {
    fn new(target: &Target) -> Self {
        Self {
            conn: match target {
                Target::Fake(_) => None,
                Target::Real { .. } => Some(target.connection(target.api_key().as_deref())),
            },
            collections: Vec::new(),
        }
    }

    /// Registers `name` for deletion and returns it.
    fn track(&mut self, name: String) -> String {
        self.collections.push(name.clone());
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let names = std::mem::take(&mut self.collections);
        let worker = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(client) = QdrantClient::new(&conn) else {
                    return;
                };
                for name in names {
                    if let Err(e) = client.delete_collection(&name).await {
                        eprintln!("cleanup: cannot delete collection {name}: {e}");
                    }
                }
            });
        });
        let _ = worker.join();
    }
}

/// A small unnamed-vector collection.
fn simple_collection(size: u64) -> Value {
    json!({"vectors": {"size": size, "distance": "Cosine"}})
}

async fn info(client: &QdrantClient, who: &str, name: &str) -> CollectionInfo {
    client
        .collection_info(name)
        .await
        .unwrap_or_else(|e| panic!("{who}: GET /collections/{name}: {e}"))
        .unwrap_or_else(|| panic!("{who}: collection {name} does not exist"))
}

/// Our aliases among the server's (a real server may hold others), sorted.
async fn our_aliases(client: &QdrantClient, who: &str, ours: &[&str]) -> Vec<(String, String)> {
    let mut aliases: Vec<(String, String)> = client
        .list_aliases()
        .await
        .unwrap_or_else(|e| panic!("{who}: GET /aliases: {e}"))
        .into_iter()
        .filter(|a| ours.contains(&a.alias_name.as_str()))
        .map(|a| (a.alias_name, a.collection_name))
        .collect();
    aliases.sort();
    aliases
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = list
        .iter()
        .map(|(a, c)| ((*a).to_owned(), (*c).to_owned()))
        .collect();
    list.sort();
    list
}

/// A raw request with the target's key: (HTTP status, JSON body).
async fn raw_json(
    target: &Target,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = target.raw().request(method, target.endpoint(path));
    if let Some(key) = target.api_key() {
        req = req.header("api-key", key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

fn bad_request_message(who: &str, what: &str, result: Result<(), QdrantError>) -> String {
    match result {
        Err(QdrantError::BadRequest { message }) => message,
        other => panic!("{who}: {what}: expected BadRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn created_collection_reports_qdrants_shape_and_defaults() {
    let test = "created_collection_reports_qdrants_shape_and_defaults";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("shape"));

        assert_eq!(client.collection_info(&name).await.unwrap(), None, "{who}");
        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap_or_else(|e| panic!("{who}: create: {e}"));
        let info = info(&client, &who, &name).await;

        assert_eq!(info.status, "green", "{who}: {info:?}");
        assert_eq!(info.optimizer_status, json!("ok"), "{who}");
        assert_eq!(info.points_count, Some(0), "{who}");
        assert_eq!(info.indexed_vectors_count, Some(0), "{who}");
        assert!(
            info.segments_count.is_some_and(|n| n >= 1),
            "{who}: segments_count {:?}",
            info.segments_count
        );
        assert!(info.payload_schema.is_empty(), "{who}");

        let c = &info.config;
        let params = &c["params"];
        assert_eq!(
            params["vectors"],
            json!({"size": 4, "distance": "Cosine"}),
            "{who}: {c}"
        );
        assert!(
            params["shard_number"].as_u64().is_some_and(|n| n >= 1),
            "{who}: {params}"
        );
        assert!(params.get("sharding_method").is_none(), "{who}: {params}");
        assert!(params.get("sparse_vectors").is_none(), "{who}: {params}");
        assert_eq!(params["replication_factor"], 1, "{who}: {params}");
        assert_eq!(params["write_consistency_factor"], 1, "{who}: {params}");
        assert_eq!(params["on_disk_payload"], true, "{who}: {params}");
        assert_eq!(
            c["hnsw_config"],
            json!({"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                   "max_indexing_threads": 0, "on_disk": false}),
            "{who}"
        );
        let optimizer = &c["optimizer_config"];
        assert_eq!(optimizer["deleted_threshold"], 0.2, "{who}: {optimizer}");
        assert_eq!(optimizer["vacuum_min_vector_number"], 1000, "{who}");
        assert_eq!(optimizer["default_segment_number"], 0, "{who}");
        assert_eq!(optimizer["indexing_threshold"], 10000, "{who}");
        assert_eq!(optimizer["flush_interval_sec"], 5, "{who}");
        assert_eq!(optimizer["max_segment_size"], Value::Null, "{who}");
        assert_eq!(optimizer["max_optimization_threads"], Value::Null, "{who}");
        assert!(c.get("optimizers_config").is_none(), "{who}: {c}");
        assert_eq!(c["wal_config"]["wal_capacity_mb"], 32, "{who}");
        assert_eq!(c["wal_config"]["wal_segments_ahead"], 0, "{who}");
        assert_eq!(c["quantization_config"], Value::Null, "{who}");
        assert!(c.get("quantization_config").is_some(), "{who}: {c}");

        // The raw reply: 1.18 no longer sends vectors_count.
        let (status, body) = raw_json(
            &target,
            reqwest::Method::GET,
            &format!("collections/{name}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{who}: {body}");
        assert_eq!(body["status"], "ok", "{who}");
        assert!(
            body["result"].get("vectors_count").is_none(),
            "{who}: {body}"
        );
        assert!(body["result"]["update_queue"].is_object(), "{who}: {body}");

        // A missing collection is None, from a 404 with Qdrant's message.
        let missing = unique_name("missing");
        assert_eq!(
            client.collection_info(&missing).await.unwrap(),
            None,
            "{who}"
        );
        let (status, body) = raw_json(
            &target,
            reqwest::Method::GET,
            &format!("collections/{missing}"),
            None,
        )
        .await;
        assert_eq!(status, 404, "{who}");
        assert_eq!(
            body["status"]["error"],
            format!("Not found: Collection `{missing}` doesn't exist!"),
            "{who}"
        );
    }
}

#[tokio::test]
async fn created_collection_keeps_explicit_settings() {
    let test = "created_collection_keeps_explicit_settings";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("explicit"));
        let body = json!({
            "vectors": {
                "dense": {"size": 8, "distance": "Dot", "on_disk": true, "hnsw_config": {"m": 8}},
                "small": {"size": 2, "distance": "Euclid", "datatype": "float16"},
            },
            "sparse_vectors": {"text": {"modifier": "idf"}},
            "shard_number": 2,
            "on_disk_payload": false,
            "hnsw_config": {"ef_construct": 64},
            "optimizers_config": {"indexing_threshold": 5000, "max_optimization_threads": 1},
            "wal_config": {"wal_capacity_mb": 16},
            "quantization_config": {"scalar": {"type": "int8", "always_ram": true}},
            "strict_mode_config": {"enabled": true, "max_query_limit": 100},
        });
        client
            .create_collection(&name, &body)
            .await
            .unwrap_or_else(|e| panic!("{who}: create: {e}"));
        let info = info(&client, &who, &name).await;
        let c = &info.config;
        assert_eq!(
            c["params"]["vectors"],
            json!({
                "dense": {"size": 8, "distance": "Dot", "on_disk": true, "hnsw_config": {"m": 8}},
                "small": {"size": 2, "distance": "Euclid", "datatype": "float16"},
            }),
            "{who}: {c}"
        );
        assert_eq!(
            c["params"]["sparse_vectors"],
            json!({"text": {"modifier": "idf"}}),
            "{who}"
        );
        assert_eq!(c["params"]["shard_number"], 2, "{who}");
        assert_eq!(c["params"]["on_disk_payload"], false, "{who}");
        assert_eq!(c["hnsw_config"]["ef_construct"], 64, "{who}");
        assert_eq!(c["hnsw_config"]["m"], 16, "{who}: defaults fill the rest");
        assert_eq!(c["optimizer_config"]["indexing_threshold"], 5000, "{who}");
        assert_eq!(
            c["optimizer_config"]["max_optimization_threads"], 1,
            "{who}"
        );
        assert_eq!(c["optimizer_config"]["deleted_threshold"], 0.2, "{who}");
        assert_eq!(c["wal_config"]["wal_capacity_mb"], 16, "{who}");
        assert_eq!(
            c["quantization_config"],
            json!({"scalar": {"type": "int8", "always_ram": true}}),
            "{who}"
        );
        assert_eq!(c["strict_mode_config"]["enabled"], true, "{who}: {c}");
        assert_eq!(c["strict_mode_config"]["max_query_limit"], 100, "{who}");
    }
}

/// The server's version (`GET /`) and whether it is 1.19 or later, for the cases whose
/// expectations differ from 1.19 on.
async fn version_since_1_19(client: &QdrantClient, who: &str) -> (String, bool) {
    let version = client
        .version()
        .await
        .unwrap_or_else(|e| panic!("{who}: GET /: {e}"))
        .version;
    let since = reconcile_lib::qdrant::minor_version(&version).is_some_and(|v| v >= (1, 19));
    (version, since)
}

/// Qdrant 1.19's `memory` placements: a server before 1.19 accepts the body and ignores them
/// (its collection keeps the defaults, nothing echoes `memory`), which is why the
/// collection-controller lowers them to the deprecated flags for such a server; 1.19 stores
/// and reports them.
#[tokio::test]
async fn memory_placements_are_ignored_before_qdrant_1_19() {
    let test = "memory_placements_are_ignored_before_qdrant_1_19";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let (version, knows_memory) = version_since_1_19(&client, &who).await;
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("memory"));
        let body = json!({
            "vectors": {"size": 4, "distance": "Dot", "memory": "cold"},
            "payload": {"memory": "cached"},
            "hnsw_config": {"memory": "cold"},
        });
        client
            .create_collection(&name, &body)
            .await
            .unwrap_or_else(|e| panic!("{who}: create: {e}"));
        let c = info(&client, &who, &name).await.config;
        if knows_memory {
            assert_eq!(
                c["params"]["vectors"]["memory"], "cold",
                "{who} ({version}): {c}"
            );
            assert_eq!(
                c["params"]["payload"]["memory"], "cached",
                "{who} ({version}): {c}"
            );
        } else {
            assert_eq!(
                c["params"]["vectors"],
                json!({"size": 4, "distance": "Dot"}),
                "{who} ({version}): memory ignored, no on_disk set: {c}"
            );
            assert!(
                !c.to_string().contains("\"memory\""),
                "{who} ({version}): {c}"
            );
            assert_eq!(
                c["params"]["on_disk_payload"], true,
                "{who} ({version}): default kept"
            );
            assert_eq!(
                c["hnsw_config"]["on_disk"], false,
                "{who} ({version}): default kept"
            );
        }
    }
}

/// `GET /quotas` is Qdrant 1.19's: a server before answers 404 (`NotFound`), which is why the
/// cluster-controller asks each pod's version first; 1.19 reports the config in force.
#[tokio::test]
async fn quotas_exist_from_qdrant_1_19() {
    let test = "quotas_exist_from_qdrant_1_19";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let (version, since_1_19) = version_since_1_19(&client, &who).await;
        match client.quotas().await {
            Ok(config) => assert!(since_1_19, "{who} ({version}): quotas {config:?}"),
            Err(e) => {
                assert!(!since_1_19, "{who} ({version}): {e}");
                assert!(
                    matches!(e, QdrantError::NotFound { .. }),
                    "{who} ({version}): {e:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn creating_an_existing_collection_is_refused_with_qdrants_message() {
    let test = "creating_an_existing_collection_is_refused_with_qdrants_message";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("twice"));
        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap();
        let err = client
            .create_collection(&name, &simple_collection(8))
            .await
            .unwrap_err();
        assert!(err.is_already_exists(), "{who}: {err:?}");
        assert!(!err.is_transient(), "{who}");
        // 409, as Qdrant 1.18.3 answers (the fake answered 400 until the suite ran against the
        // real server).
        assert_eq!(
            err,
            QdrantError::Conflict {
                message: format!("Wrong input: Collection `{name}` already exists!")
            },
            "{who}"
        );
        // The first collection is untouched.
        let info = info(&client, &who, &name).await;
        assert_eq!(info.config["params"]["vectors"]["size"], 4, "{who}");
    }
}

#[tokio::test]
async fn invalid_collection_bodies_are_rejected_like_qdrant() {
    let test = "invalid_collection_bodies_are_rejected_like_qdrant";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("invalid"));

        // Size 0 does not deserialize (NonZeroU64 inside an untagged enum): 400.
        let message = bad_request_message(
            &who,
            "size 0",
            client.create_collection(&name, &simple_collection(0)).await,
        );
        assert!(
            message.starts_with(
                "Format error in JSON body: data did not match any variant of untagged enum VectorsConfig at line 1 column "
            ),
            "{who}: {message}"
        );
        // Too large a size deserializes but fails validation: 422, wording from Qdrant's own
        // tests (tests/openapi/test_limits.py).
        let message = bad_request_message(
            &who,
            "size 65537",
            client
                .create_collection(&name, &simple_collection(65537))
                .await,
        );
        assert_eq!(
            message,
            "Validation error in JSON body: [vectors.size: value 65537 invalid, must be from 1 to 65536]",
            "{who}"
        );
        let message = bad_request_message(
            &who,
            "unknown distance",
            client
                .create_collection(
                    &name,
                    &json!({"vectors": {"size": 4, "distance": "Hamming"}}),
                )
                .await,
        );
        assert!(
            message.contains("untagged enum VectorsConfig"),
            "{who}: {message}"
        );
        let message = bad_request_message(
            &who,
            "replication_factor 0",
            client
                .create_collection(
                    &name,
                    &json!({"vectors": {"size": 4, "distance": "Dot"}, "replication_factor": 0}),
                )
                .await,
        );
        assert_eq!(
            message,
            "Validation error in JSON body: [replication_factor: value 0 invalid, must be 1 or larger]",
            "{who}"
        );
        assert_eq!(client.collection_info(&name).await.unwrap(), None, "{who}");

        // The HTTP statuses behind those: 400 for decoding, 422 for validation.
        let path = format!("collections/{name}");
        let (status, body) = raw_json(
            &target,
            reqwest::Method::PUT,
            &path,
            Some(simple_collection(0)),
        )
        .await;
        assert_eq!(status, 400, "{who}: {body}");
        let (status, body) = raw_json(
            &target,
            reqwest::Method::PUT,
            &path,
            Some(simple_collection(65537)),
        )
        .await;
        assert_eq!(status, 422, "{who}: {body}");
        assert!(body["status"]["error"].is_string(), "{who}: {body}");
        assert_eq!(client.collection_info(&name).await.unwrap(), None, "{who}");
    }
}

#[tokio::test]
async fn collection_updates_are_merged_and_visible() {
    let test = "collection_updates_are_merged_and_visible";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("patch"));
        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap();

        client
            .update_collection(
                &name,
                &json!({
                    "optimizers_config": {"indexing_threshold": 20000, "max_optimization_threads": 2},
                    "hnsw_config": {"m": 32, "ef_construct": 200},
                    "params": {"on_disk_payload": false, "read_fan_out_factor": 1},
                    "vectors": {"": {"on_disk": true, "hnsw_config": {"m": 8}}},
                    "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99}},
                }),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: PATCH: {e}"));
        let c = info(&client, &who, &name).await.config;
        assert_eq!(
            c["optimizer_config"]["indexing_threshold"], 20000,
            "{who}: {c}"
        );
        assert_eq!(
            c["optimizer_config"]["max_optimization_threads"], 2,
            "{who}"
        );
        assert_eq!(
            c["optimizer_config"]["flush_interval_sec"], 5,
            "{who}: untouched"
        );
        assert_eq!(c["hnsw_config"]["m"], 32, "{who}");
        assert_eq!(c["hnsw_config"]["ef_construct"], 200, "{who}");
        assert_eq!(
            c["hnsw_config"]["full_scan_threshold"], 10000,
            "{who}: untouched"
        );
        assert_eq!(c["params"]["on_disk_payload"], false, "{who}");
        assert_eq!(c["params"]["read_fan_out_factor"], 1, "{who}");
        assert_eq!(c["params"]["replication_factor"], 1, "{who}: untouched");
        assert_eq!(
            c["params"]["vectors"],
            json!({"size": 4, "distance": "Cosine", "on_disk": true, "hnsw_config": {"m": 8}}),
            "{who}"
        );
        assert_eq!(
            c["quantization_config"],
            json!({"scalar": {"type": "int8", "quantile": 0.99}}),
            "{who}"
        );

        // "auto" threads and "Disabled" quantization; a second per-vector hnsw diff merges.
        client
            .update_collection(
                &name,
                &json!({
                    "optimizers_config": {"max_optimization_threads": "auto"},
                    "quantization_config": "Disabled",
                    "vectors": {"": {"hnsw_config": {"ef_construct": 50}}},
                }),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: second PATCH: {e}"));
        let c = info(&client, &who, &name).await.config;
        assert_eq!(
            c["optimizer_config"]["max_optimization_threads"],
            Value::Null,
            "{who}"
        );
        assert_eq!(c["optimizer_config"]["indexing_threshold"], 20000, "{who}");
        assert_eq!(c["quantization_config"], Value::Null, "{who}");
        assert_eq!(
            c["params"]["vectors"]["hnsw_config"],
            json!({"m": 8, "ef_construct": 50}),
            "{who}"
        );

        // An empty update changes nothing.
        client.update_collection(&name, &json!({})).await.unwrap();
        assert_eq!(info(&client, &who, &name).await.config, c, "{who}");
    }
}

/// `result.config.metadata` of collection `name` (`None` when `GET` has no such key).
async fn collection_metadata(client: &QdrantClient, who: &str, name: &str) -> Option<Value> {
    info(client, who, name)
        .await
        .config
        .get("metadata")
        .cloned()
}

/// The collection metadata the collection-controller records its owner in (operator keys
/// beside an application's), as Qdrant 1.18 stores, merges and returns it.
#[tokio::test]
async fn collection_metadata_is_stored_merged_and_returned_like_qdrant() {
    let test = "collection_metadata_is_stored_merged_and_returned_like_qdrant";
    let owner = "qdrant.operator.dev/owner";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let plain = cleanup.track(unique_name("meta-none"));
        let marked = cleanup.track(unique_name("meta-given"));

        // Never given: `GET` has no `metadata` key at all.
        client
            .create_collection(&plain, &simple_collection(4))
            .await
            .unwrap();
        assert_eq!(
            collection_metadata(&client, &who, &plain).await,
            None,
            "{who}"
        );
        // The first PATCH of a collection without metadata stores the map as given, nulls
        // included; an empty map or a `null` metadata changes nothing.
        client
            .update_collection(&plain, &json!({"metadata": {"gone": null, "team": "a"}}))
            .await
            .unwrap_or_else(|e| panic!("{who}: PATCH: {e}"));
        assert_eq!(
            collection_metadata(&client, &who, &plain).await,
            Some(json!({"gone": null, "team": "a"})),
            "{who}"
        );

        // Given at creation: stored as given (nested objects, nulls) and returned under config.
        let body = json!({
            "vectors": {"size": 4, "distance": "Cosine"},
            "metadata": {owner: {"namespace": "ns", "name": "a", "uid": "u1"}, "team": "a", "n": null},
        });
        client.create_collection(&marked, &body).await.unwrap();
        assert_eq!(
            collection_metadata(&client, &who, &marked).await,
            Some(body["metadata"].clone()),
            "{who}"
        );
        // PATCH sets the keys it names, replacing a nested value whole (no deep merge), removes
        // those it sets to null, and keeps the others.
        client
            .update_collection(
                &marked,
                &json!({"metadata": {owner: {"uid": "u2"}, "team": null, "list": [1, 2]}}),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: PATCH: {e}"));
        let expected = json!({owner: {"uid": "u2"}, "n": null, "list": [1, 2]});
        assert_eq!(
            collection_metadata(&client, &who, &marked).await,
            Some(expected.clone()),
            "{who}"
        );
        for no_op in [json!({"metadata": {}}), json!({"metadata": null})] {
            client.update_collection(&marked, &no_op).await.unwrap();
            assert_eq!(
                collection_metadata(&client, &who, &marked).await,
                Some(expected.clone()),
                "{who}: {no_op}"
            );
        }
        // Every key removed: an empty map, not an absent one.
        client
            .update_collection(
                &marked,
                &json!({"metadata": {owner: null, "n": null, "list": null}}),
            )
            .await
            .unwrap();
        assert_eq!(
            collection_metadata(&client, &who, &marked).await,
            Some(json!({})),
            "{who}"
        );

        // Metadata must be a map.
        let message = bad_request_message(
            &who,
            "metadata as a string",
            client
                .update_collection(&marked, &json!({"metadata": "owner"}))
                .await,
        );
        assert!(
            message.starts_with(
                "Format error in JSON body: invalid type: string \"owner\", expected a map"
            ),
            "{who}: {message}"
        );
    }
}

#[tokio::test]
async fn collection_update_errors_are_qdrants() {
    let test = "collection_update_errors_are_qdrants";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("patch-err"));
        let named = cleanup.track(unique_name("patch-named"));
        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap();
        client
            .create_collection(
                &named,
                &json!({"vectors": {"a": {"size": 2, "distance": "Dot"}}}),
            )
            .await
            .unwrap();

        // Unknown vector names, for the unnamed-vector and the named-vector layouts.
        for (collection, vector) in [(&name, "nope"), (&named, "nope"), (&named, "")] {
            let message = bad_request_message(
                &who,
                "unknown vector",
                client
                    .update_collection(collection, &json!({"vectors": {vector: {"on_disk": true}}}))
                    .await,
            );
            assert_eq!(
                message,
                format!("Wrong input: Not existing vector name error: {vector}"),
                "{who}"
            );
        }

        // Sections are applied one after the other: the optimizer change before the failing
        // vectors section stays (Qdrant persists each section as it goes).
        client
            .update_collection(
                &name,
                &json!({
                    "optimizers_config": {"indexing_threshold": 30000},
                    "vectors": {"nope": {"on_disk": true}},
                }),
            )
            .await
            .unwrap_err();
        let c = info(&client, &who, &name).await.config;
        assert_eq!(
            c["optimizer_config"]["indexing_threshold"], 30000,
            "{who}: {c}"
        );
        assert!(
            c["params"]["vectors"].get("on_disk").is_none(),
            "{who}: {c}"
        );

        // Validation: 422 with Qdrant's wording.
        let message = bad_request_message(
            &who,
            "ef_construct 2",
            client
                .update_collection(&name, &json!({"hnsw_config": {"ef_construct": 2}}))
                .await,
        );
        assert_eq!(
            message,
            "Validation error in JSON body: [hnsw_config.ef_construct: value 2 invalid, must be 4 or larger]",
            "{who}"
        );

        // A missing collection.
        let missing = unique_name("missing");
        let err = client
            .update_collection(&missing, &json!({"hnsw_config": {"m": 8}}))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: format!("Not found: Collection `{missing}` doesn't exist!")
            },
            "{who}"
        );
    }
}

#[tokio::test]
async fn payload_indexes_show_in_the_payload_schema() {
    let test = "payload_indexes_show_in_the_payload_schema";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("index"));
        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap();

        client
            .create_payload_index(&name, "city", &json!("keyword"))
            .await
            .unwrap_or_else(|e| panic!("{who}: keyword index: {e}"));
        client
            .create_payload_index(
                &name,
                "tenant",
                &json!({"type": "keyword", "is_tenant": true}),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: tenant index: {e}"));
        client
            .create_payload_index(&name, "year", &json!({"type": "integer", "range": false}))
            .await
            .unwrap_or_else(|e| panic!("{who}: integer index: {e}"));
        let schema = info(&client, &who, &name).await.payload_schema;
        assert_eq!(
            schema.get("city"),
            Some(&json!({"data_type": "keyword", "points": 0})),
            "{who}: {schema:?}"
        );
        assert_eq!(
            schema.get("tenant"),
            Some(&json!({
                "data_type": "keyword",
                "params": {"type": "keyword", "is_tenant": true},
                "points": 0,
            })),
            "{who}: {schema:?}"
        );
        assert_eq!(
            schema.get("year"),
            Some(&json!({
                "data_type": "integer",
                "params": {"type": "integer", "lookup": null, "range": false, "is_principal": null},
                "points": 0,
            })),
            "{who}: {schema:?}"
        );

        // The raw reply of an index operation with wait=true.
        let (status, body) = raw_json(
            &target,
            reqwest::Method::PUT,
            &format!("collections/{name}/index?wait=true"),
            Some(json!({"field_name": "flag", "field_schema": "bool"})),
        )
        .await;
        assert_eq!(status, 200, "{who}: {body}");
        assert_eq!(body["result"]["status"], "completed", "{who}: {body}");
        assert!(body["result"]["operation_id"].is_u64(), "{who}: {body}");

        client
            .delete_payload_index(&name, "city")
            .await
            .unwrap_or_else(|e| panic!("{who}: delete index: {e}"));
        let schema = info(&client, &who, &name).await.payload_schema;
        let mut fields: Vec<&str> = schema.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["flag", "tenant", "year"], "{who}");
        // Dropping an index that does not exist is not an error.
        client
            .delete_payload_index(&name, "never-indexed")
            .await
            .unwrap_or_else(|e| panic!("{who}: delete missing index: {e}"));

        let message = bad_request_message(
            &who,
            "unknown schema",
            client
                .create_payload_index(&name, "x", &json!("no-such-type"))
                .await,
        );
        assert!(
            message.starts_with(
                "Format error in JSON body: data did not match any variant of untagged enum PayloadFieldSchema"
            ),
            "{who}: {message}"
        );

        let missing = unique_name("missing");
        for err in [
            client
                .create_payload_index(&missing, "city", &json!("keyword"))
                .await
                .unwrap_err(),
            client
                .delete_payload_index(&missing, "city")
                .await
                .unwrap_err(),
        ] {
            assert_eq!(
                err,
                QdrantError::NotFound {
                    message: format!("Not found: Collection `{missing}` doesn't exist!")
                },
                "{who}"
            );
        }
    }
}

#[tokio::test]
async fn aliases_are_created_moved_and_deleted_in_one_request() {
    let test = "aliases_are_created_moved_and_deleted_in_one_request";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let blue = cleanup.track(unique_name("blue"));
        let green = cleanup.track(unique_name("green"));
        client
            .create_collection(&blue, &simple_collection(4))
            .await
            .unwrap();
        client
            .create_collection(&green, &simple_collection(8))
            .await
            .unwrap();
        let (live, old, staged) = (
            unique_name("live"),
            unique_name("old"),
            unique_name("staged"),
        );
        let ours = [live.as_str(), old.as_str(), staged.as_str()];

        client
            .update_aliases(&[
                json!({"create_alias": {"collection_name": blue, "alias_name": live}}),
                json!({"create_alias": {"collection_name": blue, "alias_name": old}}),
                json!({"create_alias": {"collection_name": green, "alias_name": staged}}),
            ])
            .await
            .unwrap_or_else(|e| panic!("{who}: create aliases: {e}"));
        assert_eq!(
            our_aliases(&client, &who, &ours).await,
            pairs(&[(&live, &blue), (&old, &blue), (&staged, &green)]),
            "{who}"
        );
        // A collection can be read through its alias.
        assert_eq!(
            info(&client, &who, &live).await.config["params"]["vectors"]["size"],
            4,
            "{who}"
        );

        // Switch: move `live` to green (create re-points), drop `old`, rename `staged`;
        // deleting an alias that does not exist is not an error.
        let renamed = unique_name("renamed");
        let ours = [
            live.as_str(),
            old.as_str(),
            staged.as_str(),
            renamed.as_str(),
        ];
        client
            .update_aliases(&[
                json!({"create_alias": {"collection_name": green, "alias_name": live}}),
                json!({"delete_alias": {"alias_name": old}}),
                json!({"rename_alias": {"old_alias_name": staged, "new_alias_name": renamed}}),
                json!({"delete_alias": {"alias_name": unique_name("never-existed")}}),
            ])
            .await
            .unwrap_or_else(|e| panic!("{who}: switch aliases: {e}"));
        assert_eq!(
            our_aliases(&client, &who, &ours).await,
            pairs(&[(&live, &green), (&renamed, &green)]),
            "{who}"
        );
        assert_eq!(
            info(&client, &who, &live).await.config["params"]["vectors"]["size"],
            8,
            "{who}"
        );
        let mut of_green = client.collection_aliases(&green).await.unwrap();
        of_green.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
        let mut expected = vec![
            AliasDescription {
                alias_name: live.clone(),
                collection_name: green.clone(),
            },
            AliasDescription {
                alias_name: renamed.clone(),
                collection_name: green.clone(),
            },
        ];
        expected.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
        assert_eq!(of_green, expected, "{who}");
        assert_eq!(client.collection_aliases(&blue).await.unwrap(), [], "{who}");

        // Deleting a collection deletes its aliases.
        assert!(client.delete_collection(&green).await.unwrap(), "{who}");
        assert_eq!(our_aliases(&client, &who, &ours).await, [], "{who}");
    }
}

#[tokio::test]
async fn alias_errors_stop_the_request_without_rollback() {
    let test = "alias_errors_stop_the_request_without_rollback";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let present = cleanup.track(unique_name("present"));
        let other = cleanup.track(unique_name("other"));
        client
            .create_collection(&present, &simple_collection(4))
            .await
            .unwrap();
        client
            .create_collection(&other, &simple_collection(4))
            .await
            .unwrap();
        let missing = unique_name("missing");
        let (first, second) = (unique_name("first"), unique_name("second"));
        let ours = [first.as_str(), second.as_str()];

        // The failing action first: nothing is applied.
        let err = client
            .update_aliases(&[
                json!({"create_alias": {"collection_name": missing, "alias_name": first}}),
                json!({"create_alias": {"collection_name": present, "alias_name": second}}),
            ])
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: format!("Not found: Collection `{missing}` doesn't exist!")
            },
            "{who}"
        );
        assert_eq!(our_aliases(&client, &who, &ours).await, [], "{who}");

        // The failing action last: Qdrant does not roll back the actions before it.
        client
            .update_aliases(&[
                json!({"create_alias": {"collection_name": present, "alias_name": first}}),
                json!({"create_alias": {"collection_name": missing, "alias_name": second}}),
            ])
            .await
            .unwrap_err();
        assert_eq!(
            our_aliases(&client, &who, &ours).await,
            pairs(&[(&first, &present)]),
            "{who}"
        );

        // Renaming a missing alias.
        let ghost = unique_name("ghost");
        let err = client
            .update_aliases(&[
                json!({"rename_alias": {"old_alias_name": ghost, "new_alias_name": second}}),
            ])
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: format!("Not found: Alias {ghost} does not exists!")
            },
            "{who}"
        );

        // An alias named like an existing collection is refused like creating that collection.
        let err = client
            .update_aliases(&[
                json!({"create_alias": {"collection_name": present, "alias_name": other}}),
            ])
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::Conflict {
                message: format!("Wrong input: Collection `{other}` already exists!")
            },
            "{who}"
        );
        assert!(err.is_already_exists(), "{who}: {err:?}");

        // A collection cannot be created under an alias's name.
        let message = bad_request_message(
            &who,
            "collection named like an alias",
            client
                .create_collection(&first, &simple_collection(4))
                .await,
        );
        assert_eq!(
            message,
            format!(
                "Wrong input: Can't create collection with name {first}. Alias with the same name already exists"
            ),
            "{who}"
        );

        // An unknown action does not decode.
        let message = bad_request_message(
            &who,
            "unknown action",
            client
                .update_aliases(&[json!({"swap_alias": {"alias_name": first}})])
                .await,
        );
        assert!(
            message.starts_with(
                "Format error in JSON body: data did not match any variant of untagged enum AliasOperations"
            ),
            "{who}: {message}"
        );
        assert_eq!(
            our_aliases(&client, &who, &ours).await,
            pairs(&[(&first, &present)]),
            "{who}"
        );
    }
}

#[tokio::test]
async fn deleting_a_collection_reports_whether_it_existed() {
    let test = "deleting_a_collection_reports_whether_it_existed";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("delete"));
        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap();
        let alias = unique_name("delete-alias");
        client
            .update_aliases(&[
                json!({"create_alias": {"collection_name": name, "alias_name": alias}}),
            ])
            .await
            .unwrap();

        // Deleting by alias name deletes nothing: Qdrant does not resolve aliases here.
        assert!(!client.delete_collection(&alias).await.unwrap(), "{who}");
        assert!(
            client.collection_info(&name).await.unwrap().is_some(),
            "{who}"
        );

        assert!(client.delete_collection(&name).await.unwrap(), "{who}");
        assert_eq!(client.collection_info(&name).await.unwrap(), None, "{who}");
        assert_eq!(client.collection_info(&alias).await.unwrap(), None, "{who}");
        assert!(
            !client.delete_collection(&name).await.unwrap(),
            "{who}: second delete"
        );

        // Raw: 200 with `result: false` for a collection that does not exist.
        let (status, body) = raw_json(
            &target,
            reqwest::Method::DELETE,
            &format!("collections/{name}"),
            None,
        )
        .await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!(false)),
            "{who}: {body}"
        );
    }
}

#[tokio::test]
async fn read_only_key_cannot_change_collections() {
    let test = "read_only_key_cannot_change_collections";
    for target in targets(test).await {
        let who = target.describe();
        let Some(read_only) = target.read_only_api_key() else {
            println!("[{test}] skipped for {who}: QDRANT_READ_ONLY_API_KEY is not set");
            continue;
        };
        let client = target.client();
        let reader = target.client_with_key(Some(&read_only));
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("read-only"));
        let forbidden = QdrantError::Unauthorized {
            status: 403,
            message: READ_ONLY_DENIED_MESSAGE.to_owned(),
        };

        let err = reader
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap_err();
        assert_eq!(err, forbidden, "{who}: create");
        assert_eq!(client.collection_info(&name).await.unwrap(), None, "{who}");

        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap();
        // Reads are allowed.
        assert!(
            reader.collection_info(&name).await.unwrap().is_some(),
            "{who}"
        );
        reader.list_aliases().await.unwrap();

        let alias = unique_name("read-only-alias");
        let results = [
            (
                "PATCH",
                reader
                    .update_collection(&name, &json!({"hnsw_config": {"m": 8}}))
                    .await,
            ),
            (
                "PUT index",
                reader
                    .create_payload_index(&name, "city", &json!("keyword"))
                    .await,
            ),
            (
                "DELETE index",
                reader.delete_payload_index(&name, "city").await,
            ),
            (
                "POST aliases",
                reader
                    .update_aliases(&[
                        json!({"create_alias": {"collection_name": name, "alias_name": alias}}),
                    ])
                    .await,
            ),
            ("DELETE", reader.delete_collection(&name).await.map(drop)),
        ];
        for (what, result) in results {
            assert_eq!(result, Err(forbidden.clone()), "{who}: {what}");
        }
        let info = info(&client, &who, &name).await;
        assert_eq!(info.config["hnsw_config"]["m"], 16, "{who}: PATCH applied");
        assert!(info.payload_schema.is_empty(), "{who}: index created");
        assert_eq!(
            our_aliases(&client, &who, &[alias.as_str()]).await,
            [],
            "{who}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Shard placement, cluster operations and peers: fake and real (what one node can do)
// ---------------------------------------------------------------------------------------------

/// The collection's replicas as (shard, peer, state), and the answering peer, read through the
/// client; fails the test when the call fails.
async fn replicas(client: &QdrantClient, who: &str, name: &str) -> Vec<(u32, u64, String)> {
    client
        .collection_cluster_info(name)
        .await
        .unwrap_or_else(|e| panic!("{who}: GET /collections/{name}/cluster: {e}"))
        .replicas()
        .into_iter()
        .map(|(shard, peer, state)| (shard, peer, state.to_owned()))
        .collect()
}

/// A peer id the cluster does not know (cluster mode), else an arbitrary one.
fn unknown_peer(cluster: &ClusterInfo) -> u64 {
    (7_000_001..)
        .find(|id| !cluster.peers.contains_key(id) && cluster.peer_id != Some(*id))
        .unwrap_or(u64::MAX)
}

fn move_shard(shard: u32, from: u64, to: u64) -> Value {
    json!({"move_shard": {"shard_id": shard, "from_peer_id": from, "to_peer_id": to}})
}

fn replicate_shard(shard: u32, from: u64, to: u64) -> Value {
    json!({"replicate_shard": {"shard_id": shard, "from_peer_id": from, "to_peer_id": to}})
}

fn drop_replica(shard: u32, peer: u64) -> Value {
    json!({"drop_replica": {"shard_id": shard, "peer_id": peer}})
}

fn abort_transfer(shard: u32, from: u64, to: u64) -> Value {
    json!({"abort_transfer": {"shard_id": shard, "from_peer_id": from, "to_peer_id": to}})
}

#[tokio::test]
async fn collection_cluster_info_has_qdrants_shape() {
    let test = "collection_cluster_info_has_qdrants_shape";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("placement"));
        client
            .create_collection(
                &name,
                &json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2}),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: create: {e}"));
        assert!(
            client.collections().await.unwrap().contains(&name),
            "{who}: GET /collections does not list {name}"
        );

        let cluster = client.cluster_info().await.unwrap();
        let info = client
            .collection_cluster_info(&name)
            .await
            .unwrap_or_else(|e| panic!("{who}: GET /collections/{name}/cluster: {e}"));
        if let Some(peer_id) = cluster.peer_id {
            assert_eq!(info.peer_id, peer_id, "{who}: answering peer");
        }
        assert_eq!(info.shard_count, 2, "{who}: {info:?}");
        assert!(info.shard_transfers.is_empty(), "{who}: {info:?}");
        assert_eq!(info.resharding_operations, None, "{who}");
        // Replication factor 1: each shard has exactly one replica, somewhere, Active.
        let all = info.replicas();
        assert_eq!(
            all.iter().map(|(shard, _, _)| *shard).collect::<Vec<_>>(),
            [0, 1],
            "{who}: {info:?}"
        );
        assert!(
            all.iter().all(|(_, _, state)| *state == "Active"),
            "{who}: {info:?}"
        );
        assert!(
            info.local_shards.iter().all(|s| s.points_count == 0),
            "{who}: {info:?}"
        );
        if cluster.peers.len() <= 1 {
            // One node holds everything.
            assert_eq!(info.local_shards.len(), 2, "{who}: {info:?}");
            assert!(info.remote_shards.is_empty(), "{who}: {info:?}");
        }

        // The raw reply.
        let (status, body) = raw_json(
            &target,
            reqwest::Method::GET,
            &format!("collections/{name}/cluster"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{who}: {body}");
        let result = &body["result"];
        assert!(result["peer_id"].is_u64(), "{who}: {body}");
        assert_eq!(result["shard_count"], 2, "{who}: {body}");
        for key in ["local_shards", "remote_shards", "shard_transfers"] {
            assert!(result[key].is_array(), "{who}: {key} in {body}");
        }
        let local = result["local_shards"].as_array().unwrap();
        if let Some(first) = local.first() {
            let mut keys: Vec<&str> = first
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            assert_eq!(keys, ["points_count", "shard_id", "state"], "{who}: {body}");
        }

        // A missing collection.
        let missing = unique_name("missing");
        let err = client.collection_cluster_info(&missing).await.unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: format!("Not found: Collection `{missing}` doesn't exist!")
            },
            "{who}"
        );

        assert!(client.delete_collection(&name).await.unwrap(), "{who}");
        assert!(
            !client.collections().await.unwrap().contains(&name),
            "{who}: still listed after delete"
        );
    }
}

#[tokio::test]
async fn removing_peers_is_refused_or_accepted_like_qdrant() {
    let test = "removing_peers_is_refused_or_accepted_like_qdrant";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let cluster = client.cluster_info().await.unwrap();
        let unknown = unknown_peer(&cluster);

        // A peer id that is not a u64: 404 with the path extractor's message in plain text.
        let (status, body) =
            raw_json(&target, reqwest::Method::DELETE, "cluster/peer/three", None).await;
        assert_eq!(status, 404, "{who}: {body}");
        assert_eq!(body, "can not parse \"three\" to a u64", "{who}");

        // An unknown peer: a no-op that succeeds in cluster mode.
        let result = client.remove_peer(unknown).await;
        if cluster.is_enabled() {
            result.unwrap_or_else(|e| panic!("{who}: removing unknown peer {unknown}: {e}"));
            let after = client.cluster_info().await.unwrap();
            assert_eq!(
                after.peers.keys().collect::<Vec<_>>(),
                cluster.peers.keys().collect::<Vec<_>>(),
                "{who}: the peers changed"
            );
        } else {
            assert_eq!(
                bad_request_message(&who, "remove peer outside cluster mode", result),
                "Bad request: Distributed mode disabled.",
                "{who}"
            );
        }

        // A peer holding a replica of our collection: refused, and still there.
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("remove-peer"));
        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap();
        let info = client.collection_cluster_info(&name).await.unwrap();
        // Never send this DELETE unless the answering peer provably holds a replica.
        assert!(
            !info.local_shards.is_empty(),
            "{who}: the answering peer holds no replica of {name}: {info:?}"
        );
        let holder = info.peer_id;
        assert_eq!(
            bad_request_message(
                &who,
                "remove a peer with shards",
                client.remove_peer(holder).await
            ),
            format!("Bad request: Cannot remove peer {holder} as there are shards on it"),
            "{who}"
        );
        if cluster.is_enabled() {
            assert!(
                client
                    .cluster_info()
                    .await
                    .unwrap()
                    .peers
                    .contains_key(&holder),
                "{who}: peer {holder} is gone"
            );
        }

        // The read-only key may not remove peers.
        if let Some(read_only) = target.read_only_api_key() {
            let err = target
                .client_with_key(Some(&read_only))
                .remove_peer(unknown)
                .await
                .unwrap_err();
            assert_eq!(
                err,
                QdrantError::Unauthorized {
                    status: 403,
                    message: READ_ONLY_DENIED_MESSAGE.to_owned()
                },
                "{who}"
            );
        }
    }
}

#[tokio::test]
async fn invalid_cluster_operations_are_refused_with_qdrants_messages() {
    let test = "invalid_cluster_operations_are_refused_with_qdrants_messages";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let cluster = client.cluster_info().await.unwrap();
        let unknown = unknown_peer(&cluster);
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("cluster-ops"));
        client
            .create_collection(
                &name,
                &json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1}),
            )
            .await
            .unwrap();
        let before = replicas(&client, &who, &name).await;
        let &[(shard, holder, _)] = before.as_slice() else {
            panic!("{who}: one shard with one replica expected: {before:?}");
        };
        let refuse = |what: &'static str, op: Value| {
            let client = client.clone();
            let name = name.clone();
            let who = who.clone();
            async move {
                bad_request_message(
                    &who,
                    what,
                    client.update_collection_cluster(&name, &op).await,
                )
            }
        };

        // Decoding and validation come first, in any mode.
        let message = refuse(
            "unknown operation",
            json!({"teleport_shard": {"shard_id": 0}}),
        )
        .await;
        assert!(
            message.starts_with(
                "Format error in JSON body: data did not match any variant of untagged enum ClusterOperations"
            ),
            "{who}: {message}"
        );
        assert_eq!(
            refuse("move to itself", move_shard(shard, holder, holder)).await,
            format!(
                "Validation error in JSON body: [move_shard.to_peer_id: cannot transfer shard to itself, \"to_peer_id\" must be different than {holder} in \"from_peer_id\"]"
            ),
            "{who}"
        );

        if !cluster.is_enabled() {
            assert_eq!(
                refuse(
                    "move outside cluster mode",
                    move_shard(shard, holder, unknown)
                )
                .await,
                "Bad request: Distributed mode disabled",
                "{who}"
            );
            continue;
        }

        for (what, op, expected) in [
            (
                "move to an unknown peer",
                move_shard(shard, holder, unknown),
                format!("Bad request: Peer {unknown} does not exist"),
            ),
            (
                "replicate to an unknown peer",
                replicate_shard(shard, holder, unknown),
                format!("Bad request: Peer {unknown} does not exist"),
            ),
            (
                "move a shard that does not exist",
                move_shard(99, holder, unknown),
                format!("Bad request: Shard 99 of {name} does not exist"),
            ),
            (
                "drop the only replica",
                drop_replica(shard, holder),
                format!(
                    "Bad request: Shard {shard} must have at least one active replica after removing {holder}"
                ),
            ),
            (
                "drop a replica on an unknown peer",
                drop_replica(shard, unknown),
                format!("Bad request: Peer {unknown} does not exist"),
            ),
            (
                "drop a replica of a shard that does not exist",
                drop_replica(99, holder),
                format!("Bad request: Shard 99 of {name} does not exist"),
            ),
        ] {
            assert_eq!(refuse(what, op).await, expected, "{who}: {what}");
        }

        // Aborting a transfer that does not run: 404.
        let err = client
            .update_collection_cluster(&name, &abort_transfer(shard, holder, unknown))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: format!(
                    "Not found: Shard transfer {holder} -> {unknown} for collection {name}:{shard} does not exist"
                )
            },
            "{who}"
        );

        // A missing collection.
        let missing = unique_name("missing");
        let err = client
            .update_collection_cluster(&missing, &move_shard(0, holder, unknown))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: format!("Not found: Collection `{missing}` doesn't exist!")
            },
            "{who}"
        );

        // Nothing changed.
        assert_eq!(replicas(&client, &who, &name).await, before, "{who}");
        assert!(
            client
                .collection_cluster_info(&name)
                .await
                .unwrap()
                .shard_transfers
                .is_empty(),
            "{who}"
        );

        // The read-only key may not change the placement.
        if let Some(read_only) = target.read_only_api_key() {
            let reader = target.client_with_key(Some(&read_only));
            reader.collection_cluster_info(&name).await.unwrap();
            let err = reader
                .update_collection_cluster(&name, &move_shard(shard, holder, unknown))
                .await
                .unwrap_err();
            assert_eq!(
                err,
                QdrantError::Unauthorized {
                    status: 403,
                    message: READ_ONLY_DENIED_MESSAGE.to_owned()
                },
                "{who}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fake only
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cluster_info_decodes_the_cluster_state() {
    let fake = fake(
        "cluster_info_decodes_the_cluster_state",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    let peers = vec![
        (11, "http://qdrant-0.qdrant-headless:6335/".to_owned()),
        (
            12_345_678_901_234,
            "http://qdrant-1.qdrant-headless:6335/".to_owned(),
        ),
        (u64::MAX, "http://qdrant-2.qdrant-headless:6335/".to_owned()),
    ];
    fake.set_cluster(ClusterState {
        peer_id: 12_345_678_901_234,
        peers: peers.clone(),
        leader: Some(11),
        role: Some(RaftRole::Follower),
        term: 7,
        commit: 42,
        pending_operations: 3,
    });
    let info: ClusterInfo = client.cluster_info().await.unwrap();
    assert_eq!(info.status, "enabled");
    assert_eq!(info.peer_id, Some(12_345_678_901_234));
    let got: Vec<(u64, String)> = info
        .peers
        .iter()
        .map(|(id, p)| (*id, p.uri.clone()))
        .collect();
    assert_eq!(got, peers);
    let raft = info.raft_info.unwrap();
    assert_eq!(
        (raft.term, raft.commit, raft.pending_operations),
        (7, 42, 3)
    );
    assert_eq!(raft.leader, Some(11));
    assert_eq!(raft.role, Some(RaftRole::Follower));
    assert!(raft.is_voter);
    assert!(matches!(
        info.consensus_thread_status,
        Some(reconcile_lib::qdrant::ConsensusThreadStatus::Working { .. })
    ));

    // During an election: no leader, role Candidate / PreCandidate.
    for role in [
        RaftRole::Candidate,
        RaftRole::PreCandidate,
        RaftRole::Leader,
    ] {
        fake.set_cluster(ClusterState {
            leader: None,
            role: Some(role),
            ..ClusterState::default()
        });
        let raft = client.cluster_info().await.unwrap().raft_info.unwrap();
        assert_eq!((raft.leader, raft.role), (None, Some(role)));
    }
    fake.set_cluster(ClusterState {
        leader: None,
        role: None,
        ..ClusterState::default()
    });
    let raft = client.cluster_info().await.unwrap().raft_info.unwrap();
    assert_eq!((raft.leader, raft.role), (None, None));

    fake.set_cluster_disabled();
    let info = client.cluster_info().await.unwrap();
    assert_eq!(info.status, "disabled");
    assert!(!info.is_enabled());
    assert_eq!((info.peer_id, info.raft_info), (None, None));
    assert!(info.peers.is_empty());
}

#[tokio::test]
async fn readyz_reports_unready_shards_as_transient() {
    let fake = fake(
        "readyz_reports_unready_shards_as_transient",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    fake.set_ready(false);
    let err = client.readyz().await.unwrap_err();
    assert_eq!(
        err,
        QdrantError::Server {
            status: 503,
            message: "some shards are not ready".to_owned()
        }
    );
    assert!(err.is_transient());
    // Liveness is independent of readiness.
    client.healthz().await.unwrap();
    client.livez().await.unwrap();
    fake.set_ready(true);
    client.readyz().await.unwrap();
}

#[tokio::test]
async fn api_key_header_is_sent_except_to_health_endpoints() {
    let fake = fake(
        "api_key_header_is_sent_except_to_health_endpoints",
        FakeQdrantOptions {
            api_key: Some(FAKE_KEY.to_owned()),
            ..FakeQdrantOptions::default()
        },
    )
    .await;
    let client = client_for(fake.url(), Some(FAKE_KEY));
    client.cluster_info().await.unwrap();
    client.readyz().await.unwrap();
    client.healthz().await.unwrap();
    client.version().await.unwrap();

    let recorded = fake.recorded();
    let paths: Vec<&str> = recorded.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/cluster", "/readyz", "/healthz", "/"]);
    assert_eq!(recorded[0].api_key.as_deref(), Some(FAKE_KEY));
    for r in &recorded[1..] {
        assert_eq!(r.api_key, None, "key sent to {}", r.path);
    }
    assert!(recorded.iter().all(|r| r.authorization.is_none()));
    assert!(recorded.iter().all(|r| r.method == reqwest::Method::GET));
    assert_eq!(
        fake.requests()[0],
        (reqwest::Method::GET, "/cluster".to_owned())
    );
}

#[tokio::test]
async fn read_only_key_can_read_the_cluster() {
    let fake = fake(
        "read_only_key_can_read_the_cluster",
        FakeQdrantOptions {
            api_key: Some(FAKE_KEY.to_owned()),
            read_only_api_key: Some("read-only".to_owned()),
            ..FakeQdrantOptions::default()
        },
    )
    .await;
    let info = client_for(fake.url(), Some("read-only"))
        .cluster_info()
        .await
        .unwrap();
    assert!(info.is_enabled());
    // Keys can change at runtime (rotation).
    fake.set_api_key(Some("rotated"));
    let err = client_for(fake.url(), Some(FAKE_KEY))
        .cluster_info()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    client_for(fake.url(), Some("rotated"))
        .cluster_info()
        .await
        .unwrap();
}

#[tokio::test]
async fn injected_failures_map_to_typed_errors() {
    let fake = fake(
        "injected_failures_map_to_typed_errors",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    let cases: [(u16, QdrantError, bool, &str); 9] = [
        (
            500,
            QdrantError::Server {
                status: 500,
                message: "Service internal error: injected failure".into(),
            },
            true,
            "QdrantServerError",
        ),
        (
            503,
            QdrantError::Server {
                status: 503,
                message: "Shard temporarily unavailable: injected failure".into(),
            },
            true,
            "QdrantServerError",
        ),
        (
            429,
            QdrantError::Server {
                status: 429,
                message: "Rate limiting exceeded: injected failure".into(),
            },
            true,
            "QdrantServerError",
        ),
        (
            408,
            QdrantError::Server {
                status: 408,
                message: "Timeout: injected failure".into(),
            },
            true,
            "QdrantServerError",
        ),
        (
            404,
            QdrantError::NotFound {
                message: "Not found: injected failure".into(),
            },
            false,
            "QdrantNotFound",
        ),
        (
            400,
            QdrantError::BadRequest {
                message: "Bad request: injected failure".into(),
            },
            false,
            "QdrantBadRequest",
        ),
        (
            409,
            QdrantError::Conflict {
                message: "Wrong input: injected failure".into(),
            },
            false,
            "QdrantConflict",
        ),
        (
            403,
            QdrantError::Unauthorized {
                status: 403,
                message: "Forbidden: injected failure".into(),
            },
            false,
            "QdrantUnauthorized",
        ),
        (
            401,
            QdrantError::Unauthorized {
                status: 401,
                message: WRONG_KEY_MESSAGE.into(),
            },
            false,
            "QdrantUnauthorized",
        ),
    ];
    for (status, expected, transient, reason) in cases {
        fake.fail_next("/cluster", status, 1);
        let err = client.cluster_info().await.unwrap_err();
        assert_eq!(err, expected, "injected {status}");
        assert_eq!(err.is_transient(), transient, "injected {status}");
        assert_eq!(err.reason(), reason, "injected {status}");
        assert_eq!(err.status(), Some(status));
    }
    // Consumed: the next call succeeds.
    client.cluster_info().await.unwrap();

    // `times` counts, and only matching paths are hit.
    fake.fail_next("/cluster", 500, 2);
    client.readyz().await.unwrap();
    assert!(client.cluster_info().await.is_err());
    assert!(client.cluster_info().await.is_err());
    client.cluster_info().await.unwrap();

    // A 5xx that is not Qdrant's envelope (e.g. from a proxy) is still transient.
    fake.fail_next("/readyz", 502, 1);
    let err = client.readyz().await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(err.is_transient());
}

#[tokio::test]
async fn slow_server_times_out_as_unreachable() {
    let fake = fake(
        "slow_server_times_out_as_unreachable",
        FakeQdrantOptions::default(),
    )
    .await;
    fake.delay_next("/cluster", Duration::from_secs(5), 1);
    let conn = QdrantConnection::new(fake.url()).with_timeout(Duration::from_millis(200));
    let client = QdrantClient::new(&conn).unwrap();
    let err = client.cluster_info().await.unwrap_err();
    assert!(
        matches!(err, QdrantError::Unreachable { .. }),
        "expected Unreachable, got {err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn fake_collection_helpers_show_and_change_state() {
    let fake = fake(
        "fake_collection_helpers_show_and_change_state",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    assert_eq!(fake.collection("c"), None);
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    assert_eq!(fake.collection_names(), ["c"]);

    // `collection` is what GET returns.
    let stored = fake.collection("c").unwrap();
    let raw: Value = plain_http()
        .get(fake.url().join("collections/c").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["result"], stored);
    assert_eq!(stored["segments_count"], 2);
    assert_eq!(stored["update_queue"], json!({"length": 0}));

    fake.set_points_count("c", 1234);
    let info = client.collection_info("c").await.unwrap().unwrap();
    assert_eq!(info.points_count, Some(1234));

    // A change behind the operator's back shows, and later updates merge into it.
    fake.edit_collection_config("c", |config| {
        config["hnsw_config"]["m"] = json!(64);
        config["params"]["replication_factor"] = json!(3);
    });
    client
        .update_collection("c", &json!({"hnsw_config": {"ef_construct": 128}}))
        .await
        .unwrap();
    let config = client.collection_info("c").await.unwrap().unwrap().config;
    assert_eq!(config["hnsw_config"]["m"], 64);
    assert_eq!(config["hnsw_config"]["ef_construct"], 128);
    assert_eq!(config["params"]["replication_factor"], 3);

    client
        .create_collection("d", &simple_collection(4))
        .await
        .unwrap();
    client
        .update_aliases(&[
            json!({"create_alias": {"collection_name": "d", "alias_name": "b"}}),
            json!({"create_alias": {"collection_name": "c", "alias_name": "a"}}),
        ])
        .await
        .unwrap();
    assert_eq!(
        fake.aliases(),
        [
            ("a".to_owned(), "c".to_owned()),
            ("b".to_owned(), "d".to_owned())
        ]
    );
    // Listed by collection, then alias.
    let listed: Vec<String> = client
        .list_aliases()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    assert_eq!(listed, ["a", "b"]);

    // Index operations are sent with wait=true and recorded.
    fake.clear_requests();
    client
        .create_payload_index("a", "city", &json!("keyword"))
        .await
        .unwrap();
    client.delete_payload_index("a", "city").await.unwrap();
    let recorded = fake.recorded();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        (recorded[0].method.as_str(), recorded[0].path.as_str()),
        ("PUT", "/collections/a/index")
    );
    assert_eq!(
        (recorded[1].method.as_str(), recorded[1].path.as_str()),
        ("DELETE", "/collections/a/index/city")
    );
    assert!(
        recorded
            .iter()
            .all(|r| r.query.as_deref() == Some("wait=true"))
    );
    // Through the alias, on the collection.
    assert!(
        fake.collection("c").unwrap()["payload_schema"]
            .as_object()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
#[should_panic(expected = "no collection \"nope\"")]
async fn fake_set_points_count_on_a_missing_collection_panics() {
    let fake = fake(
        "fake_set_points_count_on_a_missing_collection_panics",
        FakeQdrantOptions::default(),
    )
    .await;
    fake.set_points_count("nope", 1);
}

#[tokio::test]
async fn fake_default_shard_number_follows_the_cluster() {
    let fake = fake(
        "fake_default_shard_number_follows_the_cluster",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    fake.set_cluster(ClusterState {
        peers: vec![
            (1, "http://qdrant-0:6335/".to_owned()),
            (2, "http://qdrant-1:6335/".to_owned()),
            (3, "http://qdrant-2:6335/".to_owned()),
        ],
        ..ClusterState::default()
    });
    client
        .create_collection("three", &simple_collection(4))
        .await
        .unwrap();
    let info = client.collection_info("three").await.unwrap().unwrap();
    assert_eq!(info.config["params"]["shard_number"], 3);
    assert_eq!(info.segments_count, Some(6));

    client
        .create_collection(
            "custom",
            &json!({"vectors": {"size": 4, "distance": "Dot"}, "sharding_method": "custom"}),
        )
        .await
        .unwrap();
    let info = client.collection_info("custom").await.unwrap().unwrap();
    assert_eq!(info.config["params"]["shard_number"], 1);
    assert_eq!(info.config["params"]["sharding_method"], "custom");
    assert_eq!(info.segments_count, Some(0));

    fake.set_cluster_disabled();
    client
        .create_collection(
            "single",
            &json!({"vectors": {"size": 4, "distance": "Dot"},
                    "optimizers_config": {"default_segment_number": 3}}),
        )
        .await
        .unwrap();
    let info = client.collection_info("single").await.unwrap().unwrap();
    assert_eq!(info.config["params"]["shard_number"], 1);
    assert_eq!(info.segments_count, Some(3));
}

#[tokio::test]
async fn fake_routes_collections_like_qdrant() {
    let fake = fake(
        "fake_routes_collections_like_qdrant",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    let http = plain_http();

    // `/collections/aliases` is the alias API for POST only; other methods address the
    // collection named `aliases`.
    assert_eq!(client.collection_info("aliases").await.unwrap(), None);
    client
        .create_collection("aliases", &simple_collection(4))
        .await
        .unwrap();
    assert!(client.collection_info("aliases").await.unwrap().is_some());
    let names: Value = http
        .get(fake.url().join("collections").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        names["result"],
        json!({"collections": [{"name": "aliases"}]})
    );
    assert!(client.delete_collection("aliases").await.unwrap());

    // A known path with a method Qdrant does not serve: actix's empty 404.
    let resp = http
        .post(fake.url().join("collections/c").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), "");

    // Aliases of a collection that does not exist: an empty list, not an error.
    assert_eq!(client.collection_aliases("nothing").await.unwrap(), []);
}

#[tokio::test]
async fn fake_merges_sparse_vectors_strict_mode_and_metadata_like_qdrant() {
    let fake = fake(
        "fake_merges_sparse_vectors_strict_mode_and_metadata_like_qdrant",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    client
        .create_collection(
            "c",
            &json!({
                "vectors": {"dense": {"size": 4, "distance": "Dot",
                                      "quantization_config": {"binary": {"always_ram": true}}}},
                "sparse_vectors": {"text": {"index": {"on_disk": true}}},
                "metadata": {"owner": "team-a", "tier": "gold"},
            }),
        )
        .await
        .unwrap();
    client
        .update_collection(
            "c",
            &json!({
                "sparse_vectors": {"text": {"modifier": "idf", "index": {"full_scan_threshold": 500}}},
                "strict_mode_config": {"enabled": true},
                "metadata": {"tier": null, "cost_center": 7},
                "vectors": {"dense": {"quantization_config": "Disabled"}},
            }),
        )
        .await
        .unwrap();
    client
        .update_collection("c", &json!({"strict_mode_config": {"max_timeout": 10}}))
        .await
        .unwrap();
    let config = client.collection_info("c").await.unwrap().unwrap().config;
    assert_eq!(
        config["params"]["sparse_vectors"],
        json!({"text": {"modifier": "idf", "index": {"on_disk": true, "full_scan_threshold": 500}}})
    );
    assert_eq!(
        config["params"]["vectors"],
        json!({"dense": {"size": 4, "distance": "Dot"}})
    );
    assert_eq!(
        config["strict_mode_config"],
        json!({"enabled": true, "max_timeout": 10})
    );
    assert_eq!(
        config["metadata"],
        json!({"owner": "team-a", "cost_center": 7})
    );

    let err = client
        .update_collection(
            "c",
            &json!({"sparse_vectors": {"nope": {"modifier": "idf"}}}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        QdrantError::BadRequest {
            message: "Wrong input: Not existing vector name error: nope".into()
        }
    );
    // Dense and sparse vector names must differ; an empty sparse name is refused.
    for (body, message) in [
        (
            json!({"vectors": {"x": {"size": 4, "distance": "Dot"}}, "sparse_vectors": {"x": {}}}),
            "Wrong input: Dense and sparse vector names must be unique - duplicate found with 'x'",
        ),
        (
            json!({"sparse_vectors": {"": {}}}),
            "Wrong input: Sparse vector name cannot be empty",
        ),
        (
            json!({"vectors": {"a/b": {"size": 4, "distance": "Dot"}}}),
            "Wrong input: Invalid dense vector name `a/b`: vector name cannot contain \"/\" char",
        ),
    ] {
        let err = client.create_collection("e", &body).await.unwrap_err();
        assert_eq!(
            err,
            QdrantError::BadRequest {
                message: message.to_owned()
            }
        );
    }
    assert_eq!(client.collection_info("e").await.unwrap(), None);
}

/// A fake whose cluster has peers 1, 2 and 3; it answers as peer 1.
async fn three_peer_fake(test: &str) -> (FakeQdrant, QdrantClient) {
    let fake = fake(test, FakeQdrantOptions::default()).await;
    fake.set_peers(vec![
        (1, "http://qdrant-0.qdrant-headless:6335/".to_owned()),
        (2, "http://qdrant-1.qdrant-headless:6335/".to_owned()),
        (3, "http://qdrant-2.qdrant-headless:6335/".to_owned()),
    ]);
    let client = client_for(fake.url(), None);
    (fake, client)
}

fn placed(list: &[(u32, &[(u64, &str)])]) -> std::collections::BTreeMap<u32, Vec<(u64, String)>> {
    list.iter()
        .map(|(shard, replicas)| {
            let replicas = replicas
                .iter()
                .map(|(peer, state)| (*peer, (*state).to_owned()))
                .collect();
            (*shard, replicas)
        })
        .collect()
}

fn bad_request(message: impl Into<String>) -> QdrantError {
    QdrantError::BadRequest {
        message: message.into(),
    }
}

#[tokio::test]
async fn fake_places_shards_round_robin_over_the_peers() {
    let (fake, client) = three_peer_fake("fake_places_shards_round_robin_over_the_peers").await;
    client
        .create_collection(
            "c",
            &json!({"vectors": {"size": 4, "distance": "Dot"},
                    "shard_number": 3, "replication_factor": 2}),
        )
        .await
        .unwrap();
    assert_eq!(
        fake.placement("c"),
        placed(&[
            (0, &[(1, "Active"), (2, "Active")]),
            (1, &[(1, "Active"), (3, "Active")]),
            (2, &[(2, "Active"), (3, "Active")]),
        ])
    );
    // Peer 1's point of view.
    fake.set_points_count("c", 10);
    let info: CollectionClusterInfo = client.collection_cluster_info("c").await.unwrap();
    assert_eq!((info.peer_id, info.shard_count), (1, 3));
    let local: Vec<(u32, u64, &str)> = info
        .local_shards
        .iter()
        .map(|s| (s.shard_id, s.points_count, s.state.as_str()))
        .collect();
    assert_eq!(local, [(0, 4, "Active"), (1, 3, "Active")]);
    let remote: Vec<(u32, u64)> = info
        .remote_shards
        .iter()
        .map(|s| (s.shard_id, s.peer_id))
        .collect();
    assert_eq!(remote, [(0, 2), (1, 3), (2, 2), (2, 3)]);
    assert!(info.shard_transfers.is_empty());

    // Another peer's point of view: same placement, other split.
    fake.set_cluster(ClusterState {
        peer_id: 3,
        ..client_cluster_state(&client).await
    });
    let info = client.collection_cluster_info("c").await.unwrap();
    assert_eq!(info.peer_id, 3);
    let local: Vec<u32> = info.local_shards.iter().map(|s| s.shard_id).collect();
    assert_eq!(local, [1, 2]);
    assert_eq!(info.remote_shards.len(), 4);

    // Defaults: one shard per peer, one replica; a replication factor above the peer count is
    // capped; custom sharding creates no shard.
    client
        .create_collection("d", &simple_collection(4))
        .await
        .unwrap();
    assert_eq!(
        fake.placement("d"),
        placed(&[
            (0, &[(1, "Active")]),
            (1, &[(2, "Active")]),
            (2, &[(3, "Active")]),
        ])
    );
    client
        .create_collection(
            "e",
            &json!({"vectors": {"size": 4, "distance": "Dot"},
                    "shard_number": 1, "replication_factor": 5}),
        )
        .await
        .unwrap();
    assert_eq!(
        fake.placement("e"),
        placed(&[(0, &[(1, "Active"), (2, "Active"), (3, "Active")])])
    );
    client
        .create_collection(
            "f",
            &json!({"vectors": {"size": 4, "distance": "Dot"}, "sharding_method": "custom"}),
        )
        .await
        .unwrap();
    let info = client.collection_cluster_info("f").await.unwrap();
    assert_eq!(info.shard_count, 0);
    assert!(info.replicas().is_empty());
}

/// The current cluster state of the fake, read back through `GET /cluster`.
async fn client_cluster_state(client: &QdrantClient) -> ClusterState {
    let info = client.cluster_info().await.unwrap();
    let raft = info.raft_info.unwrap();
    ClusterState {
        peer_id: info.peer_id.unwrap(),
        peers: info.peers.into_iter().map(|(id, p)| (id, p.uri)).collect(),
        leader: raft.leader,
        role: raft.role,
        term: raft.term,
        commit: raft.commit,
        pending_operations: raft.pending_operations,
    }
}

/// TESTING.md's sequence: a peer with shards cannot be removed; after its shard moved away
/// and the transfer finished, it can.
#[tokio::test]
async fn fake_move_shard_then_remove_the_peer() {
    let (fake, client) = three_peer_fake("fake_move_shard_then_remove_the_peer").await;
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    assert_eq!(fake.placement("c")[&2], [(3, "Active".to_owned())]);

    let refused = bad_request("Bad request: Cannot remove peer 3 as there are shards on it");
    assert_eq!(client.remove_peer(3).await, Err(refused.clone()));

    client
        .update_collection_cluster("c", &move_shard(2, 3, 1))
        .await
        .unwrap();
    // In progress: visible in shard_transfers, the target replica in Recovery (snapshot, the
    // default method), the source still Active; the peer still cannot be removed.
    let info = client.collection_cluster_info("c").await.unwrap();
    assert_eq!(
        info.shard_transfers,
        [ShardTransferInfo {
            shard_id: 2,
            to_shard_id: None,
            from: 3,
            to: 1,
            sync: false,
            method: Some("snapshot".to_owned()),
            comment: None,
        }]
    );
    assert_eq!(
        fake.placement("c")[&2],
        [(1, "Recovery".to_owned()), (3, "Active".to_owned())]
    );
    assert_eq!(client.remove_peer(3).await, Err(refused));
    // The same transfer again conflicts with the running one.
    assert_eq!(
        client
            .update_collection_cluster("c", &move_shard(2, 3, 1))
            .await,
        Err(bad_request(
            "Bad request: Shard 2 is already involved in transfer 3 -> 1"
        ))
    );

    assert_eq!(fake.complete_transfers(), 1);
    assert_eq!(fake.complete_transfers(), 0);
    let info = client.collection_cluster_info("c").await.unwrap();
    assert!(info.shard_transfers.is_empty());
    assert_eq!(
        info.replicas(),
        [(0, 1, "Active"), (1, 2, "Active"), (2, 1, "Active")]
    );

    client.remove_peer(3).await.unwrap();
    let peers: Vec<u64> = client
        .cluster_info()
        .await
        .unwrap()
        .peers
        .into_keys()
        .collect();
    assert_eq!(peers, [1, 2]);
    assert_eq!(
        client
            .update_collection_cluster("c", &move_shard(0, 1, 3))
            .await,
        Err(bad_request("Bad request: Peer 3 does not exist"))
    );
    let recorded = fake.recorded();
    assert!(
        recorded.iter().any(|r| r.method == reqwest::Method::DELETE
            && r.path == "/cluster/peer/3"
            && r.query.is_none()),
        "remove_peer sent force or another path: {recorded:?}"
    );
}

#[tokio::test]
async fn fake_replicate_then_drop_replica() {
    let (fake, client) = three_peer_fake("fake_replicate_then_drop_replica").await;
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    let op = json!({"replicate_shard": {"shard_id": 0, "from_peer_id": 1, "to_peer_id": 2,
                                        "method": "stream_records"}});
    client.update_collection_cluster("c", &op).await.unwrap();
    let info = client.collection_cluster_info("c").await.unwrap();
    assert_eq!(info.shard_transfers.len(), 1);
    assert!(info.shard_transfers[0].sync);
    assert_eq!(
        info.shard_transfers[0].method.as_deref(),
        Some("stream_records")
    );
    assert_eq!(
        fake.placement("c")[&0],
        [(1, "Active".to_owned()), (2, "Partial".to_owned())]
    );
    fake.complete_transfers();
    // A replication keeps the source.
    assert_eq!(
        fake.placement("c")[&0],
        [(1, "Active".to_owned()), (2, "Active".to_owned())]
    );

    for (op, expected) in [
        (
            drop_replica(0, 3),
            "Bad request: Peer 3 has no replica of shard 0",
        ),
        (drop_replica(0, 9), "Bad request: Peer 9 does not exist"),
        (
            drop_replica(7, 1),
            "Bad request: Shard 7 of c does not exist",
        ),
    ] {
        assert_eq!(
            client.update_collection_cluster("c", &op).await,
            Err(bad_request(expected)),
            "{op}"
        );
    }
    client
        .update_collection_cluster("c", &drop_replica(0, 1))
        .await
        .unwrap();
    assert_eq!(fake.placement("c")[&0], [(2, "Active".to_owned())]);
    assert_eq!(
        client
            .update_collection_cluster("c", &drop_replica(0, 2))
            .await,
        Err(bad_request(
            "Bad request: Shard 0 must have at least one active replica after removing 2"
        ))
    );

    // Not the last replica, but the last Active one.
    fake.set_replica_state("c", 1, 3, "Dead");
    assert_eq!(
        fake.placement("c")[&1],
        [(2, "Active".to_owned()), (3, "Dead".to_owned())]
    );
    assert_eq!(
        client
            .update_collection_cluster("c", &drop_replica(1, 2))
            .await,
        Err(bad_request(
            "Bad request: Shard 1 must have at least one active replica after removing 2"
        ))
    );
    // The dead one can go; and nothing transfers from it.
    assert_eq!(
        client
            .update_collection_cluster("c", &move_shard(1, 3, 1))
            .await,
        Err(bad_request("Bad request: Shard 1 is not active on peer 3"))
    );
    client
        .update_collection_cluster("c", &drop_replica(1, 3))
        .await
        .unwrap();
    assert_eq!(fake.placement("c")[&1], [(2, "Active".to_owned())]);
}

#[tokio::test]
async fn fake_aborts_transfers_like_qdrant() {
    let (fake, client) = three_peer_fake("fake_aborts_transfers_like_qdrant").await;
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();

    // An aborted replication leaves its target Dead.
    client
        .update_collection_cluster("c", &replicate_shard(0, 1, 2))
        .await
        .unwrap();
    client
        .update_collection_cluster("c", &abort_transfer(0, 1, 2))
        .await
        .unwrap();
    assert_eq!(
        fake.placement("c")[&0],
        [(1, "Active".to_owned()), (2, "Dead".to_owned())]
    );
    // Aborting it twice: 404.
    assert_eq!(
        client
            .update_collection_cluster("c", &abort_transfer(0, 1, 2))
            .await,
        Err(QdrantError::NotFound {
            message: "Not found: Shard transfer 1 -> 2 for collection c:0 does not exist".into()
        })
    );

    // An aborted move removes its target; the source stays.
    client
        .update_collection_cluster("c", &move_shard(1, 2, 3))
        .await
        .unwrap();
    client
        .update_collection_cluster("c", &abort_transfer(1, 2, 3))
        .await
        .unwrap();
    assert_eq!(fake.placement("c")[&1], [(2, "Active".to_owned())]);

    // Re-filling a replica the target already holds is accepted (the Dead one of shard 0).
    client
        .update_collection_cluster("c", &replicate_shard(0, 1, 2))
        .await
        .unwrap();
    assert_eq!(
        fake.placement("c")[&0],
        [(1, "Active".to_owned()), (2, "Recovery".to_owned())]
    );
    // Dropping a replica aborts the transfers from or to it.
    client
        .update_collection_cluster("c", &drop_replica(0, 2))
        .await
        .unwrap();
    let info = client.collection_cluster_info("c").await.unwrap();
    assert!(info.shard_transfers.is_empty(), "{info:?}");
    assert_eq!(fake.placement("c")[&0], [(1, "Active".to_owned())]);

    // A target shard id other than the source's, and resharding transfers, are refused.
    let op = json!({"move_shard": {"shard_id": 0, "to_shard_id": 1, "from_peer_id": 1,
                                   "to_peer_id": 2}});
    assert_eq!(
        client.update_collection_cluster("c", &op).await,
        Err(bad_request(
            "Bad request: Target shard 1 can only be set for ReshardingStreamRecords or filtered streaming records transfers"
        ))
    );
    let op = json!({"move_shard": {"shard_id": 0, "to_shard_id": 1, "from_peer_id": 1,
                                   "to_peer_id": 2, "method": "resharding_stream_records"}});
    assert_eq!(
        client.update_collection_cluster("c", &op).await,
        Err(bad_request(
            "Wrong input: can't start resharding transfer, because resharding is not in progress"
        ))
    );
    assert!(
        client
            .collection_cluster_info("c")
            .await
            .unwrap()
            .shard_transfers
            .is_empty()
    );
}

#[tokio::test]
async fn fake_transfers_can_complete_instantly() {
    let (fake, client) = three_peer_fake("fake_transfers_can_complete_instantly").await;
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    fake.set_transfers_complete_instantly(true);
    client
        .update_collection_cluster("c", &move_shard(0, 1, 3))
        .await
        .unwrap();
    let info = client.collection_cluster_info("c").await.unwrap();
    assert!(info.shard_transfers.is_empty());
    assert_eq!(info.local_shards, []);
    assert_eq!(
        info.replicas(),
        [(0, 3, "Active"), (1, 2, "Active"), (2, 3, "Active")]
    );
    // Peer 1 holds nothing any more.
    client.remove_peer(1).await.unwrap();

    fake.set_transfers_complete_instantly(false);
    client
        .update_collection_cluster("c", &move_shard(1, 2, 3))
        .await
        .unwrap();
    assert_eq!(
        client
            .collection_cluster_info("c")
            .await
            .unwrap()
            .shard_transfers
            .len(),
        1
    );
}

#[tokio::test]
async fn fake_cluster_operations_outside_cluster_mode() {
    let fake = fake(
        "fake_cluster_operations_outside_cluster_mode",
        FakeQdrantOptions {
            cluster: None,
            ..FakeQdrantOptions::default()
        },
    )
    .await;
    let client = client_for(fake.url(), None);
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    let info = client.collection_cluster_info("c").await.unwrap();
    assert_eq!(info.replicas(), [(0, info.peer_id, "Active")]);
    assert_eq!(
        client
            .update_collection_cluster("c", &move_shard(0, info.peer_id, 2))
            .await,
        Err(bad_request("Bad request: Distributed mode disabled"))
    );
    assert_eq!(
        client.remove_peer(info.peer_id).await,
        Err(bad_request(format!(
            "Bad request: Cannot remove peer {} as there are shards on it",
            info.peer_id
        )))
    );
    assert_eq!(
        client.remove_peer(424_242).await,
        Err(bad_request("Bad request: Distributed mode disabled."))
    );
}

#[tokio::test]
async fn fake_remove_peer_routes_like_qdrant() {
    let (fake, client) = three_peer_fake("fake_remove_peer_routes_like_qdrant").await;
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    let http = plain_http();
    // `force=true` removes the peer with its replicas (the client never sends it).
    let resp = http
        .delete(fake.url().join("cluster/peer/3?force=true").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"], true);
    assert_eq!(fake.placement("c")[&2], []);
    assert!(!client.cluster_info().await.unwrap().peers.contains_key(&3));
    // Deleting the collection frees peer 2.
    assert_eq!(
        client.remove_peer(2).await,
        Err(bad_request(
            "Bad request: Cannot remove peer 2 as there are shards on it"
        ))
    );
    client.delete_collection("c").await.unwrap();
    client.remove_peer(2).await.unwrap();
}

#[tokio::test]
#[should_panic(expected = "not a Qdrant replica state")]
async fn fake_set_replica_state_refuses_unknown_states() {
    let (fake, client) = three_peer_fake("fake_set_replica_state_refuses_unknown_states").await;
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    fake.set_replica_state("c", 0, 1, "active");
}

// ---------------------------------------------------------------------------------------------
// Configuration and TLS (no Qdrant needed)
// ---------------------------------------------------------------------------------------------

fn config_error(conn: &QdrantConnection) -> String {
    match QdrantClient::new(conn) {
        Err(err @ QdrantError::Config { .. }) => {
            assert_eq!(err.reason(), "QdrantConfigInvalid");
            assert!(!err.is_transient());
            err.to_string()
        }
        Err(other) => panic!("expected a Config error, got {other:?}"),
        Ok(client) => panic!("expected a Config error, got a client {client:?}"),
    }
}

#[test]
fn bad_connection_settings_are_config_errors() {
    println!("[bad_connection_settings_are_config_errors] no server: client construction only");
    let https = Url::parse("https://qdrant.example.svc:6333").unwrap();

    let msg = config_error(
        &QdrantConnection::new(https.clone()).with_ca_bundle_pem(b"this is not PEM".to_vec()),
    );
    assert!(msg.contains("no PEM certificate"), "{msg}");

    let corrupt = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let msg = config_error(&QdrantConnection::new(https.clone()).with_ca_bundle_pem(corrupt));
    assert!(msg.contains("certificate #1"), "{msg}");

    let msg = config_error(&QdrantConnection::new(
        Url::parse("ftp://qdrant:6333").unwrap(),
    ));
    assert!(msg.contains("http or https"), "{msg}");

    let msg = config_error(&QdrantConnection::new(https.clone()).with_timeout(Duration::ZERO));
    assert!(msg.contains("timeout"), "{msg}");

    let msg = config_error(
        &QdrantConnection::new(https.clone()).with_api_key(ApiKey::new("secret\nvalue")),
    );
    assert!(!msg.contains("secret"), "the key leaked: {msg}");
    config_error(&QdrantConnection::new(https).with_api_key(ApiKey::new("")));
}

#[test]
fn api_key_never_shows_in_debug_output() {
    let key = ApiKey::new("super-secret-key");
    assert_eq!(format!("{key:?}"), "ApiKey(***)");
    assert_eq!(key.expose(), "super-secret-key");
    let conn = QdrantConnection::new(Url::parse("http://qdrant:6333").unwrap()).with_api_key(key);
    let client = QdrantClient::new(&conn).unwrap();
    for text in [format!("{conn:?}"), format!("{client:?}")] {
        assert!(!text.contains("super-secret-key"), "{text}");
    }
}

#[test]
fn https_url_with_a_ca_bundle_builds_a_client() {
    let url = Url::parse("https://qdrant.default.svc:6333/prefix").unwrap();
    let bundle = format!("{TEST_CA_PEM}{TEST_CA_PEM}");
    let client =
        QdrantClient::new(&QdrantConnection::new(url).with_ca_bundle_pem(bundle.into_bytes()))
            .unwrap();
    assert_eq!(
        client.base_url().as_str(),
        "https://qdrant.default.svc:6333/prefix/"
    );
}

/// Serves each accepted TLS connection one canned HTTP/1.1 reply and reports the request head.
fn spawn_tls_server(reply: &'static str) -> (u16, mpsc::Receiver<String>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(TEST_SERVER_CERT_PEM.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(TEST_SERVER_KEY_PEM.as_bytes()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut chunk = [0_u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                let _ = tls.write_all(reply.as_bytes());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            }
        }
    });
    (port, rx)
}

#[tokio::test]
async fn tls_with_the_ca_bundle_reaches_the_server() {
    println!(
        "[tls_with_the_ca_bundle_reaches_the_server] running against a one-shot TLS server on 127.0.0.1"
    );
    let reply = "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\nall shards are ready";
    let (port, heads) = spawn_tls_server(reply);

    for host in ["localhost", "127.0.0.1"] {
        let url = Url::parse(&format!("https://{host}:{port}/")).unwrap();
        let conn = QdrantConnection::new(url)
            .with_ca_bundle_pem(TEST_CA_PEM)
            .with_api_key(ApiKey::new("k"))
            .with_timeout(Duration::from_secs(5));
        QdrantClient::new(&conn)
            .unwrap()
            .readyz()
            .await
            .unwrap_or_else(|e| panic!("readyz over TLS to {host}: {e}"));
        let head = heads.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(head.starts_with("GET /readyz HTTP/1.1\r\n"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("api-key"), "{head}");
    }

    // Without the bundle the test CA is not trusted: the handshake fails.
    let url = Url::parse(&format!("https://localhost:{port}/")).unwrap();
    let err = QdrantClient::new(&QdrantConnection::new(url).with_timeout(Duration::from_secs(5)))
        .unwrap()
        .readyz()
        .await
        .unwrap_err();
    assert!(
        matches!(err, QdrantError::Unreachable { .. }),
        "expected Unreachable, got {err:?}"
    );
    println!("[tls_with_the_ca_bundle_reaches_the_server] without the CA bundle: {err}");
}

// ---------------------------------------------------------------------------------------------
// Snapshots and point counts: fake and real
// ---------------------------------------------------------------------------------------------

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The whole body of a download; fails the test on an `Err` item.
async fn download_all(who: &str, download: SnapshotDownload) -> Vec<u8> {
    use futures::StreamExt;
    let mut stream = download.stream;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("{who}: download broke off: {e}"));
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// Writes `n` points into collection `name` (4-dimensional vectors): through the fake's knob,
/// or `PUT /collections/{name}/points?wait=true` on a real server.
async fn put_points(target: &Target, name: &str, n: u64) {
    match target {
        Target::Fake(fake) => fake.set_points_count(name, n),
        Target::Real { .. } => {
            let points: Vec<Value> = (0..n)
                .map(|i| json!({"id": i, "vector": [1.0, (i % 7) as f32, 0.5, 0.25]}))
                .collect();
            let (status, body) = raw_json(
                target,
                reqwest::Method::PUT,
                &format!("collections/{name}/points?wait=true"),
                Some(json!({ "points": points })),
            )
            .await;
            assert_eq!(status, 200, "upserting points into {name}: {body}");
        }
    }
}

/// Serves `bytes` at `http://<host>:<port>/<file>` for Qdrant to fetch, or `None` when the
/// target cannot reach this process: the fake always can (127.0.0.1); a real server only when
/// it has a callback host: `QDRANT_CALLBACK_HOST` (a host or IP of this machine it can reach;
/// then this listens on all interfaces unless it is loopback), or 127.0.0.1 for the server a
/// test started itself.
async fn serve_snapshot(
    target: &Target,
    file: &str,
    bytes: Vec<u8>,
) -> Option<(Url, tokio::task::JoinHandle<()>)> {
    let (bind, host) = match target {
        Target::Fake(_) => ("127.0.0.1:0", "127.0.0.1".to_owned()),
        Target::Real { callback_host, .. } => {
            let host = callback_host.clone()?;
            let loopback = host == "127.0.0.1" || host == "localhost";
            (if loopback { "127.0.0.1:0" } else { "0.0.0.0:0" }, host)
        }
    };
    Some(serve_bytes(bind, &host, file, bytes).await)
}

/// Serves `bytes` at `/<file>` on `bind`; the URL names `host`.
async fn serve_bytes(
    bind: &str,
    host: &str,
    file: &str,
    bytes: Vec<u8>,
) -> (Url, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bytes = bytes::Bytes::from(bytes);
    let app = axum::Router::new().route(
        &format!("/{file}"),
        axum::routing::get(move || {
            let bytes = bytes.clone();
            async move { bytes }
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = Url::parse(&format!("http://{host}:{port}/{file}")).unwrap();
    (url, server)
}

fn is_sha256(checksum: Option<&str>) -> bool {
    checksum.is_some_and(|c| c.len() == 64 && c.chars().all(|ch| ch.is_ascii_hexdigit()))
}

#[tokio::test]
async fn collection_snapshots_are_created_listed_downloaded_and_deleted() {
    let test = "collection_snapshots_are_created_listed_downloaded_and_deleted";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("snap"));
        client
            .create_collection(&name, &simple_collection(4))
            .await
            .unwrap();
        put_points(&target, &name, 10).await;
        let peer = client.cluster_info().await.unwrap().peer_id;

        let snapshot = client
            .create_collection_snapshot(&name)
            .await
            .unwrap_or_else(|e| panic!("{who}: create snapshot: {e}"));
        let prefix = match peer {
            Some(peer) => format!("{name}-{peer}-"),
            None => format!("{name}-"),
        };
        assert!(
            snapshot.name.starts_with(&prefix) && snapshot.name.ends_with(".snapshot"),
            "{who}: {snapshot:?}"
        );
        assert!(snapshot.size > 0, "{who}: {snapshot:?}");
        assert!(
            is_sha256(snapshot.checksum.as_deref()),
            "{who}: {snapshot:?}"
        );
        // `None` where the file system does not report creation times.
        if let Some(created) = &snapshot.creation_time {
            assert!(
                jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%M:%S", created).is_ok(),
                "{who}: creation_time {created:?}"
            );
        }

        let listed = client.list_collection_snapshots(&name).await.unwrap();
        assert!(listed.contains(&snapshot), "{who}: {listed:?}");

        let download = client
            .download_collection_snapshot(&name, &snapshot.name)
            .await
            .unwrap_or_else(|e| panic!("{who}: download: {e}"));
        assert_eq!(download.content_length, Some(snapshot.size), "{who}");
        let bytes = download_all(&who, download).await;
        assert_eq!(bytes.len() as u64, snapshot.size, "{who}");
        assert_eq!(Some(sha256_hex(&bytes)), snapshot.checksum, "{who}");

        // A missing snapshot: 404 (plain text from Qdrant).
        let err = client
            .download_collection_snapshot(&name, "nope.snapshot")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: "Not found: Snapshot nope.snapshot not found".into()
            },
            "{who}"
        );

        assert!(
            client
                .delete_collection_snapshot(&name, &snapshot.name)
                .await
                .unwrap(),
            "{who}"
        );
        let listed = client.list_collection_snapshots(&name).await.unwrap();
        assert!(!listed.iter().any(|s| s.name == snapshot.name), "{who}");
        assert!(
            !client
                .delete_collection_snapshot(&name, &snapshot.name)
                .await
                .unwrap(),
            "{who}: second delete"
        );

        // The raw reply of creation.
        let (status, body) = raw_json(
            &target,
            reqwest::Method::POST,
            &format!("collections/{name}/snapshots?wait=true"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{who}: {body}");
        let mut keys: Vec<&str> = body["result"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["checksum", "creation_time", "name", "size"], "{who}");
        let raw_name = body["result"]["name"].as_str().unwrap().to_owned();
        client
            .delete_collection_snapshot(&name, &raw_name)
            .await
            .unwrap();

        // A missing collection.
        let missing = unique_name("missing");
        let err = client
            .create_collection_snapshot(&missing)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: format!("Not found: Collection `{missing}` doesn't exist!")
            },
            "{who}"
        );
        let err = client
            .list_collection_snapshots(&missing)
            .await
            .unwrap_err();
        assert!(
            matches!(err, QdrantError::NotFound { .. }),
            "{who}: {err:?}"
        );
    }
}

#[tokio::test]
async fn shard_snapshots_are_created_listed_downloaded_and_deleted() {
    let test = "shard_snapshots_are_created_listed_downloaded_and_deleted";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("shard-snap"));
        client
            .create_collection(
                &name,
                &json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 2}),
            )
            .await
            .unwrap();
        put_points(&target, &name, 20).await;
        // A shard with a replica on the answering peer.
        let info = client.collection_cluster_info(&name).await.unwrap();
        let Some(shard) = info.local_shards.first().map(|s| s.shard_id) else {
            println!("[{test}] skipped for {who}: the answering peer holds no shard of {name}");
            continue;
        };

        let snapshot = client
            .create_shard_snapshot(&name, shard)
            .await
            .unwrap_or_else(|e| panic!("{who}: create shard snapshot: {e}"));
        assert!(
            snapshot.name.starts_with(&format!("{name}-shard-{shard}-")),
            "{who}: {snapshot:?}"
        );
        assert!(
            is_sha256(snapshot.checksum.as_deref()),
            "{who}: {snapshot:?}"
        );
        let listed = client.list_shard_snapshots(&name, shard).await.unwrap();
        assert!(listed.contains(&snapshot), "{who}: {listed:?}");

        let download = client
            .download_shard_snapshot(&name, shard, &snapshot.name)
            .await
            .unwrap();
        assert_eq!(download.content_length, Some(snapshot.size), "{who}");
        let bytes = download_all(&who, download).await;
        assert_eq!(Some(sha256_hex(&bytes)), snapshot.checksum, "{who}");

        assert!(
            client
                .delete_shard_snapshot(&name, shard, &snapshot.name)
                .await
                .unwrap(),
            "{who}"
        );
        assert!(
            !client
                .delete_shard_snapshot(&name, shard, &snapshot.name)
                .await
                .unwrap(),
            "{who}: second delete"
        );
        let err = client
            .download_shard_snapshot(&name, shard, &snapshot.name)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: "File not found: No such file or directory (os error 2)".into()
            },
            "{who}"
        );

        // A shard the collection does not have.
        let err = client.create_shard_snapshot(&name, 99).await.unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: "Not found: shard 99 not found".into()
            },
            "{who}"
        );
        let err = client.list_shard_snapshots(&name, 99).await.unwrap_err();
        assert!(
            matches!(err, QdrantError::NotFound { .. }),
            "{who}: {err:?}"
        );
        // A shard id that is not a u32: 400 from the path extractor, on every shard route.
        for (method, path) in [
            (reqwest::Method::GET, "shards/one/snapshots"),
            (reqwest::Method::POST, "shards/-1/snapshots"),
            (reqwest::Method::GET, "shards/one/snapshots/x.snapshot"),
            (reqwest::Method::DELETE, "shards/one/snapshots/x.snapshot"),
        ] {
            let (status, body) =
                raw_json(&target, method, &format!("collections/{name}/{path}"), None).await;
            let shard = path.split('/').nth(1).unwrap();
            assert_eq!(status, 400, "{who}: {path}: {body}");
            assert_eq!(
                body["status"]["error"],
                format!("Deserialize error in path parameters: can not parse \"{shard}\" to a u32"),
                "{who}: {path}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn count_points_counts_every_shard() {
    let test = "count_points_counts_every_shard";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("count"));
        client
            .create_collection(
                &name,
                &json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 3}),
            )
            .await
            .unwrap();
        assert_eq!(client.count_points(&name, true).await.unwrap(), 0, "{who}");
        put_points(&target, &name, 25).await;
        assert_eq!(client.count_points(&name, true).await.unwrap(), 25, "{who}");
        assert_eq!(
            client.count_points(&name, false).await.unwrap(),
            25,
            "{who}"
        );
        if let Some(key) = target.read_only_api_key() {
            let read_only = target.client_with_key(Some(&key));
            assert_eq!(
                read_only.count_points(&name, true).await.unwrap(),
                25,
                "{who}"
            );
            let err = read_only
                .create_collection_snapshot(&name)
                .await
                .unwrap_err();
            assert_eq!(
                err,
                QdrantError::Unauthorized {
                    status: 403,
                    message: READ_ONLY_DENIED_MESSAGE.into()
                },
                "{who}"
            );
        }
        let missing = unique_name("missing");
        let err = client.count_points(&missing, true).await.unwrap_err();
        assert_eq!(
            err,
            QdrantError::NotFound {
                message: format!("Not found: Collection `{missing}` doesn't exist!")
            },
            "{who}"
        );
    }
}

#[tokio::test]
async fn collection_snapshot_recovers_from_a_url_and_from_an_upload() {
    let test = "collection_snapshot_recovers_from_a_url_and_from_an_upload";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let source = cleanup.track(unique_name("recover-src"));
        client
            .create_collection(
                &source,
                &json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 1}),
            )
            .await
            .unwrap();
        put_points(&target, &source, 12).await;
        let snapshot = client.create_collection_snapshot(&source).await.unwrap();
        let bytes = download_all(
            &who,
            client
                .download_collection_snapshot(&source, &snapshot.name)
                .await
                .unwrap(),
        )
        .await;
        let checksum = snapshot.checksum.clone().unwrap();
        let vectors = info(&client, &who, &source).await.config["params"]["vectors"].clone();

        // From an HTTP location, checksum verified.
        match serve_snapshot(&target, &snapshot.name, bytes.clone()).await {
            Some((url, server)) => {
                let restored = cleanup.track(unique_name("recover-url"));
                let mut bad = SnapshotRecover::new(url.as_str());
                bad.checksum = Some("0".repeat(64));
                let err = client
                    .recover_collection_snapshot(&restored, &bad)
                    .await
                    .unwrap_err();
                let QdrantError::BadRequest { message } = &err else {
                    panic!("{who}: expected BadRequest, got {err:?}");
                };
                assert_eq!(
                    message,
                    &format!(
                        "Wrong input: Snapshot checksum mismatch: expected {}, got {checksum}",
                        "0".repeat(64)
                    ),
                    "{who}"
                );
                let recover = SnapshotRecover {
                    checksum: Some(checksum.clone()),
                    ..SnapshotRecover::new(url.as_str())
                };
                client
                    .recover_collection_snapshot(&restored, &recover)
                    .await
                    .unwrap_or_else(|e| panic!("{who}: recover from {url}: {e}"));
                assert_eq!(
                    client.count_points(&restored, true).await.unwrap(),
                    12,
                    "{who}"
                );
                assert_eq!(
                    info(&client, &who, &restored).await.config["params"]["vectors"],
                    vectors,
                    "{who}"
                );

                // A location that answers 404.
                let mut missing = url.clone();
                missing.set_path("/no-such.snapshot");
                let err = client
                    .recover_collection_snapshot(&restored, &SnapshotRecover::new(missing.as_str()))
                    .await
                    .unwrap_err();
                assert_eq!(
                    err,
                    QdrantError::BadRequest {
                        message: format!(
                            "Wrong input: Failed to download tar from {missing}: status - 404 Not Found"
                        )
                    },
                    "{who}"
                );
                server.abort();
            }
            None => println!(
                "[{test}] URL recovery skipped for {who}: set QDRANT_CALLBACK_HOST to a host name of this machine the server can reach"
            ),
        }

        // From an upload (streamed multipart), checksum verified.
        let uploaded = cleanup.track(unique_name("recover-upload"));
        let err = client
            .upload_collection_snapshot(
                &uploaded,
                reqwest::Body::from(bytes.clone()),
                Some(bytes.len() as u64),
                None,
                Some(&"0".repeat(64)),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            QdrantError::BadRequest {
                message: format!(
                    "Checksum mismatch: expected {checksum}, actual {}",
                    "0".repeat(64)
                )
            },
            "{who}"
        );
        client
            .upload_collection_snapshot(
                &uploaded,
                reqwest::Body::from(bytes.clone()),
                Some(bytes.len() as u64),
                Some(SnapshotPriority::Snapshot),
                Some(&checksum),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: upload: {e}"));
        assert_eq!(
            client.count_points(&uploaded, true).await.unwrap(),
            12,
            "{who}"
        );
        // Qdrant keeps the upload in the collection's snapshot directory, without checksum.
        let kept = format!("{uploaded}-upload.snapshot");
        let listed = client.list_collection_snapshots(&uploaded).await.unwrap();
        let entry = listed.iter().find(|s| s.name == kept);
        assert!(
            entry.is_some_and(|s| s.size == bytes.len() as u64 && s.checksum.is_none()),
            "{who}: {listed:?}"
        );
        assert!(
            client
                .delete_collection_snapshot(&uploaded, &kept)
                .await
                .unwrap(),
            "{who}"
        );
        assert!(
            client
                .delete_collection_snapshot(&source, &snapshot.name)
                .await
                .unwrap(),
            "{who}"
        );
    }
}

#[tokio::test]
async fn shard_snapshot_recovers_from_a_url_and_from_an_upload() {
    let test = "shard_snapshot_recovers_from_a_url_and_from_an_upload";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let body = json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 1});
        let source = cleanup.track(unique_name("shard-src"));
        let restored = cleanup.track(unique_name("shard-dst"));
        for name in [&source, &restored] {
            client.create_collection(name, &body).await.unwrap();
        }
        let info = client.collection_cluster_info(&source).await.unwrap();
        if info.local_shards.is_empty() {
            println!("[{test}] skipped for {who}: the answering peer holds no shard of {source}");
            continue;
        }
        put_points(&target, &source, 9).await;
        let snapshot = client.create_shard_snapshot(&source, 0).await.unwrap();
        let bytes = download_all(
            &who,
            client
                .download_shard_snapshot(&source, 0, &snapshot.name)
                .await
                .unwrap(),
        )
        .await;
        let checksum = snapshot.checksum.clone().unwrap();

        match serve_snapshot(&target, &snapshot.name, bytes.clone()).await {
            Some((url, server)) => {
                let recover = SnapshotRecover {
                    checksum: Some(checksum.clone()),
                    ..SnapshotRecover::new(url.as_str())
                };
                client
                    .recover_shard_snapshot(&restored, 0, &recover)
                    .await
                    .unwrap_or_else(|e| panic!("{who}: shard recover from {url}: {e}"));
                assert_eq!(
                    client.count_points(&restored, true).await.unwrap(),
                    9,
                    "{who}"
                );
                let err = client
                    .recover_shard_snapshot(&restored, 7, &recover)
                    .await
                    .unwrap_err();
                assert_eq!(
                    err,
                    QdrantError::NotFound {
                        message: "Not found: shard 7 not found".into()
                    },
                    "{who}"
                );
                server.abort();
            }
            None => println!(
                "[{test}] URL recovery skipped for {who}: set QDRANT_CALLBACK_HOST to a host name of this machine the server can reach"
            ),
        }

        // Upload into a third collection; a wrong checksum first.
        let uploaded = cleanup.track(unique_name("shard-upload"));
        client.create_collection(&uploaded, &body).await.unwrap();
        let err = client
            .upload_shard_snapshot(
                &uploaded,
                0,
                reqwest::Body::from(bytes.clone()),
                None,
                None,
                Some(&"f".repeat(64)),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, QdrantError::BadRequest { message } if message.starts_with("Checksum mismatch")),
            "{who}: {err:?}"
        );
        client
            .upload_shard_snapshot(
                &uploaded,
                0,
                reqwest::Body::from(bytes.clone()),
                Some(bytes.len() as u64),
                Some(SnapshotPriority::NoSync),
                Some(&checksum),
            )
            .await
            .unwrap_or_else(|e| panic!("{who}: shard upload: {e}"));
        assert_eq!(
            client.count_points(&uploaded, true).await.unwrap(),
            9,
            "{who}"
        );
        client
            .delete_shard_snapshot(&source, 0, &snapshot.name)
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots and point counts: fake only (several peers, fake bytes, injected failures)
// ---------------------------------------------------------------------------------------------

/// The header line of a fake snapshot, parsed.
fn fake_header(bytes: &[u8]) -> Value {
    let end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .expect("a header line");
    serde_json::from_slice(&bytes[..end]).expect("the header is JSON")
}

/// A three-peer fake (answering as 1) with views for peers 2 and 3, and clients for all.
async fn three_peers(test: &str) -> (FakeQdrant, [FakeQdrant; 2], [QdrantClient; 3]) {
    let (fake, one) = three_peer_fake(test).await;
    let two = fake.peer_view(2).await;
    let three = fake.peer_view(3).await;
    let clients = [
        one,
        client_for(two.url(), None),
        client_for(three.url(), None),
    ];
    (fake, [two, three], clients)
}

#[tokio::test]
async fn fake_peer_views_answer_as_their_peer() {
    let (fake, [two, three], [c1, c2, c3]) =
        three_peers("fake_peer_views_answer_as_their_peer").await;
    assert_eq!((fake.peer_id(), two.peer_id(), three.peer_id()), (1, 2, 3));
    for (client, peer, role) in [
        (&c1, 1, RaftRole::Leader),
        (&c2, 2, RaftRole::Follower),
        (&c3, 3, RaftRole::Follower),
    ] {
        let info = client.cluster_info().await.unwrap();
        assert_eq!(info.peer_id, Some(peer));
        assert_eq!(info.raft_info.unwrap().role, Some(role));
        assert_eq!(info.peers.len(), 3);
    }

    // Shared state: created through one peer, seen by all, split by the answering peer.
    c2.create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    for (client, peer) in [(&c1, 1), (&c2, 2), (&c3, 3)] {
        let info = client.collection_cluster_info("c").await.unwrap();
        assert_eq!(info.peer_id, peer);
        let local: Vec<u32> = info.local_shards.iter().map(|s| s.shard_id).collect();
        assert_eq!(local, [peer as u32 - 1], "peer {peer}");
    }

    // One request log, tagged with the answering peer.
    fake.clear_requests();
    c3.readyz().await.unwrap();
    c1.readyz().await.unwrap();
    let peers: Vec<u64> = fake.recorded().iter().map(|r| r.peer_id).collect();
    assert_eq!(peers, [3, 1]);

    // Faults are per listener.
    two.fail_next("/collections", 503, 1);
    c1.collection_info("c").await.unwrap();
    c3.collection_info("c").await.unwrap();
    assert_eq!(
        c2.collection_info("c").await.unwrap_err().status(),
        Some(503)
    );
    c2.collection_info("c").await.unwrap();

    // A view stops when dropped; the others go on.
    drop(three);
    assert!(matches!(
        c3.readyz().await.unwrap_err(),
        QdrantError::Unreachable { .. }
    ));
    c2.readyz().await.unwrap();
}

#[tokio::test]
async fn fake_points_are_kept_per_shard() {
    let (fake, client) = three_peer_fake("fake_points_are_kept_per_shard").await;
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    fake.set_points_count("c", 10);
    assert_eq!(
        fake.shard_points("c"),
        [(0, 4), (1, 3), (2, 3)].into_iter().collect()
    );
    fake.set_shard_points("c", 1, 100);
    assert_eq!(client.count_points("c", true).await.unwrap(), 107);
    assert_eq!(
        client
            .collection_info("c")
            .await
            .unwrap()
            .unwrap()
            .points_count,
        Some(107)
    );
    let info = client.collection_cluster_info("c").await.unwrap();
    assert_eq!(info.local_shards[0].points_count, 4);
}

#[tokio::test]
async fn fake_shard_snapshots_need_a_local_replica() {
    let (fake, _views, [c1, c2, _c3]) =
        three_peers("fake_shard_snapshots_need_a_local_replica").await;
    c1.create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    fake.set_points_count("c", 30);
    // Shard 1 lives on peer 2 only.
    let not_local = bad_request("Wrong input: Shard 1 is not a local or queue proxy shard");
    assert_eq!(
        c1.create_shard_snapshot("c", 1).await.unwrap_err(),
        not_local
    );
    assert_eq!(
        c1.list_shard_snapshots("c", 1).await.unwrap_err(),
        bad_request("Wrong input: Shard 1 is not a local shard")
    );
    let snapshot = c2.create_shard_snapshot("c", 1).await.unwrap();
    assert_eq!(
        c1.download_shard_snapshot("c", 1, &snapshot.name)
            .await
            .unwrap_err(),
        not_local
    );
    assert_eq!(
        c1.delete_shard_snapshot("c", 1, &snapshot.name)
            .await
            .unwrap_err(),
        not_local
    );
    assert_eq!(
        fake.snapshot_names(2, "c", Some(1)),
        std::slice::from_ref(&snapshot.name)
    );
    assert!(fake.snapshot_names(1, "c", Some(1)).is_empty());

    // Its bytes describe the shard.
    let bytes = download_all(
        "fake",
        c2.download_shard_snapshot("c", 1, &snapshot.name)
            .await
            .unwrap(),
    )
    .await;
    let header = fake_header(&bytes);
    assert_eq!(header["fakeQdrantSnapshot"], 1);
    assert_eq!(header["collection"], "c");
    assert_eq!(header["peerId"], 2);
    assert_eq!(header["shardId"], 1);
    assert_eq!(header["shards"], json!({"1": 10}));
    assert_eq!(header["config"], fake.collection("c").unwrap()["config"]);

    // A collection snapshot holds the shards local to its peer only.
    let snapshot = c2.create_collection_snapshot("c").await.unwrap();
    assert!(snapshot.name.starts_with("c-2-"), "{snapshot:?}");
    let bytes = download_all(
        "fake",
        c2.download_collection_snapshot("c", &snapshot.name)
            .await
            .unwrap(),
    )
    .await;
    let header = fake_header(&bytes);
    assert_eq!(header["shardId"], Value::Null);
    assert_eq!(header["shards"], json!({"1": 10}));
    // Each peer has its own snapshot directory.
    assert!(c1.list_collection_snapshots("c").await.unwrap().is_empty());
    assert_eq!(c2.list_collection_snapshots("c").await.unwrap(), [snapshot]);
}

#[tokio::test]
async fn fake_snapshot_padding_is_streamed_with_its_length() {
    let fake = fake(
        "fake_snapshot_padding_is_streamed_with_its_length",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    fake.set_snapshot_padding(5 * 1024 * 1024 + 3);
    let snapshot = client.create_collection_snapshot("c").await.unwrap();
    let download = client
        .download_collection_snapshot("c", &snapshot.name)
        .await
        .unwrap();
    assert_eq!(download.content_length, Some(snapshot.size));
    // Chunk by chunk, never the whole file at once.
    use futures::StreamExt;
    let mut stream = download.stream;
    let (mut total, mut largest, mut hasher) = (0u64, 0usize, {
        use sha2::Digest;
        sha2::Sha256::new()
    });
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        largest = largest.max(chunk.len());
        total += chunk.len() as u64;
        sha2::Digest::update(&mut hasher, &chunk);
    }
    let digest: String = sha2::Digest::finalize(hasher)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(total, snapshot.size);
    assert!(total > 5 * 1024 * 1024);
    assert!(largest < 1024 * 1024, "a chunk of {largest} bytes");
    assert_eq!(Some(digest), snapshot.checksum);
}

#[tokio::test]
async fn fake_download_cut_midway_yields_an_err_item() {
    let fake = fake(
        "fake_download_cut_midway_yields_an_err_item",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    fake.set_snapshot_padding(200_000);
    let snapshot = client.create_collection_snapshot("c").await.unwrap();
    fake.fail_download_after(100_000);
    let download = client
        .download_collection_snapshot("c", &snapshot.name)
        .await
        .unwrap();
    assert_eq!(download.content_length, Some(snapshot.size));
    use futures::StreamExt;
    let items: Vec<Result<bytes::Bytes, QdrantError>> = download.stream.collect().await;
    let (last, chunks) = items.split_last().unwrap();
    let received: usize = chunks.iter().map(|c| c.as_ref().unwrap().len()).sum();
    assert!(received <= 100_000, "{received}");
    let err = last.as_ref().unwrap_err();
    assert!(matches!(err, QdrantError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    println!("cut download: {err}");

    // Consumed: the next download is whole.
    let bytes = download_all(
        "fake",
        client
            .download_collection_snapshot("c", &snapshot.name)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bytes.len() as u64, snapshot.size);
}

#[tokio::test]
async fn fake_collection_recovery_creates_the_collection_and_takes_local_shards() {
    let (fake, [two, _three], [c1, c2, _c3]) =
        three_peers("fake_collection_recovery_creates_the_collection_and_takes_local_shards").await;
    c1.create_collection(
        "src",
        &json!({"vectors": {"size": 4, "distance": "Dot"}, "hnsw_config": {"m": 32}}),
    )
    .await
    .unwrap();
    c1.create_payload_index("src", "tenant", &json!("keyword"))
        .await
        .unwrap();
    fake.set_points_count("src", 30);
    // Peer 2 holds shard 1 (10 points).
    let snapshot = c2.create_collection_snapshot("src").await.unwrap();

    // Peer 2 restores its own snapshot by file:// into a new collection: the collection is
    // created from the snapshot (config, payload indexes), shard 1 gets its points.
    let location = format!("file:///qdrant/snapshots/src/{}", snapshot.name);
    c2.recover_collection_snapshot("dst", &SnapshotRecover::new(location.clone()))
        .await
        .unwrap();
    let dst = fake.collection("dst").unwrap();
    assert_eq!(dst["config"], fake.collection("src").unwrap()["config"]);
    assert_eq!(dst["payload_schema"]["tenant"]["data_type"], "keyword");
    assert_eq!(
        fake.shard_points("dst"),
        [(0, 0), (1, 10), (2, 0)].into_iter().collect()
    );
    assert_eq!(
        fake.recoveries(),
        [FakeRecovery {
            peer_id: 2,
            collection: "dst".into(),
            shard_id: None,
            location: location.clone(),
            priority: None,
            checksum: None,
            size: snapshot.size,
        }]
    );
    assert_eq!(fake.recovered_from(), [location]);

    // The same file is not on peer 1: 400; a real file outside the directory: 403.
    let err = c1
        .recover_collection_snapshot(
            "dst",
            &SnapshotRecover::new(format!("file:///qdrant/snapshots/src/{}", snapshot.name)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        bad_request(format!(
            "Bad request: Snapshot file \"/qdrant/snapshots/src/{}\" does not exist",
            snapshot.name
        ))
    );
    let outside = Url::from_file_path(std::env::current_exe().unwrap()).unwrap();
    let err = c1
        .recover_collection_snapshot("dst", &SnapshotRecover::new(outside.as_str()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        QdrantError::Unauthorized {
            status: 403,
            message: "Forbidden: Snapshot file path must be inside the snapshots directory \"/qdrant/snapshots\"".into()
        }
    );

    // An existing collection with other vectors is refused.
    c1.create_collection("other", &simple_collection(8))
        .await
        .unwrap();
    let url = two
        .url()
        .join(&format!("collections/src/snapshots/{}", snapshot.name))
        .unwrap();
    let err = c1
        .recover_collection_snapshot("other", &SnapshotRecover::new(url.as_str()))
        .await
        .unwrap_err();
    let QdrantError::BadRequest { message } = err else {
        panic!("expected BadRequest, got {err:?}");
    };
    assert!(
        message.starts_with(
            "Wrong input: Snapshot is not compatible with existing collection: Collection vectors: "
        ),
        "{message}"
    );

    // A shard snapshot is not a collection snapshot.
    let shard = c2.create_shard_snapshot("src", 1).await.unwrap();
    let err = c2
        .recover_collection_snapshot(
            "dst",
            &SnapshotRecover::new(format!(
                "file:///qdrant/snapshots/src/shards/1/{}",
                shard.name
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        QdrantError::Server {
            status: 500,
            message: "Service internal error: failed to open file `config.json`: No such file or directory (os error 2)".into()
        }
    );
}

#[tokio::test]
async fn fake_recovery_priorities_follow_qdrant() {
    let (fake, [two, _three], [c1, c2, _c3]) =
        three_peers("fake_recovery_priorities_follow_qdrant").await;
    // One shard, replicas on peers 1 and 2.
    c1.create_collection(
        "c",
        &json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1, "replication_factor": 2}),
    )
    .await
    .unwrap();
    fake.set_points_count("c", 5);
    let snapshot = c2.create_shard_snapshot("c", 0).await.unwrap();
    let url = two
        .url()
        .join(&format!(
            "collections/c/shards/0/snapshots/{}",
            snapshot.name
        ))
        .unwrap();
    fake.set_points_count("c", 0);

    // no_sync: peer 1 restored, peer 2 untouched.
    let recover = SnapshotRecover {
        priority: Some(SnapshotPriority::NoSync),
        ..SnapshotRecover::new(url.as_str())
    };
    c1.recover_shard_snapshot("c", 0, &recover).await.unwrap();
    assert_eq!(fake.shard_points("c")[&0], 5);
    assert_eq!(
        fake.placement("c"),
        placed(&[(0, &[(1, "Active"), (2, "Active")])])
    );

    // snapshot (default): the other replica is marked Dead and recovered from the restored
    // one (a transfer 1 -> 2, its target in Recovery until it completes).
    c1.recover_shard_snapshot("c", 0, &SnapshotRecover::new(url.as_str()))
        .await
        .unwrap();
    assert_eq!(
        fake.placement("c"),
        placed(&[(0, &[(1, "Active"), (2, "Recovery")])])
    );
    assert_eq!(fake.complete_transfers(), 1);
    assert_eq!(
        fake.placement("c"),
        placed(&[(0, &[(1, "Active"), (2, "Active")])])
    );

    // replica: the restored replica is marked Dead.
    fake.set_replica_state("c", 0, 2, "Active");
    let recover = SnapshotRecover {
        priority: Some(SnapshotPriority::Replica),
        ..SnapshotRecover::new(url.as_str())
    };
    c1.recover_shard_snapshot("c", 0, &recover).await.unwrap();
    assert_eq!(
        fake.placement("c"),
        placed(&[(0, &[(1, "Dead"), (2, "Active")])])
    );

    // Peer 3 holds no replica: restoring adds one (as Qdrant's consensus does).
    fake.set_replica_state("c", 0, 1, "Active");
    let c3 = client_for(_three.url(), None);
    let recover = SnapshotRecover {
        priority: Some(SnapshotPriority::NoSync),
        ..SnapshotRecover::new(url.as_str())
    };
    c3.recover_shard_snapshot("c", 0, &recover).await.unwrap();
    assert_eq!(
        fake.placement("c"),
        placed(&[(0, &[(1, "Active"), (2, "Active"), (3, "Active")])])
    );

    // Collection recovery with `snapshot` on a collection of replication factor 2: of the
    // two other active replicas, one goes (beyond the factor), one is marked Dead and
    // recovered from the restored one.
    let collection = c1.create_collection_snapshot("c").await.unwrap();
    c1.recover_collection_snapshot(
        "c",
        &SnapshotRecover::new(format!("file:///qdrant/snapshots/c/{}", collection.name)),
    )
    .await
    .unwrap();
    assert_eq!(
        fake.placement("c"),
        placed(&[(0, &[(1, "Active"), (3, "Recovery")])])
    );
    fake.complete_transfers();

    // A shard snapshot stored on the answering peer, by name.
    let local = c1.create_shard_snapshot("c", 0).await.unwrap();
    c1.recover_shard_snapshot("c", 0, &SnapshotRecover::new(local.name.clone()))
        .await
        .unwrap();
    let err = c1
        .recover_shard_snapshot("c", 0, &SnapshotRecover::new("nope.snapshot"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        QdrantError::NotFound {
            message: "Not found: Snapshot \"./snapshots/c/shards/0/nope.snapshot\" not found"
                .into()
        }
    );
    let locations = fake.recovered_from();
    assert_eq!(locations.last(), Some(&local.name));
}

#[tokio::test]
async fn fake_recovery_errors_are_qdrants() {
    let fake = fake(
        "fake_recovery_errors_are_qdrants",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    // No snapshot directory before the first snapshot.
    assert_eq!(
        client
            .download_collection_snapshot("c", "x.snapshot")
            .await
            .unwrap_err(),
        QdrantError::NotFound {
            message: "Not found: Snapshot directory: ./snapshots/c not found".into()
        }
    );
    let snapshot = client.create_collection_snapshot("c").await.unwrap();
    let url = fake
        .url()
        .join(&format!("collections/c/snapshots/{}", snapshot.name))
        .unwrap();

    // Not a URL: the JSON body does not decode.
    let err = client
        .recover_collection_snapshot("c", &SnapshotRecover::new("nope.snapshot"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        bad_request(
            "Format error in JSON body: invalid value: string \"nope.snapshot\", expected relative URL without a base at line 1 column 27"
        )
    );
    // A malformed checksum: 422.
    let recover = SnapshotRecover {
        checksum: Some("xyz".into()),
        ..SnapshotRecover::new(url.as_str())
    };
    let err = client
        .recover_collection_snapshot("c", &recover)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err:?}");
    assert!(
        err.to_string()
            .contains("Validation error in JSON body: [checksum: "),
        "{err}"
    );
    // Unsupported scheme.
    let err = client
        .recover_collection_snapshot("c", &SnapshotRecover::new("ftp://example.com/x.snapshot"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        bad_request(
            "Bad request: URL ftp://example.com/x.snapshot with scheme ftp is not supported"
        )
    );
    // Nobody listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = client
        .recover_collection_snapshot(
            "c",
            &SnapshotRecover::new(format!("http://127.0.0.1:{closed}/x.snapshot")),
        )
        .await
        .unwrap_err();
    let QdrantError::Server {
        status: 500,
        message,
    } = &err
    else {
        panic!("expected a 500, got {err:?}");
    };
    assert!(
        message.starts_with("Service internal error: Http request error: "),
        "{message}"
    );
    // Bytes that are not a snapshot.
    let (junk, server) = serve_bytes(
        "127.0.0.1:0",
        "127.0.0.1",
        "junk.snapshot",
        b"not a snapshot at all".to_vec(),
    )
    .await;
    let err = client
        .recover_collection_snapshot("c", &SnapshotRecover::new(junk.as_str()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QdrantError::Server { status: 500, message } if message.starts_with("Service internal error: Failed to unpack tar archive: ")),
        "{err:?}"
    );
    server.abort();
    // Remote URLs disabled.
    fake.set_snapshot_url_recovery(false);
    let err = client
        .recover_collection_snapshot("c", &SnapshotRecover::new(url.as_str()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        QdrantError::Unauthorized {
            status: 403,
            message:
                "Forbidden: Snapshot recovery from remote URLs is disabled in the configuration"
                    .into()
        }
    );
    fake.set_snapshot_url_recovery(true);
    // Shard recovery refuses file:// URLs.
    let err = client
        .recover_shard_snapshot(
            "c",
            0,
            &SnapshotRecover::new(format!("file:///qdrant/snapshots/c/{}", snapshot.name)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        bad_request(format!(
            "Wrong input: Invalid snapshot URL file:///qdrant/snapshots/c/{}: URLs with file scheme are not supported",
            snapshot.name
        ))
    );
    // A collection snapshot given to shard recovery.
    let err = client
        .recover_shard_snapshot("c", 0, &SnapshotRecover::new(url.as_str()))
        .await
        .unwrap_err();
    assert_eq!(err, bad_request("Bad request: Invalid snapshot"));
    assert!(fake.recoveries().is_empty());
}

#[tokio::test]
async fn fake_recovery_sends_the_api_key_to_another_peer() {
    let fake = FakeQdrant::start(FakeQdrantOptions {
        api_key: Some(FAKE_KEY.into()),
        read_only_api_key: Some(FAKE_READ_ONLY_KEY.into()),
        ..FakeQdrantOptions::default()
    })
    .await;
    fake.set_peers(vec![
        (1, "http://qdrant-0.qdrant-headless:6335/".to_owned()),
        (2, "http://qdrant-1.qdrant-headless:6335/".to_owned()),
    ]);
    let two = fake.peer_view(2).await;
    let c1 = client_for(fake.url(), Some(FAKE_KEY));
    let c2 = client_for(two.url(), Some(FAKE_KEY));
    c1.create_collection(
        "c",
        &json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2}),
    )
    .await
    .unwrap();
    fake.set_points_count("c", 8);
    let snapshot = c2.create_shard_snapshot("c", 1).await.unwrap();
    let url = two
        .url()
        .join(&format!(
            "collections/c/shards/1/snapshots/{}",
            snapshot.name
        ))
        .unwrap();
    // Without the key, peer 2 refuses the download.
    let err = c1
        .recover_shard_snapshot("c", 1, &SnapshotRecover::new(url.as_str()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        bad_request(format!(
            "Wrong input: Failed to download tar from {url}: status - 401 Unauthorized"
        ))
    );
    let recover = SnapshotRecover {
        api_key: Some(FAKE_KEY.into()),
        checksum: snapshot.checksum.clone(),
        ..SnapshotRecover::new(url.as_str())
    };
    assert!(!format!("{recover:?}").contains(FAKE_KEY));
    fake.clear_requests();
    c1.recover_shard_snapshot("c", 1, &recover).await.unwrap();
    let fetch = fake
        .recorded()
        .into_iter()
        .find(|r| r.method == reqwest::Method::GET)
        .unwrap();
    assert_eq!(
        (fetch.peer_id, fetch.api_key.as_deref()),
        (2, Some(FAKE_KEY))
    );
    assert_eq!(
        fake.placement("c")[&1],
        [(1, "Active".into()), (2, "Recovery".into())]
    );

    // The read-only key may not recover, upload or delete.
    let read_only = client_for(fake.url(), Some(FAKE_READ_ONLY_KEY));
    let denied = QdrantError::Unauthorized {
        status: 403,
        message: READ_ONLY_DENIED_MESSAGE.into(),
    };
    assert_eq!(
        read_only
            .recover_shard_snapshot("c", 1, &recover)
            .await
            .unwrap_err(),
        denied
    );
    assert_eq!(
        read_only
            .upload_shard_snapshot("c", 0, reqwest::Body::from("x"), None, None, None)
            .await
            .unwrap_err(),
        denied
    );
    assert_eq!(
        read_only
            .delete_collection_snapshot("c", "x.snapshot")
            .await
            .unwrap_err(),
        denied
    );
    assert_eq!(read_only.list_collection_snapshots("c").await.unwrap(), []);
}

#[tokio::test]
async fn fake_uploads_are_streamed() {
    let (fake, [two, _three], [c1, c2, _c3]) = three_peers("fake_uploads_are_streamed").await;
    c1.create_collection("src", &simple_collection(4))
        .await
        .unwrap();
    fake.set_points_count("src", 300);
    fake.set_snapshot_padding(8 * 1024 * 1024);
    let snapshot = c2.create_collection_snapshot("src").await.unwrap();
    // Pipe a download straight into an upload to peer 2, chunk by chunk.
    let download = c2
        .download_collection_snapshot("src", &snapshot.name)
        .await
        .unwrap();
    let body = reqwest::Body::wrap_stream(download.stream);
    c2.upload_collection_snapshot(
        "dst",
        body,
        download.content_length,
        None,
        snapshot.checksum.as_deref(),
    )
    .await
    .unwrap();
    assert_eq!(
        fake.shard_points("dst"),
        [(0, 0), (1, 100), (2, 0)].into_iter().collect()
    );
    let kept = "dst-upload.snapshot".to_owned();
    assert_eq!(
        fake.snapshot_names(2, "dst", None),
        std::slice::from_ref(&kept)
    );
    let recovery = fake.recoveries().pop().unwrap();
    assert_eq!(
        recovery.location,
        format!("file://{FAKE_SNAPSHOTS_PATH}/dst/{kept}")
    );
    assert_eq!((recovery.peer_id, recovery.size), (2, snapshot.size));
    // The kept file is served with the same bytes.
    let bytes = download_all(
        "fake",
        c2.download_collection_snapshot("dst", &kept).await.unwrap(),
    )
    .await;
    assert_eq!(Some(sha256_hex(&bytes)), snapshot.checksum);

    // A shard upload answers `result: null` and needs the shard.
    let shard = c2.create_shard_snapshot("src", 1).await.unwrap();
    let bytes = download_all(
        "fake",
        c2.download_shard_snapshot("src", 1, &shard.name)
            .await
            .unwrap(),
    )
    .await;
    let err = c1
        .upload_shard_snapshot(
            "src",
            9,
            reqwest::Body::from(bytes.clone()),
            None,
            None,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        QdrantError::NotFound {
            message: "Not found: shard 9 not found".into()
        }
    );
    fake.set_shard_points("src", 1, 0);
    c1.upload_shard_snapshot("src", 1, reqwest::Body::from(bytes), None, None, None)
        .await
        .unwrap();
    assert_eq!(fake.shard_points("src")[&1], 100);
    assert_eq!(
        fake.placement("src")[&1],
        [(1, "Active".into()), (2, "Recovery".into())]
    );
    let _ = two;

    // A malformed multipart body: 400 in plain text.
    let resp = plain_http()
        .post(fake.url().join("collections/src/snapshots/upload").unwrap())
        .header("content-type", "multipart/form-data; boundary=xyz")
        .body("--xyz\r\ncontent-disposition: form-data; name=\"snapshot\"\r\n\r\nabc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.text().await.unwrap(), "Multipart stream is incomplete");
}

#[tokio::test]
async fn fake_snapshot_routes_take_injected_failures_and_wait_false() {
    let fake = fake(
        "fake_snapshot_routes_take_injected_failures_and_wait_false",
        FakeQdrantOptions::default(),
    )
    .await;
    let client = client_for(fake.url(), None);
    client
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    fake.fail_next("/snapshots", 503, 1);
    let err = client.create_collection_snapshot("c").await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.is_transient());
    let snapshot = client.create_collection_snapshot("c").await.unwrap();
    fake.fail_next("/snapshots/", 500, 1);
    assert!(
        client
            .download_collection_snapshot("c", &snapshot.name)
            .await
            .is_err()
    );

    // `wait=false`: 202 accepted.
    let resp = plain_http()
        .post(
            fake.url()
                .join("collections/c/snapshots?wait=false")
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    assert!(body.get("result").is_none(), "{body}");
    // Other methods on `snapshots/upload` reach the snapshot named `upload`.
    let resp = plain_http()
        .get(fake.url().join("collections/c/snapshots/upload").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.text().await.unwrap(),
        "Not found: Snapshot upload not found"
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshot transfers and timeouts of the client (local servers, no Qdrant needed)
// ---------------------------------------------------------------------------------------------

/// Serves one snapshot route whose body is `chunks`, each sent after `pause`, with a
/// `Content-Length` of `length`.
async fn slow_snapshot_server(chunks: usize, pause: Duration, length: u64) -> Url {
    let app = axum::Router::new().route(
        "/collections/{c}/snapshots/{s}",
        axum::routing::get(move || async move {
            let stream = futures::stream::unfold(0, move |sent| async move {
                if sent == chunks {
                    return None;
                }
                tokio::time::sleep(pause).await;
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[7; 10])),
                    sent + 1,
                ))
            });
            let mut response = axum::response::Response::new(axum::body::Body::from_stream(stream));
            response
                .headers_mut()
                .insert("content-length", length.into());
            response
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Url::parse(&format!("http://{addr}/")).unwrap()
}

#[tokio::test]
async fn downloads_have_an_idle_timeout_not_a_total_one() {
    use futures::StreamExt;
    // 6 chunks, one every 150 ms: 900 ms in all, well over the 300 ms request timeout.
    let url = slow_snapshot_server(6, Duration::from_millis(150), 60).await;
    let conn = QdrantConnection::new(url)
        .with_timeout(Duration::from_millis(300))
        .with_transfer_idle_timeout(Duration::from_millis(600));
    let client = QdrantClient::new(&conn).unwrap();
    let download = client.download_collection_snapshot("c", "s").await.unwrap();
    assert_eq!(download.content_length, Some(60));
    let bytes = download_all("slow server", download).await;
    assert_eq!(bytes.len(), 60);

    // A chunk that takes longer than the idle timeout: an Err item.
    let url = slow_snapshot_server(3, Duration::from_millis(400), 30).await;
    let conn = QdrantConnection::new(url)
        .with_timeout(Duration::from_secs(5))
        .with_transfer_idle_timeout(Duration::from_millis(200));
    let client = QdrantClient::new(&conn).unwrap();
    let items: Vec<_> = client
        .download_collection_snapshot("c", "s")
        .await
        .map(|d| d.stream)
        .unwrap()
        .collect()
        .await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert!(
        matches!(err, QdrantError::Unreachable { message, .. } if message.contains("no data for")),
        "{err:?}"
    );

    // A body that ends before its Content-Length (the connection closes): an Err item.
    let url = slow_snapshot_server(2, Duration::from_millis(1), 50).await;
    let client = QdrantClient::new(&QdrantConnection::new(url)).unwrap();
    let items: Vec<_> = client
        .download_collection_snapshot("c", "s")
        .await
        .unwrap()
        .stream
        .collect()
        .await;
    assert!(
        matches!(items.last(), Some(Err(QdrantError::Unreachable { .. }))),
        "{items:?}"
    );
}

#[tokio::test]
async fn uploads_fail_when_the_body_stalls() {
    let fake = fake(
        "uploads_fail_when_the_body_stalls",
        FakeQdrantOptions::default(),
    )
    .await;
    let conn = QdrantConnection::new(fake.url())
        .with_timeout(Duration::from_millis(300))
        .with_transfer_idle_timeout(Duration::from_millis(300));
    let client = QdrantClient::new(&conn).unwrap();
    // A body that sends one chunk, then nothing for a long time.
    let stalled = futures::stream::unfold(0, |sent| async move {
        if sent > 0 {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Some((
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{}\n")),
            sent + 1,
        ))
    });
    let started = std::time::Instant::now();
    let err = client
        .upload_collection_snapshot("c", reqwest::Body::wrap_stream(stalled), None, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QdrantError::Unreachable { message, .. } if message.contains("stalled")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A slow but moving body is not cut by the 300 ms request timeout.
    fake.set_snapshot_padding(0);
    let source = client_for(fake.url(), None);
    source
        .create_collection("c", &simple_collection(4))
        .await
        .unwrap();
    let snapshot = source.create_collection_snapshot("c").await.unwrap();
    let bytes = download_all(
        "fake",
        source
            .download_collection_snapshot("c", &snapshot.name)
            .await
            .unwrap(),
    )
    .await;
    let chunks: Vec<bytes::Bytes> = bytes
        .chunks(bytes.len().div_ceil(5))
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let slow = futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    use futures::StreamExt;
    client
        .upload_collection_snapshot("d", reqwest::Body::wrap_stream(slow), None, None, None)
        .await
        .unwrap();
    assert!(fake.collection("d").is_some());
}

#[test]
fn snapshot_types_have_qdrants_wire_shapes() {
    let recover = SnapshotRecover {
        priority: Some(SnapshotPriority::NoSync),
        api_key: Some("peer-secret".into()),
        ..SnapshotRecover::new("http://qdrant-1:6333/collections/c/snapshots/s.snapshot")
    };
    assert_eq!(
        serde_json::to_value(&recover).unwrap(),
        json!({"location": "http://qdrant-1:6333/collections/c/snapshots/s.snapshot",
               "priority": "no_sync", "api_key": "peer-secret"})
    );
    let debug = format!("{recover:?}");
    assert!(!debug.contains("peer-secret"), "{debug}");
    assert_eq!(
        serde_json::to_value(SnapshotRecover::new("x")).unwrap(),
        json!({"location": "x"})
    );
    for (priority, wire) in [
        (SnapshotPriority::NoSync, "no_sync"),
        (SnapshotPriority::Snapshot, "snapshot"),
        (SnapshotPriority::Replica, "replica"),
    ] {
        assert_eq!(priority.as_str(), wire);
        assert_eq!(serde_json::to_value(priority).unwrap(), json!(wire));
    }
    // Qdrant's own example description, and one without checksum.
    let described: SnapshotDescription = serde_json::from_value(json!({
        "name": "my-collection-3766212330831337-2024-07-22-08-31-55.snapshot",
        "creation_time": "2022-08-04T10:49:10",
        "size": 1_000_000,
        "checksum": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0"
    }))
    .unwrap();
    assert_eq!(described.size, 1_000_000);
    let uploaded: SnapshotDescription =
        serde_json::from_value(json!({"name": "u.snapshot", "creation_time": null, "size": 3}))
            .unwrap();
    assert_eq!((uploaded.creation_time, uploaded.checksum), (None, None));
}

// ---------------------------------------------------------------------------------------------
// Cluster metadata and peer replacement (peer recovery)
// ---------------------------------------------------------------------------------------------

/// Deletes a cluster metadata key of a real target when dropped (also when a test fails).
struct MetadataCleanup {
    conn: Option<QdrantConnection>,
    key: String,
}

impl Drop for MetadataCleanup {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let key = std::mem::take(&mut self.key);
        let worker = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(client) = QdrantClient::new(&conn) {
                    let _ = client.delete_cluster_metadata(&key).await;
                }
            });
        });
        let _ = worker.join();
    }
}

#[tokio::test]
async fn cluster_metadata_is_stored_read_and_deleted_like_qdrant() {
    let test = "cluster_metadata_is_stored_read_and_deleted_like_qdrant";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let key = unique_name("metadata");
        let _cleanup = MetadataCleanup {
            conn: match target {
                Target::Fake(_) => None,
                Target::Real { .. } => Some(target.connection(target.api_key().as_deref())),
            },
            key: key.clone(),
        };
        let standalone = QdrantError::Server {
            status: 500,
            message: "Service internal error: Qdrant is running in standalone mode".to_owned(),
        };
        if !client.cluster_info().await.unwrap().is_enabled() {
            assert_eq!(
                client.cluster_metadata_keys().await,
                Err(standalone.clone()),
                "{who}"
            );
            assert_eq!(
                client.cluster_metadata(&key).await,
                Err(standalone.clone()),
                "{who}"
            );
            assert_eq!(
                client.set_cluster_metadata(&key, &json!(1)).await,
                Err(standalone.clone()),
                "{who}"
            );
            assert_eq!(
                client.delete_cluster_metadata(&key).await,
                Err(standalone),
                "{who}"
            );
            continue;
        }

        // A key never written reads as null and is not listed.
        assert_eq!(
            client.cluster_metadata(&key).await.unwrap(),
            Value::Null,
            "{who}"
        );
        assert!(
            !client.cluster_metadata_keys().await.unwrap().contains(&key),
            "{who}"
        );

        // Any JSON value is stored as sent, and the key is listed (sorted).
        let value = json!({"ordinal": 2, "stale_peer": 123, "shards": {"c": [0, 1]}});
        client.set_cluster_metadata(&key, &value).await.unwrap();
        assert_eq!(client.cluster_metadata(&key).await.unwrap(), value, "{who}");
        let keys = client.cluster_metadata_keys().await.unwrap();
        assert!(keys.contains(&key), "{who}: {keys:?}");
        assert!(keys.is_sorted(), "{who}: {keys:?}");
        client
            .set_cluster_metadata(&key, &json!("replaced"))
            .await
            .unwrap();
        assert_eq!(
            client.cluster_metadata(&key).await.unwrap(),
            json!("replaced"),
            "{who}"
        );

        // The read-only key reads but may not write.
        if let Some(read_only) = target.read_only_api_key() {
            let reader = target.client_with_key(Some(&read_only));
            assert_eq!(
                reader.cluster_metadata(&key).await.unwrap(),
                json!("replaced"),
                "{who}"
            );
            let denied = QdrantError::Unauthorized {
                status: 403,
                message: READ_ONLY_DENIED_MESSAGE.to_owned(),
            };
            assert_eq!(
                reader.set_cluster_metadata(&key, &json!(2)).await,
                Err(denied.clone()),
                "{who}"
            );
            assert_eq!(
                reader.delete_cluster_metadata(&key).await,
                Err(denied),
                "{who}"
            );
        }

        // Deleting removes it; deleting a missing key succeeds too.
        client.delete_cluster_metadata(&key).await.unwrap();
        assert_eq!(
            client.cluster_metadata(&key).await.unwrap(),
            Value::Null,
            "{who}"
        );
        assert!(
            !client.cluster_metadata_keys().await.unwrap().contains(&key),
            "{who}"
        );
        client.delete_cluster_metadata(&key).await.unwrap();

        // Writing null removes the key as well.
        client.set_cluster_metadata(&key, &json!(1)).await.unwrap();
        client
            .set_cluster_metadata(&key, &Value::Null)
            .await
            .unwrap();
        assert!(
            !client.cluster_metadata_keys().await.unwrap().contains(&key),
            "{who}"
        );
    }
}

#[tokio::test]
async fn fake_cluster_metadata_refuses_bodies_like_actix_and_needs_cluster_mode() {
    let fake = fake(
        "fake_cluster_metadata_refuses_bodies_like_actix_and_needs_cluster_mode",
        FakeQdrantOptions::default(),
    )
    .await;
    let http = plain_http();
    let url = fake.url().join("cluster/metadata/keys/k").unwrap();

    // Not JSON: actix's plain-text errors, nothing stored.
    let reply = http
        .put(url.clone())
        .header("content-type", "text/plain")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    assert_eq!(reply.text().await.unwrap(), "Content type error");
    let reply = http
        .put(url.clone())
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    let body = reply.text().await.unwrap();
    assert!(body.starts_with("Json deserialize error: "), "{body}");
    assert!(fake.cluster_metadata().is_empty());

    // Stored values are visible to the test.
    let client = client_for(fake.url(), None);
    client
        .set_cluster_metadata("k", &json!({"a": [1]}))
        .await
        .unwrap();
    assert_eq!(
        fake.cluster_metadata(),
        [("k".to_owned(), json!({"a": [1]}))].into()
    );
    // The wire shape of a read.
    let raw: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(raw["result"], json!({"a": [1]}));
    assert_eq!(raw["status"], json!("ok"));

    // Outside cluster mode every route is a 500.
    fake.set_cluster_disabled();
    let standalone = Err(QdrantError::Server {
        status: 500,
        message: "Service internal error: Qdrant is running in standalone mode".to_owned(),
    });
    assert_eq!(client.cluster_metadata_keys().await.map(drop), standalone);
    assert_eq!(client.cluster_metadata("k").await.map(drop), standalone);
    assert_eq!(
        client.set_cluster_metadata("k", &json!(1)).await,
        standalone
    );
    assert_eq!(client.delete_cluster_metadata("k").await, standalone);
}

#[tokio::test]
async fn fake_refuses_a_fresh_peer_on_the_uri_of_a_peer_that_holds_shards() {
    let (fake, client) =
        three_peer_fake("fake_refuses_a_fresh_peer_on_the_uri_of_a_peer_that_holds_shards").await;
    client
        .create_collection(
            "c",
            &json!({"vectors": {"size": 4, "distance": "Dot"},
                    "shard_number": 2, "replication_factor": 2}),
        )
        .await
        .unwrap();
    assert_eq!(
        fake.placement("c"),
        placed(&[
            (0, &[(1, "Active"), (2, "Active")]),
            (1, &[(1, "Active"), (3, "Active")]),
        ])
    );
    let peers = |info: ClusterInfo| {
        info.peers
            .iter()
            .map(|(id, p)| (*id, p.uri.clone()))
            .collect::<Vec<_>>()
    };
    let before = peers(client.cluster_info().await.unwrap());

    // Peer 3's volume came back empty: the new peer 7 on the same URI is refused while 3 holds
    // a replica, whatever its state; consensus is unchanged.
    let refusal = "peer URI http://qdrant-2.qdrant-headless:6335/ already used by peer 3 \
                   which still has shards, remove its shards first or use a different URI";
    assert_eq!(
        fake.bootstrap_peer(7, "http://qdrant-2.qdrant-headless:6335"),
        Err(refusal.to_owned())
    );
    fake.set_replica_state("c", 1, 3, "Dead");
    assert_eq!(
        fake.bootstrap_peer(7, "http://qdrant-2.qdrant-headless:6335/"),
        Err(refusal.to_owned())
    );
    assert_eq!(peers(client.cluster_info().await.unwrap()), before);
    // Nothing can be copied to a peer that is not a member yet.
    assert_eq!(
        client
            .update_collection_cluster("c", &replicate_shard(1, 1, 7))
            .await,
        Err(bad_request("Bad request: Peer 7 does not exist"))
    );
    // Nor can the stale peer leave while it is listed with a (Dead) replica.
    assert_eq!(
        client.remove_peer(3).await,
        Err(bad_request(
            "Bad request: Cannot remove peer 3 as there are shards on it"
        ))
    );

    // Its Dead replica is dropped (another Active one remains); then the peer is removed
    // without force, and the fresh peer joins on the same URI.
    client
        .update_collection_cluster("c", &drop_replica(1, 3))
        .await
        .unwrap();
    client.remove_peer(3).await.unwrap();
    fake.bootstrap_peer(7, "http://qdrant-2.qdrant-headless:6335")
        .unwrap();
    let after = peers(client.cluster_info().await.unwrap());
    assert_eq!(
        after,
        [
            (1, "http://qdrant-0.qdrant-headless:6335/".to_owned()),
            (2, "http://qdrant-1.qdrant-headless:6335/".to_owned()),
            (7, "http://qdrant-2.qdrant-headless:6335/".to_owned()),
        ]
    );

    // Now the shard is copied to it, and is Active there once the transfer ends.
    client
        .update_collection_cluster("c", &replicate_shard(1, 1, 7))
        .await
        .unwrap();
    assert_eq!(
        fake.placement("c")[&1],
        [(1, "Active".to_owned()), (7, "Recovery".to_owned())]
    );
    assert_eq!(fake.complete_transfers(), 1);
    assert_eq!(
        fake.placement("c")[&1],
        [(1, "Active".to_owned()), (7, "Active".to_owned())]
    );
}

#[tokio::test]
async fn fake_lets_a_fresh_peer_replace_an_empty_one_and_join_on_a_new_uri() {
    let (fake, client) =
        three_peer_fake("fake_lets_a_fresh_peer_replace_an_empty_one_and_join_on_a_new_uri").await;
    // Peer 3 holds nothing: the fresh peer 9 replaces it directly (Qdrant removes 3 itself).
    fake.bootstrap_peer(9, "http://qdrant-2.qdrant-headless:6335")
        .unwrap();
    let ids: Vec<u64> = client
        .cluster_info()
        .await
        .unwrap()
        .peers
        .keys()
        .copied()
        .collect();
    assert_eq!(ids, [1, 2, 9]);
    // A URI nobody uses: added. The same id again: its URI is updated.
    fake.bootstrap_peer(10, "http://qdrant-3.qdrant-headless:6335")
        .unwrap();
    fake.bootstrap_peer(10, "http://qdrant-4.qdrant-headless:6335")
        .unwrap();
    let info = client.cluster_info().await.unwrap();
    assert_eq!(
        info.peers.keys().copied().collect::<Vec<_>>(),
        [1, 2, 9, 10]
    );
    assert_eq!(info.peers[&10].uri, "http://qdrant-4.qdrant-headless:6335/");
    assert_eq!(
        fake.bootstrap_peer(11, "not a uri"),
        Err("Failed to parse uri: relative URL without a base".to_owned())
    );
    fake.set_cluster_disabled();
    assert!(fake.bootstrap_peer(12, "http://x:6335").is_err());
}

// ---------------------------------------------------------------------------------------------
// Points: scroll, upsert, retrieve, count, random sample (fake and real)
// ---------------------------------------------------------------------------------------------

/// Named dense (Cosine and Dot), a multivector and a sparse vector: every shape a migration
/// must carry.
fn mixed_vectors_collection() -> Value {
    json!({
        "vectors": {
            "text": {"size": 4, "distance": "Cosine"},
            "image": {"size": 3, "distance": "Dot"},
            "colbert": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}}
        },
        "sparse_vectors": {"keywords": {}}
    })
}

fn mixed_point(id: Value, n: u64) -> Value {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f32;
    json!({
        "id": id,
        "vector": {
            "text": [1.0 + f, 2.0, 3.0, 4.0],
            "image": [0.5, 0.25, f],
            "colbert": [[0.5, 1.0], [f, 0.25]],
            "keywords": {"indices": [1, 5, 9 + n], "values": [0.5, 0.25, 1.0]}
        },
        "payload": {"n": n, "tags": ["a", "b"], "nested": {"x": 1.5, "ok": true}}
    })
}

#[tokio::test]
async fn points_round_trip_through_scroll_upsert_and_retrieve() {
    let test = "points_round_trip_through_scroll_upsert_and_retrieve";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let source = cleanup.track(unique_name("points-src"));
        let copy = cleanup.track(unique_name("points-dst"));
        for name in [&source, &copy] {
            client
                .create_collection(name, &mixed_vectors_collection())
                .await
                .unwrap_or_else(|e| panic!("{who}: create {name}: {e}"));
        }
        let uuid = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26";
        let mut written: Vec<Value> = (1..=6u64).map(|n| mixed_point(json!(n * 10), n)).collect();
        written.push(mixed_point(json!(uuid), 7));
        client
            .upsert_points(&source, &written)
            .await
            .unwrap_or_else(|e| panic!("{who}: upsert: {e}"));

        // Scroll in pages of 3: ids in order, numbers before the UUID, cursor to the next id.
        let mut pages = vec![];
        let mut offset: Option<Value> = None;
        loop {
            let page = client
                .scroll_points(&source, offset.as_ref(), 3)
                .await
                .unwrap_or_else(|e| panic!("{who}: scroll: {e}"));
            pages.push(page.points.len());
            let done = page.next_page_offset.is_none();
            offset = page.next_page_offset.clone();
            client
                .upsert_points(&copy, &page.points)
                .await
                .unwrap_or_else(|e| panic!("{who}: upsert the scrolled page: {e}"));
            if done {
                break;
            }
        }
        assert_eq!(pages, [3, 3, 1], "{who}: page sizes");
        let scrolled = client.scroll_points(&source, None, 100).await.unwrap();
        let ids: Vec<Value> = scrolled.points.iter().map(|p| p["id"].clone()).collect();
        assert_eq!(
            ids,
            [
                json!(10),
                json!(20),
                json!(30),
                json!(40),
                json!(50),
                json!(60),
                json!(uuid)
            ],
            "{who}: scroll order"
        );
        let second = scrolled.points[1].clone();
        assert_eq!(
            second["payload"],
            json!({"n": 2, "tags": ["a", "b"], "nested": {"x": 1.5, "ok": true}}),
            "{who}: payload as written"
        );
        assert_eq!(
            second["vector"]["image"],
            json!([0.5, 0.25, 2.0]),
            "{who}: Dot kept"
        );
        assert_eq!(
            second["vector"]["colbert"],
            json!([[0.5, 1.0], [2.0, 0.25]]),
            "{who}: multivector kept"
        );
        assert_eq!(
            second["vector"]["keywords"],
            json!({"indices": [1, 5, 11], "values": [0.5, 0.25, 1.0]}),
            "{who}: sparse vector kept"
        );
        let text: Vec<f64> = second["vector"]["text"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let norm = text.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "{who}: Cosine vector normalized: {text:?}"
        );
        assert!(
            (text[0] - 3.0 / 38f64.sqrt()).abs() < 1e-5,
            "{who}: {text:?}"
        );

        // Retrieve by id: both sides hold the same points; a missing id is left out.
        let mut asked = ids.clone();
        asked.push(json!(999));
        let from_source = client.retrieve_points(&source, &asked).await.unwrap();
        let from_copy = client.retrieve_points(&copy, &asked).await.unwrap();
        assert_eq!(
            from_source.len(),
            7,
            "{who}: retrieve leaves missing ids out"
        );
        assert_eq!(from_copy.len(), 7, "{who}: copy");
        for p in &from_source {
            let q = from_copy
                .iter()
                .find(|q| q["id"] == p["id"])
                .unwrap_or_else(|| panic!("{who}: {} missing in the copy", p["id"]));
            assert!(
                reconcile_lib::qdrant::same_point(p, q),
                "{who}: source {p} and copy {q} differ"
            );
        }
        for name in [&source, &copy] {
            assert_eq!(client.count_points(name, true).await.unwrap(), 7, "{who}");
        }
        // Upserting again replaces, never duplicates.
        client.upsert_points(&copy, &scrolled.points).await.unwrap();
        assert_eq!(client.count_points(&copy, true).await.unwrap(), 7, "{who}");

        // A random sample: distinct ids of stored points.
        let sample = client.sample_point_ids(&source, 3).await.unwrap();
        assert_eq!(sample.len(), 3, "{who}: sample {sample:?}");
        assert!(
            sample.iter().all(|id| ids.contains(id)),
            "{who}: {sample:?}"
        );
        let mut distinct = sample.clone();
        distinct.sort_by_key(ToString::to_string);
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{who}: {sample:?}");

        // The read-only key may read points, not write them.
        let ro = target.client_with_key(target.read_only_api_key().as_deref());
        assert_eq!(
            ro.scroll_points(&source, None, 2)
                .await
                .unwrap()
                .points
                .len(),
            2,
            "{who}"
        );
        assert_eq!(
            ro.retrieve_points(&source, &ids[..2]).await.unwrap().len(),
            2,
            "{who}"
        );
        match ro.upsert_points(&source, &written[..1]).await {
            Err(QdrantError::Unauthorized { .. }) => {}
            other => panic!("{who}: read-only upsert: {other:?}"),
        }
    }
}

#[tokio::test]
async fn points_that_do_not_fit_the_collection_are_refused_like_qdrant() {
    let test = "points_that_do_not_fit_the_collection_are_refused_like_qdrant";
    for target in targets(test).await {
        let who = target.describe();
        let client = target.client();
        let mut cleanup = Cleanup::new(&target);
        let name = cleanup.track(unique_name("points-bad"));
        client
            .create_collection(&name, &mixed_vectors_collection())
            .await
            .unwrap();
        let mut wrong_size = mixed_point(json!(1), 1);
        wrong_size["vector"]["image"] = json!([1.0, 2.0]);
        let message = bad_request_message(
            &who,
            "a vector of the wrong size",
            client.upsert_points(&name, &[wrong_size]).await,
        );
        assert!(
            message.starts_with("Wrong input: Vector dimension error: expected dim: 3, got 2"),
            "{who}: {message}"
        );
        let mut unknown = mixed_point(json!(2), 2);
        unknown["vector"]["audio"] = json!([1.0]);
        let message = bad_request_message(
            &who,
            "an unknown vector name",
            client.upsert_points(&name, &[unknown]).await,
        );
        assert!(
            message.starts_with("Wrong input: Not existing vector name error: audio"),
            "{who}: {message}"
        );
        assert_eq!(
            client.count_points(&name, true).await.unwrap(),
            0,
            "{who}: nothing stored"
        );
        match client
            .scroll_points("op-contract-no-such-collection", None, 1)
            .await
        {
            Err(QdrantError::NotFound { .. }) => {}
            other => panic!("{who}: scroll of a missing collection: {other:?}"),
        }
    }
}
