#!/usr/bin/env bash
# Install everything, then run the checks and the whole test suite:
# lint, unit tests, and integration tests against real nats-server,
# real micro-VMs with the sched_ext kernel and the real local LLM.
#   scripts/test.sh                 # everything
#   scripts/test.sh -m "not vm"     # extra pytest arguments pass through
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
printf '\n==> lint (ruff)\n' >&2
.venv/bin/ruff check .
printf '\n==> tests\n' >&2
export SCHEDCP_LOG_LEVEL=${SCHEDCP_LOG_LEVEL:-warning}
set +e
.venv/bin/python -m pytest -p no:cacheprovider --timeout=900 "$@"
rc=$?
set -e
# pytest exits 5 when nothing was collected: that is a failure here.
exit $rc
