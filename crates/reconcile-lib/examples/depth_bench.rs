//! What the client's nesting check ([`reconcile_lib::depth`]) costs: a 10,000-object list
//! page (about 20 MiB of JSON, a typical QdrantCluster shape) cut into 64 KiB chunks as they
//! would arrive, split and measured, beside serde_json decoding the same bytes into a
//! `Value` (which kube does after it). Prints MiB/s of both and their ratio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::VecDeque, time::Instant};

use bytes::Bytes;
use reconcile_lib::depth::Splitter;
use serde_json::json;

fn main() {
    let items: Vec<_> = (0..10_000)
        .map(|i| {
            json!({"apiVersion": "qdrant.operator.dev/v1alpha1", "kind": "QdrantCluster",
            "metadata": {"name": format!("cluster-{i}"), "namespace": "ns", "resourceVersion": "1",
                "annotations": {"note": "x".repeat(1500)},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:config": {"f:storage": {"f:optimizers": {}}}}}}]},
            "spec": {"replicas": 3, "image": "qdrant/qdrant:v1.18.3",
                "config": {"storage": {"optimizers": {"deleted_threshold": 0.2}}, "service": {"max_request_size_mb": 64}},
                "pod": {"env": [{"name": "A", "value": "b"}], "resources": {"requests": {"cpu": "1", "memory": "4Gi"}}}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "3 of 3 peers ready"}]}})
        })
        .collect();
    let body = Bytes::from(
        serde_json::to_vec(&json!({"kind": "QdrantClusterList", "items": items})).unwrap(),
    );
    let mib = body.len() as f64 / (1024.0 * 1024.0);
    let rounds = 5;

    let started = Instant::now();
    let mut out_len = 0;
    for _ in 0..rounds {
        let mut splitter = Splitter::default();
        let mut out = VecDeque::new();
        for at in (0..body.len()).step_by(64 * 1024) {
            splitter.push(body.slice(at..(at + 64 * 1024).min(body.len())), &mut out);
        }
        splitter.finish(&mut out);
        out_len = out.iter().map(Bytes::len).sum();
    }
    let split = started.elapsed().as_secs_f64() / f64::from(rounds);
    assert_eq!(out_len, body.len(), "a shallow list passes unchanged");

    let started = Instant::now();
    for _ in 0..rounds {
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        std::hint::black_box(value);
    }
    let decode = started.elapsed().as_secs_f64() / f64::from(rounds);

    println!(
        "depth check: {mib:.1} MiB list, split+measure {:.0} MiB/s, serde_json decode {:.0} MiB/s: the check adds {:.0}% to decoding",
        mib / split,
        mib / decode,
        100.0 * split / decode
    );
}
