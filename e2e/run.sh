#!/usr/bin/env bash
# End-to-end test of the qdrant-operator against the cluster of the current kube context.
#
# Installs the CRDs, the cluster-controller and the collection-controller from deploy/base
# (server-side apply), then runs two tests in a fresh namespace:
#   cluster     creates examples/qdrantcluster-3-node.yaml, waits for Ready, then writes points
#               through pod demo-0 and reads them back through pod demo-1;
#   collection  creates examples/qdrantcollection.yaml on that cluster, waits for Ready, checks
#               the collection, its payload indexes and its alias through Qdrant's REST API,
#               changes a mutable field and waits for Qdrant to report it, deletes the object
#               (deletionPolicy Retain: the collection stays), then creates and deletes a
#               second collection with deletionPolicy Delete (the collection goes).
# The collection test needs the cluster, so it runs only when the cluster test passed; a test
# that did not run counts as failed. The test namespace is deleted on exit; the operator
# installation is left in place (re-applying it is idempotent).
#
# Environment:
#   OPERATOR_IMAGE          controller image to run instead of the one in deploy/base
#                           (e.g. a locally built image loaded into kind)
#   E2E_READY_TIMEOUT       how long to wait for the QdrantCluster to be Ready (default 15m)
#   E2E_COLLECTION_TIMEOUT  how long to wait for a QdrantCollection to be Ready (default 5m)
#   E2E_KEEP_NAMESPACE=1    keep the test namespace after the run (for debugging)
#
# Prints `SKIP: ...` and exits 0 when no cluster is reachable. Otherwise the last line is
# `e2e: N passed, M failed` over the two tests: `e2e: 2 passed, 0 failed` (exit 0), or e.g.
# `e2e: 1 passed, 1 failed` (exit non-zero).

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OPERATOR_NAMESPACE=qdrant-operator
CONTROLLER_DEPLOYMENTS=(cluster-controller collection-controller)
DEFAULT_IMAGE=ghcr.io/qdrant-operator/qdrant-operator
CRDS=(qdrantclusters.qdrant.operator.dev qdrantcollections.qdrant.operator.dev)
EXAMPLE="$REPO_ROOT/examples/qdrantcluster-3-node.yaml"
CLUSTER=demo
COLLECTION_EXAMPLE="$REPO_ROOT/examples/qdrantcollection.yaml"
COLLECTION=articles
ALIAS=articles-current
# A second, small collection, created and deleted with deletionPolicy Delete.
SCRATCH=scratch
READY_TIMEOUT=${E2E_READY_TIMEOUT:-15m}
COLLECTION_TIMEOUT=${E2E_COLLECTION_TIMEOUT:-5m}
OPERATOR_IMAGE=${OPERATOR_IMAGE:-}
KEEP_NAMESPACE=${E2E_KEEP_NAMESPACE:-0}

