"""``schedcp bench`` end to end on the host (EEVDF baseline; no sched_ext here)."""

import json
import struct
import subprocess
import sys

import pytest

from schedcp.bench.engine import EEVDF, ABRunner
from schedcp.bench.nodes import LocalHost, host_has_sched_ext
from schedcp.bench.plot import plot_result

TINY = ["--param", "short_tasks=4", "--param", "short_kiter=300", "--param", "long_tasks=1",
        "--param", "long_kiter=2000"]


def schedcp(*args):
    return subprocess.run([sys.executable, "-m", "schedcp.cli.main", *args], capture_output=True,
                          text=True, timeout=120)


def test_baseline_bench_writes_json_and_a_png(tmp_path):
    png, out = tmp_path / "b.png", tmp_path / "b.json"
    proc = schedcp("bench", "batch-long-tail", "--sched", "eevdf", "--node", "host", "--repeat", "2",
                   "--warmup", "0", "--json", "--out", str(out), "--plot", str(png), *TINY)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["baseline_only"] and doc["repetitions"] == 2
    assert {m["metric"] for m in doc["metrics"]} == {"makespan_s", "mean_completion_s"}
    assert json.loads(out.read_text()) == doc
    assert "[2/2] eevdf rep 2/2" in proc.stderr  # progress on stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 200


@pytest.mark.skipif(host_has_sched_ext(), reason="this host has sched_ext")
def test_host_without_sched_ext_says_so():
    proc = schedcp("bench", "batch-long-tail", "--sched", "fifo", "--node", "host", *TINY)
    assert proc.returncode == 2
    assert "has no sched_ext" in proc.stderr and "--node vm" in proc.stderr


def test_plot_of_an_engine_result(tmp_path):
    result = ABRunner(node=LocalHost()).compare(
        "hackbench", candidate=EEVDF, repetitions=2, warmup=0,
        params={"groups": 1, "fds": 4, "loops": 20})
    path = plot_result(result, tmp_path / "h.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
