#!/usr/bin/env bash
# What the S3 server itself spends: starts SeaweedFS and one broker (kafscale or tansu) on it,
# produces RECORDS x SIZE records to PARTITIONS partitions with rdkafka_performance, and prints
# the throughput and the CPU seconds SeaweedFS and the broker spent meanwhile (/proc/PID/stat).
#
#   bench/seaweedfs_cpu.sh kafscale 1        # or: tansu 50; RECORDS=200000 SIZE=1024
#
# Needs the release build (cargo build --release -p kafscale), the test venv and, for tansu,
# the peer (see bench/compare.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BROKER=${1:?kafscale or tansu}
PARTITIONS=${2:-1}
RECORDS=${RECORDS:-100000}
SIZE=${SIZE:-1024}
PY="$ROOT/.venv/bin/python"
PERF="$(bench/rdkafka_performance.sh)"
TANSU="${TANSU_BIN:-/work/tansu/bin/tansu}"
# shellcheck source=scripts/process.sh
source scripts/process.sh
# shellcheck source=scripts/seaweedfs.sh
source scripts/seaweedfs.sh
WORK="$(mktemp -d /tmp/kafscale-swcpu.XXXXXX)"
BROKER_PID=""
cleanup() {
  stop_process "$BROKER_PID"
  seaweedfs_stop >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
PYTHON_BIN="$PY" PATH="$ROOT/.venv/bin:$PATH" seaweedfs_start "$WORK/seaweedfs" >/dev/null
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
K=$(port)
if [ "$BROKER" = kafscale ]; then
  printf '"flush.ms" = 100\n' >"$WORK/s3.toml"
  env -u KAFSCALE_TEST_S3_URL target/release/kafscale serve --listen "127.0.0.1:$K" \
    --http-listen "127.0.0.1:$(port)" --data-dir "$WORK/data" \
    --object-store "$KAFSCALE_TEST_S3_URL/swcpu" --config "$WORK/s3.toml" >"$WORK/broker.log" 2>&1 &
else
  AWS_ENDPOINT="$AWS_ENDPOINT_URL" AWS_ALLOW_HTTP=true "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$K" --advertised-listener-url "tcp://127.0.0.1:$K" \
    --storage-engine "s3://$SEAWEEDFS_BUCKET/" >"$WORK/broker.log" 2>&1 &
fi
BROKER_PID=$!
for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$K") 2>/dev/null && break; sleep 0.1; done
"$PY" -c "
from confluent_kafka.admin import AdminClient, NewTopic
import time
a = AdminClient({'bootstrap.servers': '127.0.0.1:$K'})
a.create_topics([NewTopic('swcpu', $PARTITIONS, 1)])['swcpu'].result(30)
time.sleep(1)"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
s0=$(ticks "$SEAWEEDFS_PID"); b0=$(ticks "$BROKER_PID"); t0=$(date +%s.%N)
rate=$("$PERF" -P -t swcpu -b "127.0.0.1:$K" -s "$SIZE" -c "$RECORDS" -a -1 -X linger.ms=5 \
  -X batch.size=1000000 -X max.in.flight=1000 -X queue.buffering.max.kbytes=1048576 \
  -X queue.buffering.max.messages=1000000 2>&1 | grep -o '[0-9.]* MB/s' | tail -1)
s1=$(ticks "$SEAWEEDFS_PID"); b1=$(ticks "$BROKER_PID"); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
"$PY" -c "
mb = $RECORDS * $SIZE / 1e6
sw, br, wall = ($s1 - $s0) / $hz, ($b1 - $b0) / $hz, $t1 - $t0
print(f'$BROKER, $PARTITIONS partitions: {\"$rate\"}; SeaweedFS {sw:.2f} CPU s ({sw / mb * 100:.2f} per 100 MB, '
      f'{sw / wall:.2f} cores), broker {br:.2f} CPU s ({br / wall:.2f} cores), {wall:.2f} s')"