log() { printf '==> %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

# --- Is there a cluster at all? ---------------------------------------------------------------
context=$(kubectl config current-context 2>/dev/null || true)
if ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "SKIP: no Kubernetes cluster reachable from the current kube context (${context:-none})"
  exit 0
fi

for tool in curl jq base64; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is required"
done

NS="qdrant-e2e-$(printf '%04x%04x' "$RANDOM" "$RANDOM")"
WORKDIR=$(mktemp -d)
NS_CREATED=0
PF_PIDS=()
# The tests in the order they run; CURRENT_TEST is the one running, PASSED_TESTS those passed.
TESTS=(cluster collection)
CURRENT_TEST=cluster
PASSED_TESTS=()

diagnostics() {
  local deployment
  echo "---- diagnostics ----------------------------------------------------------------"
  if [ "$NS_CREATED" = 1 ]; then
    kubectl -n "$NS" get qdrantclusters,statefulsets,pods,services,pvc -o wide
    kubectl -n "$NS" get qdrantcluster "$CLUSTER" -o yaml
    if [ "$CURRENT_TEST" = collection ]; then
      kubectl -n "$NS" get qdrantcollections -o yaml
    fi
    kubectl -n "$NS" get events --sort-by=.lastTimestamp | tail -n 40
    for i in 0 1 2; do
      echo "-- logs of $CLUSTER-$i"
      kubectl -n "$NS" logs "$CLUSTER-$i" --tail=40
    done
  fi
  kubectl -n "$OPERATOR_NAMESPACE" get deployment,pods -o wide
  for deployment in "${CONTROLLER_DEPLOYMENTS[@]}"; do
    echo "-- $deployment"
    kubectl -n "$OPERATOR_NAMESPACE" logs -l "app.kubernetes.io/name=$deployment" \
      --prefix --tail=80
  done
  echo "---------------------------------------------------------------------------------"
}

# Deletes the QdrantCollections left in the test namespace while their cluster still runs, so
# the collection-controller can honour their finalizers. If that takes more than 2 minutes,
# removes the finalizers, so the namespace can go.
delete_collections() {
  local name
  kubectl -n "$NS" get qdrantcollections -o name 2>/dev/null | grep -q . || return 0
  log "deleting the QdrantCollections left in $NS"
  kubectl -n "$NS" delete qdrantcollections --all --wait=true --timeout=2m >/dev/null && return 0
  echo "warning: QdrantCollections still present after 2m; removing their finalizers" >&2
  for name in $(kubectl -n "$NS" get qdrantcollections -o name 2>/dev/null); do
    kubectl -n "$NS" patch "$name" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null
  done
}

cleanup() {
  local rc=$?
  set +e
  for pid in "${PF_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  local passed=${#PASSED_TESTS[@]} failed test
  failed=$((${#TESTS[@]} - passed))
  if [ "$failed" != 0 ]; then
    diagnostics 2>&1
  fi
  if [ "$NS_CREATED" = 1 ]; then
    if [ "$KEEP_NAMESPACE" = 1 ]; then
      log "keeping namespace $NS (E2E_KEEP_NAMESPACE=1)"
    else
      delete_collections
      log "deleting namespace $NS"
      kubectl delete namespace "$NS" --wait=true --timeout=5m >/dev/null ||
        echo "warning: namespace $NS was not deleted within 5m" >&2
    fi
  fi
  rm -rf "$WORKDIR"
  for test in "${TESTS[@]}"; do
    if [[ " ${PASSED_TESTS[*]} " == *" $test "* ]]; then
      echo "test $test: passed"
    elif [ "$test" = "$CURRENT_TEST" ]; then
      echo "test $test: failed"
    else
      echo "test $test: not run (counted as failed)"
    fi
  done
  echo "e2e: $passed passed, $failed failed"
  if [ "$failed" = 0 ]; then
    exit 0
  fi
  if [ "$rc" = 0 ]; then rc=1; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "kube context: ${context:-none}; test namespace: $NS"

# --- Install the CRDs and the controller ------------------------------------------------------
install_dir="$REPO_ROOT/deploy/base"
if [ -n "$OPERATOR_IMAGE" ]; then
  # An overlay over a copy of deploy/ and crds/ (kustomize paths are relative), replacing
  # the image: the equivalent of `kustomize edit set image`.
  mkdir -p "$WORKDIR/repo"
  cp -R "$REPO_ROOT/deploy" "$REPO_ROOT/crds" "$WORKDIR/repo/"
  mkdir -p "$WORKDIR/repo/deploy/e2e"
  case "$OPERATOR_IMAGE" in
    *@*) image_fields="newName: ${OPERATOR_IMAGE%@*}
    digest: ${OPERATOR_IMAGE#*@}" ;;
    *)
      last=${OPERATOR_IMAGE##*/}
      if [ "${last#*:}" != "$last" ]; then
        image_fields="newName: ${OPERATOR_IMAGE%:*}
    newTag: ${OPERATOR_IMAGE##*:}"
      else
        image_fields="newName: $OPERATOR_IMAGE"
      fi
      ;;
  esac
  cat >"$WORKDIR/repo/deploy/e2e/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base
images:
  - name: $DEFAULT_IMAGE
    $image_fields
EOF
  install_dir="$WORKDIR/repo/deploy/e2e"
  log "installing CRDs and controllers (image $OPERATOR_IMAGE)"
else
  log "installing CRDs and controllers from deploy/base"
fi
kubectl apply --server-side -k "$install_dir"
for crd in "${CRDS[@]}"; do
  kubectl wait "crd/$crd" --for=condition=Established --timeout=60s
done
for deployment in "${CONTROLLER_DEPLOYMENTS[@]}"; do
  kubectl -n "$OPERATOR_NAMESPACE" rollout status "deployment/$deployment" --timeout=5m
done

# === Test 1: cluster ==========================================================================
# --- Create the cluster -----------------------------------------------------------------------
log "creating namespace $NS (Pod Security Standard: restricted)"
kubectl create namespace "$NS"
NS_CREATED=1
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted >/dev/null

log "applying examples/qdrantcluster-3-node.yaml"
kubectl -n "$NS" apply -f "$EXAMPLE"

log "waiting up to $READY_TIMEOUT for qc/$CLUSTER to be Ready"
kubectl -n "$NS" wait "qc/$CLUSTER" --for=condition=Ready --timeout="$READY_TIMEOUT"
kubectl -n "$NS" get qc "$CLUSTER"

# --- Talk to Qdrant ---------------------------------------------------------------------------
log "reading the API key from Secret $CLUSTER-api-key"
api_key=$(kubectl -n "$NS" get secret "$CLUSTER-api-key" -o json | jq -r '.data["api-key"] // empty' | base64 -d)
[ -n "$api_key" ] || fail "Secret $CLUSTER-api-key has no key api-key"
# Passed to curl from a file, so the key never shows in the process list.
HEADERS="$WORKDIR/headers"
(umask 077 && printf 'api-key: %s\nContent-Type: application/json\n' "$api_key" >"$HEADERS")
unset api_key

PF_PORT=
# port_forward POD: forwards a free local port to POD:6333 and sets PF_PORT.
port_forward() {
  local pod=$1 pf_log="$WORKDIR/port-forward-$1.log" pid i
  kubectl -n "$NS" port-forward --address 127.0.0.1 "pod/$pod" :6333 >"$pf_log" 2>&1 &
  pid=$!
  PF_PIDS+=("$pid")
  PF_PORT=
  for i in $(seq 1 60); do
    PF_PORT=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9][0-9]*\) -> 6333$/\1/p' "$pf_log")
    if [ -n "$PF_PORT" ]; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || fail "port-forward to $pod exited: $(cat "$pf_log")"
    sleep 0.5
  done
  fail "port-forward to $pod did not start within 30s: $(cat "$pf_log")"
}

# qdrant PORT METHOD PATH [BODY]: the response body on 2xx; on any other answer prints it to
# stderr and returns 1.
qdrant() {
  local port=$1 method=$2 path=$3 body=${4:-} out="$WORKDIR/response" code
  local args=(-sS --max-time 60 -o "$out" -w '%{http_code}' -X "$method" -H "@$HEADERS")
  if [ -n "$body" ]; then
    args+=(--data "$body")
  fi
  code=$(curl "${args[@]}" "http://127.0.0.1:$port$path") || {
    echo "$method $path: request failed" >&2
    return 1
  }
  case "$code" in
    2??) cat "$out" ;;
    *)
      echo "$method $path: HTTP $code: $(cat "$out")" >&2
      return 1
      ;;
  esac
}

# retry SECONDS COMMAND...: runs COMMAND every 2s until it succeeds or SECONDS pass.
retry() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      return 1
    fi
    sleep 2
  done
}

log "port-forwarding pods $CLUSTER-0 and $CLUSTER-1"
port_forward "$CLUSTER-0"
PORT0=$PF_PORT
port_forward "$CLUSTER-1"
PORT1=$PF_PORT
log "$CLUSTER-0 -> 127.0.0.1:$PORT0, $CLUSTER-1 -> 127.0.0.1:$PORT1"

cluster_has_three_peers() {
  qdrant "$PORT0" GET /cluster |
    jq -e '.result.status == "enabled" and (.result.peers | length) == 3' >/dev/null
}
log "checking that Qdrant reports 3 peers in consensus"
retry 120 cluster_has_three_peers || fail "GET /cluster on $CLUSTER-0 does not list 3 peers"

log "creating collection e2e (size 4, Dot, 3 shards, replication factor 2) through $CLUSTER-0"
qdrant "$PORT0" PUT /collections/e2e \
  '{"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2}' |
  jq -e '.result == true' >/dev/null || fail "creating collection e2e failed"

collection_visible_on_pod1() {
  qdrant "$PORT1" GET /collections/e2e | jq -e '.status == "ok"' >/dev/null
}
retry 60 collection_visible_on_pod1 || fail "collection e2e is not visible through $CLUSTER-1"

# Values exactly representable as f32, and Dot does not normalize vectors, so they read back
# unchanged.
POINTS='[
  {"id": 1, "vector": [0.5, 0.25, 0.125, 1.0], "payload": {"city": "Berlin"}},
  {"id": 2, "vector": [1.0, -0.5, 0.75, 0.0], "payload": {"city": "London"}},
  {"id": 3, "vector": [-0.25, 0.5, 2.0, 0.375], "payload": {"city": "Moscow"}}
]'
log "upserting 3 points through $CLUSTER-0"
qdrant "$PORT0" PUT '/collections/e2e/points?wait=true' "{\"points\": $POINTS}" |
  jq -e '.result.status == "completed"' >/dev/null || fail "upsert failed"

