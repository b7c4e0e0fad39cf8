"""`schedcp optimize` end to end: real observation, real micro-VM verification, real store.

Two workload classes, one candidate per round to keep it short (each
verification boots micro-VMs under TCG): the wakeup server, and two
consecutive runs of the batch workload, where the second reuses the first's
win through the store on disk. (The parallel build's classification is
covered in tests/integration/observer; its loop is the same code.) Reuse
across a forced class change, between service processes, is covered in
test_planner_services.py.
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


def optimize(data_dir: Path, workload: str, *extra: str, env_extra: dict | None = None,
             workload_args: tuple[str, ...] = ()) -> dict:
    env = dict(
        os.environ,
        SCHEDCP_DATA_DIR=str(data_dir),
        SCHEDCP_LLM_URL="none",
        SCHEDCP_EXECUTOR_ADDR="127.0.0.1:1",  # no executor: verify, do not deploy
        SCHEDCP_PLANNER_MAX_ITERATIONS="0",  # one verification per workload: CI time
        **(env_extra or {}),
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
            *workload_args,
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


def _assert_full_loop(doc: dict) -> None:
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


def test_full_loop_on_micro_vms(tmp_path):
    _assert_full_loop(optimize(tmp_path, "wakeup-server"))


def test_a_second_run_of_the_same_workload_reuses_the_first_runs_win(tmp_path):
    # Any passed verdict at least as good as EEVDF counts as a win to reuse
    # (the default asks for 1.05): by how much the first candidate beats EEVDF
    # on a shared TCG host is not what this test is about.
    env = {"SCHEDCP_PLANNER_REUSE_MIN_RATIO": "1.0"}
    # Tasks born as the batch submits them (together=0) are what the observer
    # should see; the gated start hides the births.
    batch = ("--param", "together=0")
    first = optimize(tmp_path, "batch-long-tail", env_extra=env, workload_args=batch)
    _assert_full_loop(first)
    key = first["profile"]["workload_key"]
    assert key.startswith("sha256:")
    won = [v for v in first["verdicts"] if v["passed"] and v["score"] >= 1.0]
    if not won:
        pytest.skip(f"the first run found nothing at least as good as EEVDF on this host, so there "
                    f"is no win to reuse: {[(v['policy'], v['passed'], v['score']) for v in first['verdicts']]}")

    second = optimize(tmp_path, "batch-long-tail", env_extra=env, workload_args=batch)
    # The observer may classify this short run differently from the first:
    # reuse goes by the workload key, so either way the win is reused.
    assert second["profile"]["workload_key"] == key
    top = second["plans"][0]
    assert "won on this workload (same workload key" in top["rationale"], top["rationale"]
    won_plan = next(p for p in first["plans"] if p["plan_id"] == won[0]["plan_id"])
    assert (top["policy"], top["tunables"]) == (won_plan["policy"], won_plan["tunables"])
    assert second["llm_tokens"] == 0 and second["llm"]["calls"] == 0
    # Measured as the class it won under, so the verifier answers from its cache.
    assert second["verdicts"][0]["passed"] and second["verdicts"][0]["cached"]
