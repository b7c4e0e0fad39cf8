"""The A/B engine's control flow against a scripted node (pure logic)."""

import json
from pathlib import Path

import pytest

from schedcp.bench.engine import (
    EEVDF,
    ABRunner,
    NoSchedExt,
    SchedulerEjected,
    SchedulerUnderTest,
)

FIFO = SchedulerUnderTest("fifo", obj=Path("/objs/fifo.bpf.o"), tunables={"slice_us": 5000})


class ScriptedNode:
    """Answers each run with a makespan that depends on the loaded scheduler."""

    name = "scripted"

    def __init__(self, *, sched_ext=True, eject=False):
        self.sched_ext = sched_ext
        self.eject = eject
        self.loaded = None
        self.calls = []
        self.makespan = {"eevdf": [4.0, 4.4, 4.2, 4.1], "fifo": [2.0, 2.2, 2.1, 1.9]}

    def supports_sched_ext(self):
        return self.sched_ext

    def load_scheduler(self, scheduler):
        self.calls.append(("load", scheduler.name))
        self.loaded = scheduler.name

    def unload_scheduler(self):
        self.calls.append(("unload",))
        self.loaded = None

    def active_scheduler(self):
        return None if self.eject else self.loaded

    def run_command(self, argv, *, timeout):
        who = self.loaded or "eevdf"
        self.calls.append(("run", who))
        value = self.makespan[who].pop(0) if self.makespan[who] else 3.0
        return "noise\n" + json.dumps({"workload": "batch-long-tail", "params": {}, "elapsed_s": value,
                                       "metrics": {"makespan_s": value, "mean_completion_s": value / 2}})


def runner(node, **kw):
    return ABRunner(node=node, prepare_workload=lambda name: None, **kw)


def test_interleaves_abba_and_keeps_the_candidate_loaded_across_adjacent_runs():
    node = ScriptedNode()
    result = runner(node).compare("batch-long-tail", candidate=FIFO, repetitions=3, warmup=1)
    runs = [c[1] for c in node.calls if c[0] == "run"]
    # warm-up, then A B, B A, A B: the two adjacent fifo runs share one load.
    assert runs == ["eevdf", "eevdf", "fifo", "fifo", "eevdf", "eevdf", "fifo"]
    assert node.calls.count(("load", "fifo")) == 2
    assert node.calls.count(("unload",)) == 2
    assert [r.arm for r in result.runs] == ["baseline", "candidate", "candidate", "baseline",
                                            "baseline", "candidate"]
    assert node.loaded is None


def test_reports_medians_spread_and_oriented_ratio():
    node = ScriptedNode()
    result = runner(node).compare("batch-long-tail", candidate=FIFO, repetitions=3, warmup=0)
    m = result.metric("makespan_s")
    assert m.baseline == pytest.approx(4.2)  # median of 4.0, 4.4, 4.2
    assert m.candidate == pytest.approx(2.1)  # median of 2.0, 2.2, 2.1
    assert m.ratio == pytest.approx(2.0)  # lower is better: baseline / candidate
    assert m.spread == pytest.approx(0.2 / 2.1)
    assert result.score == m.ratio
    assert result.tunables == {"slice_us": 5000}
    proto = result.to_proto(regression_threshold_pct=5)
    assert proto.metrics[0].metric == "makespan_s" and proto.repetitions == 3
    assert json.loads(json.dumps(result.to_dict()))["score"] == pytest.approx(2.0)


def test_baseline_only_never_loads():
    node = ScriptedNode(sched_ext=False)
    result = runner(node).compare("batch-long-tail", candidate=EEVDF, repetitions=2, warmup=0)
    assert result.baseline_only
    assert not [c for c in node.calls if c[0] == "load"]
    assert result.metric("makespan_s").ratio == 1.0


def test_refuses_a_candidate_without_sched_ext():
    with pytest.raises(NoSchedExt, match="--node vm"):
        runner(ScriptedNode(sched_ext=False)).compare("batch-long-tail", candidate=FIFO, repetitions=1)


def test_an_ejected_candidate_is_an_error_not_a_result():
    node = ScriptedNode(eject=True)
    with pytest.raises(SchedulerEjected, match="disabled by the kernel"):
        runner(node).compare("batch-long-tail", candidate=FIFO, repetitions=1, warmup=0)
    assert node.calls[-1] == ("unload",)


def test_progress_reports_every_step():
    lines = []
    runner(ScriptedNode(), progress=lines.append).compare("batch-long-tail", candidate=FIFO,
                                                          repetitions=1, warmup=0)
    assert any(line.startswith("[1/2]") for line in lines)
    assert any("loading fifo" in line for line in lines)


class TwoSchedNode(ScriptedNode):
    """fifo works; 'stall' gets ejected on its first run."""

    def __init__(self):
        super().__init__()
        self.makespan["stall"] = [9.0] * 5

    def active_scheduler(self):
        return None if self.loaded == "stall" else self.loaded


def test_compare_many_shares_the_baseline_and_isolates_a_failure():
    node = TwoSchedNode()
    stall = SchedulerUnderTest("stall", obj=Path("/objs/stall.bpf.o"))
    fifo_result, stall_result = runner(node).compare_many(
        "batch-long-tail", candidates=[FIFO, stall], repetitions=2, warmup=0)
    assert isinstance(stall_result, SchedulerEjected)
    assert fifo_result.metric("makespan_s").baseline_values == (4.0, 4.4)
    # Rounds rotate the arm order: eevdf fifo stall, then fifo stall eevdf (stall skipped).
    runs = [c[1] for c in node.calls if c[0] == "run"]
    assert runs == ["eevdf", "fifo", "stall", "fifo", "eevdf"]