READ_BACK="$WORKDIR/read-back.json"
points_match_on_pod1() {
  qdrant "$PORT1" POST /collections/e2e/points \
    '{"ids": [1, 2, 3], "with_payload": true, "with_vector": true}' >"$READ_BACK" || return 1
  jq -e --argjson want "$POINTS" \
    '([.result[] | {id, vector, payload}] | sort_by(.id)) == ($want | sort_by(.id))' \
    "$READ_BACK" >/dev/null
}
log "reading the points back through $CLUSTER-1"
if ! retry 60 points_match_on_pod1; then
  echo "expected: $(jq -c . <<<"$POINTS")" >&2
  echo "got:      $(jq -c '.result' "$READ_BACK" 2>/dev/null || cat "$READ_BACK")" >&2
  fail "points read through $CLUSTER-1 differ from those written through $CLUSTER-0"
fi
log "the 3 points read through $CLUSTER-1 match"

PASSED_TESTS+=(cluster)
log "test cluster: passed"

# === Test 2: collection =======================================================================
CURRENT_TEST=collection

# collection_exists NAME: prints true or false, as Qdrant reports it through $CLUSTER-0.
collection_exists() {
  qdrant "$PORT0" GET "/collections/$1/exists" | jq -r '.result.exists'
}

# --- Create the collection --------------------------------------------------------------------
log "applying examples/qdrantcollection.yaml"
kubectl -n "$NS" apply -f "$COLLECTION_EXAMPLE"
log "waiting up to $COLLECTION_TIMEOUT for qcol/$COLLECTION to be Ready"
kubectl -n "$NS" wait "qcol/$COLLECTION" --for=condition=Ready --timeout="$COLLECTION_TIMEOUT"
kubectl -n "$NS" get qcol "$COLLECTION"

