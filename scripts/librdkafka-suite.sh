#!/usr/bin/env bash
# librdkafka's own integration test suite (its tests/ directory) against a real KafScale broker.
#
# The source is the crates.io package rdkafka-sys, which vendors librdkafka with its tests;
# it is pinned below by version and sha256. librdkafka and tests/test-runner are built once
# into $TARGET_DIR/librdkafka/ (a second run reuses the build), then one broker per scenario
# is started (`kafscale serve`, embedded metadata in a temporary data dir, num.partitions 4
# as librdkafka's scenarios expect; the "noautocreate" scenario's broker does not
# auto-create topics; tests tagged sasl in allow.txt get a broker whose clients' listener is
# SASL_PLAINTEXT, SCRAM-SHA-256 with a user created for them, sessions re-authenticated
# every 10 s) and every selected test runs in its own test-runner process with a
# timeout. Prints pass/fail/skip counts; exits non-zero if a test failed or nothing could
# be built or started.
#
# Usage: scripts/librdkafka-suite.sh [--fast | --all | --build-only] [TEST...]
#   (no argument)  every test in tests/librdkafka/allow.txt (about 19 minutes)
#   --fast         allow.txt's entries not tagged local or slow: the broker tests but the
#                  slowest (what scripts/test.sh runs, about 4 minutes)
#   --all          every test of the suite (the classification run: see
#                  tests/librdkafka/exclude.txt for why each excluded test does not apply)
#   --build-only   build librdkafka and test-runner, run nothing
#   TEST...        these entries only (e.g. 0001 0030 0107/noautocreate)
# Environment: KAFSCALE_BIN (default $TARGET_DIR/debug/kafscale), CARGO_TARGET_DIR,
#   RDK_LOG_DIR (default $TARGET_DIR/test-logs/librdkafka), RDK_TEST_TIMEOUT (seconds
#   per test, default 180), RDK_TEST_DEBUG (librdkafka debug
#   contexts for every client, e.g. cgrp,fetch), RDK_JOBS (build jobs, default nproc).
set -euo pipefail
# The whole script is one brace group, read before it runs: editing the file during a run
# (the --all run takes a while) cannot change what runs.
{
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/process.sh
source "$ROOT/scripts/process.sh"

CRATE_VERSION="4.10.0+2.12.1" # librdkafka 2.12.1
CRATE_SHA256="e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77"
CRATE_URL="https://static.crates.io/crates/rdkafka-sys/rdkafka-sys-${CRATE_VERSION}.crate"
# Every codec and TLS (the SSL and SASL tests' local parts); no GSSAPI or curl (OIDC),
# which the broker does not serve. lz4 is librdkafka's bundled copy.
CONFIGURE_ARGS=(--enable-zlib --enable-zstd --enable-ssl --disable-gssapi --disable-curl --disable-lz4-ext)
# The Kafka version test-runner is told: it skips tests for newer brokers. KafScale's API
# versions are those of Kafka 3.7 (Fetch 16, DescribeTopicPartitions).
KAFKA_VERSION="3.7.0"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
KAFSCALE_BIN="${KAFSCALE_BIN:-$TARGET_DIR/debug/kafscale}"
BUILD_DIR="$TARGET_DIR/librdkafka"
SRC="$BUILD_DIR/rdkafka-sys-$CRATE_VERSION/librdkafka"
RUNNER="$SRC/tests/test-runner"
LOG_DIR="${RDK_LOG_DIR:-$TARGET_DIR/test-logs/librdkafka}"
LISTS="$ROOT/tests/librdkafka"
TIMEOUT="${RDK_TEST_TIMEOUT:-180}"
PYTHON="${PYTHON:-python3}"

mode=allow
tests=()
for arg in "$@"; do
  case "$arg" in
    --all) mode=all ;;
    --fast) mode=fast ;;
    --build-only) mode=build ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    [0-9][0-9][0-9][0-9] | [0-9][0-9][0-9][0-9]/*) mode=given; tests+=("$arg") ;;
    *) echo "error: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

# ---------------------------------------------------------------------------------------
# Build (cached: the stamp records what the build was made from)
build() {
  local stamp want
  # configure leaves out the tests' statistics checks (0053, 0110) without RapidJSON rather
  # than failing: insist on it here instead.
  [ -f /usr/include/rapidjson/schema.h ] \
    || { echo "error: RapidJSON headers missing (apt-get install rapidjson-dev)" >&2; return 1; }
  want="$CRATE_SHA256 ${CONFIGURE_ARGS[*]} rapidjson $(gcc -dumpfullversion 2>/dev/null)"
  stamp="$BUILD_DIR/.kafscale-built"
  if [ -x "$RUNNER" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    echo "librdkafka $CRATE_VERSION and test-runner already built ($BUILD_DIR)"
    return 0
  fi
  local t0=$SECONDS crate="$BUILD_DIR/rdkafka-sys-$CRATE_VERSION.crate" jobs="${RDK_JOBS:-$(nproc)}"
  mkdir -p "$BUILD_DIR"
  if ! echo "$CRATE_SHA256  $crate" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "downloading rdkafka-sys $CRATE_VERSION from crates.io"
    curl -sSfL --retry 3 -o "$crate.part" "$CRATE_URL"
    echo "$CRATE_SHA256  $crate.part" | sha256sum -c --quiet - \
      || { echo "error: sha256 of $CRATE_URL is not $CRATE_SHA256" >&2; return 1; }
    mv "$crate.part" "$crate"
  fi
  rm -rf "$BUILD_DIR/rdkafka-sys-$CRATE_VERSION" "$stamp"
  tar -xzf "$crate" -C "$BUILD_DIR"
  echo "building librdkafka $CRATE_VERSION and tests/test-runner (log $BUILD_DIR/build.log)"
  if ! (cd "$SRC" && ./configure "${CONFIGURE_ARGS[@]}" && make -j"$jobs" libs \
        && make -j"$jobs" -C tests build) >"$BUILD_DIR/build.log" 2>&1; then
    tail -40 "$BUILD_DIR/build.log" >&2
    echo "error: building librdkafka's test suite failed (log above)" >&2
    return 1
  fi
  [ -x "$RUNNER" ] || { echo "error: no $RUNNER after the build" >&2; return 1; }
  echo "$want" >"$stamp"
  echo "built in $((SECONDS - t0))s"
}
build
[ "$mode" != build ] || exit 0

# ---------------------------------------------------------------------------------------
# Which tests. An entry is a test number, or NUMBER/SCENARIO for a scenario other than
# "default" (test-runner -s): allow.txt has "ENTRY [TAG...]  # note" lines (TAG local, slow,
# sasl, full or timeout=SECONDS), exclude.txt "ENTRY reason".
list_entries() { sed -e 's/#.*//' "$1" | awk 'NF { print $1 }'; }
tags_of() { sed -e 's/#.*//' "$LISTS/allow.txt" | awk -v e="$1" '$1 == e { $1 = ""; print }'; }
# Every entry of the suite's own table (tests/test.c): each test number with each scenario
# one of its variants needs; the manual 8nnn tests left out.
suite_entries() {
  awk '/^struct test tests\[\] = /,/^};/' "$SRC/tests/test.c" | awk '
    function out() { if (n != "") print (sc == "default" ? n : n "/" sc) }
    /_TEST\(0[0-9][0-9][0-9]_/ { out(); match($0, /0[0-9][0-9][0-9]/); n = substr($0, RSTART, 4); sc = "default" }
    /\.scenario *= *"/ { match($0, /"[^"]*"/); v = substr($0, RSTART + 1, RLENGTH - 2); if (v !~ /default/) sc = v }
    END { out() }' | sort -u
}
check_lists() { # every entry of the suite is allowed or excluded, none both
  local all listed dup missing unknown
  all="$(suite_entries)"
  listed="$( (list_entries "$LISTS/allow.txt"; list_entries "$LISTS/exclude.txt") | sort)"
  dup="$(uniq -d <<<"$listed")"
  missing="$(comm -23 <(echo "$all") <(uniq <<<"$listed"))"
  unknown="$(comm -13 <(echo "$all") <(uniq <<<"$listed"))"
  [ -z "$dup" ] || { echo "error: listed twice in tests/librdkafka:" $dup >&2; return 1; }
  [ -z "$missing" ] || { echo "error: tests in neither allow.txt nor exclude.txt:" $missing >&2; return 1; }
  [ -z "$unknown" ] || { echo "error: tests/librdkafka lists tests the suite does not have:" $unknown >&2; return 1; }
}
# The allow-list run insists on complete lists, so a new librdkafka's new tests are seen;
# --all (classifying a new version) only warns.
if [ "$mode" = allow ] || [ "$mode" = fast ]; then check_lists; else check_lists || echo "(warning only)"; fi
case "$mode" in
  allow) mapfile -t tests < <(list_entries "$LISTS/allow.txt") ;;
  fast) mapfile -t tests < <(sed -e 's/#.*//' "$LISTS/allow.txt" | awk 'NF && !/ (local|slow)( |$)/ { print $1 }') ;;
  all) mapfile -t tests < <(suite_entries) ;;
