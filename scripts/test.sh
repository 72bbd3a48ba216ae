#!/usr/bin/env bash
# The project's one test command (README: ./scripts/test.sh).
#
# Installs what the tests need (idempotently: a second run installs nothing), then runs
# fmt, clippy, the core dependency check, the build, the Rust tests and the end-to-end
# tests (tests/e2e, a real broker process driven by real Kafka clients), and prints a
# summary. Exits non-zero if anything failed.
#
# Usage: ./scripts/test.sh [PYTEST_ARGS...]   (extra arguments go to pytest, e.g. -k roundtrip)
# Works on a fresh Debian bookworm machine as root (or with sudo); needs cargo and python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/requirements-test.txt"
PYTHON="${PYTHON:-python3}"
# Crates that must never appear among kafscale-core's normal dependencies
# (shared/DESIGN.md: core knows no Kafka wire types, S3, etcd or figment).
FORBIDDEN_CORE_DEPS=(kafka-protocol object_store etcd-client figment)
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOG_DIR="$TARGET_DIR/test-logs"
KAFSCALE_BIN="$TARGET_DIR/debug/kafscale"
# One build from scratch per run: incremental artifacts would only cost disk (2.4 GB) and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export KAFSCALE_BIN # the broker and CLI the tests run (e2e, testkit/tests/containers.rs)

SUMMARY=()
FAILED=0
CARGO_TESTS=""
E2E_TESTS=""
RDK_TESTS=""
T_START=$SECONDS

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }

record() { # record STATUS NAME DETAIL
  SUMMARY+=("$(printf '%-5s %-34s %s' "$1" "$2" "$3")")
  [ "$1" != FAIL ] || FAILED=1
}

# step NAME CMD...: runs one check, records PASS/FAIL and its duration; never aborts.
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  say "$name"
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    record PASS "$name" "$((SECONDS - t0))s"
  else
    record FAIL "$name" "exit $rc, $((SECONDS - t0))s"
  fi
  return "$rc"
}

