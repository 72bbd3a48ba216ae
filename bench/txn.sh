#!/usr/bin/env bash
# Transactional producer benchmark: builds the broker (release), starts it on its embedded
# default and on etcd + SeaweedFS (loopback; --embedded-only skips them), and drives each
# with bench/txn.py: an idempotent producer, then transactional producers committing every
# 100 ms and every 1,000 records. Prints JSON lines.
# Usage: bench/txn.sh [--embedded-only] [RECORDS] ; needs the test venv and, for the second
# broker, etcd (./scripts/test.sh installs both).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STORES=1
if [ "${1:-}" = --embedded-only ]; then STORES=0; shift; fi
RECORDS=${1:-100000}
PY="${PY:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || { echo "run ./scripts/test.sh once first (creates .venv)" >&2; exit 1; }
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release -p kafscale
BIN="$TARGET_DIR/release/kafscale"
WORK="$(mktemp -d)"
PIDS=()
# shellcheck source=scripts/seaweedfs.sh
source "$ROOT/scripts/seaweedfs.sh"
# shellcheck source=scripts/etcd.sh
source "$ROOT/scripts/etcd.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  seaweedfs_stop; etcd_stop; rm -rf "$WORK"
}
trap cleanup EXIT

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_broker() { # name extra-args... ; sets K
  local name=$1 h; shift
  K=$(port); h=$(port)
  env -u KAFSCALE_TEST_S3_URL -u KAFSCALE_TEST_ETCD_URL -u KAFSCALE_TEST_REQUIRE_S3 \
    "$BIN" serve --listen "127.0.0.1:$K" --http-listen "127.0.0.1:$h" --data-dir "$WORK/$name" "$@" \
    >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$h/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "broker $name did not start:" >&2; tail -20 "$WORK/$name.log" >&2; exit 1
}

run_broker embedded
"$PY" bench/txn.py --bootstrap "127.0.0.1:$K" --records "$RECORDS" --label embedded
[ "$STORES" = 1 ] || exit 0

PYTHON_BIN="$PY" PATH="$(dirname "$PY"):$PATH" seaweedfs_start "$WORK/seaweedfs" >/dev/null
PYTHON_BIN="$PY" etcd_start "$WORK/etcd" >/dev/null
printf '"flush.ms" = 100\n' >"$WORK/stores.toml"
run_broker stores --object-store "$KAFSCALE_TEST_S3_URL/bench" --metadata "$KAFSCALE_TEST_ETCD_URL/bench" \
  --config "$WORK/stores.toml"
"$PY" bench/txn.py --bootstrap "127.0.0.1:$K" --records "$RECORDS" --label etcd+seaweedfs
