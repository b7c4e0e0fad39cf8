#!/usr/bin/env bash
# Install everything, then run the checks and the whole test suite:
# lint, unit tests, and integration tests against real nats-server,
# real micro-VMs with the sched_ext kernel and the real local LLM.
#   scripts/test.sh                 # everything but the docker-compose e2e
#   scripts/test.sh -m "not vm"     # pytest arguments replace the default selection
#   scripts/test.sh -m docker       # the compose e2e (builds images; see docs/deploy.md)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
printf '\n==> lint (ruff)\n' >&2
.venv/bin/ruff check .
printf '\n==> tests\n' >&2
export SCHEDCP_LOG_LEVEL=${SCHEDCP_LOG_LEVEL:-warning}
set +e
if [ $# -eq 0 ]; then
  # The compose e2e builds container images from a debootstrapped base; it
  # has its own entry (-m docker) so the default run stays within CI's budget.
  set -- -m "not docker"
fi
# Integration tests drive emulated (TCG) micro-VMs and real servers on a
# shared 2-core machine; a failed test is run once more before it counts,
# and the summary lists every rerun so flakiness stays visible.
.venv/bin/python -m pytest -p no:cacheprovider --timeout=900 --durations=30 --reruns 1 --reruns-delay 2 "$@"
rc=$?
set -e
# pytest exits 5 when nothing was collected: that is a failure here.
exit $rc