print_summary() {
  local rc=$?
  seaweedfs_stop
  etcd_stop
  podman_service_stop
  [ "$rc" -eq 0 ] || [ "$FAILED" -eq 1 ] || record FAIL "setup (aborted)" "exit $rc"
  say "summary ($((SECONDS - T_START))s)"
  local line
  for line in "${SUMMARY[@]}"; do printf '  %s\n' "$line"; done
  [ -z "$CARGO_TESTS" ] || printf '  cargo test: %s\n' "$CARGO_TESTS"
  [ -z "$E2E_TESTS" ] || printf '  e2e (pytest): %s\n' "$E2E_TESTS"
  [ -z "$RDK_TESTS" ] || printf '  librdkafka suite: %s\n' "$RDK_TESTS"
  local ok=0
  if [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ]; then
    echo "ALL CHECKS PASSED"
  else
    echo "SOME CHECKS FAILED (see above; broker logs of failed e2e tests are printed with them)"
    ok=1
  fi
  # Last line: all tests run (cargo test, e2e, librdkafka's suite), in the plain
  # 'N passed, N failed' form.
  if [ -n "$CARGO_TESTS$E2E_TESTS$RDK_TESTS" ]; then
    printf '%s\n%s\n%s\n' "$CARGO_TESTS" "$E2E_TESTS" "$RDK_TESTS" | awk '
      { for (i = 2; i <= NF; i++) { w = $i; sub(/,$/, "", w)
          if (w == "passed") p += $(i-1); else if (w == "failed") f += $(i-1); else if (w == "ignored" || w == "skipped") s += $(i-1) } }
      END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }'
  fi
  exit "$ok"
}
seaweedfs_stop() { :; } # replaced when scripts/seaweedfs.sh is sourced
etcd_stop() { :; }      # replaced when scripts/etcd.sh is sourced
podman_service_stop() { :; } # replaced when scripts/podman.sh is sourced
trap print_summary EXIT

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# ---------------------------------------------------------------------------------------
# 1. Installation (prerequisites: any failure here aborts)
say "install test prerequisites"
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
# etcd-client's build imports protobuf's well-known types (google/protobuf/*.proto), which
# Debian ships in libprotobuf-dev, not with protoc itself.
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
# Containers are built and run with podman (tests/e2e/test_image.py, the testcontainers
# suite), on runc and netavark: without recommends, apt would pick the CNI plugins instead,
# which this setup was not checked with.
command -v podman >/dev/null 2>&1 || missing+=(podman netavark aardvark-dns)
command -v runc >/dev/null 2>&1 || missing+=(runc)
# tests/e2e/test_security.py makes its CA and certificates with openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# librdkafka's own test suite (scripts/librdkafka-suite.sh) is built from source: a C and
# C++ compiler, make, curl for the crate, the codecs' and TLS headers it is built with, and
# RapidJSON (header-only) for the tests that check statistics.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
[ -f /usr/include/zstd.h ] || missing+=(libzstd-dev)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -f /usr/include/rapidjson/schema.h ] || missing+=(rapidjson-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing from apt: ${missing[*]}"
  apt_install "${missing[@]}"
else
  echo "apt prerequisites already installed"
fi

command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found on PATH" >&2; exit 1; }
command -v "$PYTHON" >/dev/null 2>&1 || { echo "error: $PYTHON not found on PATH" >&2; exit 1; }

if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV"; then
    # Debian's own python3 needs python3-venv for ensurepip.
    rm -rf "$VENV"
    apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
# Reinstall only when the requirements or the interpreter change.
stamp="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $("$VENV/bin/python" -V 2>&1)"
if [ "$(cat "$VENV/.kafscale-requirements" 2>/dev/null || true)" != "$stamp" ]; then
  echo "installing python test packages into .venv"
  PIP_NO_INPUT=1 "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$stamp" >"$VENV/.kafscale-requirements"
else
  echo ".venv up to date"
fi
"$VENV/bin/python" -c 'import confluent_kafka, pytest, pytest_timeout' \
  || { echo "error: python test packages missing from .venv (delete .venv and rerun)" >&2; exit 1; }
# Node clients (kafkajs) for the end-to-end tests: tests/e2e/package-lock.json into the
# gitignored tests/e2e/node_modules; reinstalled only when the lock file or node changes.
NODE_DIR="$ROOT/tests/e2e"
command -v npm >/dev/null 2>&1 \
  || { echo "error: npm not found on PATH (the kafkajs end-to-end tests need node and npm)" >&2; exit 1; }
node_stamp="$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1) $(node --version)"
if [ "$(cat "$NODE_DIR/node_modules/.kafscale-lock" 2>/dev/null || true)" != "$node_stamp" ]; then
  echo "installing node test packages into tests/e2e/node_modules"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$node_stamp" >"$NODE_DIR/node_modules/.kafscale-lock"
else
  echo "tests/e2e/node_modules up to date"
fi
record PASS "install prerequisites" "$((SECONDS - T_START))s"
mkdir -p "$LOG_DIR"

# ---------------------------------------------------------------------------------------
# 2. Static checks (each runs even if an earlier one failed)
check_core_deps() {
  local tree dep bad=()
  tree="$(cargo tree -p kafscale-core -e normal --prefix none)" || return 1
  for dep in "${FORBIDDEN_CORE_DEPS[@]}"; do
    if grep -Eq "^${dep} v[0-9]" <<<"$tree"; then bad+=("$dep"); fi
  done
  if [ "${#bad[@]}" -gt 0 ]; then
    echo "error: kafscale-core must not depend on ${bad[*]} (core knows no wire types, S3, etcd or figment; see shared/DESIGN.md). Paths:" >&2
    for dep in "${bad[@]}"; do cargo tree -p kafscale-core -e normal -i "$dep" >&2 || true; done
    return 1
  fi
  echo "kafscale-core depends on none of: ${FORBIDDEN_CORE_DEPS[*]}"
}

step "cargo fmt --check" cargo fmt --all -- --check || true
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets -- -D warnings || true
step "core dependency check" check_core_deps || true

# ---------------------------------------------------------------------------------------
# 3. Build, Rust tests, end-to-end tests
run_cargo_tests() {
  local out="$LOG_DIR/cargo-test.log" rc=0
  cargo test --workspace --no-fail-fast 2>&1 | tee "$out" || rc=$?
  CARGO_TESTS="$(awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d ignored", p, f, i }' "$out")"
  return "$rc"
}

run_e2e() {
  local junit="$LOG_DIR/e2e-junit.xml" rc=0
  rm -f "$junit"
  KAFSCALE_BIN="$KAFSCALE_BIN" KAFSCALE_E2E_REQUIRE_BROKER=1 \
    "$VENV/bin/python" -m pytest tests/e2e --junitxml="$junit" "$@" || rc=$?
  if [ -f "$junit" ]; then
    E2E_TESTS="$("$VENV/bin/python" - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
t = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
passed = t["tests"] - t["failures"] - t["errors"] - t["skipped"]
print(f"{passed} passed, {t['failures'] + t['errors']} failed, {t['skipped']} skipped")
PY
)"
  fi
  if [ "$rc" -ne 0 ]; then
    # The shared servers' side of a failure (CI keeps only what is printed).
    echo "----- disk: $(df -h "$LOG_DIR" | tail -1)"
    echo "----- $LOG_DIR/seaweedfs/weed.log (last lines)"; tail -40 "$LOG_DIR/seaweedfs/weed.log" 2>/dev/null || true
    echo "----- $LOG_DIR/etcd/etcd.log (last lines)"; tail -20 "$LOG_DIR/etcd/etcd.log" 2>/dev/null || true
  fi
  return "$rc"
}