INFO="$WORKDIR/collection.json"
# What examples/qdrantcollection.yaml asks for, as GET /collections/{name} reports it. Qdrant
# keeps the quantile as an f32, so it is compared with a tolerance.
collection_matches_example() {
  qdrant "$PORT0" GET "/collections/$COLLECTION" >"$INFO" || return 1
  jq -e '.result as $r | $r.config.params as $p | $r.config.quantization_config.scalar as $q
    | $p.vectors.size == 768 and $p.vectors.distance == "Cosine"
    and $p.shard_number == 6 and $p.replication_factor == 2
    and $q.type == "int8" and (($q.quantile - 0.99) | fabs) < 0.000001 and $q.always_ram == true
    and $r.payload_schema.category.data_type == "keyword"
    and $r.payload_schema.year.data_type == "integer"' "$INFO" >/dev/null
}
log "checking collection $COLLECTION in Qdrant"
if ! retry 60 collection_matches_example; then
  got=$(jq -c '.result | {params: .config.params, quantization_config: .config.quantization_config,
    payload_schema}' "$INFO" 2>/dev/null || cat "$INFO")
  echo "got: $got" >&2
  fail "collection $COLLECTION in Qdrant does not match examples/qdrantcollection.yaml"
fi

alias_points_at_collection() {
  qdrant "$PORT0" GET /aliases |
    jq -e --arg alias "$ALIAS" --arg collection "$COLLECTION" \
      'any(.result.aliases[]; .alias_name == $alias and .collection_name == $collection)' \
      >/dev/null
}
log "checking alias $ALIAS"
retry 60 alias_points_at_collection || fail "GET /aliases has no alias $ALIAS -> $COLLECTION"
log "$COLLECTION matches: 768 Cosine, 6 shards x 2, int8, indexes category and year, alias $ALIAS"

