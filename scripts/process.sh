# Shared by scripts/seaweedfs.sh and scripts/etcd.sh.

# stop_process PID: SIGTERM, up to 5 s to exit, then SIGKILL. No-op for an empty or dead PID.
stop_process() {
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
}