esac

# ---------------------------------------------------------------------------------------
# Brokers: one per scenario, started on first use
[ -x "$KAFSCALE_BIN" ] || { echo "error: no broker binary at $KAFSCALE_BIN (cargo build -p kafscale)" >&2; exit 1; }
rm -rf "$LOG_DIR" && mkdir -p "$LOG_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kafscale-librdkafka.XXXXXX")"
declare -A BROKER_PID BROKER_PORT
cleanup() {
  local s
  for s in "${!BROKER_PID[@]}"; do stop_process "${BROKER_PID[$s]}"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The SASL broker's user (test-runner passes test.conf's sasl.* to every client).
SASL_USER=rdktest
SASL_PASSWORD=rdktest-secret
start_broker() { # start_broker SCENARIO (a test-runner scenario, or sasl)
  local s=$1 port http auto=true i bin listen
  [ "$s" != noautocreate ] || auto=false
  port="$("$PYTHON" "$ROOT/scripts/free_ports.py" 20000 29999 4 0 1 2)" || return 1
  http=$((port + 1))
  listen=(--listen "127.0.0.1:$port")
  if [ "$s" = sasl ]; then
    # Clients on SASL_PLAINTEXT; the user is created through a plaintext listener of its own
    # (port + 2) that the tests are not told about.
    listen=(--set "listeners=SASL_PLAINTEXT://127.0.0.1:$port,SETUP://127.0.0.1:$((port + 2))"
      --set "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,SETUP:PLAINTEXT"
      --set sasl.enabled.mechanisms=SCRAM-SHA-256 --set connections.max.reauth.ms=10000
      --set connection.failed.authentication.delay.ms=0)
  fi
  # The broker reads KAFSCALE_* variables as settings: it gets none of the caller's
  # (scripts/test.sh exports KAFSCALE_BIN and KAFSCALE_TEST_*).
  local bin=$KAFSCALE_BIN
  (
    for v in $(compgen -e | grep '^KAFSCALE_' || true); do unset "$v"; done
    exec "$bin" serve "${listen[@]}" --http-listen "127.0.0.1:$http" \
      --data-dir "$WORK/$s-data" --set num.partitions=4 --set "auto.create.topics.enable=$auto"
  ) >>"$LOG_DIR/broker-$s.log" 2>&1 &
  BROKER_PID[$s]=$!
  BROKER_PORT[$s]=$port
  for i in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$http/healthz" >/dev/null 2>&1; then
      printf 'metadata.broker.list=127.0.0.1:%s\n' "$port" >"$WORK/test-$s.conf"
      if [ "$s" = sasl ]; then
        "$bin" user create "$SASL_USER" --password "$SASL_PASSWORD" --mechanism SCRAM-SHA-256 \
          --bootstrap "127.0.0.1:$((port + 2))" >>"$LOG_DIR/broker-$s.log" 2>&1 \
          || { echo "error: cannot create the SASL user; log:" >&2; tail -30 "$LOG_DIR/broker-$s.log" >&2; return 1; }
        printf '%s\n' security.protocol=SASL_PLAINTEXT sasl.mechanism=SCRAM-SHA-256 \
          "sasl.username=$SASL_USER" "sasl.password=$SASL_PASSWORD" >>"$WORK/test-$s.conf"
      fi
      echo "broker for scenario $s on 127.0.0.1:$port (pid ${BROKER_PID[$s]}, log $LOG_DIR/broker-$s.log)"
      return 0
    fi
    kill -0 "${BROKER_PID[$s]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "error: the broker for scenario $s did not start; log:" >&2
  tail -30 "$LOG_DIR/broker-$s.log" >&2
  return 1
}
broker_for() { # broker_for SCENARIO: (re)starts it unless it runs
  local s=$1
  if [ -n "${BROKER_PID[$s]:-}" ] && kill -0 "${BROKER_PID[$s]}" 2>/dev/null; then return 0; fi
  if [ -n "${BROKER_PID[$s]:-}" ]; then
    echo "the broker for scenario $s is gone (exit logged in $LOG_DIR/broker-$s.log); restarting it"
  fi
  start_broker "$s"
}

