#!/usr/bin/env bash
# End-to-end benchmark: builds the broker (release), starts it on its embedded default and on
# a SeaweedFS S3 server (loopback), drives both with bench/load.py (librdkafka), prints JSON
# lines. Usage: bench/run.sh [RECORDS] ; needs the test venv (./scripts/test.sh creates it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RECORDS=${1:-200000}
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "run ./scripts/test.sh once first (creates .venv)" >&2; exit 1; }
cargo build --release -p kafscale
BIN="$ROOT/target/release/kafscale"
WORK="$(mktemp -d)"
PIDS=()
# shellcheck source=scripts/seaweedfs.sh
source "$ROOT/scripts/seaweedfs.sh"
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; seaweedfs_stop; rm -rf "$WORK"; }
trap cleanup EXIT

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_broker() { # name extra-args... ; sets K and H
  local name=$1; shift
  K=$(port); H=$(port)
  env -u KAFSCALE_TEST_S3_URL -u KAFSCALE_TEST_REQUIRE_S3 "$BIN" serve --listen "127.0.0.1:$K" --http-listen "127.0.0.1:$H" --data-dir "$WORK/$name" "$@" \
    >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$H/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "broker $name did not start:" >&2; tail -20 "$WORK/$name.log" >&2; exit 1
}

load() { # label kafka http extra...
  local label=$1 k=$2 h=$3; shift 3
  "$PY" bench/load.py --bootstrap "127.0.0.1:$k" --http "127.0.0.1:$h" --records "$RECORDS" --label "$label" "$@"
}

run_broker embedded
load embedded-1p-1KiB-all "$K" "$H" --size 1024 --partitions 1 --acks all
load embedded-50p-1KiB-all "$K" "$H" --size 1024 --partitions 50 --acks all
load embedded-1p-100B-1 "$K" "$H" --size 100 --partitions 1 --acks 1

PYTHON_BIN="$PY" PATH="$ROOT/.venv/bin:$PATH" seaweedfs_start "$WORK/seaweedfs" >/dev/null
printf '"flush.ms" = 100\n' >"$WORK/s3.toml"
run_broker s3 --object-store "$KAFSCALE_TEST_S3_URL/bench" --config "$WORK/s3.toml"
load s3-1p-1KiB-all "$K" "$H" --size 1024 --partitions 1 --acks all
load s3-50p-1KiB-all "$K" "$H" --size 1024 --partitions 50 --acks all
