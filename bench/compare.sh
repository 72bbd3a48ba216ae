#!/usr/bin/env bash
# Side-by-side benchmark: KafScale (release build) and the peer broker, Tansu, on the same
# storage, driven by the same librdkafka load (bench/load.py), one table at the end.
#
#   bench/compare.sh                 # the default matrix, a few minutes
#   bench/compare.sh --full          # 100 B and 1 KiB x 1 and 50 partitions x acks 1 and all
#   bench/compare.sh --storage s3 --sizes 1024 --partitions 50 --acks all --repeat 2
#
# Options (comma-separated lists):
#   --storage memory,s3   memory: KafScale --ephemeral, Tansu memory://; s3: one SeaweedFS
#                         server on loopback for both (KafScale s3://BUCKET/PREFIX, Tansu
#                         s3://BUCKET/), KafScale with embedded metadata
#   --brokers kafscale,tansu
#   --sizes, --partitions, --acks   the matrix (default 1024 / 1,50 / all, plus 100 B,
#                         1 partition, acks=1 on memory)
#   --records N           records per produce phase (default 100000)
#   --flush-ms N          KafScale's flush.ms on s3 (default 100; memory keeps its default 0)
#   --repeat N            run everything N times, interleaved (default 1)
#   --max-seconds N       bound of each phase (default 60)
#   --out FILE            JSON lines, one per run (default: a file under the work directory)
#   --no-c-client         skip the produce_c phase: the produce load again from librdkafka's
#                         rdkafka_performance (built by bench/rdkafka_performance.sh), on fresh
#                         processes; it costs far less CPU per record than the Python client
#
# Every workload gets fresh broker processes. On s3 the broker is restarted after the
# produce phase and a fresh consumer reads everything back: the cold read. The peer is
# found at $TANSU_BIN, /work/tansu/bin/tansu or on PATH; without it KafScale runs alone.
# Loopback only. Needs the test venv (./scripts/test.sh creates it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "run ./scripts/test.sh once first (creates .venv)" >&2; exit 1; }

STORAGES=memory,s3
BROKERS=kafscale,tansu
SIZES=1024
PARTS=1,50
ACKS=all
RECORDS=100000
FLUSH_MS=100
REPEAT=1
MAX_SECONDS=60
OUT=""
EXTRA_100B=1 # the default matrix adds 100 B / acks=1 / 1 partition on memory
C_CLIENT=1
while [ $# -gt 0 ]; do
  case $1 in
    --storage) STORAGES=$2; shift 2 ;;
    --brokers) BROKERS=$2; shift 2 ;;
    --sizes) SIZES=$2; EXTRA_100B=0; shift 2 ;;
    --partitions) PARTS=$2; EXTRA_100B=0; shift 2 ;;
    --acks) ACKS=$2; EXTRA_100B=0; shift 2 ;;
    --full) SIZES=100,1024; PARTS=1,50; ACKS=1,all; EXTRA_100B=0; shift ;;
    --records) RECORDS=$2; shift 2 ;;
    --flush-ms) FLUSH_MS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --max-seconds) MAX_SECONDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-c-client) C_CLIENT=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

TANSU="${TANSU_BIN:-}"
[ -n "$TANSU" ] || { [ -x /work/tansu/bin/tansu ] && TANSU=/work/tansu/bin/tansu; } || true
[ -n "$TANSU" ] || TANSU="$(command -v tansu || true)"
if [[ ",$BROKERS," == *,tansu,* ]] && [ -z "$TANSU" ]; then
  cat >&2 <<'EOF'
peer broker missing: tansu not found ($TANSU_BIN, /work/tansu/bin/tansu, PATH); running
KafScale alone. Install it (about 25 min on 2 cores; without dynostore it stores nothing):
  cargo install tansu --version 0.6.0 --locked --features dynostore --root /work/tansu
EOF
  BROKERS=kafscale
fi

cargo build --release -p kafscale
BIN="$ROOT/target/release/kafscale"
PERF=""
if [ "$C_CLIENT" = 1 ]; then
  PERF="$(bench/rdkafka_performance.sh)" || { echo "rdkafka_performance unavailable: no produce_c phase" >&2; PERF=""; }
fi
WORK="$(mktemp -d /tmp/kafscale-compare.XXXXXX)"
OUT="${OUT:-$WORK/results.jsonl}"
: >"$OUT"
BROKER_PID=""
# shellcheck source=scripts/seaweedfs.sh
source "$ROOT/scripts/seaweedfs.sh"
cleanup() {
  stop_process "$BROKER_PID"
  seaweedfs_stop
  echo "work directory (logs): $WORK" >&2
}
trap cleanup EXIT

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # port log
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "broker did not start; log $2:" >&2
  tail -20 "$2" >&2
  exit 1
}

S3_METRICS=""
if [[ ",$STORAGES," == *,s3,* ]]; then
  SEAWEEDFS_METRICS_PORT="$(port)"
  export SEAWEEDFS_METRICS_PORT
  PYTHON_BIN="$PY" PATH="$ROOT/.venv/bin:$PATH" seaweedfs_start "$WORK/seaweedfs" >&2
  S3_METRICS="http://127.0.0.1:$SEAWEEDFS_METRICS_PORT/metrics"
  printf '"flush.ms" = %s\n' "$FLUSH_MS" >"$WORK/s3.toml"