# librdkafka's own integration tests (the untagged entries of tests/librdkafka/allow.txt)
# against a real broker. The build (the pinned rdkafka-sys crate into target/librdkafka, once)
# is a step of its own that fails loudly; the run's 'librdkafka: N passed, ...' line counts.
build_librdkafka_suite() {
  CARGO_TARGET_DIR="$TARGET_DIR" "$ROOT/scripts/librdkafka-suite.sh" --build-only
}
run_librdkafka_suite() {
  local out="$LOG_DIR/librdkafka-suite.log" rc=0
  KAFSCALE_BIN="$KAFSCALE_BIN" CARGO_TARGET_DIR="$TARGET_DIR" PYTHON="$VENV/bin/python" \
    "$ROOT/scripts/librdkafka-suite.sh" --fast 2>&1 | tee "$out" || rc=$?
  RDK_TESTS="$(sed -n 's/^librdkafka: //p' "$out" | tail -1)"
  return "$rc"
}

# The S3-compatible server the S3 tests run against (SeaweedFS on loopback).
# shellcheck source=scripts/seaweedfs.sh
source "$ROOT/scripts/seaweedfs.sh"
PYTHON_BIN="$VENV/bin/python" PATH="$VENV/bin:$PATH" seaweedfs_start "$LOG_DIR/seaweedfs" \
  || { echo "error: cannot start SeaweedFS" >&2; exit 1; }
export KAFSCALE_TEST_REQUIRE_S3=1

# The real etcd the etcd tests run against (Debian's etcd-server on loopback).
# shellcheck source=scripts/etcd.sh
source "$ROOT/scripts/etcd.sh"
PYTHON_BIN="$VENV/bin/python" etcd_start "$LOG_DIR/etcd" || { echo "error: cannot start etcd" >&2; exit 1; }
export KAFSCALE_TEST_REQUIRE_ETCD=1

# Containers: the broker's image (run by tests/e2e/test_image.py with podman), images of
# etcd and SeaweedFS from the binaries installed above, and podman's Docker-compatible API
# for the testcontainers suite (testkit/tests/containers.rs). A machine where podman cannot
# run fails this step, and those tests, loudly instead of skipping them.
# shellcheck source=scripts/podman.sh
source "$ROOT/scripts/podman.sh"
PODMAN_SOCKET="$LOG_DIR/podman.sock"
build_images() {
  podman_setup \
    && "$ROOT/scripts/image.sh" "$KAFSCALE_BIN" kafscale:test \
    && tool_image "$(command -v etcd)" kafscale-etcd:test \
    && tool_image "$(PATH="$VENV/bin:$PATH" command -v weed)" kafscale-seaweedfs:test \
    && podman_service_start "$PODMAN_SOCKET"
}
export KAFSCALE_TEST_IMAGE=kafscale:test KAFSCALE_TEST_REQUIRE_IMAGE=1
export KAFSCALE_TEST_CONTAINERS=1 DOCKER_HOST="unix://$PODMAN_SOCKET" \
  KAFSCALE_TEST_IMAGE_BROKER=localhost/kafscale:test \
  KAFSCALE_TEST_IMAGE_ETCD=localhost/kafscale-etcd:test \
  KAFSCALE_TEST_IMAGE_SEAWEEDFS=localhost/kafscale-seaweedfs:test

if step "cargo build --workspace" cargo build --workspace; then
  step "container images (podman)" build_images || true
  step "cargo test --workspace" run_cargo_tests || true
  step "pytest tests/e2e" run_e2e "$@" || true
  if step "librdkafka suite build (cached)" build_librdkafka_suite; then
    step "librdkafka's own test suite" run_librdkafka_suite || true
  else
    record SKIP "librdkafka's own test suite" "its build failed"
  fi
else
  record SKIP "cargo test --workspace" "build failed"
  record SKIP "pytest tests/e2e" "build failed"
  record SKIP "librdkafka suite build (cached)" "build failed"
  record SKIP "librdkafka's own test suite" "build failed"
fi
