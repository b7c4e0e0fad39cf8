"""``schedcp bench`` in a real micro-VM with a reference scheduler (one boot)."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

TINY = ["--param", "short_tasks=6", "--param", "short_kiter=400", "--param", "long_tasks=2",
        "--param", "long_kiter=3000"]


def test_bench_wvtime_against_eevdf_in_one_vm(tmp_path):
    png = tmp_path / "wvtime.png"
    proc = subprocess.run(
        [sys.executable, "-m", "schedcp.cli.main", "bench", "batch-long-tail", "--sched", "wvtime",
         "--set", "slice_us=3000", "--repeat", "1", "--warmup", "0", "--node", "vm", "--json",
         "--plot", str(png), *TINY],
        capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["node"].startswith("vm:") and doc["scheduler"] == "wvtime"
    assert doc["tunables"] == {"slice_us": 3000}
    # One round (the ABBA order over rounds is unit-tested): EEVDF, then the candidate.
    assert [r["arm"] for r in doc["runs"]] == ["baseline", "candidate"]
    makespan = next(m for m in doc["metrics"] if m["metric"] == "makespan_s")
    assert len(makespan["baseline_values"]) == 1 and len(makespan["candidate_values"]) == 1
    assert makespan["baseline"] > 0 and makespan["candidate"] > 0
    assert makespan["ratio"] == pytest.approx(makespan["baseline"] / makespan["candidate"])
    assert "loading wvtime" in proc.stderr and "booting" in proc.stderr
    assert "warm-up" not in proc.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
