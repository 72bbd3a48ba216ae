#!/usr/bin/env bash
# Builds librdkafka's own producer benchmark, rdkafka_performance (the tool the peer's
# published figure was measured with), and prints its path. It is compiled against the
# librdkafka that the test venv's confluent-kafka wheel ships, so nothing of librdkafka itself
# is built; the source of the example (and the headers) come from the rdkafka-sys crate on
# crates.io, which bundles librdkafka. Only its config.h is generated. Result and sources
# live under target/bench/ (rebuildable; delete to rebuild).
#
#   bench/rdkafka_performance.sh      # -> target/bench/rdkafka_performance
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/target/bench"
BIN="$OUT/rdkafka_performance"
CRATE_VERSION="4.10.0+2.12.1"
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
LIB="$(ls "$ROOT"/.venv/lib/python3*/site-packages/confluent_kafka.libs/librdkafka-*.so.1 2>/dev/null | head -1)"
[ -n "$LIB" ] || { echo "error: no librdkafka in the test venv (./scripts/test.sh creates it)" >&2; exit 1; }
command -v cc >/dev/null || { echo "error: no C compiler (cc)" >&2; exit 1; }
mkdir -p "$OUT/fetch/src"
cat >"$OUT/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-librdkafka-source"
version = "0.0.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
rdkafka-sys = "=${CRATE_VERSION%%+*}"
TOML
echo 'fn main() {}' >"$OUT/fetch/src/main.rs"
cargo fetch --quiet --manifest-path "$OUT/fetch/Cargo.toml" >&2
SRC="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$CRATE_VERSION"/librdkafka | head -1)"
[ -d "$SRC" ] || { echo "error: librdkafka source not found after cargo fetch" >&2; exit 1; }
rm -rf "$OUT/librdkafka"
cp -r "$SRC" "$OUT/librdkafka"
(cd "$OUT/librdkafka" && ./configure --disable-ssl --disable-gssapi --disable-sasl --disable-curl \
  --disable-zstd --disable-lz4-ext --disable-zlib >"$OUT/configure.log" 2>&1) \
  || { echo "error: configure failed; see $OUT/configure.log" >&2; exit 1; }
cp "$LIB" "$OUT/"
cc -O2 -o "$BIN" -I"$OUT/librdkafka/src" "$OUT/librdkafka/examples/rdkafka_performance.c" \
  "$OUT/$(basename "$LIB")" -Wl,-rpath,'$ORIGIN' -lpthread -lm
echo "$BIN"
