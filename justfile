# Every routine command of the Qdrant operator. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the recipes.
default:
    @just --list

# Build every crate.
build:
    cargo build --workspace --all-targets

# The whole test suite (fake API server, fake Qdrant, a real local S3 server: moto, started
# here once for every test process; a real single-node Qdrant from ../shared/qdrant/qdrant or
# $QDRANT_BIN, started here too, unless QDRANT_URL names one already).
test: s3-deps
    #!/usr/bin/env bash
    set -euo pipefail
    tmp=$(mktemp -d)
    # The server stops when its stdin closes, i.e. when this recipe exits.
    exec 3> >(python3 crates/backup-controller/testdata/s3_server.py > "$tmp/s3.json" 2>"$tmp/s3.log")
    s3_pid=$!
    # It loads and exercises all its S3 code before it answers (see the script): up to 120 s on a
    # busy machine; stop waiting early if it exits.
    for _ in $(seq 1 600); do [ -s "$tmp/s3.json" ] && break; kill -0 "$s3_pid" 2>/dev/null || break; sleep 0.2; done
    [ -s "$tmp/s3.json" ] || { cat "$tmp/s3.log" >&2; echo "the S3 test server did not start" >&2; exit 1; }
    eval "$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("export S3_ENDPOINT=%s S3_ACCESS_KEY_ID=%s S3_SECRET_ACCESS_KEY=%s S3_REGION=%s" % (c["endpoint"], c["accessKeyId"], c["secretAccessKey"], c["region"]))' "$tmp/s3.json")"
    echo "S3 test server: $S3_ENDPOINT"
    # A real single-node Qdrant for the Qdrant contract suite (cluster mode, so the
    # shard-placement cases see a cluster; a read-write and a read-only key, so the auth cases
    # run), on free ports of 127.0.0.1 with its storage under $tmp, stopped when this recipe
    # exits. Unless QDRANT_URL already names a server.
    qdrant_bin="${QDRANT_BIN:-../shared/qdrant/qdrant}"
    if [ -n "${QDRANT_URL:-}" ]; then
        echo "Qdrant contract suite: against QDRANT_URL=$QDRANT_URL"
    elif [ -n "${QDRANT_BIN:-}" ] && [ ! -x "$QDRANT_BIN" ]; then
        echo "QDRANT_BIN=$QDRANT_BIN is not an executable file" >&2
        exit 1
    elif [ -x "$qdrant_bin" ]; then
        QDRANT_BIN="$(cd "$(dirname "$qdrant_bin")" && pwd)/$(basename "$qdrant_bin")"
        export QDRANT_BIN
        mkdir -p "$tmp/qdrant"
        read -r qdrant_http qdrant_grpc qdrant_p2p < <(python3 -c 'import socket; ss=[socket.socket() for _ in range(3)]; [s.bind(("127.0.0.1", 0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])')
        qdrant_key="test-key-$RANDOM$RANDOM$RANDOM"
        qdrant_ro_key="test-read-only-key-$RANDOM$RANDOM$RANDOM"
        (cd "$tmp/qdrant" && exec env \
            QDRANT__SERVICE__HOST=127.0.0.1 QDRANT__SERVICE__HTTP_PORT="$qdrant_http" \
            QDRANT__SERVICE__GRPC_PORT="$qdrant_grpc" QDRANT__CLUSTER__ENABLED=true \
            QDRANT__CLUSTER__P2P__PORT="$qdrant_p2p" QDRANT__TELEMETRY_DISABLED=true \
            QDRANT__STORAGE__STORAGE_PATH="$tmp/qdrant/storage" \
            QDRANT__STORAGE__SNAPSHOTS_PATH="$tmp/qdrant/snapshots" \
            QDRANT__SERVICE__API_KEY="$qdrant_key" QDRANT__SERVICE__READ_ONLY_API_KEY="$qdrant_ro_key" \
            "$QDRANT_BIN" --uri "http://127.0.0.1:$qdrant_p2p" </dev/null >"$tmp/qdrant/qdrant.log" 2>&1) &
        qdrant_pid=$!
        # Stop it (SIGTERM, then SIGKILL after 10 s) and remove its storage; the log stays.
        stop_qdrant() {
            kill "$qdrant_pid" 2>/dev/null || return 0
            for _ in $(seq 1 50); do kill -0 "$qdrant_pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$qdrant_pid" 2>/dev/null || true
            wait "$qdrant_pid" 2>/dev/null || true
            rm -rf "$tmp/qdrant/storage" "$tmp/qdrant/snapshots"
        }
        trap stop_qdrant EXIT
        for _ in $(seq 1 300); do
            curl -fsS -o /dev/null "http://127.0.0.1:$qdrant_http/readyz" 2>/dev/null && break
            kill -0 "$qdrant_pid" 2>/dev/null || break
            sleep 0.2
        done
        curl -fsS -o /dev/null "http://127.0.0.1:$qdrant_http/readyz" 2>/dev/null || {
            tail -n 50 "$tmp/qdrant/qdrant.log" >&2
            echo "the Qdrant test server ($QDRANT_BIN) did not become ready; log: $tmp/qdrant/qdrant.log" >&2
            exit 1
        }
        export QDRANT_URL="http://127.0.0.1:$qdrant_http/" QDRANT_API_KEY="$qdrant_key" \
            QDRANT_READ_ONLY_API_KEY="$qdrant_ro_key" QDRANT_CALLBACK_HOST=127.0.0.1
        echo "Qdrant test server: $QDRANT_URL ($("$QDRANT_BIN" --version 2>/dev/null || echo "$QDRANT_BIN"), log $tmp/qdrant/qdrant.log)"
    else
        echo "SKIP: no Qdrant server binary at $(realpath -m "$qdrant_bin") (set QDRANT_BIN or QDRANT_URL): the Qdrant contract suite runs against the fake only"
    fi
    if command -v cargo-nextest >/dev/null; then
        cargo nextest run --workspace --all-features --no-fail-fast
    else
        cargo test --workspace --all-features --no-fail-fast
    fi

