#!/usr/bin/env bash
# Install the Debian packages schedcp needs on a fresh bookworm machine.
#
# bookworm-backports is added for bpftool 7.5 / libbpf 1.4 (bookworm's own are
# too old for .struct_ops.link); it keeps its default low priority, and each
# package wanted from it is named with /bookworm-backports so nothing else on
# the host is upgraded. Kernels for the micro-VMs are fetched separately with a
# private apt configuration (schedcp/substrate/kernel.py) and never installed.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

src=/etc/apt/sources.list.d/schedcp-backports.sources
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  $SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

# One list, grouped by why it is needed.
PACKAGES=(
  # Python runtime for the virtualenv
  python3 python3-venv python3-dev
  # build tools
  make gcc libc6-dev git ca-certificates
  # BPF build chain
  clang-19 llvm-19
  # micro-VMs: qemu 7.2 ships qboot.rom and the C virtiofsd we use
  qemu-system-x86 qemu-system-data qemu-system-common
  busybox-static cpio zstd xz-utils
  # workloads and stress tools run inside the guests
  rt-tests stress-ng
  # network namespaces for multi-host tests
  iproute2
)
BACKPORTS=(bpftool/bookworm-backports libbpf1/bookworm-backports libbpf-dev/bookworm-backports)

missing=()
for p in "${PACKAGES[@]}" "${BACKPORTS[@]}"; do
  name=${p%%/*}
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# bpftool from bookworm proper is too old: make sure the backports one is there.
if dpkg-query -W -f='${Version}' bpftool 2>/dev/null | grep -q '^7\.1'; then
  missing+=("${BACKPORTS[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "schedcp: installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "schedcp: Debian packages already installed"
fi
