#!/usr/bin/env bash
# Run every benchmark; each writes its numbers to docs/benchmarks-<area>.md
# together with the command that reproduces them. Benchmarks are never part
# of the test suite: speed and size targets live here, not in timed tests.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*.py; do
  case "$b" in bench/results_table.py) continue ;; esac
  printf '\n==> %s\n' "$b" >&2
  .venv/bin/python "$b" "$@"
done
printf '\n==> bench/results_table.py (scheduler x workload against EEVDF)\n' >&2
.venv/bin/python bench/results_table.py
