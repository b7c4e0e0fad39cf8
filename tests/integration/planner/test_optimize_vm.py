"""`schedcp optimize` end to end: real observation, real micro-VM verification, real store.

Two workload classes, one candidate per round to keep it short (each
verification boots micro-VMs under TCG). Reuse with 0 tokens is covered
across processes in test_planner_services.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def optimize(data_dir: Path, workload: str, *extra: str) -> dict:
    env = dict(
        os.environ,
        SCHEDCP_DATA_DIR=str(data_dir),
        SCHEDCP_LLM_URL="none",
        SCHEDCP_EXECUTOR_ADDR="127.0.0.1:1",  # no executor: verify, do not deploy
        SCHEDCP_PLANNER_MAX_ITERATIONS="0",  # one verification per workload: CI time
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "schedcp.cli.main",
            "optimize",
            "--node",
            "host",
            "--json",
            "--max-candidates",
            "1",
            "--duration",
            "3",
            *extra,
            "--",
            sys.executable,
            "-m",
            "schedcp.workloads",
            "run",
            workload,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "[optimize] verifying" in proc.stderr  # progress is shown
    return json.loads(proc.stdout)


@pytest.mark.parametrize("workload", ["parallel-build", "wakeup-server"])
def test_full_loop_on_micro_vms(tmp_path, workload):
    doc = optimize(tmp_path, workload)
    assert {
        "profile",
        "plans",
        "verdicts",
        "deployed",
        "baseline",
        "result",
        "improvement",
        "llm_tokens",
        "wall_s",
    } <= set(doc)
    assert doc["llm_tokens"] == 0  # SCHEDCP_LLM_URL=none
    assert doc["profile"]["workload_class"] not in ("", "WORKLOAD_CLASS_UNSPECIFIED")
    assert doc["verdicts"] and all(v["stages"] for v in doc["verdicts"])
    assert doc["deployed"] is None  # no executor reachable: verify only
    if any(v["passed"] for v in doc["verdicts"]):
        assert doc["baseline"] and doc["result"] and doc["improvement"] > 0
    else:
        assert "nothing deployed" in doc["message"]
