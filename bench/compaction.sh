#!/usr/bin/env bash
# The log cleaner's cost on 1 GiB of updates (local-directory object store, embedded
# metadata): one process writes the updates and merges them into segments, a fresh one cleans
# them and reports segment MiB cleaned per second and its peak memory.
# Usage: bench/compaction.sh [MiB] [keys] [value bytes]   (defaults 1024 100000 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kafscale-adapters --example clean_bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/clean_bench"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$bin" prepare "$dir" "${1:-1024}" "${2:-100000}" "${3:-1000}"
"$bin" clean "$dir"