fi

# start BROKER STORAGE NAME: a fresh process on new ports (same data for the same NAME);
# sets K (Kafka port), H (KafScale's HTTP port, empty for Tansu), BROKER_PID.
start() {
  local broker=$1 storage=$2 name=$3 log="$WORK/$3.log"
  K=$(port)
  H=""
  echo "===== start $(date -u +%T)" >>"$log"
  if [ "$broker" = kafscale ]; then
    H=$(port)
    local store=(--ephemeral)
    [ "$storage" = s3 ] && store=(--data-dir "$WORK/$name" --object-store "$KAFSCALE_TEST_S3_URL/$name"
      --config "$WORK/s3.toml")
    env -u KAFSCALE_TEST_S3_URL -u KAFSCALE_TEST_REQUIRE_S3 "$BIN" serve --listen "127.0.0.1:$K" \
      --http-listen "127.0.0.1:$H" "${store[@]}" >>"$log" 2>&1 &
  else
    local engine=memory://tansu/
    [ "$storage" = s3 ] && engine="s3://$SEAWEEDFS_BUCKET/"
    AWS_ENDPOINT="${AWS_ENDPOINT_URL:-}" AWS_ALLOW_HTTP=true "$TANSU" broker \
      --listener-url "tcp://127.0.0.1:$K" --advertised-listener-url "tcp://127.0.0.1:$K" \
      --storage-engine "$engine" >>"$log" 2>&1 &
  fi
  BROKER_PID=$!
  wait_port "$K" "$log"
  if [ -n "$H" ]; then
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$H/readyz" >/dev/null && break; sleep 0.1; done
  fi
}

stop() { stop_process "$BROKER_PID"; BROKER_PID=""; }

load() { # label phases extra...
  local label=$1 phases=$2
  shift 2
  local args=(--bootstrap "127.0.0.1:$K" --pid "$BROKER_PID" --label "$label" --phases "$phases"
    --records "$RECORDS" --max-seconds "$MAX_SECONDS")
  [ -n "$H" ] && args+=(--http "127.0.0.1:$H")
  "$PY" bench/load.py "${args[@]}" "$@"
}

# The matrix: storage size partitions acks.
WORKLOADS=()
IFS=, read -ra storages <<<"$STORAGES"
IFS=, read -ra sizes <<<"$SIZES"
IFS=, read -ra parts <<<"$PARTS"
IFS=, read -ra acks <<<"$ACKS"
IFS=, read -ra brokers <<<"$BROKERS"
for st in "${storages[@]}"; do
  for sz in "${sizes[@]}"; do for pa in "${parts[@]}"; do for ak in "${acks[@]}"; do
    WORKLOADS+=("$st $sz $pa $ak")
  done; done; done
  [ "$EXTRA_100B" = 1 ] && [ "$st" = memory ] && WORKLOADS+=("memory 100 1 1")
done
TOTAL=$((${#WORKLOADS[@]} * ${#brokers[@]} * REPEAT))
echo "$TOTAL runs: ${#WORKLOADS[@]} workloads x ${brokers[*]} x $REPEAT; $RECORDS records each; results $OUT" >&2

n=0
for rep in $(seq 1 "$REPEAT"); do
  for w in "${WORKLOADS[@]}"; do
    read -r st sz pa ak <<<"$w"
    for br in "${brokers[@]}"; do
      n=$((n + 1))
      label="$br|$st|$sz|$pa|$ak|$rep"
      name="$br-$st-$sz-$pa-$ak-$rep"
      echo "[$n/$TOTAL] $(date -u +%T) $br on $st: ${sz} B, $pa partitions, acks=$ak (run $rep)" >&2
      s3=()
      [ "$st" = s3 ] && s3=(--s3-metrics "$S3_METRICS")
      start "$br" "$st" "$name"
      line="$(load "$label" produce,consume,consume,e2e --size "$sz" --partitions "$pa" --acks "$ak" \
        "${s3[@]}")" || { echo "  failed; log $WORK/$name.log" >&2; stop; continue; }
      echo "$line" >>"$OUT"
      if [ "$st" = s3 ]; then
        # Cold read: a new broker process on the same storage, a fresh consumer.
        read -r topic produced < <("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["topic"], d["produced"])' "$line")
        stop
        start "$br" "$st" "$name"
        load "$label" consume --topic "$topic" --no-create --size "$sz" --partitions "$pa" \
          --acks "$ak" --records "$produced" >>"$OUT" || echo "  cold read failed; log $WORK/$name.log" >&2
      fi
      if [ -n "$PERF" ]; then
        # The produce load again from librdkafka's C benchmark, on fresh processes and storage.
        stop
        start "$br" "$st" "$name-c"
        load "$label" produce_c --rdkafka-performance "$PERF" --size "$sz" --partitions "$pa" \
          --acks "$ak" "${s3[@]}" >>"$OUT" || echo "  C-client produce failed; log $WORK/$name-c.log" >&2
      fi
      stop
    done
  done
done

"$PY" bench/table.py "$OUT"
