//! Qdrant contract tests (TESTING.md, layer 4).
//!
//! Every test in the shared part runs against the in-process fake Qdrant, and also against a
//! real Qdrant when `QDRANT_URL` is set (`QDRANT_API_KEY` when the server has a key,
//! `QDRANT_CA_BUNDLE` = path of a PEM CA bundle for an https server with a private CA). When
//! the real server and the fake disagree, the fake is wrong. Each test prints the targets it
//! ran against (`cargo test ... -- --nocapture` shows it).
//!
//! The fake-only part covers what cannot be arranged on a real server from outside: exact
//! cluster states, readiness flips, injected failures, slow replies, headers sent.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use reconcile_lib::qdrant::{
    ApiKey, ClusterInfo, QdrantClient, QdrantConnection, QdrantError, RaftRole,
};
use reconcile_lib::testing::qdrant::{
    ClusterState, FakeQdrant, FakeQdrantOptions, MISSING_KEY_MESSAGE, WRONG_KEY_MESSAGE,
};
use url::Url;

/// The read-write key the fake target is started with.
const FAKE_KEY: &str = "fake-read-write-key";

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
        ca_bundle_pem: Option<Vec<u8>>,
    },
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Fake(fake) => format!("the in-process fake Qdrant at {}", fake.url()),
            Target::Real { url, api_key, .. } => format!(
                "the REAL Qdrant at {url} ({})",
                if api_key.is_some() {
                    "with QDRANT_API_KEY"
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

/// The fake (always, with [`FAKE_KEY`]) and the real Qdrant when `QDRANT_URL` is set. Prints
/// which targets `test` runs against.
async fn targets(test: &str) -> Vec<Target> {
    let fake = FakeQdrant::start(FakeQdrantOptions {
        api_key: Some(FAKE_KEY.to_owned()),
        ..FakeQdrantOptions::default()
    })
    .await;
    let mut targets = vec![Target::Fake(fake)];
    match std::env::var("QDRANT_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) => {
            let url = Url::parse(url.trim())
                .unwrap_or_else(|e| panic!("QDRANT_URL={url:?} is not a URL: {e}"));
            let api_key = std::env::var("QDRANT_API_KEY")
                .ok()
                .filter(|k| !k.is_empty());
            let ca_bundle_pem = std::env::var("QDRANT_CA_BUNDLE")
                .ok()
                .filter(|p| !p.is_empty())
                .map(|path| {
                    std::fs::read(&path)
                        .unwrap_or_else(|e| panic!("QDRANT_CA_BUNDLE={path:?}: {e}"))
                });
            targets.push(Target::Real {
                url,
                api_key,
                ca_bundle_pem,
            });
        }
        None => println!("[{test}] QDRANT_URL is not set: the real-Qdrant target is skipped"),
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