# Install the local S3 server the backup tests run against (moto, from PyPI), unless this
# version is there (testdata/s3_server.py patches moto's internals: another version, e.g.
# 5.2.1, answers CompleteMultipartUpload with a root element the S3 SDK refuses).
s3-deps moto="5.2.5":
    @python3 -c 'import sys, boto3, moto.server; sys.exit(moto.__version__ != sys.argv[1])' '{{moto}}' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]=={{moto}}'

# Write crds/ and the Helm chart's deploy/helm/qdrant-operator/crds/ from the Rust types.
crds:
    cargo run -q -p api-types --bin crdgen -- crds --chart deploy/helm/qdrant-operator/crds

# Fail when crds/ or the Helm chart's crds/ differs from what crdgen writes (the test suite
# checks this too).
crds-check:
    #!/usr/bin/env bash
    set -euo pipefail
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cargo run -q -p api-types --bin crdgen -- "$tmp/crds" --chart "$tmp/chart-crds" >/dev/null
    diff -ru crds "$tmp/crds" || { echo "crds/ is stale: run 'just crds' and commit" >&2; exit 1; }
    diff -ru deploy/helm/qdrant-operator/crds "$tmp/chart-crds" || { echo "deploy/helm/qdrant-operator/crds/ is stale: run 'just crds' and commit" >&2; exit 1; }

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

# Render the Helm chart as `helm template` would, without helm (crates/chart-render); values
# files are merged over the chart's values.yaml, e.g. `just helm-render my-values.yaml`.
helm-render *values:
    cargo run -q -p chart-render --bin chart-render -- deploy/helm/qdrant-operator {{values}}

# End-to-end tests against the current kube context (skipped when no cluster is reachable).
e2e:
    bash e2e/run.sh

# Benchmarks: print figures (the client's nesting check in MiB/s beside serde_json, reconcile
# throughput, no-op writes and reads, peak RSS). The
# backup bench starts a real Qdrant (../shared/qdrant/qdrant or $QDRANT_BIN), writes
# BENCH_SNAPSHOT_MIB MiB of vectors into one shard (default 1024; about 5x that free in TMPDIR),
# and streams a shard snapshot of it into moto by the backup pipeline beside
# `curl | aws s3 cp -`: write time, snapshot size, MiB/s of both, the controller's peak RSS.
# Without the Qdrant binary it prints a SKIP line.
bench: s3-deps
    #!/usr/bin/env bash
    set -euo pipefail
    cargo run --release -q -p reconcile-lib --example depth_bench
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
