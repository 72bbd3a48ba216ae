#!/usr/bin/env bash
# Metadata scale benchmark: one release broker on a real etcd (its own, fresh per run) and a
# local object store, under librdkafka's rdkafka_performance producing a steady load spread
# over every partition. Prints etcd puts/s, transactions/s, bytes received by etcd per second
# and per GiB produced, etcd database growth, the delivered rate and produce p50/p99.
#
#   bench/metadata_scale.sh                          # 10, 100, 1,000, 10,000 partitions, 20 s each
#   bench/metadata_scale.sh --partitions 1000 --seconds 60
#   bench/metadata_scale.sh --soak 20                # 1,000 partitions for 20 minutes: the etcd
#                                                    # database size every 30 s
#   bench/metadata_scale.sh --quota 50331648         # etcd with a 48 MiB quota
#
# Options: --partitions LIST (default 10,100,1000,10000), --rate N records/s (5000),
# --size N bytes (1024), --seconds N (20), --flush-ms N (100), --quota BYTES, --soak MINUTES
# (one partition count, default 1000), --out FILE (JSON lines). Needs the test venv and etcd
# (./scripts/test.sh installs both) and a C compiler for rdkafka_performance.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "run ./scripts/test.sh once first (creates .venv)" >&2; exit 1; }
command -v etcd >/dev/null || { echo "no etcd (./scripts/test.sh installs etcd-server)" >&2; exit 1; }
ARGS=("$@")
if [[ " $* " == *" --soak "* && " $* " != *" --partitions "* ]]; then
  ARGS+=(--partitions 1000)
fi
cargo build --release -p kafscale
PERF="$(bench/rdkafka_performance.sh)"
exec "$PY" bench/metadata_scale.py --binary "$ROOT/target/release/kafscale" --perf "$PERF" "${ARGS[@]}"
