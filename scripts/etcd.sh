# Start and stop an etcd on loopback for the tests. Sourced by scripts/test.sh.
#
# etcd_start DIR exports KAFSCALE_TEST_ETCD_URL=etcd://127.0.0.1:PORT.
# The etcd binary comes from Debian's etcd-server (scripts/test.sh installs it).

# shellcheck source=scripts/process.sh
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

ETCD_PID=""

etcd_start() {
  local dir=$1 ports client peer
  command -v etcd >/dev/null 2>&1 || { echo "error: etcd not found (apt-get install etcd-server)" >&2; return 1; }
  ports="$("${PYTHON_BIN:-python3}" - <<'PY'
# Below the kernel's ephemeral range (32768 and up), so that no outgoing connection takes a
# port between this check and etcd's bind, as tests/e2e/harness.py's free_port does (the
# brokers' ports there are checked by binding, so they skip these once etcd holds them).
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
ports = []
while len(ports) < 2:
    p = random.randrange(10000, 20000)
    if p not in ports and free(p):
        ports.append(p)
print(*ports)
PY
)" || return 1
  read -r client peer <<<"$ports"
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
