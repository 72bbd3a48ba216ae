#!/usr/bin/env bash
# What TLS and SASL cost: one release broker with PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512)
# listeners, and librdkafka's C benchmark (rdkafka_performance, bench/rdkafka_performance.sh)
# producing RECORDS x SIZE records and consuming them back on each listener in turn. Prints
# records/s and MB/s per listener and each secured listener's share of the plaintext figure
# (issue 13's goal: at least 80 %).
#
#   bench/tls.sh [RECORDS] [SIZE]        # defaults: 1000000 records of 1024 bytes
#
# The broker keeps records in memory (--ephemeral), so that the figures are the protocol's
# and the encryption's, not the object store's. Client and broker share the machine.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RECORDS="${1:-1000000}"
SIZE="${2:-1024}"
PY="$ROOT/.venv/bin/python"
cd "$ROOT"
cargo build --release -q -p kafscale
BIN="$ROOT/target/release/kafscale"
PERF="$(bench/rdkafka_performance.sh)"
WORK="$(mktemp -d)"
BROKER_PID=""
cleanup() {
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# A CA and the broker's certificate for 127.0.0.1.
(
  cd "$WORK"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
  openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext \
    -out broker.crt 2>/dev/null
  cat broker.key broker.crt >broker.pem
)
BASE="$("$PY" "$ROOT/scripts/free_ports.py" 20000 45000 10 0 1 2 3)"
P_PLAIN=$BASE P_SSL=$((BASE + 1)) P_SASL=$((BASE + 2)) P_HTTP=$((BASE + 3))
cat >"$WORK/broker.toml" <<TOML
listeners = "PLAINTEXT://127.0.0.1:$P_PLAIN,SSL://127.0.0.1:$P_SSL,SASL_SSL://127.0.0.1:$P_SASL"
"ssl.keystore.location" = "$WORK/broker.pem"
"listener.name.sasl_ssl.sasl.enabled.mechanisms" = "SCRAM-SHA-512"
TOML
"$BIN" serve --ephemeral --config "$WORK/broker.toml" --http-listen "127.0.0.1:$P_HTTP" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$P_HTTP/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
printf 'bench-secret' >"$WORK/pw"
"$BIN" user create bench --password-file "$WORK/pw" --mechanism SCRAM-SHA-512 \
  --bootstrap "127.0.0.1:$P_PLAIN" >/dev/null

# run NAME PORT [-X ...]: produce then consume; prints one line of figures.
run() {
  local name=$1 port=$2
  shift 2
  local topic="tls-bench-$name"
  local produced consumed
  produced="$("$PERF" -P -t "$topic" -b "127.0.0.1:$port" -s "$SIZE" -c "$RECORDS" -a -1 \
    -X linger.ms=5 -X batch.size=1000000 -X compression.type=none -X enable.idempotence=false \
    -X queue.buffering.max.messages=1000000 -X queue.buffering.max.kbytes=1048576 "$@" 2>&1 |
    grep -E 'messages produced' | tail -1)"
  consumed="$("$PERF" -C -t "$topic" -p 0 -o beginning -b "127.0.0.1:$port" -c "$RECORDS" "$@" 2>&1 |
    grep -E 'messages \(.*bytes\) consumed' | tail -1)"
  "$PY" - "$name" "$produced" "$consumed" <<'PY'
import re, sys
name, produced, consumed = sys.argv[1:]
p = re.search(r"(\d+) msgs/s and ([\d.]+) MB/s", produced)
c = re.search(r"(\d+) msgs/s \(([\d.]+) MB/s\)", consumed)
if not p or not c:
    sys.exit(f"{name}: no figures\n{produced}\n{consumed}")
print(f"{name} {p.group(1)} {p.group(2)} {c.group(1)} {c.group(2)}")
PY
}

{
  run PLAINTEXT "$P_PLAIN"
  run SSL "$P_SSL" -X security.protocol=SSL -X "ssl.ca.location=$WORK/ca.crt"
  run SASL_SSL "$P_SASL" -X security.protocol=SASL_SSL -X "ssl.ca.location=$WORK/ca.crt" \
    -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=bench -X sasl.password=bench-secret
} | "$PY" <(cat <<'PY'
import sys
rows = [line.split() for line in sys.stdin if line.strip()]
base_p, base_c = float(rows[0][2]), float(rows[0][4])
print(f"{'listener':<10} {'produce rec/s':>14} {'MB/s':>7} {'vs plain':>9} {'consume rec/s':>14} {'MB/s':>7} {'vs plain':>9}")
for name, pr, pm, cr, cm in rows:
    print(f"{name:<10} {int(pr):>14} {float(pm):>7.1f} {float(pm) / base_p:>9.0%} {int(cr):>14} {float(cm):>7.1f} {float(cm) / base_c:>9.0%}")
PY
)
echo "($RECORDS records of $SIZE bytes, one partition, acks=all; $(nproc) cores, broker and client on one machine)"
