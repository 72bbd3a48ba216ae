#!/usr/bin/env bash
# Builds the broker's container image from a binary already built, with podman or docker:
# FROM scratch, the binary (stripped) with the CLI inside (same binary), the shared
# libraries it links, CA certificates for S3 over TLS, a non-root user (65532), and a
# writable /var/lib/kafscale. No registry is needed. deploy/Dockerfile builds the same from
# source on machines that can pull base images.
#
# Usage: scripts/image.sh [BINARY] [TAG]   (defaults: target/debug/kafscale, kafscale:dev)
# On a machine where podman's default runtime fails (see scripts/podman.sh), run
# `source scripts/podman.sh && podman_setup` first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BINARY="${1:-$ROOT/target/debug/kafscale}"
TAG="${2:-kafscale:dev}"
ENGINE="${CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}"
[ -n "$ENGINE" ] || { echo "error: neither podman nor docker found" >&2; exit 1; }
[ -x "$BINARY" ] || { echo "error: no broker binary at $BINARY (cargo build first)" >&2; exit 1; }

CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
# rootfs/ is owned by root; owned/ (the data directory, /tmp) by the broker's user.
mkdir -p "$CTX/rootfs/usr/local/bin" "$CTX/rootfs/etc/ssl/certs" "$CTX/owned/tmp" \
  "$CTX/owned/var/lib/kafscale"
# shellcheck source=scripts/podman.sh
source "$ROOT/scripts/podman.sh"
# Stripped of debug info (most of a debug build's size), with its libraries.
copy_binary "$BINARY" "$CTX/rootfs" /usr/local/bin/kafscale
cp -L /etc/ssl/certs/ca-certificates.crt "$CTX/rootfs/etc/ssl/certs/" 2>/dev/null || true
printf 'root:x:0:0:root:/:/sbin/nologin\nkafscale:x:65532:65532:kafscale:/var/lib/kafscale:/sbin/nologin\n' \
  >"$CTX/rootfs/etc/passwd"
printf 'root:x:0:\nkafscale:x:65532:\n' >"$CTX/rootfs/etc/group"

cat >"$CTX/Containerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 owned/ /
USER 65532:65532
ENV KAFSCALE_DATA_DIR=/var/lib/kafscale KAFSCALE_LISTEN=0.0.0.0:9092 KAFSCALE_HTTP_LISTEN=0.0.0.0:9093
EXPOSE 9092 9093
VOLUME /var/lib/kafscale
ENTRYPOINT ["/usr/local/bin/kafscale"]
CMD ["serve"]
EOF
"$ENGINE" build -q -t "$TAG" -f "$CTX/Containerfile" "$CTX" >/dev/null
echo "built $TAG with $(basename "$ENGINE") ($(du -sh "$CTX/rootfs" | cut -f1) of files)"
