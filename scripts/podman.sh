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
