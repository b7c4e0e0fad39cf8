#!/usr/bin/env bash
# Install everything, then run the checks and the whole test suite:
# lint, unit tests, and integration tests against real nats-server,
# real micro-VMs with the sched_ext kernel and the real local LLM.
#   scripts/test.sh                 # everything, the docker-compose e2e included
#   scripts/test.sh -m "not docker" # pytest arguments replace the default selection
#   scripts/test.sh -m docker       # only the compose e2e (builds images; see docs/deploy.md)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if [ $# -eq 0 ] || { [[ " $* " == *docker* ]] && [[ " $* " != *"not docker"* ]]; }; then
  # The compose e2e needs dockerd, docker-compose v2 and mmdebstrap (it
  # starts and stops its own dockerd); installed here, not assumed.
  printf '\n==> docker (for the compose e2e)\n' >&2
  bash deploy/install-docker.sh
fi
printf '\n==> lint (ruff)\n' >&2
.venv/bin/ruff check .
printf '\n==> tests\n' >&2
set +e
# Integration tests drive emulated (TCG) micro-VMs and real servers on a
# shared 2-core machine; a failed test is run once more before it counts,
# and the summary lists every rerun so flakiness stays visible.
.venv/bin/python -m pytest -p no:cacheprovider --timeout=900 --durations=30 --reruns 1 --reruns-delay 2 "$@"
rc=$?
set -e
# pytest exits 5 when nothing was collected: that is a failure here.
exit $rc
