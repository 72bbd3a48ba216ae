#!/usr/bin/env bash
# Runs the fuzz targets for a chosen time each and reports the corpus size and any findings.
#
# Usage: fuzz/run.sh [-t SECONDS] [TARGET...]     (default: 60 s each, every target)
#        fuzz/run.sh -t 1800                       (the 30 minutes per target of a release)
#
# Installs cargo-fuzz if missing. Uses the nightly toolchain if rustup has one, else the
# stable one with RUSTC_BOOTSTRAP=1. A single allocation above -malloc_limit_mb counts as a
# crash, so a length the input cannot hold that is allocated anyway is a finding, not a slow
# run. Corpora live in fuzz/corpus/TARGET (kept between runs, not committed); findings in
# fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

SECONDS_EACH=60
if [ "${1:-}" = "-t" ]; then
  SECONDS_EACH=$2
  shift 2
fi
ALL=(frame request response records batch flush_object stored sasl encrypted)
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${ALL[@]}")

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  FUZZ=(cargo +nightly fuzz)
else
  FUZZ=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi

status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "==> $t for ${SECONDS_EACH}s"
  rc=0
  "${FUZZ[@]}" run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -malloc_limit_mb=256 \
    -rss_limit_mb=2048 -print_final_stats=1 2>"artifacts/$t/log.txt" || rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+.*DONE' "artifacts/$t/log.txt" || true
  found=$(find "artifacts/$t" -type f ! -name log.txt | wc -l)
  echo "$t: corpus $(find "corpus/$t" -type f | wc -l) inputs, findings $found, exit $rc"
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    status=1
    tail -n 40 "artifacts/$t/log.txt"
  fi
done
exit "$status"
