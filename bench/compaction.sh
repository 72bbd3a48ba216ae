#!/usr/bin/env bash
# The log cleaner's cost on 1 GiB of updates (local-directory object store, embedded
# metadata): segment MiB cleaned per second and peak memory during the clean.
# Usage: bench/compaction.sh [MiB] [keys] [value bytes]   (defaults 1024 100000 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p kafscale-adapters --example clean_bench -- "${@:-1024}"
