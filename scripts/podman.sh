# Podman for the container tests. Sourced by scripts/test.sh and scripts/image.sh users.
#
# podman_setup checks that podman and runc are installed (scripts/test.sh installs them from
# Debian) and, unless a configuration exists, writes /etc/containers/containers.conf with the
# runtime settings this kind of machine needs: the default runtime (crun) fails on its
# cgroups and on raising limits. It fails, saying why, where podman cannot run.

podman_setup() {
  local tool
  for tool in podman runc; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found (apt-get install podman runc)" >&2; return 1; }
  done
  if [ ! -f /etc/containers/containers.conf ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo mkdir -p /etc/containers
    $sudo tee /etc/containers/containers.conf >/dev/null <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
  fi
  podman info >/dev/null 2>&1 || { echo "error: podman does not work here: $(podman info 2>&1 | tail -1)" >&2; return 1; }
}

# copy_binary BINARY DEST_ROOTFS PATH_IN_IMAGE: the binary (debug info stripped) and the shared
# libraries it links, at the paths the loader looks for them.
copy_binary() {
  local binary=$1 rootfs=$2 path=$3 lib
  mkdir -p "$rootfs$(dirname "$path")"
  objcopy --strip-debug "$binary" "$rootfs$path"
  ldd "$binary" 2>/dev/null | awk '/=>/ { print $3 } /^[ \t]*\// { print $1 }' | while read -r lib; do
    [ -n "$lib" ] && [ -e "$lib" ] || continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}

# tool_image BINARY TAG: an image of one server binary (etcd, SeaweedFS) for the containers
# tests, FROM scratch: the binary as /usr/local/bin/server, its libraries, a writable /data.
tool_image() {
  local binary=$1 tag=$2 ctx
  ctx="$(mktemp -d)"
  mkdir -p "$ctx/rootfs/data" "$ctx/rootfs/tmp"
  copy_binary "$binary" "$ctx/rootfs" /usr/local/bin/server
  printf 'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/usr/local/bin/server"]\n' >"$ctx/Containerfile"
  podman build -q -t "$tag" -f "$ctx/Containerfile" "$ctx" >/dev/null
  local rc=$?
  rm -rf "$ctx"
  return $rc
}

PODMAN_SERVICE_PID=""

# podman_service_start SOCKET: podman's Docker-compatible API on a unix socket, for Docker API
# clients such as testcontainers (DOCKER_HOST=unix://SOCKET).
podman_service_start() {
  local sock=$1 i
  rm -f "$sock"
  podman system service --time=0 "unix://$sock" >/dev/null 2>&1 &
  PODMAN_SERVICE_PID=$!
  for i in $(seq 1 100); do
    [ -S "$sock" ] && return 0
    sleep 0.1
  done
  echo "error: podman system service did not open $sock" >&2
  return 1
}

podman_service_stop() {
  [ -n "$PODMAN_SERVICE_PID" ] || return 0
  kill "$PODMAN_SERVICE_PID" 2>/dev/null || true
  wait "$PODMAN_SERVICE_PID" 2>/dev/null || true
  PODMAN_SERVICE_PID=""
}