# ---------------------------------------------------------------------------------------
# Run: one process per test number (test-runner matches TESTS by number, so a number's
# variants - 0045_subscribe_update, 0045_subscribe_update_mock, ... - run together).
PASS=() FAIL=() SKIP=()
strip_ansi() { sed -e 's/\x1b\[[0-9;]*[a-zA-Z]//g' -e 's/\x1b(B//g'; }
run_one() {
  local entry=$1 t s b log rc=0 t0=$SECONDS summary
  t="${entry%%/*}"
  s="default"
  [ "$entry" = "$t" ] || s="${entry#*/}"
  # The broker: the scenario's, or the SASL one for tests tagged sasl. Quick mode (-Q)
  # unless tagged full: some tests run nothing but their quick subtests in it.
  local tags quick=-Q
  tags=" $(tags_of "$entry") "
  b=$s
  [[ "$tags" != *" sasl "* ]] || b=sasl
  [[ "$tags" != *" full "* ]] || quick=
  # A tag timeout=SECONDS gives one test longer than RDK_TEST_TIMEOUT.
  local limit=$TIMEOUT
  if [[ "$tags" =~ \ timeout=([0-9]+)\  ]] && [ "${BASH_REMATCH[1]}" -gt "$limit" ]; then
    limit=${BASH_REMATCH[1]}
  fi
  broker_for "$b" || return 1
  log="$LOG_DIR/${entry//\//-}.log"
  (cd "$SRC/tests" && env TESTS="$t" TEST_KAFKA_VERSION="$KAFKA_VERSION" \
    RDKAFKA_TEST_CONF="$WORK/test-$b.conf" LD_LIBRARY_PATH="../src:../src-cpp" \
    ${RDK_TEST_DEBUG:+TEST_DEBUG=$RDK_TEST_DEBUG} \
    timeout -k 10 "$limit" ./test-runner $quick -E -s "$s" ) >"$log" 2>&1 || rc=$?
  rm -f "$SRC"/tests/stats_*.json
  # The runner's closing table: "| 0045_subscribe_update  |  PASSED | 1.2s |" per variant.
  summary="$(strip_ansi <"$log" | awk -F'|' 'NF >= 4 && $2 ~ /^ *[0-9][0-9][0-9][0-9]_/ { gsub(/ /, "", $2); gsub(/ /, "", $3); printf "%s %s; ", $2, $3 }')"
  local took=$((SECONDS - t0)) verdict
  if [ "$took" -ge "$limit" ]; then
    verdict=FAIL; summary="killed after ${limit}s; $summary"
  elif [ "$rc" -ne 0 ] || grep -q 'FAILED' <<<"$summary"; then
    verdict=FAIL; summary="exit $rc; $summary"
  elif grep -q 'PASSED' <<<"$summary"; then
    verdict=PASS
  else
    verdict=SKIP
  fi
  if ! kill -0 "${BROKER_PID[$b]}" 2>/dev/null; then
    verdict=FAIL; summary="the broker exited; $summary"
  fi
  printf '%-4s %-17s %4ss  %s\n' "$verdict" "$entry" "$took" "${summary%; }"
  case "$verdict" in
    PASS) PASS+=("$entry") ;;
    SKIP) SKIP+=("$entry") ;;
    FAIL)
      FAIL+=("$entry")
      echo "----- $log (last lines; whole log kept there)"
      strip_ansi <"$log" | grep -v '^\s*$' | tail -25 | sed 's/^/    /'
      echo "-----"
      ;;
  esac
}

echo "running ${#tests[@]} librdkafka tests ($mode), ${TIMEOUT}s timeout each, logs in $LOG_DIR"
T_START=$SECONDS
for t in "${tests[@]}"; do
  run_one "$t" || { echo "error: cannot start a broker" >&2; exit 1; }
done

echo
echo "librdkafka $CRATE_VERSION suite ($mode): ${#tests[@]} tests in $((SECONDS - T_START))s"
[ "${#FAIL[@]}" -eq 0 ] || echo "failed: ${FAIL[*]}"
[ "${#SKIP[@]}" -eq 0 ] || echo "skipped by test-runner: ${SKIP[*]}"
echo "librdkafka: ${#PASS[@]} passed, ${#FAIL[@]} failed, ${#SKIP[@]} skipped"
[ "${#FAIL[@]}" -eq 0 ]
exit $?
}
