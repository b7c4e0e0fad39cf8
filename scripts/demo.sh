#!/usr/bin/env bash
# Install everything, then run schedcp's main job end to end:
#   1. `schedcp up`: nats-server (JetStream), the six services and the local LLM;
#   2. `schedcp optimize`: observe a batch workload with a long tail, plan
#      (repository search + LLM), verify the candidates in sched_ext
#      micro-VMs, deploy the winner through the executor, learn;
#   3. `schedcp status` and the events the loop left on the bus;
#   4. `schedcp down`, also when anything above fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
step() { printf '\n==> %s\n' "$*" >&2; }

step "schedcp up"
schedcp up
trap 'step "schedcp down"; schedcp down' EXIT

# together=0: tasks are born as the batch submits them, which is what the
# observer should see (the gated start, for clean A/B runs, hides the births).
step "schedcp optimize -- a batch workload with a long tail"
schedcp optimize --node vm --llm "${SCHEDCP_DEMO_LLM:-http://127.0.0.1:${SCHEDCP_LLM_PORT:-8089}/v1}" \
  -- "$PWD/.venv/bin/python" -m schedcp.workloads run batch-long-tail --param together=0

step "schedcp status"
schedcp status || true

step "what the loop published on the bus"
schedcp watch --all --limit "${SCHEDCP_DEMO_EVENTS:-20}" &
watcher=$!
sleep 5
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
