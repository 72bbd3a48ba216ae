# Start and stop an etcd on loopback for the tests. Sourced by scripts/test.sh.
#
# etcd_start DIR exports KAFSCALE_TEST_ETCD_URL=etcd://127.0.0.1:PORT.
# The etcd binary comes from Debian's etcd-server (scripts/test.sh installs it).

# shellcheck source=scripts/process.sh
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

ETCD_PID=""

etcd_start() {
  local dir=$1 client peer
  command -v etcd >/dev/null 2>&1 || { echo "error: etcd not found (apt-get install etcd-server)" >&2; return 1; }
  # Two adjacent ports, below the ephemeral range (see free_ports.py).
  client="$("${PYTHON_BIN:-python3}" "$(dirname "${BASH_SOURCE[0]}")/free_ports.py" 10000 19999 1 0 1)" || return 1
  peer=$((client + 1))
  rm -rf "$dir" && mkdir -p "$dir"
  etcd --name kafscale-test --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "kafscale-test=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
  ETCD_PID=$!
  export KAFSCALE_TEST_ETCD_URL="etcd://127.0.0.1:$client"
  local i
  for i in $(seq 1 60); do
    if ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$client" endpoint health >/dev/null 2>&1; then
      echo "etcd on 127.0.0.1:$client (pid $ETCD_PID, log $dir/etcd.log)"
      return 0
    fi
    kill -0 "$ETCD_PID" 2>/dev/null || break
    sleep 0.5
  done
  echo "error: etcd did not start; log:" >&2
  tail -30 "$dir/etcd.log" >&2 || true
  return 1
}

etcd_stop() {
  stop_process "$ETCD_PID"
  ETCD_PID=""
}
