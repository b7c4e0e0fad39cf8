"""Every reference workload really runs on this host and reports sane metrics.

Tiny parameters keep the whole file to a few seconds; the numbers are only
checked for plausibility (positive, ordered percentiles, consistent with the
work requested), never against timing targets.
"""

import json
import os
import subprocess
import sys

import pytest

from schedcp.workloads import get_workload, prepare, run_workload, workload_command
from schedcp.workloads.spec import parse_result

TINY = {
    "wakeup-server": {"runtime_s": 1, "warmup_s": 0, "message_threads": 1, "workers": 3, "hogs": 1},
    "parallel-build": {"units": 8, "unit_kiter": 500, "libraries": 2, "link_kiter": 200, "jobs": 3},
    "batch-long-tail": {"short_tasks": 6, "short_kiter": 500, "long_tasks": 2, "long_kiter": 5000},
    "interactive": {"runtime_s": 1, "warmup_s": 0, "hogs": 2, "period_us": 5000},
    "hackbench": {"groups": 1, "fds": 4, "loops": 50},
}


@pytest.fixture(scope="module", autouse=True)
def built():
    for name in TINY:
        prepare(name)


@pytest.mark.parametrize("name", sorted(TINY))
def test_workload_reports_every_declared_metric(name):
    spec = get_workload(name)
    result = run_workload(name, TINY[name])
    assert set(result.metrics) == {m.name for m in spec.metrics}
    assert all(v >= 0 for v in result.metrics.values())
    assert result.elapsed_s > 0


def test_wakeup_server_percentiles_are_ordered():
    m = run_workload("wakeup-server", TINY["wakeup-server"]).metrics
    assert m["requests_per_s"] > 100
    assert 0 < m["wakeup_p50_us"] <= m["wakeup_p99_us"] <= m["wakeup_p999_us"]


def test_batch_makespan_bounds_the_mean_completion():
    m = run_workload("batch-long-tail", TINY["batch-long-tail"]).metrics
    assert 0 < m["mean_completion_s"] <= m["makespan_s"]


def test_a_batch_started_together_starts_its_clock_after_every_spawn():
    gated = run_workload("batch-long-tail", {**TINY["batch-long-tail"], "together": 1}).extra
    ungated = run_workload("batch-long-tail", {**TINY["batch-long-tail"], "together": 0}).extra
    # Gated: every task was spawned and waiting before the clock started.
    assert gated["spawn_s"] < 0.05, gated
    assert 0 <= gated["last_start_s"] <= gated["p95_completion_s"] + 1
    # Ungated: the spawns happen on the batch's clock.
    assert ungated["spawn_s"] > 0, ungated


def test_a_task_that_dies_before_the_gate_is_a_clear_error():
    from schedcp.workloads.library import _TaskPool
    from schedcp.workloads.spec import WorkloadError

    pool = _TaskPool()
    read_fd, write_fd = os.pipe()
    pool.spawn(0, -1, gate_fd=read_fd)  # a negative size: cpuburn refuses it and exits
    os.close(read_fd)
    with pytest.raises(WorkloadError, match="exited before the start"):
        pool.wait_ready(1, timeout=30)
    os.close(write_fd)


def test_parallel_build_takes_at_least_its_critical_path():
    params = get_workload("parallel-build").resolve_params(TINY["parallel-build"])
    one = run_workload("parallel-build", params).metrics["makespan_s"]
    # More work per job must take longer: the tasks really burn their work.
    bigger = run_workload("parallel-build", {**params, "unit_kiter": 20000}).metrics["makespan_s"]
    assert bigger > one


def test_a_job_with_a_working_set_touches_it_before_it_starts():
    from schedcp.workloads.native import ensure_native

    binary = str(ensure_native("cpuburn"))
    # Gated, the task has set up its working set and waits: its RSS shows it.
    proc = subprocess.Popen([binary, "-m", "16384", "1000000", "7", "gate"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "R 7\n"
        with open(f"/proc/{proc.pid}/status") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        assert rss_kib >= 16384, rss_kib
        out, err = proc.communicate(timeout=60)  # closes stdin: the gate opens
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    task, start, end = (int(x) for x in out.split())
    assert task == 7 and end > start
    bad = subprocess.run([binary, "-m", "lots", "1000"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid working set KiB" in bad.stderr


def test_interactive_counts_hog_work_and_foreground_latency():
    m = run_workload("interactive", TINY["interactive"]).metrics
    assert m["hog_mops_per_s"] > 0
    assert m["fg_wakeup_p50_us"] <= m["fg_wakeup_p99_us"]


def test_command_line_prints_one_parseable_result():
    argv = workload_command("batch-long-tail", TINY["batch-long-tail"])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    result = parse_result(proc.stdout, get_workload("batch-long-tail"))
    assert result.params["short_tasks"] == 6
    assert json.loads(proc.stdout.strip().splitlines()[-1])["workload"] == "batch-long-tail"


def test_cli_rejects_unknown_parameters():
    proc = subprocess.run([sys.executable, "-m", "schedcp.workloads", "run", "hackbench", "--param", "x=1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no parameter 'x'" in proc.stderr


def test_thousands_of_tasks_do_not_fill_the_report_pipe():
    # Every task reports one line on a shared pipe; past ~1800 tasks an
    # undrained pipe is full and the next task blocks in write() forever.
    params = {"units": 4000, "unit_kiter": 1, "libraries": 2, "link_kiter": 1, "jobs": 4}
    argv = workload_command("parallel-build", params)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    result = parse_result(proc.stdout, get_workload("parallel-build"))
    assert result.metrics["makespan_s"] > 0
