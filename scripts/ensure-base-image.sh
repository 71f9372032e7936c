#!/usr/bin/env bash
# Makes sure the base image `debian:bookworm-slim` (or $SCALE_BASE_IMAGE) exists in the engine.
# On a machine with a registry it is simply pulled; on a machine without one it is
# bootstrapped with debootstrap (minbase) from the mirror this machine's own apt sources name.
# Idempotent: when the image is there it only asks the engine, and returns at once.
# Used by the README's main command, by `cargo test` (the engine guard in tests/common runs it
# when the image is missing) and by .ci/run.
set -euo pipefail

IMAGE="${SCALE_BASE_IMAGE:-debian:bookworm-slim}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE: present"
  exit 0
fi

if timeout 60 docker pull "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE: pulled"
  exit 0
fi

echo "base image $IMAGE: no registry reachable, bootstrapping it with debootstrap"

# The mirror comes from the machine's own apt configuration, never from this repository.
mirror=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ {print $2; exit}' "$f" | grep -v -- '-security' || true)
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
  echo "error: cannot find a Debian mirror in /etc/apt/sources.list{,.d}; set one up or load $IMAGE by hand" >&2
  exit 1
fi

if [ "$(id -u)" != 0 ]; then
  echo "error: making $IMAGE offline needs root (debootstrap); run: sudo bash $0" >&2
  exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /tmp/scale-rootfs.XXXXXX)
log=$(mktemp /tmp/scale-debootstrap.XXXXXX.log)
trap 'rm -rf "$root"' EXIT
echo "base image $IMAGE: debootstrap from $mirror (a few minutes; log: $log)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$log" 2>&1 || {
  tail -n 30 "$log" >&2
  exit 1
}
# Keep the image small and point apt inside it at the same mirror.
echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# mktemp -d made the root 0700; the image's `/` must be 0755 (a vfs engine applies it).
chmod 755 "$root"
tar -C "$root" -c . | docker import - "$IMAGE" >/dev/null
rm -f "$log"
echo "base image $IMAGE: imported"