# --- Change a mutable field -------------------------------------------------------------------
# Updated in place (PATCH /collections/{name}). Qdrant's default indexing threshold is
# 10000 KiB, so 20000 is a change; checked first, so the test cannot pass vacuously.
indexing_threshold() {
  qdrant "$PORT0" GET "/collections/$COLLECTION" |
    jq -r '.result.config.optimizer_config.indexing_threshold'
}
[ "$(indexing_threshold)" != 20000 ] ||
  fail "indexing_threshold of $COLLECTION is 20000 before the change; the test would prove nothing"
log "patching qcol/$COLLECTION: spec.optimizersConfig.indexingThreshold = 20000"
kubectl -n "$NS" patch qcol "$COLLECTION" --type merge \
  -p '{"spec":{"optimizersConfig":{"indexingThreshold":20000}}}'
indexing_threshold_updated() { [ "$(indexing_threshold)" = 20000 ]; }
retry 120 indexing_threshold_updated ||
  fail "Qdrant reports indexing_threshold $(indexing_threshold) for $COLLECTION, want 20000"
log "Qdrant reports indexing_threshold 20000"

# --- Delete with deletionPolicy Retain --------------------------------------------------------
# The controller applies the policy before it removes its finalizer, so once the object is
# gone the collection's fate is settled.
log "deleting qcol/$COLLECTION (deletionPolicy Retain)"
kubectl -n "$NS" delete qcol "$COLLECTION" --wait=true --timeout=2m
[ "$(collection_exists "$COLLECTION")" = true ] ||
  fail "collection $COLLECTION is gone from Qdrant although its deletionPolicy is Retain"
log "collection $COLLECTION is still in Qdrant"

# --- Delete with deletionPolicy Delete --------------------------------------------------------
log "creating qcol/$SCRATCH (deletionPolicy Delete)"
kubectl -n "$NS" apply -f - <<YAML
apiVersion: qdrant.operator.dev/v1alpha1
kind: QdrantCollection
metadata:
  name: $SCRATCH
spec:
  cluster:
    name: $CLUSTER
  vectors:
    size: 4
    distance: Dot
  deletionPolicy: Delete
YAML
kubectl -n "$NS" wait "qcol/$SCRATCH" --for=condition=Ready --timeout="$COLLECTION_TIMEOUT"
scratch_exists() { [ "$(collection_exists "$SCRATCH")" = true ]; }
retry 60 scratch_exists ||
  fail "collection $SCRATCH is not in Qdrant although qcol/$SCRATCH is Ready"
log "deleting qcol/$SCRATCH"
kubectl -n "$NS" delete qcol "$SCRATCH" --wait=true --timeout=2m
scratch_gone() { [ "$(collection_exists "$SCRATCH")" = false ]; }
retry 60 scratch_gone ||
  fail "collection $SCRATCH is still in Qdrant after deleting qcol/$SCRATCH (deletionPolicy Delete)"
log "collection $SCRATCH is gone from Qdrant"

PASSED_TESTS+=(collection)
log "test collection: passed"
