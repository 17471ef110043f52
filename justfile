# Every routine command of the Qdrant operator. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the recipes.
default:
    @just --list

# Build every crate.
build:
    cargo build --workspace --all-targets

# The whole test suite (fake API server, fake Qdrant, a real local S3 server: moto, started
# here once for every test process; a real Qdrant too when QDRANT_URL is set).
test: s3-deps
    #!/usr/bin/env bash
    set -euo pipefail
    tmp=$(mktemp -d)
    # The server stops when its stdin closes, i.e. when this recipe exits.
    exec 3> >(python3 crates/backup-controller/testdata/s3_server.py > "$tmp/s3.json" 2>"$tmp/s3.log")
    for _ in $(seq 1 100); do [ -s "$tmp/s3.json" ] && break; sleep 0.2; done
    [ -s "$tmp/s3.json" ] || { cat "$tmp/s3.log" >&2; echo "the S3 test server did not start" >&2; exit 1; }
    eval "$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("export S3_ENDPOINT=%s S3_ACCESS_KEY_ID=%s S3_SECRET_ACCESS_KEY=%s S3_REGION=%s" % (c["endpoint"], c["accessKeyId"], c["secretAccessKey"], c["region"]))' "$tmp/s3.json")"
    echo "S3 test server: $S3_ENDPOINT"
    if command -v cargo-nextest >/dev/null; then
        cargo nextest run --workspace --all-features --no-fail-fast
    else
        cargo test --workspace --all-features --no-fail-fast
    fi

# Install the local S3 server the backup tests run against (moto, from PyPI), unless present.
s3-deps:
    @python3 -c 'import moto.server, boto3' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'

# Write crds/ from the Rust types.
crds:
    cargo run -q -p api-types --bin crdgen -- crds

# Fail when crds/ differs from what crdgen writes (the test suite checks this too).
crds-check:
    #!/usr/bin/env bash
    set -euo pipefail
    tmp=$(mktemp -d)
    cargo run -q -p api-types --bin crdgen -- "$tmp" >/dev/null
    diff -ru crds "$tmp" || { echo "crds/ is stale: run 'just crds' and commit" >&2; exit 1; }

# Format check and clippy with warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Print the objects the controller would apply for a QdrantCluster file (no cluster needed).
render file="examples/qdrantcluster-3-node.yaml":
    cargo run -q -p cluster-controller -- render -f {{file}}

# Run a controller against the current kube context (leader election off), e.g.
# `just run cluster-controller` or `just run collection-controller --namespace search`.
run controller="cluster-controller" *args:
    cargo run -p {{controller}} -- run --leader-election=false {{args}}

# Render the kustomize base (CRDs + controller) as installed on a cluster.
deploy-render:
    kubectl kustomize deploy/base

# End-to-end tests against the current kube context (skipped when no cluster is reachable).
e2e:
    bash e2e/run.sh

# Benchmarks: print figures (reconcile throughput, no-op writes and reads, peak RSS; backup
# streaming throughput beside `curl | aws s3 cp`, env BENCH_SNAPSHOT_MIB, default 2048).
bench: s3-deps
    #!/usr/bin/env bash
    set -euo pipefail
    cargo run --release -q -p cluster-controller --example cluster_bench
    cargo run --release -q -p collection-controller --example collection_bench
    # The backup bench's baseline needs aws-cli (PyPI); without it the bench says it skipped it.
    command -v aws >/dev/null || python3 -m pip install --quiet --disable-pip-version-check awscli || true
    # pip's scripts directory may not be on PATH (pyenv shims are not rehashed by `-m pip`).
    PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
    export PATH
    cargo run --release -q -p backup-controller --example backup_bench

# What CI runs: lint, CRD freshness, all tests.
ci: lint crds-check test
